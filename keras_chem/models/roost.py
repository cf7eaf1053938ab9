"""Roost: message passing between the elements of a composition, weighted by their fractions.

Paper: `pretrain-roost.md` (Roost: Goodall & Lee 2020); what the original code does:
`specs/reference-implementations.md` §B.2. Here on padded compositions: every composition is
`M` element slots (M from the data), the pairs of one composition an `[M, M]` block.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_chem.featurizers.element_tables import check_element_features
from keras_chem.featurizers.progress import map_rows
from keras_chem.models.base import Features, ModelFamily, PaddedPreprocessor, TaskInfo
from keras_chem.models.roost_encoder import INPUT_DTYPES, build_encoder, widths

DEFAULTS = {
    "element_features": "matscholar",
    "element_embedding": 200,  # width of the learned vectors of `--element-features learned`
    "elem_fea_len": 64,
    "n_graph": 3,
    "heads": 3,
    "readout_heads": 3,
    "hidden": 256,
    "trunk": [1024, 512],
    "trunk_out": 256,
    "output_hidden": [128, 64],
    "max_elements": None,
    "robust": False,  # predict (mean, log σ) per target, trained with the robust L1 loss
    "structure_embeddings": None,  # `kchem embed` output that `pretrain --strategy multimodal` regresses
}
TRAINING_DEFAULTS = {"optimizer": "adamw", "learning_rate": 3e-4, "weight_decay": 1e-6, "batch_size": 128, "patience": 20}


class CompositionPreprocessor(PaddedPreprocessor):
    """Formulas (or the cells of crystal structures) → padded weighted compositions.

    Arrays per row (M = the element cap, taken from the data at `fit_transform`): `elem_z [M]
    int32` (0 = padding), `elem_frac [M] float32` (amount / total amount), `elem_mask [M] bool`.
    Elements are in order of atomic number. A formula that cannot be parsed (rules in
    `featurizers/compositions.py`), with an element that has no vector in the chosen element
    table, or with more than `max_elements` elements is skipped with its reason.
    """

    padded_axes = {name: (1,) for name in INPUT_DTYPES}
    bucket_step = 1  # a composition's cost grows with the square of its element count

    def __init__(self, element_features: str = "matscholar", max_elements: int | None = None, m_cap: int | None = None,
                 elements: list[int] | None = None):
        from keras_chem.featurizers.element_tables import covered_elements

        self.element_features = element_features
        self.max_elements = max_elements
        self.cap = m_cap
        # the atomic numbers the element table covers, kept so that predicting needs no table file
        self.elements = sorted(int(z) for z in elements) if elements is not None else \
            [int(z) for z in np.flatnonzero(covered_elements(element_features))]
        self._covered = np.zeros(max(self.elements, default=0) + 1, dtype=bool)
        self._covered[self.elements] = True

    def _composition(self, item: Any, input_kind: str):
        from pymatgen.core import Element

        from keras_chem.featurizers.compositions import structure_composition, weighted_composition

        value, reason = weighted_composition(item) if input_kind == "composition" else structure_composition(item)
        if value is None:
            return None, reason
        z, _ = value
        missing = [int(e) for e in z if e >= len(self._covered) or not self._covered[e]]
        if missing:
            symbols = ", ".join(Element.from_Z(e).symbol for e in missing)
            return None, f"no {self.element_features} vector for {symbols}"
        if self.max_elements is not None and len(z) > self.max_elements:
            return None, f"{len(z)} elements, over --max-elements {self.max_elements}"
        return value, None

    def featurize(self, ids: list[str], inputs: list[Any], input_kind: str) -> Features:
        if input_kind not in ("composition", "structure"):
            raise ValueError(f"Roost needs formulas or crystal structures, not {input_kind!r} inputs")
        kept, rows, skipped = map_rows(ids, inputs, lambda item: self._composition(item, input_kind), "parsing compositions")
        width = max((len(z) for z, _ in rows), default=0)
        elem_z = np.zeros((len(rows), width), dtype=np.int32)
        elem_frac = np.zeros((len(rows), width), dtype=np.float32)
        for i, (z, fractions) in enumerate(rows):
            elem_z[i, : len(z)] = z
            elem_frac[i, : len(z)] = fractions
        return Features(kept=kept, arrays={"elem_z": elem_z, "elem_frac": elem_frac, "elem_mask": elem_z > 0}, skipped=skipped)

    def over_cap_reason(self, size: int) -> str:
        return f"{size} elements, over the model's cap of {self.cap} elements"

    def sizes(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        return np.count_nonzero(arrays["elem_mask"], axis=1)

    def input_signature(self) -> dict:
        return {name: ((self.cap,), dtype) for name, dtype in INPUT_DTYPES.items()}

    def get_config(self) -> dict:
        return {"element_features": self.element_features, "max_elements": self.max_elements, "m_cap": self.cap,
                "elements": self.elements}


def build(config: dict, preprocessor: CompositionPreprocessor, task: TaskInfo, target_stats: dict | None = None):
    """Encoder → one residual output head per target (one for all classes of a multiclass task);
    with `robust`, each regression head gives (mean, log σ) and the model outputs `[B, 2T]`: the T
    means, then the T log σ, in target units."""
    import keras

    from keras_chem.layers.rescale import Rescale
    from keras_chem.layers.residual_network import ResidualNetwork
    from keras_chem.models.heads import activate

    inputs, z = build_encoder(config, preprocessor)
    hidden = widths(config["output_hidden"])
    if task.task == "multiclass":
        return keras.Model(inputs, activate(ResidualNetwork(hidden, task.n_outputs, name="head")(z), task), name="roost")
    robust = config["robust"] and task.task == "regression"
    heads = [ResidualNetwork(hidden, 2 if robust else 1, name=f"head_{t}")(z) for t in range(task.n_outputs)]
    if not robust:
        logits = heads[0] if len(heads) == 1 else keras.layers.Concatenate(name="heads")(heads)
        return keras.Model(inputs, activate(logits, task, target_stats), name="roost")
    means = keras.layers.Concatenate(name="mean_logits")([head[:, :1] for head in heads])
    log_sigmas = keras.layers.Concatenate(name="log_sigma_logits")([head[:, 1:] for head in heads])
    std = (target_stats or {"std": [1.0] * task.n_outputs})["std"]
    log_sigmas = Rescale(shift=[float(np.log(s)) for s in std], scale=[1.0] * task.n_outputs, name="log_sigma")(log_sigmas)
    outputs = keras.layers.Concatenate(name="mean_and_log_sigma")([activate(means, task, target_stats, name="mean"), log_sigmas])
    return keras.Model(inputs, outputs, name="roost")


class RoostFamily(ModelFamily):
    name = "roost"
    input_kinds = ("composition", "structure")
    options = DEFAULTS
    training_defaults = TRAINING_DEFAULTS
    embedding_layer = "composition_embedding"

    @property
    def pretraining(self):
        from keras_chem.models.roost_pretrain import BARLOW_TWINS, BARLOW_TWINS_FINGERPRINT, FINGERPRINT, MULTIMODAL

        return {"ssl": BARLOW_TWINS, "fingerprint": FINGERPRINT, "ssl+fingerprint": BARLOW_TWINS_FINGERPRINT, "multimodal": MULTIMODAL}

    def initialize(self, model, source, config, preprocessor):
        """The encoder of a `kchem pretrain roost` run; the output heads start new."""
        from keras_chem.models.roost_pretrain import initialize_from_pretraining

        initialize_from_pretraining(model, source, config)

    def preprocessor(self, config: dict) -> CompositionPreprocessor:
        return CompositionPreprocessor(element_features=config["element_features"], max_elements=config["max_elements"])

    def preprocessor_from_config(self, config: dict) -> CompositionPreprocessor:
        return CompositionPreprocessor(**config)

    def check_config(self, config: dict) -> None:
        check_element_features(config["element_features"])
        for key in ("trunk", "output_hidden"):
            widths(config[key])
        if config["elem_fea_len"] < 2:
            raise ValueError("elem_fea_len must be at least 2 (one column holds the fraction)")

    def build(self, config, preprocessor, task, target_stats=None):
        self.check_config(config)
        return build(config, preprocessor, task, target_stats)

    def loss(self, task: TaskInfo, target_stats: dict | None = None, config: dict | None = None):
        """Roost's L1 loss on standardised targets (the robust L1 with `robust`) for regression; the
        shared losses otherwise."""
        if task.task != "regression":
            return super().loss(task, target_stats, config)
        from keras_chem.losses.masked import MaskedMeanAbsoluteError, MaskedRobustL1

        scale = (target_stats or {}).get("std")
        return MaskedRobustL1(scale=scale) if (config or {}).get("robust") else MaskedMeanAbsoluteError(scale=scale)

    def split_outputs(self, outputs, task):
        """A robust model's `[n, 2T]` → the means and `sigma` = e^{log σ}."""
        n = task.n_outputs
        if task.task != "regression" or outputs.shape[1] != 2 * n:
            return outputs, {}
        return outputs[:, :n], {"sigma": np.exp(outputs[:, n:])}


FAMILY = RoostFamily()
