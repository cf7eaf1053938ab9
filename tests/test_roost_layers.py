"""Roost's layers against numpy references of spec B.2, padding invariance with garbage in the
padded slots, element-order invariance, a jit training step and the `.keras` round trip."""

import keras
import numpy as np
import pytest

from keras_chem.layers.residual_network import ResidualNetwork
from keras_chem.layers.roost_message import RoostMessage
from keras_chem.layers.weighted_attention_pooling import WeightedAttentionPooling

B, M, D = 3, 5, 6
SIZES = [5, 2, 1]  # real elements per composition


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def make_batch(seed=0):
    rng = np.random.default_rng(seed)
    mask = np.arange(M)[None, :] < np.array(SIZES)[:, None]
    amounts = rng.uniform(0.1, 3.0, (B, M)) * mask
    return {"h": (rng.normal(size=(B, M, D)) * mask[..., None]).astype(np.float32),
            "fractions": (amounts / amounts.sum(axis=1, keepdims=True)).astype(np.float32), "mask": mask}


def garble(batch, kind, seed=1):
    rng = np.random.default_rng(seed)
    padded = ~batch["mask"]
    junk = (lambda shape: np.full(shape, np.nan, np.float32)) if kind == "nan" else (lambda shape: rng.normal(size=shape).astype(np.float32) * 100)
    h = np.where(padded[..., None], junk(batch["h"].shape), batch["h"])
    fractions = np.where(padded, junk(batch["fractions"].shape), batch["fractions"])
    return {**batch, "h": h.astype(np.float32), "fractions": fractions.astype(np.float32)}


def _leaky(x):
    return np.where(x > 0, x, 0.01 * x)


def pooling_reference(layer, features, weights, mask):
    """Spec B.2 step 3, head by head, over the real entries of each set: `features [S, J, F]`."""
    w = {v.name: _np(v) for v in layer.weights}
    out = np.zeros((features.shape[0], layer.out_dim))
    for s in range(features.shape[0]):
        real = np.flatnonzero(mask[s])
        if real.size == 0:
            continue
        x = features[s, real]
        heads = []
        for h in range(layer.heads):
            gate = _leaky(x @ w["gate_kernel_1"][h] + w["gate_bias_1"][h]) @ w["gate_kernel_2"][h]
            message = _leaky(x @ w["message_kernel_1"][h] + w["message_bias_1"][h]) @ w["message_kernel_2"][h] + w["message_bias_2"][h]
            score = weights[s, real] ** w["power"][h] * np.exp(gate - gate.max())
            heads.append((score / (score.sum() + 1e-10)) @ message)
        out[s] = np.mean(heads, axis=0)
    return out


def test_pooling_matches_numpy_and_ignores_padding():
    batch = make_batch()
    layer = WeightedAttentionPooling(4, heads=3, hidden=8)
    out = _np(layer(batch["h"], batch["fractions"], batch["mask"]))
    assert out.shape == (B, 4)
    np.testing.assert_allclose(out, pooling_reference(layer, batch["h"], batch["fractions"], batch["mask"]), rtol=1e-5, atol=1e-5)
    for kind in ("random", "nan"):
        bad = garble(batch, kind)
        np.testing.assert_allclose(_np(layer(bad["h"], bad["fractions"], bad["mask"])), out, rtol=1e-5, atol=1e-6)
    empty = _np(layer(batch["h"], batch["fractions"], np.zeros_like(batch["mask"])))
    assert np.all(empty == 0)


def test_message_matches_numpy_pairs_and_zeroes_padding():
    batch = make_batch()
    layer = RoostMessage(heads=2, hidden=8)
    out = _np(layer(batch["h"], batch["fractions"], batch["mask"]))
    h, mask = batch["h"], batch["mask"]
    expected = np.zeros_like(out)
    for b in range(B):
        pairs = np.concatenate([np.repeat(h[b][:, None], M, 1), np.repeat(h[b][None], M, 0)], axis=-1)  # [i, j, 2d]
        pooled = pooling_reference(layer.pooling, pairs, np.repeat(batch["fractions"][b][None], M, 0), np.repeat(mask[b][None], M, 0))
        expected[b] = np.where(mask[b][:, None], h[b] + pooled, 0.0)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    bad = garble(batch, "nan")
    np.testing.assert_allclose(_np(layer(bad["h"], bad["fractions"], bad["mask"])), out, rtol=1e-5, atol=1e-6)


