"""TensorFlow SavedModel export of a run's fold models (averaged), from either backend."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from keras_chem.models.saving import load_model

EXPORT_INFO = "keras_chem.json"


class ExportExists(FileExistsError):
    """The export directory is not empty and holds something other than a previous export."""


def fold_model_paths(run_dir: str | Path) -> list[Path]:
    paths = sorted(Path(run_dir).glob("fold_*/model.keras"), key=lambda p: int(p.parent.name.split("_")[1]))
    if not paths:
        raise FileNotFoundError(f"no fold_<k>/model.keras in {run_dir}; is it a finished `kchem train` run?")
    return paths


def ensemble(run_dir: str | Path):
    """One Keras model that averages the outputs of every fold model of a run."""
    import keras

    models = [load_model(p) for p in fold_model_paths(run_dir)]
    if len(models) == 1:
        return models[0]
    for i, model in enumerate(models):
        model.name = f"fold_{i}"
    inputs = {t.name: keras.Input(t.shape[1:], dtype=t.dtype, name=t.name) for t in models[0].inputs}
    outputs = keras.layers.Average(name="fold_mean")([m(inputs) for m in models])
    return keras.Model(inputs, outputs, name="ensemble")


def is_export(path: Path) -> bool:
    return (path / EXPORT_INFO).is_file() and (path / "saved_model.pb").is_file()


def export_saved_model(run_dir: str | Path, out: str | Path, overwrite: bool = False) -> Path:
    """Write the fold-averaged model as a TensorFlow SavedModel (`serve` endpoint) whose
    inputs have the run's static caps; `keras_chem.json` beside it names inputs and task.

    An existing `out` is replaced only if it is empty or a previous export, or with `overwrite`."""
    import keras

    from keras_chem.models.registry import family_from_info
    from keras_chem.training.run_files import RunDirectory

    out = Path(out)
    if out.exists() and not overwrite and any(out.iterdir()) and not is_export(out):
        raise ExportExists(f"{out} exists and is not a keras-chem export; choose another --out or pass --overwrite")
    info = RunDirectory(run_dir).model_info()
    preprocessor = family_from_info(info).preprocessor_from_config(info["preprocessor"])
    signature = preprocessor.input_signature()
    specs = {name: keras.InputSpec(shape=(None, *shape), dtype=dtype, name=name) for name, (shape, dtype) in signature.items()}
    model = ensemble(run_dir)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.export(str(tmp), format="tf_saved_model", input_signature=[specs], verbose=False)
    (tmp / EXPORT_INFO).write_text(
        json.dumps({"inputs": {k: {"shape": [None, *v[0]], "dtype": v[1]} for k, v in signature.items()}, "task": info["task"]}, indent=2)
        + "\n"
    )
    if out.is_dir():
        shutil.rmtree(out)
    elif out.exists():
        out.unlink()
    tmp.rename(out)
    return out
