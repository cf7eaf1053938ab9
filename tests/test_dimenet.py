"""DimeNet++: the envelope, the Bessel and spherical bases and the triplets against numpy/scipy, the
interaction++ and output++ blocks against a numpy port on PyG's flat edge and triplet lists, and the
model end to end on molecules and crystals with sum and faithful attention pooling."""

import ase
import keras
import numpy as np
import pytest
from scipy.special import eval_legendre, spherical_jn

from keras_chem.layers.dimenet import (BesselBasis, DimeNetInteraction, DimeNetOutput, SphericalBasis, envelope,
                                       spherical_bessel_zeros, triplets)
from keras_chem.models.neighbor_graph import RadiusGraphPreprocessor
from keras_chem.training.config import resolve
from keras_chem.training.runner import run
from runs import check_round_trip_and_saved_model

SMALL = {"hidden": 16, "int_emb": 8, "basis_emb": 4, "out_emb": 16, "blocks": 2, "node_latent": 8, "abp_hidden": 16, "abp_heads": 4,
         "batch_size": 16, "epochs": 2, "patience": 2, "learning_rate": 1e-3}


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


def _envelope(x, p=6):
    return (1 / x - (p + 1) * (p + 2) / 2 * x ** (p - 1) + p * (p + 2) * x**p - p * (p + 1) / 2 * x ** (p + 1)) * (x < 1)


def test_glorot_orthogonal_weights():
    from keras_chem.layers.dimenet import GlorotOrthogonal

    w = _np(GlorotOrthogonal()((64, 32)))
    assert np.var(w) == pytest.approx(2.0 / 96, rel=1e-3)
    gram = w.T @ w
    np.testing.assert_allclose(gram, np.eye(32) * gram[0, 0], atol=1e-4)  # orthogonal columns, equal norms


def test_envelope_and_bessel_basis():
    x = np.array([0.2, 0.5, 0.999, 1.0, 1.3], np.float32)
    np.testing.assert_allclose(_np(envelope(x)), _envelope(x.astype(np.float64)), rtol=1e-5, atol=1e-5)
    d = np.array([[1.0, 2.5, 3.0]], np.float32)
    mask = np.array([[True, True, False]])
    expected = _envelope(d[..., None] / 5.0) * np.sin(np.pi * np.arange(1, 7) * d[..., None] / 5.0)
    out = _np(BesselBasis(6, 5.0)(d, mask))
    np.testing.assert_allclose(out[mask], expected[mask], rtol=1e-4, atol=1e-5)
    assert not out[~mask].any()


def test_spherical_basis_is_normalised_bessel_times_y_l0():
    zeros = spherical_bessel_zeros(7, 6)
    np.testing.assert_allclose(zeros[0], np.pi * np.arange(1, 7), rtol=1e-9)
    np.testing.assert_allclose(spherical_jn(np.arange(7)[:, None], zeros), 0, atol=1e-9)
    d = np.array([0.9, 1.5, 4.2], np.float32)
    angle = np.array([0.3, 2.0, 3.1], np.float32)
    out = _np(SphericalBasis(7, 6, 5.0)(d, angle, np.ones(3, bool))).reshape(3, 7, 6)
    x = d[:, None, None].astype(np.float64) / 5.0
    norm = np.sqrt(2) / np.abs(spherical_jn(np.arange(7)[:, None] + 1, zeros))
    radial = norm * spherical_jn(np.arange(7)[:, None], zeros * x) * _envelope(x)
    y_l0 = np.sqrt((2 * np.arange(7) + 1) / (4 * np.pi)) * eval_legendre(np.arange(7), np.cos(angle.astype(np.float64))[:, None])
    np.testing.assert_allclose(out, radial * y_l0[:, :, None], rtol=2e-3, atol=2e-3)


def _water_graph(cutoff=5.0, k=4):
    water = ase.Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    pre = RadiusGraphPreprocessor(cutoff=cutoff, max_neighbors=k)
    return water, pre.fit_transform(["w"], [water], "structure").arrays


def flat_triplets(atoms, cutoff):
    """PyG's lists: edges j → i of the radius graph, triplets k → j → i with k ≠ i."""
    pos = atoms.positions
    edges = [(j, i) for i in range(len(atoms)) for j in range(len(atoms)) if i != j and np.linalg.norm(pos[i] - pos[j]) < cutoff]
    found = []
    for e_ji, (j, i) in enumerate(edges):
        for e_kj, (k, j2) in enumerate(edges):
            if j2 == j and k != i:
                a, b = pos[j] - pos[i], pos[k] - pos[j]
                found.append((e_kj, e_ji, np.arctan2(np.linalg.norm(np.cross(a, b)), a @ b), np.linalg.norm(b)))
    return edges, found


def test_triplets_are_pygs_with_its_angle_convention():
    water, arrays = _water_graph()
    _, mask, d_kj, angle = (_np(t) for t in triplets(arrays["nbr_idx"], arrays["nbr_mask"], arrays["nbr_vec"]))
    _, found = flat_triplets(water, 5.0)
    assert int(mask.sum()) == len(found) == 6  # each of the 6 directed edges has one k
    np.testing.assert_allclose(sorted(angle[mask.astype(bool)]), sorted(t[2] for t in found), rtol=1e-5)
    np.testing.assert_allclose(sorted(d_kj[mask.astype(bool)]), sorted(t[3] for t in found), rtol=1e-5)


