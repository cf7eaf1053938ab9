"""Loading `.keras` files of keras-chem models."""

from __future__ import annotations

from pathlib import Path


def load_model(path: str | Path):
    """Load a keras-chem `.keras` file (safe mode: no pickled or lambda code is executed)."""
    import keras
    import keras_hub  # noqa: F401  registers the keras-hub layers the encoders use

    import keras_chem.layers  # noqa: F401  registers every keras-chem layer
    import keras_chem.losses.masked  # noqa: F401

    return keras.saving.load_model(Path(path), compile=False, safe_mode=True)
