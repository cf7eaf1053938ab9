"""SchNet and DimeNet++ training speed: the padded radius graph against PyG's flat edge and triplet lists.

Ours: `schnet` or `dimenet` with sum pooling, fed as `kchem train` feeds it (`batching.batches`, molecules
bucketed by atom count, `[B, N, K]` neighbour tensors, DimeNet++'s triplets `[B, N·K, K]` built in the
model), compiled as the runner compiles it (XLA).

Reference, in the same process: the same model and weights on PyG's layout: the atoms of a batch as one
flat list, every real neighbour slot one edge (centre, neighbour, edge vector), for DimeNet++ every
real triplet one entry of flat `kj`/`ji` edge lists; gathers with `take`, sums with `segment_sum`
(messages to atoms, triplets to edges, atoms to molecules). Its layers subclass ours (same weights;
outputs compared before timing). To compile, each batch's lists are padded to multiples of 128 atoms /
2048 edges / 16384 triplets with a dummy atom in a dummy molecule. Same rows, same order; one untimed
epoch compiles every shape.

Run: `KCHEM_DATA_DIR=../shared/data .venv/bin/python bench/geometry_speed.py --model schnet [--rows 2048]
[--epochs 2] [--dataset qm7] [--backends jax tensorflow] [--option value ...]`. Model options after the
known flags (e.g. `--max-neighbors 24`) go to the model. Writes bench/results/{schnet,dimenet}_speed.{json,md}
with `train_ratio` (ours / reference molecules per second) per backend.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import numpy as np
from layout_speed import round_up

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
BATCH = 128
MULTIPLES = {"atoms": 128, "edges": 2048, "triplets": 16384}
TARGET_RATIO = {"schnet": 2.0}


def flat_batch(arrays: dict, rows: np.ndarray, triplets: bool) -> dict:
    """PyG's lists for `rows`, padded with a dummy atom (molecule BATCH) whose padding edges and triplets are not real."""
    z, idx, mask, vec = (arrays[k][rows] for k in ("atom_z", "nbr_idx", "nbr_mask", "nbr_vec"))
    real_atoms = z > 0
    sizes = real_atoms.sum(axis=1)
    n = int(sizes.sum())
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    flat_atom = np.full(z.shape, -1)
    flat_atom[real_atoms] = np.arange(n)
    edge = mask & real_atoms[..., None]
    edge_id = np.full(idx.shape, -1)
    edge_id[edge] = np.arange(edge.sum())
    molecule = np.broadcast_to(np.arange(len(rows))[:, None, None], idx.shape)
    centre = np.broadcast_to(flat_atom[..., None], idx.shape)[edge]
    neighbour = (starts[molecule] + idx)[edge]
    n_pad, e_pad = round_up(n + 1, MULTIPLES["atoms"]), round_up(len(centre) + 1, MULTIPLES["edges"])
    out = {
        "atom_z": np.pad(z[real_atoms], (0, n_pad - n)).astype(np.int32),
        "molecule": np.pad(np.repeat(np.arange(len(rows)), sizes), (0, n_pad - n), constant_values=BATCH).astype(np.int32),
        "centre": np.pad(centre, (0, e_pad - len(centre)), constant_values=n_pad - 1).astype(np.int32),
        "neighbour": np.pad(neighbour, (0, e_pad - len(centre)), constant_values=n_pad - 1).astype(np.int32),
        "vec": np.pad(vec[edge], ((0, e_pad - len(centre)), (0, 0))).astype(np.float32),
        "edge_real": np.arange(e_pad) < len(centre),
    }
    if triplets:  # edge (b, i, s) = j → i; its triplets: the edges (b, j, s') into j with x_k ≠ x_i
        b, i, s = np.nonzero(edge)
        j = idx[b, i, s]
        ji = np.repeat(edge_id[b, i, s], idx.shape[2])
        kj = edge_id[np.repeat(b, idx.shape[2]), np.repeat(j, idx.shape[2]), np.tile(np.arange(idx.shape[2]), len(b))]
        back = np.linalg.norm(vec[b, i, s].repeat(idx.shape[2], 0) + vec[np.repeat(b, idx.shape[2]), np.repeat(j, idx.shape[2]),
                                                                          np.tile(np.arange(idx.shape[2]), len(b))], axis=-1) < 1e-3
        keep = (kj >= 0) & ~back
        t_pad = round_up(int(keep.sum()) + 1, MULTIPLES["triplets"])
        out["kj"] = np.pad(kj[keep], (0, t_pad - keep.sum()), constant_values=e_pad - 1).astype(np.int32)
        out["ji"] = np.pad(ji[keep], (0, t_pad - keep.sum()), constant_values=e_pad - 1).astype(np.int32)
        out["triplet_real"] = np.arange(t_pad) < keep.sum()
    return out


