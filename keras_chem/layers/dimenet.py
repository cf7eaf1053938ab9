"""DimeNet++ (Gasteiger et al. 2020; spec C.4, PyG's `DimeNetPlusPlus`) on padded neighbour tensors.

Edge (message) tensors are `[B, N, K, ·]`: slot (i, s) holds the directed edge j → i with
j = `nbr_idx[i, s]`. Triplets k → j → i are the line graph of the neighbour graph: for the edge at
(i, s), the edges into j at slots (j, s'), `[B, N·K, K]`, without the one that comes back from i
itself (k is i when x_k − x_i = 0, so a periodic image of i is a valid k).

Angle convention: the current PyG one, the angle between x_j − x_i and x_k − x_j (π minus the bond
angle at j), from `atan2(|a × b|, a · b)`.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from keras_chem.layers.crystal_edges import line_graph_indices
from keras_chem.layers.etgc import gather_nodes, shape_dim

ENVELOPE_EXPONENT = 5  # p = 6


@keras.saving.register_keras_serializable(package="keras_chem")
class GlorotOrthogonal(keras.initializers.Initializer):
    """An orthogonal matrix rescaled to variance `scale / (fan_in + fan_out)` (PyG's `glorot_orthogonal`)."""

    def __init__(self, scale: float = 2.0, seed=None):
        self.scale, self.seed = float(scale), seed
        self._orthogonal = keras.initializers.Orthogonal(seed=seed)

    def __call__(self, shape, dtype=None):
        w = self._orthogonal(shape, dtype=dtype)
        return w * ops.sqrt(self.scale / ((shape[-2] + shape[-1]) * ops.var(w)))

    def get_config(self):
        return {"scale": self.scale, "seed": self.seed}


def _dense(units, name, use_bias=True):
    return keras.layers.Dense(units, use_bias=use_bias, name=name, kernel_initializer=GlorotOrthogonal())


def swish(x):
    return x * ops.sigmoid(x)


def envelope(x, exponent: int = ENVELOPE_EXPONENT):
    """`1/x + a x^(p−1) + b x^p + c x^(p+1)` for x < 1, 0 beyond (p = exponent + 1; a, b, c make it
    smooth at 1). x must be positive."""
    p = exponent + 1
    a, b, c = -(p + 1) * (p + 2) / 2, p * (p + 2), -p * (p + 1) / 2
    value = 1.0 / x + a * x ** (p - 1) + b * x**p + c * x ** (p + 1)
    return ops.where(x < 1.0, value, 0.0)


def spherical_bessel_zeros(orders: int, roots: int) -> np.ndarray:
    """`[orders, roots]`: the first `roots` positive zeros of j_l for l = 0 … orders − 1 (scipy)."""
    from scipy.optimize import brentq
    from scipy.special import spherical_jn

    zeros = np.zeros((orders, roots))
    grid = np.arange(0.5, np.pi * (orders + roots + 2), 0.01)
    for order in range(orders):
        values = spherical_jn(order, grid)
        crossings = np.flatnonzero(np.sign(values[:-1]) != np.sign(values[1:]))[:roots]
        zeros[order] = [brentq(lambda t: spherical_jn(order, t), grid[c], grid[c + 1]) for c in crossings]
    return zeros


def spherical_bessel(x, orders: int):
    """`[j_0(x), …, j_{orders−1}(x)]` by upward recurrence (float32 error below 2e-4 for x above 0.1 of
    the first zero, the range a basis sees beyond 0.1 cutoff)."""
    j = [ops.sin(x) / x, ops.sin(x) / ops.square(x) - ops.cos(x) / x]
    for order in range(1, orders - 1):
        j.append((2 * order + 1) / x * j[-1] - j[-2])
    return j[:orders]


def legendre(c, degrees: int):
    """`[P_0(c), …, P_{degrees−1}(c)]` (Bonnet's recurrence)."""
    p = [ops.ones_like(c), c]
    for n in range(1, degrees - 1):
        p.append(((2 * n + 1) * c * p[-1] - n * p[-2]) / (n + 1))
    return p[:degrees]


def _scaled_distances(distances, mask, cutoff):
    """d / cutoff where `mask`, 1 (where every basis vanishes) elsewhere, so padding never divides by 0."""
    return ops.where(mask, distances / cutoff, 1.0)


@keras.saving.register_keras_serializable(package="keras_chem")
class BesselBasis(keras.layers.Layer):
    """`u(d/c) · sin(f_n d/c)`, learnable frequencies f_n initialised to nπ, n = 1 … radial.
    `call(distances [...], mask [...])` → `[..., radial]`, 0 where masked."""

    def __init__(self, radial: int = 6, cutoff: float = 5.0, **kwargs):
        super().__init__(**kwargs)
        self.radial, self.cutoff = int(radial), float(cutoff)

    def build(self, distances_shape, mask_shape=None):
        start = np.pi * np.arange(1, self.radial + 1)
        self.frequencies = self.add_weight(shape=(self.radial,), initializer=keras.initializers.Constant(start), name="frequencies")

    def call(self, distances, mask):
        mask = ops.cast(mask, "bool")
        x = ops.expand_dims(_scaled_distances(distances, mask, self.cutoff), -1)
        return ops.where(ops.expand_dims(mask, -1), envelope(x) * ops.sin(self.frequencies * x), 0.0)

    def compute_output_shape(self, distances_shape, mask_shape=None):
        return tuple(distances_shape) + (self.radial,)

    def get_config(self):
        return {**super().get_config(), "radial": self.radial, "cutoff": self.cutoff}


@keras.saving.register_keras_serializable(package="keras_chem")
class SphericalBasis(keras.layers.Layer):
    """`u(d/c) · √2 / |j_{l+1}(z_ln)| · j_l(z_ln d/c) · Y_l^0(angle)` for l < spherical, n < radial,
    z_ln the zeros of j_l. `call(distances [...], angles [...], mask [...])` → `[..., spherical·radial]`
    (l-major), 0 where masked; the distance is that of the k → j edge."""

    def __init__(self, spherical: int = 7, radial: int = 6, cutoff: float = 5.0, **kwargs):
        super().__init__(**kwargs)
        from scipy.special import spherical_jn

        self.spherical, self.radial, self.cutoff = int(spherical), int(radial), float(cutoff)
        self.zeros = spherical_bessel_zeros(self.spherical, self.radial)
        orders = np.arange(self.spherical)[:, None]
        self.normalizers = np.sqrt(2.0) / np.abs(spherical_jn(orders + 1, self.zeros))
        self.harmonics = np.sqrt((2 * np.arange(self.spherical) + 1) / (4 * np.pi))

    def call(self, distances, angles, mask):
        mask = ops.cast(mask, "bool")
        x = _scaled_distances(distances, mask, self.cutoff)
        radial = []
        for order in range(self.spherical):
            z = ops.convert_to_tensor(self.zeros[order], x.dtype)
            j = spherical_bessel(ops.expand_dims(x, -1) * z, order + 1)[order]
            radial.append(j * ops.convert_to_tensor(self.normalizers[order], x.dtype))
        radial = ops.stack(radial, axis=-2) * ops.expand_dims(ops.expand_dims(envelope(x), -1), -1)  # [..., L, R]
        angular = ops.stack(legendre(ops.cos(angles), self.spherical), axis=-1) * ops.convert_to_tensor(self.harmonics, x.dtype)
        out = radial * ops.expand_dims(angular, -1)
        out = ops.reshape(out, tuple(ops.shape(out)[:-2]) + (self.spherical * self.radial,))
        return ops.where(ops.expand_dims(mask, -1), out, 0.0)

    def compute_output_shape(self, distances_shape, angles_shape=None, mask_shape=None):
        return tuple(distances_shape) + (self.spherical * self.radial,)

    def get_config(self):
        return {**super().get_config(), "spherical": self.spherical, "radial": self.radial, "cutoff": self.cutoff}


def triplets(nbr_idx, nbr_mask, nbr_vec):
    """The k → j → i triplets of every edge j → i: `kj_idx [B, N·K, K]` (the k → j edge, an index into
    the flattened `[N·K]` edges), `mask [B, N·K, K]`, and `d_kj`, `angle` `[B, N·K, K]`."""
    n, k = shape_dim(nbr_idx, 1), shape_dim(nbr_idx, 2)
    kj_idx, mask = line_graph_indices(nbr_idx, nbr_mask)
    r_ji = ops.reshape(ops.cast(nbr_vec, "float32"), (-1, n * k, 1, 3))  # x_j − x_i
    r_kj = gather_nodes(ops.reshape(ops.cast(nbr_vec, "float32"), (-1, n * k, 3)), kj_idx)  # x_k − x_j, [B, N·K, K, 3]
    back_to_i = ops.sum(ops.square(r_ji + r_kj), axis=-1) < 1e-6  # x_k = x_i
    mask = ops.logical_and(mask, ops.logical_not(back_to_i))
    dot = ops.sum(r_ji * r_kj, axis=-1)
    cross = ops.cross(ops.broadcast_to(r_ji, ops.shape(r_kj)), r_kj)
    angle = ops.arctan2(ops.sqrt(ops.sum(ops.square(cross), axis=-1)), dot)
    d_kj = ops.sqrt(ops.sum(ops.square(r_kj), axis=-1))
    return kj_idx, mask, d_kj, angle


@keras.saving.register_keras_serializable(package="keras_chem")
class Triplets(keras.layers.Layer):
    """`triplets(nbr_idx, nbr_mask, nbr_vec)` as a layer (no weights)."""

    def call(self, nbr_idx, nbr_mask, nbr_vec):
        return triplets(nbr_idx, nbr_mask, nbr_vec)

    def compute_output_spec(self, nbr_idx, nbr_mask, nbr_vec):
        n, k = nbr_idx.shape[1], nbr_idx.shape[2]
        shape = (nbr_idx.shape[0], None if n is None else n * k, k)
        return (keras.KerasTensor(shape, "int32"), keras.KerasTensor(shape, "bool"), keras.KerasTensor(shape, "float32"),
                keras.KerasTensor(shape, "float32"))


def _residual(x, first, second):
    return x + swish(second(swish(first(x))))


@keras.saving.register_keras_serializable(package="keras_chem")
class DimeNetEmbedding(keras.layers.Layer):
    """Edge embedding `swish(Linear(3h → h)([e(z_i) ‖ e(z_j) ‖ swish(Linear(rbf))]))` with e the element
    embedding (uniform ±√3). `call(atom_z [B, N], nbr_idx, rbf [B, N, K, R])` → `[B, N, K, h]`."""

    def __init__(self, hidden: int = 128, elements: int = 95, **kwargs):
        super().__init__(**kwargs)
        self.hidden, self.elements = int(hidden), int(elements)
        limit = math.sqrt(3.0)
        self.embedding = keras.layers.Embedding(self.elements, self.hidden, embeddings_initializer=keras.initializers.RandomUniform(-limit, limit),
                                                name="element_embedding")
        self.lin_rbf = keras.layers.Dense(self.hidden, name="lin_rbf")
        self.lin = keras.layers.Dense(self.hidden, name="lin")

    def build(self, atom_z_shape, nbr_idx_shape=None, rbf_shape=None):
        self.embedding.build(tuple(atom_z_shape))
        self.lin_rbf.build(tuple(rbf_shape))
        self.lin.build(tuple(rbf_shape[:-1]) + (3 * self.hidden,))

    def call(self, atom_z, nbr_idx, rbf):
        x = self.embedding(atom_z)
        x_i = ops.broadcast_to(ops.expand_dims(x, 2), tuple(ops.shape(nbr_idx)) + (self.hidden,))
        return swish(self.lin(ops.concatenate([x_i, gather_nodes(x, nbr_idx), swish(self.lin_rbf(rbf))], axis=-1)))

    def compute_output_shape(self, atom_z_shape, nbr_idx_shape=None, rbf_shape=None):
        return tuple(rbf_shape[:-1]) + (self.hidden,)

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden, "elements": self.elements}


