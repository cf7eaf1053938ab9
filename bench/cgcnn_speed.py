"""CGCNN training speed: the padded crystal graph against the original's flat edge-list layout.

Ours: the `cgcnn` model at its default size (3 convolutions, atom_fea 64), fed as `kchem train` feeds
it (`batching.batches`: batches of 64 crystals bucketed by atom count, `[B, N, K]` neighbour tensors),
compiled as the runner compiles it (`fit.compile_model`, XLA). `CGCNNConv` applies the `h_i` and
`h_j` blocks of its Linear per atom, before the gather.

Reference, in the same process: the same model and weights on the original's layout: the atoms of a
batch as one flat list, every real neighbour slot one edge of a flat list (centre, neighbour, 41
Gaussians), `z = [h_i ‖ h_j ‖ e_ij]` concatenated per edge and multiplied by the whole Linear, the
gated messages summed over the centre with a segment sum, the crystals pooled with segment sums over
a per-atom crystal index. Its convolution subclasses `CGCNNConv` (same weights; the two models'
outputs are compared before timing); its batch normalisations see the real edges and atoms only, as
ours. To compile, each batch's flat lists are padded to a multiple of 64 atoms / 768 edges with a
dummy atom in a dummy crystal. Same rows in the same order; the first epoch compiles every shape,
the timed epochs are pure training.

Run: `KCHEM_DATA_DIR=../shared/data .venv/bin/python bench/cgcnn_speed.py [--rows 2048] [--epochs 2]
[--dataset matbench_dielectric] [--backends jax tensorflow]`. Writes bench/results/cgcnn_speed.{json,md}
with `train_ratio` (ours / reference crystals per second) per backend.
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
BATCH = 64
ATOM_MULTIPLE, EDGE_MULTIPLE = 64, 768
TARGET_RATIO = 2.0


def flat_batch(arrays: dict, rows: np.ndarray) -> dict:
    """The flat layout of `rows`: atoms, real neighbour slots as edges, each atom's crystal; padded
    with a dummy atom (in dummy crystal BATCH, its edges pointing at itself, not real) to fixed multiples."""
    z, idx, mask, vec = (arrays[k][rows] for k in ("atom_z", "nbr_idx", "nbr_mask", "nbr_vec"))
    real_atoms = z > 0
    sizes = real_atoms.sum(axis=1)
    n = int(sizes.sum())
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    flat_position = np.full(z.shape, -1)
    flat_position[real_atoms] = np.arange(n)
    edge = mask & real_atoms[..., None]
    crystal_of_slot = np.broadcast_to(np.arange(len(rows))[:, None, None], idx.shape)
    centre = np.broadcast_to(flat_position[..., None], idx.shape)[edge]
    neighbour = (starts[crystal_of_slot] + idx)[edge]
    distance = np.linalg.norm(vec[edge], axis=-1)
    n_pad, e_pad = round_up(n + 1, ATOM_MULTIPLE), round_up(len(centre), EDGE_MULTIPLE)
    dummy = n_pad - 1
    return {
        "atom_z": np.pad(z[real_atoms], (0, n_pad - n)).astype(np.int32),
        "atom_real": np.arange(n_pad) < n,
        "crystal_idx": np.pad(np.repeat(np.arange(len(rows)), sizes), (0, n_pad - n), constant_values=BATCH).astype(np.int32),
        "centre": np.pad(centre, (0, e_pad - len(centre)), constant_values=dummy).astype(np.int32),
        "neighbour": np.pad(neighbour, (0, e_pad - len(centre)), constant_values=dummy).astype(np.int32),
        "distance": np.pad(distance, (0, e_pad - len(centre)), constant_values=9.0).astype(np.float32),
        "edge_real": np.arange(e_pad) < len(centre),
    }


def edge_list_conv_class():
    import keras
    from keras import ops

    from keras_chem.layers.cgcnn_conv import CGCNNConv

    class EdgeListCGCNNConv(CGCNNConv):
        """The same convolution on flat lists: `h [A, d]`, `centre`/`neighbour [E]`, `e [E, f]`, real flags."""

        def build(self, h_shape, centre_shape=None, neighbour_shape=None, e_shape=None, edge_real_shape=None, atom_real_shape=None):
            self.build_weights(tuple(h_shape), tuple(e_shape))

        def call(self, h, centre, neighbour, e, edge_real, atom_real, training=None):
            d = h.shape[-1]
            z = ops.concatenate([ops.take(h, centre, axis=0), ops.take(h, neighbour, axis=0), e], axis=-1)
            gated = self.edge_norm(ops.matmul(z, self.kernel) + self.bias, mask=edge_real, training=training)
            message = ops.sigmoid(gated[:, :d]) * ops.softplus(gated[:, d:])
            message = ops.where(ops.expand_dims(edge_real, -1), message, 0.0)
            summed = ops.segment_sum(message, centre, num_segments=ops.shape(h)[0])
            summed = self.sum_norm(summed, mask=atom_real, training=training)
            return ops.softplus(h + summed)

        def compute_output_shape(self, h_shape, *args, **kwargs):
            return tuple(h_shape)

    keras.saving.register_keras_serializable(package="bench")(EdgeListCGCNNConv)
    return EdgeListCGCNNConv


def build_reference(config: dict, padded_model, target_stats: dict):
    """The CGCNN model on flat inputs, with `padded_model`'s weights."""
    import keras
    from keras import ops

    from keras_chem.layers.gaussian_expansion import GaussianExpansion
    from keras_chem.layers.rescale import Rescale
    from keras_chem.models.cgcnn_encoder import GAUSSIAN_STEP, GAUSSIAN_STOP

    Conv = edge_list_conv_class()
    dtypes = {"atom_z": "int32", "atom_real": "bool", "crystal_idx": "int32", "centre": "int32", "neighbour": "int32",
              "distance": "float32", "edge_real": "bool"}
    inputs = {name: keras.Input((), dtype=dtype, name=name) for name, dtype in dtypes.items()}
    source = padded_model.get_layer("element_vectors")
    elements = keras.layers.Embedding(*source.get_weights()[0].shape, trainable=False, name="element_vectors")
    h = keras.layers.Dense(config["atom_fea"], name="atom_embedding")(elements(inputs["atom_z"]))
    e = GaussianExpansion(0.0, GAUSSIAN_STOP, GAUSSIAN_STEP, sigma=GAUSSIAN_STEP, name="edge_gaussians")(inputs["distance"])
    for i in range(config["conv_layers"]):
        h = Conv(name=f"conv_{i}")(h, inputs["centre"], inputs["neighbour"], e, inputs["edge_real"], inputs["atom_real"])
    real = ops.cast(ops.expand_dims(inputs["atom_real"], -1), h.dtype)
    sums = ops.slice(ops.segment_sum(h * real, inputs["crystal_idx"], num_segments=BATCH + 1), (0, 0), (BATCH, config["atom_fea"]))
    counts = ops.slice(ops.segment_sum(real, inputs["crystal_idx"], num_segments=BATCH + 1), (0, 0), (BATCH, 1))
    z = ops.softplus(keras.layers.Dense(config["h_fea"], name="conv_to_fc")(ops.softplus(sums / ops.maximum(counts, 1.0))))
    logits = keras.layers.Dense(1, name="output_logits")(z)
    model = keras.Model(inputs, Rescale(shift=target_stats["mean"], scale=target_stats["std"], name="output")(logits), name="cgcnn_flat")
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(padded_model.get_layer(layer.name).get_weights())
    return model


