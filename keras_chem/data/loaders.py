"""Turn a dataset card's file into a `Dataset` (inputs, float32 targets, skipped rows).

SMILES and formulas stay strings (featurizers parse them); crystal structures become
`ase.Atoms` (cell, pbc=True) built straight from the JSON arrays; extxyz frames are
returned as read. Missing labels are NaN; a row with no label at all, or with input
that cannot be used, becomes a `Skip` with a one-line reason instead of a crash.
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from keras_chem.data.fetch import locate
from keras_chem.data.registry import DatasetCard, get_card
from keras_chem.data.types import Dataset, Skip

NO_TARGET = "no target value (NaN or empty)"
# Cells read as a missing label (besides an empty cell).
_NA_STRINGS = ["", "nan", "NaN", "NAN", "NA", "N/A", "null", "None"]
_TRUE = {"true": 1.0, "false": 0.0}
# Rounding (decimals) under which two crystal structures count as exact duplicates.
DEDUP_DECIMALS = 4


class _BadRow(ValueError):
    """Raised inside a reader for one unusable row; the message becomes the Skip reason."""


@dataclass
class _Rows:
    ids: list[str]
    inputs: list[Any]
    targets: np.ndarray  # float64 [n, T]; object [n, 1] of label strings (None = missing) for multiclass
    reasons: dict[int, str] = field(default_factory=dict)
    deduplicated: bool = False


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _read_json(path: Path) -> Any:
    with _open(path) as handle:
        return json.load(handle)


def mbid(task: str, row: int, n_rows: int) -> str:
    """Matbench id of 0-based `row` of a task with `n_rows` rows (`mb-phonons-0001`)."""
    prefix = task.removeprefix("matbench_").replace("_", "-")
    return f"mb-{prefix}-{row + 1:0{len(str(n_rows))}d}"


def _to_float(value: Any) -> float:
    """One label cell -> float (NaN when missing); raises _BadRow on text that is no number."""
    if value is None:
        return math.nan
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text in _NA_STRINGS:
            return math.nan
        if text.lower() in _TRUE:
            return _TRUE[text.lower()]
        try:
            return float(text)
        except ValueError:
            raise _BadRow(f"non-numeric target value {value!r}") from None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise _BadRow(f"non-numeric target value {value!r}") from None


def _label(value: Any) -> str | None:
    """One multiclass label cell -> its string, None when missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return None if text in _NA_STRINGS else text


def _targets_from_cells(card: DatasetCard, cells: list[list[Any]], reasons: dict[int, str]) -> np.ndarray:
    """Row-wise label cells -> float64 matrix (or object labels for multiclass)."""
    if card.task == "multiclass":
        return np.array([[_label(row[0])] for row in cells], dtype=object).reshape(len(cells), 1)
    out = np.full((len(cells), len(card.targets)), np.nan)
    for i, row in enumerate(cells):
        try:
            out[i] = [_to_float(v) for v in row]
        except _BadRow as err:
            reasons.setdefault(i, str(err))
    return out


# ---------------------------------------------------------------- CSV (SMILES, formulas)


def _csv_column_to_float(column: pd.Series, name: str, reasons: dict[int, str]) -> np.ndarray:
    if column.dtype == bool or pd.api.types.is_numeric_dtype(column.dtype):
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    values = np.full(len(column), np.nan)
    for i, cell in enumerate(column.tolist()):
        try:
            values[i] = _to_float(cell)
        except _BadRow as err:
            reasons.setdefault(i, f"{err} in column {name!r}")
    return values


def _read_csv(card: DatasetCard, path: Path, limit: int | None) -> _Rows:
    header = list(pd.read_csv(path, nrows=0).columns)
    wanted = [card.input_column, *card.targets] + ([card.id_column] if card.id_column else [])
    missing = [c for c in wanted if c not in header]
    if missing:
        raise ValueError(f"{card.card_file}: column(s) {missing} not in {path} (columns: {header})")
    text_cols = {card.input_column: str}
    if card.id_column:
        text_cols[card.id_column] = str
    if card.task == "multiclass":
        text_cols[card.targets[0]] = str
    frame = pd.read_csv(
        path, usecols=wanted, nrows=limit, dtype=text_cols, keep_default_na=False,
        na_values={t: _NA_STRINGS for t in card.targets},
    )
    reasons: dict[int, str] = {}
    n = len(frame)
    if card.task == "multiclass":
        targets = np.array([[_label(v)] for v in frame[card.targets[0]].tolist()], dtype=object).reshape(n, 1)
    else:
        targets = np.empty((n, len(card.targets)), dtype=np.float64)
        for j, name in enumerate(card.targets):
            targets[:, j] = _csv_column_to_float(frame[name], name, reasons)
    inputs = frame[card.input_column].tolist()
    for i in np.flatnonzero(frame[card.input_column].str.strip().to_numpy() == ""):
        reasons.setdefault(int(i), f"empty {card.input_column!r} cell")
    ids = frame[card.id_column].tolist() if card.id_column else [str(i) for i in range(n)]
    return _Rows(ids=ids, inputs=inputs, targets=targets, reasons=reasons)


