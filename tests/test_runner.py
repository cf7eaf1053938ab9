"""The k-fold runner end to end on a small slice of real data, including resume after a kill."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from runs import TINY, kchem, train_args


@pytest.mark.runner_logic
def test_kfold_run_writes_the_run_directory(bbbp_run):
    out = bbbp_run
    for name in ("config.json", "splits.json", "summary.json", "report.md", "skipped.csv", "model_info.json",
                 "roc_p_np.png", "confusion_matrix.png", "tsne_cls.png"):
        assert (out / name).exists(), name
    splits = json.loads((out / "splits.json").read_text())
    assert len(splits) == 2
    tested = np.concatenate([s["test"] for s in splits])
    assert len(tested) == len(set(tested))
    for k, split in enumerate(splits):
        assert not set(split["train"]) & set(split["test"]) and not set(split["val"]) & set(split["test"])
        fold = out / f"fold_{k}"
        assert (fold / "model.keras").exists()
        predictions = pd.read_csv(fold / "test_predictions.csv")
        assert sorted(predictions["row"]) == sorted(split["test"])
        metrics = json.loads((fold / "metrics.json").read_text())
        # the headline metric is recomputable from the saved predictions with scikit-learn
        expected = roc_auc_score(predictions["p_np"], predictions["p_np_pred"])
        assert metrics["roc_auc"] == pytest.approx(expected, abs=1e-6)
    summary = json.loads((out / "summary.json").read_text())
    values = [json.loads((out / f"fold_{k}" / "metrics.json").read_text())["roc_auc"] for k in range(2)]
    assert summary["metrics"]["roc_auc"]["mean"] == pytest.approx(np.mean(values))
    assert "pooled_onehot_auc" in summary["metrics"]
    config = json.loads((out / "config.json").read_text())
    assert config["model_config"]["epochs"] == 2 and config["folds"] == 2 and config["seed"] == 3


@pytest.mark.runner_logic
def test_killed_run_resumes_to_the_same_summary(tmp_path, bbbp_run):
    reference = bbbp_run
    out = tmp_path / "interrupted"
    env = {**os.environ, "KCHEM_PROGRESS": "0"}
    process = subprocess.Popen(
        [sys.executable, "-m", "keras_chem.cli", *train_args(out)], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while not (out / "fold_0" / "metrics.json").exists():
        assert process.poll() is None, "the run ended before its first fold was written"
        assert time.time() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "fold_1" / "metrics.json").exists(), "the run finished before it could be killed"
    assert not (out / "summary.json").exists()
    first_fold = (out / "fold_0" / "metrics.json").stat().st_mtime_ns

    result = kchem(*train_args(out))
    assert "resuming" in result.stderr
    assert (out / "fold_0" / "metrics.json").stat().st_mtime_ns == first_fold
    resumed = json.loads((out / "summary.json").read_text())
    uninterrupted = json.loads((reference / "summary.json").read_text())
    assert resumed == uninterrupted


@pytest.mark.runner_logic
def test_changed_config_is_refused_in_an_existing_run(tmp_path):
    out = tmp_path / "run"
    (out).mkdir()
    (out / "config.json").write_text(json.dumps({"model": "elembert", "dataset": "bbbp", "seed": 99}))
    result = kchem(*train_args(out), check=False)
    assert result.returncode == 2
    assert "different configuration" in result.stderr


@pytest.mark.runner_logic
def test_splits_file_is_used_as_given_and_rows_it_names_past_the_limit_are_counted(tmp_path):
    splits = [{"train": list(range(0, 80)), "val": list(range(80, 100)), "test": list(range(100, 125))}]
    path = tmp_path / "splits.json"
    path.write_text(json.dumps(splits))
    out = tmp_path / "run"
    result = kchem("train", "elembert", "--dataset", "bbbp", "--splits-file", str(path), "--out", str(out), *TINY)
    predictions = pd.read_csv(out / "fold_0" / "test_predictions.csv")
    assert sorted(predictions["row"]) == list(range(100, 120))
    assert f"5 row(s) of {path} are not among" in result.stderr and "left out" in result.stderr  # one line, whatever the path's length
    assert json.loads((out / "summary.json").read_text())["split_rows_left_out"] == [5]
    assert "5 row(s) of the given splits file" in (out / "report.md").read_text()


@pytest.mark.runner_logic
def test_toml_config_with_flags_overriding(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('dataset = "bbbp"\ntokens = "v0"\nfolds = 2\nlimit = 120\nepochs = 1\n[model]\nembed-dim = 16\nheads = 2\nlayers = 1\n')
    out = tmp_path / "run"
    kchem("train", "elembert", "--config", str(config), "--epochs", "2", "--out", str(out), "--only-fold", "0")
    resolved = json.loads((out / "config.json").read_text())
    assert resolved["folds"] == 2 and resolved["limit"] == 120
    assert resolved["model_config"]["embed_dim"] == 16 and resolved["model_config"]["epochs"] == 2


@pytest.mark.runner_logic
def test_unknown_model_option_is_a_clear_error(tmp_path):
    result = kchem("train", "elembert", "--dataset", "bbbp", "--embed-dimm", "8", "--out", str(tmp_path / "r"), check=False)
    assert result.returncode == 2
    assert "embed_dimm" in result.stderr and "embed_dim" in result.stderr


@pytest.mark.runner_logic
def test_bad_rows_are_skipped_and_reported(tmp_path):
    # Tox21 holds 8 SMILES RDKit rejects; the first 1500 rows contain some of them. Molecules over
    # --max-atoms are skipped too (and keep the run to a few batch shapes).
    out = tmp_path / "run"
    kchem("train", "elembert", "--dataset", "tox21", "--tokens", "v0", "--replicates", "1", "--limit", "1500", "--epochs", "1",
          "--max-atoms", "24", "--batch-size", "64", "--layers", "1", "--out", str(out))
    with open(out / "skipped.csv") as handle:
        skipped = list(csv.DictReader(handle))
    assert all(row["id"] and row["reason"] for row in skipped)
    reasons = [row["reason"] for row in skipped]
    assert any("over --max-atoms 24" in reason for reason in reasons)
    unparseable = [reason for reason in reasons if "--max-atoms" not in reason]
    assert unparseable, "expected the unparseable Tox21 rows in skipped.csv"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_skipped"] == len(skipped)
    assert summary["n_rows_used"] + len(skipped) == 1500


@pytest.mark.runner_logic
def test_per_task_trains_one_model_per_task(tmp_path):
    from keras_chem import load_model
    from keras_chem.training.config import resolve
    from keras_chem.training.runner import run

    out = tmp_path / "run"
    options = {"dataset": "clintox", "split": "random", "replicates": 1, "limit": 100, "epochs": 1, "tokens": "v0",
               "layers": 1, "per_task": True, "out": str(out)}
    summary = run(resolve("elembert", {}, options))
    assert set(summary["metrics"]["per_task"]) == {"FDA_APPROVED", "CT_TOX"}
    model = load_model(out / "fold_0" / "model.keras")
    assert [layer.name for layer in model.layers if layer.name.startswith("task_")] == ["task_0", "task_1"]
    history = json.loads((out / "fold_0" / "history.json").read_text())
    assert set(history["per_task"]) == {"FDA_APPROVED", "CT_TOX"}


@pytest.mark.runner_logic
def test_v1_tokens_on_crystals_multiclass_and_structure_predictions(tmp_path):
    import keras_chem
    from keras_chem.data.loaders import load_dataset
    from keras_chem.training.config import resolve
    from keras_chem.training.runner import run

    out = tmp_path / "run"
    options = {"dataset": "cegann_dimensionality", "replicates": 1, "limit": 120, "epochs": 1, "layers": 1, "out": str(out)}
    summary = run(resolve("elembert", {}, options))
    assert summary["task"] == "multiclass" and "accuracy" in summary["metrics"]
    info = json.loads((out / "model_info.json").read_text())
    assert info["preprocessor"]["tokens"] == "v1" and any(t[-1].isdigit() for t in info["preprocessor"]["vocabulary"]["tokens"])
    assert (out / "confusion_matrix.png").exists()
    structures = load_dataset("cegann_dimensionality", limit=3).inputs
    frame = keras_chem.predict(out, structures=structures)
    probabilities = frame.drop(columns="reason").to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_two_devices_train_in_the_fold_worker_and_its_predictions_are_the_models(tmp_path):
    """`--devices 2` end to end: the fold worker sees two CPU devices (JAX's host platform flag or TensorFlow's
    logical devices) and trains on both; its test predictions (rows padded to whole global batches) are what the
    saved model predicts on one device. That two devices train the weights one device trains is checked for
    every family by `tests/data_parallel.py`."""
    import keras_chem
    from keras_chem.data.loaders import load_dataset

    out = tmp_path / "run"
    kchem("train", "elembert", "--dataset", "esol", "--replicates", "1", "--limit", "64", "--epochs", "1", "--tokens", "v0",
          "--batch-size", "16", "--layers", "1", "--devices", "2", "--out", str(out))
    assert json.loads((out / "fold_0" / "history.json").read_text())["replicas"] == 2
    written = pd.read_csv(out / "fold_0" / "test_predictions.csv")
    data = load_dataset("esol", limit=64)
    smiles = dict(zip(data.rows.tolist(), data.inputs))
    frame = keras_chem.predict(out, smiles=[smiles[row] for row in written["row"]])
    np.testing.assert_allclose(frame.iloc[:, 0], written.iloc[:, -1], rtol=1e-4, atol=1e-4)
