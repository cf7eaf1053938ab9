"""BatchNormalization over the real entries only, whose output carries no Keras mask."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="keras_chem")
class MaskedBatchNormalization(keras.layers.BatchNormalization):
    """`layer(x, mask=real)`: batch moments over the entries where `real` is True (padding never
    enters them). The mask is not attached to the output: the layers after it take their masks
    as explicit arguments, and would only warn about an attached one."""

    def compute_mask(self, inputs, mask=None):
        return None
