"""The k-fold runner: one run directory per command, resumable fold by fold.

Layout of a run directory:
    config.json            resolved configuration (what the command asked for)
    model_info.json        fitted preprocessor and task, for `predict` and `export`
    splits.json            row indices of every split (chemprop's format)
    skipped.csv            row id and reason for every input that was dropped
    fold_<k>/model.keras   best weights (early stopping on validation loss)
    fold_<k>/test_predictions.csv
    fold_<k>/history.json  losses per epoch and training time
    fold_<k>/metrics.json  written last: a fold with it is finished and is reused on resume
    summary.json, report.md
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from pathlib import Path

import numpy as np

from keras_chem.data.types import Dataset, Skip
from keras_chem.io import atomic_write_json, atomic_write_text
from keras_chem.models.base import Features, TaskInfo
from keras_chem.models.registry import get_model_family
from keras_chem.training.batching import batches
from keras_chem.training.batching import predict as predict_batched
from keras_chem.training.compile_cache import enable_compile_cache
from keras_chem.training.config import RESUME_IRRELEVANT_KEYS, RunConfig
from keras_chem.training.console import console, fold_progress
from keras_chem.training.splitting import DEFAULT_FOLDS
from keras_chem.training.validation import validation_loss


# The layer whose output is a row's learned vector, drawn in the t-SNE: elEmBERT's [CLS], a pooled crystal.
EMBEDDING_LAYERS = ("cls_embedding", "crystal_embedding")


class RunConfigMismatch(RuntimeError):
    """The run directory holds a run with a different configuration."""


def run(config: RunConfig) -> dict:
    """Train and evaluate `config.model` on every split; returns the summary."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    enable_compile_cache()
    _fill_split_defaults(config)
    _check_or_write_config(out, config)

    family = get_model_family(config.model)
    dataset = load_run_dataset(config)
    task = TaskInfo(dataset.task, dataset.target_names, dataset.class_names)
    features, preprocessor = featurize_dataset(config, family, dataset)
    skipped = list(dataset.skipped) + features.skipped
    _write_skipped(out / "skipped.csv", skipped)
    data = dataset.subset(features.kept)
    atomic_write_json(
        out / "model_info.json",
        {"model": config.model, "preprocessor": preprocessor.get_config(), "task": task.to_dict(), "input_kind": data.input_kind},
    )
    splits = _load_or_make_splits(out, config, data)
    console.print(
        f"[bold]{config.model}[/] on [bold]{config.dataset}[/]: {len(data)} rows used, {len(skipped)} skipped, "
        f"{len(splits)} splits → {out}"
    )

    fold_metrics = []
    with fold_progress(len(splits)) as progress:
        for k, split in enumerate(splits):
            fold_dir = out / f"fold_{k}"
            if (fold_dir / "metrics.json").exists():
                fold_metrics.append(json.loads((fold_dir / "metrics.json").read_text()))
                progress.advance(f"fold {k}: reused")
                continue
            metrics = train_fold(config, family, preprocessor, task, data, features.arrays, split, k, fold_dir)
            fold_metrics.append(metrics)
            progress.advance(f"fold {k}: {_headline(metrics, task)}")

    from keras_chem.training.report import write_summary

    summary = write_summary(out, config, task, data, skipped, fold_metrics)
    _write_plots(out, task, data, splits, features.arrays, preprocessor)
    return summary


def _write_plots(out: Path, task: TaskInfo, data: Dataset, splits, arrays, preprocessor) -> None:
    """ROC curves, confusion matrix and a t-SNE of every test row's learned embedding (from the
    fold that tested it). Pictures are extras: a failure is reported, never fatal."""
    from keras_chem.training.plots import write_run_plots

    try:
        embeddings, labels, label_name = _test_embeddings(out, task, data, splits, arrays, preprocessor)
        write_run_plots(out, task.to_dict(), embeddings, labels, label_name)
    except Exception as error:  # noqa: BLE001 - the results are already written
        console.print(f"[yellow]warning:[/] could not draw the run's pictures: {type(error).__name__}: {error}")


