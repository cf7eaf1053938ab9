"""Build, compile and fit one model on one split: the step the runner repeats for every fold."""

from __future__ import annotations

import math

import numpy as np

from keras_chem.models.base import TaskInfo


class FoldDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


def compile_model(model, loss, model_config: dict, steps_per_epoch: int = 1, replicas: int = 1) -> None:
    """`loss` and the configured optimizer (`optimizer` "adam", "adamw" or "sgd" with momentum 0.9, `learning_rate`,
    `beta_2` for both Adams, `weight_decay`, `lr_schedule`), compiled with XLA on every backend: Keras leaves XLA off for
    TensorFlow on a CPU, where it trains the bucketed batches about 30% faster. The exception is
    TensorFlow over several devices: Keras compiles the whole `MirroredStrategy` step, which XLA
    cannot place on several devices, so those steps run as plain graphs."""
    import keras

    rate = learning_rate_schedule(model_config, steps_per_epoch)
    if model_config["optimizer"] == "adam":
        optimizer = keras.optimizers.Adam(rate, beta_2=model_config["beta_2"])
    elif model_config["optimizer"] == "sgd":
        optimizer = keras.optimizers.SGD(rate, momentum=0.9)
    else:
        optimizer = keras.optimizers.AdamW(rate, weight_decay=model_config["weight_decay"], beta_2=model_config["beta_2"])
    mirrored = replicas > 1 and keras.backend.backend() == "tensorflow"
    model.compile(optimizer=optimizer, loss=loss, jit_compile=not mirrored)


def learning_rate_schedule(model_config: dict, steps_per_epoch: int):
    """`lr_schedule`: "constant"; "cosine" (decay to 0 over `epochs`); or "step" (×0.1 after a third of
    `epochs`, the original CrysToGraph's MultiStepLR)."""
    import keras

    rate, kind = model_config["learning_rate"], model_config["lr_schedule"]
    total = max(1, model_config["epochs"] * steps_per_epoch)
    if kind == "cosine":
        return keras.optimizers.schedules.CosineDecay(rate, decay_steps=total)
    if kind == "step":
        boundary = max(1, model_config["epochs"] // 3) * steps_per_epoch
        return keras.optimizers.schedules.PiecewiseConstantDecay([boundary], [rate, rate * 0.1])
    return rate


def target_stats(y: np.ndarray) -> dict:
    mean = np.nanmean(y, axis=0)
    std = np.nanstd(y, axis=0)
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    return {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}


def _divergence_guard(label: str):
    import keras

    class DivergenceGuard(keras.callbacks.Callback):
        """Stops a fold whose loss is no longer finite, naming it and the epoch."""

        def on_epoch_end(self, epoch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(loss):
                raise FoldDiverged(
                    f"{label} diverged: the training loss is {loss} after epoch {epoch + 1}; "
                    "try a lower --learning-rate or --lr-schedule cosine"
                )

    return DivergenceGuard()


def _epoch_timer():
    import time

    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Wall seconds of every epoch into the history (`epoch_seconds`); the first includes compilation."""

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            if logs is not None:
                logs["epoch_seconds"] = round(time.perf_counter() - self.started, 3)

    return EpochTimer()


def validation_scores(family, task: TaskInfo, targets: np.ndarray, monitor: str):
    """For classification, a function of the model's validation outputs giving `val_roc_auc` (the mean per-task
    ROC-AUC of the validation rows, as the test rows are scored); None for other tasks."""
    if task.task != "classification":
        return None
    from keras_chem.metrics.classification import binary_metrics

    def scores(outputs) -> dict:
        predictions, _ = family.split_outputs(outputs, task)
        roc_auc = binary_metrics(targets, predictions, task.target_names)["roc_auc"]
        if monitor == "val_roc_auc" and not math.isfinite(roc_auc):
            raise ValueError("--monitor val_roc_auc: no task has both classes among the validation rows, so their "
                             "ROC-AUC cannot rank the epochs; use --monitor val_loss or a larger validation share")
        return {"val_roc_auc": roc_auc}

    return scores


def fit_model(family, model_config: dict, preprocessor, task: TaskInfo, arrays, y, split, seed: int, label: str,
              replicas: int = 1):
    """Build, compile and fit one model on `split` (positions into `arrays` and `y`); early stopping on
    `monitor` (the validation loss, or for classification the validation ROC-AUC) restores the best weights.
    Returns `(model, history)`. Under data-parallel training (`distribute.data_parallel`, entered by the
    caller) batches are padded to a multiple of `replicas`."""
    import keras

    from keras_chem.training.batching import batches, epoch_end
    from keras_chem.training.config import MONITORS
    from keras_chem.training.console import EpochProgress
    from keras_chem.training.validation import validation_loss

    if len(split.val) == 0:
        raise ValueError(
            f"{label}: the validation part is empty ({len(split.train)} training rows); "
            "use more rows or a larger validation share in --split-sizes"
        )
    stats = target_stats(y[split.train]) if task.task == "regression" else None
    model = family.build(model_config, preprocessor, task, stats)
    if model_config["init"] not in (None, "none"):
        family.initialize(model, model_config["init"], model_config, preprocessor)
    train_batches = batches(arrays, y[split.train], preprocessor, model_config["batch_size"], seed=seed,
                            rows=split.train, row_multiple=replicas)
    compile_model(model, family.loss(task, stats, model_config), model_config, steps_per_epoch=len(train_batches), replicas=replicas)
    history = model.fit(
        train_batches,
        epochs=model_config["epochs"],
        shuffle=False,  # `batches` shuffles the rows within their buckets, and the batches
        verbose=0,
        callbacks=[
            _epoch_timer(),
            epoch_end(train_batches),
            _divergence_guard(label),
            validation_loss(arrays, y[split.val], preprocessor, rows=split.val, row_multiple=replicas,
                            scores=validation_scores(family, task, y[split.val], model_config["monitor"])),
            keras.callbacks.EarlyStopping(monitor=model_config["monitor"], mode=MONITORS[model_config["monitor"]],
                                          patience=model_config["patience"], restore_best_weights=True),
            EpochProgress(label, model_config["epochs"]),
        ],
    )
    return model, history.history


def fit_per_task(family, model_config: dict, preprocessor, task: TaskInfo, arrays, y, split, seed: int, label: str,
                 replicas: int = 1):
    """One single-task model per target (as the elEmBERT paper did), on the rows labelled for it;
    returned as one model that concatenates their outputs."""
    import keras

    from keras_chem.data.splits import Split
    from keras_chem.metrics.classification import nanmean

    models, histories = [], []
    for t, name in enumerate(task.target_names):
        labelled = ~np.isnan(y[:, t])
        task_split = Split(train=split.train[labelled[split.train]], val=split.val[labelled[split.val]], test=split.test)
        single = TaskInfo("classification", [name])
        model, history = fit_model(family, model_config, preprocessor, single, arrays, y[:, t : t + 1], task_split, seed,
                                   f"{label} {name}", replicas)
        model.name = f"task_{t}"
        models.append(model)
        histories.append(history)
    inputs = {t.name: keras.Input(t.shape[1:], dtype=t.dtype, name=t.name) for t in models[0].inputs}
    combined = keras.Model(inputs, keras.layers.Concatenate(name="tasks")([m(inputs) for m in models]), name="per_task")
    epochs = max(len(h["val_loss"]) for h in histories)
    means = {key: [nanmean([h[key][min(e, len(h[key]) - 1)] for h in histories]) for e in range(epochs)]
             for key in ("val_loss", "val_roc_auc")}
    return combined, {**means, "per_task": {n: h for n, h in zip(task.target_names, histories)}}
