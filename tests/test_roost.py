"""Roost end to end: training through the runner on formulas and on crystal structures, predict() on
formulas and a formula CSV with bad formulas reported, `embed`, `.keras` round trip, a SavedModel
served by TensorFlow, and the two-device check (the last three, and the layers' padding and
order tests, under both backends; the rest reads the run and predicts, as other families' tests do
under both)."""

import numpy as np
import pandas as pd
import pytest

from keras_chem.models.roost import CompositionPreprocessor
from keras_chem.training.config import resolve
from keras_chem.training.runner import run
from runs import check_round_trip_and_saved_model

SMALL = {"elem_fea_len": 16, "hidden": 16, "n_graph": 2, "heads": 2, "readout_heads": 2, "trunk": "32,16", "trunk_out": 16,
         "output_hidden": "16", "batch_size": 32, "epochs": 3, "patience": 3, "learning_rate": 1e-3}
FORMULAS = ["NaCl", "Hg0.7Cd0.3Te", "CuSO4·5H2O", "Fe3+", "", "OgF2"]


def _run(out, dataset, limit, **options):
    options = {"dataset": dataset, "split": "random", "replicates": 1, "limit": limit, "out": str(out), **SMALL, **options}
    return run(resolve("roost", {}, options))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("roost")
    summary = _run(out, "matbench_expt_gap", 160, robust=True)  # the plain L1 head trains in the two-device test
    assert summary["n_splits"] == 1 and np.isfinite(summary["metrics"]["mae"]["mean"])
    return out


@pytest.mark.runner_logic
def test_regression_run_learns_and_predicts_formulas(run_dir):
    import keras_chem

    history = pd.read_json(run_dir / "fold_0" / "history.json", typ="series")
    assert history["loss"][-1] < history["loss"][0]  # L1 of the standardised targets falls
    written = pd.read_csv(run_dir / "fold_0" / "test_predictions.csv")
    assert list(written.columns[-2:]) == ["gap expt_pred", "gap expt_sigma"] and (written["gap expt_sigma"] > 0).all()
    frame = keras_chem.predict(run_dir, compositions=FORMULAS)
    target = frame.columns[0]
    assert list(frame.columns) == [target, f"{target}_sigma", "reason"] and (frame[f"{target}_sigma"][:3] > 0).all()
    assert np.isfinite(frame[target][:3]).all() and (frame["reason"][:3] == "").all()
    assert "has a charge" in frame["reason"][3] and "empty formula" in frame["reason"][4]
    assert "no matscholar vector for Og" in frame["reason"][5] and frame[target][3:].isna().all() and frame[f"{target}_sigma"][3:].isna().all()


@pytest.mark.runner_logic
def test_embed_gives_the_composition_vector_of_every_formula(run_dir):
    from keras_chem.inference import embed

    result = embed(run_dir, compositions=FORMULAS, fold=0)
    vectors = result["embeddings"]
    assert vectors.shape == (len(FORMULAS), SMALL["trunk_out"]) and np.isfinite(vectors[:3]).all() and np.isnan(vectors[3:]).all()
    assert (vectors[:3] >= 0).all()  # after the trunk's ReLU
    assert result["reason"][:3] == ["", "", ""] and all(result["reason"][3:])


@pytest.mark.runner_logic
def test_predict_reads_a_formula_csv(run_dir, tmp_path):
    import keras_chem

    source = tmp_path / "formulas.csv"
    pd.DataFrame({"material_id": [f"m{i}" for i in range(len(FORMULAS))], "composition": FORMULAS}).to_csv(source, index=False)
    result = keras_chem.predict(run_dir, source)
    assert list(result["material_id"]) == [f"m{i}" for i in range(len(FORMULAS))]
    assert (result["reason"][:3] == "").all() and (result["reason"][3:] != "").all()


def test_keras_round_trip_and_saved_model(run_dir, tmp_path):
    check_round_trip_and_saved_model(run_dir, FORMULAS[:3], "composition", tmp_path)