def test_a_periodic_image_of_i_is_a_valid_k():
    chain = ase.Atoms("H", positions=[[0, 0, 0]], cell=[2.0, 20, 20], pbc=[True, False, False])
    arrays = RadiusGraphPreprocessor(cutoff=2.5, max_neighbors=2).fit_transform(["c"], [chain], "structure").arrays
    _, mask, _, angle = (_np(t) for t in triplets(arrays["nbr_idx"], arrays["nbr_mask"], arrays["nbr_vec"]))
    # i's neighbours are its own images at ±2 Å; each such j has neighbours at ±2 Å from it: one is i itself (left
    # out), the other an image of i at ±4 Å from i, straight on (angle 0)
    assert int(mask.sum()) == 2 and np.allclose(angle[mask.astype(bool)], 0.0, atol=1e-6)


def _swish(x):
    return x / (1 + np.exp(-x))


def _lin(layer, x):
    return x @ _np(layer.kernel) + (_np(layer.bias) if layer.use_bias else 0.0)


def test_interaction_and_output_blocks_match_pygs_flat_layout():
    water, arrays = _water_graph()
    rng = np.random.default_rng(0)
    n, k = arrays["nbr_idx"].shape[1:]
    m = rng.normal(size=(1, n, k, 16)).astype(np.float32)
    rbf = rng.normal(size=(1, n, k, 6)).astype(np.float32)
    kj_idx, tmask, _, _ = triplets(arrays["nbr_idx"], arrays["nbr_mask"], arrays["nbr_vec"])
    sbf = rng.normal(size=(1, n * k, k, 42)).astype(np.float32)
    block = DimeNetInteraction(16, 8, 4)
    out = _np(block(m, rbf, sbf, kj_idx, tmask))
    output = DimeNetOutput(16, 5, 12, 2)
    output(m, rbf, arrays["nbr_mask"])
    output.lin.kernel.assign(rng.normal(size=(12, 5)))  # not the zero init, so the comparison means something
    p = _np(output(m, rbf, arrays["nbr_mask"]))

    slots = [(i, s) for i in range(n) for s in range(k) if arrays["nbr_mask"][0, i, s]]
    flat = {slot: e for e, slot in enumerate(slots)}
    x, r = np.stack([m[0][slot] for slot in slots]), np.stack([rbf[0][slot] for slot in slots])
    x_ji = _swish(_lin(block.lin_ji, x))
    x_kj = _swish(_lin(block.lin_down, _swish(_lin(block.lin_kj, x)) * _lin(block.lin_rbf2, _lin(block.lin_rbf1, r))))
    summed = np.zeros((len(slots), 8))
    kj, tm = _np(kj_idx)[0].astype(int), _np(tmask)[0].astype(bool)
    for e_ji, (i, s) in enumerate(slots):
        for t in np.flatnonzero(tm[i * k + s]):
            e_kj = flat[divmod(kj[i * k + s, t], k)]
            summed[e_ji] += x_kj[e_kj] * _lin(block.lin_sbf2, _lin(block.lin_sbf1, sbf[0, i * k + s, t]))
    h = x_ji + _swish(_lin(block.lin_up, summed))
    for first, second in block.residuals_before:
        h = h + _swish(_lin(second, _swish(_lin(first, h))))
    h = _swish(_lin(block.lin, h)) + x
    for first, second in block.residuals_after:
        h = h + _swish(_lin(second, _swish(_lin(first, h))))
    np.testing.assert_allclose(np.stack([out[0][slot] for slot in slots]), h, rtol=1e-4, atol=1e-4)

    atoms = np.zeros((n, 16))
    for e, (i, _) in enumerate(slots):
        atoms[i] += _lin(output.lin_rbf, r[e]) * x[e]
    y = _lin(output.lin_up, atoms)
    for lin in output.lins:
        y = _swish(_lin(lin, y))
    np.testing.assert_allclose(p[0], _lin(output.lin, y), rtol=1e-4, atol=1e-4)
    assert len(block.residuals_after) == 2


def _run(out, dataset, limit, **options):
    options = {"dataset": dataset, "split": "random", "replicates": 1, "limit": limit, "out": str(out), **options}
    return run(resolve("dimenet", {}, options))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("dimenet")
    summary = _run(out, "qm9_first500_u0", 48, pooling="abp", abp_mode="faithful", **{**SMALL, "batch_size": 64})  # one shape to compile
    assert np.isfinite(summary["metrics"]["mae"]["mean"])
    return out


def test_keras_round_trip_and_saved_model(run_dir, tmp_path):
    from test_schnet import bad_molecules

    check_round_trip_and_saved_model(run_dir, bad_molecules()[:3], "structure", tmp_path)


@pytest.mark.runner_logic
def test_crystals_train_on_periodic_triplets(tmp_path):
    summary = _run(tmp_path, "matbench_phonons", 16, pooling="sum", cutoff=3.5, max_neighbors=16, max_atoms=8, **SMALL)
    assert np.isfinite(summary["metrics"]["mae"]["mean"]) and summary["n_rows_used"] >= 8
