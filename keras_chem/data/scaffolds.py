"""Bemis–Murcko scaffolds of molecules (RDKit), the groups of the scaffold split."""

from __future__ import annotations

from typing import Sequence


def bemis_murcko_scaffold(smiles: str) -> str:
    """Bemis–Murcko scaffold SMILES (no chirality); an acyclic molecule gives "".

    An unparseable SMILES returns the SMILES itself, so it still forms its own group.
    """
    from rdkit import Chem, RDLogger
    from rdkit.Chem.Scaffolds import MurckoScaffold

    RDLogger.DisableLog("rdApp.*")
    try:
        mol = Chem.MolFromSmiles(smiles)
        if mol is None:
            return smiles
        return MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False)
    except Exception:  # RDKit raises a zoo of exception types on odd input
        return smiles
    finally:
        RDLogger.EnableLog("rdApp.*")


def scaffolds_from_smiles(smiles: Sequence[str]) -> list[str]:
    """`bemis_murcko_scaffold` of every row."""
    return [bemis_murcko_scaffold(s) for s in smiles]
