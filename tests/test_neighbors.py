"""vesin neighbour lists against ASE's reference implementation."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import ase
import numpy as np
import pytest
from ase.build import bulk
from ase.neighborlist import neighbor_list

from keras_chem.structures.crystals import to_atoms
from keras_chem.structures.molecules import smiles_to_atoms
from keras_chem.structures.neighbors import (
    NeighborList,
    isolated_atoms,
    isolated_atoms_reason,
    k_nearest,
    radius_neighbors,
)

pytestmark = pytest.mark.backend_independent


@pytest.fixture(scope="module")
def phonons() -> list[ase.Atoms]:
    if "KCHEM_DATA_DIR" not in os.environ:
        pytest.skip("KCHEM_DATA_DIR is not set")
    path = Path(os.environ["KCHEM_DATA_DIR"]) / "matbench_phonons" / "matbench_phonons.json.gz"
    with gzip.open(path, "rt") as handle:
        rows = json.load(handle)["data"]
    return [to_atoms(row[0]) for row in rows]


def as_table(i, j, shifts, distances, vectors) -> dict:
    return {
        (int(a), int(b), tuple(int(x) for x in s)): (float(d), np.asarray(v))
        for a, b, s, d, v in zip(i, j, shifts, distances, vectors)
    }


def assert_matches_ase(atoms: ase.Atoms, cutoff: float) -> NeighborList:
    nl = radius_neighbors(atoms, cutoff)
    ours = as_table(nl.i, nl.j, nl.shifts, nl.distances, nl.vectors)
    ref = as_table(*neighbor_list("ijSdD", atoms, cutoff))
    assert len(ours) == len(nl)  # no duplicate (i, j, shift)
    assert ours.keys() == ref.keys()
    for key, (d, v) in ref.items():
        assert abs(ours[key][0] - d) < 1e-6
        np.testing.assert_allclose(ours[key][1], v, atol=1e-6)
    expected = atoms.positions[nl.j] + nl.shifts @ atoms.cell.array - atoms.positions[nl.i]
    np.testing.assert_allclose(nl.vectors, expected, atol=1e-6)
    np.testing.assert_allclose(nl.distances, np.linalg.norm(nl.vectors, axis=1), atol=1e-9)
    assert nl.cutoff == cutoff
    return nl


def triclinic() -> ase.Atoms:
    cell = [[3.1, 0.0, 0.0], [1.2, 3.4, 0.0], [0.7, -0.9, 3.6]]
    atoms = ase.Atoms("NaCl", scaled_positions=[[0.1, 0.2, 0.3], [0.6, 0.55, 0.8]], cell=cell, pbc=True)
    atoms.positions += [7.0, -11.0, 4.0]  # unwrapped positions must keep working
    return atoms


def test_molecule_conformer():
    atoms, _ = smiles_to_atoms("CC(=O)Nc1ccc(O)cc1")
    nl = assert_matches_ase(atoms, 3.0)
    assert len(nl) > 0 and not np.any(nl.shifts)


def test_fcc_copper():
    nl = assert_matches_ase(bulk("Cu", "fcc", a=3.61), 5.0)
    assert len(nl) == 42  # shells: 12 at a/√2, 6 at a, 24 at a·√1.5


def test_matbench_phonons(phonons):
    largest = max(range(len(phonons)), key=lambda k: len(phonons[k]))
    for atoms in [phonons[0], phonons[1], phonons[largest]]:
        assert_matches_ase(atoms, 6.0)


def test_cell_smaller_than_cutoff():
    atoms = ase.Atoms("Po", cell=np.eye(3) * 2.5, pbc=True)
    nl = assert_matches_ase(atoms, 6.0)
    assert np.all(nl.j == 0) and np.all(np.any(nl.shifts != 0, axis=1))  # only self-images
    assert nl.distances[0] == pytest.approx(2.5)


def test_triclinic_cell():
    assert_matches_ase(triclinic(), 7.0)


def test_mixed_pbc_slab():
    slab = bulk("Cu", "fcc", a=3.61, cubic=True)
    slab.pbc = [True, False, True]
    nl = assert_matches_ase(slab, 6.0)
    assert np.all(nl.shifts[:, 1] == 0)


def test_sorted_and_deterministic(phonons):
    atoms = phonons[3]
    a = radius_neighbors(atoms, 7.0)
    b = radius_neighbors(atoms, 7.0)
    for field in ("i", "j", "shifts", "distances", "vectors"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert np.all(np.diff(a.i) >= 0)
    same_i = a.i[1:] == a.i[:-1]
    assert np.all(np.diff(a.distances)[same_i] > -1e-8)
    assert a.i.dtype == np.int64 and a.shifts.dtype == np.int32 and a.vectors.dtype == np.float64


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="cutoff"):
        radius_neighbors(bulk("Cu"), 0.0)
    with pytest.raises(ValueError, match="zero volume"):
        radius_neighbors(ase.Atoms("Cu", pbc=True), 3.0)


def test_k_nearest_matches_smallest_ase_distances(phonons):
    for atoms in [bulk("Cu", "fcc", a=3.61), phonons[0], phonons[7], triclinic()]:
        nl = k_nearest(atoms, 12)
        assert np.array_equal(nl.counts(len(atoms)), np.full(len(atoms), 12))
        assert len(nl) == 12 * len(atoms)
        i, d = neighbor_list("id", atoms, nl.cutoff + 1.0)
        for atom in range(len(atoms)):
            expected = np.sort(d[i == atom])[:12]
            np.testing.assert_allclose(nl.distances[nl.i == atom], expected, atol=1e-6)


def test_k_nearest_grows_the_radius():
    atoms = ase.Atoms("Cs", cell=np.eye(3) * 7.0, pbc=True)  # 6 at 7 Å, 12 more at 9.9 Å
    nl = k_nearest(atoms, 12, start_radius=8.0, step=2.0)
    assert nl.cutoff == 10.0
    assert np.sum(np.isclose(nl.distances, 7.0)) == 6


def test_k_nearest_ties_are_deterministic():
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)  # 12 equidistant first neighbours
    nl = k_nearest(atoms, 4)
    again = k_nearest(atoms, 4)
    assert np.array_equal(nl.j, again.j) and np.array_equal(nl.shifts, again.shifts)
    full = radius_neighbors(atoms, 3.0)
    for atom in range(len(atoms)):
        ties = sorted((int(j), tuple(s)) for j, s in zip(full.j[full.i == atom], full.shifts[full.i == atom]))
        picked = [(int(j), tuple(s)) for j, s in zip(nl.j[nl.i == atom], nl.shifts[nl.i == atom])]
        assert picked == ties[:4]


def test_k_nearest_impossible():
    water = ase.Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    with pytest.raises(ValueError, match="3 atoms and no periodicity cannot give 12"):
        k_nearest(water, 12)
    sheet = ase.Atoms("C", cell=[[20, 0, 0], [0, 20, 0], [0, 0, 0]], pbc=[True, True, False])
    with pytest.raises(ValueError, match=r"atom 0 \(C\) has only 8 neighbours within 30 Å, 12 needed"):
        k_nearest(sheet, 12, start_radius=8.0, step=2.0, max_radius=30.0)


def test_isolated_atoms():
    atoms = ase.Atoms("COO", positions=[[0, 0, 0], [1.2, 0, 0], [10, 0, 0]])
    nl = radius_neighbors(atoms, 5.0)
    assert isolated_atoms(nl, len(atoms)).tolist() == [2]
    assert isolated_atoms_reason(atoms, nl) == "atom 2 (O) has no neighbour within 5 Å"
    assert isolated_atoms_reason(atoms, radius_neighbors(atoms, 9.0)) is None
    far = radius_neighbors(atoms, 1.0)
    assert isolated_atoms(far, 3).tolist() == [0, 1, 2]
    assert isolated_atoms_reason(atoms, far) == "atom 0 (C) has no neighbour within 1 Å (3 isolated atoms)"


def test_packed_sort_equals_plain_lexsort():
    from keras_chem.structures.neighbors import _sort_order

    rng = np.random.default_rng(0)
    m = 5000
    i, j = rng.integers(0, 40, m), rng.integers(0, 40, m)
    shifts = rng.integers(-3, 4, (m, 3)).astype(np.int32)
    distances = np.round(rng.uniform(0, 10, m), 1)  # many exact ties
    dkey = np.rint(distances / 1e-8).astype(np.int64)
    plain = np.lexsort((shifts[:, 2], shifts[:, 1], shifts[:, 0], j, dkey, i))
    assert np.array_equal(_sort_order(i, j, shifts, distances), plain)
    far = shifts * 200  # |shift| >= 512 takes the plain path
    plain_far = np.lexsort((far[:, 2], far[:, 1], far[:, 0], j, dkey, i))
    assert np.array_equal(_sort_order(i, j, far, distances), plain_far)
