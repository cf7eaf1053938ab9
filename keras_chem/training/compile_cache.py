"""A persistent cache of compiled XLA programs, shared by folds, reruns and `predict`.

Every fold builds a new model, and every (batch, bucket) shape of it is compiled again: for
CrysToGraph that is 10-30 s a shape on a CPU. With the cache the first fold compiles and later
folds and runs of the same model load the programs (JAX's persistent compilation cache; under
TensorFlow, XLA's `--tf_xla_persistent_cache_directory`). It lives in
`$KCHEM_CACHE_DIR/xla/<backend>` (default `~/.cache/keras_chem`); `KCHEM_COMPILE_CACHE=0` turns it
off. It takes effect only before the process compiles its first XLA program, and only on
settings the user has not made.
"""

from __future__ import annotations

import os
from pathlib import Path

from keras_chem.data.fetch import cache_dir

TF_FLAG = "--tf_xla_persistent_cache_directory"


def enable_compile_cache() -> Path | None:
    """Point the backend's persistent XLA cache at the keras-chem cache; returns its folder."""
    if os.environ.get("KCHEM_COMPILE_CACHE", "1") == "0":
        return None
    import keras

    backend = keras.backend.backend()
    if backend not in ("jax", "tensorflow"):
        return None
    path = cache_dir() / "xla" / backend
    if backend == "jax":
        import jax

        if not jax.config.jax_compilation_cache_dir:
            path.mkdir(parents=True, exist_ok=True)
            jax.config.update("jax_compilation_cache_dir", str(path))
            if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
                # JAX keeps only programs that took a second to compile; every fold worker compiles
                # the same shapes again, so keep those that took a fifth of one
                jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
        return Path(jax.config.jax_compilation_cache_dir)
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if f"{TF_FLAG}=" in flags:
        return Path(flags.split(f"{TF_FLAG}=", 1)[1].split()[0])
    path.mkdir(parents=True, exist_ok=True)
    os.environ["TF_XLA_FLAGS"] = f"{flags} {TF_FLAG}={path}".strip()
    return path
