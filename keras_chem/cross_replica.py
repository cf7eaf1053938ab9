"""Sums over the global batch when a model trains data-parallel.

Under JAX a data-parallel step is one program over the whole (sharded) batch, so a sum over
the batch axis is already global. Under a `tf.distribute` strategy each replica runs on its
share of the batch; masked means (losses, batch statistics) must then add numerator and
denominator across replicas, or each replica's mean would count as much as the others
whatever its number of real rows. Outside a replica context this is the identity.
"""

from __future__ import annotations

import keras


def cross_replica_sum(value):
    """`value` summed over the replicas of the running `tf.distribute` strategy (if any)."""
    if keras.backend.backend() != "tensorflow":
        return value
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def replica_count() -> int:
    """Replicas that each compute a share of the batch (1 outside `tf.distribute`)."""
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync
