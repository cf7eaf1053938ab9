import hashlib
import json

import numpy as np
import pytest
import typer
from ase import Atoms
from ase.build import bulk
from typer.testing import CliRunner

from keras_chem.cli.subelements import subelements_app
from keras_chem.data.loaders import load_dataset
from keras_chem.featurizers.conformers import conformers_for
from keras_chem.featurizers.pdf import atomic_pdfs
from keras_chem.featurizers.subelements import (
    PAPER_K,
    SubelementModel,
    default_model_path,
    fit_subelements,
)
from keras_chem.featurizers.tokens import Vocabulary
from keras_chem.featurizers.v1 import NO_GEOMETRY, subelement_tokens_batch

pytestmark = pytest.mark.backend_independent


@pytest.fixture(scope="module")
def crystals():
    return load_dataset("matbench_phonons", limit=12).inputs


@pytest.fixture(scope="module")
def model(crystals):
    """Centroids = up to 3 distinct PDFs per element of the crystals, plus C, H and O (fast, no k-means)."""
    by_element: dict[str, list] = {}
    extra = Atoms("CH4O", positions=[[0, 0, 0], [0, 0, 1.09], [1.03, 0, -0.36], [-0.5, 0.9, -0.36], [-0.7, -0.9, -0.5], [1.3, 0.3, 0.5]])
    for atoms in [*crystals, extra]:
        for symbol, pdf in zip(atoms.get_chemical_symbols(), atomic_pdfs(atoms)):
            by_element.setdefault(symbol, []).append(pdf)
    centroids = {s: np.unique(np.array(p), axis=0)[:3] for s, p in by_element.items()}
    return SubelementModel(centroids, {"seed": 0})


def _tokens(atoms_list, model):
    ids = [str(i) for i in range(len(atoms_list))]
    kept, tokens, skips = subelement_tokens_batch(ids, atoms_list, "structure", model, seed=0)
    assert not skips and kept.tolist() == list(range(len(atoms_list)))
    return tokens


def test_paper_table_3():
    assert len(PAPER_K) == 96
    assert PAPER_K["C"] == 9 and PAPER_K["H"] == 3 and PAPER_K["Tl"] == 3 and PAPER_K["Mn"] == 11
    assert PAPER_K["Bk"] == PAPER_K["Cf"] == PAPER_K["Rn"] == 1
    # The original V1 vocabulary has 464 sub-tokens and none for Rn.
    assert sum(k for el, k in PAPER_K.items() if el != "Rn") == 464


def _random_rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def test_tokens_invariant_to_rotation_translation_and_order(crystals, model):
    rng = np.random.default_rng(7)
    originals = list(crystals[:6])
    base = _tokens(originals, model)
    moved = []
    for atoms in originals:
        q = _random_rotation(rng)
        new = atoms.copy()
        new.set_cell(atoms.cell.array @ q.T, scale_atoms=False)
        new.positions = atoms.positions @ q.T + rng.normal(scale=3.0, size=3)
        moved.append(new)
    assert _tokens(moved, model) == base
    perms = [rng.permutation(len(a)) for a in originals]
    permuted = _tokens([a[p] for a, p in zip(originals, perms)], model)
    assert permuted == [[t[k] for k in p] for t, p in zip(base, perms)]


def test_assign_tokens_and_unknown_elements(model):
    pdfs = atomic_pdfs(Atoms("HO", positions=[[0, 0, 0], [0, 0, 1.0]]))
    tokens = model.assign(["Og", "O"], pdfs)
    assert tokens[0] == "Og" and tokens[1].startswith("O") and tokens[1][1:].isdigit()
    vocab = model.vocabulary_tokens()
    assert vocab[0] == "H" and vocab[-1] == "Og" and len(set(vocab)) == len(vocab)
    for symbol, k in model.k.items():
        at = vocab.index(symbol)
        assert vocab[at + 1 : at + 1 + k] == [f"{symbol}{i}" for i in range(k)]
    encoded = Vocabulary(vocab).encode(tokens)
    assert 1 not in encoded  # no [UNK]


