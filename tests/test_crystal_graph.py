"""Padded crystal graphs: kNN against pymatgen, radius graphs, batching, bad input, and the numpy
references of the edge / line-graph / angle features."""

from __future__ import annotations

import ase
import numpy as np
import pytest
from ase.build import bulk, molecule
from pymatgen.io.ase import AseAtomsAdaptor

from crystal_edges_reference import (
    ANGLE_CENTERS,
    DISTANCE_CENTERS,
    N_EDGE_FEATURES,
    PHI_CENTERS,
    THETA_CENTERS,
    angle_features_reference,
    edge_features_reference,
    line_graph_reference,
)

from keras_chem.data.loaders import load_dataset
from keras_chem.featurizers.crystal_graph import knn_graph, pad_graphs, radius_graph
from keras_chem.structures.neighbors import radius_neighbors

pytestmark = pytest.mark.backend_independent

K = 12


@pytest.fixture(scope="module")
def phonons() -> list[ase.Atoms]:
    return load_dataset("matbench_phonons").inputs


def sample(phonons: list[ase.Atoms]) -> list[ase.Atoms]:
    """The first 25 crystals and the largest one."""
    largest = max(phonons, key=len)
    return phonons[:25] + [largest]


def pymatgen_distances(atoms: ase.Atoms, k: int = K) -> np.ndarray:
    """k smallest neighbour distances of every atom from pymatgen, radius grown as upstream."""
    structure = AseAtomsAdaptor.get_structure(atoms)
    radius = 8.0
    while True:
        neighbors = structure.get_all_neighbors(radius)
        if min(len(n) for n in neighbors) >= k:
            break
        radius += 2.0
    return np.array([sorted(n.nn_distance for n in nbrs)[:k] for nbrs in neighbors])


def assert_valid_vectors(atoms: ase.Atoms, graph: dict) -> None:
    """Every real slot is cart(image of j) - cart(i) for an integer lattice translation."""
    pos, cell = atoms.positions, atoms.cell.array
    i = np.repeat(np.arange(len(atoms))[:, None], graph["nbr_idx"].shape[1], axis=1)
    mask = graph["nbr_mask"]
    image = pos[i[mask]] + graph["nbr_vec"][mask].astype(np.float64) - pos[graph["nbr_idx"][mask]]
    shifts = image @ np.linalg.inv(cell)
    np.testing.assert_allclose(shifts, np.rint(shifts), atol=1e-5)


def graph_distances(graph: dict) -> np.ndarray:
    return np.linalg.norm(graph["nbr_vec"].astype(np.float64), axis=-1)


# ---------------------------------------------------------------- kNN graph


def test_knn_matches_pymatgen_distances(phonons):
    for atoms in sample(phonons):
        graph = knn_graph(atoms)
        d = graph_distances(graph)
        assert np.all(np.diff(d, axis=1) >= -1e-6)  # nearest first
        np.testing.assert_allclose(d, pymatgen_distances(atoms), atol=1e-5)
        assert_valid_vectors(atoms, graph)


def test_knn_arrays(phonons):
    atoms = phonons[0]
    graph = knn_graph(atoms)
    n = len(atoms)
    assert graph["atom_z"].dtype == np.int32 and graph["atom_z"].shape == (n,)
    assert graph["nbr_idx"].dtype == np.int32 and graph["nbr_idx"].shape == (n, K)
    assert graph["nbr_vec"].dtype == np.float32 and graph["nbr_vec"].shape == (n, K, 3)
    assert graph["nbr_mask"].dtype == bool and graph["nbr_mask"].all()
    np.testing.assert_array_equal(graph["atom_z"], atoms.numbers)
    assert graph["nbr_idx"].min() >= 0 and graph["nbr_idx"].max() < n


def test_knn_is_the_upstream_schedule(phonons):
    """The quick first search of k_nearest gives exactly the pairs of the 8 Å + 2 Å schedule."""
    for atoms in phonons[:300]:
        graph = knn_graph(atoms)
        radius = 8.0
        while (ref := radius_neighbors(atoms, radius)).counts(len(atoms)).min() < K:
            radius += 2.0
        ref = ref.take(np.concatenate([np.flatnonzero(ref.i == a)[:K] for a in range(len(atoms))]))
        np.testing.assert_array_equal(graph["nbr_idx"].ravel(), ref.j)
        np.testing.assert_allclose(graph["nbr_vec"].reshape(-1, 3), ref.vectors, atol=1e-5)


def test_knn_accepts_pymatgen_structures(phonons):
    atoms = phonons[1]
    a, b = knn_graph(atoms), knn_graph(AseAtomsAdaptor.get_structure(atoms))
    np.testing.assert_array_equal(a["nbr_idx"], b["nbr_idx"])
    np.testing.assert_allclose(a["nbr_vec"], b["nbr_vec"], atol=1e-5)


