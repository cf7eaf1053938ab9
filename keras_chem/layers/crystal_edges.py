"""CrysToGraph edge and line-graph features computed inside the model from padded neighbour lists.

Spec: reference-implementations.md A.1 items 3-5. Two layers live here because they share
the geometry: `SphericalEdgeFeatures` (edge vector -> 76-d RBF features) and `LineGraph`
(padded line graph with backtracking + 30-d bond-cosine RBF features).
"""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_chem.layers.edge_grids import ANGLE_GRID, COS_DENOM_GUARD, DISTANCE_GRID, FLAG_RADIUS, PHI_GRID, SPHERICAL_GUARD, THETA_GRID
from keras_chem.layers.etgc import gather_nodes, shape_dim
from keras_chem.layers.gaussian_expansion import GaussianExpansion


def _safe_sqrt(s):
    """sqrt(s) for s >= 0 with a finite gradient at 0 (gradient 0 there)."""
    pos = s > 0
    return ops.where(pos, ops.sqrt(ops.where(pos, s, ops.ones_like(s))), ops.zeros_like(s))


def spherical_coordinates(vec):
    """`vec [..., 3]` -> `(rho, theta, phi)` with upstream's guards (`convert_spherical`).

    rho = |r| (0 -> 0.001), theta = arccos(z / rho), phi = atan2(y, x) with x == 0 -> 0.001.
    theta is evaluated as atan2(sqrt(x^2 + y^2), z): the same angle, but accurate near the poles
    where float32 arccos loses ~3e-4 rad, and with finite gradients; rho == 0 gives pi/2
    (= arccos(0 / 0.001)) exactly as upstream. All guards are `where`-based and gradient safe.
    """
    x, y, z = vec[..., 0], vec[..., 1], vec[..., 2]
    s_xy = ops.square(x) + ops.square(y)
    sq = s_xy + ops.square(z)
    zero = sq <= 0
    rho = ops.where(zero, ops.full_like(sq, SPHERICAL_GUARD), _safe_sqrt(sq))
    z_safe = ops.where(zero, ops.ones_like(z), z)
    theta = ops.where(zero, ops.full_like(z, math.pi / 2), ops.arctan2(_safe_sqrt(s_xy), z_safe))
    x_g = ops.where(ops.equal(x, 0), ops.full_like(x, SPHERICAL_GUARD), x)
    phi = ops.arctan2(y, x_g)
    return rho, theta, phi


