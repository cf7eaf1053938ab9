"""Per-atom pair distribution functions (PDFs), the elEmBERT V1 recipe.

For every atom: its neighbour distances within `cutoff` (periodic images included when
`atoms.pbc`), binned by `round(d * n_bins / cutoff) - 1` (bin j is centred at (j+1)·0.1 Å with
the defaults), divided by the shell volumes `v` (`v[0] = 1`, `v[j] = 4π/3 (x[j]³ - x[j-1]³)`
with `x = arange(0, cutoff, cutoff / n_bins)`; the original's half/one-bin offset between count
bin and shell is kept on purpose, specs/elembert-original.md §2.2), smoothed with a Gaussian of
σ = 1 bin (scipy defaults: mode "reflect", truncate 4), NaN/inf → 0.

Rules of our own:
- A distance that rounds to bin index -1 (d < 0.05 Å with the defaults: two atoms on top of
  each other) is dropped. The original `np.put` would have written its count into the last bin.
- An atom with no neighbour within the cutoff gets an all-zero PDF.
"""

from __future__ import annotations

import ase
import numpy as np
import vesin
from scipy.ndimage import gaussian_filter1d

from keras_chem.structures.crystals import check_structure

CUTOFF = 10.0
N_BINS = 100


def shell_volumes(cutoff: float = CUTOFF, n_bins: int = N_BINS) -> np.ndarray:
    """The normalisation vector `v` float64 [n_bins] (v[0] = 1, then shell volumes)."""
    x = np.arange(0, cutoff, cutoff / n_bins)[:n_bins]
    v = np.ones(n_bins)
    v[1:] = 4 * np.pi / 3 * (x[1:] ** 3 - x[:-1] ** 3)
    return v


def _neighbor_pairs(atoms: ase.Atoms, cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Centre index and distance of every directed pair closer than `cutoff` (vesin).

    vesin's half list (each pair once) is turned into the full list by counting every pair
    from both ends; a periodic image of an atom itself then counts twice, as in ASE's full list.
    """
    pbc = [bool(p) for p in atoms.pbc]
    calculator = vesin.NeighborList(cutoff=float(cutoff), full_list=False, n_threads=1)
    i, j, d = calculator.compute(
        points=np.ascontiguousarray(atoms.positions, dtype=np.float64),
        box=np.ascontiguousarray(atoms.cell.array, dtype=np.float64),
        periodic=pbc if any(pbc) else False,
        quantities="ijd",
    )
    d = np.asarray(d, dtype=np.float64)
    return np.concatenate([i, j]).astype(np.int64), np.concatenate([d, d])


def pair_counts(atoms: ase.Atoms, cutoff: float = CUTOFF, n_bins: int = N_BINS) -> np.ndarray:
    """Raw neighbour counts per atom and bin, float64 [n_atoms, n_bins] (no check of `atoms`)."""
    n = len(atoms)
    centre, d = _neighbor_pairs(atoms, cutoff)
    bins = np.rint(d * (n_bins / cutoff)).astype(np.int64) - 1
    keep = (bins >= 0) & (bins < n_bins)
    flat = centre[keep] * n_bins + bins[keep]
    return np.bincount(flat, minlength=n * n_bins).astype(np.float64).reshape(n, n_bins)


def finish_pdfs(counts: np.ndarray, cutoff: float = CUTOFF, n_bins: int = N_BINS) -> np.ndarray:
    """Counts [n, n_bins] → normalised, smoothed PDFs float32 [n, n_bins] (rows independent)."""
    counts = np.asarray(counts, dtype=np.float64).reshape(-1, n_bins)
    if counts.shape[0] == 0:
        return np.zeros((0, n_bins), dtype=np.float32)
    pdf = gaussian_filter1d(counts / shell_volumes(cutoff, n_bins), sigma=1, axis=1, mode="reflect", truncate=4.0)
    return np.nan_to_num(pdf).astype(np.float32)


def atomic_pdfs(atoms: ase.Atoms, cutoff: float = CUTOFF, n_bins: int = N_BINS) -> np.ndarray:
    """PDF of every atom, float32 [n_atoms, n_bins]. Raises ValueError for a structure that
    `check_structure` rejects (empty, non-finite coordinates, zero-volume periodic cell)."""
    reason = check_structure(atoms)
    if reason is not None:
        raise ValueError(reason)
    return finish_pdfs(pair_counts(atoms, cutoff, n_bins), cutoff, n_bins)


def reference_atomic_pdfs(atoms: ase.Atoms, cutoff: float = CUTOFF, n_bins: int = N_BINS) -> np.ndarray:
    """The original notebooks' recipe, written plainly: ASE neighbour list and a loop over atoms.

    Kept as the reference for tests and the speed benchmark. Only difference from the notebook:
    rounded distance 0 is dropped (see the module docstring) instead of landing in the last bin.
    """
    from ase.neighborlist import neighbor_list

    i, d = neighbor_list("id", atoms, cutoff, self_interaction=False)
    v = shell_volumes(cutoff, n_bins)
    out = np.zeros((len(atoms), n_bins), dtype=np.float32)
    for k in range(len(atoms)):
        rounded = np.rint(d[i == k] * (n_bins / cutoff)).astype(int)
        values, counts = np.unique(rounded, return_counts=True)
        hist = np.zeros(n_bins)
        ok = (values >= 1) & (values <= n_bins)
        np.put(hist, values[ok] - 1, counts[ok])
        out[k] = np.nan_to_num(gaussian_filter1d(hist / v, sigma=1))
    return out
