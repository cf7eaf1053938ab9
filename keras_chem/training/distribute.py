"""Data-parallel training of one model over several local devices.

`--devices N` (or `all`) replicates the model on N accelerators (N CPU devices when there are
none) and splits every batch over them: Keras 3's `keras.distribution.DataParallel` under JAX,
`tf.distribute.MirroredStrategy` under TensorFlow. The batch size stays the global batch and
the learning rate is what was asked for. Losses and batch statistics are taken over the global
batch (`keras_chem/cross_replica.py`), so N devices train the weights one device would.

CPU devices must exist before the backend starts: `device_environment` sets
`XLA_FLAGS=--xla_force_host_platform_device_count=N` for JAX and `prepare_devices` splits the
CPU into N logical devices under TensorFlow; the fold workers call both.
"""

from __future__ import annotations

from contextlib import contextmanager

CPU_FLAG = "--xla_force_host_platform_device_count"


def parse_devices(value) -> int | str | None:
    """`--devices` as given: None, a positive count, or "all"."""
    if value is None or value == "all":
        return value
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"--devices takes a number or 'all', not {value!r}") from None
    if count < 1:
        raise ValueError(f"--devices must be at least 1, got {count}")
    return count


def device_environment(devices, backend: str, environ: dict) -> dict:
    """Environment variables a process needs to see `devices` CPU devices (JAX's host platform)."""
    env = dict(environ)
    if backend == "jax" and isinstance(devices, int) and devices > 1 and CPU_FLAG not in env.get("XLA_FLAGS", ""):
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {CPU_FLAG}={devices}".strip()
    return env


def prepare_devices(devices) -> None:
    """Under TensorFlow without GPUs, split the CPU into `devices` logical devices (before TF starts)."""
    import keras

    if keras.backend.backend() != "tensorflow" or not isinstance(devices, int) or devices < 2:
        return
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    if len(tf.config.get_logical_device_configuration(cpu) or []) < devices:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(devices)])


def _local_devices(backend: str) -> list:
    """Accelerators if there are any, else the CPU devices, in the backend's own terms."""
    if backend == "jax":
        import jax

        accelerators = [d for d in jax.local_devices() if d.platform != "cpu"]
        return accelerators or jax.local_devices(backend="cpu")
    import tensorflow as tf

    return tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")


def select_devices(devices, backend: str) -> list:
    available = _local_devices(backend)
    if devices == "all":
        return available if getattr(available[0], "platform", getattr(available[0], "device_type", "")) not in ("cpu", "CPU") else available[:1]
    if devices > len(available):
        raise ValueError(f"--devices {devices}: only {len(available)} device(s) are visible to {backend}")
    return available[:devices]


@contextmanager
def data_parallel(devices, batch_size: int):
    """A scope in which models are built and trained over `devices`; yields the replica count."""
    import keras

    if devices is None or devices == 1:
        yield 1
        return
    backend = keras.backend.backend()
    chosen = select_devices(devices, backend)
    if len(chosen) == 1:
        yield 1
        return
    if batch_size % len(chosen):
        raise ValueError(f"--batch-size {batch_size} cannot be split evenly over {len(chosen)} devices")
    if backend == "jax":
        distribution = keras.distribution.DataParallel(devices=chosen)
        with distribution.scope():
            yield len(chosen)
        return
    if backend != "tensorflow":
        raise ValueError(f"--devices needs the jax or tensorflow backend, not {backend}")
    import tensorflow as tf

    strategy = tf.distribute.MirroredStrategy([d.name for d in chosen])
    with strategy.scope():
        yield len(chosen)
