"""elEmBERT with element (V0) tokens: tokenization, masking of padding, .keras round trip."""

import numpy as np
import pytest

from keras_chem.featurizers.tokens import CLS_ID, PAD_ID, SEP_ID, Vocabulary, composition_tokens
from keras_chem.models.base import TaskInfo
from keras_chem.models.elembert import DEFAULTS, ElembertPreprocessor, build


def test_vocabulary_layout():
    vocabulary = Vocabulary.elements()
    assert vocabulary.tokens[:4] == ["[PAD]", "[UNK]", "[SEP]", "[CLS]"]
    assert vocabulary.tokens[-1] == "[MASK]" and vocabulary.mask_id == len(vocabulary) - 1
    assert vocabulary.encode(["H", "Xx"]) == [CLS_ID, vocabulary.index["H"], 1, SEP_ID]


def test_smiles_tokens_have_explicit_hydrogens_and_failures_are_reported():
    pre = ElembertPreprocessor(tokens="v0")
    features = pre.fit_transform(["a", "b", "c"], ["CCO", "not a smiles", ""], "smiles")
    assert features.kept.tolist() == [0]
    assert pre.seq_len == 9 + 2  # ethanol: 2 C, 1 O, 6 H
    row = features.arrays["tokens"][0]
    assert row[0] == CLS_ID and row[-1] == SEP_ID
    assert sorted(pre.vocabulary.tokens[t] for t in row[1:-1]) == sorted(["C", "C", "O"] + ["H"] * 6)
    assert {s.row_id for s in features.skipped} == {"b", "c"}
    assert all(s.reason for s in features.skipped)


def test_compositions_and_caps():
    assert composition_tokens("K6 S6")[0].count("K") == 6
    tokens, reason = composition_tokens("Fe0.62C0.38")
    assert tokens is None and "non-integer" in reason
    pre = ElembertPreprocessor(tokens="v0", max_atoms=4)
    features = pre.fit_transform(["x", "y"], ["NaCl", "Fe2O3"], "composition")
    assert features.kept.tolist() == [0]
    assert features.skipped[0].reason == "5 atoms, over --max-atoms 4"
    assert pre.transform(["z"], ["Fe2O3"], "composition").skipped[0].reason == "5 atoms, over --max-atoms 4"


def test_padding_never_changes_the_output(tmp_path):
    import keras

    pre = ElembertPreprocessor(tokens="v0")
    pre.fit_transform(["a"], ["CCCCCCCCCCCC"], "smiles")
    model = build(DEFAULTS, pre, TaskInfo("classification", ["t"]))
    short = pre.transform(["a"], ["CCO"], "smiles").arrays
    p1 = model.predict(short, verbose=0)
    # change the embedding row of [PAD]: a masked model must not notice
    embedding = model.get_layer("elembert_encoder").get_layer("token_embedding")
    weights = embedding.get_weights()[0].copy()
    weights[PAD_ID] += 5.0
    embedding.set_weights([weights])
    np.testing.assert_allclose(model.predict(short, verbose=0), p1, atol=1e-6)

    path = tmp_path / "m.keras"
    model.save(path)
    from keras_chem import load_model

    reloaded = load_model(path)
    np.testing.assert_allclose(reloaded.predict(short, verbose=0), p1, atol=1e-6)
    assert isinstance(reloaded, keras.Model)