def child(backend: str, dataset: str, n_rows: int, epochs: int) -> dict:
    import keras

    from layout_speed import max_difference, time_both, whole_batches

    setup = whole_batches("cgcnn", dataset, n_rows, BATCH)
    arrays, y, n, preprocessor = setup["arrays"], setup["y"], setup["n"], setup["preprocessor"]
    keras.utils.set_random_seed(0)
    ours = setup["family"].build(setup["config"], preprocessor, setup["task"], setup["stats"])
    reference = build_reference(setup["config"], ours, setup["stats"])
    order = np.random.default_rng(0).permutation(n)
    flat = [(flat_batch(arrays, rows), y[rows]) for rows in np.split(order, n // BATCH)]
    difference = max_difference(ours, reference, arrays, order[:BATCH], flat[0][0])
    timed = time_both(ours, reference, flat, setup, backend, BATCH, epochs)
    sizes = preprocessor.sizes(arrays)
    planned = getattr(timed["train_input"], "keras_chem_source", timed["train_input"]).batches  # (rows, atom slots) per batch
    return {
        "backend": backend, "dataset": dataset, "rows": n, "cap": preprocessor.cap, "mean_atoms": float(sizes.mean()),
        "padded_atom_share": round(float(sizes.sum() / sum(size * len(rows) for rows, size in planned)), 3),
        "params": int(ours.count_params()), "max_output_difference": difference,
        "ours_crystals_per_second": round(n / timed["ours_seconds"], 1),
        "reference_crystals_per_second": round(n / timed["reference_seconds"], 1),
        "train_ratio": round(timed["reference_seconds"] / timed["ours_seconds"], 2), "reference_xla": timed["reference_xla"],
        "timed_epochs": epochs,
    }


def write(results: list[dict], args) -> None:
    from keras_chem.io import atomic_write_json, atomic_write_text

    meta = {"dataset": args.dataset, "rows": args.rows, "batch": BATCH, "epochs": args.epochs, "cpus": os.cpu_count(),
            "machine": platform.machine(), "target_ratio": TARGET_RATIO,
            "reference_padding": {"atoms": ATOM_MULTIPLE, "edges": EDGE_MULTIPLE}}
    atomic_write_json(RESULTS / "cgcnn_speed.json", {"meta": meta, "results": {r["backend"]: r for r in results}})
    lines = [
        "# CGCNN training speed: padded crystal graphs vs the original's flat edge list",
        "",
        f"`bench/cgcnn_speed.py` on {os.cpu_count()} CPU(s): default size, batch {BATCH}, the first {args.rows} rows of "
        f"{args.dataset} (whole batches), {args.epochs} timed epochs after one that compiles. Same model and weights "
        "(outputs compared first); reference = flat atom and edge lists, the Linear on each edge's concatenation, segment "
        f"sums, each batch's lists padded to multiples of {ATOM_MULTIPLE} atoms / {EDGE_MULTIPLE} edges. Real atoms: the share "
        "of our padded atom slots that hold an atom.",
        "",
        "| backend | rows | mean atoms | real atoms | ours crystals/s | reference crystals/s | train_ratio | reference XLA "
        "| max output diff |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['backend']} | {r['rows']} | {r['mean_atoms']:.1f} | {r['padded_atom_share']:.0%} | "
                     f"{r['ours_crystals_per_second']:.0f} | {r['reference_crystals_per_second']:.0f} | {r['train_ratio']:.2f} | "
                     f"{'yes' if r['reference_xla'] else 'no'} | {r['max_output_difference']:.1e} |")
    atomic_write_text(RESULTS / "cgcnn_speed.md", "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--dataset", default="matbench_dielectric")
    parser.add_argument("--backends", nargs="+", default=["jax", "tensorflow"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.dataset, args.rows, args.epochs)))
        return
    from layout_speed import each_backend

    results = each_backend(__file__, args, ["--dataset", args.dataset])
    write(results, args)
    print((RESULTS / "cgcnn_speed.md").read_text())


if __name__ == "__main__":
    main()
