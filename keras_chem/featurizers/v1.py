"""elEmBERT V1 tokens for a batch: structures → atomic PDFs → nearest sub-element centroid.

SMILES get one 3-D conformer each (featurizers/conformers.py); crystal and molecule
structures are used as given (periodic images when `pbc`). Formulas have no geometry, so
every composition row is skipped. An atom with no neighbour within 10 Å (a lone ion, a
one-atom molecule) gets the all-zero PDF and is assigned to its element's nearest centroid
like any other atom.
"""

from __future__ import annotations

from typing import Any, Iterable

import ase
import numpy as np
from ase.data import chemical_symbols

from keras_chem.data.types import Skip
from keras_chem.featurizers.progress import skip_reason
from keras_chem.featurizers.pdf import CUTOFF, N_BINS, finish_pdfs, pair_counts
from keras_chem.featurizers.subelements import SubelementModel

NO_GEOMETRY = "V1 tokens need 3-D structures; use --tokens v0 for formulas"
# PDFs are finished and assigned this many atoms at a time (bounds memory, keeps numpy busy).
ATOMS_PER_BLOCK = 20000


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def structures_of(ids: list[str], inputs: list[Any]) -> tuple[np.ndarray, list[ase.Atoms], list[Skip]]:
    """`to_atoms` + `check_structure` on every input; failures become skips."""
    from keras_chem.structures.crystals import check_structure, to_atoms

    kept, atoms_list, skips = [], [], []
    for k, (row_id, item) in enumerate(zip(ids, inputs)):
        try:
            atoms = to_atoms(item)
            reason = check_structure(atoms)
        except Exception as error:  # noqa: BLE001 - bad input becomes a skip, a bug is raised by skip_reason
            atoms, reason = None, skip_reason(error, row_id)
        if reason is not None:
            skips.append(Skip(str(row_id), _one_line(reason)))
        else:
            kept.append(k)
            atoms_list.append(atoms)
    return np.asarray(kept, dtype=np.int64), atoms_list, skips


def _blocks(atoms_list: list[ase.Atoms]) -> Iterable[list[int]]:
    block, n = [], 0
    for k, atoms in enumerate(atoms_list):
        block.append(k)
        n += len(atoms)
        if n >= ATOMS_PER_BLOCK:
            yield block
            block, n = [], 0
    if block:
        yield block


def pdfs_and_numbers(
    atoms_list: list[ase.Atoms], cutoff: float = CUTOFF, n_bins: int = N_BINS
) -> Iterable[tuple[list[int], list[np.ndarray | str], np.ndarray, np.ndarray]]:
    """Per block of structures: `(indices, per-structure counts or error, numbers, pdfs)`.

    `numbers` int64 [m] and `pdfs` float32 [m, n_bins] cover the atoms of the structures of the
    block that did not fail, in order. A structure whose neighbour list fails gives a reason string.
    """
    for block in _blocks(atoms_list):
        results: list[np.ndarray | str] = []
        for k in block:
            try:
                results.append(pair_counts(atoms_list[k], cutoff, n_bins))
            except Exception as error:  # noqa: BLE001 - bad input becomes a skip, a bug is raised by skip_reason
                results.append(f"neighbour list failed: {skip_reason(error, k)}")
        good = [k for k, r in zip(block, results) if not isinstance(r, str)]
        counts = [r for r in results if not isinstance(r, str)]
        numbers = np.concatenate([atoms_list[k].numbers for k in good]) if good else np.zeros(0, np.int64)
        stacked = np.concatenate(counts) if counts else np.zeros((0, n_bins))
        yield block, results, numbers.astype(np.int64), finish_pdfs(stacked, cutoff, n_bins)


def tokens_of_structures(
    atoms_list: list[ase.Atoms], model: SubelementModel
) -> tuple[list[list[str] | None], list[str | None]]:
    """Token list per structure (None with a reason when its neighbour list failed)."""
    table = model.token_table()
    tokens: list[list[str] | None] = [None] * len(atoms_list)
    reasons: list[str | None] = [None] * len(atoms_list)
    for block, results, numbers, pdfs in pdfs_and_numbers(atoms_list):
        index = model.nearest(numbers, pdfs).tolist()
        numbers = numbers.tolist()
        flat = [table[z][i] if i >= 0 else chemical_symbols[z] for z, i in zip(numbers, index)]
        start = 0
        for k, result in zip(block, results):
            if isinstance(result, str):
                reasons[k] = result
                continue
            n = result.shape[0]
            tokens[k] = flat[start : start + n]
            start += n
    return tokens, reasons


def subelement_tokens_batch(
    ids: list[str], inputs: list[Any], input_kind: str, model: SubelementModel, seed: int
) -> tuple[np.ndarray, list[list[str]], list[Skip]]:
    """V1 tokens of every input: `(kept int64 row indices, token lists, skips)`.

    `seed` is the conformer seed (SMILES input only).
    """
    rows, token_lists, _, skips = subelement_tokens_and_atoms(ids, inputs, input_kind, model, seed)
    return rows, token_lists, skips


def subelement_tokens_and_atoms(
    ids: list[str], inputs: list[Any], input_kind: str, model: SubelementModel, seed: int
) -> tuple[np.ndarray, list[list[str]], list[ase.Atoms], list[Skip]]:
    """As `subelement_tokens_batch`, with the structure (conformer) each kept row's tokens come from, atom for atom."""
    if len(ids) != len(inputs):
        raise ValueError(f"{len(ids)} ids but {len(inputs)} inputs")
    if input_kind == "composition":
        return np.zeros(0, dtype=np.int64), [], [], [Skip(str(i), NO_GEOMETRY) for i in ids]
    if input_kind == "smiles":
        from keras_chem.featurizers.conformers import conformers_for

        kept, atoms_list, skips = conformers_for(list(inputs), list(ids), seed)
    elif input_kind == "structure":
        kept, atoms_list, skips = structures_of(list(ids), list(inputs))
    else:
        raise ValueError(f"V1 tokens need smiles or structure input, not {input_kind!r}")
    tokens, reasons = tokens_of_structures(atoms_list, model)
    rows, token_lists, structures = [], [], []
    for row, atoms, tok, reason in zip(kept.tolist(), atoms_list, tokens, reasons):
        if tok is None:
            skips.append(Skip(str(ids[row]), reason))
        else:
            rows.append(row)
            token_lists.append(tok)
            structures.append(atoms)
    return np.asarray(rows, dtype=np.int64), token_lists, structures, skips
