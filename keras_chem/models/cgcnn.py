"""CGCNN (Xie & Grossman, PRL 120, 145301 (2018)), the classic crystal graph baseline, on the padded
kNN crystal graph that CrysToGraph uses (12 neighbours, 8 Å start radius that grows as needed).

What the original does: `specs/reference-implementations.md` §D.1 (ConvLayer) and §D.3 (the 92-d
table). `--atom-features` picks the element table: `cgcnn92` (default), `crysatom` (the vectors
`kchem pretrain crysatom` ships), an `atom_vectors.npz` of such a run, `onehot` or `learned`.
"""

from __future__ import annotations

from keras_chem.featurizers.element_tables import check_element_features
from keras_chem.models.base import ModelFamily
from keras_chem.models.crystograph import CrystalGraphPreprocessor

DEFAULTS = {
    "k": 12,
    "start_radius": 8.0,
    "radius_step": 2.0,
    "max_atoms": None,
    "atom_features": "cgcnn92",
    "atom_fea": 64,  # atom vector width inside the convolutions
    "conv_layers": 3,
    "h_fea": 128,  # crystal vector width after pooling
    "fc_layers": 1,
    "dropout": 0.0,
}
# Crystal Twins' Matbench fine-tuning (spec D.2): Adam 1e-3, batch 64, MSE on standardised targets.
TRAINING_DEFAULTS = {"optimizer": "adam", "learning_rate": 1e-3, "weight_decay": 0.0, "batch_size": 64, "epochs": 300, "patience": 30}
def build(config: dict, preprocessor: CrystalGraphPreprocessor, task, target_stats: dict | None = None):
    """Element table → Linear(atom_fea) → CGCNNConv × conv_layers → masked mean → softplus →
    Linear(h_fea) → softplus (→ [Linear(h_fea) → softplus] × (fc_layers − 1)) → output head."""
    import keras
    from keras import ops

    from keras_chem.layers.masked_mean import MaskedMean
    from keras_chem.models.cgcnn_encoder import convolutions
    from keras_chem.models.element_vectors import element_vectors
    from keras_chem.models.heads import output_head
    from keras_chem.models.neighbor_graph import graph_inputs

    inputs = graph_inputs(preprocessor.k)
    atom_mask = ops.greater(inputs["atom_z"], 0)
    vectors = element_vectors(inputs["atom_z"], config["atom_features"], config["atom_fea"])
    h = keras.layers.Dense(config["atom_fea"], name="atom_embedding")(vectors)
    h = convolutions(h, inputs, config["conv_layers"], atom_mask)
    z = MaskedMean(name="mean_pool")(h, atom_mask)
    z = ops.softplus(keras.layers.Dense(config["h_fea"], name="conv_to_fc")(ops.softplus(z)))
    for i in range(1, config["fc_layers"]):
        z = ops.softplus(keras.layers.Dense(config["h_fea"], name=f"fc_{i}")(z))
    z = keras.layers.Identity(name="crystal_embedding")(z)
    z = keras.layers.Dropout(config["dropout"], name="readout_dropout")(z)
    return keras.Model(inputs, output_head(z, task, target_stats), name="cgcnn")


class CGCNNFamily(ModelFamily):
    name = "cgcnn"
    input_kinds = ("structure",)
    options = DEFAULTS
    training_defaults = TRAINING_DEFAULTS
    embedding_layer = "crystal_embedding"

    @property
    def pretraining(self):
        from keras_chem.models.crysatom import CRYSATOM

        return {"crysatom": CRYSATOM}

    def preprocessor(self, config: dict) -> CrystalGraphPreprocessor:
        return CrystalGraphPreprocessor(k=config["k"], start_radius=config["start_radius"], radius_step=config["radius_step"],
                                        max_atoms=config["max_atoms"], positional=False, atom_features=config["atom_features"])

    def preprocessor_from_config(self, config: dict) -> CrystalGraphPreprocessor:
        return CrystalGraphPreprocessor(**config)

    def check_config(self, config: dict) -> None:
        check_element_features(config["atom_features"])
        for key in ("atom_fea", "conv_layers", "h_fea", "fc_layers"):
            if int(config[key]) < 1:
                raise ValueError(f"{key} must be at least 1, got {config[key]}")

    def build(self, config, preprocessor, task, target_stats=None):
        self.check_config(config)
        return build(config, preprocessor, task, target_stats)


FAMILY = CGCNNFamily()
