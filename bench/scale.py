"""How keras-chem grows with the dataset: featurization and training epochs at 10 %, 30 % and 100 % of
matbench_mp_e_form (132k formulas, elEmBERT V0 tokens) and of HIV (41k molecules, V1 sub-element
tokens from RDKit conformers).

Each point runs in fresh processes. Featurization: from a cold cache, through the runner's own
streamed feature store (`training/features.py`), timed inside the process (rows/s) while this
script samples the RSS of the whole process tree (conformer pool included) every 0.1 s. Training:
`kchem train elembert --split random --replicates 1 --epochs 2` (one 80/10/10 split) on the cached features; the seconds of the
second epoch (the first compiles every batch shape) from the fold's history, the fold worker's
peak RSS, and the peak RSS of the command's process tree.

Run: `.venv/bin/python bench/scale.py [--only mp_e_form|hiv] [--fractions 0.1 0.3 1.0] [--backend jax]`.
Writes bench/results/scale.json and .md after every point; a rerun skips the points already measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CASES = {
    "mp_e_form": {"dataset": "matbench_mp_e_form", "tokens": "v0", "rows": 132752},
    "hiv": {"dataset": "hiv", "tokens": "v1", "rows": 41127},
}
RSS_GOAL_GB = 4.0

FEATURIZE = """
import json, sys, time
import numpy as np
from keras_chem.data.loaders import load_dataset
from keras_chem.training.batching import bucket_sizes, row_sizes
from keras_chem.models.registry import get_model_family
from keras_chem.training.config import resolve
from keras_chem.training.features import featurize_dataset
dataset, tokens, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
config = resolve("elembert", {}, {"dataset": dataset, "tokens": tokens, "limit": limit, "replicates": 1})
started = time.perf_counter()
data = load_dataset(dataset, limit=limit)
loaded = time.perf_counter()
store, preprocessor = featurize_dataset(get_model_family("elembert"), config.model_config, data)
done = time.perf_counter()
sizes = row_sizes(store.arrays, np.arange(len(store.kept)), preprocessor)
ladder = bucket_sizes(store.meta["cap"])
print(json.dumps({"rows": len(data), "featurized": int(len(store.kept)), "load_seconds": loaded - started,
                  "featurize_seconds": done - loaded, "cap": store.meta["cap"], "mean_row_size": float(sizes.mean()),
                  "mean_bucket_size": float(ladder[np.searchsorted(ladder, sizes)].mean())}))
"""


def _tree(pid: int) -> list[int]:
    pids, stack = [], [pid]
    while stack:
        current = stack.pop()
        pids.append(current)
        try:
            stack += [int(c) for c in open(f"/proc/{current}/task/{current}/children").read().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return pids


def _tree_rss_mb(pid: int) -> float:
    total = 0
    for member in _tree(pid):
        try:
            for line in open(f"/proc/{member}/status"):
                if line.startswith("VmRSS"):
                    total += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / 1024


def run_sampled(command: list[str], env: dict) -> tuple[str, float, float]:
    """(stdout, wall seconds, peak RSS of the process tree in MB)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0.0
    while process.poll() is None:
        peak = max(peak, _tree_rss_mb(process.pid))
        time.sleep(0.1)
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:6])} failed:\n{stderr[-3000:]}")
    return stdout, time.perf_counter() - started, peak


