"""Atom-token vocabularies and element (V0) tokenization of molecules, crystals and formulas."""

from __future__ import annotations

from typing import Any

from ase.data import chemical_symbols

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[SEP]", "[CLS]"]
PAD_ID, UNK_ID, SEP_ID, CLS_ID = range(4)
MASK_TOKEN = "[MASK]"
ELEMENTS = chemical_symbols[1:]


class Vocabulary:
    """Token ↔ id map: specials first (pad 0, [UNK] 1, [SEP] 2, [CLS] 3), `[MASK]` last."""

    def __init__(self, tokens: list[str]):
        self.tokens = SPECIAL_TOKENS + [t for t in tokens if t not in SPECIAL_TOKENS + [MASK_TOKEN]] + [MASK_TOKEN]
        self.index = {token: i for i, token in enumerate(self.tokens)}

    @classmethod
    def elements(cls) -> "Vocabulary":
        return cls(ELEMENTS)

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def mask_id(self) -> int:
        return len(self.tokens) - 1

    def encode(self, tokens: list[str]) -> list[int]:
        """`[CLS]` tokens `[SEP]` as ids; a token outside the vocabulary becomes `[UNK]`."""
        return [CLS_ID] + [self.index.get(t, UNK_ID) for t in tokens] + [SEP_ID]

    def to_dict(self) -> dict:
        return {"tokens": self.tokens}

    @classmethod
    def from_dict(cls, data: dict) -> "Vocabulary":
        return cls(data["tokens"])


def element_tokens(item: Any, input_kind: str) -> tuple[list[str] | None, str | None]:
    """Element symbols of one input, one per atom (molecules with explicit hydrogens)."""
    if input_kind == "smiles":
        from keras_chem.structures.molecules import element_symbols, mol_from_smiles

        mol, reason = mol_from_smiles(item)
        return (None, reason) if mol is None else (element_symbols(mol), None)
    if input_kind == "structure":
        from keras_chem.structures.crystals import check_structure, to_atoms

        atoms = to_atoms(item)
        reason = check_structure(atoms)
        return (None, reason) if reason else (atoms.get_chemical_symbols(), None)
    if input_kind == "composition":
        return composition_tokens(item)
    raise ValueError(f"element tokens need smiles, structure or composition input, not {input_kind!r}")


def composition_tokens(formula: str) -> tuple[list[str] | None, str | None]:
    """One token per atom of a formula whose amounts are whole numbers (e.g. `K6 S6`)."""
    from pymatgen.core import Composition

    try:
        composition = Composition(formula)
    except Exception as error:  # pymatgen raises several types for bad formulas
        return None, f"cannot parse formula {formula!r}: {error}"
    if composition.num_atoms == 0:
        return None, f"empty formula {formula!r}"
    tokens = []
    for element, amount in composition.items():
        if abs(amount - round(amount)) > 1e-6:
            return None, f"formula {formula!r} has a non-integer amount of {element} ({amount:g}); element tokens need whole atoms"
        tokens += [str(element)] * int(round(amount))
    return tokens, None
