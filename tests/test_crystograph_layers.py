"""CrysToGraph layers: Gaussian RBF, spherical edge features, line graph, eTGC, GwT.

Each layer: numpy reference, padding invariance, get_config round trip; one small functional
model with all of them trains a step under jit and survives a `.keras` round trip.
"""

import math

import keras
import numpy as np
import pytest
from keras import ops

from keras_chem.layers.crystal_edges import LineGraph, SphericalEdgeFeatures, bond_cosines
from keras_chem.layers.etgc import ETGC, gather_nodes, masked_softmax
from keras_chem.layers.gaussian_expansion import GaussianExpansion
from keras_chem.layers.graphwise_transformer import GraphWiseTransformer

B, N, K, D = 3, 6, 4, 16
N_REAL = (6, 4, 2)


def _np(t):
    return np.asarray(ops.convert_to_numpy(t))


def make_batch(seed=0):
    rng = np.random.default_rng(seed)
    atom_mask = np.arange(N)[None, :] < np.array(N_REAL)[:, None]
    nbr_idx = np.zeros((B, N, K), np.int32)
    nbr_mask = np.zeros((B, N, K), bool)
    for b, n_real in enumerate(N_REAL):
        nbr_idx[b, :n_real] = rng.integers(0, n_real, (n_real, K))
        nbr_mask[b, :n_real] = rng.random((n_real, K)) > 0.25
    nbr_idx[0, 0, 0], nbr_mask[0, 0, 0] = 0, True  # a periodic self-image
    nbr_idx[0, 2, 1], nbr_mask[0, 2, 1] = 3, True
    nbr_mask[1, 1, :] = False  # a real atom without any real neighbour
    nbr_idx[~nbr_mask] = 0
    nbr_vec = (rng.normal(size=(B, N, K, 3)) * 2.5).astype(np.float32)
    nbr_vec[~nbr_mask] = 0.0
    x = rng.normal(size=(B, N, D)).astype(np.float32)
    x[~atom_mask] = 0.0
    e = rng.random((B, N, K, 76)).astype(np.float32)
    e[~nbr_mask] = 0.0
    return dict(x=x, atom_mask=atom_mask, nbr_idx=nbr_idx, nbr_mask=nbr_mask, nbr_vec=nbr_vec, e=e)


def garble(batch, kind, seed=1):
    """Same real data, padding (padded atoms, masked slots) replaced by garbage."""
    rng = np.random.default_rng(seed)
    g = {k: v.copy() for k, v in batch.items()}
    am, nm = g["atom_mask"], g["nbr_mask"]

    def fill(shape):
        return np.full(shape, np.nan, np.float32) if kind == "nan" else (rng.normal(size=shape) * 1e3).astype(np.float32)

    g["x"][~am] = fill(g["x"][~am].shape)
    g["nbr_vec"][~nm] = fill(g["nbr_vec"][~nm].shape)
    g["e"][~nm] = fill(g["e"][~nm].shape)
    g["nbr_idx"][~nm] = rng.integers(0, N, g["nbr_idx"][~nm].shape)
    return g


def real_edges(batch):
    """Edge slots that are real: slot set, centre and neighbour real atoms."""
    am, idx = batch["atom_mask"], batch["nbr_idx"]
    nbr_real = np.take_along_axis(am, idx.reshape(B, -1), axis=1).reshape(idx.shape)
    return batch["nbr_mask"] & am[:, :, None] & nbr_real


def roundtrip_config(layer):
    config = layer.get_config()
    clone = layer.__class__.from_config(config)
    assert clone.get_config() == config
    ser = keras.saving.serialize_keras_object(layer)
    assert ser["registered_name"] == f"keras_chem>{layer.__class__.__name__}"
    assert keras.saving.deserialize_keras_object(ser).get_config() == config


# ---------------------------------------------------------------- numpy references


def np_gauss(x, start, stop, step, sigma=None):
    mu = start + step * np.arange(len(np.arange(start, stop + step, step)))
    return np.exp(-((x[..., None] - mu) ** 2) / (sigma or step) ** 2)


def np_edge_features(vec):
    vec = vec.astype(np.float64)
    x, y, z = vec[..., 0], vec[..., 1].copy(), vec[..., 2]
    rho = np.sqrt(x**2 + y**2 + z**2)
    rho = np.where(rho == 0, 0.001, rho)
    xg = np.where(x == 0, 0.001, x)
    theta = np.arccos(z / rho)
    phi = np.arctan2(y, xg)
    return np.concatenate(
        [np_gauss(rho, 0, 8, 0.2), np_gauss(theta, 0, 3.2, 0.2), np_gauss(phi, -3.2, 3.2, 0.4), (rho > 8)[..., None]],
        axis=-1,
    )


