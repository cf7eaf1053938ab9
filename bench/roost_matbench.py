"""Roost on the Matbench composition tasks, from scratch and fine-tuned from Barlow Twins pretraining.

Protocol: the official Matbench v0.1 folds (`--split matbench`), test MAE (ROC-AUC for
expt_is_metal) mean ± sample std over the folds run; default Roost settings (spec B.2) unless the
budget flags say otherwise. Structure tasks (jdft2d, log_gvrh, log_kvrh, perovskites) take each
cell's composition; phonons and dielectric use their `_composition` cards, the same rows.

Pretrained rows (`ssl`, `fingerprint`, `multimodal`): one corpus, the compositions of every
composition and structure dataset in the data folder, each once, with every composition of the
benchmark tasks in `--exclude` left out (by default all the small tasks), so no test row is ever
seen; `kchem pretrain roost --strategy S`, then `kchem train roost --init`. `multimodal` regresses
the `kchem embed` vectors of a structure model on the compositions of the crystals it embedded. The
offline crystals are the two CEGANN files (every one a single element) and the phonons and
dielectric tasks, so by default the script trains CrysToGraph on cegann_spacegroup (its fold 0 of 5,
stratified), embeds all four with that fold's model, and pretrains once per fine-tuning task on the
compositions of those crystals less that task's own (`--exclude` is not used for multimodal: leaving
out every small task would leave about 60 single elements); `--structure-embeddings FILE.npz` takes
another `kchem embed` file instead (it must come from a model that never saw the tasks run).

Beside ours: the paper's Table 2 (5-fold Matbench MAEs: Roost, Roost-SSL, Roost-FL, Roost-MML).

Run: `KCHEM_DATA_DIR=../shared/data .venv/bin/python bench/roost_matbench.py [--only steels jdft2d ...]
[--variants scratch ssl fingerprint multimodal] [--structure-embeddings F.npz] [--structure-epochs 100] [--epochs 100] [--patience 20] [--folds-limit 5] [--pretrain-epochs 10] [--multimodal-epochs 100]
[--pretrain-limit N] [--limit N] [--backend jax] [--results DIR]`. Writes DIR/roost_matbench.{json,md} (DIR: bench/results);
runs go to bench/runs/; a finished run is collected, not retrained.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
RUNS = HERE / "runs"

TASKS = {  # short name → (dataset, metric)
    "steels": ("matbench_steels", "mae"),
    "jdft2d": ("matbench_jdft2d", "mae"),
    "phonons": ("matbench_phonons_composition", "mae"),
    "dielectric": ("matbench_dielectric_composition", "mae"),
    "expt_gap": ("matbench_expt_gap", "mae"),
    "expt_is_metal": ("matbench_expt_is_metal", "roc_auc"),
    "glass": ("matbench_glass", "roc_auc"),
    "log_gvrh": ("matbench_log_gvrh", "mae"),
    "log_kvrh": ("matbench_log_kvrh", "mae"),
    "perovskites": ("matbench_perovskites", "mae"),
    "mp_gap": ("matbench_mp_gap", "mae"),
    "mp_e_form": ("matbench_mp_e_form", "mae"),
}
SMALL_TASKS = ["steels", "jdft2d", "phonons", "dielectric", "expt_gap", "expt_is_metal", "glass"]
VARIANTS = ["scratch", "ssl", "fingerprint", "multimodal"]  # the order of the paper's columns
# pretrain-roost.md Table 2: (Roost, Roost-SSL, Roost-FL, Roost-MML) mean MAE over the 5 Matbench folds
PAPER = {
    "steels": (130, 111, 130, 126), "jdft2d": (44.64, 42.87, 42.65, 45.00), "phonons": (54.38, 46.05, 51.93, 53.33),
    "dielectric": (0.3252, 0.3122, 0.3167, 0.3221), "log_gvrh": (0.1034, 0.1006, 0.1046, 0.1032),
    "log_kvrh": (0.0797, 0.0777, 0.0776, 0.0782), "perovskites": (0.4025, 0.4050, 0.4043, 0.4013),
    "mp_gap": (0.2571, 0.2646, 0.2560, 0.2551), "mp_e_form": (0.0847, 0.0854, 0.0843, 0.0834),
}
CORPUS = ["roost_mp_non_metals", "roost_oqmd_test", "roost_expt_non_metals", "matbench_mp_e_form", "matbench_mp_gap",
          "matbench_mp_is_metal", "matbench_expt_gap", "matbench_expt_is_metal", "matbench_glass", "matbench_steels",
          "matbench_jdft2d", "matbench_phonons", "matbench_dielectric", "matbench_log_gvrh", "matbench_perovskites",
          "cegann_dimensionality", "cegann_spacegroup"]


def budget_tag(args) -> str:
    tag = f"e{args.epochs}-p{args.patience}-f{args.folds_limit}"
    return tag + (f"-n{args.limit}" if args.limit else "")


PRETRAINED = ["ssl", "fingerprint", "multimodal"]
STRUCTURE_FILES = {"cegann_dimensionality": "cegann_dimensionality/cegann_dimensionality.json.gz",  # every offline crystal
                   "cegann_spacegroup": "cegann_spacegroup/cegann_spacegroup.json.gz",
                   "matbench_phonons": "matbench_phonons/matbench_phonons.json.gz",
                   "matbench_dielectric": "matbench_dielectric/matbench_dielectric.json.gz"}


def pretrain_epochs(strategy: str, args) -> int:
    return args.multimodal_epochs if strategy == "multimodal" else args.pretrain_epochs


def pretrain_tag(strategy: str, args) -> str:
    """The pretraining budget (for multimodal, also the default structure model's) and any corpus exclusions
    other than the default in run names and rows, so a run never reuses a corpus that saw its test rows."""
    tag = f"e{pretrain_epochs(strategy, args)}"
    tag += f"-s{args.structure_epochs}" if strategy == "multimodal" and not args.structure_embeddings else ""
    tag += "" if sorted(args.exclude) == sorted(SMALL_TASKS) else "-x" + "+".join(sorted(args.exclude))
    return tag + (f"-n{args.pretrain_limit}" if args.pretrain_limit else "")


def pretrain_dir(strategy: str, args) -> Path:
    return args.runs / f"roost-{strategy}-corpus-{pretrain_tag(strategy, args)}"


def kchem(args, *command: str) -> None:
    full = [sys.executable, "-m", "keras_chem.cli", "--backend", args.backend, *command]
    print("$ " + " ".join(full[3:]), flush=True)
    subprocess.run(full, check=True, env={**os.environ, "KCHEM_PROGRESS": "0", "TF_CPP_MIN_LOG_LEVEL": "3"}, cwd=HERE.parent)


def structure_embeddings(args) -> Path:
    """`--structure-embeddings`, or CrysToGraph trained on cegann_spacegroup (fold 0) embedding every
    crystal of STRUCTURE_FILES, one .npz (ids, embeddings, reason, formula)."""
    import numpy as np

    if args.structure_embeddings:
        return args.structure_embeddings
    limit = ["--limit", str(args.pretrain_limit)] if args.pretrain_limit else []
    run = args.runs / (f"crystograph-cegann_spacegroup-e{args.structure_epochs}-fold0" + (f"-n{args.pretrain_limit}" if limit else ""))
    merged = args.runs / f"{run.name}-{'+'.join(STRUCTURE_FILES)}.npz"
    if merged.exists():
        return merged
    if not (run / "fold_0" / "metrics.json").exists():
        kchem(args, "train", "crystograph", "--dataset", "cegann_spacegroup", "--folds", "5", "--only-fold", "0",
              "--epochs", str(args.structure_epochs), "--seed", "0", "--out", str(run), *limit)
    parts = []
    for name, path in STRUCTURE_FILES.items():
        part = args.runs / f"{run.name}-{name}.npz"
        if not part.exists():
            kchem(args, "embed", str(run), "--input", str(Path(os.environ["KCHEM_DATA_DIR"]) / path), "--fold", "0", "--out", str(part))
        with np.load(part, allow_pickle=False) as saved:
            parts.append({key: saved[key] for key in saved.files})
    from keras_chem.io import atomic_save_npz

    atomic_save_npz(merged, **{key: np.concatenate([p[key] for p in parts]) for key in parts[0]})
    return merged


def pretrain(strategy: str, args) -> dict:
    out = pretrain_dir(strategy, args)
    started = time.perf_counter()
    if not (out / "pretrain_info.json").exists():
        excluded = [TASKS[t][0] for t in args.exclude]
        corpus = list(STRUCTURE_FILES) if strategy == "multimodal" else CORPUS
        command = ["pretrain", "roost", "--strategy", strategy, "--datasets", ",".join(corpus),
                   "--epochs", str(pretrain_epochs(strategy, args)),
                   "--exclude-dataset", ",".join(excluded), "--out", str(out)]
        command += ["--limit", str(args.pretrain_limit)] if args.pretrain_limit else []
        command += ["--structure-embeddings", str(structure_embeddings(args))] if strategy == "multimodal" else []
        kchem(args, *command)
    info = json.loads((out / "pretrain_info.json").read_text())
    keys = ("objective", "n_sequences", "n_featurized", "n_duplicates", "n_excluded", "excluded_datasets", "best_epoch", "val_loss")
    targets = info["config"].get("structure_embeddings")
    source = {"structure_embeddings": os.path.relpath(targets, HERE.parent)} if targets else {}
    return {**{k: info.get(k) for k in keys}, **source, "strategy": strategy,
            "wall_seconds_this_call": round(time.perf_counter() - started, 1)}


def train(task: str, variant: str, args) -> dict:
    dataset, metric = TASKS[task]
    budget = budget_tag(args) + (f"-pre{pretrain_tag(variant, args)}" if variant in PRETRAINED else "")
    out = args.runs / f"roost-{task}-{variant}-{budget}"
    started = time.perf_counter()
    if not (out / "summary.json").exists():
        command = ["train", "roost", "--dataset", dataset, "--split", "matbench", "--folds", str(args.folds_limit),
                   "--epochs", str(args.epochs), "--patience", str(args.patience), "--seed", "0", "--out", str(out)]
        command += ["--limit", str(args.limit)] if args.limit else []
        command += ["--init", str(pretrain_dir(variant, args))] if variant in PRETRAINED else []
        kchem(args, *command)
    summary = json.loads((out / "summary.json").read_text())
    folds = [json.loads(p.read_text()) for p in sorted(out.glob("fold_*/metrics.json"))]
    histories = [json.loads(p.read_text()) for p in sorted(out.glob("fold_*/history.json"))]
    return {
        "task": task, "dataset": dataset, "variant": variant, "budget": budget, "metric": metric,
        "mean": summary["metrics"][metric]["mean"], "std": summary["metrics"][metric]["std"],
        "per_fold": [f[metric] for f in folds], "best_epoch": [f["best_epoch"] for f in folds],
        "n_rows": summary["n_rows_used"], "n_skipped": summary["n_skipped"],
        "train_seconds": round(sum(h.get("train_seconds", 0.0) for h in histories), 1),
        "wall_seconds_this_call": round(time.perf_counter() - started, 1), "run_dir": os.path.relpath(out, HERE.parent),
    }


def write(rows: list[dict], pretrained: dict[str, dict], args) -> None:
    from keras_chem.io import atomic_write_json, atomic_write_text

    path = args.results / "roost_matbench.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    fresh = {(r["task"], r["variant"], r["budget"]) for r in rows}
    rows = [r for r in previous.get("results", []) if (r["task"], r["variant"], r["budget"]) not in fresh] + rows
    pretrained = {**previous.get("pretraining", {}), **pretrained}
    atomic_write_json(path, {"pretraining": pretrained, "results": rows})
    lines = [
        "# Roost on Matbench composition tasks (official folds)",
        "",
        "`bench/roost_matbench.py`. Ours: mean ± std over the folds run (MAE; ROC-AUC for the classification tasks). "
        "Paper: pretrain-roost.md Table 2 (5 folds).",
        "",
    ]
    for strategy, info in pretrained.items():
        lines += [f"Pretraining `{strategy}`: {info['n_sequences']} unique compositions ({info['n_featurized']} featurized, "
                  f"{info['n_duplicates']} repeated, {info['n_excluded']} of the benchmark tasks "
                  f"{', '.join(info.get('excluded_datasets') or [])} left out), best epoch {info['best_epoch']}"
                  + (f", targets `{info['structure_embeddings']}`" if info.get("structure_embeddings") else "") + ".", ""]
    lines += ["| task | variant | budget | ours | per fold | best epochs | paper Roost | paper same variant | train s |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (list(TASKS).index(r["task"]), r["variant"], r["budget"])):
        paper = PAPER.get(r["task"])
        std = f" ± {r['std']:.4g}" if r["std"] == r["std"] else ""
        lines.append(f"| {r['task']} | {r['variant']} | {r['budget']} | {r['mean']:.4g}{std} | "
                     f"{' / '.join(f'{v:.4g}' for v in r['per_fold'])} | {'/'.join(map(str, r['best_epoch']))} | "
                     f"{paper[0] if paper else '–'} | {paper[VARIANTS.index(r['variant'])] if paper else '–'} | "
                     f"{r['train_seconds']:.0f} |")
    lines += side_by_side(rows)
    atomic_write_text(args.results / "roost_matbench.md", "\n".join(lines) + "\n")


def side_by_side(rows: list[dict]) -> list[str]:
    """One line per task and fine-tuning budget, a column per variant (its pretraining budget in brackets)."""
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for r in rows:
        groups.setdefault((r["task"], r["budget"].split("-pre")[0]), {}).setdefault(r["variant"], []).append(r)
    lines = ["", "Side by side: mean ± std over the folds run (pretraining budget in brackets); paper: Roost / SSL / FL / MML.", "",
             "| task | budget | scratch | ssl | fingerprint | multimodal | paper |", "|---|---|---|---|---|---|---|"]
    for (task, budget), variants in sorted(groups.items(), key=lambda item: (list(TASKS).index(item[0][0]), item[0][1])):
        cells = []
        for variant in VARIANTS:
            found = sorted(variants.get(variant, []), key=lambda r: r["budget"])
            cells.append("<br>".join(f"{r['mean']:.4g}" + (f" ± {r['std']:.2g}" if r["std"] == r["std"] else "")
                                     + (f" ({r['budget'].split('-pre')[1]})" if "-pre" in r["budget"] else "") for r in found) or "–")
        paper = " / ".join(map(str, PAPER[task])) if task in PAPER else "–"
        lines.append(f"| {task} | {budget} | {' | '.join(cells)} | {paper} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=SMALL_TASKS, choices=list(TASKS))
    parser.add_argument("--variants", nargs="*", default=["scratch", "ssl"], choices=VARIANTS)
    parser.add_argument("--structure-embeddings", type=Path,
                        help="`kchem embed` vectors of a structure model, for multimodal (default: CrysToGraph on CEGANN)")
    parser.add_argument("--structure-epochs", type=int, default=100, help="epoch cap of the default structure model")
    parser.add_argument("--exclude", nargs="*", default=SMALL_TASKS, choices=list(TASKS),
                        help="tasks whose compositions the ssl / fingerprint corpus leaves out (fine-tune only on these when "
                             "pretrained); multimodal always leaves out just the task it fine-tunes")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--patience", type=int, default=20)
    parser.add_argument("--folds-limit", type=int, default=5)
    parser.add_argument("--limit", type=int, default=None, help="first N rows of each task (smoke runs)")
    parser.add_argument("--pretrain-epochs", type=int, default=10)
    parser.add_argument("--multimodal-epochs", type=int, default=100, help="epoch cap of multimodal pretraining (a small corpus)")
    parser.add_argument("--pretrain-limit", type=int, default=None, help="first N rows of each corpus dataset (smoke runs)")
    parser.add_argument("--backend", default="jax")
    parser.add_argument("--runs", type=Path, default=RUNS)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    shared = [v for v in args.variants if v in PRETRAINED and v != "multimodal"]
    if shared and not set(args.only) <= set(args.exclude):
        sys.exit(f"fine-tuning on {sorted(set(args.only) - set(args.exclude))}: their compositions are in the corpus; add them to --exclude")
    pretrained = {f"{strategy}-{pretrain_tag(strategy, args)}": pretrain(strategy, args) for strategy in shared}
    rows = []
    for task in args.only:
        for variant in args.variants:
            task_args = args
            if variant == "multimodal":  # one corpus per task, without that task's compositions
                task_args = argparse.Namespace(**{**vars(args), "exclude": [task]})
                pretrained[f"{variant}-{pretrain_tag(variant, task_args)}"] = pretrain(variant, task_args)
            rows.append(train(task, variant, task_args))
    write(rows, pretrained, args)
    print((args.results / "roost_matbench.md").read_text())


if __name__ == "__main__":
    main()
