"""Importing keras_chem is cheap: no Keras, no TensorFlow (the CLI sets the backend first)."""

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.backend_independent


def test_import_does_not_load_keras_or_tensorflow():
    code = "import sys, keras_chem, keras_chem.cli.app; print(sorted(m for m in ('keras', 'tensorflow', 'jax') if m in sys.modules))"
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == "[]"


def test_backend_flag_selects_the_backend(tmp_path):
    code = (
        "import sys; from keras_chem.cli.app import app; "
        "sys.argv=['kchem','--backend','jax','datasets','info','bbbp']; "
        "import os\ntry:\n    app()\nexcept SystemExit:\n    pass\n"
        "print('BACKEND', os.environ['KERAS_BACKEND'])"
    )
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert "BACKEND jax" in result.stdout