def np_line_graph(batch):
    idx, mask, vec = batch["nbr_idx"], batch["nbr_mask"], batch["nbr_vec"].astype(np.float64)
    lg_idx = np.zeros((B, N * K, K), np.int32)
    lg_mask = np.zeros((B, N * K, K), bool)
    cos = np.zeros((B, N * K, K))
    for b in range(B):
        bot = {}
        for i in range(N):
            for k in range(K):
                j = idx[b, i, k]
                for kk in range(K):
                    if mask[b, i, k] and mask[b, j, kk]:
                        r1, r2 = -vec[b, j, kk], vec[b, i, k]
                        bot[(i, k, kk)] = (np.dot(r1, r2), np.linalg.norm(r1) * np.linalg.norm(r2), j)
        add = 1e-4 if any(v[1] == 0 for v in bot.values()) else 0.0  # upstream guard, per crystal
        for (i, k, kk), (num, den, j) in bot.items():
            c = np.clip(num / (den + add), -1, 1)
            cos[b, i * K + k, kk] = 0.0 if np.isnan(c) else c
            lg_idx[b, i * K + k, kk] = j * K + kk
            lg_mask[b, i * K + k, kk] = True
    fea = np_gauss(cos, -1.4, 1.5, 0.1) * lg_mask[..., None]
    return lg_idx, lg_mask, fea, cos


def _w(dense):
    k = _np(dense.kernel).astype(np.float64)
    b = _np(dense.bias).astype(np.float64) if dense.use_bias else 0.0
    return lambda v: v @ k + b


def _ln(layer, v, eps=1e-5):
    mu, var = v.mean(-1, keepdims=True), v.var(-1, keepdims=True)
    return (v - mu) / np.sqrt(var + eps) * _np(layer.gamma) + _np(layer.beta)


def _bn_inference(layer, v):
    return (v - _np(layer.moving_mean)) / np.sqrt(_np(layer.moving_variance) + layer.epsilon) * _np(layer.gamma) + _np(layer.beta)


_erf = np.vectorize(math.erf)


def _gelu(v):
    return 0.5 * v * (1.0 + _erf(v / math.sqrt(2.0)))


def _softplus(v):
    return np.logaddexp(0.0, v)


def np_etgc_node(layer, batch, b, i, nbr=K):
    """Upstream eTGC (A.3) for one centre node, BN in inference mode: (x_out [d], {slot: e_out})."""
    x, e, idx = batch["x"].astype(np.float64), batch["e"].astype(np.float64), batch["nbr_idx"]
    h, dk = layer.heads, layer.d_k
    q, kp, vp = _w(layer.q_proj), _w(layer.k_proj), _w(layer.v_proj)
    ep, ke, ve = _w(layer.e_proj), _w(layer.k_edge), _w(layer.v_edge)
    idx_b, mask_b, am_b = idx[b], batch["nbr_mask"][b], batch["atom_mask"][b]
    slots = [k for k in range(nbr) if mask_b[i, k] and am_b[i] and am_b[idx_b[i, k]]]
    qi = q(x[b, i]).reshape(h, dk)
    scores, values, ehats = [], [], []
    for k in slots:
        j = idx[b, i, k]
        eh = ep(e[b, i, k]).reshape(h, dk)
        kij = ke(np.concatenate([kp(x[b, i]).reshape(h, dk), kp(x[b, j]).reshape(h, dk), eh], -1))
        vij = ve(np.concatenate([vp(x[b, i]).reshape(h, dk), vp(x[b, j]).reshape(h, dk), eh], -1))
        scores.append((qi * kij).sum(-1) / math.sqrt(dk))
        values.append(vij)
        ehats.append(eh)
    if slots:
        s = np.stack(scores)  # [S, H]
        alpha = np.exp(s - s.max(0)) / np.exp(s - s.max(0)).sum(0)
        msg = (alpha[:, :, None] * np.stack(values)).sum(0).reshape(-1)
    else:
        alpha, msg = np.zeros((0, h)), np.zeros(h * dk)
    x1 = _ln(layer.node_ln, _w(layer.node_out)(msg)) + x[b, i]
    x2 = _bn_inference(layer.node_bn, _w(layer.node_ff2)(_gelu(_w(layer.node_ff1)(x1)))) + x1
    e_out = {}
    for n_slot, k in enumerate(slots if layer.update_edges else ()):
        e1 = _ln(layer.edge_ln, _w(layer.edge_out)((alpha[n_slot][:, None] * ehats[n_slot]).reshape(-1))) + e[b, i, k]
        e2 = _bn_inference(layer.edge_bn, _w(layer.edge_ff2)(_gelu(_w(layer.edge_ff1)(e1)))) + e1
        e_out[k] = _softplus(e2)
    return _softplus(x2), e_out, alpha


