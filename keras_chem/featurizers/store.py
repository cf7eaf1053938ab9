"""Featurized datasets on disk: built chunk by chunk, read back memory-mapped.

`build_store` featurizes `CHUNK_ROWS` rows at a time and writes each chunk as it finishes, so a
killed featurization resumes from the last chunk written. Chunks are padded to their own
longest row; once all are done the arrays are laid out in one `.npy` file each, padded to the
longest row of the dataset (the cap), without ever holding them whole in memory, and
`meta.json` is written last. `open_store` memory-maps those files: the rows a batch needs are
read from disk, and processes sharing a store share its pages.

    <cache>/features/<key>/chunk_00000.npz ...    while building (deleted afterwards)
    <cache>/features/<key>/x_<name>.npy           one per input array, rows in input order
    <cache>/features/<key>/kept.npy               input position of every featurized row
    <cache>/features/<key>/skipped.json           [[row id, reason], ...]
    <cache>/features/<key>/meta.json              key config, cap, fitted preprocessor
"""

from __future__ import annotations

import io
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from keras_chem import locks
from keras_chem.data.types import Skip
from keras_chem.featurizers.cache import canonical_json, cache_key, feature_cache_dir
from keras_chem.io import atomic_write_bytes, atomic_write_json

CHUNK_ROWS = 4096
STORE_FORMAT = 1


@dataclass
class Chunk:
    """Featurized rows of one chunk: `kept` input positions, arrays padded to the chunk's longest row."""

    kept: np.ndarray
    arrays: dict[str, np.ndarray]
    skipped: list[Skip]


@dataclass
class FeatureStore:
    path: Path
    kept: np.ndarray
    arrays: dict[str, np.ndarray]  # read-only memory maps
    skipped: list[Skip]
    meta: dict


def store_dir(key_config: dict, cache_dir: str | os.PathLike | None = None) -> Path:
    root = Path(cache_dir) if cache_dir is not None else feature_cache_dir()
    return root / cache_key({"store_format": STORE_FORMAT, **key_config})


def open_store(path: str | os.PathLike) -> FeatureStore:
    """A finished store, memory-mapped (raises FileNotFoundError if it is not finished)."""
    path = Path(path)
    meta = json.loads((path / "meta.json").read_text())
    arrays = {name: np.load(path / f"x_{name}.npy", mmap_mode="r", allow_pickle=False) for name in meta["arrays"]}
    skipped = [Skip(str(i), str(r)) for i, r in json.loads((path / "skipped.json").read_text())]
    return FeatureStore(path, np.load(path / "kept.npy", allow_pickle=False), arrays, skipped, meta)


def build_store(
    key_config: dict,
    ids: Sequence[str],
    inputs: Sequence[Any],
    featurize: Callable[[list[str], list[Any]], Chunk],
    padded_axes: dict[str, tuple[int, ...]],
    finish: Callable[[int], dict],
    cache_dir: str | os.PathLike | None = None,
    chunk_rows: int = CHUNK_ROWS,
    progress: Callable[[int, int], None] | None = None,
    on_wait: Callable[[dict], None] | None = None,
) -> FeatureStore:
    """The store of `key_config`, built if it is not on disk yet (one process at a time).

    `featurize(ids, inputs)` returns a `Chunk` (kept positions relative to the chunk);
    `padded_axes[name]` are the axes of array `name` padded to a row's size; `finish(cap)` is
    called with the dataset's cap once every chunk is done and returns what `meta["extra"]`
    keeps (the fitted preprocessor). `progress(rows_done, rows_total)` follows the chunks.
    """
    path = store_dir(key_config, cache_dir)
    if (path / "meta.json").exists():
        return open_store(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locks.waiting_for(path.with_name(path.name + ".lock"), on_wait=on_wait):
        if (path / "meta.json").exists():  # built by the process we waited for
            return open_store(path)
        path.mkdir(exist_ok=True)
        n = len(ids)
        starts = list(range(0, n, chunk_rows)) or [0]
        for c, start in enumerate(starts):
            chunk_file = path / f"chunk_{c:05d}.npz"
            if _readable(chunk_file) is None:
                stop = min(n, start + chunk_rows)
                chunk = featurize(list(ids[start:stop]), list(inputs[start:stop]))
                _write_chunk(chunk_file, chunk, start)
            if progress is not None:
                progress(min(n, start + chunk_rows), n)
        return _assemble(path, key_config, len(starts), padded_axes, finish)


def _write_chunk(path: Path, chunk: Chunk, offset: int) -> None:
    buffer = io.BytesIO()
    np.savez(
        buffer,
        kept=np.asarray(chunk.kept, dtype=np.int64) + offset,
        skipped_ids=np.asarray([s.row_id for s in chunk.skipped], dtype=str),
        skipped_reasons=np.asarray([s.reason for s in chunk.skipped], dtype=str),
        **{f"x_{name}": np.asarray(array) for name, array in chunk.arrays.items()},
    )
    atomic_write_bytes(path, buffer.getvalue())


def _readable(path: Path):
    """The arrays of a chunk file, or None if it is missing or unreadable (then it is rebuilt)."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError):
        return None


def _assemble(path: Path, key_config: dict, n_chunks: int, padded_axes: dict, finish) -> FeatureStore:
    """Lay the chunks out in one padded `.npy` per array, then write `meta.json` (the marker)."""
    chunks = [path / f"chunk_{c:05d}.npz" for c in range(n_chunks)]
    shapes, dtypes, n_rows, cap = {}, {}, 0, 0
    kept, skipped = [], []
    for chunk_file in chunks:  # first pass: sizes only (one chunk in memory at a time)
        data = _readable(chunk_file)
        if data is None:
            raise RuntimeError(f"feature chunk {chunk_file} disappeared while the store was being assembled")
        kept.append(data["kept"])
        skipped += [[str(i), str(r)] for i, r in zip(data["skipped_ids"], data["skipped_reasons"])]
        n_rows += len(data["kept"])
        for key, array in data.items():
            if key.startswith("x_"):
                name = key[2:]
                shapes[name], dtypes[name] = array.shape[1:], array.dtype
                cap = max([cap] + [array.shape[axis] for axis in padded_axes.get(name, ())])
    if n_rows == 0:
        raise ValueError("no input could be featurized; see the skipped rows")
    outputs = {}
    for name, shape in shapes.items():
        full = tuple(cap if axis + 1 in padded_axes.get(name, ()) else size for axis, size in enumerate(shape))
        outputs[name] = np.lib.format.open_memmap(path / f".x_{name}.npy.tmp", mode="w+", dtype=dtypes[name], shape=(n_rows, *full))
    offset = 0
    for chunk_file in chunks:
        data = _readable(chunk_file)
        rows = len(data["kept"])
        for name, out in outputs.items():
            array = data[f"x_{name}"]
            out[(slice(offset, offset + rows), *[slice(0, s) for s in array.shape[1:]])] = array
        offset += rows
    for name, out in outputs.items():
        out.flush()
        del out
        os.replace(path / f".x_{name}.npy.tmp", path / f"x_{name}.npy")
    np.save(path / "kept.npy", np.concatenate(kept).astype(np.int64))
    atomic_write_json(path / "skipped.json", skipped)
    meta = {"config": json.loads(canonical_json(key_config)), "arrays": sorted(shapes), "n_rows": n_rows, "cap": cap,
            "extra": finish(cap)}
    atomic_write_json(path / "meta.json", meta)
    for chunk_file in chunks:
        chunk_file.unlink(missing_ok=True)
    return open_store(path)


def remove_store(path: str | os.PathLike) -> None:
    shutil.rmtree(path, ignore_errors=True)
