"""elEmBERT with `--distances`: conformer coordinates beside the tokens, a distance bias in attention."""

import json

import numpy as np
import pytest

from keras_chem.featurizers.tokens import CLS_ID, PAD_ID, SEP_ID
from keras_chem.models.base import TaskInfo
from keras_chem.models.elembert import DEFAULTS, PERIODIC, ElembertPreprocessor, build


@pytest.fixture(scope="module")
def preprocessor():
    pre = ElembertPreprocessor(tokens="v1", distances=True, descriptors=False, bonds=False)
    pre.fit_transform(["long"], ["CCCCCCCCO"], "smiles")
    return pre


def test_coordinates_sit_beside_their_tokens(preprocessor):
    from ase import Atoms

    features = preprocessor.transform(["ethanol"], ["CCO"], "smiles")
    assert features.kept.tolist() == [0]
    tokens, coordinates = features.arrays["tokens"][0], features.arrays["coordinates"][0]
    assert coordinates.shape == (preprocessor.cap, 3) and coordinates.dtype == np.float32
    atoms = ~np.isin(tokens, [PAD_ID, CLS_ID, SEP_ID])
    assert atoms.sum() == 9 and not coordinates[~atoms].any()
    symbols = [preprocessor.vocabulary.tokens[t].split("_")[0] for t in tokens[atoms]]
    heavy = coordinates[atoms][[s != "H" for s in symbols]]
    bonds = np.linalg.norm(heavy[:, None] - heavy[None], axis=-1)[np.triu_indices(3, 1)]
    assert sorted(np.round(bonds, 1))[:2] == pytest.approx([1.4, 1.5], abs=0.1)  # C-O and C-C of a real conformer

    crystal = Atoms("NaCl", positions=[[0, 0, 0], [2.8, 0, 0]], cell=[5.6] * 3, pbc=True)
    skipped = ElembertPreprocessor(tokens="v1", distances=True).featurize(["salt"], [crystal], "structure").skipped
    assert [(s.row_id, s.reason) for s in skipped] == [("salt", PERIODIC)]
    with pytest.raises(ValueError, match="--tokens v1"):
        ElembertPreprocessor(tokens="v0", distances=True)


def test_the_bias_depends_on_distances_only(preprocessor):
    from scipy.spatial.transform import Rotation

    arrays = preprocessor.transform(["a"], ["OCC(N)C=O"], "smiles").arrays
    model = build(DEFAULTS, preprocessor, TaskInfo("classification", ["t"]))
    before = model.predict(arrays, verbose=0)
    moved = dict(arrays, coordinates=arrays["coordinates"].copy())
    atoms = np.flatnonzero(~np.isin(arrays["tokens"][0], [PAD_ID, CLS_ID, SEP_ID]))
    moved["coordinates"][0, atoms] = Rotation.from_euler("xyz", [30, 60, 90], degrees=True).apply(arrays["coordinates"][0, atoms]) + 7.0
    np.testing.assert_allclose(model.predict(moved, verbose=0), before, atol=1e-5)
    shuffled = {name: array.copy() for name, array in arrays.items()}
    for name in shuffled:
        shuffled[name][0, atoms] = arrays[name][0, atoms[::-1]]
    np.testing.assert_allclose(model.predict(shuffled, verbose=0), before, atol=1e-5)
    padded = {name: np.concatenate([array, np.zeros_like(array[:, :4])], axis=1) for name, array in arrays.items()}
    padded["coordinates"][0, -4:] = 3.0  # whatever a padded slot holds is never seen
    np.testing.assert_allclose(model.predict(padded, verbose=0), before, atol=1e-5)

    stretched = dict(arrays, coordinates=arrays["coordinates"] * 1.5)
    assert not np.allclose(model.predict(stretched, verbose=0), before, atol=1e-6)
    tokens_only = ElembertPreprocessor(tokens="v1", distances=False, descriptors=False)
    tokens_only.fit_transform(["long"], ["CCCCCCCCO"], "smiles")
    plain = build(DEFAULTS, tokens_only, TaskInfo("classification", ["t"]))
    assert model.count_params() == plain.count_params() + 2 * len(np.arange(0.0, 8.5, 0.5))  # a Gaussian weight per head


def test_trains_saves_and_reloads(preprocessor, tmp_path):
    import keras

    from keras_chem import load_model
    from keras_chem.models.heads import loss_for

    features = preprocessor.transform([str(i) for i in range(6)], ["CCO", "CCN", "c1ccccc1", "CC(=O)O", "OCCO", "CCCl"], "smiles")
    task = TaskInfo("classification", ["t"])
    model = build(DEFAULTS, preprocessor, task)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss_for(task, None))
    y = np.array([[0], [1], [0], [1], [0], [1]], dtype="float32")
    bias = model.get_layer("elembert_encoder").get_layer("distance_bias")
    before = bias.get_weights()[0].copy()
    model.fit(features.arrays, y, epochs=2, batch_size=3, verbose=0)
    assert not np.allclose(bias.get_weights()[0], before)
    model.save(tmp_path / "m.keras")
    reloaded = load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(reloaded.predict(features.arrays, verbose=0), model.predict(features.arrays, verbose=0), atol=1e-6)


def test_a_default_run_on_smiles_exports_with_coordinates(tmp_path):
    """`kchem train elembert` on SMILES: distances, descriptors, atom features and bonds on by default; the fold model
    reloads and the SavedModel (tokens, coordinates, descriptors, atom_features, bonds) predicts what the folds do."""
    from runs import check_round_trip_and_saved_model, kchem

    out = tmp_path / "run"
    kchem("train", "elembert", "--dataset", "bbbp", "--replicates", "1", "--limit", "48", "--epochs", "1", "--batch-size", "16", "--seed", "3",
          "--out", str(out))
    info = json.loads((out / "model_info.json").read_text())
    assert all(info["preprocessor"][switch] is True for switch in ("distances", "descriptors", "atom_features", "bonds"))
    check_round_trip_and_saved_model(out, ["CCO", "c1ccccc1O"], "smiles", tmp_path)


def test_masked_token_pretraining_sees_the_coordinates_and_transfers(tmp_path, preprocessor):
    from keras_chem.models.elembert import FAMILY
    from keras_chem.models.saving import load_encoder_weights
    from keras_chem.training.config import resolve_model_config
    from keras_chem.training.pretrain import pretrain

    config = resolve_model_config(FAMILY, {**FAMILY.pretraining["mlm"].defaults, "epochs": 1, "batch_size": 16, "layers": 1})
    info = pretrain(FAMILY, "mlm", ["bbbp"], config, tmp_path / "pt", seed=0, limit=40)
    assert info["preprocessor"]["distances"] is True
    model = build(config, preprocessor, TaskInfo("classification", ["t"]))
    FAMILY.initialize(model, str(tmp_path / "pt" / "encoder_weights.npz"), config, preprocessor)
    bias = model.get_layer("elembert_encoder").get_layer("distance_bias").get_weights()[0]
    assert any(np.array_equal(bias, w) for w in load_encoder_weights(tmp_path / "pt" / "encoder_weights.npz")[0])
    tokens_only = ElembertPreprocessor(tokens="v1", distances=False, descriptors=False)
    tokens_only.fit_transform(["a"], ["CCO"], "smiles")
    with pytest.raises(ValueError, match="distances: pretrained True vs False"):
        FAMILY.initialize(build(config, tokens_only, TaskInfo("classification", ["t"])), str(tmp_path / "pt"), config, tokens_only)