def np_gwt(layer, batch, b):
    x, e, idx = batch["x"][b].astype(np.float64), batch["e"][b].astype(np.float64), batch["nbr_idx"][b]
    keep = real_edges(batch)[b] & (idx != np.arange(N)[:, None])
    real = batch["atom_mask"][b]
    inj = np.zeros_like(x)
    for i in range(N):
        if keep[i].any():
            inj[i] = _w(layer.edge_in)(e[i][keep[i]].mean(0))
    x = x + inj
    v = _w(layer.v_proj)(x)
    if layer.attention == "sum":
        attn = np.broadcast_to(v[real].sum(0), v.shape)
    else:
        h, dk = layer.heads, layer.d_k
        q = _w(layer.q_proj)(x).reshape(N, h, dk)
        k = _w(layer.k_proj)(x).reshape(N, h, dk)
        s = np.einsum("nhd,mhd->hnm", q, k)[:, :, real] / math.sqrt(dk)
        w = np.exp(s - s.max(-1, keepdims=True))
        w /= w.sum(-1, keepdims=True)
        attn = np.einsum("hnm,mhd->nhd", w, v.reshape(N, h, dk)[real]).reshape(N, -1)
    out = _ln(layer.attn_ln, _w(layer.out_proj)(attn)) + x
    out = _ln(layer.ffn_ln, _w(layer.ff2)(_gelu(_w(layer.ff1)(out)))) + out
    out = out + _np(layer.bias)
    return _softplus(out) if layer.output_softplus else out, attn


# ---------------------------------------------------------------- tests


def test_gaussian_grids_and_config():
    for grid, count in (((0, 8, 0.2), 41), ((0, 3.2, 0.2), 17), ((-3.2, 3.2, 0.4), 17), ((-1.4, 1.5, 0.1), 30)):
        layer = GaussianExpansion(*grid)
        assert layer.count == count
        np.testing.assert_allclose(layer.centres[[0, -1]], [grid[0], grid[1]], atol=1e-9)
        x = np.linspace(-4, 9, 7).astype(np.float32)
        out = _np(layer(x))
        assert out.shape == (7, count)
        np.testing.assert_allclose(out, np_gauss(x, *grid), atol=1e-6)
        roundtrip_config(layer)
    assert GaussianExpansion(0, 1, 0.5, sigma=0.3).get_config()["sigma"] == 0.3


def test_gather_nodes_and_masked_softmax():
    x = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    idx = np.array([[[2, 0], [1, 1], [0, 2]], [[1, 2], [0, 0], [2, 1]]], np.int32)
    out = _np(gather_nodes(x, idx))
    np.testing.assert_array_equal(out, np.stack([x[b][idx[b]] for b in range(2)]))
    s = np.array([[1.0, 2.0, np.nan], [np.nan, np.nan, np.nan]], np.float32)
    m = np.array([[True, True, False], [False, False, False]])
    w = _np(masked_softmax(s, m))
    np.testing.assert_allclose(w[0], [1 / (1 + math.e), math.e / (1 + math.e), 0.0], rtol=1e-6)
    np.testing.assert_array_equal(w[1], 0.0)


def test_spherical_edge_features_match_numpy():
    batch = make_batch()
    vec = batch["nbr_vec"].copy()
    special = np.array(
        [[0, 0, 0], [0, 1.5, -2.0], [0, 0, 3.0], [0, 0, -3.0], [0.0, -2.0, 0], [-1.0, 0.0, 0.0], [9.0, 1.0, 0.5], [2.0, 3.0, -6.5]],
        np.float32,
    )
    vec[0, 0, :K] = special[:K]
    vec[0, 1, :K] = special[K:]
    layer = SphericalEdgeFeatures()
    out = _np(layer(vec))
    assert out.shape == (B, N, K, 76) and layer.units == 76
    np.testing.assert_allclose(out, np_edge_features(vec), atol=2e-5)
    assert out[0, 1, 2, -1] == 1.0 and out[0, 1, 3, -1] == 0.0  # rho > 8 flag
    masked = _np(layer(vec, batch["nbr_mask"]))
    np.testing.assert_array_equal(masked[~batch["nbr_mask"]], 0.0)
    roundtrip_config(layer)


