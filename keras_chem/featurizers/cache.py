"""On-disk cache of featurized arrays: one `.npz` per configuration, keyed by a config hash."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from keras_chem.io import atomic_save_npz, json_default

# Bump to invalidate every cache file written by an older layout.
CACHE_FORMAT = 1
_CONFIG_KEY = "__config__"


def feature_cache_dir() -> Path:
    """`$KCHEM_CACHE_DIR/features`, else `~/.cache/keras_chem/features`."""
    root = os.environ.get("KCHEM_CACHE_DIR") or Path.home() / ".cache" / "keras_chem"
    return Path(root).expanduser() / "features"


def canonical_json(config: dict) -> str:
    payload = {"cache_format": CACHE_FORMAT, "config": config}
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=json_default
    )


def cache_key(config: dict) -> str:
    """First 20 hex digits of the sha256 of the canonical JSON of `config`."""
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()[:20]


def _as_storable(name: str, value) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype == object:
        if all(isinstance(item, str) for item in array.ravel()):
            return array.astype(str)
        raise TypeError(f"feature array {name!r} has object dtype; only numeric or str arrays are cached")
    return array


def _load(path: Path, expected_config: str) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    stored = arrays.pop(_CONFIG_KEY, None)
    if stored is None or str(stored) != expected_config:
        raise ValueError("stored config does not match the requested one")
    return arrays


def load_or_build(
    key_config: dict,
    build: Callable[[], dict[str, np.ndarray]],
    cache_dir: str | os.PathLike | None = None,
) -> dict[str, np.ndarray]:
    """Arrays for `key_config` from the cache, or from `build()` (then saved atomically).

    A corrupt, unreadable or mismatching cache file is reported with one warning and
    rebuilt; a failed save is reported with one warning and the built arrays are returned.
    """
    config_json = canonical_json(key_config)
    directory = Path(cache_dir) if cache_dir is not None else feature_cache_dir()
    path = directory / f"{cache_key(key_config)}.npz"
    if path.exists():
        try:
            return _load(path, config_json)
        except Exception as error:
            message = " ".join(f"{type(error).__name__}: {error}".split())
            warnings.warn(f"feature cache {path} unreadable ({message}); rebuilding", stacklevel=2)
    built = build()
    if _CONFIG_KEY in built:
        raise ValueError(f"{_CONFIG_KEY!r} is a reserved name in feature arrays")
    arrays = {name: _as_storable(name, value) for name, value in built.items()}
    try:
        atomic_save_npz(path, **arrays, **{_CONFIG_KEY: np.array(config_json)})
    except OSError as error:
        warnings.warn(f"could not write feature cache {path} ({error}); continuing without it", stacklevel=2)
    return arrays