@keras.saving.register_keras_serializable(package="keras_chem")
class DimeNetInteraction(keras.layers.Layer):
    """Interaction++ (spec C.4), with `after_skip` residual layers after the skip as the paper has
    them. `call(m [B, N, K, h], rbf [B, N, K, R], sbf [B, N·K, K, S·R], kj_idx, triplet_mask)` → `[B, N, K, h]`."""

    def __init__(self, hidden: int = 128, int_emb: int = 64, basis_emb: int = 8, before_skip: int = 1, after_skip: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.hidden, self.int_emb, self.basis_emb = int(hidden), int(int_emb), int(basis_emb)
        self.before_skip, self.after_skip = int(before_skip), int(after_skip)
        self.lin_rbf1 = _dense(self.basis_emb, "lin_rbf1", use_bias=False)
        self.lin_rbf2 = _dense(self.hidden, "lin_rbf2", use_bias=False)
        self.lin_sbf1 = _dense(self.basis_emb, "lin_sbf1", use_bias=False)
        self.lin_sbf2 = _dense(self.int_emb, "lin_sbf2", use_bias=False)
        self.lin_kj, self.lin_ji = _dense(self.hidden, "lin_kj"), _dense(self.hidden, "lin_ji")
        self.lin_down = _dense(self.int_emb, "lin_down", use_bias=False)
        self.lin_up = _dense(self.hidden, "lin_up", use_bias=False)
        self.lin = _dense(self.hidden, "lin")
        self.residuals_before = [(_dense(self.hidden, f"before_{i}_a"), _dense(self.hidden, f"before_{i}_b")) for i in range(self.before_skip)]
        self.residuals_after = [(_dense(self.hidden, f"after_{i}_a"), _dense(self.hidden, f"after_{i}_b")) for i in range(self.after_skip)]

    def build(self, m_shape, rbf_shape=None, sbf_shape=None, kj_idx_shape=None, triplet_mask_shape=None):
        edge = tuple(m_shape[:-1])
        self.lin_rbf1.build(tuple(rbf_shape))
        self.lin_rbf2.build(edge + (self.basis_emb,))
        self.lin_sbf1.build(tuple(sbf_shape))
        self.lin_sbf2.build(tuple(sbf_shape[:-1]) + (self.basis_emb,))
        for layer in (self.lin_kj, self.lin_ji, self.lin_down, self.lin):
            layer.build(tuple(m_shape))
        self.lin_up.build(edge + (self.int_emb,))
        for first, second in self.residuals_before + self.residuals_after:
            first.build(tuple(m_shape))
            second.build(tuple(m_shape))

    def call(self, m, rbf, sbf, kj_idx, triplet_mask):
        n, k = shape_dim(m, 1), shape_dim(m, 2)
        x_ji = swish(self.lin_ji(m))
        x_kj = swish(self.lin_down(swish(self.lin_kj(m)) * self.lin_rbf2(self.lin_rbf1(rbf))))
        per_triplet = gather_nodes(ops.reshape(x_kj, (-1, n * k, self.int_emb)), kj_idx) * self.lin_sbf2(self.lin_sbf1(sbf))
        summed = ops.sum(ops.where(ops.expand_dims(triplet_mask, -1), per_triplet, 0.0), axis=2)
        return self.update(m, x_ji, ops.reshape(summed, (-1, n, k, self.int_emb)))

    def update(self, m, x_ji, summed):
        """The edge update from the triplet sums `summed` (int_emb wide): up-projection, residual layers, skip."""
        h = x_ji + swish(self.lin_up(summed))
        for first, second in self.residuals_before:
            h = _residual(h, first, second)
        h = swish(self.lin(h)) + m
        for first, second in self.residuals_after:
            h = _residual(h, first, second)
        return h

    def compute_output_shape(self, m_shape, rbf_shape=None, sbf_shape=None, kj_idx_shape=None, triplet_mask_shape=None):
        return tuple(m_shape)

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden, "int_emb": self.int_emb, "basis_emb": self.basis_emb,
                "before_skip": self.before_skip, "after_skip": self.after_skip}


