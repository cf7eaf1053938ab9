"""CGCNN's convolution and CrysAtom's decoder, losses and views against numpy references of spec D.1,
padding invariance with garbage in the padded slots, a jit training step and the `.keras` round trip."""

import keras
import numpy as np
import pytest

from keras_chem.layers.bilinear import PairBilinear
from keras_chem.layers.cgcnn_conv import CGCNNConv
from keras_chem.losses.reconstruction import AdjacencyReconstructionLoss, FeatureReconstructionLoss
from keras_chem.models.crysatom import adjacency_classes
from keras_chem.models.views import random_subset

B, N, K, D, F = 3, 5, 4, 6, 7
SIZES = [5, 2, 1]  # real atoms per crystal


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def make_graph(seed=0):
    rng = np.random.default_rng(seed)
    atom_mask = np.arange(N)[None, :] < np.array(SIZES)[:, None]
    nbr_idx = np.stack([rng.integers(0, n, size=(N, K)) for n in SIZES]).astype(np.int32)
    nbr_mask = atom_mask[..., None] & (rng.random((B, N, K)) < 0.8)
    nbr_mask[:, :, 0] &= atom_mask  # every real atom keeps at least one neighbour
    nbr_mask[atom_mask, 0] = True
    h = (rng.normal(size=(B, N, D)) * atom_mask[..., None]).astype(np.float32)
    e = (rng.normal(size=(B, N, K, F)) * nbr_mask[..., None]).astype(np.float32)
    return {"h": h, "nbr_idx": nbr_idx, "nbr_mask": nbr_mask, "e": e, "atom_mask": atom_mask}


def garble(graph, seed=1):
    """NaN in every padded atom and slot, neighbour indices of padded slots anywhere."""
    rng = np.random.default_rng(seed)
    h = np.where(graph["atom_mask"][..., None], graph["h"], np.nan).astype(np.float32)
    e = np.where(graph["nbr_mask"][..., None], graph["e"], np.nan).astype(np.float32)
    nbr_idx = np.where(graph["nbr_mask"], graph["nbr_idx"], rng.integers(0, N, size=(B, N, K))).astype(np.int32)
    return {**graph, "h": h, "e": e, "nbr_idx": nbr_idx}


def _softplus(x):
    return np.logaddexp(0.0, x)


def _batch_norm(x, weights, prefix):
    mean, var = x.mean(axis=0), x.var(axis=0)
    return (x - mean) / np.sqrt(var + 1e-5) * weights[f"{prefix}/gamma"] + weights[f"{prefix}/beta"]


def conv_reference(layer, graph):
    """Spec D.1's ConvLayer in training mode, on the real atoms and real neighbour slots only."""
    w = {v.path.split("/", 1)[1]: _np(v) for v in layer.weights}
    h, idx, mask = graph["h"], graph["nbr_idx"], graph["nbr_mask"] & graph["atom_mask"][..., None]
    rows = [(b, i, s) for b in range(B) for i in range(N) for s in range(K) if mask[b, i, s]]
    z = np.stack([np.concatenate([h[b, i], h[b, idx[b, i, s]], graph["e"][b, i, s]]) for b, i, s in rows])
    gated = _batch_norm(z @ w["kernel"] + w["bias"], w, "edge_norm")
    message = 1 / (1 + np.exp(-gated[:, :D])) * _softplus(gated[:, D:])
    summed = np.zeros((B, N, D))
    for (b, i, _), m in zip(rows, message):
        summed[b, i] += m
    real = graph["atom_mask"]
    out = np.zeros((B, N, D))
    out[real] = _softplus(h[real] + _batch_norm(summed[real], w, "sum_norm"))
    return out


def _conv(layer, graph, training=True):
    return _np(layer(graph["h"], graph["nbr_idx"], graph["nbr_mask"], graph["e"], graph["atom_mask"], training=training))


def test_conv_matches_numpy_and_ignores_padding():
    graph = make_graph()
    layer = CGCNNConv()
    out = _conv(layer, graph)
    assert out.shape == (B, N, D)
    np.testing.assert_allclose(out, conv_reference(layer, graph), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(_conv(layer, garble(graph)), out, rtol=1e-5, atol=1e-6)
    inference = _conv(layer, garble(graph), training=False)
    assert np.isfinite(inference).all() and np.all(inference[~graph["atom_mask"]] == 0)


def test_pair_bilinear_matches_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 3, 4)).astype("float32"), rng.normal(size=(2, 5, 4)).astype("float32")
    layer = PairBilinear(6)
    out = _np(layer(a, b))
    kernel, bias = _np(layer.kernel), _np(layer.bias)
    expected = np.einsum("xnd,kde,xme->xnmk", a, kernel, b) + bias
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert out.shape == (2, 3, 5, 6)


def test_adjacency_classes_count_repeated_neighbours_and_mark_padding():
    nbr_idx = np.array([[[1, 1, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]]], dtype=np.int32)
    nbr_mask = np.array([[[True, True, True, False], [True, True, True, True], [False] * 4]])
    atom_mask = np.array([[True, True, False]])
    classes = adjacency_classes(nbr_idx, nbr_mask, atom_mask)
    # atom 0: itself once (a periodic image), atom 1 twice (slot 3 is padding); atom 1: atom 0 four times
    assert classes[0].tolist() == [[1, 2, -1], [4, 0, -1], [-1, -1, -1]]
    many = adjacency_classes(np.zeros((1, 1, 12), np.int32), np.ones((1, 1, 12), bool), np.ones((1, 1), bool))
    assert many[0, 0, 0] == 5  # capped at the last class


