"""Dataset cards: one TOML file per dataset in the package `keras_chem.datasets`.

A card says what a dataset is (input kind, targets, task, metric, default split) and
where its files come from (path under a data dir, sha256, download URL). Cards are
validated when read: an unknown or missing field is an error naming the card file.
"""

from __future__ import annotations

import difflib
import functools
import re
import tomllib
from dataclasses import dataclass, fields
from importlib import resources

INPUTS = ("smiles", "structure", "composition", "table")
FORMATS = ("csv", "matbench_json", "cegann_json", "extxyz", "json")
TASKS = ("classification", "regression", "multiclass", "none")
SPLITS = ("scaffold", "random", "matbench", "stratified", "none")
METRICS = ("roc_auc", "mae", "accuracy", "none")
TRANSFORMS = ("none", "gzip", "manual")
# Which file formats each input kind may come in.
_FORMATS_FOR_INPUT = {
    "smiles": ("csv",),
    "composition": ("csv",),
    "structure": ("matbench_json", "cegann_json", "extxyz"),
    "table": ("json",),
}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class CardError(ValueError):
    """A dataset card is malformed."""


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset.

    `sha256` is the hash of the file as stored under a data dir; `url_sha256` the hash of
    the bytes at `url`. `transform` says how the stored file is made from those bytes:
    "none" (saved as downloaded), "gzip" (gzip of the downloaded bytes; a file is also
    accepted when its decompressed bytes hash to `url_sha256`) or "manual" (a format
    conversion the loader cannot redo; `manual` says how the file is made).
    """

    path: str
    sha256: str
    size: int
    url: str
    url_sha256: str
    transform: str
    manual: str = ""
    note: str = ""


@dataclass(frozen=True)
class DatasetCard:
    """The parsed contents of `datasets/<name>.toml` (see the module docstring)."""

    name: str
    description: str
    input: str
    format: str
    task: str
    targets: tuple[str, ...]
    input_column: str
    id_column: str
    metric: str
    split: str
    license: str
    source: str
    citation: str
    files: tuple[FileSpec, ...]
    matbench_task: str = ""
    deduplicate: bool = False
    units: str = ""
    card_file: str = ""

    def file(self, path: str | None = None) -> FileSpec:
        """The file spec with this relative path (or file name); the first file if None."""
        if path is None:
            return self.files[0]
        for spec in self.files:
            if spec.path == path or spec.path.rsplit("/", 1)[-1] == path:
                return spec
        known = ", ".join(f.path for f in self.files)
        raise KeyError(f"dataset {self.name!r} has no file {path!r} (files: {known})")


_CARD_REQUIRED = {
    "name": str, "description": str, "input": str, "format": str, "task": str,
    "targets": list, "input_column": str, "id_column": str, "metric": str, "split": str,
    "license": str, "source": str, "citation": str, "files": list,
}
_CARD_OPTIONAL = {"matbench_task": str, "deduplicate": bool, "units": str}
_FILE_REQUIRED = {"path": str, "sha256": str, "size": int, "url": str, "url_sha256": str, "transform": str}
_FILE_OPTIONAL = {"manual": str, "note": str}


def _check_fields(raw: dict, required: dict, optional: dict, where: str) -> None:
    unknown = sorted(set(raw) - set(required) - set(optional))
    if unknown:
        raise CardError(f"{where}: unknown field(s) {unknown}; allowed: {sorted({**required, **optional})}")
    missing = sorted(set(required) - set(raw))
    if missing:
        raise CardError(f"{where}: missing field(s) {missing}")
    for key, value in raw.items():
        want = {**required, **optional}[key]
        # bool is a subclass of int: a size of `true` is still wrong.
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise CardError(f"{where}: field {key!r} must be {want.__name__}, got {type(value).__name__}")


def _choice(value: str, allowed: tuple[str, ...], key: str, where: str) -> None:
    if value not in allowed:
        raise CardError(f"{where}: {key} = {value!r} is not one of {list(allowed)}")


def _parse_file(raw, where: str) -> FileSpec:
    if not isinstance(raw, dict):
        raise CardError(f"{where}: each [[files]] entry must be a table")
    _check_fields(raw, _FILE_REQUIRED, _FILE_OPTIONAL, where)
    spec = FileSpec(**raw)
    _choice(spec.transform, TRANSFORMS, "transform", where)
    if not spec.path or spec.path.startswith("/") or ".." in spec.path.split("/"):
        raise CardError(f"{where}: path {spec.path!r} must be relative to the data dir")
    if not _SHA256.match(spec.sha256):
        raise CardError(f"{where}: sha256 of {spec.path} must be 64 lowercase hex digits")
    if spec.url_sha256 and not _SHA256.match(spec.url_sha256):
        raise CardError(f"{where}: url_sha256 of {spec.path} must be 64 lowercase hex digits or empty")
    if spec.transform == "manual":
        if not spec.manual:
            raise CardError(f"{where}: {spec.path} has transform 'manual' but no 'manual' text")
    elif not spec.url or not spec.url_sha256:
        raise CardError(f"{where}: {spec.path} needs url and url_sha256 unless transform = 'manual'")
    if spec.size < 0:
        raise CardError(f"{where}: size of {spec.path} is negative")
    return spec


def parse_card(text: str, card_file: str = "<card>") -> DatasetCard:
    """Parse and validate one card's TOML text; errors name `card_file`."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise CardError(f"{card_file}: invalid TOML: {err}") from None
    _check_fields(raw, _CARD_REQUIRED, _CARD_OPTIONAL, card_file)
    if not all(isinstance(t, str) for t in raw["targets"]):
        raise CardError(f"{card_file}: targets must be a list of strings")
    if not raw["files"]:
        raise CardError(f"{card_file}: needs at least one [[files]] entry")
    files = tuple(_parse_file(f, f"{card_file} [[files]]") for f in raw["files"])
    card = DatasetCard(**{**raw, "targets": tuple(raw["targets"]), "files": files, "card_file": card_file})
    _choice(card.input, INPUTS, "input", card_file)
    _choice(card.format, FORMATS, "format", card_file)
    _choice(card.task, TASKS, "task", card_file)
    _choice(card.split, SPLITS, "split", card_file)
    _choice(card.metric, METRICS, "metric", card_file)
    if card.format not in _FORMATS_FOR_INPUT[card.input]:
        raise CardError(f"{card_file}: format {card.format!r} cannot hold input {card.input!r}")
    if card.input == "table":
        if card.task != "none" or card.targets:
            raise CardError(f"{card_file}: a table card has task = 'none' and no targets")
    else:
        if card.task == "none" or not card.targets or not card.input_column:
            raise CardError(f"{card_file}: a dataset card needs a task, targets and input_column")
        if card.task == "multiclass" and len(card.targets) != 1:
            raise CardError(f"{card_file}: a multiclass card has exactly one target")
    if len(set(card.targets)) != len(card.targets):
        raise CardError(f"{card_file}: duplicate target names")
    return card


@functools.lru_cache(maxsize=1)
def _all_cards() -> dict[str, DatasetCard]:
    cards: dict[str, DatasetCard] = {}
    for entry in resources.files("keras_chem.datasets").iterdir():
        if not entry.name.endswith(".toml"):
            continue
        card = parse_card(entry.read_text(encoding="utf-8"), card_file=str(entry))
        stem = entry.name[: -len(".toml")]
        if card.name != stem:
            raise CardError(f"{entry}: name = {card.name!r} must equal the file name {stem!r}")
        cards[card.name] = card
    return cards


def list_cards() -> list[DatasetCard]:
    """All dataset cards, sorted by name."""
    cards = _all_cards()
    return [cards[name] for name in sorted(cards)]


def get_card(name: str) -> DatasetCard:
    """The card called `name`; an unknown name raises KeyError listing close matches."""
    cards = _all_cards()
    if name in cards:
        return cards[name]
    close = difflib.get_close_matches(name, list(cards), n=5, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(sorted(cards))}"
    raise KeyError(f"unknown dataset {name!r}; {hint}")


def card_field_names() -> list[str]:
    """The TOML field names a card may hold (for docs and the CLI)."""
    return [f.name for f in fields(DatasetCard) if f.name != "card_file"]
