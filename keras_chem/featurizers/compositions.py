"""Formulas → weighted compositions: the elements of a formula and their amount fractions.

Parsed with pymatgen's `Composition`. The rules for what it does not settle by itself:

- Fractional amounts are valid (`Hg0.7Cd0.3Te`); parentheses are expanded (`Ca(OH)2`, `(NH4)2SO4`).
- Hydrates and adducts are joined with `·`, `•`, `∙` or `*`, each part with an optional
  leading count: `CuSO4·5H2O` = CuSO4 + 5 H2O. A `.` is always a decimal point, so
  `CuSO4.5H2O` means CuS O4.5 H2O: write the hydrate with `·` or `*`.
- An element whose amount is 0 is absent (pymatgen drops it); a formula left with no element,
  a negative amount, a charge (`Fe3+`, `Fe[2+]`, `O2-`), an unparseable string or a symbol that
  is not an element (`Xx`) is skipped with its reason.
- Deuterium and tritium count as hydrogen (pymatgen's reading of `D` and `T`).

Elements are ordered by atomic number; models over compositions do not depend on that order.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

HYDRATE_SEPARATORS = re.compile(r"[·•∙*]")
NEGATIVE_AMOUNT = re.compile(r"[A-Za-z)\]]\s*-\s*\d")
CHARGE = re.compile(r"\+|-(?!\s*\d)")
LEADING_COUNT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?=[A-Z(\[])")


def parse_formula(formula: Any) -> tuple[dict[int, float] | None, str | None]:
    """`{Z: amount}` of one formula, or `(None, reason)`."""
    from pymatgen.core import Composition, Element

    if not isinstance(formula, str) or not formula.strip():
        return None, f"empty formula {formula!r}"
    if NEGATIVE_AMOUNT.search(formula):
        return None, f"formula {formula!r} has a negative amount"
    if CHARGE.search(formula):
        return None, f"formula {formula!r} has a charge; give the neutral formula"
    amounts: dict[int, float] = {}
    for part in HYDRATE_SEPARATORS.split(formula):
        count = 1.0
        match = LEADING_COUNT.match(part)
        if match:
            count, part = float(match.group(1)), part[match.end():]
        if not part.strip():
            return None, f"cannot parse formula {formula!r}: an empty part around a hydrate separator"
        try:
            composition = Composition(part)
        except Exception as error:  # noqa: BLE001 - pymatgen raises ValueError, KeyError, ... for bad formulas
            return None, f"cannot parse formula {formula!r}: {' '.join(str(error).split())}"
        for symbol, amount in composition.get_el_amt_dict().items():
            if not Element.is_valid_symbol(symbol):
                return None, f"formula {formula!r} has {symbol!r}, which is not an element"
            z = Element(symbol).Z
            amounts[z] = amounts.get(z, 0.0) + count * float(amount)
    amounts = {z: a for z, a in amounts.items() if a > 0}
    if not amounts:
        return None, f"formula {formula!r} has no element with a positive amount"
    return dict(sorted(amounts.items())), None


def weighted_composition(formula: Any) -> tuple[tuple[np.ndarray, np.ndarray] | None, str | None]:
    """`(elem_z int32 [n], elem_frac float32 [n])` of one formula (fractions sum to 1), or `(None, reason)`."""
    amounts, reason = parse_formula(formula)
    if amounts is None:
        return None, reason
    z = np.fromiter(amounts, dtype=np.int32)
    amount = np.fromiter(amounts.values(), dtype=np.float64)
    return (z, (amount / amount.sum()).astype(np.float32)), None


def structure_composition(item: Any) -> tuple[tuple[np.ndarray, np.ndarray] | None, str | None]:
    """The weighted composition of a crystal's cell (pymatgen `Structure`, ASE `Atoms`, Matbench dict)."""
    from keras_chem.structures.crystals import to_atoms

    numbers = np.asarray(to_atoms(item).numbers)
    if numbers.size == 0:
        return None, "the structure has no atoms"
    if numbers.min() < 1:
        return None, "the structure has a dummy atom (Z = 0)"
    z, counts = np.unique(numbers, return_counts=True)
    return (z.astype(np.int32), (counts / counts.sum()).astype(np.float32)), None
