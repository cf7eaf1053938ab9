"""elEmBERT with `--atom-features`: each atom's RDKit chemistry added to its token embedding."""

import numpy as np
import pytest

from keras_chem.featurizers.atom_features import CATEGORIES, FEATURES, atom_feature_ids
from keras_chem.featurizers.tokens import CLS_ID, PAD_ID, SEP_ID
from keras_chem.models.base import TaskInfo
from keras_chem.models.elembert import DEFAULTS, ElembertPreprocessor, build
from keras_chem.structures.molecules import mol_from_smiles

SMILES = ["CCO", "CCN", "c1ccccc1", "CC(=O)[O-]", "OCCO", "C[C@H](N)Cl"]


def _id(feature: str, value) -> int:
    return CATEGORIES[feature].index(value) + 1


def _ids(smiles: str) -> np.ndarray:
    return atom_feature_ids(mol_from_smiles(smiles)[0])


@pytest.fixture(scope="module")
def preprocessor():
    pre = ElembertPreprocessor(tokens="v1", descriptors=False, atom_features=True)
    pre.fit_transform(["long"], ["CCCCCCCCO"], "smiles")
    return pre


def test_atom_features_are_rdkits_in_conformer_order(preprocessor):
    column = {name: k for k, name in enumerate(FEATURES)}
    alanine_like = _ids("C[C@H](N)c1ccccc1")  # heavy atoms as written, then the hydrogens
    assert alanine_like.shape == (20, len(FEATURES)) and alanine_like.dtype == np.int8
    assert alanine_like[1, column["chirality"]] in (_id("chirality", "CHI_TETRAHEDRAL_CW"), _id("chirality", "CHI_TETRAHEDRAL_CCW"))
    assert (alanine_like[3:9, column["aromatic"]] == _id("aromatic", True)).all()
    assert (alanine_like[3:9, column["ring_size"]] == _id("ring_size", 6)).all()
    assert alanine_like[0, column["hydrogens"]] == _id("hydrogens", 3) and alanine_like[2, column["hydrogens"]] == _id("hydrogens", 2)
    assert (alanine_like[9:, column["degree"]] == _id("degree", 1)).all()
    assert _ids("[O-]C")[0, column["formal_charge"]] == _id("formal_charge", -1)
    assert _ids("[Fe+6]")[0, column["formal_charge"]] == len(CATEGORIES["formal_charge"]) + 1  # "other"

    features = preprocessor.transform(["ethanol"], ["CCO"], "smiles")
    tokens, ids = features.arrays["tokens"][0], features.arrays["atom_features"][0]
    atoms = ~np.isin(tokens, [PAD_ID, CLS_ID, SEP_ID])
    assert ids.shape == (preprocessor.cap, len(FEATURES)) and not ids[~atoms].any()
    np.testing.assert_array_equal(ids[atoms], _ids("CCO"))
    symbols = [preprocessor.vocabulary.tokens[t].rstrip("0123456789") for t in tokens[atoms]]  # sub-elements: C3, H1, ...
    assert symbols == ["C", "C", "O"] + ["H"] * 6
    assert preprocessor.input_signature()["atom_features"] == ((preprocessor.cap, len(FEATURES)), "int8")
    with pytest.raises(ValueError, match="--atom-features takes molecules given as SMILES"):
        ElembertPreprocessor(tokens="v0", atom_features=True, descriptors=False).featurize(["x"], ["H2O"], "composition")


def test_trains_saves_and_reloads_with_atom_features(preprocessor, tmp_path):
    import keras

    from keras_chem import load_model
    from keras_chem.models.heads import loss_for

    features = preprocessor.transform([str(i) for i in range(6)], SMILES, "smiles")
    task = TaskInfo("classification", ["t"])
    config = {**DEFAULTS, "descriptors": False, "atom_features": True}
    model = build(config, preprocessor, task)
    untrained = model.predict(features.arrays, verbose=0)
    scrambled = dict(features.arrays, atom_features=features.arrays["atom_features"][::-1].copy())
    np.testing.assert_allclose(model.predict(scrambled, verbose=0), untrained, atol=1e-6)  # zero-initialized
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss_for(task, None))
    model.fit(features.arrays, np.array([[0], [1], [0], [1], [0], [1]], dtype="float32"), epochs=2, batch_size=3, verbose=0)
    before = model.predict(features.arrays, verbose=0)
    assert not np.allclose(model.predict(scrambled, verbose=0), before, atol=1e-6)
    model.save(tmp_path / "m.keras")
    np.testing.assert_allclose(load_model(tmp_path / "m.keras").predict(features.arrays, verbose=0), before, atol=1e-6)


def test_the_shipped_encoder_starts_a_model_with_atom_features_where_its_pretraining_left_off(preprocessor):
    from keras_chem.models.elembert import FAMILY

    task = TaskInfo("classification", ["t"])
    plain_preprocessor = ElembertPreprocessor(tokens="v1", descriptors=False, atom_features=False)
    plain_preprocessor.fit_transform(["long"], ["CCCCCCCCO"], "smiles")
    encoders = {}
    for name, pre, atom_features in (("with", preprocessor, True), ("without", plain_preprocessor, False)):
        config = {**DEFAULTS, "descriptors": False, "atom_features": atom_features}
        model = build(config, pre, task)
        FAMILY.initialize(model, "pretrained", config, pre)
        encoders[name] = model.get_layer("elembert_encoder")
    arrays = preprocessor.transform([str(i) for i in range(6)], SMILES, "smiles").arrays
    with_atoms = encoders["with"](arrays)
    np.testing.assert_allclose(with_atoms, encoders["without"]({k: arrays[k] for k in ("tokens", "coordinates")}), atol=1e-5)
