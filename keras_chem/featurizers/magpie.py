"""A Magpie-style composition fingerprint (Ward et al. 2016, as matminer's `magpie` preset computes
it), from pymatgen's and ASE's element data, vectorised over padded compositions.

matminer itself pins pandas < 3, which would downgrade this stack, and its Magpie element tables are
not shipped here, so the element properties come from pymatgen (ASE for Cordero's covalent radii).
Of Magpie's 22 properties, 19 have a source: Number, MendeleevNumber, AtomicWeight, MeltingT,
Column, Row, CovalentRadius, Electronegativity (Pauling), the s/p/d/f valence electrons (outside
the noble-gas core, as Magpie counts them: Pb has 2 s, 2 p, 10 d and 14 f), their total, the
unfilled s/p/d/f states and their total, and GSvolume_pa, which is the experimental molar volume
per atom here (Magpie's is the DFT ground state's). GSbandgap, GSmagmom and SpaceGroupNumber (OQMD
ground states) have none and are left out, as is IonProperty's "compound possible" (an oxidation
state search per formula; the original's committed fingerprint file lacks it too). A missing
element value is replaced by the property's mean over the elements that have one.

Features (126): stoichiometry p-norms (p = 0, 2, 3, 5, 7, 10); per property the fraction-weighted
minimum, maximum, range, mean, mean absolute deviation and mode (the value of the most abundant
element, the smallest on a tie); the s/p/d/f shares of the mean valence electrons; and the
maximum and the fraction-weighted mean ionic character 1 − exp(−(χ_i − χ_j)²/4) over element pairs.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from keras_chem.featurizers.cgcnn_elements import MAX_Z, covalent_radius_pm, number_or_none

PROPERTIES = ("Number", "MendeleevNumber", "AtomicWeight", "MeltingT", "Column", "Row", "CovalentRadius", "Electronegativity",
              "NsValence", "NpValence", "NdValence", "NfValence", "NValence", "NsUnfilled", "NpUnfilled", "NdUnfilled",
              "NfUnfilled", "NUnfilled", "GSvolume_pa")
STATISTICS = ("minimum", "maximum", "range", "mean", "avg_dev", "mode")
P_NORMS = (0, 2, 3, 5, 7, 10)
ORBITAL_CAPACITY = {"s": 2, "p": 6, "d": 10, "f": 14}
AVOGADRO = 6.02214076e23
ORBITAL = re.compile(r"^\d+([spdf])(\d+)$")


def feature_names() -> list[str]:
    return ([f"{p}-norm" for p in P_NORMS] + [f"{stat} {prop}" for prop in PROPERTIES for stat in STATISTICS]
            + [f"frac {orbital} valence electrons" for orbital in "spdf"] + ["max ionic char", "avg ionic char"])


def valence_electrons(configuration: str) -> dict[str, int]:
    """Electrons per orbital type outside the noble-gas core of `"[Ar].3d6.4s2"`-style configurations."""
    counts = dict.fromkeys("spdf", 0)
    for part in configuration.split("."):
        match = ORBITAL.match(part)
        if match:
            counts[match.group(1)] += int(match.group(2))
    return counts


def element_values(z: int) -> dict[str, float | None]:
    """The 19 properties of element `z` (None where pymatgen has no value)."""
    from pymatgen.core.periodic_table import Element

    element = Element.from_Z(int(z))
    data = element.data
    configuration = (data.get("Electronic structure") or {}).get("0") if isinstance(data.get("Electronic structure"), dict) \
        else data.get("Electronic structure")
    values: dict[str, float | None] = {
        "Number": float(z), "MendeleevNumber": number_or_none(element.mendeleev_no), "AtomicWeight": number_or_none(element.atomic_mass),
        "MeltingT": number_or_none(data.get("Melting point")), "Column": number_or_none(element.group),
        "Row": number_or_none(element.row), "CovalentRadius": covalent_radius_pm(z), "Electronegativity": number_or_none(data.get("X")),
    }
    volume = number_or_none(data.get("Molar volume"))
    values["GSvolume_pa"] = volume * 1e24 / AVOGADRO if volume else None
    if configuration:
        valence = valence_electrons(configuration)
        for orbital, capacity in ORBITAL_CAPACITY.items():
            values[f"N{orbital}Valence"] = float(valence[orbital])
            values[f"N{orbital}Unfilled"] = float(capacity - valence[orbital]) if valence[orbital] else 0.0
        values["NValence"] = float(sum(valence.values()))
        values["NUnfilled"] = sum(values[f"N{o}Unfilled"] for o in "spdf")
    return values


@lru_cache(maxsize=1)
def property_table() -> np.ndarray:
    """float64 `[119, 19]`: row Z holds element Z's properties (missing values imputed by the
    property's mean over the elements that have one); row 0 is padding (zeros). Read-only."""
    import warnings

    table = np.full((MAX_Z + 1, len(PROPERTIES)), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen warns about every missing datum
        for z in range(1, MAX_Z + 1):
            values = element_values(z)
            table[z] = [np.nan if values.get(name) is None else values[name] for name in PROPERTIES]
    means = np.nanmean(table[1:], axis=0)
    table[1:] = np.where(np.isnan(table[1:]), means, table[1:])
    table[0] = 0.0
    table.flags.writeable = False
    return table


def magpie_fingerprint(elem_z: np.ndarray, elem_frac: np.ndarray, elem_mask: np.ndarray) -> np.ndarray:
    """float32 `[B, 126]` of padded compositions (fractions summing to 1 over the real elements)."""
    real = elem_mask.astype(bool)
    frac = np.where(real, elem_frac, 0.0).astype(np.float64)
    norms = [real.sum(axis=1).astype(np.float64)] + [np.sum(frac**p, axis=1) ** (1.0 / p) for p in P_NORMS[1:]]
    values = property_table()[np.where(real, elem_z, 0)]  # [B, M, P]
    weights = frac[..., None]
    mean = np.sum(weights * values, axis=1)
    minimum = np.where(real[..., None], values, np.inf).min(axis=1)
    maximum = np.where(real[..., None], values, -np.inf).max(axis=1)
    deviation = np.sum(weights * np.abs(values - mean[:, None, :]), axis=1)
    # the mode: the most abundant element's value, the smallest among equally abundant ones
    most = np.isclose(frac, frac.max(axis=1, keepdims=True)) & real
    mode = np.where(most[..., None], values, np.inf).min(axis=1)
    stats = np.stack([minimum, maximum, maximum - minimum, mean, deviation, mode], axis=-1)  # [B, P, 6]
    valence = mean[:, [PROPERTIES.index(f"N{o}Valence") for o in "spdf"]]
    shares = valence / np.maximum(mean[:, [PROPERTIES.index("NValence")]], 1e-12)
    chi = values[..., PROPERTIES.index("Electronegativity")]
    ionic = 1.0 - np.exp(-0.25 * (chi[:, :, None] - chi[:, None, :]) ** 2)
    pair = real[:, :, None] & real[:, None, :]
    max_ionic = np.where(pair, ionic, 0.0).max(axis=(1, 2))
    avg_ionic = np.einsum("bi,bj,bij->b", frac, frac, ionic)
    features = np.concatenate([np.stack(norms, axis=1), stats.reshape(len(frac), -1), shares, max_ionic[:, None], avg_ionic[:, None]],
                              axis=1)
    return features.astype(np.float32)
