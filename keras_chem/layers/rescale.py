"""Maps standardised model outputs back to target units."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_chem")
class Rescale(keras.layers.Layer):
    """`y = x * scale + shift`, one (scale, shift) per target, fixed from training data."""

    def __init__(self, shift, scale, **kwargs):
        super().__init__(**kwargs)
        self.shift = [float(v) for v in shift]
        self.scale = [float(v) for v in scale]

    def call(self, inputs):
        return inputs * ops.convert_to_tensor(self.scale, inputs.dtype) + ops.convert_to_tensor(self.shift, inputs.dtype)

    def get_config(self):
        return {**super().get_config(), "shift": self.shift, "scale": self.scale}
