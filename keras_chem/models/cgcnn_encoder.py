"""CGCNN's convolution stack, shared by the property model (`cgcnn.py`) and CrysAtom
pretraining (`crysatom.py`)."""

from __future__ import annotations

GAUSSIAN_STOP, GAUSSIAN_STEP = 8.0, 0.2  # distance centres 0, 0.2, ..., 8 Å with σ = 0.2: 41 edge features


def convolutions(h, inputs: dict, n_conv: int, atom_mask):
    """`n_conv` CGCNNConv layers (`conv_0`, ...) over the graph, edges the Gaussian-expanded distances."""
    from keras import ops

    from keras_chem.layers.cgcnn_conv import CGCNNConv
    from keras_chem.layers.gaussian_expansion import GaussianExpansion

    distances = ops.sqrt(ops.sum(ops.square(inputs["nbr_vec"]), axis=-1))
    edges = GaussianExpansion(0.0, GAUSSIAN_STOP, GAUSSIAN_STEP, sigma=GAUSSIAN_STEP, name="edge_gaussians")(distances)
    for i in range(n_conv):
        h = CGCNNConv(name=f"conv_{i}")(h, inputs["nbr_idx"], inputs["nbr_mask"], edges, atom_mask)
    return h
