"""Time vesin against ASE's `neighbor_list` on a 64-atom silicon cell at 10 Å.

Run: `.venv/bin/python bench/neighbors_speed.py`. Writes bench/results/neighbors_speed.json
and neighbors_speed.md.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import ase
import numpy as np
import vesin
from ase.build import bulk
from ase.neighborlist import neighbor_list

from keras_chem.io import atomic_write_json, atomic_write_text
from keras_chem.structures.neighbors import radius_neighbors

RESULTS = Path(__file__).resolve().parent / "results"
CUTOFF = 10.0


def best_time(fn, repeats: int, number: int) -> float:
    """Best over `repeats` of the mean time of `number` calls, in seconds."""
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - start) / number)
    return min(times)


def main() -> dict:
    atoms = bulk("Si", "diamond", a=5.43, cubic=True).repeat((2, 2, 2))
    rng = np.random.default_rng(0)
    atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
    assert len(atoms) == 64

    calculator = vesin.NeighborList(cutoff=CUTOFF, full_list=True, n_threads=1)
    vesin_fn = lambda: calculator.compute(atoms.positions, atoms.cell.array, True, quantities="ijSdD")  # noqa: E731
    ours_fn = lambda: radius_neighbors(atoms, CUTOFF)  # noqa: E731
    ase_fn = lambda: neighbor_list("ijSdD", atoms, CUTOFF)  # noqa: E731

    n_vesin = len(vesin_fn()[0])
    n_ase = len(ase_fn()[0])
    assert n_vesin == n_ase == len(ours_fn()), (n_vesin, n_ase)

    t_vesin = best_time(vesin_fn, repeats=5, number=20)
    t_ours = best_time(ours_fn, repeats=5, number=20)
    t_ase = best_time(ase_fn, repeats=5, number=3)
    result = {
        "system": "Si diamond 2x2x2 (64 atoms), 0.05 Å noise",
        "cutoff_angstrom": CUTOFF,
        "n_pairs": n_ase,
        "vesin_seconds": t_vesin,
        "radius_neighbors_seconds": t_ours,
        "ase_seconds": t_ase,
        "ase_over_vesin": t_ase / t_vesin,
        "ase_over_radius_neighbors": t_ase / t_ours,
        "versions": {"vesin": vesin.__version__, "ase": ase.__version__, "python": platform.python_version()},
        "machine": platform.machine(),
    }
    atomic_write_json(RESULTS / "neighbors_speed.json", result)
    table = (
        "| method | time (ms) | ASE / method |\n|---|---|---|\n"
        f"| vesin (raw, 1 thread) | {t_vesin * 1e3:.2f} | {t_ase / t_vesin:.1f}× |\n"
        f"| keras_chem radius_neighbors (vesin + sort) | {t_ours * 1e3:.2f} | {t_ase / t_ours:.1f}× |\n"
        f"| ase.neighborlist.neighbor_list | {t_ase * 1e3:.2f} | 1.0× |\n"
    )
    atomic_write_text(
        RESULTS / "neighbors_speed.md",
        f"# Neighbour list speed\n\n{result['system']}, cutoff {CUTOFF} Å, {n_ase} pairs (same in both).\n\n{table}",
    )
    print(table)
    print(f"ASE / vesin = {t_ase / t_vesin:.1f}×")
    return result


if __name__ == "__main__":
    main()
