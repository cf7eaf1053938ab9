"""Gaussian basis expansion of a scalar feature (CrysToGraph's `GaussianFilter`)."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_chem.layers.edge_grids import grid_centres


@keras.saving.register_keras_serializable(package="keras_chem")
class GaussianExpansion(keras.layers.Layer):
    """`g_k(x) = exp(-(x - mu_k)^2 / sigma^2)` over the grid `arange(start, stop + step, step)`.

    Note: sigma is squared without a factor 1/2, as upstream. `sigma=None` means `sigma = step`.

    Input: any float tensor `[...]`. Output: `[..., count]` with `count = len(centres)`.
    """

    def __init__(self, start, stop, step, sigma=None, **kwargs):
        super().__init__(**kwargs)
        self.start = float(start)
        self.stop = float(stop)
        self.step = float(step)
        self.sigma = float(step if sigma is None else sigma)
        self._centres = grid_centres(self.start, self.stop, self.step)

    @property
    def count(self) -> int:
        return int(self._centres.shape[0])

    @property
    def centres(self) -> np.ndarray:
        return self._centres.copy()

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        mu = ops.convert_to_tensor(self._centres, dtype=x.dtype)
        d = ops.expand_dims(x, -1) - mu
        return ops.exp(-ops.square(d) / (self.sigma**2))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.count,)

    def get_config(self):
        return {
            **super().get_config(),
            "start": self.start,
            "stop": self.stop,
            "step": self.step,
            "sigma": self.sigma,
        }