def test_spherical_guards_have_finite_gradients():
    vec = np.array([[0, 0, 0], [0, 0, 2.0], [0, 1.0, 1.0], [1.0, 0, 0]], np.float32)
    layer = SphericalEdgeFeatures()
    if keras.backend.backend() == "jax":
        import jax

        grad = jax.grad(lambda v: layer(v).sum())(vec)
    else:
        import tensorflow as tf

        v = tf.constant(vec)
        with tf.GradientTape() as tape:
            tape.watch(v)
            y = tf.reduce_sum(layer(v))
        grad = tape.gradient(y, v)
    assert np.isfinite(_np(grad)).all()


def test_line_graph_matches_numpy():
    batch = make_batch()
    lg_idx, lg_mask, lg_fea = LineGraph()(batch["nbr_idx"], batch["nbr_mask"], batch["nbr_vec"])
    ref_idx, ref_mask, ref_fea, _ = np_line_graph(batch)
    assert lg_idx.shape == (B, N * K, K) and lg_fea.shape == (B, N * K, K, 30)
    np.testing.assert_array_equal(_np(lg_mask), ref_mask)
    np.testing.assert_array_equal(_np(lg_idx), ref_idx)
    np.testing.assert_allclose(_np(lg_fea), ref_fea, atol=2e-5)
    roundtrip_config(LineGraph())


def test_bond_cosine_denominator_guard_is_per_crystal():
    batch = make_batch()
    vec = batch["nbr_vec"].copy()
    vec[0, 0, 0] = 0.0  # a real zero-length edge in crystal 0 only
    batch["nbr_vec"] = vec
    cos, mask = bond_cosines(batch["nbr_idx"], batch["nbr_mask"], vec)
    _, ref_mask, _, ref_cos = np_line_graph(batch)
    np.testing.assert_array_equal(_np(mask).reshape(B, N * K, K), ref_mask)
    np.testing.assert_allclose(_np(cos).reshape(B, N * K, K), ref_cos, atol=1e-6)
    assert np.isfinite(_np(cos)).all()


@pytest.mark.parametrize("kind", ["random", "nan"])
def test_edge_layers_ignore_padding(kind):
    batch, bad = make_batch(), garble(make_batch(), kind)
    nm = batch["nbr_mask"]
    sph = SphericalEdgeFeatures()
    np.testing.assert_array_equal(_np(sph(batch["nbr_vec"], nm)), _np(sph(bad["nbr_vec"], nm)))
    lg = LineGraph()
    good_out = [_np(t) for t in lg(batch["nbr_idx"], nm, batch["nbr_vec"])]
    bad_out = [_np(t) for t in lg(bad["nbr_idx"], nm, bad["nbr_vec"])]
    for a, b in zip(good_out, bad_out):
        np.testing.assert_array_equal(a, b)