@pytest.mark.parametrize("task", ["classification", "regression", "multiclass"])
def test_one_training_step_per_task_type(task):
    import keras

    from keras_chem.models.heads import loss_for

    pre = ElembertPreprocessor(tokens="v0")
    features = pre.fit_transform([str(i) for i in range(8)], ["CCO", "CC", "C", "O", "N", "CCN", "CO", "OO"], "smiles")
    info = TaskInfo(task, ["y"], ["a", "b", "c"] if task == "multiclass" else None)
    y = np.array([[0], [1], [2], [1], [0], [2], [1], [0]], dtype="float32")
    if task == "classification":
        y = (y > 0).astype("float32")
        y[0] = np.nan
    stats = {"mean": [1.0], "std": [0.8]} if task == "regression" else None
    model = build(DEFAULTS, pre, info, stats)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss_for(info, stats), jit_compile=True)
    history = model.fit(features.arrays, y, epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.predict(features.arrays, verbose=0).shape == (8, info.n_outputs)


def test_bad_structures_are_skipped_with_reasons():
    from ase import Atoms

    salt = Atoms("NaCl", positions=[[0, 0, 0], [2.8, 0, 0]], cell=[5.6, 5.6, 5.6], pbc=True)
    empty = Atoms(cell=[3.0, 3.0, 3.0], pbc=True)
    unknown = Atoms(numbers=[0, 11], positions=[[0, 0, 0], [2.0, 0, 0]], cell=[4.0, 4.0, 4.0], pbc=True)
    features = ElembertPreprocessor(tokens="v0").fit_transform(["salt", "empty", "unknown"], [salt, empty, unknown], "structure")
    assert features.kept.tolist() == [0]
    reasons = {s.row_id: s.reason for s in features.skipped}
    assert "empty structure" in reasons["empty"]
    assert "unknown element" in reasons["unknown"]
    assert all("\n" not in r for r in reasons.values())


def test_positional_option_adds_a_fixed_sinusoidal_table():
    import keras

    keras.utils.set_random_seed(0)
    pre = ElembertPreprocessor(tokens="v0")
    pre.fit_transform(["a"], ["CCCCO"], "smiles")
    task = TaskInfo("classification", ["t"])
    plain = build(DEFAULTS, pre, task)
    positional = build({**DEFAULTS, "positional": True}, pre, task)
    assert positional.count_params() == plain.count_params()  # the table is not trainable
    assert positional.get_layer("elembert_encoder").get_layer("positions") is not None
    # without positions the encoder sees a set: reordering atoms leaves [CLS] unchanged
    forward = pre.transform(["a"], ["CCCCO"], "smiles").arrays
    backward = {"tokens": forward["tokens"].copy()}
    atoms = np.flatnonzero(forward["tokens"][0] > 3)
    backward["tokens"][0, atoms] = forward["tokens"][0, atoms[::-1]]
    np.testing.assert_allclose(plain.predict(forward, verbose=0), plain.predict(backward, verbose=0), atol=1e-5)
    # with them it does not: compared on the [CLS] embedding, which a saturated sigmoid output could hide within rounding
    embed = keras.Model(positional.inputs, positional.get_layer("cls_embedding").output)
    assert np.abs(embed.predict(forward, verbose=0) - embed.predict(backward, verbose=0)).max() > 1e-3


@pytest.mark.parametrize("loss_name", ["MaskedBinaryCrossentropy", "MaskedMeanSquaredError"])
def test_losses_round_trip_and_ignore_missing_labels(loss_name):
    import keras

    from keras_chem.losses import masked

    loss = getattr(masked, loss_name)()
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    y_true = np.array([[1.0, np.nan], [0.0, 1.0]], dtype="float32")
    y_pred = np.array([[0.8, 0.3], [0.1, 0.6]], dtype="float32")
    present = ~np.isnan(y_true)
    if loss_name == "MaskedBinaryCrossentropy":
        expected = -np.mean(np.log(np.where(y_true[present] == 1, y_pred[present], 1 - y_pred[present])))
    else:
        expected = np.mean((y_true[present] - y_pred[present]) ** 2)
    assert float(restored(y_true, y_pred)) == pytest.approx(expected, rel=1e-5)


def test_two_devices_train_the_weights_one_device_trains():
    from data_parallel import assert_two_devices_match

    assert_two_devices_match("keras_chem.models.elembert", "bbbp", 72, {"tokens": "v0", "dropout": 0.0, "batch_size": 16, "layers": 1})
