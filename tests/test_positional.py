"""LapPE / RWPE of padded neighbour graphs: dense references, determinism, small cells."""

from __future__ import annotations

import ase
import numpy as np
import pytest
from ase.build import bulk

from keras_chem.data.loaders import load_dataset
from keras_chem.featurizers.crystal_graph import knn_graph, radius_graph
from keras_chem.featurizers.positional import (
    adjacency,
    fix_signs,
    laplacian_pe,
    positional_encodings,
    random_walk_pe,
)

pytestmark = pytest.mark.backend_independent


@pytest.fixture(scope="module")
def graphs() -> list[dict]:
    structures = load_dataset("matbench_phonons", limit=40).inputs
    largest = max(load_dataset("matbench_phonons").inputs, key=len)
    return [knn_graph(a) for a in [*structures, largest]]


def dense_adjacency(nbr_idx, nbr_mask) -> np.ndarray:
    """A[src=j, dst=i] by a plain loop over slots."""
    n, k = nbr_idx.shape
    a = np.zeros((n, n))
    for i in range(n):
        for slot in range(k):
            if nbr_mask[i, slot]:
                a[nbr_idx[i, slot], i] += 1
    return a


def dense_rwpe(nbr_idx, nbr_mask, steps=20) -> np.ndarray:
    a = dense_adjacency(nbr_idx, nbr_mask)
    out_degree = a.sum(axis=1, keepdims=True)
    p = np.divide(a, out_degree, out=np.zeros_like(a), where=out_degree > 0)
    return np.stack([np.diagonal(np.linalg.matrix_power(p, t)) for t in range(1, steps + 1)], axis=1)


def test_adjacency_counts_multi_edges():
    graph = knn_graph(ase.Atoms("NaCl", scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5]], cell=np.eye(3) * 2.8, pbc=True))
    a = adjacency(graph["nbr_idx"], graph["nbr_mask"])
    np.testing.assert_array_equal(a, dense_adjacency(graph["nbr_idx"], graph["nbr_mask"]))
    np.testing.assert_array_equal(a.sum(axis=0), [12, 12])  # in-degree = k
    assert a[0, 0] > 1  # periodic self-images are multi-edge self-loops


def test_rwpe_matches_dense_matrix_powers(graphs):
    for graph in graphs:
        rw = random_walk_pe(graph["nbr_idx"], graph["nbr_mask"])
        assert rw.dtype == np.float32 and rw.shape == (len(graph["atom_z"]), 20)
        np.testing.assert_allclose(rw, dense_rwpe(graph["nbr_idx"], graph["nbr_mask"]), atol=1e-6)


def test_rwpe_of_a_radius_graph_with_an_isolated_atom():
    atoms = ase.Atoms("H2He", positions=[[0, 0, 0], [0.74, 0, 0], [5, 5, 5]], cell=[10.0] * 3, pbc=True)
    graph = radius_graph(atoms, 2.0, 4)
    rw = random_walk_pe(graph["nbr_idx"], graph["nbr_mask"])
    np.testing.assert_allclose(rw, dense_rwpe(graph["nbr_idx"], graph["nbr_mask"]), atol=1e-7)
    np.testing.assert_array_equal(rw[:2], np.tile([0, 1] * 10, (2, 1)))  # H2: back every second step
    assert not rw[2].any()
    assert np.all(np.isfinite(laplacian_pe(graph["nbr_idx"], graph["nbr_mask"])))


def test_one_atom_cell():
    graph = knn_graph(bulk("Cu", "fcc", a=3.61))
    pe = positional_encodings(graph["nbr_idx"], graph["nbr_mask"])
    assert pe.shape == (1, 40) and pe.dtype == np.float32
    np.testing.assert_array_equal(pe[0, :20], 0)  # no non-trivial eigenvector
    np.testing.assert_array_equal(pe[0, 20:], 1)  # every walk returns


def test_small_cells_are_zero_padded(graphs):
    for graph in graphs:
        n = len(graph["atom_z"])
        lap = laplacian_pe(graph["nbr_idx"], graph["nbr_mask"])
        assert lap.shape == (n, 20) and lap.dtype == np.float32
        if n <= 20:
            assert not lap[:, n - 1 :].any()


def test_lappe_are_eigenvectors_on_a_symmetric_graph():
    """fcc Cu 2x2x2: every kNN edge is mutual, so L is symmetric and its spectrum real."""
    graph = knn_graph(bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2))  # 32 atoms
    a = adjacency(graph["nbr_idx"], graph["nbr_mask"])
    np.testing.assert_array_equal(a, a.T)
    laplacian = np.eye(32) - a / 12
    lap = laplacian_pe(graph["nbr_idx"], graph["nbr_mask"]).astype(np.float64)
    values = np.einsum("ik,ij,jk->k", lap, laplacian, lap) / np.einsum("ik,ik->k", lap, lap)
    np.testing.assert_allclose(laplacian @ lap, lap * values, atol=1e-5)
    expected = np.sort(np.linalg.eigvalsh(laplacian))[1:21]
    np.testing.assert_allclose(values, expected, atol=1e-5)  # the 20 smallest after the trivial one


def test_signs_are_fixed():
    v = np.array([[0.1, -0.5, 0.3], [-0.7, 0.5, 0.0], [0.2, 0.1, -0.3]])
    fixed = fix_signs(v)
    np.testing.assert_array_equal(fixed[:, 0], -v[:, 0])  # largest |value| -0.7 -> positive
    np.testing.assert_array_equal(fixed[:, 1], -v[:, 1])  # tie -0.5 / 0.5: the lowest index decides
    np.testing.assert_array_equal(fixed[:, 2], v[:, 2])  # tie 0.3 / -0.3: lowest index is positive
    for graph in [knn_graph(bulk("NaCl", "rocksalt", a=5.64, cubic=True))]:
        lap = laplacian_pe(graph["nbr_idx"], graph["nbr_mask"])
        for column in lap.T[np.abs(lap).max(axis=0) > 0]:
            top = np.flatnonzero(np.abs(column) >= np.abs(column).max() - 1e-6)[0]
            assert column[top] > 0


def test_encodings_are_deterministic(graphs):
    for graph in graphs[:10] + graphs[-1:]:
        first = positional_encodings(graph["nbr_idx"], graph["nbr_mask"])
        again = positional_encodings(graph["nbr_idx"].copy(), graph["nbr_mask"].copy())
        np.testing.assert_array_equal(first, again)
        assert first.shape == (len(graph["atom_z"]), 40) and np.all(np.isfinite(first))


def test_rwpe_is_permutation_equivariant(graphs):
    graph = graphs[-1]
    n = len(graph["atom_z"])
    perm = np.random.default_rng(0).permutation(n)
    inverse = np.argsort(perm)
    idx = inverse[graph["nbr_idx"][perm]]  # atom perm[r] becomes atom r
    rw = random_walk_pe(graph["nbr_idx"], graph["nbr_mask"])
    np.testing.assert_allclose(random_walk_pe(idx, graph["nbr_mask"][perm]), rw[perm], atol=1e-6)


def test_bad_neighbour_arrays_are_clear_errors():
    with pytest.raises(ValueError, match="out of range"):
        adjacency(np.array([[0, 2]]), np.array([[True, True]]))
    with pytest.raises(ValueError, match="must both be"):
        adjacency(np.zeros((2, 3), int), np.ones((2, 2), bool))