def _test_embeddings(out: Path, task: TaskInfo, data: Dataset, splits, arrays, preprocessor):
    import keras

    from keras_chem.export import load_model

    if task.task == "classification":
        column = int(np.argmin(np.isnan(data.targets).sum(axis=0)))
        label_name = task.target_names[column]
    elif task.task == "multiclass":
        column, label_name = 0, "class"
    else:
        column, label_name = 0, task.target_names[0]
    chunks, labels = [], []
    for k, split in enumerate(splits):
        model = load_model(out / f"fold_{k}" / "model.keras")
        names = [layer.name for layer in model.layers if layer.name in EMBEDDING_LAYERS]
        if not names:
            return None, None, None
        embedder = keras.Model(model.inputs, model.get_layer(names[0]).output)
        chunks.append(predict_batched(embedder, {n: a[split.test] for n, a in arrays.items()}, preprocessor))
        labels.append(data.targets[split.test, column])
    return np.concatenate(chunks), np.concatenate(labels), label_name


def load_run_dataset(config: RunConfig) -> Dataset:
    from keras_chem.data.loaders import load_dataset

    return load_dataset(config.dataset, limit=config.limit)


def featurize_dataset(config: RunConfig, family, dataset: Dataset):
    """Featurize every row once, cached on disk by dataset, rows and preprocessor settings."""
    from keras_chem.featurizers.cache import load_or_build

    preprocessor = family.preprocessor(config.model_config)
    key = {
        "dataset": dataset.name,
        "rows": _digest(dataset.ids),
        "model": config.model,
        "preprocessor": preprocessor.get_config(),
    }

    def build() -> dict[str, np.ndarray]:
        features = preprocessor.fit_transform(dataset.ids, dataset.inputs, dataset.input_kind)
        return {
            "kept": features.kept,
            "skipped_ids": np.asarray([s.row_id for s in features.skipped], dtype=str),
            "skipped_reasons": np.asarray([s.reason for s in features.skipped], dtype=str),
            "preprocessor": np.asarray(json.dumps(preprocessor.get_config())),
            **{f"x_{name}": array for name, array in features.arrays.items()},
        }

    cached = load_or_build(key, build)
    preprocessor = family.preprocessor_from_config(json.loads(str(cached["preprocessor"])))
    features = Features(
        kept=cached["kept"].astype(np.int64),
        arrays={name[2:]: cached[name] for name in cached if name.startswith("x_")},
        skipped=[Skip(str(i), str(r)) for i, r in zip(cached["skipped_ids"], cached["skipped_reasons"])],
    )
    return features, preprocessor


def train_fold(config: RunConfig, family, preprocessor, task: TaskInfo, data: Dataset, arrays, split, k: int, fold_dir: Path) -> dict:
    seed_everything(config.seed + k)
    model_config = config.model_config
    y = data.targets

    def take(rows):
        return {name: array[rows] for name, array in arrays.items()}

    started = time.perf_counter()
    if model_config.get("per_task") and task.task == "classification" and task.n_outputs > 1:
        model, history = _fit_per_task(config, family, preprocessor, task, take, y, split, k)
    else:
        model, history = _fit(config, family, preprocessor, task, take, y, split, k, f"fold {k}")
    train_seconds = time.perf_counter() - started
    predictions = predict_batched(model, take(split.test), preprocessor)

    fold_dir.mkdir(parents=True, exist_ok=True)
    _save_model_atomically(model, fold_dir / "model.keras")
    _write_predictions(fold_dir / "test_predictions.csv", data, split.test, predictions, task)
    val_losses = history["val_loss"]
    metrics = {
        **evaluate(task, y[split.test], predictions),
        "n_train": int(len(split.train)),
        "n_val": int(len(split.val)),
        "n_test": int(len(split.test)),
        "epochs_trained": len(val_losses),
        "best_epoch": int(np.nanargmin(val_losses)) + 1,
        "best_val_loss": float(np.nanmin(val_losses)),
    }
    atomic_write_json(fold_dir / "history.json", {**history, "train_seconds": round(train_seconds, 2)})
    atomic_write_json(fold_dir / "metrics.json", metrics)
    return metrics


def compile_model(model, task: TaskInfo, stats: dict | None, model_config: dict, steps_per_epoch: int = 1) -> None:
    """The task's loss and the configured optimizer (`optimizer` "adam" or "adamw", `learning_rate`,
    `weight_decay`, `lr_schedule`), compiled with XLA on every backend: Keras leaves XLA off for
    TensorFlow on a CPU, where it trains the bucketed batches about 30% faster."""
    import keras

    from keras_chem.models.heads import loss_for

    name = model_config.get("optimizer", "adam")
    rate = learning_rate_schedule(model_config, steps_per_epoch)
    if name == "adam":
        optimizer = keras.optimizers.Adam(rate)
    elif name == "adamw":
        optimizer = keras.optimizers.AdamW(rate, weight_decay=model_config.get("weight_decay", 0.0), beta_2=0.99)
    else:
        raise ValueError(f"unknown optimizer {name!r}; choose adam or adamw")
    model.compile(optimizer=optimizer, loss=loss_for(task, stats), jit_compile=True)


