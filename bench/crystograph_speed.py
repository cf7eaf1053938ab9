"""CrysToGraph speed: featurization (kNN graph + positional encodings) against a port of the
original pipeline, on the same crystals, and training samples/s of the paper-size model.

Ours: `knn_graph` (vesin, radius growth, vectorised slotting) + `positional_encodings`
(dense LapPE + RWPE) per `ase.Atoms`. Reference (specs/reference-implementations.md §A.1,
`structure2dglgraph` + DGL's `laplacian_pe` / `random_walk_pe`), per pymatgen `Structure`:
`get_all_neighbors(r)` from 8 Å growing by 2 Å until every atom has 12, a Python per-atom
sort and cut to 12, edge vectors and spherical coordinates, LapPE with scipy `eigs(which="SR",
ncv=80, tol=1e-2)` when n > 22 else dense `np.linalg.eig` (random ±1 signs, seeded here), and
RWPE by dense matrix powers. The conversion ase.Atoms -> Structure is done before timing;
the line graph is left out of both (ours computes it inside the model). Neighbour distances of
both are compared per atom.

Training (`--only train`): the paper-size model (`crystograph.DEFAULTS`: hidden 256, 3 eTGC
blocks with the line graph, 1 softmax GwT, 2 readout layers) on the first `--train-rows`
structures of matbench_phonons and matbench_dielectric, fed exactly as `kchem train` feeds it
(`batching.batches`: size-bucketed batches of 32, trimmed to their bucket, shuffled with a seed;
`runner.compile_model`: AdamW, XLA on both backends). One warm-up epoch compiles every batch
shape; the timed epochs are pure training (no validation pass). Each backend runs in its own
subprocess with KERAS_BACKEND set.

eTGC (`--only etgc`): the model with keras-chem's reassociated `ETGC._attend` against the same model
with `direct_etgc_attend` (the original layer's per-edge form), same weights and batches, median
`train_on_batch` time per backend, for the paper size and the Matbench CPU budget (hidden 64, one
eTGC block).

Run: `KCHEM_DATA_DIR=../shared/data .venv/bin/python bench/crystograph_speed.py [--only featurize]
[--only train] [--only etgc] [--n 300] [--train-rows 256] [--results DIR]`. Writes DIR/crystograph_speed.json and
.md (DIR defaults to bench/results); a run of one section keeps the other sections' previous
results in the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SOURCES = ("matbench_phonons", "matbench_dielectric")
K, START_RADIUS, STEP, PE_DIM = 12, 8.0, 2.0, 20
BACKENDS = ("jax", "tensorflow")
TRAIN_ROWS, TRAIN_EPOCHS, BATCH_SIZE = 256, 2, 32


# ---------------------------------------------------------------- reference pipeline (port)


def _reference_neighbors(structure, k: int = K, radius: float = START_RADIUS, step: float = STEP):
    while True:
        all_nbrs = structure.get_all_neighbors(radius)
        if min(len(nbrs) for nbrs in all_nbrs) >= k:
            break
        radius += step
    src, dst, vec = [], [], []
    for i, nbrs in enumerate(all_nbrs):
        centre = structure[i].coords
        for nbr in sorted(nbrs, key=lambda x: x.nn_distance)[:k]:
            src.append(nbr.index)
            dst.append(i)
            vec.append(nbr.coords - centre)
    return np.asarray(src), np.asarray(dst), np.asarray(vec)


def _reference_spherical(vec: np.ndarray) -> np.ndarray:
    vec = vec.copy()
    rho = np.linalg.norm(vec, axis=1)
    rho[rho == 0] = 0.001
    theta = np.arccos(vec[:, 2] / rho)
    vec[vec[:, 0] == 0, 0] = 0.001
    phi = np.arctan2(vec[:, 1], vec[:, 0])
    return np.stack([rho, theta, phi], axis=1)


def _reference_lap_pe(adj, n: int, k: int, rng) -> np.ndarray:
    from scipy import sparse
    from scipy.sparse.linalg import eigs

    scale = sparse.diags(np.asarray(adj.sum(axis=0)).ravel().clip(1) ** -0.5, dtype=float)
    lap = sparse.eye(n) - scale @ adj @ scale
    if k + 1 < n - 1:
        values, vectors = eigs(lap, k=k + 1, which="SR", ncv=4 * k, tol=1e-2)
        max_freqs, top = k, values.argsort()[1:]
    else:
        values, vectors = np.linalg.eig(lap.toarray())
        max_freqs = min(n - 1, k)
        part = np.argpartition(values, max_freqs)[: max_freqs + 1]
        top = part[values[part].argsort()][1:]
    signs = 2 * (rng.random(max_freqs) > 0.5) - 1.0
    pe = (signs * vectors[:, top].real).astype(np.float32)
    if n <= k:
        pe = np.concatenate([pe, np.zeros((n, k - n + 1), dtype=np.float32)], axis=1)
    return pe


def _reference_rw_pe(adj, steps: int) -> np.ndarray:
    dense = adj.toarray()
    walk = dense / (dense.sum(axis=1, keepdims=True) + 1e-30)
    power, out = walk, [np.diagonal(walk)]
    for _ in range(steps - 1):
        power = power @ walk
        out.append(np.diagonal(power))
    return np.stack(out, axis=1).astype(np.float32)


def reference_featurize(structure, rng) -> dict:
    from scipy import sparse

    src, dst, vec = _reference_neighbors(structure)
    n = len(structure)
    adj = sparse.csr_matrix((np.ones(len(src)), (src, dst)), shape=(n, n))
    pe = np.concatenate([_reference_lap_pe(adj, n, PE_DIM, rng), _reference_rw_pe(adj, PE_DIM)], axis=1)
    return {"src": src, "dst": dst, "spherical": _reference_spherical(vec), "pe": pe}


# ---------------------------------------------------------------- ours


def ours_featurize(atoms) -> dict:
    from keras_chem.featurizers.crystal_graph import knn_graph
    from keras_chem.featurizers.positional import positional_encodings

    graph = knn_graph(atoms, k=K, start_radius=START_RADIUS, step=STEP)
    graph["pe"] = positional_encodings(graph["nbr_idx"], graph["nbr_mask"])
    return graph


# ---------------------------------------------------------------- measurement


def bench_structures(n_per_source: int) -> tuple[list, dict[str, int]]:
    from keras_chem.data.loaders import load_dataset

    structures, used = [], {}
    for name in SOURCES:
        atoms = load_dataset(name, limit=n_per_source).inputs[:n_per_source]
        structures += atoms
        used[name] = len(atoms)
    return structures, used


def _timed(fn, items) -> tuple[list, float]:
    start = time.perf_counter()
    out = [fn(item) for item in items]
    return out, time.perf_counter() - start


def _max_distance_gap(ours: list[dict], reference: list[dict]) -> float:
    """Largest |sorted per-atom neighbour distance (ours) - (reference)| over all structures, Å."""
    gap = 0.0
    for graph, ref in zip(ours, reference):
        n, k = graph["nbr_idx"].shape
        d_ours = np.sort(np.linalg.norm(graph["nbr_vec"].astype(np.float64), axis=-1), axis=1)
        d_ref = np.zeros((n, k))
        d_ref[ref["dst"].reshape(n, k)[:, 0]] = np.sort(ref["spherical"][:, 0].reshape(n, k), axis=1)
        gap = max(gap, float(np.abs(d_ours - d_ref).max()))
    return gap


def measure_featurize(n_per_source: int = 300, repeats: int = 3, reference_repeats: int = 2) -> dict:
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms, used = bench_structures(n_per_source)
    structures = [AseAtomsAdaptor.get_structure(a) for a in atoms]
    reference_runs = []
    for _ in range(reference_repeats):
        reference_runs.append(_timed(partial(reference_featurize, rng=np.random.default_rng(0)), structures))
    reference, t_reference = reference_runs[0][0], min(t for _, t in reference_runs)
    ours_featurize(atoms[0])  # warm-up (imports)
    runs = [_timed(ours_featurize, atoms) for _ in range(repeats)]
    ours, t_ours = runs[0][0], min(t for _, t in runs)
    n = len(atoms)
    return {
        "structures": n,
        "sources": used,
        "atoms": int(sum(len(a) for a in atoms)),
        "max_atoms": int(max(len(a) for a in atoms)),
        "featurize_seconds": round(t_ours, 4),
        "reference_seconds": round(t_reference, 4),
        "featurize_structures_per_s": round(n / t_ours, 1),
        "reference_structures_per_s": round(n / t_reference, 1),
        "featurize_ratio": round(t_reference / t_ours, 2),
        "max_neighbor_distance_gap_A": _max_distance_gap(ours, reference),
        "timing": f"best of {repeats} passes (ours) and {reference_repeats} passes (reference), one process, same structures",
    }


# ---------------------------------------------------------------- training speed


def _featurized(dataset: str, n_rows: int, config: dict):
    """`(preprocessor, features, targets, task, target stats)` of the first `n_rows` structures, as the runner builds them."""
    from keras_chem.data.loaders import load_dataset
    from keras_chem.models.base import TaskInfo
    from keras_chem.models.crystograph import FAMILY
    from keras_chem.training.fit import target_stats

    data = load_dataset(dataset, limit=n_rows)
    pre = FAMILY.preprocessor(config)
    features = pre.fit_transform(data.ids, data.inputs, data.input_kind)
    y = data.targets[features.kept]
    task = TaskInfo(data.task, data.target_names, data.class_names)
    return pre, features, y, task, (target_stats(y) if task.task == "regression" else None)


def measure_train_one(dataset: str, n_rows: int = TRAIN_ROWS, epochs: int = TRAIN_EPOCHS, batch_size: int = BATCH_SIZE,
                      overrides: dict | None = None) -> dict:
    """Training samples/s of the paper-size model (or DEFAULTS updated by `overrides`, e.g. a
    reduced size) on the first `n_rows` structures of `dataset`, in this process's Keras backend,
    batched and compiled as the runner does it."""
    import keras

    from keras_chem.models.crystograph import FAMILY, build
    from keras_chem.training.batching import batches, plan_batches
    from keras_chem.training.config import resolve_model_config
    from keras_chem.training.fit import compile_model

    config = resolve_model_config(FAMILY, {**(overrides or {}), "batch_size": batch_size})
    pre, features, y, task, stats = _featurized(dataset, n_rows, config)
    arrays = features.arrays
    sizes = pre.sizes(arrays)

    keras.utils.set_random_seed(0)
    model = build(config, pre, task, stats)
    compile_model(model, FAMILY.loss(task, stats), config)
    train_batches = batches(arrays, y, pre, batch_size, seed=0)

    started = time.perf_counter()
    model.fit(train_batches, epochs=1, verbose=0)  # warm-up: compiles every (batch, bucket) shape
    warmup = time.perf_counter() - started
    epoch_seconds = []
    for _ in range(epochs):
        started = time.perf_counter()
        model.fit(train_batches, epochs=1, verbose=0)
        epoch_seconds.append(time.perf_counter() - started)
    n = len(y)
    plan = plan_batches(sizes, pre.cap, batch_size, None)
    padded_atoms = sum(len(rows) * size for rows, size in plan)
    return {
        "backend": keras.backend.backend(),
        "dataset": dataset,
        "rows": int(n),
        "skipped": len(features.skipped),
        "mean_atoms": round(float(sizes.mean()), 2),
        "max_atoms": int(sizes.max()),
        "batch_size": batch_size,
        "batches_per_epoch": len(plan),
        "bucket_sizes": sorted({int(size) for _, size in plan}),
        "padded_atom_fraction": round(1 - float(sizes.sum()) / padded_atoms, 3),
        "overrides": overrides or {},
        "parameters": int(model.count_params()),
        "warmup_epoch_seconds": round(warmup, 2),
        "epoch_seconds": [round(t, 2) for t in epoch_seconds],
        "train_samples_per_s": round(epochs * n / sum(epoch_seconds), 2),
        "timing": f"{epochs} epochs after one warm-up epoch, training only (no validation pass)",
    }


def direct_etgc_attend(self, x, nbr_idx, e, edge_mask, training):
    """`ETGC._attend` in the direct form of the original layer: K_e / V_e applied to every edge's
    `[k_i | k_j | e_hat_ij]` (projected per edge, e_hat = W_e e for every edge). Same weights and
    function as keras-chem's reassociated `ETGC._attend`; the reference of the `etgc` section."""
    import math

    from keras import ops

    from keras_chem.layers.etgc import gather_nodes, masked_softmax

    q, k, v = (self._split_heads(proj(x)) for proj in (self.q_proj, self.k_proj, self.v_proj))
    e_hat = self._split_heads(self.e_proj(e))  # [B,M,K',H,dk]: every edge projected
    kv_nb = gather_nodes(ops.concatenate([k, v], axis=-1), nbr_idx)
    k_nb, v_nb = kv_nb[..., : self.d_k], kv_nb[..., self.d_k :]
    expand = lambda t: ops.broadcast_to(ops.expand_dims(t, 2), ops.shape(k_nb))  # noqa: E731
    k_e = self.k_edge(ops.concatenate([expand(k), k_nb, e_hat], axis=-1))  # Linear(3dk -> dk) per edge
    v_e = self.v_edge(ops.concatenate([expand(v), v_nb, e_hat], axis=-1))
    scores = ops.sum(ops.expand_dims(q, 2) * k_e, axis=-1) / math.sqrt(self.d_k)
    alpha = self.attn_dropout(masked_softmax(scores, ops.expand_dims(edge_mask, -1), axis=2), training=training)
    return alpha, ops.sum(ops.expand_dims(alpha, -1) * v_e, axis=2)