def _pool(h, molecule, width):
    from keras import ops

    return ops.slice(ops.segment_sum(h, molecule, num_segments=BATCH + 1), (0, 0), (BATCH, width))


def schnet_reference(config: dict, inputs: dict):
    import keras
    from keras import ops

    from keras_chem.layers.schnet import GaussianSmearing, SchNetInteraction, shifted_softplus

    class EdgeListInteraction(SchNetInteraction):
        def build(self, h_shape, centre_shape=None, neighbour_shape=None, edge_real_shape=None, rbf_shape=None, distances_shape=None):
            super().build(h_shape, None, None, rbf_shape, distances_shape)

        def call(self, h, centre, neighbour, edge_real, rbf, distances):
            from keras_chem.layers.schnet import cosine_cutoff

            w = self.filter_out(shifted_softplus(self.filter_in(rbf))) * ops.expand_dims(cosine_cutoff(distances, self.cutoff), -1)
            messages = ops.where(ops.expand_dims(edge_real, -1), ops.take(self.lin1(h), neighbour, axis=0) * w, 0.0)
            return h + self.lin(shifted_softplus(self.lin2(ops.segment_sum(messages, centre, num_segments=ops.shape(h)[0]))))

    distances = ops.sqrt(ops.sum(ops.square(inputs["vec"]), axis=-1) + 1e-12)
    rbf = GaussianSmearing(config["cutoff"], config["gaussians"], name="distance_gaussians")(distances)
    h = keras.layers.Embedding(100, config["hidden"], name="atom_embedding")(inputs["atom_z"])
    for i in range(config["interactions"]):
        h = EdgeListInteraction(config["filters"], config["cutoff"], name=f"interaction_{i}")(
            h, inputs["centre"], inputs["neighbour"], inputs["edge_real"], rbf, distances)
    z = _pool(ops.where(ops.expand_dims(inputs["atom_z"] > 0, -1), h, 0.0), inputs["molecule"], config["hidden"])
    half = config["hidden"] // 2
    z = shifted_softplus(keras.layers.Dense(half, name="readout_0")(z))
    return shifted_softplus(keras.layers.Dense(half, name="readout_1")(z))