LR_SCHEDULES = ("constant", "cosine", "step")


def learning_rate_schedule(model_config: dict, steps_per_epoch: int):
    """`lr_schedule`: "constant"; "cosine" (decay to 0 over `epochs`); or "step" (×0.1 after a third of
    `epochs`, the original CrysToGraph's MultiStepLR)."""
    import keras

    rate, kind = model_config["learning_rate"], model_config.get("lr_schedule", "constant")
    total = max(1, model_config["epochs"] * steps_per_epoch)
    if kind == "constant":
        return rate
    if kind == "cosine":
        return keras.optimizers.schedules.CosineDecay(rate, decay_steps=total)
    if kind == "step":
        boundary = max(1, model_config["epochs"] // 3) * steps_per_epoch
        return keras.optimizers.schedules.PiecewiseConstantDecay([boundary], [rate, rate * 0.1])
    raise ValueError(f"unknown lr_schedule {kind!r}; choose one of {', '.join(LR_SCHEDULES)}")


def _fit(config: RunConfig, family, preprocessor, task: TaskInfo, take, y, split, k: int, label: str):
    """Build, compile and fit one model; early stopping on validation loss restores the best weights."""
    import keras

    from keras_chem.training.console import EpochProgress

    model_config = config.model_config
    if len(split.val) == 0:
        raise ValueError(
            f"{label}: the validation part is empty ({len(split.train)} training rows); "
            "use more rows or a larger validation share in --split-sizes"
        )
    stats = _target_stats(y[split.train]) if task.task == "regression" else None
    model = family.build(model_config, preprocessor, task, stats)
    train_batches = batches(take(split.train), y[split.train], preprocessor, model_config["batch_size"], seed=config.seed + k)
    compile_model(model, task, stats, model_config, steps_per_epoch=len(train_batches))
    history = model.fit(
        train_batches,
        epochs=model_config["epochs"],
        shuffle=False,  # `batches` shuffles the rows within their buckets, and the batches
        verbose=0,
        callbacks=[
            validation_loss(take(split.val), y[split.val], preprocessor),
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=model_config["patience"], restore_best_weights=True),
            EpochProgress(label, model_config["epochs"]),
        ],
    )
    return model, history.history


def _fit_per_task(config: RunConfig, family, preprocessor, task: TaskInfo, take, y, split, k: int):
    """One single-task model per target (as the elEmBERT paper did), on the rows labelled for it;
    saved as one model that concatenates their outputs."""
    import keras

    from keras_chem.data.splits import Split

    models, histories = [], []
    for t, name in enumerate(task.target_names):
        labelled = ~np.isnan(y[:, t])
        task_split = Split(train=split.train[labelled[split.train]], val=split.val[labelled[split.val]], test=split.test)
        single = TaskInfo("classification", [name])
        model, history = _fit(config, family, preprocessor, single, take, y[:, t : t + 1], task_split, k, f"fold {k} {name}")
        model.name = f"task_{t}"
        models.append(model)
        histories.append(history)
    inputs = {t.name: keras.Input(t.shape[1:], dtype=t.dtype, name=t.name) for t in models[0].inputs}
    combined = keras.Model(inputs, keras.layers.Concatenate(name="tasks")([m(inputs) for m in models]), name="per_task")
    val_loss = [float(np.mean([h["val_loss"][min(e, len(h["val_loss"]) - 1)] for h in histories]))
                for e in range(max(len(h["val_loss"]) for h in histories))]
    return combined, {"val_loss": val_loss, "per_task": {n: h for n, h in zip(task.target_names, histories)}}


def evaluate(task: TaskInfo, y_true: np.ndarray, predictions: np.ndarray) -> dict:
    from keras_chem import metrics

    if task.task == "classification":
        return metrics.binary_metrics(y_true, predictions, task.target_names)
    if task.task == "multiclass":
        return metrics.multiclass_metrics(y_true[:, 0].astype(int), predictions, task.class_names)
    return metrics.regression_metrics(y_true, predictions, task.target_names)


