"""The persistent XLA cache: the first process writes compiled programs, the next one reads them,
and the runner compiles with XLA on both backends (TensorFlow's op determinism would turn it off)."""

import json
import os
import subprocess
import sys

import pytest

PROGRAM = """
import json
import keras, numpy as np
from keras_chem.training.compile_cache import enable_compile_cache
from keras_chem.training.fold import seed_everything
path = enable_compile_cache()
seed_everything(0)
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
model.compile("adam", "mse", jit_compile=True)
model.fit(np.ones((32, 8)), np.ones((32, 1)), verbose=0)
print(json.dumps({"path": str(path), "jit": bool(model.jit_compile)}))
"""


def _run(env):
    out = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_compiled_programs_are_written_once_and_reused(tmp_path):
    # JAX caches only programs that took a second to compile unless told otherwise
    env = {**os.environ, "KCHEM_CACHE_DIR": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    env.pop("TF_XLA_FLAGS", None)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    first = _run(env)
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    assert first["path"] == str(tmp_path / "xla" / backend)
    assert first["jit"], "seed_everything must leave XLA on"
    written = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "xla" / backend).rglob("*") if p.is_file()}
    assert written, "nothing was cached"
    _run(env)
    again = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "xla" / backend).rglob("*") if p.is_file()}
    assert again == written, "the second process compiled anew instead of reading the cache"


def test_the_cache_can_be_turned_off(tmp_path):
    env = {**os.environ, "KCHEM_CACHE_DIR": str(tmp_path), "KCHEM_COMPILE_CACHE": "0"}
    env.pop("TF_XLA_FLAGS", None)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    assert _run(env)["path"] == "None"
    assert not (tmp_path / "xla").exists()


def test_a_users_own_tensorflow_cache_wins(tmp_path, monkeypatch):
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow flag")
    from keras_chem.training.compile_cache import enable_compile_cache

    flags = "--tf_xla_persistent_cache_directory=/somewhere/else"
    monkeypatch.setenv("KCHEM_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("TF_XLA_FLAGS", flags)
    assert str(enable_compile_cache()) == "/somewhere/else"
    assert os.environ["TF_XLA_FLAGS"] == flags
