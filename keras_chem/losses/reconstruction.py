"""CrysAtom's two reconstruction losses (spec D.1), over the real atoms and atom pairs of padded crystals."""

from __future__ import annotations

import keras
from keras import ops

ADJACENCY_CLASS_WEIGHTS = (0.1, 1.0, 1.0, 1.0, 1.0, 1.0)


@keras.saving.register_keras_serializable(package="keras_chem")
class AdjacencyReconstructionLoss(keras.losses.Loss):
    """Class-weighted cross-entropy of the adjacency classes of every ordered atom pair.

    `y_true [B, N, N]`: how often atom b is among atom a's neighbours (capped at the last class),
    −1 for a pair with a padding atom; `y_pred [B, N, N, C]`: logits. The loss is the weighted
    mean over the real pairs of the whole batch, `Σ w_y · (−log p_y) / Σ w_y`, as PyTorch's
    `NLLLoss(weight=w)`; padding pairs count nowhere (the original counts padding slots toward atom 0).
    """

    def __init__(self, class_weights=ADJACENCY_CLASS_WEIGHTS, name="adjacency_reconstruction", **kwargs):
        kwargs.pop("reduction", None)
        super().__init__(name=name, reduction=None, **kwargs)
        self.class_weights = [float(w) for w in class_weights]

    def call(self, y_true, y_pred):
        classes = ops.cast(y_true, "int32")
        real = classes >= 0
        classes = ops.where(real, classes, 0)
        log_p = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
        picked = ops.take_along_axis(log_p, ops.expand_dims(classes, -1), axis=-1)[..., 0]
        weights = ops.where(real, ops.take(ops.convert_to_tensor(self.class_weights, "float32"), classes), 0.0)
        return -ops.sum(weights * picked) / ops.maximum(ops.sum(weights), 1e-12)

    def get_config(self):
        return {**super().get_config(), "class_weights": self.class_weights}


@keras.saving.register_keras_serializable(package="keras_chem")
class FeatureReconstructionLoss(keras.losses.Loss):
    """Binary cross-entropy with logits between each real atom's input table row and its
    reconstruction: `y_true [B, N, F]` (NaN rows for padding atoms), `y_pred [B, N, F]` logits;
    the mean over the real atoms' F entries of the batch."""

    def __init__(self, name="feature_reconstruction", **kwargs):
        kwargs.pop("reduction", None)
        super().__init__(name=name, reduction=None, **kwargs)

    def call(self, y_true, y_pred):
        y_true, logits = ops.cast(y_true, "float32"), ops.cast(y_pred, "float32")
        real = ops.logical_not(ops.isnan(y_true))
        target = ops.where(real, y_true, 0.0)
        # log(1 + e^x) − x·t, written to stay finite for large |x|
        entropy = ops.maximum(logits, 0.0) - logits * target + ops.log1p(ops.exp(-ops.abs(logits)))
        count = ops.sum(ops.cast(real, "float32"))
        return ops.sum(ops.where(real, entropy, 0.0)) / ops.maximum(count, 1.0)
