"""Loaders (keras_chem.data.loaders) and group keys (keras_chem.data.dedup) on real data."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from keras_chem.data import loaders
from keras_chem.data.dedup import composition_key, dataset_group_keys, smiles_key, structure_key
from keras_chem.data.loaders import NO_TARGET, load_dataset, load_table
from keras_chem.data.registry import parse_card
from keras_chem.data.types import Dataset

SHARED = os.environ.get("KCHEM_DATA_DIR", "")
pytestmark = [pytest.mark.backend_independent, pytest.mark.skipif(not SHARED, reason="KCHEM_DATA_DIR not set")]


def _toy_card(monkeypatch, tmp_path, csv_text: str, task: str = "classification", targets=("a", "b")):
    """Register a one-file CSV card called "toy" whose data live in a tmp KCHEM_DATA_DIR."""
    path = tmp_path / "toy" / "toy.csv"
    path.parent.mkdir(parents=True)
    path.write_text(csv_text)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    metric = {"classification": "roc_auc", "multiclass": "accuracy"}.get(task, "mae")
    text = f"""
name = "toy"
description = "toy"
input = "smiles"
format = "csv"
task = "{task}"
targets = {json.dumps(list(targets))}
input_column = "smiles"
id_column = "key"
metric = "{metric}"
split = "random"
license = "MIT"
source = "test"
citation = "none"

