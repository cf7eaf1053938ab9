"""The files of a run directory: what the runner, the fold workers and `summarize` exchange.

    config.json            resolved configuration (what the command asked for)
    model_info.json        model family, fitted preprocessor and task (for predict and export)
    rows.npz               id, file row and targets of every featurized row
    splits.json            row indices of every split (chemprop's format: rows of the data file)
    skipped.csv            row id and reason for every input that was dropped
    fold_<k>/model.keras   best weights (early stopping on validation loss)
    fold_<k>/test_predictions.csv, test_embeddings.npy, history.json
    fold_<k>/metrics.json  written last: a fold with it is finished and is reused on resume
    fold_<k>/failed.json   why the last attempt at the fold failed (removed when it succeeds)
    fold_<k>/.lock         held by the process training the fold; fold_<k>/worker.json: its worker
    summary.json, report.md, *.png
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_chem.data.types import Skip
from keras_chem.io import atomic_save_npz, atomic_write_json, atomic_write_text
from keras_chem.models.base import TaskInfo

SPLIT_NOTES = "split_notes.json"  # rows of a given splits file that are not among the featurized rows


@dataclass
class Rows:
    """The featurized rows of a run, in the order of the feature arrays."""

    ids: np.ndarray  # str
    file_rows: np.ndarray  # int64: 0-based rows of the data file
    targets: np.ndarray  # float32 [n, T]

    def __len__(self) -> int:
        return len(self.ids)


class RunDirectory:
    def __init__(self, path):
        self.path = Path(path)

    def fold(self, k: int) -> Path:
        return self.path / f"fold_{k}"

    def fold_indices(self) -> list[int]:
        return list(range(len(json.loads((self.path / "splits.json").read_text()))))

    def is_finished(self, k: int) -> bool:
        return (self.fold(k) / "metrics.json").exists()

    def lock_path(self, k: int) -> Path:
        return self.fold(k) / ".lock"

    def config(self):
        from keras_chem.training.config import RunConfig

        return RunConfig.from_dict(json.loads((self.path / "config.json").read_text()))

    def model_info(self) -> dict:
        path = self.path / "model_info.json"
        if not path.exists():
            raise FileNotFoundError(f"{self.path} is not a keras-chem run directory (no model_info.json)")
        return json.loads(path.read_text())

    def task(self) -> TaskInfo:
        return TaskInfo.from_dict(self.model_info()["task"])

    # ---------------------------------------------------------------- rows and skips

    def write_rows(self, rows: Rows) -> None:
        atomic_save_npz(self.path / "rows.npz", ids=np.asarray(rows.ids, dtype=str), file_rows=rows.file_rows,
                        targets=rows.targets)

    def rows(self) -> Rows:
        with np.load(self.path / "rows.npz", allow_pickle=False) as data:
            return Rows(ids=data["ids"], file_rows=data["file_rows"], targets=data["targets"])

    def write_skipped(self, skipped: list[Skip]) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["id", "reason"])
        writer.writerows([s.row_id, s.reason] for s in skipped)
        atomic_write_text(self.path / "skipped.csv", buffer.getvalue())

    def skipped(self) -> list[Skip]:
        with open(self.path / "skipped.csv", newline="") as handle:
            return [Skip(row["id"], row["reason"]) for row in csv.DictReader(handle)]

    # ---------------------------------------------------------------- splits

    def splits(self):
        """Splits as positions into the featurized rows (`rows.npz`)."""
        from keras_chem.data.split_files import read_splits_file

        rows = self.rows()
        return file_rows_to_positions(read_splits_file(self.path / "splits.json", int(rows.file_rows.max()) + 1), rows.file_rows)[0]

    # ---------------------------------------------------------------- fold outputs

    def write_predictions(self, k: int, rows: Rows, positions: np.ndarray, predictions: np.ndarray, task: TaskInfo,
                          extras: dict[str, np.ndarray] | None = None) -> None:
        """`fold_<k>/test_predictions.csv`: per row its targets and predictions, and `<target>_<extra>`
        columns for a family's extra outputs (e.g. `_sigma`)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        extras = extras or {}
        if task.task == "multiclass":
            writer.writerow(["row", "id", "label", "predicted", *[f"prob_{c}" for c in task.class_names]])
            for position, probs in zip(positions, predictions):
                label = int(rows.targets[position, 0])
                writer.writerow([int(rows.file_rows[position]), rows.ids[position], task.class_names[label],
                                 task.class_names[int(np.argmax(probs))], *map(_fmt, probs)])
        else:
            names = task.target_names
            writer.writerow(["row", "id", *names, *[f"{n}_pred" for n in names], *[f"{n}_{e}" for e in extras for n in names]])
            for i, (position, values) in enumerate(zip(positions, predictions)):
                extra_values = [_fmt(v) for e in extras for v in extras[e][i]]
                writer.writerow([int(rows.file_rows[position]), rows.ids[position], *map(_fmt, rows.targets[position]),
                                 *map(_fmt, values), *extra_values])
        atomic_write_text(self.fold(k) / "test_predictions.csv", buffer.getvalue())

    def fold_metrics(self, k: int) -> dict | None:
        path = self.fold(k) / "metrics.json"
        return json.loads(path.read_text()) if path.exists() else None

    def write_failure(self, k: int, reason: str, **details) -> None:
        atomic_write_json(self.fold(k) / "failed.json", {"reason": reason, **details})

    def failure(self, k: int) -> dict | None:
        path = self.fold(k) / "failed.json"
        return json.loads(path.read_text()) if path.exists() else None


def file_rows_to_positions(splits, file_rows: np.ndarray):
    """Splits over rows of the data file → splits over positions in `file_rows`; rows that are not
    there (skipped, or past --limit) are left out and counted: `(splits, dropped per split)`."""
    from keras_chem.data.splits import Split

    position = {int(row): i for i, row in enumerate(file_rows)}
    converted, dropped = [], []
    for split in splits:
        parts, missing = {}, 0
        for name in ("train", "val", "test"):
            rows = [int(r) for r in getattr(split, name)]
            parts[name] = np.asarray(sorted(position[r] for r in rows if r in position), dtype=np.int64)
            missing += len(rows) - len(parts[name])
        converted.append(Split(**parts))
        dropped.append(missing)
    return converted, dropped


def positions_to_file_rows(split, file_rows: np.ndarray):
    from keras_chem.data.splits import Split

    return Split(train=file_rows[split.train], val=file_rows[split.val], test=file_rows[split.test])


def _fmt(value) -> str:
    value = float(value)
    return "" if np.isnan(value) else f"{value:.8g}"
