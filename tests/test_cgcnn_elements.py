"""CGCNN-style element table from pymatgen data, against the original atom_init.json."""

from __future__ import annotations

import numpy as np
import pytest

from keras_chem.featurizers.cgcnn_elements import (
    MAX_Z,
    N_FEATURES,
    SECTION_OFFSETS,
    SECTIONS,
    cgcnn_element_table,
    cgcnn_features,
    element_properties,
    load_reference_table,
    section_bins,
    table_agreement,
)

pytestmark = pytest.mark.backend_independent

# Measured with pymatgen 2026.10 (see the module docstring for where the rest differs).
MIN_ROWS_IDENTICAL = 37
MIN_ENTRIES_FRACTION = 0.98


@pytest.fixture(scope="module")
def reference_path(data_dir):
    return data_dir / "cgcnn_atom_init" / "atom_init.json"


def test_table_shape_and_one_hot_sections():
    table = cgcnn_element_table()
    assert table.shape == (MAX_Z + 1, N_FEATURES) == (119, 92) and table.dtype == np.float32
    assert sum(size for _, size in SECTIONS) == 92
    assert not table[0].any()  # padding row
    assert set(np.unique(table)) <= {0.0, 1.0}
    for name, size in SECTIONS:
        block = table[1:, SECTION_OFFSETS[name] : SECTION_OFFSETS[name] + size]
        assert block.sum(axis=1).max() <= 1, name
        if name in ("group", "period", "valence_electrons", "block"):
            assert np.all(block.sum(axis=1) == 1), name  # always known


def test_table_is_cached_and_read_only():
    assert cgcnn_element_table() is cgcnn_element_table()
    with pytest.raises(ValueError):
        cgcnn_element_table()[1, 0] = 5.0


def test_known_elements():
    iron = section_bins(26)
    assert iron["group"] == 8 and iron["period"] == 3 and iron["block"] == 2
    assert iron["valence_electrons"] == 7  # 8 valence electrons -> bin 7
    assert section_bins(57)["group"] == 0 and section_bins(71)["group"] == 3  # La vs Lu
    helium = element_properties(2)
    assert helium["block"] == "s" and helium["valence_electrons"] == 2 and helium["electronegativity"] is None
    assert element_properties(12)["electron_affinity"] is None  # Mg: pymatgen lists a negative value
    assert element_properties(100)["covalent_radius"] is None  # beyond Cordero's radii


def test_agreement_with_the_original_file(reference_path):
    agreement = table_agreement(reference_path)
    print(
        f"\nCGCNN table vs atom_init.json: {agreement['rows_identical']}/{agreement['rows']} rows identical, "
        f"{agreement['entries_agreeing']}/{agreement['entries']} entries agree ({agreement['entries_fraction']:.2%}); "
        f"rows agreeing per section: {agreement['sections']}"
    )
    assert agreement["rows"] == 100 and agreement["entries"] == 9200
    assert agreement["rows_identical"] >= MIN_ROWS_IDENTICAL
    assert agreement["entries_fraction"] >= MIN_ENTRIES_FRACTION
    for name in ("group", "period", "first_ionization_energy", "block"):
        assert agreement["sections"][name] == 100, name
    assert agreement["sections"]["valence_electrons"] >= 99
    reference = load_reference_table(reference_path)
    for symbol, z in (("Li", 3), ("C", 6), ("Na", 11), ("Fe", 26), ("Au", 79)):
        np.testing.assert_array_equal(cgcnn_element_table()[z], reference[z], err_msg=symbol)


def test_elements_outside_the_table_are_clear_errors():
    features = cgcnn_features(np.array([[8, 26], [118, 1]]))
    assert features.shape == (2, 2, 92)
    np.testing.assert_array_equal(features[0, 1], cgcnn_element_table()[26])
    with pytest.raises(ValueError, match="atomic number 119 is outside the CGCNN element table"):
        cgcnn_features([1, 119])
    with pytest.raises(ValueError, match="atomic number 0"):
        cgcnn_features([0])


def test_bad_reference_file(tmp_path):
    path = tmp_path / "atom_init.json"
    path.write_text('{"1": [0, 1]}')
    with pytest.raises(ValueError, match="do not have 92 values"):
        load_reference_table(path)