def dimenet_reference(config: dict, inputs: dict):
    import keras
    from keras import ops

    from keras_chem.layers.dimenet import BesselBasis, DimeNetEmbedding, DimeNetInteraction, DimeNetOutput, SphericalBasis, swish

    class EdgeListEmbedding(DimeNetEmbedding):
        def build(self, atom_z_shape, centre_shape=None, neighbour_shape=None, rbf_shape=None):
            super().build(atom_z_shape, None, rbf_shape)

        def call(self, atom_z, centre, neighbour, rbf):
            x = self.embedding(atom_z)
            return swish(self.lin(ops.concatenate([ops.take(x, centre, 0), ops.take(x, neighbour, 0), swish(self.lin_rbf(rbf))], -1)))

        def compute_output_shape(self, atom_z_shape, centre_shape=None, neighbour_shape=None, rbf_shape=None):
            return tuple(rbf_shape[:-1]) + (self.hidden,)

    class EdgeListInteraction(DimeNetInteraction):
        def build(self, m_shape, rbf_shape=None, sbf_shape=None, kj_shape=None, ji_shape=None, triplet_real_shape=None):
            super().build(m_shape, rbf_shape, sbf_shape)

        def call(self, m, rbf, sbf, kj, ji, triplet_real):
            x_ji = swish(self.lin_ji(m))
            x_kj = swish(self.lin_down(swish(self.lin_kj(m)) * self.lin_rbf2(self.lin_rbf1(rbf))))
            per_triplet = ops.where(ops.expand_dims(triplet_real, -1), ops.take(x_kj, kj, 0) * self.lin_sbf2(self.lin_sbf1(sbf)), 0.0)
            return self.update(m, x_ji, ops.segment_sum(per_triplet, ji, num_segments=ops.shape(m)[0]))

        def compute_output_shape(self, m_shape, rbf_shape=None, sbf_shape=None, kj_shape=None, ji_shape=None, triplet_real_shape=None):
            return tuple(m_shape)

    class EdgeListOutput(DimeNetOutput):
        def build(self, m_shape, rbf_shape=None, centre_shape=None, edge_real_shape=None, atom_z_shape=None):
            super().build((None,) + tuple(m_shape), rbf_shape)

        def compute_output_shape(self, m_shape, rbf_shape=None, centre_shape=None, edge_real_shape=None, atom_z_shape=None):
            return (None, self.out)

        def call(self, m, rbf, centre, edge_real, atom_z):
            x = ops.segment_sum(ops.where(ops.expand_dims(edge_real, -1), self.lin_rbf(rbf) * m, 0.0), centre, num_segments=ops.shape(atom_z)[0])
            x = self.lin_up(x)
            for lin in self.lins:
                x = swish(lin(x))
            return self.lin(x)

    vec = inputs["vec"]
    distances = ops.sqrt(ops.sum(ops.square(vec), axis=-1) + 1e-12)
    rbf = BesselBasis(config["radial"], config["cutoff"], name="bessel_basis")(distances, inputs["edge_real"])
    r_ji, r_kj = ops.take(vec, inputs["ji"], 0), ops.take(vec, inputs["kj"], 0)
    angles = ops.arctan2(ops.sqrt(ops.sum(ops.square(ops.cross(r_ji, r_kj)), -1) + 1e-12), ops.sum(r_ji * r_kj, -1))
    sbf = SphericalBasis(config["spherical"], config["radial"], config["cutoff"], name="spherical_basis")(
        ops.take(distances, inputs["kj"], 0), angles, inputs["triplet_real"])
    m = EdgeListEmbedding(config["hidden"], 95, name="embedding")(inputs["atom_z"], inputs["centre"], inputs["neighbour"], rbf)
    output = {"hidden": config["hidden"], "out": config["node_latent"], "out_emb": config["out_emb"], "layers": config["output_layers"]}
    p = EdgeListOutput(**output, name="output_0")(m, rbf, inputs["centre"], inputs["edge_real"], inputs["atom_z"])
    for i in range(config["blocks"]):
        m = EdgeListInteraction(config["hidden"], config["int_emb"], config["basis_emb"], config["before_skip"], config["after_skip"],
                                name=f"interaction_{i}")(m, rbf, sbf, inputs["kj"], inputs["ji"], inputs["triplet_real"])
        p = p + EdgeListOutput(**output, name=f"output_{i + 1}")(m, rbf, inputs["centre"], inputs["edge_real"], inputs["atom_z"])
    z = _pool(ops.where(ops.expand_dims(inputs["atom_z"] > 0, -1), p, 0.0), inputs["molecule"], config["node_latent"])
    width = config["node_latent"]
    z = swish(keras.layers.Dense(width, name="regressor_0")(z))
    z = swish(keras.layers.Dense(width // 2, name="regressor_1")(z))
    return swish(keras.layers.Dense(width // 2, name="regressor_2")(z))


def build_reference(model_name: str, config: dict, padded_model, stats: dict):
    import keras

    from keras_chem.layers.rescale import Rescale

    dtypes = {"atom_z": "int32", "molecule": "int32", "centre": "int32", "neighbour": "int32", "edge_real": "bool"}
    if model_name == "dimenet":
        dtypes.update(kj="int32", ji="int32", triplet_real="bool")
    inputs = {name: keras.Input((), dtype=dtype, name=name) for name, dtype in dtypes.items()}
    inputs["vec"] = keras.Input((3,), dtype="float32", name="vec")
    body = schnet_reference if model_name == "schnet" else dimenet_reference
    logits = keras.layers.Dense(1, name="output_logits")(body(config, inputs))
    model = keras.Model(inputs, Rescale(shift=stats["mean"], scale=stats["std"], name="output")(logits), name=f"{model_name}_flat")
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(padded_model.get_layer(layer.name).get_weights())
    return model


def child(backend: str, model_name: str, dataset: str, n_rows: int, epochs: int, options: dict) -> dict:
    import keras

    from layout_speed import max_difference, time_both, whole_batches

    setup = whole_batches(model_name, dataset, n_rows, BATCH, options)
    arrays, y, n, preprocessor = setup["arrays"], setup["y"], setup["n"], setup["preprocessor"]
    keras.utils.set_random_seed(0)
    ours = setup["family"].build(setup["config"], preprocessor, setup["task"], setup["stats"])
    for layer in ours.layers:
        if layer.name.startswith("output_") and hasattr(layer, "lin"):  # DimeNet++'s zero-initialised output layers: compare real outputs
            layer.lin.kernel.assign(np.random.default_rng(0).normal(scale=0.05, size=layer.lin.kernel.shape))
    reference = build_reference(model_name, setup["config"], ours, setup["stats"])
    order = np.random.default_rng(0).permutation(n)
    flat = [(flat_batch(arrays, rows, model_name == "dimenet"), y[rows]) for rows in np.split(order, n // BATCH)]
    difference = max_difference(ours, reference, arrays, order[:BATCH], flat[0][0])
    timed = time_both(ours, reference, flat, setup, backend, BATCH, epochs)
    sizes = preprocessor.sizes(arrays)
    source = getattr(timed["train_input"], "keras_chem_source", timed["train_input"])
    real_slots = float(arrays["nbr_mask"].sum() / sum(source[i][0]["nbr_mask"].size for i in range(len(source))))
    return {
        "backend": backend, "model": model_name, "dataset": dataset, "rows": n, "cap": preprocessor.cap, "mean_atoms": float(sizes.mean()),
        "max_neighbors": preprocessor.max_neighbors, "cutoff": preprocessor.cutoff, "geometry": preprocessor.geometry,
        "real_neighbour_slots": round(real_slots, 3), "params": int(ours.count_params()), "max_output_difference": difference,
        "ours_molecules_per_second": round(n / timed["ours_seconds"], 1),
        "reference_molecules_per_second": round(n / timed["reference_seconds"], 1),
        "train_ratio": round(timed["reference_seconds"] / timed["ours_seconds"], 2), "reference_xla": timed["reference_xla"],
        "timed_epochs": epochs, "options": options,
    }


def write(results: list[dict], args) -> None:
    from keras_chem.io import atomic_write_json, atomic_write_text

    name = f"{args.model}_speed"
    meta = {"model": args.model, "dataset": args.dataset, "rows": args.rows, "batch": BATCH, "epochs": args.epochs, "cpus": os.cpu_count(),
            "machine": platform.machine(), "target_ratio": TARGET_RATIO.get(args.model), "reference_padding": MULTIPLES}
    atomic_write_json(RESULTS / f"{name}.json", {"meta": meta, "results": {r["backend"]: r for r in results}})
    first = results[0]
    lines = [
        f"# {args.model} training speed: padded radius graphs vs PyG's flat edge{' and triplet' if args.model == 'dimenet' else ''} lists",
        "",
        f"`bench/geometry_speed.py --model {args.model}` on {os.cpu_count()} CPU(s): default size{' with ' + str(first['options']) if first['options'] else ''}, "
        f"sum pooling, batch {BATCH}, the first {args.rows} rows of {args.dataset} ({first['geometry']}), cutoff {first['cutoff']:g} Å, "
        f"{first['max_neighbors']} neighbour slots, {args.epochs} timed epochs after one that compiles. Same model and weights (outputs "
        "compared first). Real slots: the share of the neighbour slots of our batches (atom slots × neighbour slots, both trimmed per batch) that hold a neighbour.",
        "",
        "| backend | rows | mean atoms | real slots | ours molecules/s | reference molecules/s | train_ratio | reference XLA | max output diff |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['backend']} | {r['rows']} | {r['mean_atoms']:.1f} | {r['real_neighbour_slots']:.0%} | {r['ours_molecules_per_second']:.0f} | "
                     f"{r['reference_molecules_per_second']:.0f} | {r['train_ratio']:.2f} | {'yes' if r['reference_xla'] else 'no'} | "
                     f"{r['max_output_difference']:.1e} |")
    atomic_write_text(RESULTS / f"{name}.md", "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["schnet", "dimenet"], required=True)
    parser.add_argument("--rows", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--dataset", default="qm7")
    parser.add_argument("--backends", nargs="+", default=["jax", "tensorflow"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args, extra = parser.parse_known_args()
    options = {extra[i].lstrip("-").replace("-", "_"): extra[i + 1] for i in range(0, len(extra), 2)}
    if args.child:
        print(json.dumps(child(args.child, args.model, args.dataset, args.rows, args.epochs, options)))
        return
    from layout_speed import each_backend

    results = each_backend(__file__, args, ["--model", args.model, "--dataset", args.dataset, *extra])
    write(results, args)
    print((RESULTS / f"{args.model}_speed.md").read_text())


if __name__ == "__main__":
    main()
