"""elEmBERT with `--atom-features` (each atom's RDKit chemistry added to its token embedding) and `--bonds` (an
attention bias from the molecular graph)."""

import numpy as np
import pytest

from keras_chem.featurizers.atom_features import CATEGORIES, FEATURES, atom_feature_ids
from keras_chem.featurizers.bonds import BOND_KINDS, MAX_BONDS, bond_kind, bonded_atoms, too_many_bonds
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
    pre = ElembertPreprocessor(tokens="v1", descriptors=False, atom_features=True, bonds=True)
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


def test_bonds_name_partners_by_token_position_in_conformer_order(preprocessor):
    from rdkit import Chem

    ethanol = bonded_atoms(mol_from_smiles("CCO")[0])  # C0 C1 O2, then H3-5 on C0, H6-7 on C1, H8 on O2
    single = bond_kind(Chem.MolFromSmiles("CC").GetBondWithIdx(0))
    assert ethanol.shape == (9, MAX_BONDS, 2) and ethanol.dtype == np.int16
    assert sorted(ethanol[0, :4, 0]) == [2, 4, 5, 6] and not ethanol[0, 4:].any()  # token positions: atom index + 1
    assert sorted(ethanol[2, :2, 0]) == [2, 9] and (ethanol[2, :2, 1] == single).all()
    benzene = Chem.AddHs(Chem.MolFromSmiles("c1ccccc1"))
    kinds = {bond_kind(bond) for bond in benzene.GetBonds()}
    assert len(kinds) == 2 and max(kinds) <= BOND_KINDS  # aromatic ring bonds, and C-H
    assert too_many_bonds(mol_from_smiles("FS(F)(F)(F)(F)F")[0]) is None
    assert "9 bonds" in too_many_bonds(mol_from_smiles("F[U](F)(F)(F)(F)(F)(F)(F)F")[0])

    features = preprocessor.transform(["ethanol", "uranium"], ["CCO", "F[U](F)(F)(F)(F)(F)(F)(F)F"], "smiles")
    assert [skip.reason for skip in features.skipped] == [too_many_bonds(mol_from_smiles("F[U](F)(F)(F)(F)(F)(F)(F)F")[0])]
    bonds, tokens = features.arrays["bonds"][0], features.arrays["tokens"][0]
    atoms = ~np.isin(tokens, [PAD_ID, CLS_ID, SEP_ID])
    np.testing.assert_array_equal(bonds[atoms], ethanol)
    assert not bonds[~atoms].any()
    assert preprocessor.input_signature()["bonds"] == ((preprocessor.cap, MAX_BONDS, 2), "int16")
    with pytest.raises(ValueError, match="--bonds takes molecules given as SMILES"):
        ElembertPreprocessor(tokens="v0", bonds=True, descriptors=False, atom_features=False).featurize(["x"], ["H2O"], "composition")


def test_the_bond_bias_counts_bonds_between_atoms_and_ignores_padding():
    import keras
    from rdkit import Chem

    from keras_chem.layers.bond_bias import HOP_BUCKETS, BondPathBias

    ethanol = bonded_atoms(mol_from_smiles("CCO")[0])
    bonds = np.zeros((1, 13, MAX_BONDS, 2), np.int16)  # [CLS], 9 atoms, [SEP], 2 of padding
    bonds[0, 1:10] = ethanol
    atoms = np.zeros((1, 13), bool)
    atoms[0, 1:10] = True
    layer = BondPathBias(heads=2, bond_kinds=BOND_KINDS)
    layer.build(bonds.shape)
    assert not keras.ops.convert_to_numpy(layer(bonds, atoms)).any()  # zero-initialized
    rows = np.arange(HOP_BUCKETS + BOND_KINDS, dtype="float32")
    layer.table.assign(np.stack([np.where(rows < HOP_BUCKETS, rows, -1), np.where(rows < HOP_BUCKETS, 0, rows - HOP_BUCKETS + 1)], axis=1))
    bias = keras.ops.convert_to_numpy(layer(bonds, atoms))[0]  # head 0: the bucket of an unbonded pair, head 1: a bond's kind
    buckets_from_h3 = [-1, 2, 3, 0, 2, 2, 3, 3, 3]  # H3 (on C0): C0 bonded, C1 2, O2 3, itself, H4-5 2, H6-7 3, H8 4 (3-4)
    np.testing.assert_array_equal(bias[0, 4, 1:10], buckets_from_h3)
    np.testing.assert_array_equal(bias[0], bias[0].T)
    kinds_from_o2 = np.zeros(9)
    kinds_from_o2[[1, 8]] = ethanol[2, 0, 1]
    np.testing.assert_array_equal(bias[1, 3, 1:10], kinds_from_o2)
    assert not bias[:, ~atoms[0]].any() and not bias[:, :, ~atoms[0]].any()
    chain = bonded_atoms(Chem.MolFromSmiles("CCCCCCCCCCC"))  # no hydrogens: atom i is |i - j| bonds from atom j
    chain_bonds = np.zeros((1, 12, MAX_BONDS, 2), np.int16)
    chain_bonds[0, 1:] = chain
    chain_bias = keras.ops.convert_to_numpy(layer(chain_bonds, np.arange(12)[None] > 0))[0, 0, 1, 1:]
    np.testing.assert_array_equal(chain_bias, [0, -1, 2, 3, 3, 4, 4, 4, 4, 5, 5])  # 0, bonded, 2, 3-4, 5-8, farther
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(bonds[:, :11], atoms[:, :11]))[0], bias[:, :11, :11])


