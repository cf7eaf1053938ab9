"""What the layout speed benches (`roost_speed.py`, `cgcnn_speed.py`, `geometry_speed.py`) share: the rows in whole batches,
our padded model against the same model on the original's flat layout timed in one process, and one
child process per backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def whole_batches(model_name: str, dataset: str, n_rows: int, batch: int, options: dict | None = None) -> dict:
    """The first `n_rows` of `dataset` featurized for `model_name` at its defaults (or `options`), cut to whole batches."""
    from keras_chem.data.loaders import load_dataset
    from keras_chem.models.base import TaskInfo
    from keras_chem.models.registry import get_model_family
    from keras_chem.training.config import resolve_model_config
    from keras_chem.training.fit import target_stats

    family = get_model_family(model_name)
    config = resolve_model_config(family, options or {})
    data = load_dataset(dataset, limit=n_rows)
    preprocessor = family.preprocessor(config)
    features = preprocessor.fit_transform(data.ids, data.inputs, data.input_kind)
    n = len(features.kept) // batch * batch  # whole batches: the reference's crystal axis is fixed at `batch`
    y = data.targets[features.kept][:n]
    return {"family": family, "config": config, "preprocessor": preprocessor, "n": n, "y": y, "stats": target_stats(y),
            "arrays": {k: v[:n] for k, v in features.arrays.items()}, "task": TaskInfo("regression", data.target_names)}


def time_both(ours, reference, flat: list, setup: dict, backend: str, batch: int, epochs: int) -> dict:
    """Compile both as the runner does, train one untimed epoch (every shape compiles), then time `epochs`
    on the same rows: ours from `batching.batches`, the reference from its `flat` (inputs, targets) batches."""
    import keras

    from keras_chem.training.batching import batches, for_backend
    from keras_chem.training.fit import compile_model

    family, config, task, stats = setup["family"], setup["config"], setup["task"], setup["stats"]

    class FlatBatches(keras.utils.PyDataset):
        def __len__(self):
            return len(flat)

        def __getitem__(self, i):
            return flat[i]

    train_ours = batches(setup["arrays"], setup["y"], setup["preprocessor"], batch, seed=0)
    compile_model(ours, family.loss(task, stats, config), config, steps_per_epoch=len(train_ours))
    compile_model(reference, family.loss(task, stats, config), config, steps_per_epoch=len(flat))
    reference_xla = backend != "tensorflow"
    if not reference_xla:
        reference.jit_compile = False  # segment counts from a dynamic shape: XLA cannot compile them

    return {"ours_seconds": seconds_per_epoch(ours, train_ours, epochs),
            "reference_seconds": seconds_per_epoch(reference, for_backend(FlatBatches()), epochs),
            "reference_xla": reference_xla, "train_input": train_ours}


def seconds_per_epoch(model, data, epochs: int) -> float:
    """One untimed epoch (it compiles every shape), then the mean time of `epochs` more."""
    model.fit(data, epochs=1, verbose=0, shuffle=False)
    started = time.perf_counter()
    model.fit(data, epochs=epochs, verbose=0, shuffle=False)
    return (time.perf_counter() - started) / epochs


def each_backend(script: str, args, extra: list[str]) -> list[dict]:
    """Run `script --child BACKEND ...` once per backend of `args.backends`; their JSON results."""
    results = []
    for backend in args.backends:
        command = [sys.executable, script, "--child", backend, "--rows", str(args.rows), "--epochs", str(args.epochs), *extra]
        result = subprocess.run(command, env={**os.environ, "KERAS_BACKEND": backend, "KCHEM_PROGRESS": "0"}, capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"{backend} failed:\n{result.stderr[-3000:]}")
        results.append(json.loads(result.stdout.strip().splitlines()[-1]))
        print(results[-1], flush=True)
    return results


def max_difference(ours, reference, arrays: dict, rows: np.ndarray, flat_inputs: dict) -> float:
    """Largest |ours − reference| over the outputs of one batch (target units)."""
    padded_out = np.asarray(ours.predict({k: v[rows] for k, v in arrays.items()}, verbose=0))
    return float(np.max(np.abs(padded_out - np.asarray(reference.predict_on_batch(flat_inputs)))))
