"""A model family added from outside the package (here: from the test suite) needs nothing but its
module: registered by name, it trains through the runner, predicts, exports and passes the
two-device check."""

import numpy as np
import pytest

from data_parallel import assert_two_devices_match


@pytest.mark.runner_logic
def test_a_family_registered_at_run_time_trains_predicts_and_exports(tmp_path):
    import keras_chem
    from keras_chem.export import export_saved_model
    from keras_chem.models.registry import register_model
    from keras_chem.training.config import resolve
    from keras_chem.training.runner import run

    register_model("tiny", "tiny_family")
    out = tmp_path / "run"
    summary = run(resolve("tiny", {}, {"dataset": "bbbp", "folds": 2, "limit": 120, "out": str(out), "width": 4}))
    assert summary["complete"] and summary["n_splits"] == 2 and 0 <= summary["metrics"]["roc_auc"]["mean"] <= 1
    assert (out / "tsne_cls.png").exists(), "the family's embedding layer feeds the run's t-SNE"
    frame = keras_chem.predict(out, smiles=["CCO", "not a smiles"])
    assert np.isfinite(frame["p_np"][0]) and frame["reason"][1]
    assert (export_saved_model(out, tmp_path / "saved") / "saved_model.pb").exists()


def test_the_tiny_family_trains_the_same_on_two_devices():
    assert_two_devices_match("tiny_family", "esol", 72, {"batch_size": 16, "learning_rate": 1e-2})
