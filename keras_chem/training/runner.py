"""The k-fold runner: one run directory per command, resumable fold by fold, folds isolated.

`run` loads and featurizes the dataset once (a memory-mapped store on disk), writes the run
files (`run_files.py`), then trains every fold, or the folds of `only_folds`, each in a fresh
worker process (`worker.py`) under a per-fold lock, so that processes on several machines can
share one run directory. A fold that fails is recorded and the others go on; rerunning the
command retries only the folds that are not finished. The process that finds every fold
finished writes the summary (`summary.py`).
"""

from __future__ import annotations

import json
from pathlib import Path

from keras_chem import locks
from keras_chem.data.types import Dataset
from keras_chem.io import atomic_write_json
from keras_chem.models.base import TaskInfo
from keras_chem.models.registry import family_module, get_model_family
from keras_chem.training.config import RESUME_IRRELEVANT_KEYS, RunConfig
from keras_chem.training.console import console
from keras_chem.training.run_files import SPLIT_NOTES, RunDirectory, Rows, file_rows_to_positions, positions_to_file_rows
from keras_chem.training.splitting import DEFAULT_FOLDS


class RunConfigMismatch(RuntimeError):
    """The run directory holds a run with a different configuration."""


class FoldsFailed(RuntimeError):
    """Some folds failed; the others are finished and the summary is partial."""


def run(config: RunConfig, only_folds: list[int] | None = None, devices=None) -> dict | None:
    """Train and evaluate `config.model` on every split (or on `only_folds`); returns the summary, or
    None when other folds are still to be trained (by other processes)."""
    from keras_chem.training.summary import fold_states, summarize
    from keras_chem.training.worker import Workers

    run_dir, store = prepare(config)
    run = RunDirectory(run_dir)
    n_folds = len(run.fold_indices())
    wanted = list(range(n_folds)) if only_folds is None else sorted(set(only_folds))
    bad = [k for k in wanted if not 0 <= k < n_folds]
    if bad:
        raise ValueError(f"--only-fold {bad[0]}: this run has folds 0..{n_folds - 1}")
    workers = Workers(run.model_info()["family_module"], devices)
    failed_here = {}
    try:
        for i, k in enumerate(wanted):
            if run.is_finished(k):
                console.print(f"  fold {k}: finished earlier, reused")
                continue
            with locks.held(run.lock_path(k)) as holder:
                if holder is not None:
                    console.print(f"  fold {k}: being trained by {locks.holder_description(holder)}; skipped")
                    continue
                if run.is_finished(k):  # finished by another process between the check and the lock
                    continue
                more = any(not run.is_finished(j) for j in wanted[i + 1 :])
                failure = workers.next(more_to_come=more).train(run_dir, k, store)
            if failure is None:
                console.print(f"  fold {k}: {_headline(run.fold_metrics(k), run.task())}")
            else:
                failed_here[k] = failure["reason"]
                console.print(f"  [red]fold {k} failed:[/] {failure['reason']}")
    finally:
        workers.close()
    states = fold_states(run)
    if any(state in ("pending", "running") for state in states.values()):
        waiting = [k for k, state in states.items() if state in ("pending", "running")]
        console.print(f"folds {', '.join(map(str, waiting))} are not finished yet; `kchem summarize {run_dir}` writes a partial summary")
        return None
    summary = summarize(run_dir)
    if failed_here:
        raise FoldsFailed(
            f"{len(failed_here)} of {n_folds} folds failed ({'; '.join(f'fold {k}: {r}' for k, r in failed_here.items())}); "
            f"the partial summary is in {run_dir}/summary.json; rerun the command to retry them"
        )
    if not summary["complete"]:
        console.print(f"[yellow]note:[/] folds {', '.join(summary['missing_folds'])} failed in other processes; "
                      f"the summary in {run_dir} is partial")
    return summary


def prepare(config: RunConfig) -> tuple[Path, Path]:
    """Everything before the folds: the run files and the feature store; returns both folders."""
    from keras_chem.training.features import featurize_dataset

    dataset = load_run_dataset(config)
    task = TaskInfo(dataset.task, dataset.target_names, dataset.class_names)
    if config.model_config["monitor"] == "val_roc_auc" and task.task != "classification":
        raise ValueError(f"--monitor val_roc_auc needs binary classification targets; {config.dataset} is a {task.task} dataset")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    _fill_split_defaults(config)
    _check_or_write_config(out, config)
    run = RunDirectory(out)
    family = get_model_family(config.model)
    store, preprocessor = featurize_dataset(family, config.model_config, dataset)
    skipped = list(dataset.skipped) + store.skipped
    data = dataset.subset(store.kept)
    run.write_skipped(skipped)
    run.write_rows(Rows(ids=data.ids, file_rows=data.rows, targets=data.targets))
    atomic_write_json(out / "model_info.json", {
        "model": config.model, "family_module": family_module(config.model), "preprocessor": preprocessor.get_config(),
        "task": task.to_dict(), "input_kind": data.input_kind,
    })
    splits = _load_or_make_splits(out, config, data)
    console.print(
        f"[bold]{config.model}[/] on [bold]{config.dataset}[/]: {len(data)} rows used, {len(skipped)} skipped, "
        f"{len(splits)} splits → {out}"
    )
    return out, store.path


def load_run_dataset(config: RunConfig) -> Dataset:
    from keras_chem.data.loaders import load_dataset

    return load_dataset(config.dataset, limit=config.limit)


def _fill_split_defaults(config: RunConfig) -> None:
    """Write the effective split into the config: the card's method, 5 folds unless replicates."""
    from keras_chem.data.registry import get_card

    if config.splits_file:
        return
    config.split = config.split or get_card(config.dataset).split
    if not config.replicates:
        config.folds = config.folds or DEFAULT_FOLDS


def _check_or_write_config(out: Path, config: RunConfig) -> None:
    path = out / "config.json"
    wanted = config.to_dict()
    if path.exists():
        existing = json.loads(path.read_text())
        differences = sorted(
            key
            for key in set(existing) | set(wanted)
            if key not in RESUME_IRRELEVANT_KEYS and existing.get(key) != wanted.get(key)
        )
        if differences:
            raise RunConfigMismatch(
                f"{out} holds a run with a different configuration ({', '.join(differences)} differ); "
                "choose another --out or delete that directory"
            )
        console.print(f"resuming the run in {out}")
        return
    atomic_write_json(path, wanted)


def _load_or_make_splits(out: Path, config: RunConfig, data: Dataset):
    from keras_chem.data.split_files import read_splits_file, write_splits_file
    from keras_chem.training.splitting import make_splits

    path = out / "splits.json"
    if path.exists():
        return file_rows_to_positions(read_splits_file(path, int(data.rows.max()) + 1), data.rows)[0]
    splits, dropped = make_splits(config, data)
    if any(dropped):
        note = (f"{sum(dropped)} row(s) of {config.splits_file} are not among the featurized rows (skipped, or past --limit) "
                f"and are left out: {', '.join(f'split {k}: {n}' for k, n in enumerate(dropped) if n)}")
        console.print(f"[yellow]note:[/] {note}")
        atomic_write_json(out / SPLIT_NOTES, {"rows_left_out": dropped, "note": note})
    write_splits_file(path, [positions_to_file_rows(s, data.rows) for s in splits])
    return splits


def _headline(metrics: dict, task: TaskInfo) -> str:
    key = {"classification": "roc_auc", "multiclass": "accuracy"}.get(task.task, "mae")
    return f"{key} {metrics.get(key, float('nan')):.4f}"
