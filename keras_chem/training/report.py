"""summary.json and report.md of a finished run."""

from __future__ import annotations

from pathlib import Path

from keras_chem.data.types import Dataset, Skip
from keras_chem.io import atomic_write_json, atomic_write_text
from keras_chem.models.base import TaskInfo
from keras_chem.training.config import RunConfig


def write_summary(out: Path, config: RunConfig, task: TaskInfo, data: Dataset, skipped: list[Skip], fold_metrics: list[dict]) -> dict:
    from keras_chem.metrics import format_summary_markdown, summarize

    summary = {
        "model": config.model,
        "dataset": config.dataset,
        "task": task.task,
        "targets": task.target_names,
        "n_rows_used": len(data),
        "n_skipped": len(skipped),
        "n_splits": len(fold_metrics),
        "metrics": summarize(fold_metrics),
    }
    atomic_write_json(out / "summary.json", summary)
    lines = [
        f"# {config.model} on {config.dataset}",
        "",
        f"{len(data)} rows used, {len(skipped)} skipped (see `skipped.csv`), {len(fold_metrics)} splits "
        f"({_split_description(config)}), seed {config.seed}.",
        "",
        "Mean ± standard deviation over the test folds. " + _METRIC_NOTES[task.task],
        "",
        format_summary_markdown(summary["metrics"]),
    ]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    return summary


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


def _split_description(config: RunConfig) -> str:
    if config.splits_file:
        return f"from {config.splits_file}"
    kind = f"{config.replicates} replicates" if config.replicates else f"{config.folds}-fold"
    return f"{kind}, {config.split} split"
