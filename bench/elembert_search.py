"""elEmBERT hyperparameters chosen on validation rows only: each candidate trains on one split and is ranked
by its best validation loss (binary cross-entropy, early-stopping's own criterion); test rows play no part.

The split is the one `bench/vs_chemprop.py` makes for the dataset (random, seed 0) so that the choice is made on
that split's training and validation rows; the test columns of the runs are not read. The budget is the grid
below (or `--candidates`), one training each, on this CPU; the table reports each candidate's validation loss,
epochs and wall time, and the chosen one.

Run: `KCHEM_DATA_DIR=../shared/data .venv/bin/python bench/elembert_search.py [--dataset tox21]
[--candidates NAME=OPTIONS ...]`. Runs go beside that split's `bench/vs_chemprop.py` runs (a candidate named like
one of its variants, with the same options, is that run, not trained twice); results to
bench/results/elembert_search.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from vs_chemprop import RUNS as VS_CHEMPROP_RUNS  # noqa: E402
from vs_chemprop import VARIANTS, train_elembert, variant  # noqa: E402

RESULTS = HERE / "results"
GRID = [
    ("paper", "--no-distances --init none"),
    ("tokens-pretrained", "--no-distances --init pretrained"),
    ("scratch", "--init none"),
    ("scratch-64d", "--init none --embed-dim 64 --heads 4 --layers 4 --ff-dim 128"),
    ("pretrained", "--init pretrained"),
    ("pretrained-patience20", "--init pretrained --patience 20"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="tox21")
    parser.add_argument("--candidates", nargs="+", type=variant, default=GRID, help="NAME=OPTIONS for `kchem train elembert`")
    args = parser.parse_args()
    args.limit = None

    from keras_chem.io import atomic_write_json, atomic_write_text

    base = VS_CHEMPROP_RUNS / f"{args.dataset}-random-s0"
    splits_file = base / f"elembert-{VARIANTS[0][0]}" / "splits.json"
    if not splits_file.exists():
        sys.exit(f"{splits_file} not found: run bench/vs_chemprop.py --datasets {args.dataset} --splits random --seeds 0 first")
    results = []
    for name, options in args.candidates:
        out = base / f"elembert-{name}"
        seconds = train_elembert(out, args.dataset, "random", 0, options, splits_file, args)
        metrics = json.loads((out / "fold_0" / "metrics.json").read_text())
        results.append({"candidate": name, "options": options, "best_val_loss": metrics["best_val_loss"],
                        "best_epoch": metrics["best_epoch"], "epochs_trained": metrics["epochs_trained"], "seconds": seconds})
    chosen = min(results, key=lambda r: r["best_val_loss"])
    RESULTS.mkdir(exist_ok=True)
    atomic_write_json(RESULTS / "elembert_search.json", {"meta": {"dataset": args.dataset, "splits_file": os.path.relpath(splits_file, HERE.parent),
                                                                  "cpus": os.cpu_count()}, "chosen": chosen["candidate"], "results": results})
    lines = [f"`bench/elembert_search.py` on {args.dataset} (the random seed-0 split of `bench/vs_chemprop.py`), {os.cpu_count()} CPU(s): "
             "candidates ranked by best validation loss; test rows not used.", "",
             "| candidate | options | best val loss | best epoch | epochs | seconds |", "|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: r["best_val_loss"]):
        mark = " (chosen)" if r is chosen else ""
        lines.append(f"| {r['candidate']}{mark} | `{r['options']}` | {r['best_val_loss']:.4f} | {r['best_epoch']} | "
                     f"{r['epochs_trained']} | {r['seconds']:.0f} |")
    atomic_write_text(RESULTS / "elembert_search.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