def test_adjacency_loss_matches_weighted_nll():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 3, 6)).astype("float32")
    classes = rng.integers(0, 6, size=(2, 3, 3)).astype("int32")
    classes[1, 2, :] = classes[1, :, 2] = -1
    loss = keras.losses.deserialize(keras.losses.serialize(AdjacencyReconstructionLoss()))
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    real = classes >= 0
    weights = np.where(classes == 0, 0.1, 1.0)[real]
    picked = np.take_along_axis(log_p, np.maximum(classes, 0)[..., None], -1)[..., 0][real]
    assert float(loss(classes, logits)) == pytest.approx(-(weights * picked).sum() / weights.sum(), rel=1e-5)


def test_feature_loss_is_bce_with_logits_over_real_atoms():
    rng = np.random.default_rng(0)
    logits = (rng.normal(size=(2, 3, 4)) * 30).astype("float32")  # large logits stay finite
    target = (rng.random((2, 3, 4)) < 0.3).astype("float32")
    target[1, 2] = np.nan
    loss = keras.losses.deserialize(keras.losses.serialize(FeatureReconstructionLoss()))
    real = ~np.isnan(target)
    x = logits.astype(np.float64)
    bce = target * np.logaddexp(0, -x) + (1 - target) * np.logaddexp(0, x)  # −t log σ(x) − (1 − t) log(1 − σ(x))
    assert float(loss(target, logits)) == pytest.approx(bce[real].mean(), rel=1e-4)


def test_random_subset_keeps_counts_of_real_entries_afresh():
    rng = np.random.default_rng(0)
    mask = np.arange(12)[None, :] < np.array([12, 5, 1])[:, None]
    counts = np.ceil(0.9 * mask.sum(1)).astype(int)  # CrysAtom's edge masking keeps ⌈90 %⌉
    chosen = random_subset(mask, counts, rng)
    assert chosen.sum(1).tolist() == [11, 5, 1] and not (chosen & ~mask).any()
    assert len({random_subset(mask, counts, rng)[0].tobytes() for _ in range(10)}) > 1


def test_crysatom_batches_hide_atoms_drop_slots_and_mark_padding():
    from keras_chem.featurizers.element_tables import element_table
    from keras_chem.models.crysatom import make_batch

    graph = make_graph()
    atom_z = np.where(graph["atom_mask"], np.arange(1, N + 1)[None, :] * 3, 0).astype(np.int32)
    nbr_mask = graph["atom_mask"][..., None] & np.ones((B, N, K), bool)  # a kNN graph: every slot of a real atom is real
    inputs = {"atom_z": atom_z, "nbr_idx": graph["nbr_idx"], "nbr_mask": nbr_mask, "nbr_vec": np.zeros((B, N, K, 3), np.float32)}
    x, y = make_batch({"atom_features": "cgcnn92"}, None)(inputs)
    for view in (1, 2):
        hidden = x[f"atom_z_{view}"] < 0
        assert hidden.sum(1).tolist() == [1, 1, 1] and np.array_equal(np.abs(x[f"atom_z_{view}"]), atom_z)  # max(1, ⌊10 %⌋)
        kept = x[f"nbr_mask_{view}"]
        assert np.array_equal(kept.sum(-1)[graph["atom_mask"]], np.full(sum(SIZES), 4)) and not (kept & ~nbr_mask).any()  # ⌈0.9·4⌉
    assert np.array_equal(y["adjacency"], adjacency_classes(graph["nbr_idx"], nbr_mask, graph["atom_mask"]))
    table = element_table("cgcnn92")
    assert np.array_equal(y["features"][graph["atom_mask"]], table[atom_z[graph["atom_mask"]]])
    assert np.isnan(y["features"][~graph["atom_mask"]]).all()


def _model():
    from keras import ops

    from keras_chem.layers.masked_mean import MaskedMean

    h = keras.Input((None, D), name="h")
    nbr_idx = keras.Input((None, K), dtype="int32", name="nbr_idx")
    nbr_mask = keras.Input((None, K), dtype="bool", name="nbr_mask")
    e = keras.Input((None, K, F), name="e")
    atom_mask = keras.Input((None,), dtype="bool", name="atom_mask")
    x = CGCNNConv(name="conv_0")(h, nbr_idx, nbr_mask, e, atom_mask)
    x = CGCNNConv(name="conv_1")(x, nbr_idx, nbr_mask, e, atom_mask)
    pairs = PairBilinear(2, name="pairs")(x, x)
    pooled = MaskedMean()(x, atom_mask)
    out = keras.layers.Dense(1)(ops.concatenate([pooled, ops.mean(pairs, axis=(1, 2))], axis=-1))
    return keras.Model({"h": h, "nbr_idx": nbr_idx, "nbr_mask": nbr_mask, "e": e, "atom_mask": atom_mask}, out)


def test_model_trains_under_jit_and_reloads(tmp_path):
    graph = make_graph()
    model = _model()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mae", jit_compile=True)
    before = [_np(w).copy() for w in model.trainable_weights]
    assert np.isfinite(model.train_on_batch(garble(graph), np.ones((B, 1), np.float32)))
    assert not [w.path for w, a in zip(model.trainable_weights, before) if np.allclose(a, _np(w))]
    pred = _np(model(graph))
    path = tmp_path / "cgcnn_layers.keras"
    model.save(path)
    np.testing.assert_allclose(_np(keras.models.load_model(path)(graph)), pred, rtol=1e-6, atol=1e-6)
