"""Each atom's chemistry as RDKit perceives it from the SMILES: degree, charge, hydrogens, hybridization,
aromaticity, smallest ring and chirality, as small category ids (chemprop's atom features, less the element,
which the token already names).

Atoms come in the order of `structures.molecules.mol_from_smiles` (heavy atoms as written, then the added
hydrogens), the order of the conformer the tokens are read from. Id 0 means "not an atom" ([CLS], [SEP],
padding); a value outside a feature's categories gets the last id.
"""

from __future__ import annotations

import numpy as np

CATEGORIES = {
    "degree": (0, 1, 2, 3, 4, 5, 6),
    "formal_charge": (-2, -1, 0, 1, 2),
    "hydrogens": (0, 1, 2, 3, 4),
    "hybridization": ("S", "SP", "SP2", "SP3", "SP3D", "SP3D2"),
    "aromatic": (False, True),
    "ring_size": (0, 3, 4, 5, 6, 7, 8),
    "chirality": ("CHI_UNSPECIFIED", "CHI_TETRAHEDRAL_CW", "CHI_TETRAHEDRAL_CCW"),
}
FEATURES = tuple(CATEGORIES)
VOCABULARY_SIZES = tuple(len(values) + 2 for values in CATEGORIES.values())  # + "not an atom" + "other"


def _values(atom, ring_info) -> tuple:
    return (atom.GetTotalDegree(), atom.GetFormalCharge(), atom.GetTotalNumHs(includeNeighbors=True),
            str(atom.GetHybridization()), atom.GetIsAromatic(), ring_info.MinAtomRingSize(atom.GetIdx()),
            str(atom.GetChiralTag()))


def atom_feature_ids(mol) -> np.ndarray:
    """`[atoms, len(FEATURES)] int8` for the atoms of `mol`, an RDKit Mol with its hydrogens (`mol_from_smiles`)."""
    ring_info = mol.GetRingInfo()
    ids = np.zeros((mol.GetNumAtoms(), len(FEATURES)), dtype=np.int8)
    for atom in mol.GetAtoms():
        for k, (value, categories) in enumerate(zip(_values(atom, ring_info), CATEGORIES.values())):
            ids[atom.GetIdx(), k] = categories.index(value) + 1 if value in categories else len(categories) + 1
    return ids
