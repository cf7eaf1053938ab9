"""numpy references of the edge / line-graph / angle features `layers/crystal_edges.py` computes
(specs/reference-implementations.md §A.1 items 3-5)."""

from __future__ import annotations

import numpy as np

from keras_chem.layers.edge_grids import (
    ANGLE_GRID,
    COS_DENOM_GUARD,
    DISTANCE_GRID,
    FLAG_RADIUS,
    PHI_GRID,
    SPHERICAL_GUARD,
    THETA_GRID,
    grid_centres,
)

# Gaussian centres and widths (sigma = the grid step) of the CrysToGraph features.
DISTANCE_CENTERS, DISTANCE_SIGMA = grid_centres(*DISTANCE_GRID), DISTANCE_GRID[2]
THETA_CENTERS, THETA_SIGMA = grid_centres(*THETA_GRID), THETA_GRID[2]
PHI_CENTERS, PHI_SIGMA = grid_centres(*PHI_GRID), PHI_GRID[2]
ANGLE_CENTERS, ANGLE_SIGMA = grid_centres(*ANGLE_GRID), ANGLE_GRID[2]
N_EDGE_FEATURES = len(DISTANCE_CENTERS) + len(THETA_CENTERS) + len(PHI_CENTERS) + 1  # 76
N_ANGLE_FEATURES = len(ANGLE_CENTERS)  # 30


def gaussian_reference(x: np.ndarray, centers: np.ndarray, sigma: float) -> np.ndarray:
    """exp(-(x - mu)^2 / sigma^2) for every centre, float64 [..., len(centers)]."""
    x = np.asarray(x, dtype=np.float64)[..., None]
    return np.exp(-((x - centers) ** 2) / sigma**2)


def spherical_reference(nbr_vec: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rho, theta, phi) of vectors [..., 3] with upstream's guards, float64.

    rho = |r| (0 -> 0.001), theta = arccos(z / rho), phi = atan2(y, x) (x == 0 -> 0.001).
    """
    vec = np.asarray(nbr_vec, dtype=np.float64)
    x, y, z = vec[..., 0], vec[..., 1], vec[..., 2]
    rho = np.linalg.norm(vec, axis=-1)
    rho = np.where(rho == 0, SPHERICAL_GUARD, rho)
    theta = np.arccos(np.clip(z / rho, -1.0, 1.0))
    phi = np.arctan2(y, np.where(x == 0, SPHERICAL_GUARD, x))
    return rho, theta, phi


def edge_features_reference(nbr_vec: np.ndarray, nbr_mask: np.ndarray | None = None) -> np.ndarray:
    """CrysToGraph's 76 edge features `[G41(rho) | G17(theta) | G17(phi) | rho > 8]`, float64 [..., 76].

    Slots where `nbr_mask` is False (when given) are all 0.
    """
    rho, theta, phi = spherical_reference(nbr_vec)
    out = np.concatenate(
        [
            gaussian_reference(rho, DISTANCE_CENTERS, DISTANCE_SIGMA),
            gaussian_reference(theta, THETA_CENTERS, THETA_SIGMA),
            gaussian_reference(phi, PHI_CENTERS, PHI_SIGMA),
            (rho > FLAG_RADIUS)[..., None].astype(np.float64),
        ],
        axis=-1,
    )
    if nbr_mask is not None:
        out = np.where(np.asarray(nbr_mask, dtype=bool)[..., None], out, 0.0)
    return out


def _line_graph_one(nbr_idx, nbr_vec, nbr_mask):
    n, k = nbr_idx.shape
    idx = np.clip(nbr_idx.astype(np.int64), 0, n - 1)
    lg_mask = nbr_mask[:, :, None] & nbr_mask[idx]  # [n, k, k']: edge i<-j and j's slot k'
    lg_idx = np.where(lg_mask, idx[:, :, None] * k + np.arange(k), 0)
    vec = np.where(nbr_mask[..., None], nbr_vec.astype(np.float64), 0.0)
    r2 = vec[:, :, None, :]  # e2 = (i <- j), vector nbr_vec[i, k]
    r1 = vec[idx]  # e1 = j's incoming edge k', vector nbr_vec[j, k']
    num = -np.sum(r1 * r2, axis=-1)
    den = np.linalg.norm(r1, axis=-1) * np.linalg.norm(r2, axis=-1)
    if np.any(lg_mask & (den == 0)):
        den = den + COS_DENOM_GUARD
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = np.clip(num / den, -1.0, 1.0)
    cos = np.where(np.isnan(cos) | ~lg_mask, 0.0, cos)
    return lg_idx.reshape(n * k, k), lg_mask.reshape(n * k, k), cos


def line_graph_reference(nbr_idx: np.ndarray, nbr_vec: np.ndarray, nbr_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Padded line graph with backtracking (DGL `line_graph(shared=True)`) and bond cosines.

    Line-graph node `i*K + k` is edge e2 = (i <- j = nbr_idx[i, k]); its K line-graph neighbours
    are j's incoming edges e1 = `j*K + k'`, including the way back. Returns
    `lg_idx [n*K, K] int64` (0 where masked), `lg_mask [n*K, K] bool` (= nbr_mask[i,k] &
    nbr_mask[j,k']) and `cos [n, K, K] float64` = <-r_e1, r_e2> / (|r_e1| |r_e2|) with
    r_e1 = nbr_vec[j, k'], r_e2 = nbr_vec[i, k]; 1e-4 is added to every denominator of the graph
    when one real denominator is 0; clamped to [-1, 1]; NaN and masked entries -> 0.
    A leading batch axis ([B, n, K] inputs) is handled graph by graph.
    """
    nbr_idx, nbr_vec, nbr_mask = np.asarray(nbr_idx), np.asarray(nbr_vec), np.asarray(nbr_mask, dtype=bool)
    if nbr_idx.ndim == 2:
        return _line_graph_one(nbr_idx, nbr_vec, nbr_mask)
    parts = [_line_graph_one(*args) for args in zip(nbr_idx, nbr_vec, nbr_mask)]
    return tuple(np.stack(p) for p in zip(*parts))


def angle_features_reference(cos: np.ndarray) -> np.ndarray:
    """Gaussian expansion of bond cosines on -1.4..1.5 (step 0.1, sigma 0.1), float64 [..., 30]."""
    return gaussian_reference(cos, ANGLE_CENTERS, ANGLE_SIGMA)