def measure(case: str, fraction: float, backend: str, runs: Path) -> dict:
    spec = CASES[case]
    limit = int(round(spec["rows"] * fraction))
    cache = Path(tempfile.mkdtemp(prefix=f"kchem-scale-{case}-"))
    env = {**os.environ, "KCHEM_CACHE_DIR": str(cache), "KERAS_BACKEND": backend, "KCHEM_PROGRESS": "0"}
    stdout, _, featurize_peak = run_sampled([sys.executable, "-c", FEATURIZE, spec["dataset"], spec["tokens"], str(limit)], env)
    featurized = json.loads(stdout.strip().splitlines()[-1])
    out = runs / f"scale-{case}-{limit}"
    command = [sys.executable, "-m", "keras_chem.cli", "train", "elembert", "--dataset", spec["dataset"], "--tokens", spec["tokens"],
               "--limit", str(limit), "--split", "random", "--replicates", "1", "--epochs", "2", "--patience", "5", "--out", str(out)]
    _, train_wall, train_peak = run_sampled(command, env)
    history = json.loads((out / "fold_0" / "history.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    return {
        "case": case, "dataset": spec["dataset"], "tokens": spec["tokens"], "fraction": fraction, "rows": featurized["rows"],
        "featurized_rows": featurized["featurized"], "cap": featurized["cap"],
        "mean_row_size": round(featurized["mean_row_size"], 2), "mean_bucket_size": round(featurized["mean_bucket_size"], 2),
        "load_seconds": round(featurized["load_seconds"], 2), "featurize_seconds": round(featurized["featurize_seconds"], 2),
        "featurize_rows_per_second": round(featurized["rows"] / featurized["featurize_seconds"], 1),
        "featurize_peak_rss_mb": round(featurize_peak, 1),
        "epoch_seconds": history["epoch_seconds"], "second_epoch_seconds": history["epoch_seconds"][-1],
        "train_rows": summary["metrics"]["n_train"]["mean"],
        "worker_peak_rss_mb": history["resources"]["peak_rss_mb"], "train_command_peak_rss_mb": round(train_peak, 1),
        "train_command_seconds": round(train_wall, 1), "backend": backend,
    }


def write_results(results: list[dict]) -> None:
    from keras_chem.io import atomic_write_json, atomic_write_text

    meta = {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version()}
    atomic_write_json(RESULTS / "scale.json", {"meta": meta, "rss_goal_gb": RSS_GOAL_GB, "results": results})
    lines = [
        "# Scale: featurization and training epochs at 10 / 30 / 100 % of the rows",
        "",
        f"`bench/scale.py` on {meta['cpus']} CPU(s). Featurization from a cold cache (V1: RDKit conformers included); "
        "peak RSS of the process tree. Epoch: the second of two (the first compiles), training rows only; "
        "RSS of the fold worker.",
        "",
        "The rows are the file's first N (`--limit`); where later rows are larger, a row costs more: the mean row "
        "size (atoms) and the mean size of the bucket a row is padded to say how much, and µs per bucket slot "
        "(a row's padded length) is the cost with that taken out.",
        "",
        "| dataset | tokens | rows | featurize rows/s | featurize peak RSS (MB) | mean row / bucket size | train rows | s / epoch "
        "| µs / row | µs / bucket slot | worker peak RSS (MB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        per_row = 1e6 * r["second_epoch_seconds"] / max(1, r["train_rows"])
        bucket = r.get("mean_bucket_size")
        sizes = f"{r['mean_row_size']:.1f} / {bucket:.1f}" if bucket else "–"
        per_slot = f"{per_row / bucket:.1f}" if bucket else "–"
        lines.append(
            f"| {r['dataset']} | {r['tokens']} | {r['rows']} | {r['featurize_rows_per_second']:.1f} | {r['featurize_peak_rss_mb']:.0f} | "
            f"{sizes} | {r['train_rows']:.0f} | {r['second_epoch_seconds']:.1f} | {per_row:.0f} | {per_slot} | {r['worker_peak_rss_mb']:.0f} |"
        )
    atomic_write_text(RESULTS / "scale.md", "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(CASES), action="append")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.3, 1.0])
    parser.add_argument("--backend", default=os.environ.get("KERAS_BACKEND", "jax"))
    parser.add_argument("--runs", type=Path, default=HERE / "runs")
    args = parser.parse_args()
    previous = json.loads((RESULTS / "scale.json").read_text())["results"] if (RESULTS / "scale.json").exists() else []
    results = list(previous)
    for case in args.only or list(CASES):
        for fraction in args.fractions:
            if any(r["case"] == case and r["fraction"] == fraction and r["backend"] == args.backend for r in previous):
                continue
            print(f"{case} at {fraction:.0%} ...", flush=True)
            result = measure(case, fraction, args.backend, args.runs)
            print(json.dumps(result), flush=True)
            results.append(result)
            results.sort(key=lambda r: (r["case"], r["fraction"]))
            write_results(results)


if __name__ == "__main__":
    main()
