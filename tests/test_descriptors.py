"""elEmBERT with `--descriptors`: RDKit's 2-D descriptors of a SMILES beside the [CLS] embedding."""

import numpy as np
import pytest

from keras_chem.models.base import TaskInfo
from keras_chem.models.elembert import DEFAULTS, NO_SMILES, ElembertPreprocessor, build

SMILES = ["CCO", "CCN", "c1ccccc1", "CC(=O)O", "OCCO", "CCCl"]


@pytest.fixture(scope="module")
def preprocessor():
    pre = ElembertPreprocessor(tokens="v1", descriptors="auto")
    pre.fit_transform(["long"], ["CCCCCCCCO"], "smiles")
    return pre


def test_descriptors_are_rdkits_squashed(preprocessor):
    from rdkit import Chem
    from rdkit.Chem import Descriptors

    assert preprocessor.descriptors is True and len(preprocessor.descriptor_names) > 200
    features = preprocessor.transform(["aspirin", "ethanol"], ["CC(=O)Oc1ccccc1C(=O)O", "CCO"], "smiles")
    descriptors = features.arrays["descriptors"]
    assert descriptors.shape == (2, len(preprocessor.descriptor_names)) and descriptors.dtype == np.float32
    assert np.isfinite(descriptors).all()
    expected = Descriptors.CalcMolDescriptors(Chem.MolFromSmiles("CC(=O)Oc1ccccc1C(=O)O"))
    column = {name: i for i, name in enumerate(preprocessor.descriptor_names)}
    for name in ("MolWt", "TPSA", "NumHDonors", "MolLogP"):
        value = expected[name]
        assert descriptors[0, column[name]] == pytest.approx(np.sign(value) * np.log1p(abs(value)), rel=1e-5)

    with pytest.raises(ValueError, match=NO_SMILES.format("descriptors")):
        ElembertPreprocessor(tokens="v0", descriptors=True).featurize(["x"], ["H2O"], "composition")
    assert ElembertPreprocessor(tokens="v0", descriptors="auto").featurize(["x"], ["H2O"], "composition").arrays.keys() == {"tokens"}
    assert ElembertPreprocessor(tokens="v0", descriptors="auto").featurize(["x"], ["CCO"], "smiles").arrays.keys() == {"tokens"}
    saved = {**preprocessor.get_config(), "descriptor_names": ["MolWt", "NoSuchDescriptor"]}
    with pytest.raises(ValueError, match="no descriptor NoSuchDescriptor"):
        ElembertPreprocessor(**saved).transform(["x"], ["CCO"], "smiles")


def test_trains_saves_and_reloads_with_descriptors(preprocessor, tmp_path):
    import keras

    from keras_chem import load_model
    from keras_chem.models.heads import loss_for

    features = preprocessor.transform([str(i) for i in range(6)], SMILES, "smiles")
    task = TaskInfo("classification", ["t"])
    model = build(DEFAULTS, preprocessor, task)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss_for(task, None))
    model.fit(features.arrays, np.array([[0], [1], [0], [1], [0], [1]], dtype="float32"), epochs=2, batch_size=3, verbose=0)
    before = model.predict(features.arrays, verbose=0)
    changed = dict(features.arrays, descriptors=features.arrays["descriptors"][::-1].copy())
    assert not np.allclose(model.predict(changed, verbose=0), before, atol=1e-6)
    model.save(tmp_path / "m.keras")
    reloaded = load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(reloaded.predict(features.arrays, verbose=0), before, atol=1e-6)

    without = ElembertPreprocessor(tokens="v1", descriptors=False)
    without.fit_transform(["long"], ["CCCCCCCCO"], "smiles")
    width, dim = len(preprocessor.descriptor_names), DEFAULTS["embed_dim"]
    # batch normalization (4 per descriptor), the projection, and the head's weights for the projected features
    assert model.count_params() == build(DEFAULTS, without, task).count_params() + 4 * width + (width + 1) * dim + dim


def test_the_descriptor_branch_takes_its_own_width_and_dropout(preprocessor):
    task = TaskInfo("classification", ["t"])
    narrow = build(DEFAULTS, preprocessor, task)
    wide = build({**DEFAULTS, "descriptor_width": 64, "descriptor_hidden_dropout": 0.3}, preprocessor, task)
    width, dim = len(preprocessor.descriptor_names), DEFAULTS["embed_dim"]
    assert narrow.get_layer("descriptor_projection").units == dim and wide.get_layer("descriptor_projection").units == 64
    # the wider projection, and the head's weights for its extra features
    assert wide.count_params() == narrow.count_params() + (width + 1) * (64 - dim) + (64 - dim)
    assert wide.get_layer("descriptor_hidden_dropout").rate == 0.3
    assert "descriptor_hidden_dropout" not in {layer.name for layer in narrow.layers}
