"""Roost training speed: padded compositions against the original's disjoint-union layout.

Ours: the `roost` model at its default size, fed as `kchem train` feeds it (`batching.batches`:
batches of 128 compositions bucketed by element count, `[B, M]` arrays, the `[B, M, M]` pair block
inside the model), compiled as the runner compiles it (`fit.compile_model`: AdamW, XLA).

Reference, in the same process: the same model on the original's layout (spec B.1): the elements of a
batch as one flat list, every ordered pair (self pairs included) as `self_idx` / `nbr_idx` index
lists, pair features gathered per pair, the attention normalised and summed with segment max / sum
over `self_idx`, the readout with segment sums over a per-element crystal index. Same layers and
weights (its pooling subclasses `WeightedAttentionPooling`; the weights are copied, and the two
models' outputs are compared before timing). To compile, each batch's flat lists are padded to
a multiple of 32 elements / 64 pairs with a dummy element in a dummy crystal: a few shapes, all
compiled in the untimed first epoch, and little padded work (multiples of 256 / 1024, as this
bench first used, nearly doubled the reference's pair work and overstated our ratio); the reference
is compiled with XLA where the backend can (TensorFlow cannot compile its data-dependent segment
counts, so there it runs as a graph). The same rows in the same order; the first epoch compiles
every shape, the timed epochs are pure training.

Run: `KCHEM_DATA_DIR=../shared/data .venv/bin/python bench/roost_speed.py [--rows 4096] [--epochs 2]
[--dataset matbench_mp_e_form] [--backends jax tensorflow]`. Writes bench/results/roost_speed.{json,md}
with `train_ratio` (ours / reference samples per second) per backend.
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
ELEMENT_MULTIPLE, PAIR_MULTIPLE = 32, 64
TARGET_RATIO = 3.0


def flat_batch(arrays: dict, rows: np.ndarray) -> dict:
    """The disjoint-union layout of `rows`: flat elements, their ordered pairs, their crystal; padded
    with a dummy element (fraction 1, in dummy crystal BATCH) to fixed multiples."""
    z, frac, mask = arrays["elem_z"][rows], arrays["elem_frac"][rows], arrays["elem_mask"][rows]
    sizes = mask.sum(axis=1)
    n = int(sizes.sum())
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    self_idx = np.concatenate([s + np.repeat(np.arange(k), k) for s, k in zip(starts, sizes)])
    nbr_idx = np.concatenate([s + np.tile(np.arange(k), k) for s, k in zip(starts, sizes)])
    n_pad, p_pad = round_up(n + 1, ELEMENT_MULTIPLE), round_up(len(self_idx), PAIR_MULTIPLE)
    dummy = n_pad - 1
    return {
        "elem_z": np.pad(z[mask], (0, n_pad - n)).astype(np.int32),
        "elem_frac": np.pad(frac[mask], (0, n_pad - n), constant_values=1.0).astype(np.float32),
        "crystal_idx": np.pad(np.repeat(np.arange(len(rows)), sizes), (0, n_pad - n), constant_values=BATCH).astype(np.int32),
        "self_idx": np.pad(self_idx, (0, p_pad - len(self_idx)), constant_values=dummy).astype(np.int32),
        "nbr_idx": np.pad(nbr_idx, (0, p_pad - len(nbr_idx)), constant_values=dummy).astype(np.int32),
    }


def segment_pooling_class():
    import keras
    from keras import ops

    from keras_chem.layers.weighted_attention_pooling import WeightedAttentionPooling

    class SegmentWeightedAttentionPooling(WeightedAttentionPooling):
        """The same pooling over a flat list: `features [P, F]`, `weights [P]`, `index [P]` → `[S, out]`,
        S = the rows of `like` (the elements, for message passing) or `num_segments` (the crystals)."""

        def __init__(self, *args, num_segments=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.num_segments = num_segments

        def build(self, features_shape, weights_shape=None, index_shape=None, like_shape=None):
            super().build(features_shape)

        def call(self, features, weights, index, like):
            segments = self.num_segments or ops.shape(like)[0]
            gate_hidden, message_hidden = self.first_layers(features)  # [H, P, hidden] each
            gate = ops.transpose(self.gate(gate_hidden))  # [P, H]
            message = ops.transpose(self.message(message_hidden), (1, 0, 2))  # [P, H, out], per pair as in the original
            gate = gate - ops.take(ops.segment_max(gate, index, num_segments=segments), index, axis=0)
            score = ops.power(ops.expand_dims(weights, -1), self.power) * ops.exp(gate)
            total = ops.take(ops.segment_sum(score, index, num_segments=segments), index, axis=0)
            pooled = ops.segment_sum(ops.expand_dims(score / (total + self.epsilon), -1) * message, index, num_segments=segments)
            return ops.mean(pooled, axis=1)

        def compute_output_shape(self, features_shape, weights_shape=None, index_shape=None, like_shape=None):
            return (self.num_segments or like_shape[0], self.out_dim)

    keras.saving.register_keras_serializable(package="bench")(SegmentWeightedAttentionPooling)
    return SegmentWeightedAttentionPooling


def build_reference(config: dict, padded_model, target_stats: dict):
    """The Roost model on flat inputs, with `padded_model`'s layers' weights."""
    import keras
    from keras import ops

    from keras_chem.layers.rescale import Rescale
    from keras_chem.layers.residual_network import ResidualNetwork
    from keras_chem.models.roost_encoder import widths

    Pooling = segment_pooling_class()
    inputs = {name: keras.Input((), dtype=dtype, name=name) for name, dtype in
              [("elem_z", "int32"), ("elem_frac", "float32"), ("crystal_idx", "int32"), ("self_idx", "int32"), ("nbr_idx", "int32")]}
    source = padded_model.get_layer("element_vectors")
    elements = keras.layers.Embedding(*source.get_weights()[0].shape, trainable=source.trainable, name="element_vectors")
    h = keras.layers.Dense(config["elem_fea_len"] - 1, name="element_projection")(elements(inputs["elem_z"]))
    h = ops.concatenate([h, ops.expand_dims(inputs["elem_frac"], -1)], axis=-1)
    pooling = []
    for i in range(config["n_graph"]):
        pairs = ops.concatenate([ops.take(h, inputs["self_idx"], axis=0), ops.take(h, inputs["nbr_idx"], axis=0)], axis=-1)
        layer = Pooling(config["elem_fea_len"], heads=config["heads"], hidden=config["hidden"], name=f"message_{i}")
        h = h + layer(pairs, ops.take(inputs["elem_frac"], inputs["nbr_idx"], axis=0), inputs["self_idx"], h)
        pooling.append((layer, padded_model.get_layer(f"message_{i}").pooling))
    readout = Pooling(config["elem_fea_len"], heads=config["readout_heads"], hidden=config["hidden"], num_segments=BATCH + 1,
                      name="readout")
    pooled = ops.slice(readout(h, inputs["elem_frac"], inputs["crystal_idx"], h), (0, 0), (BATCH, config["elem_fea_len"]))
    pooling.append((readout, padded_model.get_layer("readout")))
    trunk = ResidualNetwork(widths(config["trunk"]), config["trunk_out"], name="trunk")
    head = ResidualNetwork(widths(config["output_hidden"]), 1, name="head_0")
    out = Rescale(shift=target_stats["mean"], scale=target_stats["std"], name="output")(head(ops.relu(trunk(pooled))))
    model = keras.Model(inputs, out, name="roost_disjoint_union")
    for name in ("element_vectors", "element_projection", "trunk", "head_0"):
        model.get_layer(name).set_weights(padded_model.get_layer(name).get_weights())
    for ours, theirs in pooling:
        ours.set_weights(theirs.get_weights())
    return model


def child(backend: str, dataset: str, n_rows: int, epochs: int) -> dict:
    import keras

    from layout_speed import max_difference, seconds_per_epoch, time_both, whole_batches

    from keras_chem.training.fit import compile_model

    setup = whole_batches("roost", dataset, n_rows, BATCH)
    family, config, arrays, y, n = setup["family"], setup["config"], setup["arrays"], setup["y"], setup["n"]
    keras.utils.set_random_seed(0)
    ours = family.build(config, setup["preprocessor"], setup["task"], setup["stats"])
    reference = build_reference(config, ours, setup["stats"])
    order = np.random.default_rng(0).permutation(n)
    flat = [(flat_batch(arrays, rows), y[rows]) for rows in np.split(order, n // BATCH)]
    difference = max_difference(ours, reference, arrays, order[:BATCH], flat[0][0])
    timed = time_both(ours, reference, flat, setup, backend, BATCH, epochs)
    # everything but the message layers (element projection, readout, trunk, head, optimizer), which both
    # layouts share: reference / this bounds train_ratio however fast our message passing becomes
    shared = family.build({**config, "n_graph": 0}, setup["preprocessor"], setup["task"], setup["stats"])
    compile_model(shared, family.loss(setup["task"], setup["stats"], config), config, steps_per_epoch=len(timed["train_input"]))
    shared_seconds = seconds_per_epoch(shared, timed["train_input"], epochs)
    ours_seconds, reference_seconds = timed["ours_seconds"], timed["reference_seconds"]
    return {
        "backend": backend, "dataset": dataset, "rows": n, "cap": setup["preprocessor"].cap,
        "mean_elements": float(arrays["elem_mask"].sum(axis=1).mean()), "params": int(ours.count_params()),
        "max_output_difference": difference,
        "ours_samples_per_second": round(n / ours_seconds, 1), "reference_samples_per_second": round(n / reference_seconds, 1),
        "train_ratio": round(reference_seconds / ours_seconds, 2), "reference_xla": timed["reference_xla"], "timed_epochs": epochs,
        "no_message_samples_per_second": round(n / shared_seconds, 1), "ratio_ceiling": round(reference_seconds / shared_seconds, 2),
        "message_share": round(1 - shared_seconds / ours_seconds, 3),
    }


def write(results: list[dict], args) -> None:
    from keras_chem.io import atomic_write_json, atomic_write_text

    meta = {"dataset": args.dataset, "rows": args.rows, "batch": BATCH, "epochs": args.epochs, "cpus": os.cpu_count(),
            "machine": platform.machine(), "target_ratio": TARGET_RATIO,
            "reference_padding": {"elements": ELEMENT_MULTIPLE, "pairs": PAIR_MULTIPLE}}
    atomic_write_json(RESULTS / "roost_speed.json", {"meta": meta, "results": {r["backend"]: r for r in results}})
    lines = [
        "# Roost training speed: padded compositions vs the original's disjoint-union layout",
        "",
        f"`bench/roost_speed.py` on {os.cpu_count()} CPU(s): default size, batch {BATCH}, the first {args.rows} rows of "
        f"{args.dataset} (whole batches), {args.epochs} timed epochs after one that compiles. Same model and weights "
        "(outputs compared first); reference = flat element and pair lists with segment sums, each batch's padded to "
        f"multiples of {ELEMENT_MULTIPLE} elements / {PAIR_MULTIPLE} pairs.",
        "",
        "Ceiling: reference / ours without its message layers (the parts both layouts share), the ratio if message "
        "passing cost nothing; message share: the part of our step the message layers take.",
        "",
        "| backend | rows | mean elements | ours samples/s | reference samples/s | train_ratio | ours without messages samples/s "
        "| ceiling | message share | reference XLA | max output diff |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['backend']} | {r['rows']} | {r['mean_elements']:.2f} | {r['ours_samples_per_second']:.0f} | "
                     f"{r['reference_samples_per_second']:.0f} | {r['train_ratio']:.2f} | {r['no_message_samples_per_second']:.0f} | "
                     f"{r['ratio_ceiling']:.2f} | {r['message_share']:.0%} | {'yes' if r['reference_xla'] else 'no'} | "
                     f"{r['max_output_difference']:.1e} |")
    atomic_write_text(RESULTS / "roost_speed.md", "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--dataset", default="matbench_mp_e_form")
    parser.add_argument("--backends", nargs="+", default=["jax", "tensorflow"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.dataset, args.rows, args.epochs)))
        return
    from layout_speed import each_backend

    results = each_backend(__file__, args, ["--dataset", args.dataset])
    write(results, args)
    print((RESULTS / "roost_speed.md").read_text())


if __name__ == "__main__":
    main()
