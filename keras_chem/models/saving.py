"""Loading `.keras` files of keras-chem models; pretrained encoder weights as pickle-free `.npz`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from keras_chem.io import atomic_save_npz, json_default


def load_model(path: str | Path):
    """Load a keras-chem `.keras` file (safe mode: no pickled or lambda code is executed)."""
    import keras
    import keras_hub  # noqa: F401  registers the keras-hub layers the encoders use

    import keras_chem.layers  # noqa: F401  registers every keras-chem layer
    import keras_chem.losses.masked  # noqa: F401

    return keras.saving.load_model(Path(path), compile=False, safe_mode=True)


def save_encoder_weights(encoder, meta: dict, path: Path) -> None:
    """The encoder's weights, in layer order, and `meta` (JSON) in one `.npz`: loadable without pickles."""
    weights = {f"weight_{i:03d}": w for i, w in enumerate(encoder.get_weights())}
    atomic_save_npz(path, meta=np.array(json.dumps(meta, default=json_default)), **weights)


def load_encoder_weights(path: Path) -> tuple[list[np.ndarray], dict]:
    """`(weights, meta)` written by `save_encoder_weights`."""
    with np.load(path, allow_pickle=False) as data:
        names = sorted(k for k in data.files if k.startswith("weight_"))
        return [data[k] for k in names], json.loads(str(data["meta"]))
