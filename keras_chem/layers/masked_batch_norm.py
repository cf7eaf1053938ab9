"""BatchNormalization over the real entries only, whose output carries no Keras mask."""

from __future__ import annotations

import keras
from keras import ops

from keras_chem.cross_replica import cross_replica_sum, replica_count


@keras.saving.register_keras_serializable(package="keras_chem")
class MaskedBatchNormalization(keras.layers.BatchNormalization):
    """`layer(x, mask=real)`: batch moments over the entries where `real` is True (padding never
    enters them), over the global batch when the batch is split across replicas. The mask is
    not attached to the output: the layers after it take their masks as explicit arguments, and
    would only warn about an attached one."""

    def compute_mask(self, inputs, mask=None):
        return None

    def _moments(self, inputs, mask):
        if replica_count() == 1:
            return super()._moments(inputs, mask)
        weights = ops.ones_like(inputs) if mask is None else ops.broadcast_to(ops.cast(ops.expand_dims(mask, -1), inputs.dtype),
                                                                             ops.shape(inputs))
        axes = self._reduction_axes
        count = cross_replica_sum(ops.sum(weights, axes, keepdims=True)) + keras.backend.epsilon()
        mean = cross_replica_sum(ops.sum(ops.where(weights > 0, inputs, 0.0), axes, keepdims=True)) / count
        deviation = ops.where(weights > 0, inputs - mean, 0.0)
        variance = cross_replica_sum(ops.sum(ops.square(deviation), axes, keepdims=True)) / count
        return ops.squeeze(mean), ops.squeeze(variance)