def seed_everything(seed: int) -> None:
    """Seeds Python, numpy and the backend. TensorFlow's op determinism is left off: it turns XLA
    off, and the XLA programs every model is compiled to already run deterministically on a CPU
    (the kill-and-resume test checks bit-equal summaries on both backends)."""
    import keras

    keras.utils.set_random_seed(seed)


def _fill_split_defaults(config: RunConfig) -> None:
    """Write the effective split into the config: the card's method, 5 folds unless replicates."""
    from keras_chem.data.registry import get_card

    if config.splits_file:
        return
    config.split = config.split or get_card(config.dataset).split
    if not config.replicates:
        config.folds = config.folds or DEFAULT_FOLDS


def _check_or_write_config(out: Path, config: RunConfig) -> None:
    path = out / "config.json"
    wanted = config.to_dict()
    if path.exists():
        existing = json.loads(path.read_text())
        differences = sorted(
            key
            for key in set(existing) | set(wanted)
            if key not in RESUME_IRRELEVANT_KEYS and existing.get(key) != wanted.get(key)
        )
        if differences:
            raise RunConfigMismatch(
                f"{out} holds a run with a different configuration ({', '.join(differences)} differ); "
                "choose another --out or delete that directory"
            )
        console.print(f"resuming the run in {out}")
    atomic_write_json(path, wanted)


def _load_or_make_splits(out: Path, config: RunConfig, data: Dataset):
    from keras_chem.data.splits import read_splits_file, write_splits_file
    from keras_chem.training.splitting import make_splits

    path = out / "splits.json"
    if path.exists():
        return _file_rows_to_positions(read_splits_file(path, int(data.rows.max()) + 1), data)
    splits = make_splits(config, data)
    write_splits_file(path, [_positions_to_file_rows(s, data) for s in splits])
    return splits


def _positions_to_file_rows(split, data: Dataset):
    from keras_chem.data.splits import Split

    return Split(train=data.rows[split.train], val=data.rows[split.val], test=data.rows[split.test])


def _file_rows_to_positions(splits, data: Dataset):
    from keras_chem.data.splits import Split

    position = {int(row): i for i, row in enumerate(data.rows)}

    def convert(rows):
        return np.asarray(sorted(position[int(r)] for r in rows if int(r) in position), dtype=np.int64)

    return [Split(train=convert(s.train), val=convert(s.val), test=convert(s.test)) for s in splits]


def _target_stats(y: np.ndarray) -> dict:
    mean = np.nanmean(y, axis=0)
    std = np.nanstd(y, axis=0)
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    return {"mean": [float(v) for v in mean], "std": [float(v) for v in std]}


def _save_model_atomically(model, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)


def _write_predictions(path: Path, data: Dataset, rows: np.ndarray, predictions: np.ndarray, task: TaskInfo) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    if task.task == "multiclass":
        writer.writerow(["row", "id", "label", "predicted", *[f"prob_{c}" for c in task.class_names]])
        for row, probs in zip(rows, predictions):
            label = int(data.targets[row, 0])
            writer.writerow(
                [int(data.rows[row]), data.ids[row], task.class_names[label], task.class_names[int(np.argmax(probs))], *map(_fmt, probs)]
            )
    else:
        names = task.target_names
        writer.writerow(["row", "id", *names, *[f"{n}_pred" for n in names]])
        for row, values in zip(rows, predictions):
            writer.writerow([int(data.rows[row]), data.ids[row], *map(_fmt, data.targets[row]), *map(_fmt, values)])
    atomic_write_text(path, buffer.getvalue())


def _write_skipped(path: Path, skipped: list[Skip]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", "reason"])
    writer.writerows([s.row_id, s.reason] for s in skipped)
    atomic_write_text(path, buffer.getvalue())


def _fmt(value) -> str:
    value = float(value)
    return "" if np.isnan(value) else f"{value:.8g}"


def _digest(values: list[str]) -> str:
    import hashlib

    return hashlib.sha256("\n".join(values).encode()).hexdigest()[:16]


def _headline(metrics: dict, task: TaskInfo) -> str:
    key = {"classification": "roc_auc", "multiclass": "accuracy"}.get(task.task, "mae")
    return f"{key} {metrics.get(key, float('nan')):.4f}"
