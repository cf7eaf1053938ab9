"""Roost's residual MLP: its trunk and its output head (spec B.2 steps 6-7)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_chem")
class ResidualNetwork(keras.layers.Layer):
    """`x [..., F]` → `[..., out_dim]`: for each width in `hidden`, `x ← ReLU(Linear(x)) + R(x)`
    (R a bias-free Linear where the width changes, else the identity), then a final Linear."""

    def __init__(self, hidden=(1024, 512), out_dim: int = 256, **kwargs):
        super().__init__(**kwargs)
        self.hidden = [int(width) for width in hidden]
        self.out_dim = int(out_dim)
        self.blocks = [keras.layers.Dense(width, name=f"dense_{i}") for i, width in enumerate(self.hidden)]
        self.shortcuts = []
        self.output_dense = keras.layers.Dense(self.out_dim, name="output_dense")

    def build(self, x_shape):
        width = int(x_shape[-1])
        shortcuts = []
        for i, (block, out) in enumerate(zip(self.blocks, self.hidden)):
            block.build((*x_shape[:-1], width))
            shortcut = None if out == width else keras.layers.Dense(out, use_bias=False, name=f"shortcut_{i}")
            if shortcut is not None:
                shortcut.build((*x_shape[:-1], width))
            shortcuts.append(shortcut)
            width = out
        self.shortcuts = shortcuts
        self.output_dense.build((*x_shape[:-1], width))

    def call(self, x):
        for block, shortcut in zip(self.blocks, self.shortcuts):
            x = ops.relu(block(x)) + (x if shortcut is None else shortcut(x))
        return self.output_dense(x)

    def compute_output_shape(self, x_shape):
        return (*x_shape[:-1], self.out_dim)

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden, "out_dim": self.out_dim}