# ---------------------------------------------------------------- crystal structures


def _atoms(lattice, species: list[str], frac_coords):
    """`ase.Atoms` with cell and pbc=True; raises _BadRow on unusable geometry."""
    from ase import Atoms

    if len(species) == 0:
        raise _BadRow("empty structure")
    cell = np.asarray(lattice, dtype=np.float64)
    frac = np.asarray(frac_coords, dtype=np.float64)
    if cell.shape != (3, 3) or frac.shape != (len(species), 3):
        raise _BadRow(f"malformed structure (lattice {cell.shape}, coords {frac.shape}, {len(species)} species)")
    if not (np.isfinite(cell).all() and np.isfinite(frac).all()):
        raise _BadRow("non-finite lattice or coordinates")
    if abs(np.linalg.det(cell)) < 1e-8:
        raise _BadRow("degenerate lattice (zero cell volume)")
    try:
        return Atoms(symbols=list(species), positions=frac @ cell, cell=cell, pbc=True)
    except (KeyError, ValueError) as err:
        raise _BadRow(f"bad structure: {err}") from None


def _atoms_from_pymatgen_dict(structure: dict):
    sites = structure.get("sites") or []
    species, frac = [], []
    for site in sites:
        occupants = site["species"]
        if len(occupants) != 1 or abs(float(occupants[0].get("occu", 1.0)) - 1.0) > 1e-6:
            raise _BadRow("disordered site (partial occupancy) is not supported")
        species.append(occupants[0]["element"])
        frac.append(site["abc"])
    return _atoms(structure["lattice"]["matrix"], species, frac)


def _read_matbench_json(card: DatasetCard, path: Path, limit: int | None) -> _Rows:
    blob = _read_json(path)
    columns = list(blob["columns"])
    missing = [c for c in (card.input_column, *card.targets) if c not in columns]
    if missing:
        raise ValueError(f"{card.card_file}: column(s) {missing} not in {path} (columns: {columns})")
    n_total = len(blob["data"])
    data = blob["data"][:limit] if limit is not None else blob["data"]
    col = columns.index(card.input_column)
    tcols = [columns.index(t) for t in card.targets]
    if card.id_column == "mbid":
        ids = [mbid(card.matbench_task or card.name, i, n_total) for i in range(len(data))]
    else:
        ids = [str(i) for i in range(len(data))]
    reasons: dict[int, str] = {}
    inputs: list[Any] = []
    for i, row in enumerate(data):
        try:
            inputs.append(_atoms_from_pymatgen_dict(row[col]))
        except _BadRow as err:
            inputs.append(None)
            reasons[i] = str(err)
        except (KeyError, TypeError, IndexError, ValueError) as err:
            inputs.append(None)
            reasons[i] = f"unreadable structure dict: {type(err).__name__}: {err}"
    targets = _targets_from_cells(card, [[row[c] for c in tcols] for row in data], reasons)
    return _Rows(ids=ids, inputs=inputs, targets=targets, reasons=reasons)


def _read_cegann_json(card: DatasetCard, path: Path, limit: int | None) -> _Rows:
    """CEGANN records. Row id = "<split>/<id>" (the POSCAR name in the source zips).

    Every "target" record duplicates a "train" record (CEGANN's validation copy, not a
    held-out set), so target rows are always skipped, naming the train row they copy.
    With `deduplicate`, repeated train structures are skipped too, keeping the first.
    """
    from keras_chem.data.dedup import structure_key

    records = _read_json(path)
    if limit is not None:
        records = records[:limit]
    reasons: dict[int, str] = {}
    ids, inputs, labels, keys = [], [], [], []
    for i, rec in enumerate(records):
        ids.append(f"{rec.get('split', '?')}/{rec.get('id', i)}")
        labels.append([rec.get(card.targets[0])])
        try:
            atoms = _atoms(rec["lattice"], rec["species"], rec["frac_coords"])
            keys.append(structure_key(atoms, DEDUP_DECIMALS))
        except _BadRow as err:
            atoms = None
            keys.append(None)
            reasons[i] = str(err)
        except (KeyError, TypeError) as err:
            atoms = None
            keys.append(None)
            reasons[i] = f"unreadable record: {type(err).__name__}: {err}"
        inputs.append(atoms)
    targets = _targets_from_cells(card, labels, reasons)
    first: dict[str, int] = {}
    for i, rec in enumerate(records):
        if rec.get("split") == "train" and keys[i] is not None and i not in reasons:
            first.setdefault(keys[i], i)
    for i, rec in enumerate(records):
        if i in reasons or keys[i] is None:
            continue
        j = first.get(keys[i])
        is_target = rec.get("split") != "train"
        if not is_target and (j == i or not card.deduplicate):
            continue
        if j is None:
            reasons[i] = "CEGANN 'target' record (validation copy of the train set, not held out)"
            continue
        what = f"CEGANN 'target' record, copy of {ids[j]} (not held out)" if is_target else f"duplicate of {ids[j]}"
        a, b = labels[i][0], labels[j][0]
        if a != b:
            what += f" with a conflicting label ({a} here, {b} there)"
        reasons[i] = what
    return _Rows(ids=ids, inputs=inputs, targets=targets, reasons=reasons, deduplicated=True)


