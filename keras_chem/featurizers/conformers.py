"""3-D conformers for a list of SMILES, in parallel and cached on disk.

One conformer per SMILES (`structures.molecules.smiles_to_atoms`, deterministic for a seed),
computed in a process pool with `os.cpu_count()` workers. Each result depends only on its
SMILES and the seed, so the output never depends on the number of workers or the chunking.
The cache (featurizers/cache.py) stores flat arrays with offsets, no pickles, keyed by the
sha256 of the SMILES list, the seed and the RDKit version.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor, as_completed

import ase
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from keras_chem.data.types import Skip
from keras_chem.featurizers.cache import load_or_build
from keras_chem.featurizers.progress import progress_enabled, skip_reason

CHUNK = 16
# Fewer SMILES than this are embedded in this process (starting workers costs more).
MIN_PARALLEL = 64

Result = tuple[np.ndarray, np.ndarray, str] | str  # (numbers, positions, forcefield) or a skip reason


def _embed_chunk(smiles: list[str], seed: int) -> list[Result]:
    from keras_chem.structures.molecules import smiles_to_atoms

    out: list[Result] = []
    for text in smiles:
        try:
            atoms, reason = smiles_to_atoms(text, seed=seed)
        except Exception as error:  # noqa: BLE001 - bad input becomes a skip, a bug is raised by skip_reason
            atoms, reason = None, skip_reason(error, text)
        if atoms is None:
            out.append(" ".join(str(reason or "conformer failed").split()))
        else:
            out.append((atoms.numbers.astype(np.int32), atoms.positions.astype(np.float64), str(atoms.info["forcefield"])))
    return out


def _progress() -> Progress:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    return Progress(*columns, transient=True, disable=not progress_enabled())


def _embed_all(smiles: list[str], seed: int, workers: int) -> list[Result]:
    chunks = [smiles[a : a + CHUNK] for a in range(0, len(smiles), CHUNK)]
    results: list[list[Result] | None] = [None] * len(chunks)
    with _progress() as progress:
        task = progress.add_task("3-D conformers", total=len(smiles))
        if workers <= 1 or len(smiles) < MIN_PARALLEL:
            for c, chunk in enumerate(chunks):
                results[c] = _embed_chunk(chunk, seed)
                progress.advance(task, len(chunk))
        else:
            # forkserver: never fork a parent that may already run TensorFlow/JAX threads.
            context = multiprocessing.get_context("forkserver")
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                futures = {pool.submit(_embed_chunk, chunk, seed): c for c, chunk in enumerate(chunks)}
                for future in as_completed(futures):
                    c = futures[future]
                    results[c] = future.result()
                    progress.advance(task, len(chunks[c]))
    return [r for chunk in results for r in chunk]


def _to_arrays(results: list[Result]) -> dict[str, np.ndarray]:
    kept = [k for k, r in enumerate(results) if not isinstance(r, str)]
    failed = [k for k, r in enumerate(results) if isinstance(r, str)]
    sizes = [len(results[k][0]) for k in kept]
    return {
        "kept": np.asarray(kept, dtype=np.int64),
        "offsets": np.r_[0, np.cumsum(sizes)].astype(np.int64),
        "numbers": np.concatenate([results[k][0] for k in kept]) if kept else np.zeros(0, np.int32),
        "positions": np.concatenate([results[k][1] for k in kept]) if kept else np.zeros((0, 3)),
        "forcefield": np.array([results[k][2] for k in kept], dtype=str),
        "failed": np.asarray(failed, dtype=np.int64),
        "reasons": np.array([results[k] for k in failed], dtype=str),
    }


def smiles_sha256(smiles: list[str]) -> str:
    digest = hashlib.sha256()
    for text in smiles:
        digest.update(str(text).encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


def conformers_for(
    smiles: list[str], ids: list[str], seed: int, workers: int | None = None
) -> tuple[np.ndarray, list[ase.Atoms], list[Skip]]:
    """One conformer per SMILES: `(kept int64 row indices, atoms of those rows, skips)`.

    Atoms are non-periodic with `info` "smiles", "forcefield" and "seed". A SMILES that RDKit
    cannot read or embed becomes `Skip(id, reason)`.
    """
    from rdkit import __version__ as rdkit_version

    smiles = [str(s) for s in smiles]
    if len(ids) != len(smiles):
        raise ValueError(f"{len(ids)} ids but {len(smiles)} SMILES")
    key = {"kind": "conformers", "smiles_sha256": smiles_sha256(smiles), "n": len(smiles), "seed": int(seed), "rdkit": rdkit_version}
    workers = workers if workers is not None else (os.cpu_count() or 1)
    arrays = load_or_build(key, lambda: _to_arrays(_embed_all(smiles, int(seed), workers)))
    kept, offsets = arrays["kept"], arrays["offsets"]
    atoms_list = []
    for row, (a, b) in enumerate(zip(offsets[:-1], offsets[1:])):
        atoms = ase.Atoms(numbers=arrays["numbers"][a:b], positions=arrays["positions"][a:b], pbc=False)
        atoms.info.update(smiles=smiles[kept[row]], forcefield=str(arrays["forcefield"][row]), seed=int(seed))
        atoms_list.append(atoms)
    skips = [Skip(str(ids[k]), str(reason)) for k, reason in zip(arrays["failed"].tolist(), arrays["reasons"])]
    return kept, atoms_list, skips