@pytest.mark.runner_logic
def test_padding_and_element_order_never_change_a_prediction(run_dir):
    import json

    from keras_chem.export import fold_model_paths
    from keras_chem.models.saving import load_model
    from keras_chem.training.batching import trim

    info = json.loads((run_dir / "model_info.json").read_text())
    preprocessor = CompositionPreprocessor(**info["preprocessor"])
    model = load_model(fold_model_paths(run_dir)[0])
    batched = preprocessor.transform(["0", "1"], ["CuSO4·5H2O", "NaCl"], "composition").arrays
    alone = trim(preprocessor.transform(["1"], ["NaCl"], "composition").arrays, 2, preprocessor.padded_axes)
    reversed_order = {k: v[:, ::-1].copy() for k, v in batched.items()}  # padding first, elements reversed
    expected = model.predict(batched, verbose=0)
    np.testing.assert_allclose(model.predict(alone, verbose=0)[0], expected[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.predict(reversed_order, verbose=0), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.runner_logic
def test_classification_with_one_hot_elements():
    """matbench_expt_is_metal, through the runner's own fit_model (the run directory parts are the fixture's)."""
    from keras_chem.data.loaders import load_dataset
    from keras_chem.data.splits import Split
    from keras_chem.models.base import TaskInfo
    from keras_chem.models.registry import get_model_family
    from keras_chem.training.batching import predict
    from keras_chem.training.config import resolve_model_config
    from keras_chem.training.evaluate import evaluate
    from keras_chem.training.fit import fit_model

    family = get_model_family("roost")
    config = resolve_model_config(family, {**SMALL, "element_features": "onehot", "epochs": 1})
    data = load_dataset("matbench_expt_is_metal", limit=96)
    preprocessor = family.preprocessor(config)
    features = preprocessor.fit_transform(data.ids, data.inputs, data.input_kind)
    task = TaskInfo(data.task, data.target_names)
    split = Split(train=np.arange(64), val=np.arange(64, 80), test=np.arange(80, 96))
    model, history = fit_model(family, config, preprocessor, task, features.arrays, data.targets, split, 0, "fold 0")
    probabilities = predict(model, features.arrays, preprocessor, rows=split.test)
    assert ((probabilities > 0) & (probabilities < 1)).all() and np.isfinite(history["val_loss"]).all()
    assert 0 <= evaluate(task, data.targets[split.test], probabilities)["roc_auc"] <= 1


@pytest.mark.parametrize("element_features, width", [("cgcnn92", 92), ("learned", 200)])
def test_other_element_tables_on_crystal_structures(element_features, width):
    """Structures (matbench_phonons) become the compositions of their cells."""
    from keras_chem.data.loaders import load_dataset
    from keras_chem.models.base import TaskInfo
    from keras_chem.models.registry import get_model_family
    from keras_chem.training.config import resolve_model_config

    family = get_model_family("roost")
    config = resolve_model_config(family, {**SMALL, "element_features": element_features})
    data = load_dataset("matbench_phonons", limit=12)
    preprocessor = family.preprocessor(config)
    features = preprocessor.fit_transform(data.ids, data.inputs, data.input_kind)
    assert len(features.kept) == 12 and features.arrays["elem_frac"].sum(axis=1) == pytest.approx(1.0)
    model = family.build(config, preprocessor, TaskInfo("regression", data.target_names))
    vectors = model.get_layer("element_vectors")
    assert vectors.get_weights()[0].shape[1] == width and vectors.trainable == (element_features == "learned")
    assert np.isfinite(model.predict(features.arrays, verbose=0)).all()


def test_two_devices_train_the_weights_one_device_trains():
    from data_parallel import assert_two_devices_match

    assert_two_devices_match("keras_chem.models.roost", "matbench_expt_gap", 72, {**SMALL, "batch_size": 16, "epochs": 1})
