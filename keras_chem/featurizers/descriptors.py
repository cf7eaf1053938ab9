"""RDKit's 2-D molecular descriptors of a molecule (MolWt, TPSA, ring counts, ...), squashed for a network.

Each value becomes `sign(x) * log(1 + |x|)` (a few, such as Ipc, reach 1e30), and a descriptor RDKit cannot
compute for a molecule (NaN or infinite) becomes 0.
"""

from __future__ import annotations

import numpy as np


def descriptor_names() -> list[str]:
    """Every descriptor of the installed RDKit, in its order."""
    from rdkit.Chem import Descriptors

    return [name for name, _ in Descriptors._descList]


def descriptor_functions(names: list[str]) -> list:
    """RDKit's function of each name; a name this RDKit lacks (a model saved under another version) is an error."""
    from rdkit.Chem import Descriptors

    available = dict(Descriptors._descList)
    missing = [name for name in names if name not in available]
    if missing:
        raise ValueError(f"this RDKit has no descriptor {', '.join(missing)}; the model was saved with another RDKit version")
    return [available[name] for name in names]


def squashed_descriptors(molecule, functions: list) -> np.ndarray:
    """One molecule's descriptors (`molecule` an RDKit Mol without explicit hydrogens), `[len(functions)] float32`."""
    values = np.array([_value(function, molecule) for function in functions], dtype=np.float64)
    values = np.sign(values) * np.log1p(np.abs(values))
    return np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def _value(function, molecule) -> float:
    try:
        return float(function(molecule))
    except (ValueError, RuntimeError, ZeroDivisionError, OverflowError):  # RDKit's own failure on an odd molecule
        return float("nan")
