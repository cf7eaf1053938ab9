"""Model families by name: the built-in ones, those registered at run time, and those installed
packages declare under the `keras_chem.models` entry point group (`name = "package.module"`)."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from keras_chem.models.base import ModelFamily

_FAMILIES: dict[str, str] = {
    "cgcnn": "keras_chem.models.cgcnn",
    "crystograph": "keras_chem.models.crystograph",
    "dimenet": "keras_chem.models.dimenet",
    "elembert": "keras_chem.models.elembert",
    "roost": "keras_chem.models.roost",
    "schnet": "keras_chem.models.schnet",
}


# `kchem pretrain NAME` for a pretraining method known by its own name: (family, objective).
PRETRAINING_ALIASES: dict[str, tuple[str, str]] = {"crysatom": ("cgcnn", "crysatom")}


def register_model(name: str, module: str) -> None:
    """Register a model family: `module` (importable by the fold workers too) defines `FAMILY`."""
    _FAMILIES[name] = module


def _installed() -> dict[str, str]:
    return {point.name: point.value for point in entry_points(group="keras_chem.models")}


def model_names() -> list[str]:
    return sorted({**_installed(), **_FAMILIES})


def family_module(name: str) -> str:
    modules = {**_installed(), **_FAMILIES}
    if name not in modules:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(model_names())}")
    return modules[name]


def get_model_family(name: str) -> ModelFamily:
    return load_family(family_module(name))


def load_family(module: str) -> ModelFamily:
    family = importlib.import_module(module).FAMILY
    if not isinstance(family, ModelFamily):
        raise TypeError(f"{module}.FAMILY is not a keras_chem.models.base.ModelFamily")
    return family


def family_from_info(info: dict) -> ModelFamily:
    """The family of a run (`model_info.json`), by the module it was trained with."""
    return load_family(info.get("family_module") or family_module(info["model"]))
