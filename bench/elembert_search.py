"""elEmBERT hyperparameters chosen on validation rows only: each candidate trains on one split and is ranked
by its best validation loss (binary cross-entropy, early-stopping's own criterion); test rows play no part.

The split is the one `bench/vs_chemprop.py` makes for the dataset (random, seed 0) so that the choice is made on
that split's training and validation rows; the test columns of the runs are not read. The budget is the grid
below (or `--candidates`), one training each, on this CPU; the table reports each candidate's validation loss,
epochs and wall time, and the chosen one.

Run: `KCHEM_DATA_DIR=../shared/data .venv/bin/python bench/elembert_search.py [--datasets tox21 ...]
[--candidates NAME=OPTIONS ...]`. Runs go beside that split's `bench/vs_chemprop.py` runs (a candidate named like
one of its variants, with the same options, is that run, not trained twice); results to
bench/results/elembert_search.{json,md}, merged with those of earlier invocations, with the chosen candidate per dataset.
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
from vs_chemprop import VARIANTS, backend_of, train_elembert, variant  # noqa: E402

RESULTS = HERE / "results"
GRID = [
    ("paper", "--no-distances --no-descriptors --no-atom-features --no-bonds --init none"),
    ("tokens-pretrained", "--no-distances --no-descriptors --no-atom-features --no-bonds --init pretrained"),
    ("scratch", "--no-descriptors --no-atom-features --no-bonds --init none"),
    ("scratch-64d", "--no-descriptors --no-atom-features --no-bonds --init none --embed-dim 64 --heads 4 --layers 4 --ff-dim 128"),
    ("pretrained", "--no-descriptors --no-atom-features --no-bonds --init pretrained"),
    ("pretrained-patience20", "--no-descriptors --no-atom-features --no-bonds --init pretrained --patience 20"),
    ("scratch-descriptors-dropout0.1", "--no-atom-features --no-bonds --init none --descriptor-dropout 0.1"),
    ("pretrained-descriptors-dropout0.1", "--no-atom-features --no-bonds --init pretrained --descriptor-dropout 0.1"),
    ("scratch-descriptors", "--no-atom-features --no-bonds --init none"),
    ("pretrained-descriptors", "--no-atom-features --no-bonds --init pretrained"),
    ("scratch-descriptors-seed1", "--no-atom-features --no-bonds --init none --seed 1"),
    ("scratch-descriptors-atoms", "--no-bonds --init none"),
    ("scratch-descriptors-atoms-seed1", "--no-bonds --init none --seed 1"),
    ("pretrained-descriptors-atoms", "--no-bonds --init pretrained"),
    ("pretrained-descriptors-atoms-bonds", "--init pretrained"),
]


def search(dataset: str, candidates: list[tuple[str, str]], args) -> list[dict]:
    base = VS_CHEMPROP_RUNS / f"{dataset}-random-s0"
    splits_file = base / f"elembert-{VARIANTS[0][0]}" / "splits.json"
    if not splits_file.exists():
        sys.exit(f"{splits_file} not found: run bench/vs_chemprop.py --datasets {dataset} --splits random --seeds 0 first")
    results = []
    for name, options in candidates:
        out = base / f"elembert-{name}"
        seconds = train_elembert(out, dataset, "random", 0, options, splits_file, args)
        metrics = json.loads((out / "fold_0" / "metrics.json").read_text())
        results.append({"dataset": dataset, "candidate": name, "options": options, "best_val_loss": metrics["best_val_loss"],
                        "best_epoch": metrics["best_epoch"], "epochs_trained": metrics["epochs_trained"], "seconds": seconds,
                        "backend": backend_of(out)})
    return results


def write(results: list[dict]) -> str:
    """Merged with the results of earlier invocations (a dataset searched again replaces its candidates of the same name)."""
    from keras_chem.io import atomic_write_json, atomic_write_text

    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "elembert_search.json"
    new = {(r["dataset"], r["candidate"]) for r in results}
    kept = [r for r in json.loads(path.read_text()).get("results", []) if (r.get("dataset"), r["candidate"]) not in new] if path.exists() else []
    results = kept + results
    datasets = list(dict.fromkeys(r["dataset"] for r in results))
    chosen = {d: min((r for r in results if r["dataset"] == d), key=lambda r: r["best_val_loss"])["candidate"] for d in datasets}
    atomic_write_json(path, {"meta": {"split": "random seed-0 split of bench/vs_chemprop.py", "cpus": os.cpu_count()},
                             "chosen": chosen, "results": results})
    lines = [f"`bench/elembert_search.py` (each dataset's random seed-0 split of `bench/vs_chemprop.py`), {os.cpu_count()} CPU(s): "
             "candidates ranked by best validation loss; test rows not used.", "",
             "A backend of — marks a run made before the scripts recorded it (and before `--atom-features` existed: none has atom features). "
             "Every run but the `-bonds` candidate and the optimizer candidates (`lr3e-4`, `adamw0.05`, `cosine50`) was made before `--bonds` "
             "existed and trained without bonds (`--no-bonds` repeats it today).",
             "", "| dataset | candidate | options | backend | best val loss | best epoch | epochs | seconds |", "|---|---|---|---|---|---|---|---|"]
    for dataset in datasets:
        for r in sorted((r for r in results if r["dataset"] == dataset), key=lambda r: r["best_val_loss"]):
            mark = " (chosen)" if r["candidate"] == chosen[dataset] else ""
            lines.append(f"| {dataset} | {r['candidate']}{mark} | `{r['options']}` | {r.get('backend', '—')} | {r['best_val_loss']:.4f} | {r['best_epoch']} | "
                         f"{r['epochs_trained']} | {r['seconds']:.0f} |")
    atomic_write_text(RESULTS / "elembert_search.md", "\n".join(lines) + "\n")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["tox21"])
    parser.add_argument("--candidates", nargs="+", type=variant, default=GRID, help="NAME=OPTIONS for `kchem train elembert`")
    args = parser.parse_args()
    args.limit = None
    results = [r for dataset in args.datasets for r in search(dataset, args.candidates, args)]
    print(write(results))


if __name__ == "__main__":
    main()
