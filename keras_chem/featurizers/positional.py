"""Graph positional encodings of a padded neighbour graph: Laplacian eigenvectors (LapPE) and
random-walk return probabilities (RWPE), as CrysToGraph computes them with DGL
(specs/reference-implementations.md §A.1 item 6), made deterministic.

The graph is the directed multigraph of the neighbour list: edge j -> i for every real slot
(`nbr_mask[i, k]`, `j = nbr_idx[i, k]`), `A[src=j, dst=i]` = number of such edges (periodic
images give multi-edges and self-loops).

LapPE, `L = I - D_in^{-1/2} A D_in^{-1/2}` (D_in = in-degrees clipped at 1; 12 for the kNN
graph). This is upstream's matrix, kept non-symmetric: a symmetrised Laplacian would give
different vectors than the ones the published models were trained on, and nothing here needs
symmetry. Differences from upstream, all for determinism or exactness:
- a dense `np.linalg.eig` for every size instead of ARPACK `eigs(which="SR", tol=1e-2)` (random
  start vector, 1e-2 tolerance) above 22 atoms. Eigenvalues are ordered by (real part, imaginary
  part, index) after rounding to 1e-8, so float noise cannot reorder them; the first is
  skipped and the next min(n - 1, k) are kept.
- real parts are kept as upstream. LAPACK scales a complex eigenvector so its largest entry is
  real, which fixes the phase, so the real part is defined up to sign.
- instead of a random ±1 flip per vector, each vector's sign is fixed so that its
  largest-magnitude entry is positive; entries within 1e-6 of the largest count as ties,
  and the lowest index wins.
- zero-padded to k columns when n <= k (a 1-atom cell: all zeros).
Eigenvectors of a repeated eigenvalue (common in symmetric cells) are one arbitrary basis of
their eigenspace, so only "same input, same LAPACK -> same output" holds, not invariance.

BLAS runs single-threaded inside these functions (threadpoolctl): featurization
is parallel over structures, not inside one eigen-decomposition, and on a busy 2-core machine
multi-threaded OpenBLAS made the eig of a 216-atom graph about 80x slower (1.5 s instead of 18 ms).

RWPE, `P = D_out^{-1} A` (multi-edges counted; a node without out-edges gets a zero row);
feature t is the diagonal of P^t, t = 1..steps. A 1-atom cell gives all ones.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache

import numpy as np

LAP_PE_DIM = 20
RW_PE_DIM = 20
_ORDER_DECIMALS = 8
_SIGN_TIE = 1e-6


@lru_cache(maxsize=1)
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@contextmanager
def single_threaded_blas():
    """Limit BLAS (OpenBLAS, MKL, ...) to one thread inside the block (a few µs per use)."""
    with _blas_controller().limit(limits=1, user_api="blas"):
        yield


def adjacency(nbr_idx: np.ndarray, nbr_mask: np.ndarray) -> np.ndarray:
    """Edge counts `A[src=j, dst=i]`, float64 [n, n], of the neighbour graph."""
    nbr_idx = np.asarray(nbr_idx, dtype=np.int64)
    nbr_mask = np.asarray(nbr_mask, dtype=bool)
    n = nbr_idx.shape[0]
    if nbr_idx.ndim != 2 or nbr_mask.shape != nbr_idx.shape:
        raise ValueError(f"nbr_idx and nbr_mask must both be [n, K], got {nbr_idx.shape} and {nbr_mask.shape}")
    src = nbr_idx[nbr_mask]
    if src.size and (src.min() < 0 or src.max() >= n):
        raise ValueError(f"neighbour index out of range for {n} atoms")
    dst = np.broadcast_to(np.arange(n)[:, None], nbr_idx.shape)[nbr_mask]
    return np.bincount(src * n + dst, minlength=n * n).reshape(n, n).astype(np.float64)


def fix_signs(vectors: np.ndarray) -> np.ndarray:
    """Flip each column so its largest-|value| entry (lowest index among ties) is positive."""
    magnitude = np.abs(vectors)
    top = magnitude >= magnitude.max(axis=0, keepdims=True) - _SIGN_TIE
    first = np.argmax(top, axis=0)
    signs = np.sign(vectors[first, np.arange(vectors.shape[1])])
    return vectors * np.where(signs == 0, 1.0, signs)


def _laplacian_pe(a: np.ndarray, k: int) -> np.ndarray:
    n = a.shape[0]
    out = np.zeros((n, k), dtype=np.float32)
    kept = min(n - 1, k)
    if kept <= 0:
        return out
    scale = np.clip(a.sum(axis=0), 1, None) ** -0.5
    laplacian = np.eye(n) - scale[:, None] * a * scale[None, :]
    values, vectors = np.linalg.eig(laplacian)
    order = np.lexsort((np.arange(n), np.round(values.imag, _ORDER_DECIMALS), np.round(values.real, _ORDER_DECIMALS)))
    chosen = order[1 : kept + 1]
    out[:, :kept] = fix_signs(vectors[:, chosen].real)
    return out


def _random_walk_pe(a: np.ndarray, steps: int) -> np.ndarray:
    """diag(P^t) for t = 1..steps from about 2*sqrt(steps) matrix products: with b = ceil(sqrt(steps)),
    diag(P^(b*q + r))_i = sum_j (P^(b*q))_ij (P^r)_ji for r = 1..b."""
    n = a.shape[0]
    p = a / (a.sum(axis=1, keepdims=True) + 1e-30)
    block = max(1, int(np.ceil(np.sqrt(steps))))
    small = [p]  # P^1 .. P^block
    for _ in range(block - 1):
        small.append(small[-1] @ p)
    big = [np.eye(n), small[-1]]  # P^0, P^block, P^(2 block), ...
    while block * len(big) < steps:
        big.append(big[-1] @ small[-1])
    diagonals = np.einsum("qij,rji->qri", np.stack(big), np.stack(small))  # [q, r, n]: t = block*q + r + 1
    return np.ascontiguousarray(diagonals.reshape(-1, n)[:steps].T, dtype=np.float32)


def laplacian_pe(nbr_idx: np.ndarray, nbr_mask: np.ndarray, k: int = LAP_PE_DIM) -> np.ndarray:
    """Eigenvectors of the k smallest non-trivial eigenvalues of L, float32 [n, k] (see module doc)."""
    with single_threaded_blas():
        return _laplacian_pe(adjacency(nbr_idx, nbr_mask), k)


def random_walk_pe(nbr_idx: np.ndarray, nbr_mask: np.ndarray, steps: int = RW_PE_DIM) -> np.ndarray:
    """Return probabilities diag(P^t), t = 1..steps, float32 [n, steps]."""
    with single_threaded_blas():
        return _random_walk_pe(adjacency(nbr_idx, nbr_mask), steps)


def positional_encodings(nbr_idx: np.ndarray, nbr_mask: np.ndarray, k: int = LAP_PE_DIM, steps: int = RW_PE_DIM) -> np.ndarray:
    """`concat(LapPE, RWPE)`, float32 [n, k + steps] ([n, 40] with the defaults), CrysToGraph's `pe`."""
    a = adjacency(nbr_idx, nbr_mask)
    with single_threaded_blas():
        return np.concatenate([_laplacian_pe(a, k), _random_walk_pe(a, steps)], axis=1)
