"""Sub-element tokens (elEmBERT V1): per-element k-means centroids of atomic PDFs.

An atom's token is its symbol plus the index of the nearest centroid of its element ("C5").
An element the model has no centroids for keeps its bare symbol, which is in the V1 vocabulary.
Models are stored as plain `.npz` (no pickles) and fitted reproducibly by `fit_subelements`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from ase.data import atomic_numbers, chemical_symbols

from keras_chem.featurizers.pdf import CUTOFF, N_BINS
from keras_chem.io import atomic_save_npz

FORMAT = "keras_chem.subelements"
FORMAT_VERSION = 1
SMALL_FIT = 5000

# Table 3 of the elEmBERT paper (Appendix A), in the table's order (N = 1..96: H..Cf, then Rn).
# The table prints no k for Bk, Cf and Rn; we use 1 (one cluster, i.e. one sub-token). With
# that, the sum over all elements but Rn is 464, the number of sub-tokens in the original V1
# vocabulary (el2idV1.pkl, which has no Rn sub-tokens).
PAPER_K: dict[str, int] = {
    "H": 3, "He": 2, "Li": 2, "Be": 3, "B": 4, "C": 9, "N": 9, "O": 5, "F": 2, "Ne": 2,
    "Na": 3, "Mg": 3, "Al": 4, "Si": 9, "P": 9, "S": 9, "Cl": 9, "Ar": 2, "K": 3, "Ca": 3,
    "Sc": 4, "Ti": 5, "V": 7, "Cr": 9, "Mn": 11, "Fe": 9, "Co": 7, "Ni": 6, "Cu": 5, "Zn": 3,
    "Ga": 4, "Ge": 6, "As": 5, "Se": 6, "Br": 7, "Kr": 2, "Rb": 3, "Sr": 3, "Y": 4, "Zr": 5,
    "Nb": 6, "Mo": 9, "Tc": 10, "Ru": 10, "Rh": 8, "Pd": 3, "Ag": 5, "Cd": 3, "In": 4, "Sn": 4,
    "Sb": 4, "Te": 6, "I": 7, "Xe": 5, "Cs": 3, "Ba": 2, "La": 3, "Ce": 4, "Pr": 4, "Nd": 3,
    "Pm": 2, "Sm": 3, "Eu": 3, "Gd": 4, "Tb": 4, "Dy": 3, "Ho": 2, "Er": 2, "Tm": 3, "Yb": 3,
    "Lu": 2, "Hf": 4, "Ta": 6, "W": 9, "Re": 10, "Os": 10, "Ir": 11, "Pt": 5, "Au": 6, "Hg": 4,
    "Tl": 3, "Pb": 4, "Bi": 4, "Po": 5, "Ra": 1, "Ac": 3, "Th": 4, "Pa": 5, "U": 6, "Np": 6,
    "Pu": 7, "Am": 6, "Cm": 3, "Bk": 1, "Cf": 1, "Rn": 1,
}


def default_model_path() -> Path:
    """The shipped model: `weights/subelements_v1.npz` (package `keras_chem.weights`)."""
    from importlib.resources import files

    return Path(str(files("keras_chem.weights") / "subelements_v1.npz"))


def _check_symbol(symbol: str) -> int:
    z = atomic_numbers.get(symbol, 0)
    if z <= 0:
        raise ValueError(f"unknown element symbol {symbol!r}")
    return z


class SubelementModel:
    """Per-element centroids float32 [k_el, n_bins]; `metadata` is a JSON-able dict."""

    def __init__(self, centroids: dict[str, np.ndarray], metadata: dict | None = None):
        self.centroids: dict[str, np.ndarray] = {}
        for symbol in sorted(centroids, key=_check_symbol):
            array = np.ascontiguousarray(centroids[symbol], dtype=np.float32)
            if array.ndim != 2 or array.shape[0] == 0:
                raise ValueError(f"centroids of {symbol} must be a non-empty 2-D array, got {array.shape}")
            self.centroids[symbol] = array
        widths = {a.shape[1] for a in self.centroids.values()}
        if len(widths) > 1:
            raise ValueError(f"centroids have different widths {sorted(widths)}")
        self.n_bins = widths.pop() if widths else N_BINS
        self.metadata = dict(metadata or {})
        # Per Z: centroids (float64) and their squared norms, for the nearest-centroid search.
        self._by_z = {
            atomic_numbers[s]: (c.astype(np.float64), np.einsum("kj,kj->k", c.astype(np.float64), c.astype(np.float64)))
            for s, c in self.centroids.items()
        }

    @property
    def k(self) -> dict[str, int]:
        return {symbol: int(c.shape[0]) for symbol, c in self.centroids.items()}

    def nearest(self, numbers: np.ndarray, pdfs: np.ndarray) -> np.ndarray:
        """Nearest-centroid index per atom, int64 [n]; -1 for an element without centroids.

        Ties go to the lower index; squared distances are computed in float64.
        """
        numbers = np.asarray(numbers, dtype=np.int64).reshape(-1)
        pdfs = np.asarray(pdfs).reshape(len(numbers), -1)
        if pdfs.shape[1] != self.n_bins:
            raise ValueError(f"PDFs have {pdfs.shape[1]} bins, the model {self.n_bins}")
        out = np.full(len(numbers), -1, dtype=np.int64)
        if len(numbers) == 0:
            return out
        order = np.argsort(numbers, kind="stable")
        sorted_z = numbers[order]
        starts = np.flatnonzero(np.r_[True, sorted_z[1:] != sorted_z[:-1]])
        for start, stop in zip(starts, np.r_[starts[1:], len(order)]):
            entry = self._by_z.get(int(sorted_z[start]))
            if entry is None:
                continue
            rows = order[start:stop]
            centroids, norms = entry
            x = pdfs[rows].astype(np.float64)
            # |x - c|² = |x|² - 2 x·c + |c|²; |x|² is the same for every c of a row.
            out[rows] = np.argmin(norms[None, :] - 2.0 * (x @ centroids.T), axis=1)
        return out

    def token_table(self) -> dict[int, list[str]]:
        """Z → list of sub-tokens (`["C0", "C1", ...]`) for the elements of the model."""
        return {atomic_numbers[s]: [f"{s}{i}" for i in range(c.shape[0])] for s, c in self.centroids.items()}

    def assign(self, symbols: list[str], pdfs: np.ndarray) -> list[str]:
        """Token per atom: symbol + nearest-centroid index, or the bare symbol (no centroids)."""
        numbers = np.array([atomic_numbers.get(s, 0) for s in symbols], dtype=np.int64)
        index = self.nearest(numbers, pdfs)
        return [f"{s}{i}" if i >= 0 else s for s, i in zip(symbols, index.tolist())]

    def vocabulary_tokens(self) -> list[str]:
        """Every element in atomic-number order: bare symbol, then its sub-tokens (if any)."""
        tokens = []
        for symbol in chemical_symbols[1:]:
            tokens.append(symbol)
            if symbol in self.centroids:
                tokens += [f"{symbol}{i}" for i in range(self.centroids[symbol].shape[0])]
        return tokens

    def save(self, path: str | os.PathLike) -> Path:
        symbols = list(self.centroids)
        centroids = (
            np.concatenate([self.centroids[s] for s in symbols])
            if symbols else np.zeros((0, self.n_bins), dtype=np.float32)
        )
        metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, **self.metadata}
        return atomic_save_npz(
            path,
            symbols=np.array(symbols, dtype=str),
            k=np.array([self.centroids[s].shape[0] for s in symbols], dtype=np.int64),
            centroids=centroids.astype(np.float32),
            metadata=np.array(json.dumps(metadata, sort_keys=True)),
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SubelementModel":
        with np.load(path, allow_pickle=False) as data:
            missing = {"symbols", "k", "centroids", "metadata"} - set(data.files)
            if missing:
                raise ValueError(f"{path} is not a sub-element model (missing {sorted(missing)})")
            symbols = [str(s) for s in data["symbols"]]
            k = data["k"].astype(np.int64)
            centroids = data["centroids"]
            metadata = json.loads(str(data["metadata"]))
        if metadata.get("format") != FORMAT:
            raise ValueError(f"{path} is not a sub-element model (format {metadata.get('format')!r})")
        if len(symbols) != len(k) or int(k.sum()) != centroids.shape[0]:
            raise ValueError(f"{path}: {len(symbols)} symbols, k sums to {int(k.sum())}, {centroids.shape[0]} centroids")
        offsets = np.r_[0, np.cumsum(k)]
        return cls({s: centroids[a:b] for s, a, b in zip(symbols, offsets[:-1], offsets[1:])}, metadata)


def _first_moment(centroids: np.ndarray) -> np.ndarray:
    """Mean distance (bin units) of each centroid's PDF; 0 for an all-zero centroid."""
    r = np.arange(1, centroids.shape[1] + 1, dtype=np.float64)
    total = centroids.sum(axis=1)
    safe = np.where(total != 0, total, 1.0)
    return np.where(total != 0, centroids @ r / safe, 0.0)


