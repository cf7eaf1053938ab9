"""`.keras` loading and TensorFlow SavedModel export of a run's fold models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def load_model(path: str | Path):
    """Load a keras-chem `.keras` file (safe mode: no pickled or lambda code is executed)."""
    import keras
    import keras_hub  # noqa: F401  registers the keras-hub layers the encoders use

    import keras_chem.layers  # noqa: F401  registers every keras-chem layer
    import keras_chem.losses.masked  # noqa: F401

    return keras.saving.load_model(Path(path), compile=False, safe_mode=True)


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


def export_saved_model(run_dir: str | Path, out: str | Path) -> Path:
    """Write the fold-averaged model as a TensorFlow SavedModel (`serve` endpoint) whose
    inputs have the run's static caps; `keras_chem.json` beside it names inputs and task."""
    import keras

    from keras_chem.models.registry import get_model_family

    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    info = json.loads((Path(run_dir) / "model_info.json").read_text())
    preprocessor = get_model_family(info["model"]).preprocessor_from_config(info["preprocessor"])
    signature = preprocessor.input_signature()
    specs = {name: keras.InputSpec(shape=(None, *shape), dtype=dtype, name=name) for name, (shape, dtype) in signature.items()}
    model = ensemble(run_dir)
    model.export(str(tmp), format="tf_saved_model", input_signature=[specs], verbose=False)
    (tmp / "keras_chem.json").write_text(
        json.dumps({"inputs": {k: {"shape": [None, *v[0]], "dtype": v[1]} for k, v in signature.items()}, "task": info["task"]}, indent=2)
        + "\n"
    )
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out
