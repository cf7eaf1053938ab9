import functools

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from keras_chem.data.loaders import load_dataset
from keras_chem.featurizers.pdf import atomic_pdfs, reference_atomic_pdfs, shell_volumes
from keras_chem.structures.molecules import smiles_to_atoms

pytestmark = pytest.mark.backend_independent


def _small_triclinic_cell() -> Atoms:
    """Three atoms in a skewed cell much smaller than the 10 Å cutoff (many images)."""
    cell = np.array([[3.1, 0.0, 0.0], [0.9, 2.8, 0.0], [0.4, 0.7, 3.3]])
    frac = np.array([[0.0, 0.0, 0.0], [0.31, 0.52, 0.13], [0.77, 0.18, 0.64]])
    return Atoms("NaClO", scaled_positions=frac, cell=cell, pbc=True)


@functools.cache
def _structures():
    molecule, reason = smiles_to_atoms("CC(=O)Nc1ccc(O)cc1", seed=0)
    assert molecule is not None, reason
    phonons = load_dataset("matbench_phonons", limit=2).inputs[1]
    return {
        "molecule": molecule,
        "fcc_cu_primitive": bulk("Cu", "fcc", a=3.61),
        "fcc_cu_cubic_2x2x2": bulk("Cu", "fcc", a=3.61, cubic=True).repeat(2),
        "matbench_phonons": phonons,
        "small_triclinic": _small_triclinic_cell(),
    }


@pytest.mark.parametrize("name", list(_structures()))
def test_matches_reference_recipe(name):
    atoms = _structures()[name]
    ours = atomic_pdfs(atoms)
    assert ours.shape == (len(atoms), 100) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference_atomic_pdfs(atoms), rtol=0, atol=1e-6)
    assert ours.max() > 0


def test_shell_volumes_keep_the_original_offset():
    v = shell_volumes()
    x = np.arange(0, 10, 0.1)
    assert v[0] == 1.0
    np.testing.assert_allclose(v[1:], 4 * np.pi / 3 * (x[1:] ** 3 - x[:-1] ** 3))


def test_single_pair_lands_in_its_bin_before_smoothing():
    # d = 1.5 Å → round(15) - 1 = bin 14; the Gaussian (σ = 1 bin) peaks there.
    pdf = atomic_pdfs(Atoms("H2", positions=[[0, 0, 0], [0, 0, 1.5]]))
    assert np.argmax(pdf[0]) == 14 and np.argmax(pdf[1]) == 14
    np.testing.assert_allclose(pdf[0], pdf[1])


def test_isolated_atom_has_zero_pdf():
    atoms = Atoms("NaCl", positions=[[0, 0, 0], [0, 0, 12.0]])
    np.testing.assert_array_equal(atomic_pdfs(atoms), np.zeros((2, 100), dtype=np.float32))


def test_overlapping_atoms_are_dropped_not_wrapped():
    # 0.01 Å apart: rounds to bin -1, dropped (the notebook's np.put would hit the last bin).
    atoms = Atoms("H3", positions=[[0, 0, 0], [0, 0, 0.01], [0, 0, 2.0]])
    pdf = atomic_pdfs(atoms)
    np.testing.assert_allclose(pdf, reference_atomic_pdfs(atoms), atol=1e-6)
    assert pdf[0, -10:].max() == 0.0


def test_bad_structure_raises():
    with pytest.raises(ValueError, match="empty"):
        atomic_pdfs(Atoms())
