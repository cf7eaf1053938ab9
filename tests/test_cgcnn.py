"""CGCNN end to end (training, predict with bad structures reported, `.keras` round trip, SavedModel,
two devices) and `kchem pretrain crysatom`: its atom vectors, their manifest line, the same vectors
from the same seed, and every model that takes them as its element table."""

import json

import numpy as np
import pytest

from keras_chem.training.config import resolve
from keras_chem.training.runner import run
from runs import check_round_trip_and_saved_model, crystal_examples, kchem

SMALL = {"atom_fea": 16, "conv_layers": 2, "h_fea": 16, "batch_size": 14, "epochs": 2, "patience": 2, "learning_rate": 1e-3}
PRETRAIN = ["--datasets", "matbench_phonons", "--limit", "48", "--max-atoms", "8", "--atom-fea", "16", "--conv-layers", "2",
            "--epochs", "2", "--batch-size", "16", "--seed", "5"]


def _run(out, dataset, limit, model="cgcnn", **options):
    options = {"dataset": dataset, "split": "random", "replicates": 1, "limit": limit, "out": str(out), **options}
    return run(resolve(model, {}, options))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("cgcnn")
    summary = _run(out, "matbench_phonons", 64, max_atoms=8, **SMALL)
    assert summary["n_splits"] == 1 and np.isfinite(summary["metrics"]["mae"]["mean"])
    return out


@pytest.mark.runner_logic
def test_predict_takes_pymatgen_and_ase_and_reports_bad_structures(run_dir):
    import keras_chem

    frame = keras_chem.predict(run_dir, structures=crystal_examples())
    target = frame.columns[0]
    assert np.isfinite(frame[target][:2]).all() and not frame["reason"][0] and not frame["reason"][1]
    assert "432 atoms, over" in frame["reason"][2] and "unknown element" in frame["reason"][3] and frame["reason"][4]


def test_keras_round_trip_and_saved_model(run_dir, tmp_path):
    check_round_trip_and_saved_model(run_dir, crystal_examples()[:2], "structure", tmp_path)


def test_two_devices_train_the_weights_one_device_trains():
    from data_parallel import assert_two_devices_match

    assert_two_devices_match("keras_chem.models.cgcnn", "matbench_phonons", 128, {**SMALL, "max_atoms": 8, "batch_size": 16, "epochs": 1})


@pytest.fixture(scope="module")
def crysatom_run(tmp_path_factory):
    scratch = tmp_path_factory.mktemp("crysatom")
    shipped = scratch / "weights" / "crysatom_test.npz"
    result = kchem("pretrain", "crysatom", *PRETRAIN, "--out", str(scratch / "run"), "--copy-to", str(shipped))
    assert "use its atom vectors with `--atom-features" in " ".join(result.stdout.split())
    return scratch / "run", shipped


def test_pretraining_writes_atom_vectors_a_picture_and_a_manifest_line(crysatom_run):
    import hashlib

    out, shipped = crysatom_run
    info = json.loads((out / "pretrain_info.json").read_text())
    assert info["objective"] == "crysatom" and info["config"]["atom_fea"] == 16 and info["datasets"] == ["matbench_phonons"]
    with np.load(out / "atom_vectors.npz") as saved:
        z, vectors, counts = saved["z"], saved["vectors"], saved["counts"]
    assert vectors.shape == (len(z), 16) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert info["n_elements"] == len(z) and len(info["missing_elements"]) == 118 - len(z) and "Og" in info["missing_elements"]
    assert (out / "atom_vectors.png").stat().st_size > 10_000 and (out / "nearest_elements.json").exists()
    from keras_chem.data.loaders import load_dataset

    data = load_dataset("matbench_phonons", limit=48)
    elements = {int(z) for atoms in data.inputs if len(atoms) <= 8 for z in atoms.numbers}
    assert set(z.tolist()) == elements and counts.min() >= 1
    line = json.loads((shipped.parent / "MANIFEST.jsonl").read_text().splitlines()[-1])
    assert line["file"] == shipped.name and line["sha256"] == hashlib.sha256(shipped.read_bytes()).hexdigest()
    assert line["seed"] == 5 and line["command"].startswith("kchem pretrain crysatom --datasets matbench_phonons")
    assert shipped.read_bytes() == (out / "atom_vectors.npz").read_bytes()


def test_the_same_seed_gives_the_same_vectors(crysatom_run, tmp_path):
    out, _ = crysatom_run
    again = tmp_path / "again"
    kchem("pretrain", "crysatom", *PRETRAIN, "--out", str(again))
    assert (again / "atom_vectors.npz").read_bytes() == (out / "atom_vectors.npz").read_bytes()


def test_crysatom_objective_wants_a_binary_table(tmp_path):
    result = kchem("pretrain", "crysatom", *PRETRAIN, "--atom-features", "matscholar", "--out", str(tmp_path / "x"), check=False)
    assert result.returncode == 2 and "0/1 input table" in result.stderr + result.stdout


@pytest.mark.runner_logic
@pytest.mark.parametrize("model, dataset, option", [("cgcnn", "matbench_phonons", "atom_features"),
                                                    ("crystograph", "matbench_phonons", "atom_features"),
                                                    ("roost", "matbench_phonons_composition", "element_features")])
def test_models_take_the_vectors_as_their_element_table(crysatom_run, tmp_path, model, dataset, option):
    out, _ = crysatom_run
    small = {"cgcnn": {**SMALL, "max_atoms": 8},
             "crystograph": {"hidden": 16, "heads": 2, "d_k": 8, "line_graph": False, "conv_layers": 1, "element_embedding": 0, "max_atoms": 8},
             "roost": {"elem_fea_len": 8, "hidden": 8, "n_graph": 1, "trunk": "16", "trunk_out": 8, "output_hidden": "8"}}[model]
    options = {**small, "epochs": 1, "batch_size": 16, option: str(out / "atom_vectors.npz")}
    summary = _run(tmp_path / model, dataset, 96, model=model, **options)
    assert np.isfinite(summary["metrics"]["mae"]["mean"])
    skipped = (tmp_path / model / "skipped.csv").read_text()
    assert "vector for" in skipped  # rows 49-96 hold elements the 48-row corpus never saw


@pytest.mark.runner_logic
def test_pretraining_without_datasets_needs_a_default_corpus(tmp_path):
    result = kchem("pretrain", "roost", "--strategy", "ssl", "--out", str(tmp_path / "x"), check=False)
    assert result.returncode == 2 and "--datasets" in result.stderr + result.stdout


@pytest.mark.backend_independent
def test_shipped_crysatom_vectors_match_their_manifest_line():
    import hashlib

    from keras_chem.featurizers.element_tables import covered_elements, element_table, shipped_crysatom_path

    path = shipped_crysatom_path()
    line = next(json.loads(text) for text in (path.parent / "MANIFEST.jsonl").read_text().splitlines() if json.loads(text)["file"] == path.name)
    assert line["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert line["command"].startswith("kchem pretrain crysatom") and "--seed" in line["command"]
    table = element_table("crysatom")
    covered = np.flatnonzero(covered_elements("crysatom"))
    assert table.shape == (119, 200) and len(covered) == line["n_elements"] == 118 - len(line["missing_elements"])
    assert np.allclose(np.linalg.norm(table[covered], axis=1), 1.0, atol=1e-5) and not table[0].any()
