"""Initial element vectors for composition models, as tables indexed by atomic number.

- `matscholar`: the 200-d Matscholar (mat2vec) embedding Roost starts from, 103 elements
  (H..Lr), read from the `element_embeddings` dataset card (never shipped with the package).
- `cgcnn92`: the 92-d CGCNN one-hot table keras-chem computes (`cgcnn_elements.py`), Z = 1..118.
- `onehot`: one column per element, Z = 1..118.
- `crysatom`: the 200-d CrysAtom vectors keras-chem pretrains and ships (`weights/crysatom_v1.npz`,
  `kchem pretrain crysatom`); only the elements of its corpus have one.
- a path to an `atom_vectors.npz` written by `kchem pretrain crysatom` (arrays `z`, `vectors`).
- `learned`: no table; the model learns a vector per element (`element_table` returns None).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

from keras_chem.featurizers.cgcnn_elements import MAX_Z

ELEMENT_FEATURES = ("matscholar", "cgcnn92", "onehot", "crysatom", "learned")
CRYSATOM_FILE = "crysatom_v1.npz"  # in the package `keras_chem.weights`
MATSCHOLAR_FILE = "element_embeddings/matscholar-embedding.json"


@lru_cache(maxsize=None)
def element_table(name: str) -> np.ndarray | None:
    """float32 `[119, d]`: row Z holds element Z's vector, row 0 (padding) and absent elements are 0.
    None for `learned`. Read-only, cached."""
    check_element_features(name)
    if name == "learned":
        return None
    if name == "cgcnn92":
        from keras_chem.featurizers.cgcnn_elements import cgcnn_element_table

        return cgcnn_element_table()
    if name == "crysatom" or name.endswith(".npz"):
        table = vector_file_table(shipped_crysatom_path() if name == "crysatom" else Path(name))
    elif name == "onehot":
        table = np.zeros((MAX_Z + 1, MAX_Z), dtype=np.float32)
        table[np.arange(1, MAX_Z + 1), np.arange(MAX_Z)] = 1.0
    else:
        table = _matscholar()
    table.flags.writeable = False
    return table


def check_element_features(name: str) -> None:
    if name not in ELEMENT_FEATURES and not name.endswith(".npz"):
        raise ValueError(f"unknown element features {name!r}; choose one of {', '.join(ELEMENT_FEATURES)} "
                         "or an atom_vectors.npz of `kchem pretrain crysatom`")


def shipped_crysatom_path() -> Path:
    from importlib.resources import files

    return Path(str(files("keras_chem.weights") / CRYSATOM_FILE))


def vector_file_table(path: Path) -> np.ndarray:
    """An `.npz` of per-element vectors (`z [n]`, `vectors [n, d]`) as a `[119, d]` table."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such atom vector file; `kchem pretrain crysatom` writes one")
    with np.load(path, allow_pickle=False) as saved:
        z, vectors = saved["z"].astype(int), saved["vectors"].astype(np.float32)
    table = np.zeros((MAX_Z + 1, vectors.shape[1]), dtype=np.float32)
    table[z] = vectors
    return table


def covered_elements(name: str) -> np.ndarray:
    """bool `[119]`: which atomic numbers have a vector in table `name` (all of 1..118 for `learned`)."""
    table = element_table(name)
    covered = np.ones(MAX_Z + 1, dtype=bool) if table is None else np.any(table != 0, axis=1)
    covered[0] = False
    return covered


def _matscholar() -> np.ndarray:
    from pymatgen.core import Element

    from keras_chem.data.fetch import locate
    from keras_chem.data.registry import get_card

    vectors = json.loads(locate(get_card("element_embeddings"), MATSCHOLAR_FILE).read_text())
    width = len(next(iter(vectors.values())))
    table = np.zeros((MAX_Z + 1, width), dtype=np.float32)
    for symbol, vector in vectors.items():
        table[Element(symbol).Z] = vector
    return table