def test_residual_network_matches_numpy():
    x = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    layer = ResidualNetwork([8, 8], 3)
    out = _np(layer(x))
    w = {v.path.split("/", 1)[1]: _np(v) for v in layer.weights}
    y = np.maximum(x @ w["dense_0/kernel"] + w["dense_0/bias"], 0) + x @ w["shortcut_0/kernel"]
    y = np.maximum(y @ w["dense_1/kernel"] + w["dense_1/bias"], 0) + y  # same width: identity shortcut
    np.testing.assert_allclose(out, y @ w["output_dense/kernel"] + w["output_dense/bias"], rtol=1e-5, atol=1e-5)
    assert len(layer.weights) == 7


def _model():
    from keras import ops

    h = keras.Input((None, D), name="h")
    fractions = keras.Input((None,), name="fractions")
    mask = keras.Input((None,), dtype="bool", name="mask")
    x = RoostMessage(heads=2, hidden=8, name="message")(h, fractions, mask)
    z = WeightedAttentionPooling(D, heads=2, hidden=8, name="readout")(x, fractions, mask)
    out = ResidualNetwork([16], 1, name="head")(ops.relu(z))
    return keras.Model({"h": h, "fractions": fractions, "mask": mask}, out)


def test_model_trains_under_jit_reloads_and_ignores_element_order(tmp_path):
    batch = make_batch()
    model = _model()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mae", jit_compile=True)
    before = [_np(w).copy() for w in model.trainable_weights]
    assert np.isfinite(model.train_on_batch(garble(batch, "nan"), np.ones((B, 1), np.float32)))
    unchanged = [w.path for w, a in zip(model.trainable_weights, before) if np.allclose(a, _np(w))]
    assert not unchanged  # the powers p included
    assert all(np.isfinite(_np(w)).all() for w in model.weights)
    pred = _np(model(batch))

    order = np.random.default_rng(3).permutation(M)
    shuffled = {k: v[:, order] for k, v in batch.items()}  # real elements move among the padded slots
    np.testing.assert_allclose(_np(model(shuffled)), pred, rtol=1e-5, atol=1e-5)

    path = tmp_path / "roost_layers.keras"
    model.save(path)
    np.testing.assert_allclose(_np(keras.models.load_model(path)(batch)), pred, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("layer", [WeightedAttentionPooling(4, heads=2, hidden=8, epsilon=1e-8), RoostMessage(heads=1, hidden=4),
                                   ResidualNetwork([4, 2], 3)])
def test_config_round_trip(layer):
    again = type(layer).from_config(layer.get_config())
    assert again.get_config() == layer.get_config()


def test_l1_and_robust_l1_on_standardised_targets_against_numpy():
    from keras_chem.losses.masked import MaskedMeanAbsoluteError, MaskedRobustL1

    y_true = np.array([[1.0, np.nan], [4.0, 2.0], [0.5, -1.0]], dtype="float32")
    means = np.array([[1.5, 0.0], [3.0, 2.5], [0.0, 0.0]], dtype="float32")
    log_sigma = np.array([[0.1, 9.0], [-0.3, 0.2], [0.0, 1.0]], dtype="float32")
    std = np.array([2.0, 0.5], dtype="float32")
    present = ~np.isnan(y_true)
    error = np.abs(np.where(present, y_true - means, 0.0)) / std
    l1 = MaskedMeanAbsoluteError(scale=std.tolist())
    assert float(keras.losses.deserialize(keras.losses.serialize(l1))(y_true, means)) == pytest.approx(error[present].mean(), rel=1e-5)
    robust = MaskedRobustL1(scale=std.tolist())
    standard_log_sigma = log_sigma - np.log(std)
    expected = (np.sqrt(2) * error * np.exp(-standard_log_sigma) + standard_log_sigma)[present].mean()
    restored = keras.losses.deserialize(keras.losses.serialize(robust))
    assert float(restored(y_true, np.concatenate([means, log_sigma], axis=1))) == pytest.approx(expected, rel=1e-5)