def _sorted_centroids(centroids: np.ndarray) -> np.ndarray:
    """Centroids ordered by first moment, ties by their values, rounded so float noise never reorders."""
    c = np.asarray(centroids, dtype=np.float64)
    keys = [np.round(c[:, j], 6) for j in range(c.shape[1] - 1, -1, -1)] + [np.round(_first_moment(c), 6)]
    return c[np.lexsort(keys)]


def fit_subelements(
    pdfs_by_element: dict[str, np.ndarray],
    k_table: dict[str, int] = PAPER_K,
    seed: int = 0,
    max_samples_per_element: int = 20000,
) -> SubelementModel:
    """k-means per element on its atomic PDFs (sklearn `KMeans`, n_init=10, `random_state=seed`).

    `k = min(k_table[el], number of distinct PDFs)` (an element missing from `k_table` gets 1).
    At most `max_samples_per_element` PDFs per element, a subsample drawn with a generator
    seeded by (seed, Z). Centroids are sorted by first moment, so indices do not depend on
    k-means's label order. The same inputs and seed give the same model.
    """
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    centroids: dict[str, np.ndarray] = {}
    n_environments: dict[str, int] = {}
    k_used: dict[str, int] = {}
    for symbol in sorted(pdfs_by_element, key=_check_symbol):
        x = np.asarray(pdfs_by_element[symbol], dtype=np.float64)
        x = x.reshape(x.shape[0], -1) if x.size else x.reshape(0, N_BINS)
        if x.shape[0] == 0:
            continue
        n_environments[symbol] = int(x.shape[0])
        if x.shape[0] > max_samples_per_element:
            rng = np.random.default_rng([int(seed), atomic_numbers[symbol]])
            x = x[np.sort(rng.choice(x.shape[0], size=max_samples_per_element, replace=False))]
        n_distinct = np.unique(x, axis=0).shape[0]
        k = max(1, min(int(k_table.get(symbol, 1)), n_distinct))
        if k == 1:
            centres = x.mean(axis=0, keepdims=True)
        else:
            # One thread for small fits: OpenMP start-up costs more than it saves there.
            with threadpool_limits(1 if x.shape[0] < SMALL_FIT else None):
                centres = KMeans(n_clusters=k, n_init=10, random_state=int(seed)).fit(x).cluster_centers_
        centroids[symbol] = _sorted_centroids(centres).astype(np.float32)
        k_used[symbol] = k
    metadata = {
        "cutoff": CUTOFF,
        "n_bins": N_BINS,
        "seed": int(seed),
        "max_samples_per_element": int(max_samples_per_element),
        "k_table": "paper_table3" if k_table is PAPER_K else "custom",
        "k": k_used,
        "n_environments": n_environments,
    }
    return SubelementModel(centroids, metadata)