def test_fcc_copper_has_twelve_nearest_neighbours():
    atoms = bulk("Cu", "fcc", a=3.61)
    graph = knn_graph(atoms)
    assert np.all(graph["nbr_idx"] == 0)  # one atom: every neighbour is a periodic image of itself
    np.testing.assert_allclose(graph_distances(graph), 3.61 / np.sqrt(2), atol=1e-5)
    vectors = {tuple(np.rint(v * 2 / 3.61).astype(int)) for v in graph["nbr_vec"][0]}
    assert len(vectors) == 12 and all(sorted(np.abs(v)) == [0, 1, 1] for v in vectors)


def test_single_atom_cell_uses_periodic_images():
    atoms = ase.Atoms("Po", cell=np.eye(3) * 3.35, pbc=True)  # simple cubic: 6 at a, 12 at a·√2
    graph = knn_graph(atoms)
    d = graph_distances(graph)[0]
    np.testing.assert_allclose(d[:6], 3.35, atol=1e-5)
    np.testing.assert_allclose(d[6:], 3.35 * np.sqrt(2), atol=1e-5)
    np.testing.assert_allclose(graph_distances(graph), pymatgen_distances(atoms), atol=1e-5)


def test_cell_smaller_than_the_radius():
    cell = [[1.1, 0.0, 0.0], [0.3, 1.2, 0.0], [0.2, 0.1, 1.3]]
    atoms = ase.Atoms("HLi", scaled_positions=[[0, 0, 0], [0.5, 0.4, 0.6]], cell=cell, pbc=True)
    graph = knn_graph(atoms)
    np.testing.assert_allclose(graph_distances(graph), pymatgen_distances(atoms), atol=1e-5)
    assert_valid_vectors(atoms, graph)


@pytest.mark.parametrize("pbc", [(True, True, False), (True, True, True)])
def test_sparse_slab_grows_the_radius_and_sets_the_flag(pbc):
    """A one-atom layer with 4.5 Å spacing and 20 Å vacuum: 8 neighbours within 8 Å, so the
    radius grows to 10 Å, the 12 nearest include 4 at 9 Å and the rho > 8 flag fires."""
    atoms = ase.Atoms("Cu", positions=[[0, 0, 10]], cell=[4.5, 4.5, 20.0], pbc=pbc)
    graph = knn_graph(atoms)
    d = graph_distances(graph)[0]
    np.testing.assert_allclose(d, [4.5] * 4 + [4.5 * np.sqrt(2)] * 4 + [9.0] * 4, atol=1e-5)
    assert np.all(graph["nbr_vec"][..., 2] == 0)  # never across the vacuum
    flag = edge_features_reference(graph["nbr_vec"])[..., -1]
    np.testing.assert_array_equal(flag[0], [0] * 8 + [1] * 4)


def test_molecule_with_too_few_atoms_is_a_clear_error():
    with pytest.raises(ValueError, match="3 atoms and no periodicity cannot give 12 neighbours"):
        knn_graph(molecule("H2O"))
    graph = knn_graph(molecule("C6H6"), k=11)  # 12 atoms: 11 neighbours each is possible
    assert graph["nbr_idx"].shape == (12, 11)
    assert not np.any(graph["nbr_idx"] == np.arange(12)[:, None])  # no self-images without pbc


def test_radius_limit_and_bad_structures_are_clear_errors():
    sparse = ase.Atoms("Cu", cell=[30.0, 30.0, 30.0], pbc=True)
    with pytest.raises(ValueError, match="has only 0 neighbours within 20 Å"):
        knn_graph(sparse, max_radius=20.0)
    flat = ase.Atoms("Cu2", positions=[[0, 0, 0], [1, 0, 0]], cell=[[3, 0, 0], [0, 3, 0], [0, 0, 0]], pbc=True)
    with pytest.raises(ValueError, match="zero volume"):
        knn_graph(flat)
    with pytest.raises(ValueError, match="k must be >= 1"):
        knn_graph(bulk("Cu"), k=0)
    with pytest.raises(ValueError, match="start_radius 50.0 Å is larger than max_radius 40.0 Å"):
        knn_graph(bulk("Cu"), start_radius=50.0)


# ---------------------------------------------------------------- radius graph


def test_radius_graph_pads_and_keeps_the_nearest(phonons):
    atoms = phonons[3]
    cutoff, cap = 4.0, 6
    graph = radius_graph(atoms, cutoff, cap)
    nl = radius_neighbors(atoms, cutoff)
    counts = nl.counts(len(atoms))
    np.testing.assert_array_equal(graph["nbr_mask"].sum(axis=1), np.minimum(counts, cap))
    for i in range(len(atoms)):
        mine = nl.i == i
        kept = min(counts[i], cap)
        np.testing.assert_array_equal(graph["nbr_idx"][i, :kept], nl.j[mine][:kept])
        np.testing.assert_allclose(graph_distances(graph)[i, :kept], nl.distances[mine][:kept], atol=1e-5)
        assert np.all(graph["nbr_idx"][i, kept:] == i)  # padding points at the atom itself
        assert np.all(graph["nbr_vec"][i, kept:] == 0)
    assert_valid_vectors(atoms, graph)


