"""Molecules (SMILES -> conformer) and crystal I/O."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import ase
import ase.io
import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Molecule, Structure

from keras_chem.structures import molecules
from keras_chem.structures.crystals import check_structure, read_structures, structure_arrays, to_atoms
from keras_chem.structures.molecules import element_symbols, embed_conformer, mol_from_smiles, smiles_to_atoms

pytestmark = pytest.mark.backend_independent


def data_dir() -> Path:
    if "KCHEM_DATA_DIR" not in os.environ:
        pytest.skip("KCHEM_DATA_DIR is not set")
    return Path(os.environ["KCHEM_DATA_DIR"])


@pytest.fixture(scope="module")
def phonons() -> list[dict]:
    with gzip.open(data_dir() / "matbench_phonons" / "matbench_phonons.json.gz", "rt") as handle:
        return [row[0] for row in json.load(handle)["data"]]


# ---------------------------------------------------------------- molecules


def test_ethanol_has_explicit_hydrogens_in_rdkit_order():
    mol, reason = mol_from_smiles("CCO")
    assert reason is None
    assert element_symbols(mol) == ["C", "C", "O"] + ["H"] * 6
    atoms, reason = smiles_to_atoms("CCO")
    assert reason is None
    assert len(atoms) == 9
    assert atoms.get_chemical_symbols() == element_symbols(mol)
    assert not atoms.pbc.any()
    assert atoms.info["forcefield"] == "MMFF94"


def test_explicit_hydrogens_in_smiles_follow_the_reference_order():
    from rdkit import Chem

    for smiles in ["[H]OC([H])([H])C", "[2H]C(Cl)Cl", "[H][H]"]:
        mol, reason = mol_from_smiles(smiles)
        assert reason is None
        assert element_symbols(mol) == element_symbols(Chem.AddHs(Chem.MolFromSmiles(smiles)))
    mol, _ = mol_from_smiles("[H]OC([H])([H])C")
    assert element_symbols(mol)[:3] == ["O", "C", "C"]


def test_double_bond_stereo_is_kept():
    for smiles, expected in [("C/C=C/C", 180.0), ("C/C=C\\C", 0.0)]:
        atoms, _ = smiles_to_atoms(smiles)
        off = abs(atoms.get_dihedral(0, 1, 2, 3) - expected) % 360.0
        assert min(off, 360.0 - off) < 15.0


def test_conformer_geometry_is_relaxed():
    atoms, _ = smiles_to_atoms("CCO")
    d = atoms.get_all_distances()
    assert 1.48 < d[0, 1] < 1.56  # C-C
    assert 1.38 < d[1, 2] < 1.46  # C-O
    assert np.all((d[0, 3:6] > 1.05) & (d[0, 3:6] < 1.13))  # C-H


def test_conformer_is_deterministic_within_a_run():
    a, _ = smiles_to_atoms("CC(=O)Nc1ccc(O)cc1")
    b, _ = smiles_to_atoms("CC(=O)Nc1ccc(O)cc1")
    c, _ = smiles_to_atoms("CC(=O)Nc1ccc(O)cc1", seed=7)
    assert np.array_equal(a.positions, b.positions)
    assert not np.allclose(a.positions, c.positions)


def test_conformer_is_deterministic_across_processes():
    smiles = "CC(=O)Nc1ccc(O)cc1"
    code = (
        "import sys; from keras_chem.structures.molecules import smiles_to_atoms;"
        f"a, _ = smiles_to_atoms({smiles!r}); sys.stdout.write(a.positions.tobytes().hex())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    here, _ = smiles_to_atoms(smiles)
    assert out.stdout.strip() == here.positions.tobytes().hex()


def test_embedding_does_not_touch_the_input_mol():
    mol, _ = mol_from_smiles("c1ccccc1")
    atoms, _ = embed_conformer(mol)
    assert mol.GetNumConformers() == 0
    assert len(atoms) == 12


@pytest.mark.parametrize(
    "smiles, expected",
    [
        ("", "empty SMILES"),
        ("   ", "empty SMILES"),
        ("C1CC", "unclosed ring"),
        ("c1ccccc1X", "syntax error while parsing: c1ccccc1X (around position 9)"),
        ("CC(C", "extra open parentheses"),
        ("c1cccc1", "kekulization error"),
        ("C[N+](C)(C)(C)C", "RDKit valence error: Explicit valence for atom # 1 N, 5"),
        ("*CC", "dummy atom"),
        (None, "not a string"),
    ],
)
def test_bad_smiles_give_one_line_reasons(smiles, expected, capfd):
    mol, reason = mol_from_smiles(smiles)
    assert mol is None
    assert expected in reason
    assert "\n" not in reason
    atoms, reason2 = smiles_to_atoms(smiles)
    assert atoms is None and reason2 == reason
    assert capfd.readouterr().err == ""  # RDKit's own logging is silenced


def test_tox21_rows_rdkit_rejects():
    frame = pd.read_csv(data_dir() / "tox21" / "tox21.csv.gz")
    rejected = {}
    for row, smiles in enumerate(frame["smiles"]):
        mol, reason = mol_from_smiles(smiles)
        if mol is None:
            rejected[row] = reason
    assert sorted(rejected) == [1322, 2290, 2297, 3558, 4565, 4649, 5538, 6723]
    for reason in rejected.values():
        assert reason.startswith("RDKit valence error: Explicit valence for atom # ")
        assert "Al, 6, is greater than permitted" in reason
    assert rejected[2290] == "RDKit valence error: Explicit valence for atom # 3 Al, 6, is greater than permitted"


def test_force_field_fallbacks():
    atoms, _ = smiles_to_atoms("C[Se]C")  # no MMFF94 parameters for Se
    assert atoms.info["forcefield"] == "UFF"
    atoms, reason = smiles_to_atoms("F[Xe]F")  # neither force field: ETKDG geometry kept
    assert reason is None and atoms.info["forcefield"] == "none"
    assert np.all(np.isfinite(atoms.positions))


def test_embedding_falls_back_to_random_coordinates(monkeypatch):
    real = molecules.rdDistGeom.EmbedMolecule

    def fails_without_random_coords(mol, params):
        return real(mol, params) if params.useRandomCoords else -1

    monkeypatch.setattr(molecules.rdDistGeom, "EmbedMolecule", fails_without_random_coords)
    atoms, reason = smiles_to_atoms("CCO")
    assert reason is None
    assert atoms.info["embedding"] == "etkdg_random_coords"


def test_embedding_failure_is_a_reason(monkeypatch):
    monkeypatch.setattr(molecules.rdDistGeom, "EmbedMolecule", lambda mol, params: -1)
    atoms, reason = smiles_to_atoms("CCO")
    assert atoms is None
    assert reason.startswith("ETKDG embedding failed after 3 attempt(s)")


# ---------------------------------------------------------------- crystals


def test_to_atoms_matbench_dict_matches_pymatgen(phonons):
    for d in phonons[:20]:
        ours = to_atoms(d)
        ref = to_atoms(Structure.from_dict(d))
        assert ours.get_chemical_symbols() == [site["species"][0]["element"] for site in d["sites"]]
        assert np.array_equal(ours.numbers, ref.numbers)
        np.testing.assert_allclose(ours.cell.array, ref.cell.array, atol=1e-10)
        np.testing.assert_allclose(ours.positions, ref.positions, atol=1e-8)
        np.testing.assert_allclose(ours.positions, [s["xyz"] for s in d["sites"]], atol=1e-6)
        assert ours.pbc.all()


def test_to_atoms_other_inputs():
    mol = Molecule(["O", "H", "H"], [[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    atoms = to_atoms(mol)
    assert atoms.get_chemical_symbols() == ["O", "H", "H"] and not atoms.pbc.any()
    assert to_atoms(mol.as_dict()).get_chemical_symbols() == ["O", "H", "H"]
    original = ase.Atoms("Cu", cell=np.eye(3) * 2.5, pbc=True)
    copy = to_atoms(original)
    copy.positions += 1.0
    assert np.allclose(original.positions, 0.0)
    cegann = {"lattice": np.eye(3) * 4.0, "species": ["Na", "Cl"], "frac_coords": [[0, 0, 0], [0.5, 0.5, 0.5]]}
    np.testing.assert_allclose(to_atoms(cegann).positions[1], [2.0, 2.0, 2.0])


def test_to_atoms_rejects_disorder_and_unknown_elements(phonons):
    d = json.loads(json.dumps(phonons[0]))
    d["sites"][0]["species"] = [{"element": "Te", "occu": 0.5}, {"element": "Se", "occu": 0.5}]
    with pytest.raises(ValueError, match="site 0 is disordered"):
        to_atoms(d)
    d["sites"][0]["species"] = [{"element": "Xx", "occu": 1}]
    with pytest.raises(ValueError, match="unknown element symbol 'Xx' at site 0"):
        to_atoms(d)
    with pytest.raises(ValueError, match="cannot convert"):
        to_atoms(42)


@pytest.mark.parametrize("filename, fmt", [("s.cif", "cif"), ("POSCAR", "vasp"), ("s.vasp", "vasp"), ("s.extxyz", "extxyz")])
def test_file_round_trip(tmp_path, phonons, filename, fmt):
    original = to_atoms(phonons[5])
    path = tmp_path / filename
    ase.io.write(path, original, format=fmt)
    (back,) = read_structures(path)
    assert back.get_chemical_symbols() == original.get_chemical_symbols()
    np.testing.assert_allclose(back.cell.array, original.cell.array, atol=1e-5)
    frac_diff = back.get_scaled_positions() - original.get_scaled_positions()
    np.testing.assert_allclose(frac_diff - np.round(frac_diff), 0.0, atol=1e-5)
    assert back.pbc.all()


def test_xyz_with_many_frames(tmp_path):
    frames = [ase.Atoms("H2O", positions=np.random.default_rng(k).normal(size=(3, 3))) for k in range(3)]
    path = tmp_path / "mols.xyz"
    ase.io.write(path, frames)
    back = read_structures(path)
    assert len(back) == 3
    np.testing.assert_allclose(back[2].positions, frames[2].positions, atol=1e-6)


def test_read_errors_name_the_file(tmp_path):
    bad = tmp_path / "broken.cif"
    bad.write_text("this is not a cif file\n")
    with pytest.raises(ValueError, match="broken.cif"):
        read_structures(bad)
    with pytest.raises(FileNotFoundError, match="missing.vasp"):
        read_structures(tmp_path / "missing.vasp")


def test_check_structure_reasons():
    assert check_structure(ase.Atoms()) == "empty structure (no atoms)"
    assert "unknown element at atom 1 (Z=0)" == check_structure(ase.Atoms(numbers=[6, 0], positions=np.zeros((2, 3))))
    nan = ase.Atoms("CO", positions=[[0, 0, 0], [np.nan, 0, 0]])
    assert check_structure(nan) == "non-finite coordinates at atom 1"
    flat = ase.Atoms("Cu", cell=[[3, 0, 0], [0, 3, 0], [3, 3, 0]], pbc=True)
    assert check_structure(flat).startswith("periodic cell has zero volume")
    assert check_structure(ase.Atoms("Cu", pbc=True)).startswith("periodic cell has zero volume")
    assert check_structure(ase.Atoms("CO", positions=[[0, 0, 0], [1.1, 0, 0]])) is None
    slab = ase.Atoms("Cu", cell=[[3, 0, 0], [0, 3, 0], [0, 0, 0]], pbc=[True, True, False])
    assert check_structure(slab) is None


def test_structure_arrays(phonons):
    arrays = structure_arrays(to_atoms(phonons[0]))
    assert arrays["numbers"].dtype == np.int32 and arrays["numbers"].shape == (len(phonons[0]["sites"]),)
    assert arrays["positions"].dtype == np.float64 and arrays["positions"].shape[1] == 3
    assert arrays["cell"].shape == (3, 3) and arrays["cell"].dtype == np.float64
    assert arrays["pbc"].dtype == bool and arrays["pbc"].tolist() == [True, True, True]


def test_slow_embedding_times_out_with_a_reason():
    # Tox21 row 217 (a steviol glycoside, 137 atoms with H): ETKDG runs for minutes.
    frame = pd.read_csv(data_dir() / "tox21" / "tox21.csv.gz")
    mol, _ = mol_from_smiles(frame["smiles"][217])
    atoms, reason = embed_conformer(mol, max_attempts=1, timeout=1)
    assert atoms is None
    assert reason == f"ETKDG embedding failed after 1 attempt(s) (seed {0xC0FFEE}; last attempt: timed out after 1 s)"
