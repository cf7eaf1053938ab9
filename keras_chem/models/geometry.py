"""What the geometry models (SchNet, DimeNet++) share: the radius-graph input, the readouts compared by
the attention-pooling paper (sum, mean, max, or a Set Transformer), its training protocol and L1 loss."""

from __future__ import annotations

from keras_chem.models.base import ModelFamily, TaskInfo
from keras_chem.models.neighbor_graph import RadiusGraphPreprocessor

POOLINGS = ("sum", "mean", "max", "abp")
ABP_DEFAULTS = {"pooling": "sum", "abp_hidden": 512, "abp_heads": 16, "abp_seeds": 1, "abp_sabs": 2, "abp_mode": "masked"}
# The attention-pooling repo's protocol (spec C.5): Adam 1e-4, L1 on standardised targets, patience 10, no epoch cap.
TRAINING_DEFAULTS = {"optimizer": "adam", "learning_rate": 1e-4, "weight_decay": 0.0, "batch_size": 128, "epochs": 1000, "patience": 10}


def readout(h, atom_mask, config: dict, preprocessor, activation: str):
    """The atom vectors pooled into one vector per graph: `AtomPooling` or `SetTransformerPooling`."""
    from keras_chem.layers.atom_pooling import AtomPooling
    from keras_chem.layers.set_transformer import SetTransformerPooling

    if config["pooling"] != "abp":
        return AtomPooling(config["pooling"], name="pool")(h, atom_mask)
    return SetTransformerPooling(config["abp_hidden"], h.shape[-1], config["abp_heads"], config["abp_seeds"], config["abp_sabs"],
                                 mode=config["abp_mode"], activation=activation, max_nodes=preprocessor.cap, name="pool")(h, atom_mask)


class GeometryFamily(ModelFamily):
    """What SchNet and DimeNet++ share: the radius-graph preprocessor, the pooling options, L1 loss."""

    input_kinds = ("smiles", "structure")
    training_defaults = TRAINING_DEFAULTS
    max_z: int = 99
    embedding_layer = "graph_embedding"
    builder = None  # the model module's `build(config, preprocessor, task, target_stats)`, as a staticmethod

    def build(self, config, preprocessor, task, target_stats=None):
        self.check_config(config)
        return self.builder(config, preprocessor, task, target_stats)

    def preprocessor(self, config: dict) -> RadiusGraphPreprocessor:
        return RadiusGraphPreprocessor(cutoff=config["cutoff"], max_neighbors=config["max_neighbors"], max_atoms=config["max_atoms"],
                                       max_z=self.max_z, conformer_seed=config["conformer_seed"])

    def preprocessor_from_config(self, config: dict) -> RadiusGraphPreprocessor:
        return RadiusGraphPreprocessor(**config)

    def check_config(self, config: dict) -> None:
        from keras_chem.layers.set_transformer import MODES

        if config["pooling"] not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, not {config['pooling']!r}")
        if config["abp_mode"] not in MODES:
            raise ValueError(f"abp_mode must be one of {', '.join(MODES)}, not {config['abp_mode']!r}")
        if config["abp_hidden"] % config["abp_heads"]:
            raise ValueError(f"abp_hidden {config['abp_hidden']} must be divisible by abp_heads {config['abp_heads']}")
        if not config["cutoff"] > 0 or config["max_neighbors"] < 1:
            raise ValueError("cutoff must be positive and max_neighbors at least 1")

    def loss(self, task: TaskInfo, target_stats: dict | None = None, config: dict | None = None):
        """L1 on standardised targets for regression (spec C.5); the shared losses otherwise."""
        if task.task != "regression":
            return super().loss(task, target_stats, config)
        from keras_chem.losses.masked import MaskedMeanAbsoluteError

        return MaskedMeanAbsoluteError(scale=(target_stats or {}).get("std"))
