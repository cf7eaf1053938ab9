"""Sum against attention-based pooling (and mean) for SchNet and DimeNet++, the question of the
attention-pooling paper (`papers/attention-pooling.md`): same splits, same budget, test MAE.

Rows: qm9_smoke (the first 500 QM9 molecules, DFT geometries, U0), qm7 (RDKit geometries, u0_atom, which
the offline file holds z-scored), qm8 (RDKit geometries; all 12 targets trained together, E1-CC2,
E2-CC2 and f1-CC2 reported) and qm9_gap (the first `--qm9-rows` molecules of the QM9 gap file, RDKit
geometries). Protocol of spec C.5 on a CPU budget: R random 80/10/10 splits (`--replicates`, the same
splits for every pooling), L1 on standardised targets, Adam, early stopping on validation; the model
sizes of `SIZES` (smaller than the paper's, named in the tag), ABP with the repo's structure (2 SABs,
32 seeds for SchNet with ReLU, 1 seed for DimeNet++ with swish) at `--abp-hidden`/`--abp-heads`.

Beside each row: the paper's sum and ABP MAE for the same target where its Table 1 has one, and its
relative improvement of ABP over sum; ours as (sum − abp) / sum.

Run: `KCHEM_DATA_DIR=../shared/data .venv/bin/python bench/abp_pooling.py [--only qm9_smoke qm7 qm8 qm9_gap]
[--models schnet dimenet] [--poolings sum abp mean] [--replicates 1] [--epochs 30] [--patience 10]
[--learning-rate 5e-4] [--qm9-rows 20000] [--backend tensorflow]`. Runs go to bench/runs/ (a finished run is
collected, not retrained); results to bench/results/abp_pooling.{json,md}, rows of other budgets kept.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
RUNS = HERE / "runs"

# name → (dataset, targets reported, neighbour slots: at least the largest molecule's atoms − 1)
TASKS = {
    "qm9_smoke": ("qm9_first500_u0", ["energy_U0"], 24),
    "qm7": ("qm7", ["u0_atom"], 24),
    "qm8": ("qm8", ["E1-CC2", "E2-CC2", "f1-CC2"], 32),
    "qm9_gap": ("qm9_hlg", ["band_gap"], 32),
}
SIZES = {  # CPU budget sizes (paper: SchNet 128/128/6, DimeNet++ 128, 4 blocks)
    "schnet": {"hidden": 64, "filters": 64, "interactions": 3},
    "dimenet": {"hidden": 64, "blocks": 2, "int_emb": 32, "basis_emb": 8, "out_emb": 128, "node_latent": 32},
}
# Table 1 of the paper: (SchNet sum, SchNet ABP, DimeNet++ sum, DimeNet++ ABP) for the same target where it has one
PAPER = {
    "E1-CC2": (2.961, 2.486, 2.356, 2.268), "E2-CC2": (4.775, 3.924, 3.866, 3.859), "f1-CC2": (10.116, 8.514, 7.787, 7.773),
}
# where the paper has no row for our target, its closest task and gain: QM9 HOMO (our QM9 file holds the gap) from Table 1,
# 35.985 → 29.577 and 23.711 → 21.577 meV; QM7b atomization energy (PBE0) as its text states it (23.98 % and 58.41 %,
# which the text computes as (sum − ABP) / ABP, e.g. its 21.67 % for QM9 HOMO is 17.81 % here)
PAPER_CLOSEST = {"u0_atom": ("QM7b atomization energy (PBE0), its text", 23.98, 58.41),
                 "band_gap": ("QM9 HOMO", 17.81, 9.00), "energy_U0": ("QM9 HOMO", 17.81, 9.00)}


def tag(args, model: str) -> str:
    size = "-".join(f"{k}{v}" for k, v in SIZES[model].items())
    return f"{size}-abp{args.abp_hidden}x{args.abp_heads}-e{args.epochs}-p{args.patience}-r{args.replicates}-lr{args.learning_rate:g}"


def train(task: str, model: str, pooling: str, args) -> dict:
    dataset, _, slots = TASKS[task]
    limit = args.qm9_rows if task == "qm9_gap" else None
    out = RUNS / f"{model}-{dataset}{f'-n{limit}' if limit else ''}-{pooling}-{tag(args, model)}"
    if not (out / "summary.json").exists():
        sizes = [item for key, value in SIZES[model].items() for item in (f"--{key.replace('_', '-')}", str(value))]
        command = [sys.executable, "-m", "keras_chem.cli", "--backend", args.backend, "train", model, "--dataset", dataset,
                   "--split", "random", "--replicates", str(args.replicates), "--epochs", str(args.epochs), "--patience",
                   str(args.patience), "--learning-rate", str(args.learning_rate), "--seed", "0", "--pooling", pooling,
                   "--max-neighbors", str(slots), "--abp-hidden", str(args.abp_hidden), "--abp-heads", str(args.abp_heads),
                   *sizes, *(["--limit", str(limit)] if limit else []), "--out", str(out)]
        print("$ " + " ".join(command[3:]), flush=True)
        subprocess.run(command, check=True, env={**os.environ, "KCHEM_PROGRESS": "0", "TF_CPP_MIN_LOG_LEVEL": "3"}, cwd=HERE.parent)
    summary = json.loads((out / "summary.json").read_text())
    per_task = summary["metrics"]["per_task"]
    return {"task": task, "model": model, "pooling": pooling, "dataset": dataset, "budget": tag(args, model), "n_rows": summary["n_rows_used"],
            "n_skipped": summary["n_skipped"], "geometry": summary.get("geometry"), "run": out.name,
            "epochs_trained": summary["metrics"]["epochs_trained"]["mean"],
            "mae": {t: {"mean": per_task[t]["mae"]["mean"], "std": per_task[t]["mae"].get("std"), "values": per_task[t]["mae"]["values"]}
                    for t in TASKS[task][1]}}


def _cell(entry) -> str:
    if entry is None:
        return "–"
    spread = entry.get("std")
    return f"{entry['mean']:.4g}" + (f" ± {spread:.2g}" if spread is not None and math.isfinite(spread) else "")


def _paper(target: str, model: str) -> tuple[str, str]:
    if target in PAPER:
        s, a = PAPER[target][:2] if model == "schnet" else PAPER[target][2:]
        return f"{s} → {a}", f"{(s - a) / s * 100:+.1f} %"
    if target in PAPER_CLOSEST:
        name, schnet, dimenet = PAPER_CLOSEST[target]
        return f"({name})", f"+{schnet if model == 'schnet' else dimenet:.1f} %"
    return "–", "–"


def write(rows: list[dict], args) -> None:
    from keras_chem.io import atomic_write_json, atomic_write_text

    path = RESULTS / "abp_pooling.json"
    previous = json.loads(path.read_text())["results"] if path.exists() else []
    key = lambda r: (r["task"], r["model"], r["pooling"], r["budget"])  # noqa: E731
    everything = [r for r in previous if key(r) not in {key(n) for n in rows}] + rows
    atomic_write_json(path, {"meta": {"cpus": os.cpu_count(), "backend": args.backend, "sizes": SIZES}, "results": everything})
    lines = ["# Sum vs attention-based pooling (ABP): SchNet and DimeNet++", "",
             f"`bench/abp_pooling.py` on {os.cpu_count()} CPU(s), {args.backend}. Test MAE in the target's units (mean ± std over "
             "the random 80/10/10 splits run, r in the budget), the same splits for every pooling. Budget: model sizes, ABP hidden × "
             "heads, e max epochs, p patience, r splits, lr. Gain = (sum − ABP) / sum. Paper: its Table 1 sum → ABP MAE for the same "
             "target (meV-scaled units), or its closest task in parentheses, and its gain.", "",
             "| data | target | model | budget | rows | sum | mean | ABP | gain | paper | paper gain |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for task, (dataset, targets, _) in TASKS.items():
        for model in ("schnet", "dimenet"):
            for budget in sorted({r["budget"] for r in everything if r["task"] == task and r["model"] == model}):
                runs = {r["pooling"]: r for r in everything if (r["task"], r["model"], r["budget"]) == (task, model, budget)}
                n_rows = next(iter(runs.values()))["n_rows"]
                for target in targets:
                    cells = {p: runs[p]["mae"][target] if p in runs else None for p in ("sum", "mean", "abp")}
                    gain = "–"
                    if cells["sum"] and cells["abp"]:
                        gain = f"{(cells['sum']['mean'] - cells['abp']['mean']) / cells['sum']['mean'] * 100:+.1f} %"
                    paper, paper_gain = _paper(target, model)
                    lines.append(f"| {dataset} | {target} | {model} | {budget} | {n_rows} | {_cell(cells['sum'])} | {_cell(cells['mean'])} | "
                                 f"{_cell(cells['abp'])} | {gain} | {paper} | {paper_gain} |")
    atomic_write_text(RESULTS / "abp_pooling.md", "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(TASKS), default=list(TASKS))
    parser.add_argument("--models", nargs="+", choices=list(SIZES), default=list(SIZES))
    parser.add_argument("--poolings", nargs="+", choices=["sum", "abp", "mean", "max"], default=["sum", "abp"])
    parser.add_argument("--replicates", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--abp-hidden", type=int, default=128)
    parser.add_argument("--abp-heads", type=int, default=8)
    parser.add_argument("--qm9-rows", type=int, default=20000)
    parser.add_argument("--backend", default="tensorflow", help="tensorflow trains these padded geometry models 2-4x faster on CPU (bench/geometry_speed.py)")
    args = parser.parse_args()
    rows = []
    for task in args.only:
        for model in args.models:
            for pooling in args.poolings:
                rows.append(train(task, model, pooling, args))
                print({k: rows[-1][k] for k in ("task", "model", "pooling", "mae")}, flush=True)
                write(rows, args)
    print((RESULTS / "abp_pooling.md").read_text())


if __name__ == "__main__":
    main()