def _read_extxyz(card: DatasetCard, path: Path, limit: int | None) -> _Rows:
    import ase.io

    index = ":" if limit is None else f":{limit}"
    frames = ase.io.read(str(path), index=index, format="extxyz")
    reasons: dict[int, str] = {}
    if card.id_column:
        ids = [str(_info_id(_frame_value(a, card.id_column, i))) for i, a in enumerate(frames)]
    else:
        ids = [str(i) for i in range(len(frames))]
    for i, atoms in enumerate(frames):
        if len(atoms) == 0:
            reasons[i] = "empty structure"
    cells = [[_frame_value(a, t) for t in card.targets] for a in frames]
    targets = _targets_from_cells(card, cells, reasons)
    return _Rows(ids=ids, inputs=list(frames), targets=targets, reasons=reasons)


def _frame_value(atoms, key: str, default: Any = None) -> Any:
    """A per-frame property: ASE keeps calculator names (energy, free_energy, ...) in `atoms.calc`."""
    if key in atoms.info:
        return atoms.info[key]
    results = getattr(atoms.calc, "results", None) or {}
    value = results.get(key, default)
    return value.item() if isinstance(value, np.ndarray) and value.size == 1 else value


def _info_id(value: Any) -> Any:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    return value.item() if isinstance(value, np.generic) else value


_READERS = {
    "csv": _read_csv,
    "matbench_json": _read_matbench_json,
    "cegann_json": _read_cegann_json,
    "extxyz": _read_extxyz,
}


# ---------------------------------------------------------------- assembling the Dataset


def _class_order(label: str):
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def _exact_key(value: Any) -> str:
    from keras_chem.data.dedup import structure_key

    return value if isinstance(value, str) else structure_key(value, DEDUP_DECIMALS)


def _finish(card: DatasetCard, rows: _Rows) -> Dataset:
    reasons = rows.reasons
    n = len(rows.ids)
    class_names = None
    if card.task == "multiclass":
        labels = rows.targets[:, 0]
        present = {lab for i, lab in enumerate(labels) if lab is not None and i not in reasons}
        class_names = sorted(present, key=_class_order)
        index = {lab: float(k) for k, lab in enumerate(class_names)}
        targets = np.array([[index.get(lab, np.nan)] for lab in labels], dtype=np.float64).reshape(n, 1)
    else:
        targets = rows.targets
        if card.task == "classification":
            bad = ~np.isnan(targets) & (targets != 0.0) & (targets != 1.0)
            for i, j in zip(*np.nonzero(bad)):
                reasons.setdefault(int(i), f"label {targets[i, j]:g} in {card.targets[j]!r} is not 0/1")
    for i in np.flatnonzero(np.isnan(targets).all(axis=1)):
        reasons.setdefault(int(i), NO_TARGET)
    if card.deduplicate and not rows.deduplicated:
        seen: dict[str, int] = {}
        for i in range(n):
            if i not in reasons:
                j = seen.setdefault(_exact_key(rows.inputs[i]), i)
                if j != i:
                    reasons[i] = f"duplicate of {rows.ids[j]}"
    keep = np.array([i for i in range(n) if i not in reasons], dtype=np.int64)
    ids = [rows.ids[i] for i in keep]
    inputs = [rows.inputs[i] for i in keep]
    targets = targets[keep]
    return Dataset(
        name=card.name,
        input_kind=card.input,
        task=card.task,
        ids=[str(i) for i in ids],
        inputs=inputs,
        targets=np.ascontiguousarray(targets, dtype=np.float32).reshape(len(ids), len(card.targets)),
        target_names=list(card.targets),
        class_names=class_names,
        skipped=[Skip(str(rows.ids[i]), reasons[i]) for i in sorted(reasons)],
        rows=keep,
    )


def load_dataset(name: str, limit: int | None = None, download: bool = True) -> Dataset:
    """Load dataset `name` (see `list_cards()`); `limit` keeps the first N file rows."""
    card = get_card(name)
    if card.input == "table":
        raise ValueError(f"{name!r} is a table, not a dataset of inputs and targets; use load_table({name!r})")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    path = locate(card, download=download)
    return _finish(card, _READERS[card.format](card, path, limit))


def load_table(name: str, file: str | None = None, download: bool = True) -> Any:
    """Parsed JSON of a table card's file (element tables, Matbench folds)."""
    card = get_card(name)
    if card.format != "json":
        raise ValueError(f"{name!r} is not a JSON table (format {card.format!r}); use load_dataset({name!r})")
    return _read_json(locate(card, file, download=download))
