"""Group keys: rows with the same key are the same compound and must share a split side.

- SMILES: RDKit canonical isomeric SMILES (unparseable: "raw:" + the string).
- Structures: hash of (reduced formula, lattice lengths/angles, per-species sorted
  wrapped fractional coordinates), all rounded (1e-3 by default); molecules without a
  cell use centred Cartesian coordinates instead. Atom order and periodic images do not
  matter; a different cell choice (supercell, origin shift) gives a different key.
- Compositions: pymatgen's reduced formula (unparseable: "raw:" + the string).
"""

from __future__ import annotations

import functools
import hashlib
import math
import warnings
from collections import Counter

import numpy as np


def smiles_key(smiles: str) -> str:
    """Canonical isomeric SMILES, or "raw:<smiles>" when RDKit cannot parse it."""
    return _smiles_key(smiles)


@functools.lru_cache(maxsize=None)
def _smiles_key(smiles: str) -> str:
    from rdkit import Chem, rdBase

    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles) if smiles else None
        if mol is None:
            return "raw:" + smiles
        return Chem.MolToSmiles(mol, isomericSmiles=True)


@functools.lru_cache(maxsize=None)
def composition_key(formula: str) -> str:
    """pymatgen reduced formula (e.g. "K6 S6" -> "KS"), or "raw:<formula>"."""
    from pymatgen.core import Composition

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Composition(formula).reduced_formula
    except Exception:  # pymatgen raises ValueError/KeyError/... on bad formulas
        return "raw:" + formula


def _reduced_formula(symbols: list[str]) -> str:
    counts = Counter(symbols)
    divisor = math.gcd(*counts.values())
    return "".join(f"{el}{counts[el] // divisor}" for el in sorted(counts))


def _grid(values: np.ndarray, decimals: int) -> np.ndarray:
    return np.rint(np.asarray(values, dtype=np.float64) * 10.0**decimals).astype(np.int64)


def structure_key(atoms, decimals: int = 3) -> str:
    """Hash of an `ase.Atoms` that ignores atom order; rounding to `10**-decimals`."""
    symbols = list(atoms.get_chemical_symbols())
    formula = _reduced_formula(symbols) if symbols else "empty"
    digest = hashlib.sha1(formula.encode())
    cell = np.asarray(atoms.cell[:], dtype=np.float64)
    periodic = bool(np.all(atoms.pbc)) and abs(np.linalg.det(cell)) > 1e-8
    if periodic:
        scale = 10**decimals
        digest.update(_grid(atoms.cell.cellpar(), decimals).tobytes())
        frac = np.linalg.solve(cell.T, np.asarray(atoms.positions, dtype=np.float64).T).T
        coords = np.mod(_grid(np.mod(frac, 1.0), decimals), scale)
    else:
        digest.update(b"molecule")
        pos = np.asarray(atoms.positions, dtype=np.float64)
        coords = _grid(pos - pos.mean(axis=0), decimals) if len(pos) else np.zeros((0, 3), np.int64)
    species = np.asarray(symbols)
    for element in sorted(set(symbols)):
        block = coords[species == element]
        block = block[np.lexsort(block.T[::-1])]
        digest.update(element.encode())
        digest.update(np.ascontiguousarray(block).tobytes())
    return f"{formula}:{digest.hexdigest()[:24]}"


def dataset_group_keys(dataset) -> list[str]:
    """One group key per row of a `Dataset` (see the module docstring)."""
    kind = dataset.input_kind
    if kind == "smiles":
        return [smiles_key(s) for s in dataset.inputs]
    if kind == "composition":
        return [composition_key(f) for f in dataset.inputs]
    if kind == "structure":
        return [structure_key(a) for a in dataset.inputs]
    raise ValueError(f"no group keys for input kind {kind!r}")
