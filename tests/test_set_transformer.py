"""The Set Transformer readout against a numpy port of the attention-pooling repo's MAB/SAB/PMA (spec C.1):
`faithful` mode reproduces the original's unmasked arithmetic over a fixed zero-padded M, `masked` mode
equals the same arithmetic on the real atoms alone (head-dim scaling), whatever the padding holds; both
are invariant to the order of the atoms; sum/mean/max pooling; jit training step and `.keras` round trip."""

import keras
import numpy as np
import pytest

from keras_chem.layers.atom_pooling import AtomPooling
from keras_chem.layers.set_transformer import SetTransformerPooling

B, N, D = 3, 6, 8
SIZES = [6, 3, 1]
SETTINGS = {"hidden": 16, "out_dim": 5, "heads": 4, "seeds": 3, "sabs": 2}


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


def make_set(seed=0):
    rng = np.random.default_rng(seed)
    mask = np.arange(N)[None, :] < np.array(SIZES)[:, None]
    x = np.where(mask[..., None], rng.normal(size=(B, N, D)), np.nan).astype(np.float32)
    return x, mask


def _dense(layer, x):
    return x @ _np(layer.kernel) + _np(layer.bias)


def _softmax(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def mab_reference(block, q_in, k_in, scale):
    """Buterez's MAB for one set: per head chunk, Q'_h + softmax(Q'_h K'_hᵀ / √scale) V'_h, then O + relu(fc_o(O))."""
    q, k, v = _dense(block.fc_q, q_in), _dense(block.fc_k, k_in), _dense(block.fc_v, k_in)
    width = block.dim // block.heads
    heads = [slice(h * width, (h + 1) * width) for h in range(block.heads)]
    out = np.concatenate([q[:, c] + _softmax(q[:, c] @ k[:, c].T / np.sqrt(scale)) @ v[:, c] for c in heads], axis=1)
    return out + np.maximum(_dense(block.fc_o, out), 0.0)


def pooling_reference(layer, x, scale):
    for sab in layer.encoder:
        x = mab_reference(sab, x, x, scale(sab))
    seeds = mab_reference(layer.pma, _np(layer.pma.seed_vectors), x, scale(layer.pma))
    return _dense(layer.output_layer, mab_reference(layer.decoder, seeds, seeds, scale(layer.decoder))).mean(axis=0)


def test_faithful_mode_reproduces_the_original_unmasked_arithmetic():
    x, mask = make_set()
    layer = SetTransformerPooling(**SETTINGS, mode="faithful", max_nodes=9)
    out = _np(layer(x, mask))
    for b, n in enumerate(SIZES):
        dense = np.zeros((9, D))  # to_dense_batch(fill=0, max_num_nodes=M)
        dense[:n] = x[b, :n]
        np.testing.assert_allclose(out[b], pooling_reference(layer, dense, lambda block: block.dim), rtol=1e-4, atol=1e-5)
    bigger_m = SetTransformerPooling(**SETTINGS, mode="faithful", max_nodes=12)
    bigger_m(x, mask)
    bigger_m.set_weights(layer.get_weights())
    assert not np.allclose(_np(bigger_m(x, mask))[2], out[2], atol=1e-4)  # the zero rows take part: M matters


def test_masked_mode_is_the_same_arithmetic_on_the_real_atoms_alone():
    x, mask = make_set()
    layer = SetTransformerPooling(**SETTINGS)
    out = _np(layer(x, mask))
    assert np.isfinite(out).all()
    for b, n in enumerate(SIZES):
        expected = pooling_reference(layer, x[b, :n].astype(np.float64), lambda block: block.dim // block.heads)
        np.testing.assert_allclose(out[b], expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["masked", "faithful"])
def test_pooling_ignores_the_order_of_the_atoms(mode):
    x, mask = make_set()
    layer = SetTransformerPooling(**SETTINGS, mode=mode, max_nodes=N)
    order = np.array([4, 1, 5, 0, 3, 2])
    np.testing.assert_allclose(_np(layer(x[:1, order], mask[:1, order])), _np(layer(x[:1], mask[:1])), rtol=1e-4, atol=1e-5)


def test_attention_scores_are_distributions_over_the_real_atoms():
    x, mask = make_set()
    scores = _np(SetTransformerPooling(**SETTINGS).attention_scores(x, mask))
    assert scores.shape == (B, SETTINGS["seeds"], N)
    np.testing.assert_allclose(scores.sum(-1), 1.0, rtol=1e-5)
    assert np.all(scores[~np.repeat(mask[:, None], SETTINGS["seeds"], 1)] < 1e-6)


def test_sum_mean_max_pool_the_real_atoms():
    x, mask = make_set()
    clean = np.where(mask[..., None], x, 0.0)
    for mode, expected in [("sum", clean.sum(1)), ("mean", clean.sum(1) / np.array(SIZES)[:, None]),
                           ("max", np.stack([x[b, :n].max(0) for b, n in enumerate(SIZES)]))]:
        np.testing.assert_allclose(_np(AtomPooling(mode)(x, mask)), expected, rtol=1e-5, atol=1e-6)


def test_pooling_trains_under_jit_and_reloads(tmp_path):
    x, mask = make_set()
    inputs = {"x": keras.Input((None, D), name="x"), "mask": keras.Input((None,), dtype="bool", name="mask")}
    pooled = SetTransformerPooling(**SETTINGS, name="abp")(inputs["x"], inputs["mask"])
    model = keras.Model(inputs, keras.layers.Dense(1)(pooled))
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mae", jit_compile=True)
    before = [_np(w).copy() for w in model.trainable_weights]
    assert np.isfinite(model.train_on_batch({"x": x, "mask": mask}, np.ones((B, 1), np.float32)))
    assert not [w.path for w, a in zip(model.trainable_weights, before) if np.allclose(a, _np(w))]
    model.save(tmp_path / "abp.keras")
    again = keras.models.load_model(tmp_path / "abp.keras")
    np.testing.assert_allclose(_np(again({"x": x, "mask": mask})), _np(model({"x": x, "mask": mask})), rtol=1e-6, atol=1e-6)