def test_save_load_round_trip(tmp_path, model, crystals):
    path = model.save(tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as data:
        assert data["symbols"].dtype.kind == "U" and data["centroids"].dtype == np.float32
        assert int(data["k"].sum()) == data["centroids"].shape[0]
    loaded = SubelementModel.load(path)
    assert loaded.k == model.k and loaded.metadata["seed"] == 0
    for symbol in model.centroids:
        np.testing.assert_array_equal(loaded.centroids[symbol], model.centroids[symbol])
    assert _tokens(crystals[:4], loaded) == _tokens(crystals[:4], model)


def test_fit_is_deterministic_and_k_is_capped():
    rng = np.random.default_rng(0)
    data = {"C": rng.random((120, 100)), "Si": rng.random((40, 100))}
    three = rng.random((3, 100))
    data["Cu"] = three[rng.integers(0, 3, size=50)]  # only 3 distinct PDFs, paper k = 5
    a = fit_subelements(data, seed=3, max_samples_per_element=60)
    b = fit_subelements(data, seed=3, max_samples_per_element=60)
    assert a.k == {"C": 9, "Si": 9, "Cu": 3}
    for symbol in a.centroids:
        np.testing.assert_array_equal(a.centroids[symbol], b.centroids[symbol])
    assert a.metadata["n_environments"] == {"C": 120, "Si": 40, "Cu": 50}
    np.testing.assert_allclose(np.sort(a.centroids["Cu"], axis=0), np.sort(three, axis=0), atol=1e-6)


def test_compositions_are_skipped(model):
    kept, tokens, skips = subelement_tokens_batch(["a", "b"], ["NaCl", "Fe2O3"], "composition", model, 0)
    assert kept.size == 0 and tokens == [] and [s.reason for s in skips] == [NO_GEOMETRY] * 2


def test_bad_structure_is_skipped_and_lone_atom_kept(model):
    lone = Atoms("Cu", positions=[[0, 0, 0]])
    kept, tokens, skips = subelement_tokens_batch(["empty", "lone", "cu"], [Atoms(), lone, bulk("Cu")], "structure", model, 0)
    assert kept.tolist() == [1, 2] and [s.row_id for s in skips] == ["empty"]
    assert tokens[0][0].startswith("Cu")


def test_smiles_conformers_cached_and_independent_of_workers(monkeypatch, tmp_path, model):
    smiles = ["C", "CC", "CCO", "not a smiles", "C1CC1"] * 14  # 70 rows: the process pool runs
    ids = [f"m{i}" for i in range(len(smiles))]
    monkeypatch.setenv("KCHEM_CACHE_DIR", str(tmp_path / "one"))
    kept1, atoms1, skips1 = conformers_for(smiles, ids, seed=1, workers=1)
    monkeypatch.setenv("KCHEM_CACHE_DIR", str(tmp_path / "two"))
    kept2, atoms2, skips2 = conformers_for(smiles, ids, seed=1, workers=2)
    assert kept1.tolist() == kept2.tolist() and len(kept1) == 56
    assert skips1 == skips2 and skips1[0].row_id == "m3" and "SMILES" in skips1[0].reason
    for a, b in zip(atoms1, atoms2):
        np.testing.assert_array_equal(a.numbers, b.numbers)
        np.testing.assert_array_equal(a.positions, b.positions)
    cached = conformers_for(smiles, ids, seed=1, workers=2)  # read back from the cache
    np.testing.assert_array_equal(cached[1][2].positions, atoms2[2].positions)
    kept, tokens, skips = subelement_tokens_batch(ids[:5], smiles[:5], "smiles", model, 1)
    assert kept.tolist() == [0, 1, 2, 4] and tokens[0][0].startswith("C") and len(tokens[2]) == 9


def test_cli_fit_writes_model_and_manifest(tmp_path):
    app = typer.Typer()
    app.add_typer(subelements_app, name="subelements")
    out = tmp_path / "w" / "tiny.npz"
    args = ["subelements", "fit", "--datasets", "qm9_first500_u0", "--limit-per-dataset", "30", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "w" / "MANIFEST.jsonl").read_text().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["file"] == "tiny.npz" and entry["corpus"] == {"qm9_first500_u0": 30}
    assert entry["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    model = SubelementModel.load(out)
    assert set(model.k) <= {"H", "C", "N", "O", "F"} and model.k["C"] <= 9
    assert entry["n_environments"] == model.metadata["n_environments"]


def test_shipped_model_matches_its_manifest():
    path = default_model_path()
    model = SubelementModel.load(path)
    assert {"H", "C", "N", "O", "Si", "Fe"} <= set(model.k)
    lines = [json.loads(line) for line in (path.parent / "MANIFEST.jsonl").read_text().splitlines() if line.strip()]
    entry = [e for e in lines if e["file"] == path.name][-1]
    assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert model.k == entry["k"]
