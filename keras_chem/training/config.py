"""The resolved configuration of one training run: defaults < TOML file < command-line flags.

Model options come from the family (`FAMILY.options`); the training options every family shares
(optimizer, learning rate and its schedule, weight decay, batch size, epochs, patience and what it
monitors, one model per task, a pretrained init) are defined here once, with a family's own defaults for
them in `FAMILY.training_defaults`. Both end up in one flat `model_config`.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

# Keys that may change between an interrupted run and its resumption.
RESUME_IRRELEVANT_KEYS = {"out", "backend"}

SPLIT_METHODS = ("random", "stratified", "scaffold", "matbench")
OPTIMIZERS = ("adam", "adamw", "sgd")
LR_SCHEDULES = ("constant", "cosine", "step")
MONITORS = {"val_loss": "min", "val_roc_auc": "max"}  # what early stopping ranks epochs by, and which way is better

TRAINING_DEFAULTS = {
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "beta_2": 0.999,
    "weight_decay": 0.0,
    "lr_schedule": "constant",
    "batch_size": 32,
    "epochs": 100,
    "patience": 10,
    "monitor": "val_loss",
    "per_task": False,
    "init": None,
}


@dataclass
class RunConfig:
    model: str
    dataset: str
    out: str
    split: str | None = None
    folds: int | None = None
    replicates: int | None = None
    split_sizes: tuple[float, float, float] = (0.8, 0.1, 0.1)
    splits_file: str | None = None
    seed: int = 0
    limit: int | None = None
    backend: str | None = None
    model_config: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["split_sizes"] = list(self.split_sizes)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        return cls(**{**data, "split_sizes": tuple(data["split_sizes"])})


RUN_KEYS = {f.name for f in fields(RunConfig)} - {"model_config"}


def default_config(family) -> dict:
    """Every option of `family` with its default: shared training options, then model options."""
    clash = sorted(set(family.options) & set(TRAINING_DEFAULTS))
    if clash:
        raise ValueError(f"model {family.name!r} redefines the shared training option(s) {', '.join(clash)}")
    unknown = sorted(set(family.training_defaults) - set(TRAINING_DEFAULTS))
    if unknown:
        raise ValueError(f"model {family.name!r} sets defaults for unknown training option(s) {', '.join(unknown)}")
    return {**TRAINING_DEFAULTS, **family.training_defaults, **family.options}


def read_toml(path: str | Path) -> dict:
    """A TOML run file: run options at the top level, model options there too or under `[model]`."""
    with open(path, "rb") as handle:
        data = tomllib.load(handle)
    flat = {k.replace("-", "_"): v for k, v in data.items() if k != "model"}
    flat.update({k.replace("-", "_"): v for k, v in data.get("model", {}).items()})
    return flat


def resolve(model: str, file_options: dict, cli_options: dict) -> RunConfig:
    """Merge the defaults of `model`, the TOML file and the flags (flags win); unknown keys are errors."""
    from keras_chem.models.registry import get_model_family

    family = get_model_family(model)
    merged = {**file_options, **{k: v for k, v in cli_options.items() if v is not None}}
    run_options = {k: v for k, v in merged.items() if k in RUN_KEYS}
    model_config = resolve_model_config(family, {k: v for k, v in merged.items() if k not in RUN_KEYS})
    if "dataset" not in run_options:
        raise ValueError("no dataset given: pass --dataset NAME (see `kchem datasets list`)")
    if run_options.get("split") and run_options["split"] not in SPLIT_METHODS:
        raise ValueError(f"unknown split {run_options['split']!r}; choose one of {', '.join(SPLIT_METHODS)}")
    if run_options.get("folds") and run_options.get("replicates"):
        raise ValueError("--folds and --replicates exclude each other")
    if "split_sizes" in run_options:
        sizes = tuple(float(s) for s in run_options["split_sizes"])
        if len(sizes) != 3 or abs(sum(sizes) - 1.0) > 1e-6 or min(sizes) < 0:
            raise ValueError(f"--split-sizes needs three fractions that sum to 1, got {sizes}")
        run_options["split_sizes"] = sizes
    run_options.setdefault("out", default_out(model, run_options["dataset"]))
    return RunConfig(model=model, model_config=model_config, **run_options)


def resolve_model_config(family, options: dict) -> dict:
    """The family's defaults updated by `options` (typed like the defaults); unknown keys are errors."""
    defaults = default_config(family)
    unknown = sorted(k for k, v in options.items() if k not in defaults and v is not None)
    if unknown:
        raise ValueError(
            f"unknown option(s) for model {family.name!r}: {', '.join(unknown)}; model options are: {', '.join(sorted(defaults))}"
        )
    config = {**defaults, **{k: _coerce(v, defaults[k]) for k, v in options.items() if v is not None}}
    check_training_options(config)
    family.check_config(config)
    return config


def check_training_options(config: dict) -> None:
    if config["optimizer"] not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {config['optimizer']!r}; choose one of {', '.join(OPTIMIZERS)}")
    if config["lr_schedule"] not in LR_SCHEDULES:
        raise ValueError(f"unknown lr_schedule {config['lr_schedule']!r}; choose one of {', '.join(LR_SCHEDULES)}")
    if config["monitor"] not in MONITORS:
        raise ValueError(f"unknown monitor {config['monitor']!r}; choose one of {', '.join(MONITORS)}")
    if not 0.0 <= float(config["beta_2"]) < 1.0:
        raise ValueError(f"beta_2 must be in [0, 1), got {config['beta_2']}")
    for key in ("batch_size", "epochs"):
        if int(config[key]) < 1:
            raise ValueError(f"{key} must be at least 1, got {config[key]}")


def default_out(model: str, dataset: str) -> str:
    return str(Path("runs") / f"{model}-{dataset}")


def _coerce(value, default):
    """Flags arrive as strings; give them the type of the model default."""
    if not isinstance(value, str) or isinstance(default, str):
        return value
    if isinstance(default, bool):
        if value.lower() in {"1", "true", "yes", "on"}:
            return True
        if value.lower() in {"0", "false", "no", "off"}:
            return False
        raise ValueError(f"expected true/false, got {value!r}")
    if isinstance(default, int):
        return int(value)
    if isinstance(default, float):
        return float(value)
    if default is None:
        for cast in (int, float):
            try:
                return cast(value)
            except ValueError:
                pass
        return None if value.lower() in {"none", "null"} else value
    return value
