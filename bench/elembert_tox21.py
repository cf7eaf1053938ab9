"""The flagship command, timed: `kchem train elembert --dataset tox21 --folds 8` with default settings.

Runs the command from a cold feature cache (conformers, sub-element tokens and all), records
its wall time, and recomputes the mean per-task ROC-AUC and the pooled one-hot AUC from the
saved test predictions with scikit-learn alone, to check them against `summary.json`.

Run: `.venv/bin/python bench/elembert_tox21.py [--backend jax|tensorflow]`.
Writes bench/results/elembert_tox21.json and .md; the run directory goes to bench/runs/.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
GOAL_MINUTES = 30


def recompute_fold(path: Path) -> tuple[float, float]:
    """(mean per-task ROC-AUC, mean per-task pooled one-hot AUC) of one fold's test predictions."""
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    tasks = [name[: -len("_pred")] for name in rows[0] if name.endswith("_pred")]
    roc, pooled = [], []
    for task in tasks:
        labelled = [(float(r[task]), float(r[f"{task}_pred"])) for r in rows if r[task] != ""]
        y, p = np.array(labelled).T
        if len(np.unique(y)) < 2:
            continue
        roc.append(roc_auc_score(y, p))
        pooled.append(roc_auc_score(np.stack([1 - y, y], 1).ravel(), np.stack([1 - p, p], 1).ravel()))
    return float(np.mean(roc)), float(np.mean(pooled))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "jax"))
    parser.add_argument("--out", type=Path, default=HERE / "runs" / "tox21-8fold")
    args = parser.parse_args()

    from keras_chem.io import atomic_write_json, atomic_write_text

    if (args.out / "summary.json").exists():
        sys.exit(f"{args.out} holds a finished run; remove it to time a new one")
    out = os.path.relpath(args.out, HERE.parent)
    command = ["kchem", "--backend", args.backend, "train", "elembert", "--dataset", "tox21", "--folds", "8", "--out", out]
    with tempfile.TemporaryDirectory() as cold_cache:
        env = {**os.environ, "KCHEM_CACHE_DIR": cold_cache, "KCHEM_PROGRESS": "0"}
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "keras_chem.cli", *command[1:]], env=env, check=True, cwd=HERE.parent)
        wall_seconds = time.perf_counter() - started

    summary = json.loads((args.out / "summary.json").read_text())
    folds = sorted(args.out.glob("fold_*/test_predictions.csv"))
    recomputed = np.array([recompute_fold(path) for path in folds])
    train_seconds = [json.loads((p.parent / "history.json").read_text())["train_seconds"] for p in folds]
    metrics = summary["metrics"]
    result = {
        "command": " ".join(command),
        "backend": args.backend,
        "wall_minutes": round(wall_seconds / 60, 2),
        "goal_minutes": GOAL_MINUTES,
        "train_minutes_all_folds": round(sum(train_seconds) / 60, 2),
        "rows_used": summary["n_rows_used"],
        "rows_skipped": summary["n_skipped"],
        "folds": summary["n_splits"],
        "roc_auc": metrics["roc_auc"]["mean"],
        "roc_auc_std": metrics["roc_auc"]["std"],
        "pooled_onehot_auc": metrics["pooled_onehot_auc"]["mean"],
        "roc_auc_recomputed_sklearn": float(recomputed[:, 0].mean()),
        "pooled_onehot_auc_recomputed_sklearn": float(recomputed[:, 1].mean()),
        "recomputed_matches": bool(
            np.isclose(recomputed[:, 0].mean(), metrics["roc_auc"]["mean"], atol=1e-6)
            and np.isclose(recomputed[:, 1].mean(), metrics["pooled_onehot_auc"]["mean"], atol=1e-6)
        ),
        "per_task_roc_auc": {name: entry["roc_auc"]["mean"] for name, entry in metrics["per_task"].items()},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
    }
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(RESULTS / "elembert_tox21.json", result)
    markdown = render_markdown(result)
    atomic_write_text(RESULTS / "elembert_tox21.md", markdown)
    print(markdown)


def render_markdown(r: dict) -> str:
    return "\n".join([
        f"`{r['command']}` (V1 tokens, scaffold split, defaults), {r['machine']['cpu_count']} CPU cores, cold cache:",
        "",
        "| wall time | of which training | rows used / skipped | ROC-AUC (per task, mean ± std over folds) "
        "| pooled one-hot AUC | recomputed with scikit-learn |",
        "|---|---|---|---|---|---|",
        f"| {r['wall_minutes']:.1f} min (goal < {r['goal_minutes']}) | {r['train_minutes_all_folds']:.1f} min "
        f"| {r['rows_used']} / {r['rows_skipped']} | {r['roc_auc']:.3f} ± {r['roc_auc_std']:.3f} | {r['pooled_onehot_auc']:.3f} "
        f"| {r['roc_auc_recomputed_sklearn']:.3f} / {r['pooled_onehot_auc_recomputed_sklearn']:.3f} "
        f"({'matches' if r['recomputed_matches'] else 'DIFFERS'}) |",
        "",
    ])


if __name__ == "__main__":
    main()