@pytest.mark.parametrize("switch", ["atom_features", "bonds"])
def test_trains_saves_and_reloads_with_molecule_chemistry(preprocessor, tmp_path, switch):
    import keras

    from keras_chem import load_model
    from keras_chem.models.heads import loss_for

    features = preprocessor.transform([str(i) for i in range(6)], SMILES, "smiles")
    task = TaskInfo("classification", ["t"])
    config = {**DEFAULTS, "descriptors": False}
    model = build(config, preprocessor, task)
    untrained = model.predict(features.arrays, verbose=0)
    scrambled = {**features.arrays, switch: features.arrays[switch][::-1].copy()}
    np.testing.assert_allclose(model.predict(scrambled, verbose=0), untrained, atol=1e-6)  # zero-initialized
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss_for(task, None))
    model.fit(features.arrays, np.array([[0], [1], [0], [1], [0], [1]], dtype="float32"), epochs=2, batch_size=3, verbose=0)
    before = model.predict(features.arrays, verbose=0)
    assert not np.allclose(model.predict(scrambled, verbose=0), before, atol=1e-6)
    model.save(tmp_path / "m.keras")
    np.testing.assert_allclose(load_model(tmp_path / "m.keras").predict(features.arrays, verbose=0), before, atol=1e-6)


def test_the_shipped_encoder_starts_a_model_with_molecule_chemistry_where_its_pretraining_left_off(preprocessor):
    from keras_chem.models.elembert import FAMILY

    task = TaskInfo("classification", ["t"])
    plain_preprocessor = ElembertPreprocessor(tokens="v1", descriptors=False, atom_features=False, bonds=False)
    plain_preprocessor.fit_transform(["long"], ["CCCCCCCCO"], "smiles")
    encoders = {}
    for name, pre in (("with", preprocessor), ("without", plain_preprocessor)):
        config = {**DEFAULTS, "descriptors": False}
        model = build(config, pre, task)
        FAMILY.initialize(model, "pretrained", config, pre)
        encoders[name] = model.get_layer("elembert_encoder")
    arrays = preprocessor.transform([str(i) for i in range(6)], SMILES, "smiles").arrays
    with_atoms = encoders["with"](arrays)
    np.testing.assert_allclose(with_atoms, encoders["without"]({k: arrays[k] for k in ("tokens", "coordinates")}), atol=1e-5)

    # bonds without distances: biased attention blocks, which the encoder shipped without distances does not have
    bonds_alone = ElembertPreprocessor(tokens="v1", distances=False, descriptors=False, atom_features=False, bonds=True)
    bonds_alone.fit_transform(["long"], ["CCCCCCCCO"], "smiles")
    config = {**DEFAULTS, "distances": False, "descriptors": False}
    model = build(config, bonds_alone, task)
    with pytest.raises(ValueError, match="bonds: pretrained False vs True"):
        FAMILY.initialize(model, "pretrained", config, bonds_alone)
    tokens_alone = ElembertPreprocessor(tokens="v1", distances=False, descriptors=False, atom_features=False)
    tokens_alone.settle("smiles")
    assert tokens_alone.bonds is False  # by default bonds come with distances
