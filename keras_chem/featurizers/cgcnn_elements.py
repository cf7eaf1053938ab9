"""CGCNN-style 92-d one-hot element features, computed from pymatgen's element data.

The recipe is CGCNN's (Xie & Grossman, PRL 120, 145301 (2018), supplementary Table S2). The
section layout below was read off the original `atom_init.json`
(shared/data/cgcnn_atom_init), which has 19 group bins (0 = lanthanides/actinides) and 7
period bins:

    section                   bins  index  binning
    group                     19    0      group number 0..18
    period                    7     19     1..7
    electronegativity         10    26     Pauling, 0.5-4.0 linear
    covalent radius           10    36     pm, linear (see below)
    valence electrons         12    46     1..12
    first ionization energy   10    58     ln(eV), 1.3-3.3 linear
    electron affinity         10    68     eV, -3.0-3.7 linear
    block                     4     78     s, p, d, f
    atomic volume             10    82     ln(cm^3/mol), 1.5-4.3 linear

A value is put in bin floor((x - lo) / width), clipped to the first and last bins. When a value
is missing, that section's bins are all 0, as in the original file.

Rules for data that pymatgen does not have in the form the recipe needs:
- group: pymatgen gives 3 to La..Yb and Ac..No. They get group 0, as in the original; Lu and
  Lr keep group 3.
- covalent radius: pymatgen has no covalent radius, so ASE's radii (Cordero et al. 2008,
  Z <= 96; heavier elements get no bin) are used. The original's bins on 25-250 pm fit
  Pyykkö's single-bond radii, which are smaller than Cordero's for heavy elements. Cordero's
  radii on the paper's 25-250 pm range agree for only 43 of the 100 elements. Binned on
  5-290 pm, the range that agrees best with the original, they agree for 71, so that range is used.
- valence electrons: worked out from the group: groups 1-12 give the group number, groups 13-18
  give group - 10, He gives 2, and group-0 f-block elements give 2 (the original's values).
- electron affinity: pymatgen lists values <= 0 (anions that are not bound, mostly estimated).
  The original has no value there, so a value <= 0 gets no bin.
- block: pymatgen puts He in the p block; it is s (1s^2), as in the original.
- atomic volume: pymatgen's molar volume.

`table_agreement` measures how far this table is from the original file. Against CGCNN's
file (Z = 1..100), 37 of 100 rows are identical and 9042 of 9200 entries (98.3%) agree. Group,
period, ionization energy and block agree for all 100 elements, valence for 99 (Pd: the
original has 12). The differences are in the underlying data:
electronegativity (77 rows agree; the original lacks values for Kr, Pm, Eu, Tb, Yb, Rn and
Am..Fm and has lower values for W, Pb, Bi, ...), electron affinity (75), covalent radius (71)
and atomic volume (80; the original's volumes of the gaseous elements are larger).
"""

from __future__ import annotations

import json
import math
import os
from functools import lru_cache

import numpy as np

MAX_Z = 118
N_FEATURES = 92
SECTIONS: tuple[tuple[str, int], ...] = (
    ("group", 19),
    ("period", 7),
    ("electronegativity", 10),
    ("covalent_radius", 10),
    ("valence_electrons", 12),
    ("first_ionization_energy", 10),
    ("electron_affinity", 10),
    ("block", 4),
    ("atomic_volume", 10),
)
SECTION_OFFSETS = dict(zip([name for name, _ in SECTIONS], np.cumsum([0] + [size for _, size in SECTIONS[:-1]]).tolist()))
# (lo, hi) of the linearly binned sections, in the unit given in the module docstring.
LINEAR_RANGES = {
    "electronegativity": (0.5, 4.0),
    "covalent_radius": (5.0, 290.0),
    "first_ionization_energy": (1.3, 3.3),
    "electron_affinity": (-3.0, 3.7),
    "atomic_volume": (1.5, 4.3),
}
PAPER_COVALENT_RANGE = (25.0, 250.0)
BLOCKS = ("s", "p", "d", "f")
_CORDERO_MAX_Z = 96
_F_BLOCK_WITHOUT_GROUP = set(range(57, 71)) | set(range(89, 103))


