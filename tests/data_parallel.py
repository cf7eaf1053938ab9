"""Shared check for every model family: training over 2 devices gives the weights 1 device gives.

`assert_two_devices_match(module, dataset, limit, options)` (the family's module, which defines
`FAMILY`) starts one process that sees two CPU
devices (JAX: `--xla_force_host_platform_device_count=2`; TensorFlow: two logical CPUs), trains
the family a few steps through the runner's own `fit_model`, once on one device and once
data-parallel on two with the same global batches, and compares every weight. A new family (and
every layer and loss it brings) calls it from its tests with dropout off.

The steps use SGD, whose updates are proportional to the gradients: Adam turns a gradient that is
zero up to rounding (a bias in front of a batch normalisation) into a full step of either sign,
so its weights would differ by the learning rate where nothing is wrong.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

TOLERANCE = 2e-5  # largest |w2 - w1|, relative to max(1, |w1|)


def assert_two_devices_match(module: str, dataset: str, limit: int, options: dict, tolerance: float = TOLERANCE) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path]),
           "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2".strip()}
    request = json.dumps({"module": module, "dataset": dataset, "limit": limit, "options": options})
    result = subprocess.run([sys.executable, "-c", f"import data_parallel; data_parallel.main({request!r})"],
                            env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2, report
    assert report["steps"] >= 3, report
    assert report["max_difference"] <= tolerance, report
    assert report["weights_moved"] > 1e-4, report  # training really happened
    return report


def main(request: str) -> None:
    from keras_chem.training.distribute import prepare_devices
    from keras_chem.training.worker import keep_tensorflow_out_under_jax

    prepare_devices(2)
    keep_tensorflow_out_under_jax()  # as in a fold worker
    from keras_chem.data.loaders import load_dataset
    from keras_chem.data.splits import Split
    from keras_chem.models.base import TaskInfo
    from keras_chem.models.registry import load_family
    from keras_chem.training.config import resolve_model_config
    from keras_chem.training.distribute import data_parallel
    from keras_chem.training.fit import fit_model
    from keras_chem.training.fold import seed_everything

    request = json.loads(request)
    family = load_family(request["module"])
    config = resolve_model_config(family, {"epochs": 1, "patience": 5, "optimizer": "sgd", "learning_rate": 1e-2,
                                           **request["options"]})
    data = load_dataset(request["dataset"], limit=request["limit"])
    preprocessor = family.preprocessor(config)
    features = preprocessor.fit_transform(data.ids, data.inputs, data.input_kind)
    targets = data.targets[features.kept]
    n = len(targets)
    n_train = (n - 8) // config["batch_size"] * config["batch_size"]  # full batches: one training shape per bucket
    split = Split(train=np.arange(n_train), val=np.arange(n - 8, n), test=np.arange(n - 8, n))
    task = TaskInfo(data.task, data.target_names, data.class_names)

    weights, replicas = {}, {}
    for devices in (1, 2):
        seed_everything(0)
        with data_parallel(devices, config["batch_size"]) as replicas[devices]:
            model, _ = fit_model(family, config, preprocessor, task, features.arrays, targets, split, 0, f"{devices} devices",
                                 replicas[devices])
            weights[devices] = [np.asarray(w) for w in model.get_weights()]
    seed_everything(0)
    initial = [np.asarray(w) for w in family.build(config, preprocessor, task, None).get_weights()]
    difference = max(float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(a)))) for a, b in zip(weights[1], weights[2]))
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(weights[1], initial) if a.shape == b.shape)
    steps = -(-len(split.train) // config["batch_size"])
    print(json.dumps({"replicas": replicas[2], "steps": steps, "max_difference": difference, "weights_moved": moved}))