def measure_etgc_one(dataset: str = "matbench_phonons", overrides: dict | None = None, repeats: int = 15) -> dict:
    """Median `train_on_batch` seconds of the model with keras-chem's `ETGC._attend` and with
    `direct_etgc_attend`, on the same batches of 32 crystals (one per atom bucket 8 and 16) and the
    same initial weights, in this process's backend; compilation excluded; outputs compared."""
    import keras

    from keras_chem.layers.etgc import ETGC
    from keras_chem.models.crystograph import FAMILY, build
    from keras_chem.training.batching import trim
    from keras_chem.training.config import resolve_model_config
    from keras_chem.training.fit import compile_model

    config = resolve_model_config(FAMILY, overrides or {})
    pre, features, y, task, stats = _featurized(dataset, 400, config)
    arrays = features.arrays
    sizes = pre.sizes(arrays)
    ours_attend = ETGC._attend
    result = {"backend": keras.backend.backend(), "dataset": dataset, "overrides": overrides or {}, "buckets": {}}
    for size in (8, 16):
        rows = np.flatnonzero((sizes <= size) & (sizes > size - 8))[:32]
        batch = trim({k: v[rows] for k, v in arrays.items()}, size, pre.padded_axes)
        timings, outputs = {}, {}
        for form, attend in (("ours", ours_attend), ("direct", direct_etgc_attend)):
            ETGC._attend = attend
            try:
                keras.utils.set_random_seed(0)
                model = build(config, pre, task, stats)
                compile_model(model, FAMILY.loss(task, stats), config)
                outputs[form] = np.asarray(model.predict_on_batch(batch))
                model.train_on_batch(batch, y[rows])  # compiles
                seconds = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    model.train_on_batch(batch, y[rows])
                    seconds.append(time.perf_counter() - started)
                timings[form] = float(np.median(seconds))
            finally:
                ETGC._attend = ours_attend
        result["buckets"][str(size)] = {
            "rows": int(len(rows)), "ours_step_ms": round(1000 * timings["ours"], 1),
            "direct_step_ms": round(1000 * timings["direct"], 1), "ratio": round(timings["direct"] / timings["ours"], 2),
            "max_output_difference": float(np.abs(outputs["ours"] - outputs["direct"]).max()),
        }
    return result


