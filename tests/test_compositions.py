"""Formulas → weighted compositions: the parsing rules, bad input, element tables, the padded arrays."""

import numpy as np
import pytest

from keras_chem.data.registry import list_cards
from keras_chem.featurizers.compositions import parse_formula, structure_composition, weighted_composition
from keras_chem.featurizers.element_tables import covered_elements, element_table
from keras_chem.models.roost import CompositionPreprocessor

pytestmark = pytest.mark.backend_independent


@pytest.mark.parametrize("formula, amounts", [
    ("Fe2O3", {8: 3.0, 26: 2.0}),
    ("Hg0.7Cd0.3Te", {48: 0.3, 52: 1.0, 80: 0.7}),  # fractional amounts are valid
    ("Ca(OH)2", {1: 2.0, 8: 2.0, 20: 1.0}),
    ("(NH4)2SO4", {1: 8.0, 7: 2.0, 8: 4.0, 16: 1.0}),
    ("CuSO4·5H2O", {1: 10.0, 8: 9.0, 16: 1.0, 29: 1.0}),  # hydrate: part counts multiply
    ("CuSO4*5H2O", {1: 10.0, 8: 9.0, 16: 1.0, 29: 1.0}),
    ("CuSO4.5H2O", {1: 2.0, 8: 5.5, 16: 1.0, 29: 1.0}),  # "." is a decimal point
    ("K6 S6", {16: 6.0, 19: 6.0}),
    ("Fe0O", {8: 1.0}),  # a zero amount means absent
    ("D2O", {1: 2.0, 8: 1.0}),
])
def test_formula_rules(formula, amounts):
    parsed, reason = parse_formula(formula)
    assert reason is None and parsed == pytest.approx(amounts) and list(parsed) == sorted(parsed)


@pytest.mark.parametrize("formula, reason", [
    ("", "empty formula"),
    ("   ", "empty formula"),
    (None, "empty formula"),
    ("Fe3+", "has a charge"),
    ("Fe[2+]", "has a charge"),
    ("Fe2+O2-", "has a charge"),
    ("Fe-1O", "negative amount"),
    ("Xx2O", "'Xx', which is not an element"),
    ("Fe2O3$", "cannot parse formula"),
    ("CuSO4·", "empty part"),
    ("Fe0", "no element with a positive amount"),
])
def test_bad_formulas_have_reasons(formula, reason):
    parsed, why = parse_formula(formula)
    assert parsed is None and reason in why


def test_fractions_sum_to_one_and_structures_count_their_cell():
    from pymatgen.core import Lattice, Structure

    (z, fractions), _ = weighted_composition("Li7La3Zr2O12")
    assert z.tolist() == [3, 8, 40, 57] and fractions.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(fractions, np.array([7, 12, 2, 3]) / 24)
    rocksalt = Structure(Lattice.cubic(5.64), ["Na", "Na", "Cl", "Cl"], [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0.5, 0.5], [0, 0, 0.5]])
    (z, fractions), _ = structure_composition(rocksalt)
    assert z.tolist() == [11, 17] and fractions.tolist() == [0.5, 0.5]


def test_element_tables():
    matscholar = element_table("matscholar")
    assert matscholar.shape == (119, 200) and not matscholar.flags.writeable
    covered = covered_elements("matscholar")
    assert covered.sum() == 103 and covered[1] and covered[103] and not covered[104] and not covered[0]
    np.testing.assert_allclose(np.linalg.norm(matscholar[covered], axis=1), 1.0, atol=1e-5)  # unit norm, as shipped
    assert element_table("cgcnn92").shape == (119, 92) and covered_elements("cgcnn92")[1:].all()
    onehot = element_table("onehot")
    assert onehot.shape == (119, 118) and onehot[26, 25] == 1 and onehot.sum() == 118
    assert element_table("learned") is None and covered_elements("learned")[1:].all()
    with pytest.raises(ValueError, match="unknown element features"):
        element_table("magpie")


def test_preprocessor_pads_skips_and_round_trips():
    preprocessor = CompositionPreprocessor("matscholar", max_elements=5)
    ids = ["ok", "three", "og", "bad", "many"]
    formulas = ["NaCl", "Hg0.7Cd0.3Te", "OgF2", "Fe3+", "LiBeBCNOF"]
    features = preprocessor.fit_transform(ids, formulas, "composition")
    assert features.kept.tolist() == [0, 1] and preprocessor.cap == 3
    reasons = {skip.row_id: skip.reason for skip in features.skipped}
    assert "no matscholar vector for Og" in reasons["og"] and "has a charge" in reasons["bad"]
    assert "7 elements, over --max-elements 5" in reasons["many"]
    arrays = features.arrays
    assert arrays["elem_z"].tolist() == [[11, 17, 0], [48, 52, 80]]
    assert arrays["elem_mask"].tolist() == [[True, True, False], [True, True, True]]
    np.testing.assert_allclose(arrays["elem_frac"].sum(axis=1), 1.0)

    again = CompositionPreprocessor(**preprocessor.get_config())
    over = again.transform(["four"], ["LiBeBC"], "composition")
    assert len(over.kept) == 0 and "4 elements, over the model's cap of 3" in over.skipped[0].reason
    assert again.transform(["x"], ["KCl"], "composition").arrays["elem_z"].tolist() == [[17, 19, 0]]
    with pytest.raises(ValueError, match="formulas or crystal structures"):
        again.transform(["x"], ["CCO"], "smiles")


@pytest.mark.parametrize("name", [card.name for card in list_cards() if card.input == "composition"])
def test_every_composition_dataset_featurizes(name):
    from keras_chem.data.loaders import load_dataset

    data = load_dataset(name, limit=200)
    features = CompositionPreprocessor().fit_transform(data.ids, data.inputs, data.input_kind)
    assert len(features.kept) >= 0.95 * len(data.inputs), features.skipped[:5]
