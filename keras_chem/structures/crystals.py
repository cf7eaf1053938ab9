"""Crystal (and molecule) structures as `ase.Atoms`: conversion, file reading, sanity checks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import ase
import ase.io
import numpy as np
from ase.data import atomic_numbers

MAX_Z = 118


def _z_of(symbol: str, where: str) -> int:
    if symbol not in atomic_numbers:
        raise ValueError(f"unknown element symbol {symbol!r} at {where}")
    return atomic_numbers[symbol]


def _site_symbol(site: dict, index: int) -> str:
    species = site.get("species")
    if not species:
        raise ValueError(f"site {index} has no species")
    if len(species) > 1 or float(species[0].get("occu", 1.0)) < 1.0 - 1e-6:
        raise ValueError(f"site {index} is disordered (partial occupancy), not supported")
    return species[0]["element"]


def _from_pymatgen_dict(d: dict) -> ase.Atoms:
    """A pymatgen `Structure.as_dict()` / `Molecule.as_dict()` (Matbench JSON) without pymatgen."""
    sites = d.get("sites", [])
    numbers = [_z_of(_site_symbol(site, k), f"site {k}") for k, site in enumerate(sites)]
    lattice = d.get("lattice")
    if lattice is None:
        positions = np.array([site["xyz"] for site in sites], dtype=float).reshape(-1, 3)
        return ase.Atoms(numbers=numbers, positions=positions, pbc=False)
    cell = np.asarray(lattice["matrix"], dtype=float)
    frac = np.array([site["abc"] for site in sites], dtype=float).reshape(-1, 3)
    pbc = lattice.get("pbc", (True, True, True))
    return ase.Atoms(numbers=numbers, positions=frac @ cell, cell=cell, pbc=pbc)


def _from_frac_dict(d: dict) -> ase.Atoms:
    """CEGANN-style `{lattice: 3x3, species: [...], frac_coords: [...]}`."""
    cell = np.asarray(d["lattice"], dtype=float)
    numbers = [_z_of(symbol, f"site {k}") for k, symbol in enumerate(d["species"])]
    frac = np.asarray(d["frac_coords"], dtype=float).reshape(-1, 3)
    return ase.Atoms(numbers=numbers, positions=frac @ cell, cell=cell, pbc=True)


def _from_pymatgen(obj: Any) -> ase.Atoms:
    if not obj.is_ordered:
        raise ValueError("structure is disordered (partial occupancy), not supported")
    numbers = [site.specie.Z for site in obj]
    positions = np.asarray(obj.cart_coords, dtype=float).reshape(-1, 3)
    lattice = getattr(obj, "lattice", None)
    if lattice is None:
        return ase.Atoms(numbers=numbers, positions=positions, pbc=False)
    return ase.Atoms(
        numbers=numbers, positions=positions, cell=np.asarray(lattice.matrix), pbc=lattice.pbc
    )


def to_atoms(obj: Any) -> ase.Atoms:
    """`ase.Atoms` (copied), pymatgen `Structure`/`Molecule`, or a structure dict -> `ase.Atoms`.

    Raises ValueError for disordered sites, unknown element symbols and unsupported types.
    """
    if isinstance(obj, ase.Atoms):
        return obj.copy()
    if isinstance(obj, dict):
        if "sites" in obj:
            return _from_pymatgen_dict(obj)
        if "frac_coords" in obj and "species" in obj and "lattice" in obj:
            return _from_frac_dict(obj)
        raise ValueError(f"dict is not a structure (keys: {sorted(obj)[:6]})")
    if hasattr(obj, "cart_coords") and hasattr(obj, "is_ordered"):
        return _from_pymatgen(obj)
    raise ValueError(f"cannot convert {type(obj).__name__} to ase.Atoms")


def _ase_format(path: Path) -> str | None:
    name = path.name.lower().removesuffix(".gz").removesuffix(".bz2").removesuffix(".xz")
    if name.endswith(".cif"):
        return "cif"
    if name.endswith((".vasp", ".poscar")) or name.startswith(("poscar", "contcar")):
        return "vasp"
    if name.endswith((".xyz", ".extxyz")):
        return "extxyz"
    return None


def read_structures(path: str | os.PathLike) -> list[ase.Atoms]:
    """All structures in a CIF, POSCAR/CONTCAR/.vasp or (ext)xyz file (compressed is fine).

    CIF files that ASE cannot read are retried with pymatgen. Errors name the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"structure file not found: {path}")
    fmt = _ase_format(path)
    try:
        images = ase.io.read(path, index=":", format=fmt)
    except Exception as ase_error:
        if fmt == "cif":
            try:
                from pymatgen.io.cif import CifParser

                return [to_atoms(s) for s in CifParser(str(path)).parse_structures(primitive=False)]
            except Exception:
                pass
        kind = fmt or "a structure file (format guessed from the name)"
        message = " ".join(f"{type(ase_error).__name__}: {ase_error}".split())
        raise ValueError(f"cannot read {path} as {kind}: {message}") from ase_error
    images = images if isinstance(images, list) else [images]
    if not images:
        raise ValueError(f"no structures found in {path}")
    return images


def check_structure(atoms: ase.Atoms) -> str | None:
    """A one-line reason why `atoms` cannot be featurized, or None if it looks sane."""
    n = len(atoms)
    if n == 0:
        return "empty structure (no atoms)"
    numbers = atoms.numbers
    bad = np.flatnonzero((numbers <= 0) | (numbers > MAX_Z))
    if bad.size:
        return f"unknown element at atom {bad[0]} (Z={numbers[bad[0]]})"
    positions = atoms.positions
    nonfinite = np.flatnonzero(~np.all(np.isfinite(positions), axis=1))
    if nonfinite.size:
        return f"non-finite coordinates at atom {nonfinite[0]}"
    cell = np.asarray(atoms.cell.array, dtype=float)
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if pbc.any():
        if not np.all(np.isfinite(cell)):
            return "periodic cell has non-finite lattice vectors"
        periodic = cell[pbc]
        singular = np.linalg.svd(periodic, compute_uv=False)
        if singular.min() < 1e-6:
            volume = abs(np.linalg.det(cell))
            return f"periodic cell has zero volume (volume {volume:.3g} Å³, pbc {pbc.tolist()})"
    return None


def structure_arrays(atoms: ase.Atoms) -> dict[str, np.ndarray]:
    """`numbers` int32 [n], `positions` float64 [n, 3], `cell` float64 [3, 3], `pbc` bool [3]."""
    return {
        "numbers": np.asarray(atoms.numbers, dtype=np.int32),
        "positions": np.asarray(atoms.positions, dtype=np.float64).reshape(-1, 3),
        "cell": np.asarray(atoms.cell.array, dtype=np.float64).reshape(3, 3),
        "pbc": np.asarray(atoms.pbc, dtype=bool).reshape(3),
    }
