"""Find a dataset file offline, check its sha256, and download it only when missing.

Search order: every dir in `$KCHEM_DATA_DIR` (os.pathsep-separated), then the cache
(`$KCHEM_CACHE_DIR`, default `~/.cache/keras_chem`). A file that is found but does not
match its card is an error, never silently replaced. Downloads go into the cache,
are checked against the card's `url_sha256` and written atomically.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.request
import zlib
from pathlib import Path

from keras_chem.data.registry import DatasetCard, FileSpec
from keras_chem.io import atomic_write_bytes

DOWNLOAD_TIMEOUT = 30.0
_CHUNK = 1 << 20
# (resolved path, size, mtime_ns, expected sha256) of files already verified in this process.
_VERIFIED: set[tuple[str, int, int, str]] = set()


class DataFileError(RuntimeError):
    """A dataset file is missing, corrupt, or could not be downloaded."""


def cache_dir() -> Path:
    """Where downloads go: `$KCHEM_CACHE_DIR`, else `~/.cache/keras_chem`."""
    override = os.environ.get("KCHEM_CACHE_DIR")
    return Path(override).expanduser() if override else Path.home() / ".cache" / "keras_chem"


def data_dirs() -> list[Path]:
    """Dirs searched for dataset files, in order: `$KCHEM_DATA_DIR` entries, then the cache."""
    dirs = [Path(p).expanduser() for p in os.environ.get("KCHEM_DATA_DIR", "").split(os.pathsep) if p]
    dirs.append(cache_dir())
    return dirs


def _sha256_file(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _sha256_gunzip(path: Path) -> str | None:
    """sha256 of the decompressed bytes of a gzip file, None if it is not valid gzip."""
    digest = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except (OSError, EOFError, zlib.error):
        return None
    return digest.hexdigest()


def verify(path: Path, spec: FileSpec) -> None:
    """Raise DataFileError unless `path` holds the bytes the card describes.

    Accepted: the stored sha256; for transform "none" also the upstream bytes
    (`url_sha256`); for transform "gzip" any gzip whose content hashes to `url_sha256`
    (so a re-compressed download with another gzip header is fine).
    """
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, spec.sha256)
    if key in _VERIFIED:
        return
    actual = _sha256_file(path)
    ok = actual == spec.sha256 or (spec.transform == "none" and actual == spec.url_sha256)
    if not ok and spec.transform == "gzip":
        ok = _sha256_gunzip(path) == spec.url_sha256
    if not ok:
        expected = spec.sha256
        if spec.transform == "gzip":
            expected += f" (or gzip content {spec.url_sha256})"
        elif spec.transform == "none" and spec.url_sha256 != spec.sha256:
            expected += f" (or upstream {spec.url_sha256})"
        raise DataFileError(
            f"{path}: sha256 mismatch for {spec.path}: expected {expected}, got {actual}; "
            "the file is corrupt or a different version: delete or replace it"
        )
    _VERIFIED.add(key)


def _download(url: str, timeout: float = DOWNLOAD_TIMEOUT) -> bytes:
    """Fetch `url` (tests monkeypatch this to stay offline)."""
    request = urllib.request.Request(url, headers={"User-Agent": "keras-chem"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.read()


def _where() -> str:
    env = os.environ.get("KCHEM_DATA_DIR")
    places = [f"$KCHEM_DATA_DIR={env}"] if env else []
    places.append(str(cache_dir()))
    return " or ".join(places)


def _target_dir() -> Path:
    """Where we tell the user to put a file: the first data dir."""
    return data_dirs()[0]


def _missing_message(spec: FileSpec, why: str = "") -> str:
    dest = _target_dir() / spec.path
    head = f"{spec.path} not found in {_where()}"
    if why:
        head += f" ({why})"
    if spec.transform == "manual":
        how = " ".join(spec.manual.split())
        return f"{head}; it cannot be downloaded ready-made (upstream: {spec.url}): {how} Save it as {dest}"
    if spec.transform == "gzip":
        return f"{head}; download {spec.url}, gzip it and save it as {dest}"
    return f"{head}; download {spec.url} and save it as {dest}"


def _fetch(spec: FileSpec) -> Path:
    try:
        data = _download(spec.url)
    except Exception as err:  # URLError, HTTPError, timeouts, SSL errors: all mean "not fetched"
        raise DataFileError(_missing_message(spec, f"download failed: {err}")) from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != spec.url_sha256:
        raise DataFileError(
            f"{spec.url}: downloaded bytes have sha256 {actual}, expected {spec.url_sha256}; "
            f"not saved. {_missing_message(spec)}"
        )
    if spec.transform == "gzip":
        data = gzip.compress(data, compresslevel=9, mtime=0)
    path = cache_dir() / spec.path
    atomic_write_bytes(path, data)
    verify(path, spec)
    return path


def _spec(card: DatasetCard, file: FileSpec | str | None) -> FileSpec:
    return file if isinstance(file, FileSpec) else card.file(file)


def locate(card: DatasetCard, file: FileSpec | str | None = None, download: bool = True) -> Path:
    """Path of a verified copy of one file of `card` (default: its first file).

    Raises DataFileError when the file found is corrupt, or when it is missing and
    cannot be downloaded (offline, manual format, `download=False`); the message says
    which file to put where.
    """
    spec = _spec(card, file)
    for directory in data_dirs():
        path = directory / spec.path
        if path.is_file():
            verify(path, spec)
            return path
    if not download:
        raise DataFileError(_missing_message(spec, "downloads disabled"))
    if spec.transform == "manual":
        raise DataFileError(_missing_message(spec))
    return _fetch(spec)


def is_available(card: DatasetCard) -> bool:
    """True when every file of `card` is present and verified (never downloads)."""
    try:
        for spec in card.files:
            locate(card, spec, download=False)
    except DataFileError:
        return False
    return True