def test_radius_graph_with_an_isolated_atom():
    atoms = ase.Atoms("H2", positions=[[0, 0, 0], [0.74, 0, 0]], cell=[10.0, 10.0, 10.0], pbc=True)
    atoms += ase.Atoms("He", positions=[[5, 5, 5]])
    graph = radius_graph(atoms, 2.0, 4)
    np.testing.assert_array_equal(graph["nbr_mask"].sum(axis=1), [1, 1, 0])
    np.testing.assert_array_equal(graph["nbr_idx"][:2, 0], [1, 0])


# ---------------------------------------------------------------- batching


def test_pad_graphs(phonons):
    graphs = [knn_graph(a) for a in phonons[:4]]
    for g in graphs:
        g["pe"] = np.ones((len(g["atom_z"]), 40), dtype=np.float32)
    sizes = [len(g["atom_z"]) for g in graphs]
    n_cap = max(sizes) + 3
    batch = pad_graphs(graphs, n_cap)
    expected = {
        "atom_z": ((4, n_cap), np.int32),
        "atom_mask": ((4, n_cap), np.bool_),
        "nbr_idx": ((4, n_cap, K), np.int32),
        "nbr_mask": ((4, n_cap, K), np.bool_),
        "nbr_vec": ((4, n_cap, K, 3), np.float32),
        "pe": ((4, n_cap, 40), np.float32),
    }
    assert {name: (a.shape, a.dtype) for name, a in batch.items()} == expected
    for row, (g, n) in enumerate(zip(graphs, sizes)):
        np.testing.assert_array_equal(batch["atom_mask"][row], np.arange(n_cap) < n)
        for name in ("atom_z", "nbr_idx", "nbr_mask", "nbr_vec", "pe"):
            np.testing.assert_array_equal(batch[name][row, :n], g[name])
            assert not np.any(batch[name][row, n:])  # padding: 0 / False everywhere
    trimmed = {name: a[:, : max(sizes)] for name, a in batch.items()}
    assert trimmed["nbr_idx"].max() < max(sizes)  # trimming keeps every index valid


def test_pad_graphs_rejects_bad_batches(phonons):
    a, b = knn_graph(phonons[0]), knn_graph(phonons[1], k=8)
    with pytest.raises(ValueError, match="different neighbour counts"):
        pad_graphs([a, b], 50)
    with pytest.raises(ValueError, match="over the cap"):
        pad_graphs([a], len(a["atom_z"]) - 1)
    with pytest.raises(ValueError, match="positional encodings"):
        pad_graphs([a, {**knn_graph(phonons[1]), "pe": np.zeros((len(phonons[1]), 40), np.float32)}], 50)
    assert "pe" not in pad_graphs([a], 50)


# ---------------------------------------------------------------- feature references


def test_grids_match_upstream_arange():
    for grid, (lo, hi, step) in [
        (DISTANCE_CENTERS, (0, 8.0, 0.2)),
        (THETA_CENTERS, (0, 3.2, 0.2)),
        (PHI_CENTERS, (-3.2, 3.2, 0.4)),
        (ANGLE_CENTERS, (-1.4, 1.5, 0.1)),
    ]:
        upstream = np.arange(lo, hi + step, step)
        assert len(grid) == len(upstream)
        np.testing.assert_allclose(grid, upstream, atol=1e-9)
    assert (len(DISTANCE_CENTERS), len(THETA_CENTERS), len(PHI_CENTERS), len(ANGLE_CENTERS)) == (41, 17, 17, 30)
    assert N_EDGE_FEATURES == 76


def test_edge_features_reference_values():
    vec = np.array([[1.0, 1.0, 1.0], [0.0, 2.0, 0.0], [0.0, 0.0, 0.0], [9.0, 0.0, 0.0]])
    out = edge_features_reference(vec)
    assert out.shape == (4, 76)
    rho, theta, phi = np.sqrt(3), np.arccos(1 / np.sqrt(3)), np.pi / 4
    np.testing.assert_allclose(out[0, :41], np.exp(-((rho - DISTANCE_CENTERS) ** 2) / 0.04))
    np.testing.assert_allclose(out[0, 41:58], np.exp(-((theta - THETA_CENTERS) ** 2) / 0.04))
    np.testing.assert_allclose(out[0, 58:75], np.exp(-((phi - PHI_CENTERS) ** 2) / 0.16))
    # x == 0 -> 0.001: phi = atan2(2, 0.001), just below pi/2
    np.testing.assert_allclose(out[1, 58:75], np.exp(-((np.arctan2(2, 0.001) - PHI_CENTERS) ** 2) / 0.16))
    # zero vector: rho -> 0.001, theta = arccos(0) = pi/2, phi = atan2(0, 0.001) = 0
    np.testing.assert_allclose(out[2, :41], np.exp(-((0.001 - DISTANCE_CENTERS) ** 2) / 0.04))
    np.testing.assert_allclose(out[2, 41:58], np.exp(-((np.pi / 2 - THETA_CENTERS) ** 2) / 0.04))
    np.testing.assert_array_equal(out[:, 75], [0, 0, 0, 1])
    masked = edge_features_reference(vec, nbr_mask=np.array([True, False, True, True]))
    assert not masked[1].any() and np.array_equal(masked[0], out[0])


