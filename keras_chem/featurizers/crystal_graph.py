"""Padded crystal graphs (numpy + vesin): CrysToGraph's kNN graph, a radius graph and batching.
The edge, line-graph and angle features are computed inside the model (`layers/crystal_edges.py`).

One graph is a dict of per-structure arrays (n atoms, K neighbour slots):

    atom_z   [n]        int32    atomic numbers
    nbr_idx  [n, K]     int32    neighbour site index j of centre atom i (edge i <- j)
    nbr_vec  [n, K, 3]  float32  cart(image of j) - cart(i), Å (points from the centre to the neighbour)
    nbr_mask [n, K]     bool     real neighbour slot (all True for the kNN graph)

Periodic images count as neighbours, including images of the atom itself (so a 1-atom cell
works). Slots are sorted by distance (ties: lower j, then lower lattice shift). Graph
construction and constants follow specs/reference-implementations.md §A.1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_chem.structures.crystals import to_atoms
from keras_chem.structures.neighbors import NeighborList, k_nearest, radius_neighbors

K_NEIGHBORS = 12
START_RADIUS = 8.0
RADIUS_STEP = 2.0
MAX_RADIUS = 40.0


GRAPH_DTYPES = {"atom_z": np.int32, "nbr_idx": np.int32, "nbr_vec": np.float32, "nbr_mask": np.bool_}


def _as_atoms(structure: Any):
    import ase

    return structure if isinstance(structure, ase.Atoms) else to_atoms(structure)


def _slots(nl: NeighborList, n: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row (centre), slot and keep-flag of every pair of a list sorted by (i, distance):
    each centre keeps its first `k` pairs."""
    counts = nl.counts(n)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(len(nl)) - starts[nl.i]
    keep = slot < k
    return nl.i[keep], slot[keep], keep


def graph_from_pairs(atoms, nl: NeighborList, k: int) -> dict[str, np.ndarray]:
    """Scatter a sorted neighbour list into padded [n, k] slots (padding: j = i, vec = 0, mask False)."""
    n = len(atoms)
    rows, slot, keep = _slots(nl, n, k)
    nbr_idx = np.repeat(np.arange(n, dtype=np.int32)[:, None], k, axis=1)
    nbr_vec = np.zeros((n, k, 3), dtype=np.float32)
    nbr_mask = np.zeros((n, k), dtype=bool)
    nbr_idx[rows, slot] = nl.j[keep]
    nbr_vec[rows, slot] = nl.vectors[keep]
    nbr_mask[rows, slot] = True
    return {
        "atom_z": np.asarray(atoms.numbers, dtype=np.int32),
        "nbr_idx": nbr_idx,
        "nbr_vec": nbr_vec,
        "nbr_mask": nbr_mask,
    }


def knn_graph(
    structure: Any,
    k: int = K_NEIGHBORS,
    start_radius: float = START_RADIUS,
    step: float = RADIUS_STEP,
    max_radius: float = MAX_RADIUS,
) -> dict[str, np.ndarray]:
    """CrysToGraph's graph: exactly `k` nearest neighbours per atom, `nbr_mask` all True.

    `structure`: `ase.Atoms`, pymatgen `Structure` or anything `to_atoms` accepts. The result is
    upstream's: the search radius starts at `start_radius` Å and grows by `step` until every atom
    has `k` neighbours, each atom keeps its k nearest. Raises ValueError for a structure
    `check_structure` rejects, a finite molecule with fewer than k + 1 atoms, or when
    `max_radius` is not enough (e.g. a slab with huge in-plane spacing).
    """
    atoms = _as_atoms(structure)
    return graph_from_pairs(atoms, k_nearest(atoms, k, start_radius=start_radius, step=step, max_radius=max_radius), k)


def radius_graph(structure: Any, cutoff: float, max_neighbors: int) -> dict[str, np.ndarray]:
    """All neighbours closer than `cutoff` Å, nearest first, at most `max_neighbors` per atom.

    Rows are padded to `max_neighbors` slots: padding has `nbr_idx` = the atom itself,
    `nbr_vec` = 0 and `nbr_mask` False. An atom with no neighbour in the cutoff gets an all-False
    row (`keras_chem.structures.neighbors.isolated_atoms_reason` names such atoms, to skip them).
    """
    if max_neighbors < 1:
        raise ValueError(f"max_neighbors must be >= 1, got {max_neighbors}")
    atoms = _as_atoms(structure)
    return graph_from_pairs(atoms, radius_neighbors(atoms, cutoff), int(max_neighbors))


# ---------------------------------------------------------------- batching


def _check_batchable(graphs: list[dict], n_cap: int) -> tuple[int, bool]:
    if not graphs:
        raise ValueError("pad_graphs needs at least one graph")
    widths = {g["nbr_idx"].shape[1] for g in graphs}
    if len(widths) > 1:
        raise ValueError(f"graphs have different neighbour counts K: {sorted(widths)}")
    sizes = [len(g["atom_z"]) for g in graphs]
    if max(sizes) > n_cap:
        worst = int(np.argmax(sizes))
        raise ValueError(f"graph {worst} has {sizes[worst]} atoms, over the cap of {n_cap}")
    with_pe = ["pe" in g for g in graphs]
    if any(with_pe) and not all(with_pe):
        raise ValueError("some graphs have positional encodings 'pe' and some do not")
    return widths.pop(), all(with_pe)


def pad_graphs(graphs: list[dict[str, np.ndarray]], n_cap: int) -> dict[str, np.ndarray]:
    """Stack per-structure graphs into a batch padded along the atom axis to `n_cap`.

    Returns `atom_z [B, N] int32` (0 = padding), `atom_mask [B, N] bool`, `nbr_idx [B, N, K]
    int32` (padding rows 0), `nbr_mask [B, N, K] bool` (False on padding rows), `nbr_vec
    [B, N, K, 3] float32` (0 on padding) and, when every graph has one, `pe [B, N, 40] float32`.
    Real atoms come first, so `array[:, :n]` is a valid batch for any n >= the largest graph.
    """
    k, with_pe = _check_batchable(graphs, n_cap)
    b = len(graphs)
    out = {
        "atom_z": np.zeros((b, n_cap), dtype=np.int32),
        "atom_mask": np.zeros((b, n_cap), dtype=bool),
        "nbr_idx": np.zeros((b, n_cap, k), dtype=np.int32),
        "nbr_mask": np.zeros((b, n_cap, k), dtype=bool),
        "nbr_vec": np.zeros((b, n_cap, k, 3), dtype=np.float32),
    }
    if with_pe:
        out["pe"] = np.zeros((b, n_cap, graphs[0]["pe"].shape[1]), dtype=np.float32)
    for row, graph in enumerate(graphs):
        n = len(graph["atom_z"])
        out["atom_mask"][row, :n] = True
        for name in out:
            if name != "atom_mask":
                out[name][row, :n] = graph[name]
    return out
