"""`summary.json`, `report.md` and the pictures of a run, from its files alone.

The process that finishes a run's last fold calls `summarize`, and so does `kchem summarize
RUN_DIR` at any time: it needs neither the data nor Keras. Folds without `metrics.json` are
listed as missing (with the reason of a failed one) and the summary is marked partial.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from keras_chem.io import atomic_write_json, atomic_write_text
from keras_chem.training.console import console
from keras_chem.training.fold import EMBEDDINGS_FILE
from keras_chem.training.run_files import SPLIT_NOTES, RunDirectory


def fold_states(run: RunDirectory) -> dict[int, str]:
    """Per fold: "finished", "failed", "running" (its lock is held by a live process) or "pending"."""
    from keras_chem import locks

    states = {}
    for k in run.fold_indices():
        if run.is_finished(k):
            states[k] = "finished"
            continue
        holder = locks.read_lock(run.lock_path(k))
        if holder is not None and not locks.is_stale(holder):
            states[k] = "running"
        else:
            states[k] = "failed" if run.failure(k) is not None else "pending"
    return states


def summarize(run_dir) -> dict:
    from keras_chem.metrics import format_summary_markdown, summarize as summarize_folds

    run = RunDirectory(run_dir)
    config, task = run.config(), run.task()
    rows, skipped = run.rows(), run.skipped()
    states = fold_states(run)
    finished = [k for k, state in states.items() if state == "finished"]
    missing = {k: _missing_reason(run, k, state) for k, state in states.items() if state != "finished"}
    fold_metrics = [run.fold_metrics(k) for k in finished]
    summary = {
        "model": config.model,
        "dataset": config.dataset,
        "task": task.task,
        "targets": task.target_names,
        "n_rows_used": len(rows),
        "n_skipped": len(skipped),
        **({"geometry": geometry} if (geometry := run.model_info()["preprocessor"].get("geometry")) else {}),
        "n_splits": len(fold_metrics),
        "complete": not missing,
        "missing_folds": {str(k): reason for k, reason in missing.items()},
        "metrics": summarize_folds(fold_metrics),
    }
    notes = run.path / SPLIT_NOTES
    if notes.exists():
        summary["split_rows_left_out"] = json.loads(notes.read_text())["rows_left_out"]
    atomic_write_json(run.path / "summary.json", summary)
    atomic_write_text(run.path / "report.md", _report(config, task, rows, skipped, states, missing, summary, format_summary_markdown))
    _write_plots(run, task, rows, finished)
    return summary


def _missing_reason(run: RunDirectory, k: int, state: str) -> str:
    if state == "failed":
        return f"failed: {run.failure(k)['reason']}"
    if state == "running":
        from keras_chem import locks

        return f"running on {locks.holder_description(locks.read_lock(run.lock_path(k)) or {})}"
    return "not trained yet"


def _report(config, task, rows, skipped, states, missing, summary, format_markdown) -> str:
    n_folds = len(states)
    lines = [f"# {config.model} on {config.dataset}", ""]
    if missing:
        lines += [f"**Partial: {len(missing)} of {n_folds} folds missing.** Rerun the training command to retry them.", ""]
        lines += [f"- fold {k}: {reason}" for k, reason in missing.items()] + [""]
    if "split_rows_left_out" in summary:
        lines += [f"Note: {sum(summary['split_rows_left_out'])} row(s) of the given splits file are not among the featurized "
                  "rows (skipped, or past --limit) and were left out.", ""]
    lines += [
        f"{len(rows)} rows used, {len(skipped)} skipped (see `skipped.csv`), {summary['n_splits']} of {n_folds} splits "
        f"({_split_description(config)}), seed {config.seed}.",
        "",
        *([f"3-D geometry: {summary['geometry']}.", ""] if "geometry" in summary else []),
        "Mean ± standard deviation over the test folds. " + _METRIC_NOTES[task.task],
        "",
        format_markdown(summary["metrics"]),
    ]
    return "\n".join(lines) + "\n"


def _write_plots(run: RunDirectory, task, rows, finished: list[int]) -> None:
    """ROC curves, confusion matrix, a t-SNE of every tested row's learned embedding (from the
    fold that tested it), and where an attention readout looks. Pictures are extras: a failure is reported, never fatal."""
    from keras_chem.training.plots import write_run_plots
    from keras_chem.training.plots.attention import attention_map

    try:
        embeddings, labels, label_name = _test_embeddings(run, task, rows, finished)
        write_run_plots(run.path, task.to_dict(), embeddings, labels, label_name)
        attention_map(run.path)
    except Exception as error:  # noqa: BLE001 - the results are already written
        console.print(f"[yellow]warning:[/] could not draw the run's pictures: {type(error).__name__}: {error}")


def _test_embeddings(run: RunDirectory, task, rows, finished: list[int]):
    if task.task == "classification":
        column = int(np.argmin(np.isnan(rows.targets).sum(axis=0)))
        label_name = task.target_names[column]
    elif task.task == "multiclass":
        column, label_name = 0, "class"
    else:
        column, label_name = 0, task.target_names[0]
    splits = run.splits()
    chunks, labels = [], []
    for k in finished:
        path = run.fold(k) / EMBEDDINGS_FILE
        if not path.exists():
            return None, None, None
        chunks.append(np.load(path, allow_pickle=False))
        labels.append(rows.targets[splits[k].test, column])
    if not chunks:
        return None, None, None
    return np.concatenate(chunks), np.concatenate(labels), label_name


_METRIC_NOTES = {
    "classification": (
        "ROC-AUC and PR-AUC are per task from the positive-class probability, missing labels masked, then averaged "
        "over tasks. `pooled_onehot_auc` is the original elEmBERT notebooks' metric (one-hot labels and [1-p, p] "
        "flattened into one ROC); it is inflated by class imbalance and shown only for comparison."
    ),
    "multiclass": (
        "ROC-AUC is the macro one-vs-rest average over classes. `pooled_onehot_auc` is the original elEmBERT "
        "notebooks' metric (one-hot labels and class probabilities flattened into one ROC), shown only for comparison."
    ),
    "regression": "MAE, RMSE and R² are per target in the target's units, missing values masked, then averaged over targets.",
}


def _split_description(config) -> str:
    if config.splits_file:
        return f"from {config.splits_file}"
    kind = f"{config.replicates} replicates" if config.replicates else f"{config.folds}-fold"
    return f"{kind}, {config.split} split"


def summary_path(run_dir) -> Path:
    return Path(run_dir) / "summary.json"
