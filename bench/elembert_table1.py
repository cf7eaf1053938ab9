"""The elEmBERT paper's Table 1 protocol with honest metrics, on a CPU budget.

For every dataset and token set (V0 elements, V1 sub-elements) and split (random, scaffold for
molecules; stratified for crystals), one `kchem train elembert` run; the table reports the
per-task positive-class ROC-AUC (mean ± std over folds), the pooled one-hot AUC the original
notebooks reported, and the paper's number. Runs resume, so the script can be stopped and rerun.

Run: `.venv/bin/python bench/elembert_table1.py [--folds 3 --epochs 20 --limit 2000]`;
`--collect` only tabulates the runs that have finished.
Writes bench/results/elembert_table1.json and .md; run directories under bench/runs/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

# (dataset, token sets, splits). Matbench metallicity sets hold compositions only: V0 only.
PROTOCOL = [
    ("tox21", ("v0", "v1"), ("random", "scaffold")),
    ("bbbp", ("v0", "v1"), ("random", "scaffold")),
    ("bace", ("v0", "v1"), ("random", "scaffold")),
    ("clintox", ("v0", "v1"), ("random", "scaffold")),
    ("sider", ("v0", "v1"), ("random", "scaffold")),
    ("matbench_expt_is_metal", ("v0",), ("random",)),
    ("matbench_mp_is_metal", ("v0",), ("random",)),
    ("cegann_dimensionality", ("v0", "v1"), ("stratified",)),
    ("cegann_spacegroup", ("v0", "v1"), ("stratified",)),
    ("hiv", ("v0", "v1"), ("random", "scaffold")),
]

_TOX21_V0 = [0.955, 0.987, 0.980, 0.983, 0.978, 0.932, 0.988, 0.913, 0.985, 0.974, 0.938, 0.972]
_TOX21_V1 = [0.961, 0.989, 0.979, 0.982, 0.978, 0.935, 0.986, 0.913, 0.983, 0.974, 0.946, 0.973]
_SIDER_V0 = [0.684, 0.709, 0.985, 0.676, 0.847, 0.738, 0.945, 0.839, 0.739, 0.775, 0.908, 0.819, 0.853, 0.809,
             0.723, 0.926, 0.822, 0.724, 0.724, 0.759, 0.764, 0.700, 0.927, 0.598, 0.747, 0.925, 0.698]
_SIDER_V1 = [0.663, 0.707, 0.983, 0.689, 0.838, 0.744, 0.941, 0.832, 0.724, 0.760, 0.892, 0.816, 0.849, 0.782,
             0.737, 0.917, 0.833, 0.736, 0.736, 0.772, 0.726, 0.708, 0.923, 0.599, 0.742, 0.916, 0.684]
# The paper's (pooled one-hot) numbers: Tables 2 and 5 (means over tasks), Table 4 (k-means V1), text.
PAPER = {
    ("tox21", "v0"): (round(float(np.mean(_TOX21_V0)), 3), "Table 2 mean"),
    ("tox21", "v1"): (round(float(np.mean(_TOX21_V1)), 3), "Table 2 mean"),
    ("sider", "v0"): (round(float(np.mean(_SIDER_V0)), 3), "Table 5 mean"),
    ("sider", "v1"): (round(float(np.mean(_SIDER_V1)), 3), "Table 5 mean"),
    ("bace", "v1"): (0.871, "Table 4 Km"),
    ("bbbp", "v1"): (0.887, "Table 4 Km"),
    ("clintox", "v1"): (0.973, "Table 4 Km"),
    ("hiv", "v1"): (0.978, "Table 4 Km"),
    ("matbench_mp_is_metal", "v0"): (0.965, "§3.1 (V1 on structures)"),
    ("cegann_dimensionality", "v1"): (0.958, "§3.2 text"),
    ("cegann_spacegroup", "v1"): (0.968, "§3.2 text"),
}


def run_dir(dataset: str, tokens: str, split: str) -> Path:
    return HERE / "runs" / f"{dataset}-{tokens}-{split}"


def run_one(dataset: str, tokens: str, split: str, args) -> dict:
    out = run_dir(dataset, tokens, split)
    command = [
        sys.executable, "-m", "keras_chem.cli", "train", "elembert", "--dataset", dataset, "--tokens", tokens,
        "--split", split, "--folds", str(args.folds), "--epochs", str(args.epochs), "--patience", str(args.patience),
        "--seed", "0", "--no-distances", "--no-descriptors", "--no-atom-features", "--no-bonds", "--init", "none", "--out", str(out),  # the paper's model, from scratch
    ]
    if args.limit:
        command += ["--limit", str(args.limit)]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "KCHEM_PROGRESS": "0"})
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        return {"dataset": dataset, "tokens": tokens, "split": split, "error": result.stderr.strip().splitlines()[-1:]}
    return {**collect_one(dataset, tokens, split), "seconds": round(seconds, 1)}


def collect_one(dataset: str, tokens: str, split: str) -> dict:
    """The table row of a finished run directory."""
    out = run_dir(dataset, tokens, split)
    summary = json.loads((out / "summary.json").read_text())
    metrics = summary["metrics"]
    return {
        "dataset": dataset, "tokens": tokens, "split": split, "rows": summary["n_rows_used"],
        "skipped": summary["n_skipped"], "folds": summary["n_splits"],
        "roc_auc": metrics["roc_auc"]["mean"], "roc_auc_std": metrics["roc_auc"]["std"],
        "pooled_onehot_auc": metrics["pooled_onehot_auc"]["mean"],
        "run_dir": str(out.relative_to(HERE.parent)),
    }


def markdown(rows: list[dict], args) -> str:
    lines = [
        f"Budget: {args.folds}-fold CV, at most {args.epochs} epochs (early stopping, patience {args.patience}), "
        f"first {args.limit or 'all'} rows of each dataset, seed 0, paper-size model (embed 32, 2 heads, 2 layers).",
        "",
        "| dataset | tokens | split | rows | ROC-AUC (honest) | pooled one-hot AUC | paper (pooled) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        paper = PAPER.get((r["dataset"], r["tokens"]))
        paper_text = f"{paper[0]:.3f} ({paper[1]})" if paper else "—"
        if "error" in r:
            lines.append(f"| {r['dataset']} | {r['tokens']} | {r['split']} | — | failed: {' '.join(r['error'])} | — | {paper_text} |")
            continue
        lines.append(
            f"| {r['dataset']} | {r['tokens']} | {r['split']} | {r['rows']} | {r['roc_auc']:.3f} ± {r['roc_auc_std']:.3f} "
            f"| {r['pooled_onehot_auc']:.3f} | {paper_text} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--only", nargs="*", help="dataset names to run (default: all)")
    parser.add_argument("--collect", action="store_true", help="only tabulate the runs already finished")
    args = parser.parse_args()

    from keras_chem.io import atomic_write_json, atomic_write_text

    rows = []
    for dataset, token_sets, splits in PROTOCOL:
        if args.only and dataset not in args.only:
            continue
        for tokens in token_sets:
            for split in splits:
                if args.collect:
                    if not (run_dir(dataset, tokens, split) / "summary.json").exists():
                        continue
                    rows.append(collect_one(dataset, tokens, split))
                else:
                    rows.append(run_one(dataset, tokens, split, args))
                print(json.dumps(rows[-1]), flush=True)
                RESULTS.mkdir(exist_ok=True)
                atomic_write_json(RESULTS / "elembert_table1.json", {"budget": vars(args), "rows": rows})
                atomic_write_text(RESULTS / "elembert_table1.md", markdown(rows, args))


if __name__ == "__main__":
    main()
