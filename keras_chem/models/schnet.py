"""SchNet (Schütt et al. 2017) with a choice of readout: sum, mean or max pooling, or attention-based
pooling (a Set Transformer; Buterez et al., Commun. Chem. 2023, `papers/attention-pooling.md`).

What the original code does: `specs/reference-implementations.md` §C.3 (SchNet as PyG builds it, the
readout of the attention-pooling repo: pool the atom vectors first, then the graph-level MLP) and
§C.1 (its Set Transformer). Molecules with given coordinates, RDKit conformers of SMILES and
periodic crystals all arrive as the same padded radius graph (`models/neighbor_graph.py`).
"""

from __future__ import annotations

from keras_chem.models.base import TaskInfo
from keras_chem.models.geometry import ABP_DEFAULTS, GeometryFamily, readout
from keras_chem.models.neighbor_graph import RadiusGraphPreprocessor
from keras_chem.structures.molecules import DEFAULT_SEED

DEFAULTS = {
    "cutoff": 10.0,  # Å
    "max_neighbors": 32,
    "max_atoms": None,
    "conformer_seed": DEFAULT_SEED,  # RDKit conformers of SMILES inputs
    "hidden": 128,
    "filters": 128,
    "interactions": 6,
    "gaussians": 50,
    **ABP_DEFAULTS,
    "abp_seeds": 32,  # the SchNet copy's 32 seeds (spec C.3)
}


def build(config: dict, preprocessor: RadiusGraphPreprocessor, task: TaskInfo, target_stats: dict | None = None):
    """Embedding(Z) → SchNetInteraction × interactions → pooling → Linear(h/2) → ssp → Linear(h/2) →
    ssp → output head."""
    import keras
    from keras import ops

    from keras_chem.layers.schnet import GaussianSmearing, SchNetInteraction, shifted_softplus
    from keras_chem.models.heads import output_head
    from keras_chem.models.neighbor_graph import graph_inputs

    inputs = graph_inputs(None)  # batches of small molecules carry fewer slots (`trim_slots`)
    atom_mask = ops.greater(inputs["atom_z"], 0)
    distances = ops.sqrt(ops.sum(ops.square(inputs["nbr_vec"]), axis=-1))
    rbf = GaussianSmearing(config["cutoff"], config["gaussians"], name="distance_gaussians")(distances)
    h = keras.layers.Embedding(preprocessor.max_z + 1, config["hidden"], name="atom_embedding")(inputs["atom_z"])
    for i in range(config["interactions"]):
        h = SchNetInteraction(config["filters"], config["cutoff"], name=f"interaction_{i}")(h, inputs["nbr_idx"], inputs["nbr_mask"], rbf, distances)
    z = readout(h, atom_mask, config, preprocessor, activation="relu")
    half = max(1, config["hidden"] // 2)
    dense = {"kernel_initializer": "glorot_uniform", "bias_initializer": keras.initializers.Constant(0.01)}
    z = shifted_softplus(keras.layers.Dense(half, name="readout_0", **dense)(z))
    z = keras.layers.Identity(name="graph_embedding")(shifted_softplus(keras.layers.Dense(half, name="readout_1", **dense)(z)))
    return keras.Model(inputs, output_head(z, task, target_stats), name="schnet")


class SchNetFamily(GeometryFamily):
    name = "schnet"
    options = DEFAULTS
    max_z = 99  # PyG's Embedding(100, hidden), indexed by Z
    builder = staticmethod(build)


FAMILY = SchNetFamily()
