"""Model families by name: a new model registers here and the CLI picks it up."""

from __future__ import annotations

import importlib

from keras_chem.models.base import ModelFamily

_FAMILIES: dict[str, str] = {
    "crystograph": "keras_chem.models.crystograph",
    "elembert": "keras_chem.models.elembert",
}


def register_model(name: str, module: str) -> None:
    """Register a model family: `module` must define `FAMILY` (a `ModelFamily`)."""
    _FAMILIES[name] = module


def model_names() -> list[str]:
    return sorted(_FAMILIES)


def get_model_family(name: str) -> ModelFamily:
    if name not in _FAMILIES:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(model_names())}")
    return importlib.import_module(_FAMILIES[name]).FAMILY
