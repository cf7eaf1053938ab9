"""SMILES -> RDKit molecule with explicit hydrogens -> one deterministic 3D conformer.

Every function returns `(result, None)` on success and `(None, reason)` on failure, where
`reason` is one line naming the problem (RDKit's own message where it has one).
"""

from __future__ import annotations

import re

import ase
import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import rdDistGeom, rdForceFieldHelpers

DEFAULT_SEED = 0xC0FFEE

_LOG_PREFIX = re.compile(r"^\[\d\d:\d\d:\d\d\]\s*")
_POSITION = re.compile(r"check for mistakes around position (\d+)")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _parse_error(log: str, smiles: str) -> str:
    """Turn RDKit's multi-line SMILES parse log into one line."""
    lines = [_LOG_PREFIX.sub("", line).strip() for line in log.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return f"RDKit could not parse SMILES {smiles!r}"
    first = lines[0].removeprefix("SMILES Parse Error:").strip()
    position = next((m.group(1) for line in lines if (m := _POSITION.search(line))), None)
    where = f" (around position {position})" if position is not None else ""
    return _one_line(f"RDKit SMILES parse error: {first}{where}")


def _sanitize_error(error: Exception) -> str:
    message = _one_line(str(error))
    if isinstance(error, Chem.AtomValenceException):
        return f"RDKit valence error: {message}"
    if isinstance(error, Chem.KekulizeException):
        return f"RDKit kekulization error: {message}"
    return f"RDKit sanitization error ({type(error).__name__}): {message}"


def _diagnose(smiles: str) -> str:
    """Why `Chem.MolFromSmiles` returned None: parse error or the sanitization exception."""
    with rdBase.BlockLogs(), rdBase.CaptureErrorLog() as capture:
        mol = Chem.MolFromSmiles(smiles, sanitize=False)
    if mol is None:
        return _parse_error(capture.messages, smiles)
    try:
        with rdBase.BlockLogs():
            Chem.SanitizeMol(mol)
    except Exception as error:  # RDKit raises several MolSanitizeException subclasses
        return _sanitize_error(error)
    return f"RDKit could not read SMILES {smiles!r}"


def mol_from_smiles(smiles: str) -> tuple[Chem.Mol | None, str | None]:
    """`Chem.MolFromSmiles` (sanitize, remove explicit H) then `Chem.AddHs`, as elEmBERT did."""
    mol, reason = heavy_atom_mol(smiles)
    if mol is None:
        return None, reason
    return with_hydrogens(mol), None


def with_hydrogens(mol: Chem.Mol) -> Chem.Mol:
    """A copy of `mol` with its hydrogens as atoms, after the heavy atoms: the atom order of the conformers."""
    with rdBase.BlockLogs():
        return Chem.AddHs(mol)


def heavy_atom_mol(smiles: str) -> tuple[Chem.Mol | None, str | None]:
    """`Chem.MolFromSmiles` (sanitized, explicit H removed), or None and why not (no atoms and dummy atoms too)."""
    if not isinstance(smiles, str):
        return None, f"SMILES is not a string (got {type(smiles).__name__})"
    smiles = smiles.strip()
    if not smiles:
        return None, "empty SMILES"
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return None, _diagnose(smiles)
    if mol.GetNumAtoms() == 0:
        return None, f"SMILES {smiles!r} has no atoms"
    dummies = [atom.GetIdx() for atom in mol.GetAtoms() if atom.GetAtomicNum() == 0]
    if dummies:
        return None, f"SMILES has a dummy atom '*' at atom # {dummies[0]}"
    return mol, None


def element_symbols(mol: Chem.Mol) -> list[str]:
    """Atom symbols in RDKit order: heavy atoms in SMILES order, then the added hydrogens."""
    return [atom.GetSymbol() for atom in mol.GetAtoms()]


def _embed_params(seed: int, random_coords: bool, timeout: int) -> rdDistGeom.EmbedParameters:
    params = rdDistGeom.ETKDGv3()
    params.randomSeed = int(seed) % 2**31
    params.useRandomCoords = random_coords
    params.numThreads = 1
    params.timeout = int(timeout)
    params.trackFailures = True
    return params


def _failure_summary(params: rdDistGeom.EmbedParameters) -> str:
    causes = rdDistGeom.EmbedFailureCauses.values
    counts = {causes[k].name: n for k, n in enumerate(params.GetFailureCounts()) if k in causes}
    if counts.get("EXCEEDED_TIMEOUT"):
        return f"timed out after {params.timeout} s"
    worst = sorted(((n, name) for name, n in counts.items() if n), reverse=True)[:2]
    return ", ".join(f"{name}×{n}" for n, name in worst) or "no failure counts"


def _optimize(mol: Chem.Mol, max_iters: int) -> str:
    """MMFF94, else UFF, in place. Returns the force field used ("none" if both fail)."""
    with rdBase.BlockLogs():
        if rdForceFieldHelpers.MMFFHasAllMoleculeParams(mol):
            try:
                if rdForceFieldHelpers.MMFFOptimizeMolecule(mol, maxIters=max_iters) >= 0:
                    return "MMFF94"
            except Exception:
                pass
        if rdForceFieldHelpers.UFFHasAllMoleculeParams(mol):
            try:
                if rdForceFieldHelpers.UFFOptimizeMolecule(mol, maxIters=max_iters) >= 0:
                    return "UFF"
            except Exception:
                pass
    return "none"


def embed_conformer(
    mol: Chem.Mol,
    seed: int = DEFAULT_SEED,
    max_attempts: int = 3,
    optimize_iters: int = 500,
    timeout: int = 10,
) -> tuple[ase.Atoms | None, str | None]:
    """One deterministic 3D conformer of `mol` (hydrogens as given) as non-periodic `ase.Atoms`.

    Attempt 1 is ETKDGv3 with `randomSeed=seed`; later attempts use random starting
    coordinates (seed + attempt). The geometry is then relaxed with MMFF94, or UFF when MMFF
    has no parameters; if both fail the ETKDG geometry is kept. `atoms.info` records
    "embedding" ("etkdg" or "etkdg_random_coords"), "forcefield" and "seed".

    `timeout` (seconds per attempt, 0 = none) bounds the few large, stereo-rich molecules
    (e.g. glycosides) on which ETKDG can run for many minutes. It can only turn a success
    into a failure on a slow machine; coordinates that are returned never depend on it.
    """
    if mol is None or mol.GetNumAtoms() == 0:
        return None, "no molecule to embed (empty or missing)"
    mol = Chem.Mol(mol)
    mol.RemoveAllConformers()
    conf_id, params = -1, None
    for attempt in range(max(1, max_attempts)):
        params = _embed_params(seed + attempt, random_coords=attempt > 0, timeout=timeout)
        try:
            with rdBase.BlockLogs():
                conf_id = rdDistGeom.EmbedMolecule(mol, params)
        except Exception as error:
            return None, f"ETKDG embedding error: {_one_line(f'{type(error).__name__}: {error}')}"
        if conf_id >= 0:
            embedding = "etkdg" if attempt == 0 else "etkdg_random_coords"
            break
    if conf_id < 0:
        return None, (
            f"ETKDG embedding failed after {max(1, max_attempts)} attempt(s) "
            f"(seed {seed}; last attempt: {_failure_summary(params)})"
        )
    etkdg_positions = mol.GetConformer(conf_id).GetPositions()
    forcefield = _optimize(mol, optimize_iters)
    positions = mol.GetConformer(conf_id).GetPositions()
    if not np.all(np.isfinite(positions)):
        positions, forcefield = etkdg_positions, "none"
    atoms = ase.Atoms(
        numbers=[atom.GetAtomicNum() for atom in mol.GetAtoms()],
        positions=positions,
        pbc=False,
    )
    atoms.info.update(embedding=embedding, forcefield=forcefield, seed=int(seed))
    return atoms, None


def smiles_to_atoms(
    smiles: str, seed: int = DEFAULT_SEED, **embed_kwargs
) -> tuple[ase.Atoms | None, str | None]:
    """`mol_from_smiles` then `embed_conformer`; the SMILES is kept in `atoms.info["smiles"]`."""
    mol, reason = mol_from_smiles(smiles)
    if mol is None:
        return None, reason
    atoms, reason = embed_conformer(mol, seed=seed, **embed_kwargs)
    if atoms is None:
        return None, reason
    atoms.info["smiles"] = smiles
    return atoms, None