def brute_force_cosines(atoms: ase.Atoms, graph: dict) -> np.ndarray:
    """Bond angle at j between j -> i and j -> m, from positions and integer lattice shifts, one loop per entry."""
    pos, cell = atoms.positions, atoms.cell.array
    idx, vec = graph["nbr_idx"], graph["nbr_vec"].astype(np.float64)
    n, k = idx.shape
    shifts = np.rint((pos[:, None] + vec - pos[idx]) @ np.linalg.inv(cell))  # [n, k, 3]
    out = np.zeros((n, k, k))
    for i in range(n):
        for a in range(k):
            j = idx[i, a]
            j_image = pos[j] + shifts[i, a] @ cell
            for b in range(k):
                m_image = pos[idx[j, b]] + (shifts[i, a] + shifts[j, b]) @ cell
                u, w = m_image - j_image, pos[i] - j_image
                out[i, a, b] = np.dot(u, w) / (np.linalg.norm(u) * np.linalg.norm(w))
    return out


def test_line_graph_reference_is_the_bond_angle(phonons):
    atoms = phonons[2]
    graph = knn_graph(atoms)
    lg_idx, lg_mask, cos = line_graph_reference(graph["nbr_idx"], graph["nbr_vec"], graph["nbr_mask"])
    n = len(atoms)
    assert lg_idx.shape == (n * K, K) and lg_mask.shape == (n * K, K) and cos.shape == (n, K, K)
    assert lg_mask.all()
    np.testing.assert_array_equal(lg_idx.reshape(n, K, K), graph["nbr_idx"][..., None] * K + np.arange(K))
    np.testing.assert_allclose(cos, brute_force_cosines(atoms, graph), atol=1e-5)


def test_line_graph_reference_fcc_angles_and_backtracking():
    graph = knn_graph(bulk("Cu", "fcc", a=3.61))
    _, _, cos = line_graph_reference(graph["nbr_idx"], graph["nbr_vec"], graph["nbr_mask"])
    values, counts = np.unique(np.round(cos[0], 6), return_counts=True)
    # per edge: the way back (cos 1), 4 at 60°, 2 at 90°, 4 at 120°, straight on (cos -1)
    np.testing.assert_allclose(values, [-1, -0.5, 0, 0.5, 1])
    np.testing.assert_array_equal(counts, np.array([1, 4, 2, 4, 1]) * 12)


def test_line_graph_reference_masks_and_guards():
    nbr_idx = np.array([[1, 0], [0, 1]])
    nbr_vec = np.array([[[1.0, 0, 0], [0, 0, 0]], [[-1.0, 0, 0], [0, 2.0, 0]]])
    nbr_mask = np.array([[True, True], [True, False]])
    lg_idx, lg_mask, cos = line_graph_reference(nbr_idx, nbr_vec, nbr_mask)
    np.testing.assert_array_equal(lg_mask, [[True, False], [True, True], [True, True], [False, False]])
    np.testing.assert_array_equal(lg_idx, [[2, 0], [0, 1], [0, 1], [0, 0]])
    # a zero-length real edge: 1e-4 is added to every denominator, so cos(0 <- 1, 1 <- 0) is 1/(1+1e-4)
    np.testing.assert_allclose(cos[0, 0, 0], 1 / (1 + 1e-4))
    assert cos[0, 1, 0] == 0 and cos[1, 1].sum() == 0 and np.all(np.abs(cos) <= 1)
    batched = line_graph_reference(nbr_idx[None], nbr_vec[None], nbr_mask[None])
    np.testing.assert_array_equal(batched[2][0], cos)


def test_angle_features_reference():
    out = angle_features_reference(np.array([[-1.0, 0.5]]))
    assert out.shape == (1, 2, 30)
    np.testing.assert_allclose(out[0, 0], np.exp(-((-1.0 - ANGLE_CENTERS) ** 2) / 0.01))
    assert out[0, 1, np.argmin(np.abs(ANGLE_CENTERS - 0.5))] == pytest.approx(1.0)
