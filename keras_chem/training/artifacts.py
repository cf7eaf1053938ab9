"""Shipping what a pretraining run produces (e.g. CrysAtom's atom vectors) with a manifest line."""

from __future__ import annotations

import hashlib
import os
import shlex
from datetime import datetime, timezone
from pathlib import Path

MANIFEST = "MANIFEST.jsonl"
INFO_KEYS = ("objective", "datasets", "excluded_datasets", "n_sequences", "n_featurized", "n_skipped", "n_duplicates", "n_excluded",
             "seed", "best_epoch", "val_loss", "train_seconds", "n_elements", "missing_elements", "nearest_elements")


def ship_artifact(source: Path, destination: Path, info: dict, command: list[str]) -> dict:
    """Copy `source` to `destination` atomically and append its manifest line (sha256, corpus, seed,
    the command that made it, the run's summary) to `MANIFEST.jsonl` beside it; returns the line."""
    import keras

    import keras_chem
    from keras_chem.io import append_manifest_line, atomic_copy

    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    atomic_copy(source, destination)
    manifest = destination.parent / MANIFEST
    entry = {
        "file": os.path.relpath(destination.resolve(), manifest.resolve().parent),
        "sha256": hashlib.sha256(destination.read_bytes()).hexdigest(),
        **{key: info[key] for key in INFO_KEYS if key in info},
        **{key: value for key, value in info.items() if key.startswith("val_") and key not in INFO_KEYS},
        "command": shlex.join(command),
        "backend": keras.backend.backend(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "keras_chem_version": keras_chem.__version__,
    }
    append_manifest_line(manifest, entry)
    return entry
