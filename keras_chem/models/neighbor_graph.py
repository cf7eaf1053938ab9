"""The padded neighbour graph every structure model reads (`atom_z`, `nbr_idx`, `nbr_mask`, `nbr_vec`), and
the radius-graph preprocessor of the geometry models (SchNet, DimeNet++): molecules with given 3-D
coordinates, RDKit conformers of SMILES, or periodic crystals, the same arrays for all three.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_chem.models.base import Features, PaddedPreprocessor
from keras_chem.models.crystograph import INPUT_DTYPES

GRAPH_DTYPES = {name: dtype for name, dtype in INPUT_DTYPES.items() if name != "pe"}
MIN_DISTANCE = 0.1  # Å: two atoms closer than this overlap, and the row is skipped


def graph_inputs(k: int | None) -> dict:
    """One `keras.Input` per graph array, `k` neighbour slots (None: any number)."""
    import keras

    shapes = {"atom_z": (None,), "nbr_idx": (None, k), "nbr_mask": (None, k), "nbr_vec": (None, k, 3)}
    return {name: keras.Input(shapes[name], dtype=dtype, name=name) for name, dtype in GRAPH_DTYPES.items()}


def geometry_of(input_kind: str, conformer_seed: int) -> str:
    if input_kind == "smiles":
        return f"RDKit ETKDG + MMFF conformer, seed {conformer_seed}"
    return "the coordinates given"


class RadiusGraphPreprocessor(PaddedPreprocessor):
    """SMILES (one RDKit conformer each, cached) or structures (molecules, crystals) → padded radius graphs.

    Every neighbour closer than `cutoff` Å is kept (periodic images included), nearest first, in
    `max_neighbors` slots. Rules: a single atom, or an atom with no neighbour in the cutoff, is kept
    (it has no messages); a row is skipped with its reason when it holds an element above `max_z`,
    non-finite coordinates, two atoms closer than 0.1 Å, more than `max_atoms` atoms, or an atom with
    more than `max_neighbors` neighbours (never truncated). `geometry` says where the coordinates came from.
    """

    def __init__(self, cutoff: float = 10.0, max_neighbors: int = 32, max_atoms: int | None = None, max_z: int = 99,
                 conformer_seed: int | None = None, n_cap: int | None = None, geometry: str | None = None):
        from keras_chem.structures.molecules import DEFAULT_SEED

        self.cutoff = float(cutoff)
        self.max_neighbors = int(max_neighbors)
        self.max_atoms = max_atoms
        self.max_z = int(max_z)
        self.conformer_seed = int(DEFAULT_SEED if conformer_seed is None else conformer_seed)
        self.cap = n_cap
        self.geometry = geometry
        self.padded_axes = {name: (1,) for name in GRAPH_DTYPES}
        self.slot_axes = {"nbr_idx": (2,), "nbr_mask": (2,), "nbr_vec": (2,)}

    def _graph(self, atoms) -> tuple[dict | None, str | None]:
        from keras_chem.featurizers.crystal_graph import graph_from_pairs
        from keras_chem.structures.crystals import check_structure
        from keras_chem.structures.neighbors import radius_neighbors

        reason = check_structure(atoms)
        if reason:
            return None, reason
        if atoms.numbers.max() > self.max_z:
            return None, f"element Z={atoms.numbers.max()} is beyond the model's elements (Z <= {self.max_z})"
        if self.max_atoms is not None and len(atoms) > self.max_atoms:
            return None, f"{len(atoms)} atoms, over --max-atoms {self.max_atoms}"
        pairs = radius_neighbors(atoms, self.cutoff)
        if len(pairs) and pairs.distances.min() < MIN_DISTANCE:
            at = int(np.argmin(pairs.distances))
            return None, f"atoms {pairs.i[at]} and {pairs.j[at]} overlap ({pairs.distances[at]:.3f} Å apart)"
        counts = pairs.counts(len(atoms))
        if counts.max(initial=0) > self.max_neighbors:
            busiest = int(np.argmax(counts))
            return None, (f"atom {busiest} has {counts[busiest]} neighbours within {self.cutoff:g} Å, over --max-neighbors "
                          f"{self.max_neighbors} (raise it or lower --cutoff)")
        return graph_from_pairs(atoms, pairs, self.max_neighbors), None

    def featurize(self, ids: list[str], inputs: list[Any], input_kind: str) -> Features:
        from keras_chem.featurizers.crystal_graph import pad_graphs
        from keras_chem.featurizers.progress import map_rows
        from keras_chem.structures.crystals import to_atoms

        if input_kind == "smiles":
            from keras_chem.featurizers.conformers import conformers_for

            conformed, atoms_list, skipped = conformers_for(list(inputs), list(ids), self.conformer_seed)
        elif input_kind == "structure":
            conformed, atoms_list, skipped = np.arange(len(inputs)), list(inputs), []
        else:
            raise ValueError(f"a geometry model needs SMILES or structures with coordinates, not {input_kind!r} inputs")
        self.geometry = geometry_of(input_kind, self.conformer_seed)
        kept, graphs, failed = map_rows([ids[i] for i in conformed], atoms_list, lambda item: self._graph(to_atoms(item)),
                                        "building radius graphs")
        kept = np.asarray(conformed, dtype=np.int64)[kept]
        if graphs:
            arrays = pad_graphs(graphs, max(len(g["atom_z"]) for g in graphs))
        else:
            arrays = {name: np.zeros((0, *shape), dtype=dtype) for name, (shape, dtype) in self._signature(0).items()}
        return Features(kept=kept, arrays={name: arrays[name].astype(dtype) for name, dtype in GRAPH_DTYPES.items()},
                        skipped=skipped + failed)

    def over_cap_reason(self, size: int) -> str:
        return f"{size} atoms, over the model's cap of {self.cap} atoms"

    def trim_slots(self, inputs: dict, size: int) -> dict:
        """A batch of `size`-atom rows keeps `size − 1` neighbour slots (rounded up to 8) when no real
        neighbour sits beyond them, as in any batch of molecules; crystals keep theirs (images)."""
        slots = min(self.max_neighbors, -(-max(size - 1, 1) // 8) * 8)
        if slots == self.max_neighbors or inputs["nbr_mask"][:, :, slots:].any():
            return inputs
        return {name: array[:, :, :slots] if name in self.slot_axes else array for name, array in inputs.items()}

    def sizes(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        return np.count_nonzero(arrays["atom_z"], axis=1)

    def _signature(self, n: int) -> dict:
        k = self.max_neighbors
        shapes = {"atom_z": (n,), "nbr_idx": (n, k), "nbr_mask": (n, k), "nbr_vec": (n, k, 3)}
        return {name: (shapes[name], dtype) for name, dtype in GRAPH_DTYPES.items()}

    def input_signature(self) -> dict:
        return self._signature(self.cap)

    def get_config(self) -> dict:
        return {"cutoff": self.cutoff, "max_neighbors": self.max_neighbors, "max_atoms": self.max_atoms, "max_z": self.max_z,
                "conformer_seed": self.conformer_seed, "n_cap": self.cap, "geometry": self.geometry}
