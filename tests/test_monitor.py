"""`--monitor`: early stopping on the validation rows' ROC-AUC keeps that epoch's weights; the option is checked against the task."""

import json

import numpy as np
import pytest

from runs import kchem


@pytest.mark.runner_logic
def test_monitor_val_roc_auc_keeps_the_epoch_of_the_best_validation_roc_auc(tmp_path):
    import keras_chem
    from keras_chem.data.loaders import load_dataset
    from keras_chem.metrics.classification import binary_metrics
    from keras_chem.training.config import resolve
    from keras_chem.training.run_files import RunDirectory
    from keras_chem.training.runner import run

    out = tmp_path / "run"
    options = {"dataset": "bbbp", "split": "random", "replicates": 1, "limit": 300, "epochs": 6, "patience": 6, "tokens": "v0",
               "layers": 1, "learning_rate": 3e-2, "seed": 1, "monitor": "val_roc_auc", "out": str(out)}
    run(resolve("elembert", {}, options))
    history = json.loads((out / "fold_0" / "history.json").read_text())
    metrics = json.loads((out / "fold_0" / "metrics.json").read_text())
    best = int(np.argmax(history["val_roc_auc"]))
    assert best != int(np.argmin(history["val_loss"])), "the seed should make the two criteria disagree, or this test proves nothing"
    assert metrics["best_epoch"] == best + 1 and metrics["epochs_trained"] == 6
    assert metrics["best_val_roc_auc"] == history["val_roc_auc"][best] and metrics["best_val_loss"] == history["val_loss"][best]
    rundir = RunDirectory(out)
    rows, val = rundir.rows(), rundir.splits()[0].val
    data = load_dataset("bbbp", limit=300)
    smiles = dict(zip(data.rows.tolist(), data.inputs))
    predicted = keras_chem.predict(out, smiles=[smiles[r] for r in rows.file_rows[val]]).drop(columns="reason").to_numpy()
    kept = binary_metrics(rows.targets[val], predicted, rundir.task().target_names)["roc_auc"]
    assert kept == pytest.approx(history["val_roc_auc"][best], abs=1e-6)


@pytest.mark.runner_logic
def test_monitor_is_checked_against_the_task(tmp_path):
    result = kchem("train", "elembert", "--dataset", "esol", "--monitor", "val_roc_auc", "--out", str(tmp_path / "r"), check=False)
    assert result.returncode == 2
    assert "--monitor val_roc_auc needs binary classification targets; esol is a regression dataset" in " ".join(result.stderr.split())
    assert not (tmp_path / "r").exists(), "a refused run leaves no directory to trip over when the command is fixed"
    result = kchem("train", "elembert", "--dataset", "bbbp", "--monitor", "val_auc", "--out", str(tmp_path / "r"), check=False)
    assert result.returncode == 2 and "unknown monitor 'val_auc'; choose one of val_loss, val_roc_auc" in " ".join(result.stderr.split())