@keras.saving.register_keras_serializable(package="keras_chem")
class DimeNetOutput(keras.layers.Layer):
    """Output++: `Linear(rbf → hidden) ⊙ m` summed over each atom's real edges → Linear(h → out_emb, no bias) →
    `layers` × swish(Linear) → Linear(out_emb → out, no bias, zero init). `call(m, rbf, nbr_mask)` → `[B, N, out]`."""

    def __init__(self, hidden: int = 128, out: int = 50, out_emb: int = 256, layers: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.hidden, self.out, self.out_emb, self.layers = int(hidden), int(out), int(out_emb), int(layers)
        self.lin_rbf = _dense(self.hidden, "lin_rbf", use_bias=False)
        self.lin_up = _dense(self.out_emb, "lin_up", use_bias=False)
        self.lins = [_dense(self.out_emb, f"lin_{i}") for i in range(self.layers)]
        self.lin = keras.layers.Dense(self.out, use_bias=False, kernel_initializer="zeros", name="lin")

    def build(self, m_shape, rbf_shape=None, nbr_mask_shape=None):
        self.lin_rbf.build(tuple(rbf_shape))
        atoms = tuple(m_shape[:2])
        self.lin_up.build(atoms + (self.hidden,))
        for lin in self.lins:
            lin.build(atoms + (self.out_emb,))
        self.lin.build(atoms + (self.out_emb,))

    def call(self, m, rbf, nbr_mask):
        x = ops.sum(ops.where(ops.expand_dims(ops.cast(nbr_mask, "bool"), -1), self.lin_rbf(rbf) * m, 0.0), axis=2)
        x = self.lin_up(x)
        for lin in self.lins:
            x = swish(lin(x))
        return self.lin(x)

    def compute_output_shape(self, m_shape, rbf_shape=None, nbr_mask_shape=None):
        return tuple(m_shape[:2]) + (self.out,)

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden, "out": self.out, "out_emb": self.out_emb, "layers": self.layers}
