"""DimeNet++ (Gasteiger et al. 2020) with a choice of readout, as the attention-pooling paper used it
(`papers/attention-pooling.md`; spec C.4): the per-atom output P, summed over the output blocks, is
pooled (sum, mean, max or a Set Transformer with one seed and swish), then a 4-layer swish regressor.
Layers: `layers/dimenet.py` (angle convention there); input: the padded radius graph.
"""

from __future__ import annotations

from keras_chem.models.base import TaskInfo
from keras_chem.models.geometry import ABP_DEFAULTS, GeometryFamily, readout
from keras_chem.models.neighbor_graph import RadiusGraphPreprocessor
from keras_chem.structures.molecules import DEFAULT_SEED

DEFAULTS = {
    "cutoff": 5.0,  # Å
    "max_neighbors": 32,
    "max_atoms": None,
    "conformer_seed": DEFAULT_SEED,
    "hidden": 128,
    "blocks": 4,
    "int_emb": 64,
    "basis_emb": 8,
    "out_emb": 256,
    "spherical": 7,
    "radial": 6,
    "before_skip": 1,
    "after_skip": 2,  # the paper's 2, not the repo copy's 1 (spec C.4)
    "output_layers": 3,
    "node_latent": 50,  # width of the per-atom output P that is pooled
    **ABP_DEFAULTS,
}


def build(config: dict, preprocessor: RadiusGraphPreprocessor, task: TaskInfo, target_stats: dict | None = None):
    """Bessel and spherical bases → embedding block → (interaction++ → output++) × blocks, P summed →
    pooling → Linear(d) → swish → Linear(d/2) → swish → Linear(d/2) → swish → output head."""
    import keras
    from keras import ops

    from keras_chem.layers.dimenet import BesselBasis, DimeNetEmbedding, DimeNetInteraction, DimeNetOutput, SphericalBasis, Triplets, swish
    from keras_chem.models.heads import output_head
    from keras_chem.models.neighbor_graph import graph_inputs

    inputs = graph_inputs(None)  # batches of small molecules carry fewer slots (`trim_slots`)
    atom_z, nbr_idx, nbr_mask = inputs["atom_z"], inputs["nbr_idx"], inputs["nbr_mask"]
    distances = ops.sqrt(ops.sum(ops.square(inputs["nbr_vec"]), axis=-1))
    rbf = BesselBasis(config["radial"], config["cutoff"], name="bessel_basis")(distances, nbr_mask)
    kj_idx, triplet_mask, d_kj, angles = Triplets(name="triplets")(nbr_idx, nbr_mask, inputs["nbr_vec"])
    sbf = SphericalBasis(config["spherical"], config["radial"], config["cutoff"], name="spherical_basis")(d_kj, angles, triplet_mask)
    m = DimeNetEmbedding(config["hidden"], preprocessor.max_z + 1, name="embedding")(atom_z, nbr_idx, rbf)
    output = {"hidden": config["hidden"], "out": config["node_latent"], "out_emb": config["out_emb"], "layers": config["output_layers"]}
    p = DimeNetOutput(**output, name="output_0")(m, rbf, nbr_mask)
    for i in range(config["blocks"]):
        m = DimeNetInteraction(config["hidden"], config["int_emb"], config["basis_emb"], config["before_skip"], config["after_skip"],
                               name=f"interaction_{i}")(m, rbf, sbf, kj_idx, triplet_mask)
        p = p + DimeNetOutput(**output, name=f"output_{i + 1}")(m, rbf, nbr_mask)
    z = readout(p, ops.greater(atom_z, 0), config, preprocessor, activation="swish")
    width = config["node_latent"]
    z = swish(keras.layers.Dense(width, name="regressor_0")(z))
    z = swish(keras.layers.Dense(max(1, width // 2), name="regressor_1")(z))
    z = keras.layers.Identity(name="graph_embedding")(swish(keras.layers.Dense(max(1, width // 2), name="regressor_2")(z)))
    return keras.Model(inputs, output_head(z, task, target_stats), name="dimenet")


class DimeNetFamily(GeometryFamily):
    name = "dimenet"
    options = DEFAULTS
    max_z = 94  # PyG's Embedding(95, hidden), indexed by Z
    builder = staticmethod(build)


FAMILY = DimeNetFamily()