def number_or_none(value) -> float | None:
    """A finite float, or None for missing / non-numeric pymatgen data."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _group(z: int, element) -> int:
    return 0 if z in _F_BLOCK_WITHOUT_GROUP else int(element.group)


def _valence_electrons(z: int, group: int) -> int:
    if z == 2 or group == 0:
        return 2
    return group - 10 if group >= 13 else group


def covalent_radius_pm(z: int) -> float | None:
    from ase.data import covalent_radii

    return float(covalent_radii[z]) * 100.0 if z <= _CORDERO_MAX_Z else None


def _log(value: float | None) -> float | None:
    return math.log(value) if value is not None and value > 0 else None


def element_properties(z: int) -> dict[str, float | int | str | None]:
    """The raw inputs of the 9 sections for element `z` (None = missing), after the rules above.

    Electronegativity is Pauling, radius in pm, ionization energy and electron affinity in eV,
    and atomic volume in cm^3/mol; the ionization energy and volume are *not* logged here.
    """
    from pymatgen.core.periodic_table import Element

    element = Element.from_Z(int(z))
    data = element.data
    group = _group(z, element)
    energies = data.get("Ionization energies") or [None]
    affinity = number_or_none(data.get("Electron affinity"))
    return {
        "group": group,
        "period": int(element.row),
        "electronegativity": number_or_none(data.get("X")),
        "covalent_radius": covalent_radius_pm(z),
        "valence_electrons": _valence_electrons(z, group),
        "first_ionization_energy": number_or_none(energies[0]),
        "electron_affinity": affinity if affinity is not None and affinity > 0 else None,
        "block": "s" if z == 2 else str(element.block),
        "atomic_volume": number_or_none(data.get("Molar volume")),
    }


def _linear_bin(value: float | None, name: str, size: int) -> int | None:
    if value is None:
        return None
    lo, hi = LINEAR_RANGES[name]
    return int(np.clip(math.floor((value - lo) / ((hi - lo) / size)), 0, size - 1))


def section_bins(z: int) -> dict[str, int | None]:
    """Bin index of element `z` within each section (None = no bin set)."""
    props = element_properties(z)
    props["first_ionization_energy"] = _log(props["first_ionization_energy"])
    props["atomic_volume"] = _log(props["atomic_volume"])
    sizes = dict(SECTIONS)
    bins: dict[str, int | None] = {
        "group": props["group"],
        "period": props["period"] - 1,
        "valence_electrons": props["valence_electrons"] - 1,
        "block": BLOCKS.index(props["block"]) if props["block"] in BLOCKS else None,
    }
    for name in LINEAR_RANGES:
        bins[name] = _linear_bin(props[name], name, sizes[name])
    return {name: bins[name] for name, _ in SECTIONS}


def element_row(z: int) -> np.ndarray:
    """The 92-d 0/1 feature vector of element `z` (1..118), float32."""
    row = np.zeros(N_FEATURES, dtype=np.float32)
    sizes = dict(SECTIONS)
    for name, index in section_bins(z).items():
        if index is not None and 0 <= index < sizes[name]:
            row[SECTION_OFFSETS[name] + index] = 1.0
    return row


@lru_cache(maxsize=1)
def cgcnn_element_table() -> np.ndarray:
    """float32 [119, 92], row Z = element Z's features, row 0 all zeros (padding). Read-only, cached.

    Every element 1..118 has at least its group, period, valence and block bins set.
    """
    import warnings

    table = np.zeros((MAX_Z + 1, N_FEATURES), dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen warns about every missing datum
        for z in range(1, MAX_Z + 1):
            table[z] = element_row(z)
    table.flags.writeable = False
    return table


def cgcnn_features(numbers) -> np.ndarray:
    """Rows of `cgcnn_element_table()` for atomic numbers `numbers` [...] -> float32 [..., 92].

    Raises ValueError naming the first atomic number outside 1..118 (0 is padding, not an element).
    """
    numbers = np.asarray(numbers)
    bad = numbers[(numbers < 1) | (numbers > MAX_Z)]
    if bad.size:
        raise ValueError(f"atomic number {int(bad.flat[0])} is outside the CGCNN element table (Z = 1..{MAX_Z})")
    return cgcnn_element_table()[numbers.astype(np.int64)]


def load_reference_table(path: str | os.PathLike) -> dict[int, np.ndarray]:
    """CGCNN's `atom_init.json` (key = Z as a string, value = 92 numbers) as {Z: float32 [92]}."""
    with open(path, encoding="utf-8") as handle:
        raw = json.load(handle)
    table = {int(key): np.asarray(value, dtype=np.float32) for key, value in raw.items()}
    bad = [z for z, row in table.items() if row.shape != (N_FEATURES,)]
    if bad:
        raise ValueError(f"{path}: rows for Z={bad[:5]} do not have {N_FEATURES} values")
    return table


def table_agreement(reference_json_path: str | os.PathLike) -> dict:
    """Compare `cgcnn_element_table()` with an original `atom_init.json`.

    Returns `rows` (elements in the file), `rows_identical`, `entries` (rows x 92),
    `entries_agreeing`, their fractions, `sections` {name: rows whose section agrees} and
    `differing` {symbol: [names of the sections that differ]}.
    """
    from ase.data import chemical_symbols

    reference = load_reference_table(reference_json_path)
    ours = cgcnn_element_table()
    zs = sorted(z for z in reference if 1 <= z <= MAX_Z)
    same = np.stack([ours[z] == reference[z] for z in zs])  # [rows, 92]
    sections, differing = {}, {}
    for name, size in SECTIONS:
        start = SECTION_OFFSETS[name]
        ok = same[:, start : start + size].all(axis=1)
        sections[name] = int(ok.sum())
        for z in np.asarray(zs)[~ok]:
            differing.setdefault(chemical_symbols[z], []).append(name)
    rows_identical = int(same.all(axis=1).sum())
    return {
        "rows": len(zs),
        "rows_identical": rows_identical,
        "rows_fraction": rows_identical / len(zs),
        "entries": int(same.size),
        "entries_agreeing": int(same.sum()),
        "entries_fraction": float(same.mean()),
        "sections": sections,
        "differing": differing,
    }
