"""predict() on raw inputs, `kchem predict`, and SavedModel export reloaded by TensorFlow alone."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest


SMILES = ["CCO", "c1ccccc1O", "not-a-smiles", "CC(=O)Nc1ccc(O)cc1", ""]


@pytest.fixture(scope="module")
def run_dir(bbbp_run):
    return bbbp_run


def test_predict_averages_folds_and_reports_bad_rows(run_dir):
    import keras_chem
    from keras_chem.export import fold_model_paths
    from keras_chem.models.saving import load_model
    from keras_chem.models.elembert import ElembertPreprocessor

    frame = keras_chem.predict(run_dir, smiles=SMILES)
    assert list(frame.columns) == ["p_np", "reason"]
    assert frame["reason"][2] and frame["reason"][4] and not frame["reason"][0]
    assert np.isnan(frame["p_np"][2]) and ((frame["p_np"].dropna() > 0) & (frame["p_np"].dropna() < 1)).all()

    info = json.loads((run_dir / "model_info.json").read_text())
    arrays = ElembertPreprocessor(**info["preprocessor"]).transform(["0"], ["CCO"], "smiles").arrays
    per_fold = [load_model(p).predict(arrays, verbose=0)[0, 0] for p in fold_model_paths(run_dir)]
    assert frame["p_np"][0] == pytest.approx(np.mean(per_fold), abs=1e-6)


@pytest.mark.runner_logic
def test_predict_command_writes_reasons(run_dir, tmp_path):
    source = tmp_path / "molecules.csv"
    pd.DataFrame({"name": list("abcde"), "smiles": SMILES}).to_csv(source, index=False)
    out = tmp_path / "predictions.csv"
    subprocess.run(
        [sys.executable, "-m", "keras_chem.cli", "predict", str(run_dir), "--input", str(source), "--output", str(out)],
        check=True, capture_output=True, text=True,
    )
    result = pd.read_csv(out, keep_default_na=False)
    assert list(result["name"]) == list("abcde")
    assert result["p_np"][2] == "" and result["reason"][2] != ""


def test_saved_model_matches_keras_predictions(run_dir, tmp_path):
    from keras_chem.export import ensemble, export_saved_model
    from keras_chem.models.elembert import ElembertPreprocessor

    path = export_saved_model(run_dir, tmp_path / "saved")
    info = json.loads((run_dir / "model_info.json").read_text())
    arrays = ElembertPreprocessor(**info["preprocessor"]).transform(["0", "1"], ["CCO", "c1ccccc1O"], "smiles").arrays
    expected = np.asarray(ensemble(run_dir).predict(arrays, verbose=0))
    np.savez(tmp_path / "inputs.npz", **arrays)
    code = (
        "import json, sys, numpy as np, tensorflow as tf\n"
        f"m = tf.saved_model.load({str(path)!r})\n"
        f"x = np.load({str(tmp_path / 'inputs.npz')!r})\n"
        "y = m.serve({name: tf.constant(x[name]) for name in x.files})\n"
        "print(json.dumps(np.asarray(y).tolist()))\n"
        "print('keras' in sys.modules and 'keras_chem' in sys.modules)\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    lines = result.stdout.strip().splitlines()
    np.testing.assert_allclose(np.array(json.loads(lines[-2])), expected, atol=1e-5)
    assert lines[-1] == "False"


@pytest.mark.runner_logic
def test_export_refuses_to_replace_a_directory_that_is_not_an_export(run_dir, tmp_path):
    from keras_chem.export import ExportExists, export_saved_model

    precious = tmp_path / "results"
    precious.mkdir()
    (precious / "notes.txt").write_text("a week of work")
    with pytest.raises(ExportExists, match="not a keras-chem export"):
        export_saved_model(run_dir, precious)
    assert (precious / "notes.txt").read_text() == "a week of work"
    result = subprocess.run([sys.executable, "-m", "keras_chem.cli", "export", str(run_dir), "--out", str(precious)],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "--overwrite" in result.stderr and (precious / "notes.txt").exists()
    first = export_saved_model(run_dir, tmp_path / "saved")
    assert export_saved_model(run_dir, first) == first  # a previous export is replaced
    assert (export_saved_model(run_dir, precious, overwrite=True) / "saved_model.pb").exists()