def test_masked_batchnorm_ignores_padding():
    """Keras 3 BatchNormalization(mask=...) uses masked moments: padded rows change nothing."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 5, 4)).astype(np.float32)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]], bool)
    bad = x.copy()
    bad[~mask] = rng.normal(size=(int((~mask).sum()), 4)) * 100
    outs = []
    for inp in (x, bad):
        bn = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
        outs.append((_np(bn(inp, training=True, mask=mask)), _np(bn.moving_mean), _np(bn.moving_variance)))
    real = x[mask]
    np.testing.assert_allclose(outs[0][0][mask], (real - real.mean(0)) / np.sqrt(real.var(0) + 1e-5), atol=1e-4)
    np.testing.assert_allclose(outs[1][0][mask], outs[0][0][mask], atol=1e-5)
    np.testing.assert_allclose(outs[0][1], 0.1 * real.mean(0), atol=1e-5)
    np.testing.assert_allclose(outs[1][1], outs[0][1], atol=1e-5)
    np.testing.assert_allclose(outs[1][2], outs[0][2], atol=1e-5)


def _etgc_call(layer, batch, training):
    return layer(batch["x"], batch["nbr_idx"], batch["nbr_mask"], batch["e"], batch["atom_mask"], training=training)


def test_etgc_matches_numpy():
    batch = make_batch()
    layer = ETGC(D, 8, 2, 76)
    x_out, e_out = (_np(t) for t in _etgc_call(layer, batch, training=False))
    assert x_out.shape == (B, N, D) and e_out.shape == (B, N, K, 76)
    assert np.isfinite(x_out).all() and np.isfinite(e_out).all()
    # (0, 0): self-loop + masked slots; (0, 2): duplicate neighbour; (1, 1): no real neighbour
    for b, i in ((0, 0), (0, 2), (1, 1), (2, 1)):
        ref_x, ref_e, alpha = np_etgc_node(layer, batch, b, i)
        np.testing.assert_allclose(x_out[b, i], ref_x, rtol=1e-4, atol=1e-4)
        for k, ref in ref_e.items():
            np.testing.assert_allclose(e_out[b, i, k], ref, rtol=1e-4, atol=1e-4)
        if len(alpha):
            np.testing.assert_allclose(alpha.sum(0), 1.0, atol=1e-9)
    edges = real_edges(batch)
    np.testing.assert_array_equal(x_out[~batch["atom_mask"]], 0.0)
    np.testing.assert_array_equal(e_out[~edges], 0.0)
    roundtrip_config(layer)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("kind", ["random", "nan"])
def test_etgc_ignores_padding(training, kind):
    batch, bad = make_batch(), garble(make_batch(), kind)
    layer = ETGC(D, 8, 2, 76)
    good = [_np(t) for t in _etgc_call(layer, batch, training)]
    worse = [_np(t) for t in _etgc_call(layer, bad, training)]
    am, edges = batch["atom_mask"], real_edges(batch)
    np.testing.assert_allclose(worse[0][am], good[0][am], atol=1e-5)
    np.testing.assert_allclose(worse[1][edges], good[1][edges], atol=1e-5)
    assert np.isfinite(worse[0]).all() and np.isfinite(worse[1]).all()


@pytest.mark.parametrize("update_edges", [True, False])
def test_etgc_on_the_line_graph(update_edges):
    batch = make_batch()
    e = SphericalEdgeFeatures()(batch["nbr_vec"], batch["nbr_mask"])
    lg_idx, lg_mask, lg_fea = LineGraph()(batch["nbr_idx"], batch["nbr_mask"], batch["nbr_vec"])
    layer = ETGC(76, 4, 2, 30, update_edges=update_edges)
    nodes = ops.reshape(e, (B, N * K, 76))
    node_mask = batch["nbr_mask"].reshape(B, N * K)
    out, e_out = layer(nodes, lg_idx, lg_mask, lg_fea, node_mask, training=False)
    out, e_out = _np(out), _np(e_out)
    assert e_out.shape == (B, N * K, K, 30)
    if not update_edges:
        np.testing.assert_array_equal(e_out, _np(lg_fea))
        assert not hasattr(layer, "edge_out")
        roundtrip_config(layer)
    assert out.shape == (B, N * K, 76) and np.isfinite(out).all()
    lb = dict(x=_np(nodes), e=_np(lg_fea), nbr_idx=_np(lg_idx), nbr_mask=_np(lg_mask), atom_mask=node_mask)
    lg_real = _np(lg_mask)
    nodes_checked = 0
    for b, m in zip(*np.nonzero(node_mask)):
        if lg_real[b, m].any() and nodes_checked < 3:
            ref_x, _, _ = np_etgc_node(layer, lb, b, m, nbr=K)
            np.testing.assert_allclose(out[b, m], ref_x, rtol=1e-4, atol=1e-4)
            nodes_checked += 1
    assert nodes_checked == 3
    np.testing.assert_array_equal(out[~node_mask], 0.0)


@pytest.mark.parametrize("attention", ["softmax", "sum"])
def test_gwt_matches_numpy(attention):
    batch = make_batch()
    layer = GraphWiseTransformer(D, 4, 4, 76, attention=attention)
    out = _np(layer(batch["x"], batch["nbr_idx"], batch["nbr_mask"], batch["e"], batch["atom_mask"]))
    # give the zero-initialised bias a value so the check sees it
    layer.bias.assign(np.linspace(-1, 1, D).astype(np.float32))
    out = _np(layer(batch["x"], batch["nbr_idx"], batch["nbr_mask"], batch["e"], batch["atom_mask"]))
    for b in range(B):
        real = batch["atom_mask"][b]
        ref, attn = np_gwt(layer, batch, b)
        np.testing.assert_allclose(out[b][real], ref[real], rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(out[b][~real], 0.0)
        if attention == "sum":  # every real atom receives the same V-sum of its crystal
            np.testing.assert_allclose(attn[real], np.broadcast_to(attn[0], attn[real].shape))
    if attention == "sum":
        assert not hasattr(layer, "q_proj") and len(layer.trainable_weights) == 15
    roundtrip_config(layer)
    with pytest.raises(ValueError):
        GraphWiseTransformer(attention="mean")


@pytest.mark.parametrize("attention", ["softmax", "sum"])
@pytest.mark.parametrize("kind", ["random", "nan"])
def test_gwt_ignores_padding(attention, kind):
    batch, bad = make_batch(), garble(make_batch(), kind)
    layer = GraphWiseTransformer(D, 4, 4, 76, attention=attention, output_softplus=True)

    def run(data):
        return _np(layer(data["x"], data["nbr_idx"], data["nbr_mask"], data["e"], data["atom_mask"]))

    am = batch["atom_mask"]
    np.testing.assert_allclose(run(bad)[am], run(batch)[am], atol=1e-5)
    assert (run(batch)[am] > 0).all()


def build_model(n=None):
    """All layers in one model; `n=None` (default) leaves the atom axis dynamic, as for bucketed batches."""
    x_in = keras.Input((n, D), name="x")
    am = keras.Input((n,), dtype="bool", name="atom_mask")
    idx = keras.Input((n, K), dtype="int32", name="nbr_idx")
    nm = keras.Input((n, K), dtype="bool", name="nbr_mask")
    vec = keras.Input((n, K, 3), name="nbr_vec")
    e = SphericalEdgeFeatures()(vec, nm)
    lg_idx, lg_mask, lg_fea = LineGraph()(idx, nm, vec)
    edge_nodes = keras.layers.Reshape((-1, 76))(e)
    edge_node_mask = keras.layers.Reshape((-1,))(nm)
    edge_nodes, _ = ETGC(76, 4, 2, 30, update_edges=False, name="line_etgc")(edge_nodes, lg_idx, lg_mask, lg_fea, edge_node_mask)
    e = keras.layers.Reshape((-1, K, 76))(edge_nodes)
    h, e = ETGC(D, 8, 2, 76, name="node_etgc")(x_in, idx, nm, e, am)
    h = GraphWiseTransformer(D, 4, 4, 76, attention="softmax", output_softplus=True)(h, idx, nm, e, am)
    h = GraphWiseTransformer(D, 4, 4, 76, attention="sum", output_softplus=True)(h, idx, nm, e, am)
    out = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling1D()(h))  # padded rows of h are 0
    return keras.Model([x_in, am, idx, nm, vec], out)


def _inputs(batch):
    return [batch["x"], batch["atom_mask"], batch["nbr_idx"], batch["nbr_mask"], batch["nbr_vec"]]


def test_model_trains_under_jit_ignores_padding_and_reloads(tmp_path):
    batch = make_batch()
    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse", jit_compile=True)
    before = [_np(w).copy() for w in model.trainable_weights]
    loss = model.train_on_batch(_inputs(batch), np.ones((B, 1), np.float32))
    assert np.isfinite(loss)
    after = [_np(w) for w in model.trainable_weights]
    unchanged = [w.path for w, a, b in zip(model.trainable_weights, before, after) if np.allclose(a, b)]
    assert not unchanged
    bn = model.get_layer("node_etgc").node_bn
    assert not np.allclose(_np(bn.moving_mean), 0.0)

    pred = _np(model(_inputs(batch), training=False))
    assert np.isfinite(pred).all()
    for kind in ("random", "nan"):
        np.testing.assert_allclose(_np(model(_inputs(garble(batch, kind)), training=False)), pred, atol=1e-4)

    # NaN in padding must not poison the gradients either (padding is zeroed on entry)
    assert np.isfinite(model.train_on_batch(_inputs(garble(batch, "nan")), np.ones((B, 1), np.float32)))
    assert all(np.isfinite(_np(w)).all() for w in model.weights)
    pred = _np(model(_inputs(batch), training=False))

    path = tmp_path / "crystograph_layers.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(_np(reloaded(_inputs(batch), training=False)), pred, rtol=1e-5, atol=1e-5)


def test_model_with_static_atom_axis_builds():
    out = _np(build_model(N)(_inputs(make_batch()), training=False))
    assert out.shape == (B, 1) and np.isfinite(out).all()
