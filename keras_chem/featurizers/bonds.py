"""Each atom's covalent bonds as RDKit perceives them from the SMILES: which atoms, and what kind of bond
(single, double, triple, aromatic; in a ring or not; conjugated or not), for the encoder's bond bias
(`layers/bond_bias.py`).

Atoms come in the order of `structures.molecules.mol_from_smiles` (heavy atoms, then the added hydrogens),
the order of the tokens; a partner is named by its token position (atom index + 1, after [CLS]), so 0 means
"no bond" and position 0 ([CLS]) is never a partner.
"""

from __future__ import annotations

import numpy as np

MAX_BONDS = 8  # per atom, hydrogens included (SF6 has 6)
BOND_ORDERS = ("SINGLE", "DOUBLE", "TRIPLE", "AROMATIC")
BOND_KINDS = (len(BOND_ORDERS) + 1) * 4  # order (or "other") × in a ring × conjugated; kind ids start at 1


def too_many_bonds(mol) -> str | None:
    """Why `mol` (with its hydrogens) cannot be encoded, or None."""
    degree = max((atom.GetDegree() for atom in mol.GetAtoms()), default=0)
    return f"an atom with {degree} bonds, over the {MAX_BONDS} the bond bias takes" if degree > MAX_BONDS else None


def bond_kind(bond) -> int:
    """1 … BOND_KINDS."""
    order = str(bond.GetBondType())
    order_id = BOND_ORDERS.index(order) if order in BOND_ORDERS else len(BOND_ORDERS)
    return 1 + order_id * 4 + 2 * int(bond.IsInRing()) + int(bond.GetIsConjugated())


def bonded_atoms(mol) -> np.ndarray:
    """`[atoms, MAX_BONDS, 2] int16`: per atom, (partner's token position, bond kind) for each of its bonds, then zeros."""
    table = np.zeros((mol.GetNumAtoms(), MAX_BONDS, 2), dtype=np.int16)
    filled = np.zeros(mol.GetNumAtoms(), dtype=np.int64)
    for bond in mol.GetBonds():
        kind = bond_kind(bond)
        for atom, partner in ((bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()), (bond.GetEndAtomIdx(), bond.GetBeginAtomIdx())):
            table[atom, filled[atom]] = (partner + 1, kind)
            filled[atom] += 1
    return table
