"""The Magpie-style fingerprint against values worked out by hand."""

import numpy as np
import pytest

from keras_chem.featurizers.magpie import PROPERTIES, feature_names, magpie_fingerprint, property_table, valence_electrons
from keras_chem.models.roost import CompositionPreprocessor

pytestmark = pytest.mark.backend_independent


def test_element_properties_as_magpie_counts_them():
    table = property_table()
    iron = dict(zip(PROPERTIES, table[26]))
    assert iron["Number"] == 26 and iron["Column"] == 8 and iron["Row"] == 4 and iron["CovalentRadius"] == 132
    assert (iron["NsValence"], iron["NdValence"], iron["NValence"], iron["NdUnfilled"], iron["NUnfilled"]) == (2, 6, 8, 4, 4)
    assert valence_electrons("[Xe].4f14.5d10.6s2.6p2") == {"s": 2, "p": 2, "d": 10, "f": 14}  # lead: filled d and f count
    assert iron["GSvolume_pa"] == pytest.approx(7.09e24 / 6.02214076e23)
    assert np.isfinite(table[1:]).all() and not table.flags.writeable  # missing values imputed


def test_fingerprint_of_iron_oxide_and_rock_salt_by_hand():
    arrays = CompositionPreprocessor("onehot").fit_transform(["a", "b"], ["Fe2O3", "NaCl"], "composition").arrays
    fingerprint = magpie_fingerprint(arrays["elem_z"], arrays["elem_frac"], arrays["elem_mask"])
    names = feature_names()
    assert fingerprint.shape == (2, 126) == (2, len(names))
    value = {name: fingerprint[:, i] for i, name in enumerate(names)}
    np.testing.assert_allclose(value["0-norm"], [2, 2])
    np.testing.assert_allclose(value["2-norm"], [np.hypot(0.4, 0.6), np.hypot(0.5, 0.5)], rtol=1e-6)
    np.testing.assert_allclose(value["mean Number"], [0.4 * 26 + 0.6 * 8, 14], rtol=1e-6)
    np.testing.assert_allclose(value["avg_dev Number"], [0.4 * 10.8 + 0.6 * 7.2, 3], rtol=1e-6)
    np.testing.assert_allclose(value["range Number"], [18, 6])
    np.testing.assert_allclose(value["mode Number"], [8, 11])  # the most abundant element; on a tie the smaller value
    np.testing.assert_allclose(value["frac d valence electrons"], [0.4 * 6 / (0.4 * 8 + 0.6 * 6), 0], rtol=1e-6)
    ionic = 1 - np.exp(-0.25 * (3.44 - 1.83) ** 2)  # Pauling χ of O and Fe
    np.testing.assert_allclose(value["max ionic char"][0], ionic, rtol=1e-6)
    np.testing.assert_allclose(value["avg ionic char"][0], 2 * 0.4 * 0.6 * ionic, rtol=1e-6)
