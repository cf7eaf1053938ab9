"""CrysToGraph end to end: training through the runner, predict() on pymatgen and ASE structures
with bad ones reported, `.keras` round trip and a SavedModel reloaded by TensorFlow."""

import json
import subprocess
import sys

import ase.build
import numpy as np
import pytest

from keras_chem.models.crystograph import CrystalGraphPreprocessor
from keras_chem.training.config import resolve
from keras_chem.training.runner import run
from runs import check_round_trip_and_saved_model, crystal_examples

SMALL = {"hidden": 32, "heads": 2, "d_k": 8, "line_d_k": 8, "line_heads": 2, "conv_layers": 1,
         "element_embedding": 8, "batch_size": 16, "epochs": 2, "patience": 2, "learning_rate": 1e-3}


def _run(out, dataset, limit, **options):
    options = {"dataset": dataset, "split": "random", "replicates": 1, "limit": limit, "out": str(out), **SMALL, **options}
    return run(resolve("crystograph", {}, options))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("crystograph")
    # one atom bucket, and 42 training rows in full batches of 14: one training shape to compile
    summary = _run(out, "matbench_phonons", 64, max_atoms=8, batch_size=14)
    assert summary["n_splits"] == 1 and np.isfinite(summary["metrics"]["mae"]["mean"])
    return out


@pytest.mark.runner_logic
def test_predict_takes_pymatgen_and_ase_and_reports_bad_structures(run_dir):
    import keras_chem

    frame = keras_chem.predict(run_dir, structures=crystal_examples())
    target = frame.columns[0]
    assert np.isfinite(frame[target][:2]).all() and not frame["reason"][0] and not frame["reason"][1]
    assert "432 atoms, over" in frame["reason"][2] and "unknown element" in frame["reason"][3] and frame["reason"][4]
    assert frame[target][2:].isna().all()


def test_keras_round_trip_and_saved_model(run_dir, tmp_path):
    check_round_trip_and_saved_model(run_dir, crystal_examples()[:2], "structure", tmp_path)


@pytest.mark.runner_logic
def test_classification_on_deduplicated_cegann(tmp_path):
    out = tmp_path / "cegann"
    summary = _run(out, "cegann_dimensionality", 64, gwt_attention="sum", line_graph=False, max_atoms=8, epochs=1)
    assert 0 <= summary["metrics"]["accuracy"]["mean"] <= 1 and (out / "confusion_matrix.png").exists()
    skipped = (out / "skipped.csv").read_text()
    assert summary["n_skipped"] > 0 and "over --max-atoms 8" in skipped


def test_padding_never_changes_a_crystal_prediction(run_dir):
    """The same crystal alone and batched beside a larger one gives the same output."""
    from keras_chem.export import fold_model_paths
    from keras_chem.models.saving import load_model
    from keras_chem.training.batching import trim

    info = json.loads((run_dir / "model_info.json").read_text())
    preprocessor = CrystalGraphPreprocessor(**info["preprocessor"])
    model = load_model(fold_model_paths(run_dir)[0])
    structures = crystal_examples()[:2]
    batched = preprocessor.transform(["0", "1"], structures, "structure").arrays
    alone = trim(preprocessor.transform(["1"], structures[1:], "structure").arrays, 1, preprocessor.padded_axes)
    np.testing.assert_allclose(model.predict(alone, verbose=0)[0], model.predict(batched, verbose=0)[1], rtol=1e-5)


@pytest.mark.runner_logic
def test_predict_command_reads_a_structure_file(run_dir, tmp_path):
    import ase.io
    import pandas as pd

    source = tmp_path / "crystals.extxyz"
    ase.io.write(source, [ase.build.bulk("Cu", "fcc", a=3.6), ase.build.bulk("NaCl", "rocksalt", a=5.64)])
    out = tmp_path / "predictions.csv"
    subprocess.run([sys.executable, "-m", "keras_chem.cli", "predict", str(run_dir), "--input", str(source), "--output", str(out)],
                   check=True, capture_output=True, text=True)
    result = pd.read_csv(out, keep_default_na=False)
    assert list(result["id"]) == [0, 1] and (result["reason"] == "").all()


def test_two_devices_train_the_weights_one_device_trains():
    """Includes the masked batch normalisation, whose moments must be those of the global batch (the
    line-graph blocks are the same layer on other inputs, left out to save compilation)."""
    from data_parallel import assert_two_devices_match

    assert_two_devices_match("keras_chem.models.crystograph", "matbench_phonons", 80,
                             {**SMALL, "hidden": 16, "batch_size": 8, "epochs": 1, "max_atoms": 8, "line_graph": False})


@pytest.mark.runner_logic
def test_embed_command_writes_one_vector_per_input(run_dir, tmp_path):
    import ase.io

    source = tmp_path / "crystals.extxyz"
    ase.io.write(source, [ase.build.bulk("Cu", "fcc", a=3.6), ase.build.bulk("Si", "diamond", a=5.43).repeat((3, 3, 3)),
                          ase.build.bulk("NaCl", "rocksalt", a=5.64)])
    out = tmp_path / "embeddings.npz"
    subprocess.run([sys.executable, "-m", "keras_chem.cli", "embed", str(run_dir), "--input", str(source), "--out", str(out)],
                   check=True, capture_output=True, text=True)
    saved = np.load(out, allow_pickle=False)
    assert saved["ids"].tolist() == ["0", "1", "2"] and saved["embeddings"].shape == (3, SMALL["hidden"])
    assert np.isfinite(saved["embeddings"][[0, 2]]).all() and np.isnan(saved["embeddings"][1]).all()
    assert saved["reason"][0] == "" and "54 atoms, over" in saved["reason"][1]
    with pytest.raises(ValueError, match="fold models 0..0"):
        import keras_chem.inference

        keras_chem.inference.embed(run_dir, source, fold=3)


@pytest.mark.runner_logic
def test_embeddings_feed_roost_multimodal_pretraining(run_dir, tmp_path):
    import ase.io

    from keras_chem.data.loaders import load_dataset
    from keras_chem.inference import embed
    from keras_chem.io import atomic_save_npz
    from keras_chem.models.registry import get_model_family
    from keras_chem.training.config import resolve_model_config
    from keras_chem.training.pretrain import pretrain

    source, embeddings = tmp_path / "phonons.extxyz", tmp_path / "phonons_embeddings.npz"
    ase.io.write(source, [atoms for atoms in load_dataset("matbench_phonons", limit=48).inputs if len(atoms) <= 8])
    result = embed(run_dir, source, fold=0)
    assert all(result["formula"]) and np.isfinite(result["embeddings"]).all()
    atomic_save_npz(embeddings, embeddings=result["embeddings"], formula=np.asarray(result["formula"], dtype=str))
    roost = get_model_family("roost")
    config = resolve_model_config(roost, {**roost.pretraining["multimodal"].defaults, "epochs": 1, "trunk": "32", "trunk_out": 16,
                                          "structure_embeddings": str(embeddings)})
    info = pretrain(roost, "multimodal", ["matbench_phonons"], config, tmp_path / "multimodal", limit=48)
    assert info["objective"] == "multimodal" and np.isfinite(info["val_loss"])