@keras.saving.register_keras_serializable(package="keras_chem")
class SphericalEdgeFeatures(keras.layers.Layer):
    """Edge vectors -> upstream's 76-d edge features `[G41(rho) | G17(theta) | G17(phi) | rho > 8]`.

    Call: `layer(nbr_vec, nbr_mask=None)`, `nbr_vec [B, N, K, 3]` (cart(image of j) - cart(i),
    Cartesian lattice frame, so not rotation invariant, as upstream) -> `[B, N, K, 76]`.
    Slots with `nbr_mask == False` are set to 0. Gaussians: exp(-(x - mu)^2 / sigma^2).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.rho_rbf = GaussianExpansion(*DISTANCE_GRID, name="rho_rbf")
        self.theta_rbf = GaussianExpansion(*THETA_GRID, name="theta_rbf")
        self.phi_rbf = GaussianExpansion(*PHI_GRID, name="phi_rbf")

    def build(self, nbr_vec_shape, nbr_mask_shape=None):
        for rbf in (self.rho_rbf, self.theta_rbf, self.phi_rbf):
            rbf.build(tuple(nbr_vec_shape[:-1]))
        self.built = True

    @property
    def units(self) -> int:
        return self.rho_rbf.count + self.theta_rbf.count + self.phi_rbf.count + 1

    def call(self, nbr_vec, nbr_mask=None):
        vec = ops.cast(nbr_vec, self.compute_dtype)
        if nbr_mask is not None:
            vec = ops.where(ops.expand_dims(ops.cast(nbr_mask, "bool"), -1), vec, 0.0)
        rho, theta, phi = spherical_coordinates(vec)
        flag = ops.expand_dims(ops.cast(rho > FLAG_RADIUS, vec.dtype), -1)
        out = ops.concatenate([self.rho_rbf(rho), self.theta_rbf(theta), self.phi_rbf(phi), flag], axis=-1)
        if nbr_mask is not None:
            out = ops.where(ops.expand_dims(ops.cast(nbr_mask, "bool"), -1), out, 0.0)
        return out

    def compute_output_shape(self, nbr_vec_shape, nbr_mask_shape=None):
        return tuple(nbr_vec_shape[:-1]) + (self.units,)


def line_graph_indices(nbr_idx, nbr_mask):
    """Padded line graph (DGL `line_graph(backtracking=True)` of the kNN graph).

    Node `i*K + k` is the directed edge i <- j = nbr_idx[i, k]; its line-graph neighbours are
    j's incoming edges `j*K + k'`, k' = 0..K-1 (including the way back to i).
    Returns `lg_idx [B, N*K, K] int32` (0 where masked) and
    `lg_mask [B, N*K, K] bool = nbr_mask[i, k] & nbr_mask[j, k']`.
    """
    n, k = shape_dim(nbr_idx, 1), shape_dim(nbr_idx, 2)
    nbr_idx = ops.clip(ops.cast(nbr_idx, "int32"), 0, n - 1)
    nbr_mask = ops.cast(nbr_mask, "bool")
    j_mask = ops.cast(gather_nodes(ops.cast(nbr_mask, "int32"), nbr_idx), "bool")  # [B,N,K,K']
    lg_mask = ops.expand_dims(nbr_mask, -1) & j_mask
    lg_idx = ops.expand_dims(nbr_idx * k, -1) + ops.arange(k, dtype="int32")
    lg_idx = ops.where(lg_mask, lg_idx, ops.zeros_like(lg_idx))
    return ops.reshape(lg_idx, (-1, n * k, k)), ops.reshape(lg_mask, (-1, n * k, k))


def bond_cosines(nbr_idx, nbr_mask, nbr_vec):
    """Bond cosine for each line-graph edge e1 -> e2, `[B, N, K, K']` plus its mask.

    e2 = (i <- j at slot k), r_e2 = nbr_vec[i, k]; e1 = (j <- j' at slot k'), r_e1 = nbr_vec[j, k'].
    cos = <-r_e1, r_e2> / (|r_e1| |r_e2|), the cosine of the angle at the shared atom j.
    Upstream guard (per crystal, as it runs per crystal graph): if any real denominator is 0,
    1e-4 is added to all of that crystal's denominators. Then clamp to [-1, 1], NaN -> 0.
    """
    n, k = shape_dim(nbr_idx, 1), shape_dim(nbr_idx, 2)
    nbr_idx = ops.clip(ops.cast(nbr_idx, "int32"), 0, n - 1)
    nbr_mask = ops.cast(nbr_mask, "bool")
    vec = ops.where(ops.expand_dims(nbr_mask, -1), ops.convert_to_tensor(nbr_vec), 0.0)
    r2 = ops.expand_dims(vec, 3)  # [B,N,K,1,3]
    r1 = ops.reshape(gather_nodes(ops.reshape(vec, (-1, n, k * 3)), nbr_idx), (-1, n, k, k, 3))
    j_mask = ops.cast(gather_nodes(ops.cast(nbr_mask, "int32"), nbr_idx), "bool")
    mask = ops.expand_dims(nbr_mask, -1) & j_mask
    num = -ops.sum(r1 * r2, axis=-1)
    den = _safe_sqrt(ops.sum(ops.square(r1), -1)) * _safe_sqrt(ops.sum(ops.square(r2), -1))
    den_zero = mask & (den <= 0)
    any_zero = ops.any(den_zero, axis=(1, 2, 3))
    den = den + ops.reshape(ops.where(any_zero, COS_DENOM_GUARD, 0.0), (-1, 1, 1, 1))
    den = ops.where(mask & (den > 0), den, ops.ones_like(den))
    cos = ops.clip(num / den, -1.0, 1.0)
    cos = ops.where(ops.isnan(cos) | ops.logical_not(mask), ops.zeros_like(cos), cos)
    return cos, mask


@keras.saving.register_keras_serializable(package="keras_chem")
class LineGraph(keras.layers.Layer):
    """Padded line graph + bond-angle features, for the line-graph eTGC.

    Call: `lg_idx, lg_mask, lg_fea = layer(nbr_idx, nbr_mask, nbr_vec)` with
    `nbr_idx [B, N, K] int`, `nbr_mask [B, N, K] bool`, `nbr_vec [B, N, K, 3]` ->
      lg_idx  [B, N*K, K] int32   line-graph neighbour (edge id j*K + k') of edge node i*K + k
      lg_mask [B, N*K, K] bool    nbr_mask[i, k] & nbr_mask[j, k']
      lg_fea  [B, N*K, K, 30]     Gaussian(-1.4..1.5 step 0.1, sigma 0.1) of the bond cosine, 0 where masked
    The edge-node features themselves are `SphericalEdgeFeatures` reshaped to `[B, N*K, 76]`
    with `nbr_mask` reshaped to `[B, N*K]` as the node mask.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.cos_rbf = GaussianExpansion(*ANGLE_GRID, name="cos_rbf")

    def build(self, nbr_idx_shape, nbr_mask_shape=None, nbr_vec_shape=None):
        self.cos_rbf.build(tuple(nbr_idx_shape[:1]) + (None, nbr_idx_shape[-1]))
        self.built = True

    def call(self, nbr_idx, nbr_mask, nbr_vec):
        n, k = shape_dim(nbr_idx, 1), shape_dim(nbr_idx, 2)
        lg_idx, lg_mask = line_graph_indices(nbr_idx, nbr_mask)
        cos, _ = bond_cosines(nbr_idx, nbr_mask, ops.cast(nbr_vec, self.compute_dtype))
        fea = ops.where(ops.expand_dims(lg_mask, -1), self.cos_rbf(ops.reshape(cos, (-1, n * k, k))), 0.0)
        return lg_idx, lg_mask, fea
