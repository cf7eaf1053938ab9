"""Neighbour lists through vesin, sorted deterministically.

Conventions match `ase.neighborlist.neighbor_list("ijSdD", ...)` with `self_interaction=False`:
a pair (i, j, S) is atom j in the image shifted by S (integer lattice translations), its
vector points from i to that image, `vectors = positions[j] + S @ cell - positions[i]`.
Periodic images of atom i itself are neighbours of i; i with S = 0 is not.
"""

from __future__ import annotations

from dataclasses import dataclass

import ase
import numpy as np
import vesin

from keras_chem.structures.crystals import check_structure

# Distances are rounded to this resolution (Å) before sorting, so float noise between symmetric
# neighbours never changes the order (ties then fall to j and the shift).
_DISTANCE_RESOLUTION = 1e-8


@dataclass
class NeighborList:
    """Directed pairs: `i`, `j` int64 [m], `shifts` int32 [m, 3], `distances` float64 [m],
    `vectors` float64 [m, 3]; `cutoff` is the radius (Å) the list was built with."""

    i: np.ndarray
    j: np.ndarray
    shifts: np.ndarray
    distances: np.ndarray
    vectors: np.ndarray
    cutoff: float | None = None

    def __len__(self) -> int:
        return int(self.i.shape[0])

    def counts(self, n_atoms: int) -> np.ndarray:
        """Number of neighbours of every atom, int64 [n_atoms]."""
        return np.bincount(self.i, minlength=n_atoms)

    def take(self, rows: np.ndarray) -> "NeighborList":
        return NeighborList(
            self.i[rows], self.j[rows], self.shifts[rows], self.distances[rows],
            self.vectors[rows], self.cutoff,
        )


def _sort_order(i, j, shifts, distances) -> np.ndarray:
    """Order by (i, rounded distance, j, shift); two packed int64 keys when they fit."""
    dkey = np.rint(distances / _DISTANCE_RESOLUTION).astype(np.int64)
    if len(i) == 0:
        return np.zeros(0, dtype=np.int64)
    if dkey.max() < 2**33 and i.max() < 2**29 and j.max() < 2**32 and np.abs(shifts).max() < 512:
        s = shifts.astype(np.int64) + 512
        primary = (i << 33) | dkey
        secondary = (j << 30) | (s[:, 0] << 20) | (s[:, 1] << 10) | s[:, 2]
        return np.lexsort((secondary, primary))
    return np.lexsort((shifts[:, 2], shifts[:, 1], shifts[:, 0], j, dkey, i))


def radius_neighbors(atoms: ase.Atoms, cutoff: float) -> NeighborList:
    """All pairs closer than `cutoff` Å (full list, both directions), sorted by (i, distance, j, shift).

    Handles molecules (no pbc), periodic cells of any shape, cells smaller than the cutoff
    (many images) and mixed pbc. Raises ValueError for a structure `check_structure` rejects.
    """
    cutoff = float(cutoff)
    if not np.isfinite(cutoff) or cutoff <= 0:
        raise ValueError(f"cutoff must be a positive number of Å, got {cutoff}")
    reason = check_structure(atoms)
    if reason is not None:
        raise ValueError(reason)
    positions = np.ascontiguousarray(atoms.positions, dtype=np.float64)
    box = np.ascontiguousarray(atoms.cell.array, dtype=np.float64)
    pbc = [bool(p) for p in atoms.pbc]
    calculator = vesin.NeighborList(cutoff=cutoff, full_list=True, n_threads=1)
    i, j, shifts, distances, vectors = calculator.compute(
        points=positions, box=box, periodic=pbc if any(pbc) else False, quantities="ijSdD"
    )
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    shifts = np.asarray(shifts, dtype=np.int32).reshape(-1, 3)
    distances = np.asarray(distances, dtype=np.float64)
    vectors = np.asarray(vectors, dtype=np.float64).reshape(-1, 3)
    order = _sort_order(i, j, shifts, distances)
    return NeighborList(i, j, shifts, distances, vectors, cutoff).take(order)


_DENSITY_MARGIN = 2.0  # first search of k_nearest: a sphere expected to hold 2k atoms


