"""Train and evaluate one fold of a run: what a fold worker process does.

Everything comes from the run directory and the memory-mapped feature store, so a fold can
run in a fresh process on any machine that sees both; everything it produces goes into
`fold_<k>/`, with `metrics.json` written last.
"""

from __future__ import annotations

import time

import numpy as np

from keras_chem.io import atomic_write_json
from keras_chem.training.run_files import RunDirectory

EMBEDDINGS_FILE = "test_embeddings.npy"


def seed_everything(seed: int) -> None:
    """Seeds Python, numpy and the backend. TensorFlow's op determinism is left off: it turns XLA
    off, and the XLA programs every model is compiled to already run deterministically on a CPU
    (the kill-and-resume test checks bit-equal summaries on both backends)."""
    import keras

    keras.utils.set_random_seed(seed)


def train_fold(run_dir, k: int, store_path, devices=None) -> dict:
    from keras_chem.featurizers.store import open_store
    from keras_chem.models.registry import family_from_info
    from keras_chem.training.compile_cache import enable_compile_cache
    from keras_chem.training.distribute import data_parallel
    from keras_chem.training.evaluate import evaluate
    from keras_chem.training.fit import fit_model, fit_per_task

    enable_compile_cache()
    run = RunDirectory(run_dir)
    config, info = run.config(), run.model_info()
    family = family_from_info(info)
    preprocessor = family.preprocessor_from_config(info["preprocessor"])
    task = run.task()
    rows = run.rows()
    split = run.splits()[k]
    arrays = open_store(store_path).arrays
    model_config = config.model_config
    label = f"fold {k}"

    seed_everything(config.seed + k)
    started = time.perf_counter()
    with data_parallel(devices, model_config["batch_size"]) as replicas:
        fit = fit_per_task if model_config["per_task"] and task.task == "classification" and task.n_outputs > 1 else fit_model
        model, history = fit(family, model_config, preprocessor, task, arrays, rows.targets, split, config.seed + k, label, replicas)
        train_seconds = time.perf_counter() - started
        outputs, embeddings = _test_outputs(model, family, arrays, preprocessor, split.test, replicas)
        predictions, extras = family.split_outputs(outputs, task)

    fold_dir = run.fold(k)
    fold_dir.mkdir(parents=True, exist_ok=True)
    _save_model_atomically(model, fold_dir / "model.keras")
    run.write_predictions(k, rows, split.test, predictions, task, extras)
    if embeddings is not None:
        np.save(fold_dir / EMBEDDINGS_FILE, embeddings.astype(np.float32))
    metrics = {
        **evaluate(task, rows.targets[split.test], predictions),
        "n_train": int(len(split.train)),
        "n_val": int(len(split.val)),
        "n_test": int(len(split.test)),
        **best_epoch(history, model_config["monitor"]),
    }
    atomic_write_json(fold_dir / "history.json", {**history, "train_seconds": round(train_seconds, 2), "replicas": replicas,
                                                  "resources": _resources()})
    (fold_dir / "failed.json").unlink(missing_ok=True)
    atomic_write_json(fold_dir / "metrics.json", metrics)
    return metrics


def best_epoch(history: dict, monitor: str) -> dict:
    """The epoch early stopping kept (best by `monitor`), its validation loss and, for classification, ROC-AUC."""
    from keras_chem.training.config import MONITORS

    ranked = np.asarray(history[monitor], dtype=float)
    best = int(np.nanargmax(ranked) if MONITORS[monitor] == "max" else np.nanargmin(ranked))
    kept = {"epochs_trained": len(ranked), "best_epoch": best + 1, "best_val_loss": float(history["val_loss"][best])}
    if "val_roc_auc" in history:
        kept["best_val_roc_auc"] = float(history["val_roc_auc"][best])
    return kept


def _test_outputs(model, family, arrays, preprocessor, rows, replicas):
    """The model's outputs on the test rows and their learned vectors (`family.embedding_layer`, for
    the run's t-SNE; None if it has none), both from one pass: one program per batch shape."""
    import keras

    from keras_chem.training.batching import predict

    embedder = family.embedder(model)
    if embedder is None:
        return predict(model, arrays, preprocessor, rows=rows, row_multiple=replicas), None
    both = keras.Model(model.inputs, [*model.outputs, *embedder.outputs])
    outputs, embeddings = predict(both, arrays, preprocessor, rows=rows, row_multiple=replicas)
    return outputs, embeddings


def _resources() -> dict:
    """This worker's pid, peak RSS and (on Linux) memory-map count: what a fold costs the machine."""
    import os
    import resource

    maps = None
    if os.path.exists("/proc/self/maps"):
        with open("/proc/self/maps") as handle:
            maps = sum(1 for _ in handle)
    return {"pid": os.getpid(), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), "memory_maps": maps}


def _save_model_atomically(model, path) -> None:
    import os

    tmp = path.with_name(f".{path.stem}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)
