"""Roost's weighted soft-attention pooling over a padded set (spec B.2 steps 3 and 5)."""

from __future__ import annotations

import keras
from keras import ops

MASKED_GATE = -1e9


@keras.saving.register_keras_serializable(package="keras_chem")
class WeightedAttentionPooling(keras.layers.Layer):
    """`features [..., J, F]`, `weights [..., J]`, `mask [..., J] bool` → `[..., out_dim]`.

    Per head h: gate `g_j = SimpleNet(F → hidden → 1)`, message `m_j = SimpleNet(F → hidden → out_dim)`
    (SimpleNet = Linear → LeakyReLU(0.01) → Linear; the gate's last Linear has no bias, which the
    normalisation below would cancel), attention
    `a_j = w_j^p_h · exp(g_j − max g) / (Σ_real w_j^p_h · exp(g_j − max g) + 1e-10)` over the real
    entries only, `p_h` a learnable power drawn from N(0, 1); the output is the mean over heads of
    `Σ_j a_j m_j`. With `features [B, M, M, 2d]` (pairs i, j of a composition) it is Roost's message
    step (`RoostMessage` calls `pair_first_layers` and `attend` to skip building the pairs); with
    `features [B, M, d]` its crystal readout. Padded entries are zeroed on entry, so garbage there
    changes neither outputs nor gradients; a set with no real entry gives 0.
    """

    def __init__(self, out_dim: int, heads: int = 3, hidden: int = 256, negative_slope: float = 0.01, epsilon: float = 1e-10,
                 **kwargs):
        super().__init__(**kwargs)
        self.out_dim = int(out_dim)
        self.heads = int(heads)
        self.hidden = int(hidden)
        self.negative_slope = float(negative_slope)
        self.epsilon = float(epsilon)

    def build(self, features_shape, weights_shape=None, mask_shape=None):
        fan_in = int(features_shape[-1])
        heads, hidden, out = self.heads, self.hidden, self.out_dim

        def add(name, shape, fan):
            # PyTorch's Linear default, U(±1/√fan_in), for the weights and biases of every head
            bound = 1.0 / fan**0.5
            return self.add_weight(name=name, shape=shape, initializer=keras.initializers.RandomUniform(-bound, bound))

        self.gate_kernel_1 = add("gate_kernel_1", (heads, fan_in, hidden), fan_in)
        self.gate_bias_1 = add("gate_bias_1", (heads, hidden), fan_in)
        self.gate_kernel_2 = add("gate_kernel_2", (heads, hidden), hidden)
        self.message_kernel_1 = add("message_kernel_1", (heads, fan_in, hidden), fan_in)
        self.message_bias_1 = add("message_bias_1", (heads, hidden), fan_in)
        self.message_kernel_2 = add("message_kernel_2", (heads, hidden, out), hidden)
        self.message_bias_2 = add("message_bias_2", (heads, out), hidden)
        self.power = self.add_weight(name="power", shape=(heads,), initializer=keras.initializers.RandomNormal(0.0, 1.0))

    def first_layers(self, features):
        """`features [..., J, F]` → the first Linear of every head's gate and message network (before
        the LeakyReLU), `[..., H, J, hidden]` each."""
        def first(kernel, bias):
            return ops.einsum("...jf,hfk->...hjk", features, kernel) + ops.expand_dims(bias, 1)

        return first(self.gate_kernel_1, self.gate_bias_1), first(self.message_kernel_1, self.message_bias_1)

    def pair_first_layers(self, h):
        """`first_layers` of the pair features `[h_i ‖ h_j]` of `h [B, M, d]` (F = 2d), without building
        them: the first Linear of a pair is `W_a h_i + W_b h_j`, computed once per element and added
        per pair. Returns `[B, M(i), H, M(j), hidden]` each."""
        d = ops.shape(h)[-1]

        def first(kernel, bias):
            own = ops.einsum("bif,hfk->bihk", h, kernel[:, :d])  # [B, M(i), H, hidden]
            other = ops.einsum("bjf,hfk->bhjk", h, kernel[:, d:])  # [B, H, M(j), hidden]
            return ops.expand_dims(own, 3) + ops.expand_dims(other, 1) + ops.expand_dims(bias, 1)

        return first(self.gate_kernel_1, self.gate_bias_1), first(self.message_kernel_1, self.message_bias_1)

    def gate(self, gate_hidden):
        # products and a sum rather than a dot: XLA fuses them, where a dot of width 1 runs as many tiny matmuls
        return ops.sum(ops.leaky_relu(gate_hidden, self.negative_slope) * ops.expand_dims(self.gate_kernel_2, 1), axis=-1)

    def message(self, message_hidden):
        """The message of every entry, `[..., H, J, out_dim]` (what the original computes per pair)."""
        message = ops.einsum("...hjk,hko->...hjo", ops.leaky_relu(message_hidden, self.negative_slope), self.message_kernel_2)
        return message + ops.expand_dims(self.message_bias_2, 1)

    def call(self, features, weights, mask):
        mask = ops.cast(mask, "bool")
        features = ops.where(ops.expand_dims(mask, -1), features, ops.zeros_like(features))
        return self.attend(*self.first_layers(features), weights, mask)

    def attention(self, gate, weights, mask):
        """Gates `[..., H, J]` → the weighted soft attention over the real J, `[..., H, J]`."""
        mask = ops.cast(mask, "bool")
        real = ops.expand_dims(mask, -2)  # [..., 1, J]
        gate = ops.where(real, gate, MASKED_GATE)
        gate = gate - ops.max(gate, axis=-1, keepdims=True)
        safe_weights = ops.where(mask, ops.cast(weights, gate.dtype), ops.ones_like(gate[..., 0, :]))
        scaled = ops.power(ops.expand_dims(safe_weights, -2), ops.expand_dims(self.power, -1))  # [..., H, J]
        score = ops.where(real, scaled * ops.exp(gate), 0.0)
        return score / (ops.sum(score, axis=-1, keepdims=True) + self.epsilon)

    def attend(self, gate_hidden, message_hidden, weights, mask):
        """First-layer activations → the pooled messages, heads averaged, `[..., out_dim]`.

        The message network's last Linear is applied after the attention-weighted sum, not per entry:
        `Σ_j a_j (W m_j + b) = W (Σ_j a_j m_j) + b Σ_j a_j`, the same value for a fraction of the work."""
        attention = self.attention(self.gate(gate_hidden), weights, mask)
        summed = ops.sum(ops.expand_dims(attention, -1) * ops.leaky_relu(message_hidden, self.negative_slope), axis=-2)
        pooled = ops.einsum("...hk,hko->...ho", summed, self.message_kernel_2)
        pooled = pooled + ops.expand_dims(ops.sum(attention, axis=-1), -1) * self.message_bias_2
        return ops.mean(pooled, axis=-2)

    def compute_output_shape(self, features_shape, weights_shape=None, mask_shape=None):
        return (*features_shape[:-2], self.out_dim)

    def get_config(self):
        return {**super().get_config(), "out_dim": self.out_dim, "heads": self.heads, "hidden": self.hidden,
                "negative_slope": self.negative_slope, "epsilon": self.epsilon}
