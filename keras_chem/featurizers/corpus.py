"""The per-element PDF corpus that sub-element centroids are fitted on.

SMILES datasets contribute one conformer per molecule (the same cached conformers a V1
training run uses), structure datasets their structures as loaded (the loaders' own
de-duplication applies). A SMILES string already used by an earlier dataset is not counted
again, so molecules shared between datasets do not weigh double.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase.data import chemical_symbols

from keras_chem.structures.molecules import DEFAULT_SEED

DEFAULT_CORPUS = [
    "tox21", "bbbp", "bace", "clintox", "sider", "qm9_first500_u0",
    "matbench_phonons", "matbench_dielectric", "cegann_dimensionality", "cegann_spacegroup",
]


@dataclass
class Corpus:
    """`pdfs` symbol → float32 [n, 100]; `structures` dataset → structures used;
    `skipped` dataset → rows that gave no structure (parse/embedding/neighbour failures)."""

    pdfs: dict[str, np.ndarray] = field(default_factory=dict)
    structures: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def n_environments(self) -> dict[str, int]:
        return {symbol: int(array.shape[0]) for symbol, array in self.pdfs.items()}


def _add_pdfs(parts: dict[int, list[np.ndarray]], atoms_list) -> int:
    """Append the PDFs of `atoms_list` per atomic number; returns how many structures worked."""
    n_ok = 0
    from keras_chem.featurizers.v1 import pdfs_and_numbers

    for _, results, numbers, pdfs in pdfs_and_numbers(atoms_list):
        n_ok += sum(not isinstance(r, str) for r in results)
        order = np.argsort(numbers, kind="stable")
        sorted_z = numbers[order]
        for z in np.unique(sorted_z):
            lo, hi = np.searchsorted(sorted_z, [z, z + 1])
            parts.setdefault(int(z), []).append(pdfs[order[lo:hi]])
    return n_ok


def build_corpus(
    datasets: list[str], limit_per_dataset: int | None = None, conformer_seed: int = DEFAULT_SEED
) -> Corpus:
    """Atomic PDFs, grouped by element, of every usable structure of `datasets` (in order)."""
    from keras_chem.data.loaders import load_dataset
    from keras_chem.featurizers.conformers import conformers_for
    from keras_chem.featurizers.v1 import structures_of

    parts: dict[int, list[np.ndarray]] = {}
    corpus = Corpus()
    seen_smiles: set[str] = set()
    for name in datasets:
        data = load_dataset(name, limit=limit_per_dataset)
        if data.input_kind == "smiles":
            kept, atoms_list, skips = conformers_for(data.inputs, data.ids, conformer_seed)
            fresh = [k for k, row in enumerate(kept.tolist()) if data.inputs[row] not in seen_smiles]
            seen_smiles.update(data.inputs[row] for row in kept.tolist())
            atoms_list = [atoms_list[k] for k in fresh]
        elif data.input_kind == "structure":
            _, atoms_list, skips = structures_of(data.ids, data.inputs)
        else:
            raise ValueError(f"dataset {name!r} has {data.input_kind} inputs; the corpus needs SMILES or structures")
        n_ok = _add_pdfs(parts, atoms_list)
        corpus.structures[name] = n_ok
        corpus.skipped[name] = len(skips) + len(atoms_list) - n_ok
    corpus.pdfs = {chemical_symbols[z]: np.concatenate(parts[z]) for z in sorted(parts)}
    return corpus
