"""CGCNN's graph inputs and convolution stack, shared by the property model (`cgcnn.py`) and CrysAtom
pretraining (`crysatom.py`)."""

from __future__ import annotations

from keras_chem.models.crystograph import INPUT_DTYPES

GRAPH_DTYPES = {name: dtype for name, dtype in INPUT_DTYPES.items() if name != "pe"}  # the crystal graph without positional encodings
GAUSSIAN_STOP, GAUSSIAN_STEP = 8.0, 0.2  # distance centres 0, 0.2, ..., 8 Å with σ = 0.2: 41 edge features


def graph_inputs(k: int) -> dict:
    import keras

    shapes = {"atom_z": (None,), "nbr_idx": (None, k), "nbr_mask": (None, k), "nbr_vec": (None, k, 3)}
    return {name: keras.Input(shapes[name], dtype=dtype, name=name) for name, dtype in GRAPH_DTYPES.items()}


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
