"""elEmBERT against chemprop 2 (D-MPNN) on exactly the same rows and splits: honest per-task ROC-AUC and PR-AUC.

For every dataset, split kind and seed, keras-chem trains elEmBERT first (`kchem train elembert --split KIND
--replicates 1 --seed S`); its run directory holds the split it made (`splits.json`, data-file rows) and the rows
it could featurize (`rows.npz`). chemprop then trains on a CSV of exactly those rows with that split (its own
`--splits-file` format), once per `--chemprop EPOCHS[:PATIENCE][+FEATURIZER]` value (chemprop 2's defaults are 50 epochs and no
early stopping; 30 was chemprop 1's), keeping its best-validation-loss checkpoint, in an environment of its own
that this script creates (`bench/.chemprop-venv`: chemprop 2.x from PyPI, not a keras-chem dependency).
Every `--elembert NAME=OPTIONS` variant after the first replays the first's `splits.json`; with `--ensemble NAME:N`
that variant also trains with seeds S+1 ... S+N-1 on the same split, and the mean of the N models' probabilities is
scored too (a fold ensemble's gain over its single models, on rows none of them saw). A variant whose OPTIONS say
`--init {transfer}` fine-tunes the encoder of an elEmBERT trained first, on that split, on the labels of `--transfer`
(ToxCast's 617 assays by default) without the split's test molecules (`transfer_run`). All test predictions
are scored by one function, `keras_chem.metrics.classification.binary_metrics`: the mean over tasks of ROC-AUC
and PR-AUC, a task with one class among its labelled test rows left out (chemprop's own logged test ROC-AUC, also a
mean over tasks, agrees with it to 1e-7 on Tox21's twelve).

Run: `KCHEM_DATA_DIR=../shared/data .venv/bin/python bench/vs_chemprop.py [--datasets tox21 bbbp bace clintox
sider hiv] [--splits random scaffold] [--seeds 0 1 2] [--chemprop 50 100:10 50+v1_rdkit_2d_normalized] [--elembert NAME=OPTIONS ...]
[--ensemble pretrained:3] [--limit N]`. The default variants (`VARIANTS`): the paper's model (tokens only, random
initialisation), the same from its shipped pretrained encoder, distance-biased attention from scratch and from its
shipped encoder, that with RDKit descriptors beside the [CLS] embedding, and keras-chem's default (that, with
RDKit's atom features added to the token embeddings). `--chemprop` with no value runs no chemprop (its rows already in
the table stay). Each elEmBERT row records the Keras backend it trained on. Runs go to bench/runs/vs_chemprop/ (a
finished run is read, not retrained); results to bench/results/vs_chemprop.{json,md}, merged with those of earlier invocations (delete the json
to start a table afresh).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RUNS = HERE / "runs" / "vs_chemprop"
RESULTS = HERE / "results"
CHEMPROP_VENV = HERE / ".chemprop-venv"
CHEMPROP = "chemprop>=2.1,<3"
TORCH = "torch==2.13.0"  # the CPU build this machine keeps on disk; a bare `torch` would fetch a CUDA build
VARIANTS = [("paper", "--no-distances --no-descriptors --no-atom-features --no-bonds --init none"),
            ("tokens-pretrained", "--no-distances --no-descriptors --no-atom-features --no-bonds --init pretrained"),
            ("scratch", "--no-descriptors --no-atom-features --no-bonds --init none"),
            ("pretrained", "--no-descriptors --no-atom-features --no-bonds --init pretrained"),
            ("pretrained-descriptors", "--no-atom-features --no-bonds --init pretrained"),
            ("pretrained-descriptors-atoms", "--no-bonds --init pretrained"), ("pretrained-descriptors-atoms-bonds", "--init pretrained")]
TRANSFER = "{transfer}"  # in a variant's options: the run directory of `transfer_run` for that variant and split


def chemprop_bin() -> Path:
    binary = CHEMPROP_VENV / "bin" / "chemprop"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(CHEMPROP_VENV)], check=True)
        subprocess.run([str(CHEMPROP_VENV / "bin" / "pip"), "install", "--quiet", TORCH, CHEMPROP], check=True)
    return binary


def timed(command: list[str], log: Path) -> float:
    print("$ " + shlex.join(command), flush=True)
    started = time.perf_counter()
    with open(log, "w") as handle:
        subprocess.run(command, check=True, stdout=handle, stderr=subprocess.STDOUT, cwd=HERE.parent,
                       env={**os.environ, "KCHEM_PROGRESS": "0", "TF_CPP_MIN_LOG_LEVEL": "3"})
    return round(time.perf_counter() - started, 1)


def train_elembert(out: Path, dataset: str, split: str, seed: int, options: str, splits_file: Path | None, args) -> float:
    if (out / "summary.json").exists():
        return json.loads((out / "wall_seconds.json").read_text())["seconds"]
    where = ["--splits-file", str(splits_file)] if splits_file else ["--split", split, "--replicates", "1"]
    command = [sys.executable, "-m", "keras_chem.cli", "train", "elembert", "--dataset", dataset, *where, "--seed", str(seed),
               *(["--limit", str(args.limit)] if args.limit else []), *shlex.split(options), "--out", str(out)]
    out.mkdir(parents=True, exist_ok=True)
    seconds = timed(command, out.parent / f"{out.name}.log")
    (out / "wall_seconds.json").write_text(json.dumps({"seconds": seconds}))
    return seconds


def backend_of(out: Path) -> str:
    """The Keras backend a run trained on (its config.json)."""
    return json.loads((out / "config.json").read_text())["backend"]


def elembert_predictions(out: Path) -> tuple[list[int], np.ndarray, np.ndarray, list[str]]:
    """File rows, targets and predicted probabilities of the test rows of a one-split run."""
    with open(out / "fold_0" / "test_predictions.csv") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    tasks = [name[: -len("_pred")] for name in header if name.endswith("_pred")]
    values = np.array([[float(v) if v else math.nan for v in row[2:]] for row in rows])
    return [int(row[0]) for row in rows], values[:, : len(tasks)], values[:, len(tasks) : 2 * len(tasks)], tasks


def train_chemprop(out: Path, run: Path, tasks: list[str], epochs: int, patience: int | None,
                   featurizer: str | None = None) -> tuple[list[int], np.ndarray, float]:
    """chemprop on the rows, split and `tasks` of elEmBERT run `run` (with `featurizer`, its molecule features beside
    the D-MPNN's, e.g. v1_rdkit_2d_normalized); the test rows (data-file rows) and their probabilities."""
    with np.load(run / "rows.npz", allow_pickle=False) as saved:
        file_rows, targets = saved["file_rows"].tolist(), saved["targets"]
    split = json.loads((run / "splits.json").read_text())[0]
    position = {row: i for i, row in enumerate(file_rows)}
    predictions = out / "model_0" / "test_predictions.csv"
    if not predictions.exists():
        from keras_chem.data.loaders import load_dataset

        config = json.loads((run / "config.json").read_text())
        data = load_dataset(config["dataset"], limit=config.get("limit"))
        smiles = dict(zip(data.rows.tolist(), data.inputs))
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "data.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["smiles", *tasks])
            for row, values in zip(file_rows, targets):
                writer.writerow([smiles[row], *("" if math.isnan(v) else int(v) for v in values)])
        (out / "splits.json").write_text(json.dumps([{part: sorted(position[r] for r in split[part]) for part in ("train", "val", "test")}]))
        seconds = timed([str(chemprop_bin()), "train", "--data-path", str(out / "data.csv"), "-s", "smiles", "--target-columns", *tasks,
                         "--task-type", "classification", "--splits-file", str(out / "splits.json"), "--epochs", str(epochs),
                         *(["--patience", str(patience)] if patience else []),
                         *(["--molecule-featurizers", featurizer] if featurizer else []),
                         "--output-dir", str(out), "--num-workers", "0", "--accelerator", "cpu"], out.parent / f"{out.name}.log")
        (out / "wall_seconds.json").write_text(json.dumps({"seconds": seconds}))
    with open(out / "data.csv") as handle:
        written = [row[0] for row in csv.reader(handle)][1:]
    test_rows = sorted(split["test"], key=lambda r: position[r])
    with open(predictions) as handle:
        reader = csv.reader(handle)
        next(reader)
        predicted = list(reader)
    if [row[0] for row in predicted] != [written[position[r]] for r in test_rows]:
        raise RuntimeError(f"{predictions}: its rows are not the test rows of {out / 'splits.json'} in order")
    probabilities = np.array([[float(v) for v in row[1:]] for row in predicted])
    return test_rows, probabilities, json.loads((out / "wall_seconds.json").read_text())["seconds"]


def parent_key(smiles: str) -> str:
    """The largest fragment's canonical SMILES without stereo: a salt, a stereoisomer or another SMILES of a test molecule
    matches it."""
    from rdkit import Chem, rdBase

    with rdBase.BlockLogs():
        molecule = Chem.MolFromSmiles(smiles)
        if molecule is None:
            return "raw:" + smiles
        largest = max(Chem.GetMolFrags(molecule, asMols=True), key=lambda fragment: fragment.GetNumAtoms())
        return Chem.MolToSmiles(largest, isomericSmiles=False)


def transfer_run(out: Path, first: Path, dataset: str, seed: int, options: str, args) -> tuple[Path, float]:
    """elEmBERT trained on `dataset`'s labels (supervised pretraining), split by the split of `first`: a `dataset` row
    whose parent molecule (`parent_key`) is a test molecule there is a test row here (never trained or validated on),
    one that is a validation molecule there is a validation row here (so the fine-tuned model's validation loss, which
    stops it, is on molecules its encoder never trained on); the others are training rows. A variant's
    `--init {transfer}` starts from the encoder of this run. Its directory and wall time."""
    from keras_chem.data.loaders import load_dataset
    from keras_chem.io import atomic_write_json

    splits = out.parent / f"{out.name}-splits.json"
    if not splits.exists():
        config = json.loads((first / "config.json").read_text())
        benchmark = load_dataset(config["dataset"], limit=config.get("limit"))
        smiles = dict(zip(benchmark.rows.tolist(), benchmark.inputs))
        split = json.loads((first / "splits.json").read_text())[0]
        test, validation = ({parent_key(smiles[row]) for row in split[part]} for part in ("test", "val"))
        source = load_dataset(dataset, limit=args.limit)
        keys = [parent_key(text) for text in source.inputs]
        parts = {"train": [], "val": [], "test": []}
        for row, key in zip(source.rows.tolist(), keys):
            parts["test" if key in test else "val" if key in validation else "train"].append(row)
        if not parts["test"]:
            raise SystemExit(f"{dataset} has none of the test molecules of {first}: nothing to hold out, transfer as is")
        atomic_write_json(splits, [parts])
    return out, train_elembert(out, dataset, "", seed, options, splits, args)


def score(rows: list[int], probabilities: np.ndarray, truth: dict[int, np.ndarray], tasks: list[str]) -> dict:
    from keras_chem.metrics.classification import binary_metrics

    metrics = binary_metrics(np.array([truth[r] for r in rows]), probabilities, tasks)
    return {"roc_auc": metrics["roc_auc"], "pr_auc": metrics["pr_auc"], "n_tasks_scored": metrics["n_tasks_scored"], "n_test": len(rows)}


def one_split(dataset: str, split: str, seed: int, args) -> list[dict]:
    base = RUNS / f"{dataset}{f'-n{args.limit}' if args.limit else ''}-{split}-s{seed}"
    results, first = [], None
    for name, options in args.elembert:
        out = base / f"elembert-{name}"
        pretraining = 0.0
        if TRANSFER in options:
            if first is None:
                raise SystemExit(f"--elembert {name}: {TRANSFER} needs the split of an earlier variant; list one before it")
            source, pretraining = transfer_run(base / f"{args.transfer}-for-{name}", first, args.transfer, seed,
                                               options.replace(TRANSFER, "pretrained"), args)
            options = options.replace(TRANSFER, str(source))
        seconds = pretraining + train_elembert(out, dataset, split, seed, options, first and first / "splits.json", args)
        rows, targets, probabilities, variant_tasks = elembert_predictions(out)
        if first is None:
            first, truth, tasks = out, dict(zip(rows, targets)), variant_tasks
        results.append({"model": f"elembert ({name})", "options": options, **score(rows, probabilities, truth, tasks), "seconds": seconds,
                        "backend": backend_of(out)})
        models = args.ensemble.get(name, 1)
        if models > 1:
            members, total = [probabilities], seconds
            for extra in range(seed + 1, seed + models):
                other = base / f"elembert-{name}-seed{extra}"
                total += train_elembert(other, dataset, split, extra, options, first / "splits.json", args)
                other_rows, _, other_probabilities, _ = elembert_predictions(other)
                if other_rows != rows:
                    raise RuntimeError(f"{other}: not tested on the rows of {out}")
                members.append(other_probabilities)
            singles = [score(rows, member, truth, tasks)["roc_auc"] for member in members]
            results.append({"model": f"elembert ({name}, mean of {models} seeds)", "options": options, **score(rows, np.mean(members, axis=0), truth, tasks),
                            "seconds": total, "single_model_roc_auc": singles})
    for epochs, patience, featurizer in args.chemprop:
        name = f"chemprop-e{epochs}" + (f"-p{patience}" if patience else "") + (f"-{featurizer}" if featurizer else "")
        rows, probabilities, seconds = train_chemprop(base / name, first, tasks, epochs, patience, featurizer)
        label = f"chemprop ({epochs} epochs" + (f", patience {patience}" if patience else "") + (f", + {featurizer}" if featurizer else "") + ")"
        results.append({"model": label, **score(rows, probabilities, truth, tasks), "seconds": seconds})
    return [{"dataset": dataset, "split": split, "seed": seed, "limit": args.limit, **r} for r in results]


def _cell(values: list[float]) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "–"
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def write(results: list[dict], args) -> None:
    """Results of this invocation, merged into those already in vs_chemprop.json (a row with the same dataset,
    split, seed, row limit and model is replaced), so datasets run separately end up in one table."""
    from keras_chem.io import atomic_write_json, atomic_write_text

    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "vs_chemprop.json"
    key = lambda r: (r["dataset"], r["split"], r["seed"], r.get("limit"), r["model"])  # noqa: E731
    new = {key(r) for r in results}
    kept = [r for r in json.loads(path.read_text())["results"] if key(r) not in new] if path.exists() else []
    results = kept + results
    atomic_write_json(path, {"meta": {"cpus": os.cpu_count()}, "results": results})
    lines = [f"`bench/vs_chemprop.py` on {os.cpu_count()} CPU(s): test ROC-AUC and PR-AUC, mean over tasks, mean ± std over "
             "the seeds run (n), the same rows and splits for every model; wall time per run (training + test).", "",
             "| dataset | split | model | n | ROC-AUC | PR-AUC | seconds |", "|---|---|---|---|---|---|---|"]
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        dataset = r["dataset"] + (f" (first {r['limit']} rows)" if r.get("limit") else "")
        groups.setdefault((dataset, r["split"], r["model"]), []).append(r)
    for (dataset, split, model), rs in sorted(groups.items(), key=lambda item: item[0][:2]):
        singles = [v for r in rs for v in r.get("single_model_roc_auc", [])]
        if singles:
            model += f"; its models alone: ROC-AUC {np.mean(singles):.3f} (min {min(singles):.3f}, max {max(singles):.3f})"
        lines.append(f"| {dataset} | {split} | {model} | {len(rs)} | {_cell([r['roc_auc'] for r in rs])} | "
                     f"{_cell([r['pr_auc'] for r in rs])} | {np.mean([r['seconds'] for r in rs]):.0f} |")
    atomic_write_text(RESULTS / "vs_chemprop.md", "\n".join(lines) + "\n")


def variant(text: str) -> tuple[str, str]:
    name, _, options = text.partition("=")
    return name, options


def ensemble_size(text: str) -> tuple[str, int]:
    name, _, models = text.rpartition(":")
    return name, int(models)


def chemprop_run(text: str) -> tuple[int, int | None, str | None]:
    """`EPOCHS[:PATIENCE][+FEATURIZER]`, e.g. `50`, `100:10`, `50+v1_rdkit_2d_normalized`."""
    run, _, featurizer = text.partition("+")
    epochs, _, patience = run.partition(":")
    return int(epochs), int(patience) if patience else None, featurizer or None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["tox21", "bbbp", "bace", "clintox", "sider", "hiv"])
    parser.add_argument("--splits", nargs="+", choices=["random", "scaffold"], default=["random", "scaffold"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--chemprop", nargs="*", type=chemprop_run, default=[(50, None, None), (100, 10, None)],
                        help="EPOCHS[:PATIENCE][+FEATURIZER] of each chemprop run (default: its defaults, 50 epochs; and up to 100 "
                        "with early stopping); +v1_rdkit_2d_normalized adds those molecule features; none given: no chemprop run "
                        "(its earlier results stay in the table)")
    parser.add_argument("--elembert", nargs="+", type=variant, default=VARIANTS,
                        help="NAME=OPTIONS for `kchem train elembert`, one model each; the first makes the splits")
    parser.add_argument("--ensemble", nargs="+", type=ensemble_size, default=[], help="NAME:N: N models of elEmBERT variant NAME "
                        "(seeds S, S+1, ...; same rows and split), scored one by one and averaged")
    parser.add_argument("--transfer", default="toxcast", help=f"the dataset whose labels a variant's `--init {TRANSFER}` "
                        "pretrains on (per split, without the split's test molecules)")
    parser.add_argument("--limit", type=int, default=None, help="the first N rows of each dataset (a quick check)")
    args = parser.parse_args()
    args.ensemble = dict(args.ensemble)
    results = []
    for dataset in args.datasets:
        for split in args.splits:
            for seed in args.seeds:
                results += one_split(dataset, split, seed, args)
                write(results, args)
    print((RESULTS / "vs_chemprop.md").read_text())


if __name__ == "__main__":
    main()