[[files]]
path = "toy/toy.csv"
sha256 = "{sha}"
size = {path.stat().st_size}
url = "https://example.invalid/toy.csv"
url_sha256 = "{sha}"
transform = "none"
"""
    card = parse_card(text, "toy.toml")
    monkeypatch.setenv("KCHEM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KCHEM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(loaders, "get_card", lambda name: card)
    return card


def test_tox21():
    ds = load_dataset("tox21")
    assert isinstance(ds, Dataset) and ds.input_kind == "smiles" and ds.task == "classification"
    assert len(ds) == 7831 and ds.targets.shape == (7831, 12) and ds.targets.dtype == np.float32
    assert int(np.isnan(ds.targets).sum()) == 16026
    assert set(np.unique(ds.targets[~np.isnan(ds.targets)])) == {0.0, 1.0}
    assert ds.ids[:3] == ["0", "1", "2"] and ds.inputs[0] == "CCOc1ccc2nc(S(N)(=O)=O)sc2c1"
    assert ds.target_names[0] == "NR-AR" and ds.skipped == []


def test_limit_keeps_first_rows():
    ds = load_dataset("tox21", limit=10)
    assert len(ds) == 10 and ds.ids == [str(i) for i in range(10)]
    ph = load_dataset("matbench_phonons", limit=3)
    assert ph.ids == ["mb-phonons-0001", "mb-phonons-0002", "mb-phonons-0003"]
    assert len(load_dataset("qm9_first500_u0", limit=7)) == 7
    assert len(load_dataset("tox21", limit=0)) == 0


def test_matbench_phonons_structures_match_pymatgen():
    from pymatgen.core import Structure

    ds = load_dataset("matbench_phonons")
    assert len(ds) == 1265 and ds.input_kind == "structure"
    assert ds.ids[0] == "mb-phonons-0001" and ds.ids[-1] == "mb-phonons-1265"
    assert all(a.pbc.all() and a.cell.volume > 0 for a in ds.inputs)
    with gzip.open(Path(SHARED) / "matbench_phonons/matbench_phonons.json.gz", "rt") as handle:
        raw = json.load(handle)["data"]
    for row in (0, 7, 1264):
        ref = Structure.from_dict(raw[row][0])
        atoms = ds.inputs[row]
        assert atoms.get_chemical_symbols() == [site.specie.symbol for site in ref]
        np.testing.assert_allclose(atoms.cell[:], ref.lattice.matrix, atol=1e-10)
        np.testing.assert_allclose(atoms.positions, ref.cart_coords, atol=1e-8)
        assert ds.targets[row, 0] == np.float32(raw[row][1])
    comp = load_dataset("matbench_phonons_composition")
    assert comp.ids == ds.ids and comp.inputs[0] == "Ba1 Te1"
    np.testing.assert_allclose(comp.targets, ds.targets, rtol=1e-6)


def test_matbench_folds_use_the_loader_ids():
    folds = load_table("matbench_splits")["splits"]
    assert len(folds) == 13
    ids = set(load_dataset("matbench_steels").ids)
    test_ids = [m for fold in folds["matbench_steels"].values() for m in fold["test"]]
    assert len(test_ids) == len(ids) == 312 and set(test_ids) == ids
    with pytest.raises(ValueError, match="load_table"):
        load_dataset("matbench_splits")
    assert len(load_table("cgcnn_atom_init")["1"]) == 92
    assert len(load_table("element_embeddings", "megnet16-embedding.json")["Fe"]) == 16


def test_matbench_expt_is_metal_is_binary():
    ds = load_dataset("matbench_expt_is_metal")
    assert ds.task == "classification" and ds.input_kind == "composition"
    assert len(ds) == 4921 and ds.ids[0] == "mb-expt-is-metal-0001" and ds.inputs[0] == "Ag(AuS)2"
    assert set(np.unique(ds.targets)) == {0.0, 1.0}
    assert int(ds.targets.sum()) == 2451  # Matbench frac_true 0.49807 * 4921


def test_cegann_spacegroup_deduplicated():
    ds = load_dataset("cegann_spacegroup")
    assert ds.task == "multiclass" and ds.class_names == [str(i) for i in range(8)]
    assert len(ds) == 5725 and len(ds) + len(ds.skipped) == 11845
    assert all(i.startswith("train/") for i in ds.ids)
    target_skips = [s for s in ds.skipped if s.row_id.startswith("target/")]
    assert len(target_skips) == 1080 and all("copy of train/" in s.reason for s in target_skips)
    dups = [s for s in ds.skipped if s.row_id.startswith("train/")]
    assert len(dups) == 10765 - 5725 and all(s.reason.startswith("duplicate of train/") for s in dups)
    keys = [structure_key(a, 4) for a in ds.inputs]
    assert len(set(keys)) == len(keys)
    assert set(np.unique(ds.targets)) == set(range(8))


def test_cegann_dimensionality_reports_conflicting_labels():
    ds = load_dataset("cegann_dimensionality")
    assert len(ds) == 1827 and ds.class_names == ["0", "1", "2"]
    conflicts = [s for s in ds.skipped if "conflicting label" in s.reason]
    assert len(conflicts) == 2 and all(s.row_id.startswith("target/") for s in conflicts)


def test_qm9_first500_u0():
    ds = load_dataset("qm9_first500_u0")
    assert len(ds) == 500 and ds.ids[:2] == ["1", "2"]
    assert ds.inputs[0].get_chemical_formula() == "CH4" and not ds.inputs[0].pbc.any()
    assert ds.targets[0, 0] == pytest.approx(-1101.4878, abs=1e-3)
    first20 = load_dataset("qm9_first20")
    assert first20.targets.shape == (20, 15) and not np.isnan(first20.targets).any()  # free_energy sits in atoms.calc


def test_nan_rows_are_skipped_with_reason(monkeypatch, tmp_path):
    _toy_card(monkeypatch, tmp_path, "key,smiles,a,b\nr0,CCO,1,\nr1,CCN,,\nr2,CCC,NaN,nan\nr3,,0,1\nr4,c1ccccc1,True,False\nr5,C,yes,0\nr6,O,2,0\n")
    ds = load_dataset("toy")
    assert ds.ids == ["r0", "r4"]
    np.testing.assert_array_equal(ds.targets, np.array([[1, np.nan], [1, 0]], dtype=np.float32))
    reasons = {s.row_id: s.reason for s in ds.skipped}
    assert reasons["r1"] == NO_TARGET and reasons["r2"] == NO_TARGET
    assert "empty" in reasons["r3"] and "'yes'" in reasons["r5"] and "not 0/1" in reasons["r6"]
    assert len(load_dataset("toy", limit=2)) == 1


def test_multiclass_labels_get_sorted_class_names(monkeypatch, tmp_path):
    _toy_card(monkeypatch, tmp_path, "key,smiles,kind\nr0,C,beta\nr1,O,alpha\nr2,N,\nr3,S,beta\n",
              task="multiclass", targets=("kind",))
    ds = load_dataset("toy")
    assert ds.class_names == ["alpha", "beta"] and ds.targets[:, 0].tolist() == [1.0, 0.0, 1.0]
    assert [s.row_id for s in ds.skipped] == ["r2"]


def test_group_keys():
    assert smiles_key("OCC") == smiles_key("C(O)C") == "CCO"
    assert smiles_key("C[C@H](N)O") != smiles_key("C[C@@H](N)O")
    assert smiles_key("not a smiles") == "raw:not a smiles"
    assert composition_key("K6 S6") == composition_key("KS") == "KS"
    ds = load_dataset("matbench_phonons", limit=5)
    atoms = ds.inputs[4]
    moved = atoms[::-1]
    moved.positions += atoms.cell[0] + 1e-6  # reordered, shifted by a lattice vector: same crystal
    assert structure_key(moved) == structure_key(atoms)
    moved.positions[0] += 0.1
    assert structure_key(moved) != structure_key(atoms)
    keys = dataset_group_keys(ds)
    assert len(keys) == 5 and keys[4] == structure_key(atoms)
    smiles = Dataset("s", "smiles", "regression", ["0", "1", "2"], ["OCC", "C(O)C", "CC"],
                     np.zeros((3, 1), np.float32), ["y"])
    keys = dataset_group_keys(smiles)
    assert keys[0] == keys[1] != keys[2]


def test_rows_are_positions_in_the_source_file():
    tox21 = loaders.load_dataset("tox21", limit=50)
    assert tox21.rows.tolist() == list(range(50))
    dimensionality = loaders.load_dataset("cegann_dimensionality")
    assert len(dimensionality.rows) == len(dimensionality)
    assert np.all(np.diff(dimensionality.rows) > 0)
    assert dimensionality.subset([0, 2]).rows.tolist() == dimensionality.rows[[0, 2]].tolist()