def _dense_radius(atoms: ase.Atoms, k: int, start_radius: float) -> float | None:
    """A radius below `start_radius` that probably holds `k` neighbours of every atom of a
    fully periodic cell (a sphere expected to hold 2k atoms at the cell's mean density), or None."""
    if not np.all(atoms.pbc):
        return None
    volume = abs(float(np.linalg.det(atoms.cell.array)))
    if not np.isfinite(volume) or volume <= 0:
        return None
    radius = (3.0 * _DENSITY_MARGIN * k * volume / (4.0 * np.pi * len(atoms))) ** (1.0 / 3.0)
    return radius if 0 < radius < start_radius else None


def _cannot_reach(atoms: ase.Atoms, k: int) -> str | None:
    """Reason why no radius gives k neighbours per atom (finite molecule too small)."""
    if not np.any(atoms.pbc) and len(atoms) - 1 < k:
        return f"a structure with {len(atoms)} atoms and no periodicity cannot give {k} neighbours per atom"
    return None


def k_nearest(
    atoms: ase.Atoms,
    k: int,
    start_radius: float = 8.0,
    step: float = 2.0,
    max_radius: float = 40.0,
) -> NeighborList:
    """Exactly `k` nearest neighbours per atom (periodic images included), CrysToGraph style.

    The radius starts at `start_radius` and grows by `step` until every atom has at least `k`
    neighbours; each atom then keeps its `k` nearest (ties: lower j, then lower shift).
    `cutoff` of the result is the radius that was reached. Raises ValueError when `max_radius`
    is not enough (or a finite molecule has too few atoms).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if step <= 0:
        raise ValueError(f"step must be > 0, got {step}")
    reason = _cannot_reach(atoms, k)
    if reason is not None:
        raise ValueError(reason)
    if start_radius > max_radius:
        raise ValueError(f"start_radius {start_radius} Å is larger than max_radius {max_radius} Å")
    n = len(atoms)
    # The k nearest do not depend on the radius once every atom has k within it (ties are ordered
    # by distance, j, shift), so a smaller radius from the cell's density is tried first.
    dense = _dense_radius(atoms, k, float(start_radius))
    if dense is not None:
        nl = radius_neighbors(atoms, dense)
        counts = nl.counts(n)
        if counts.min() >= k:
            return _first_k(nl, counts, k)
    radius = float(start_radius)
    while True:
        nl = radius_neighbors(atoms, radius)
        counts = nl.counts(n)
        if counts.min() >= k:
            break
        if radius + step > max_radius + 1e-9:
            worst = int(np.argmin(counts))
            raise ValueError(
                f"atom {worst} ({atoms[worst].symbol}) has only {int(counts[worst])} neighbours "
                f"within {radius:g} Å, {k} needed (max_radius {max_radius:g} Å)"
            )
        radius += step
    return _first_k(nl, counts, k)


def _first_k(nl: NeighborList, counts: np.ndarray, k: int) -> NeighborList:
    """The first `k` pairs of every atom of a list sorted by (i, distance)."""
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return nl.take((starts[:, None] + np.arange(k)[None, :]).ravel())


def isolated_atoms(nl: NeighborList, n_atoms: int) -> np.ndarray:
    """Indices (int64, ascending) of atoms with no neighbour in `nl`."""
    return np.flatnonzero(np.bincount(nl.i, minlength=n_atoms) == 0)


def isolated_atoms_reason(atoms: ase.Atoms, nl: NeighborList) -> str | None:
    """One-line reason naming the first isolated atom, e.g. "atom 3 (O) has no neighbour
    within 5.0 Å (2 isolated atoms)", or None when every atom has a neighbour."""
    lonely = isolated_atoms(nl, len(atoms))
    if lonely.size == 0:
        return None
    first = int(lonely[0])
    within = f" within {nl.cutoff:g} Å" if nl.cutoff is not None else ""
    more = f" ({lonely.size} isolated atoms)" if lonely.size > 1 else ""
    return f"atom {first} ({atoms[first].symbol}) has no neighbour{within}{more}"