def _in_subprocess(backend: str, call: str, what: str) -> dict:
    """`call` (an expression on this module, `b`) evaluated in a fresh process on `backend`."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "KCHEM_PROGRESS": "0"}
    code = f"import json, sys; sys.path.insert(0, {str(HERE)!r}); import crystograph_speed as b; print('RESULT' + json.dumps({call}))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=HERE.parent)
    if out.returncode != 0:
        raise RuntimeError(f"{what} benchmark ({backend}) failed:\n{out.stderr[-3000:]}")
    return json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT"))[6:])


ETGC_SIZES = {"paper": {}, "cpu-budget": {"hidden": 64, "conv_layers": 1}}


def measure_etgc(args) -> dict:
    """`{backend: {size: measurement}}` for the paper-size model and the Matbench CPU budget."""
    result: dict = {}
    for backend in args.backends:
        for name, overrides in ETGC_SIZES.items():
            r = _in_subprocess(backend, f"b.measure_etgc_one(overrides={overrides!r})", "eTGC")
            result.setdefault(backend, {})[name] = r
            print(f"etgc {backend} {name}: " + ", ".join(f"{s}: {b['ratio']}x" for s, b in r["buckets"].items()), flush=True)
    return result


def measure_train(args) -> dict:
    """`{backend: {dataset: measurement}}`, every measurement in a fresh subprocess."""
    result: dict = {}
    for backend in args.backends:
        for dataset in args.train_datasets:
            started = time.perf_counter()
            r = _in_subprocess(backend, f"b.measure_train_one({dataset!r}, n_rows={args.train_rows}, epochs={args.train_epochs})",
                               f"training ({dataset})")
            r["wall_seconds"] = round(time.perf_counter() - started, 1)
            result.setdefault(backend, {})[dataset] = r
            print(f"train {backend} {dataset}: {r['train_samples_per_s']} samples/s ({r['rows']} rows)", flush=True)
    return result


SECTIONS = {"featurize": lambda args: measure_featurize(args.n), "train": measure_train, "etgc": measure_etgc}


def machine() -> dict:
    import pymatgen.core
    import scipy
    import vesin

    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pymatgen": pymatgen.core.__version__,
        "vesin": vesin.__version__,
    }


def render_markdown(result: dict) -> str:
    lines = ["# CrysToGraph speed", ""]
    f = result.get("featurize")
    if f:
        sources = ", ".join(f"{count} {name}" for name, count in f["sources"].items())
        lines += [
            f"Featurization of {f['structures']} crystals ({sources}; {f['atoms']} atoms, up to {f['max_atoms']} per cell): "
            "12-NN graph with radius growth + LapPE/RWPE (`pe [n, 40]`). "
            f"Largest neighbour-distance difference between the two: {f['max_neighbor_distance_gap_A']:.2e} Å.",
            "",
            "| measurement | keras-chem | reference | ratio |",
            "|---|---|---|---|",
            f"| structures/s | {f['featurize_structures_per_s']:,} | {f['reference_structures_per_s']:,} "
            f"(pymatgen get_all_neighbors + per-atom sort, scipy eigs / np.linalg.eig, matrix powers) | {f['featurize_ratio']}× |",
            "",
        ]
    train = result.get("train")
    if train:
        first = next(r for per_dataset in train.values() for r in per_dataset.values())
        lines += [
            f"Training of the paper-size model (`crystograph.DEFAULTS`: hidden 256, 3 eTGC blocks + line graph, "
            f"1 softmax GwT; {first['parameters']:,} parameters), batch {first['batch_size']}, size-bucketed batches and "
            f"compilation exactly as `kchem train` (AdamW, XLA). {first['timing']}; compilation excluded.",
            "",
            "| backend | dataset | rows | mean atoms (max) | padding | batches/epoch | training samples/s | warm-up epoch s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for backend, per_dataset in train.items():
            for dataset, r in per_dataset.items():
                lines.append(
                    f"| {backend} | {dataset} | {r['rows']} | {r['mean_atoms']} ({r['max_atoms']}) | "
                    f"{r['padded_atom_fraction']:.0%} | {r['batches_per_epoch']} | {r['train_samples_per_s']} | "
                    f"{r['warmup_epoch_seconds']} |"
                )
        lines.append("")
    etgc = result.get("etgc")
    if etgc:
        lines += [
            "eTGC in reassociated form (keras-chem) against the direct per-edge form of the original layer "
            "(`direct_etgc_attend`: K_e/V_e applied to every edge's `[k_i | k_j | W_e e_ij]`), same weights, same "
            "batches of 32 matbench_phonons crystals, median `train_on_batch` time after compilation:",
            "",
            "| backend | model | atom bucket | keras-chem ms/step | direct ms/step | ratio | largest output difference |",
            "|---|---|---|---|---|---|---|",
        ]
        for backend, per_size in etgc.items():
            for name, r in per_size.items():
                for size, b in r["buckets"].items():
                    sizes = ", ".join(f"{k} {v}" for k, v in r["overrides"].items()) or "DEFAULTS"
                    lines.append(f"| {backend} | {name} ({sizes}) | {size} | {b['ours_step_ms']} | "
                                 f"{b['direct_step_ms']} | {b['ratio']}× | {b['max_output_difference']:.1e} |")
        lines.append("")
    m = result["machine"]
    lines.append(f"Machine: {m['cpu_count']} CPUs, {m['platform']}, numpy {m['numpy']}, pymatgen {m['pymatgen']}, vesin {m['vesin']}.")
    return "\n".join(lines) + "\n"


def _summary_keys(result: dict) -> None:
    """Top-level headline numbers, recomputed from whichever sections the JSON holds."""
    if "featurize" in result:
        f = result["featurize"]
        result.update({key: f[key] for key in ("featurize_ratio", "featurize_structures_per_s", "reference_structures_per_s", "structures")})
    if "train" in result:
        result["train_samples_per_s"] = {
            backend: {dataset: r["train_samples_per_s"] for dataset, r in per_dataset.items()}
            for backend, per_dataset in result["train"].items()
        }


def main(argv: list[str] | None = None) -> dict:
    from keras_chem.io import atomic_write_json, atomic_write_text

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append", help="run only these sections")
    parser.add_argument("--n", type=int, default=300, help="featurize: structures per source dataset")
    parser.add_argument("--train-rows", type=int, default=TRAIN_ROWS, help="train: first N structures of each dataset")
    parser.add_argument("--train-epochs", type=int, default=TRAIN_EPOCHS, help="train: timed epochs after the warm-up epoch")
    parser.add_argument("--train-datasets", nargs="+", default=list(SOURCES), choices=SOURCES, help="train: datasets")
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS, help="train: Keras backends")
    parser.add_argument("--results", type=Path, default=RESULTS, help="output directory (default bench/results; use a temp dir for smoke runs)")
    args = parser.parse_args(argv)

    path = args.results / "crystograph_speed.json"
    result: dict = json.loads(path.read_text()) if path.exists() else {}  # read-modify-write: keep other sections
    for name in args.only or list(SECTIONS):
        section = SECTIONS[name](args)
        if name == "train":  # a run of some backends/datasets keeps the others' measurements
            for backend, per_dataset in section.items():
                result.setdefault("train", {}).setdefault(backend, {}).update(per_dataset)
        else:
            result[name] = section
    _summary_keys(result)
    result["machine"] = machine()
    atomic_write_json(path, result)
    markdown = render_markdown(result)
    atomic_write_text(args.results / "crystograph_speed.md", markdown)
    print(markdown)
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
