"""Self-supervised pretraining of a family's encoder with one of its `pretraining` objectives.

The inputs (never the labels) of the given datasets are featurized, the objective's
`validation_share` is held out for early stopping, and its model trains on bucketed batches that the
objective turns into `(x, y, weight)` afresh every time a batch is read (new masks every
epoch). The encoder is saved as `encoder.keras` beside `pretrain_info.json` (and, for objectives
with `encoder_weights`, as a pickle-free `.npz` that can ship with the package); `kchem train
--init DIR` loads it.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from keras_chem.io import atomic_write_json
from keras_chem.models.base import PRETRAIN_ENCODER_FILE, PRETRAIN_INFO_FILE

VALIDATION_BATCH = 256


def _batches_class():
    import keras

    from keras_chem.training.batching import plan_batches, trim

    class ObjectiveBatches(keras.utils.PyDataset):
        """Bucketed batches of input arrays, made into `(x, y, weight)` by the objective's `make`."""

        def __init__(self, arrays, preprocessor, batch_size, make, seed=None, objective=None):
            super().__init__()
            self.arrays, self.preprocessor, self.batch_size, self.make = arrays, preprocessor, batch_size, make
            # `make` may add padded inputs and padded targets
            self.padded_axes = {**preprocessor.padded_axes, **(objective.padded_inputs if objective else {})}
            self.target_padded_axes = objective.padded_targets if objective else {}
            self.seed, self.epoch = seed, 0
            self.sizes = preprocessor.sizes(arrays)
            self._plan()

        def _plan(self):
            rng = np.random.default_rng([self.seed, self.epoch]) if self.seed is not None else None
            self.batches = plan_batches(self.sizes, self.preprocessor.cap, self.batch_size, rng, self.preprocessor.bucket_step)

        def __len__(self):
            return len(self.batches)

        def __getitem__(self, index):
            rows, size = self.batches[index]
            return self.make(trim({k: np.asarray(v[rows]) for k, v in self.arrays.items()}, size, self.padded_axes))

        def on_epoch_end(self):
            if self.seed is not None:
                self.epoch += 1
                self._plan()

    return ObjectiveBatches


def _identities(store, preprocessor, data, chunk: int = 8192) -> list:
    """What makes each featurized row the same input as another: its canonical SMILES for molecules
    given as SMILES (two spellings of a molecule get different conformers, and V0 tokens do not tell
    isomers apart), else its features."""
    from keras_chem.data.dedup import smiles_key
    from keras_chem.models.base import row_keys

    if data.input_kind == "smiles":
        return [smiles_key(data.inputs[i]) for i in store.kept]
    keys = []
    for start in range(0, len(store.kept), chunk):
        part = {k: np.asarray(v[start : start + chunk]) for k, v in store.arrays.items()}
        keys += row_keys(part, preprocessor.sizes(part), preprocessor.padded_axes)
    return keys


def _excluded_identities(family, config: dict, names: list[str]) -> set:
    from keras_chem.data.dedup import smiles_key
    from keras_chem.data.loaders import load_dataset
    from keras_chem.training.features import featurize_dataset

    excluded = set()
    for name in names:
        data = load_dataset(name)
        if data.input_kind == "smiles":  # every row, featurizable or not
            excluded.update(smiles_key(s) for s in data.inputs)
        else:
            excluded.update(_identities(*featurize_dataset(family, config, data), data))
    return excluded


def build_corpus(family, config: dict, datasets: list[str], exclude: list[str] = (), limit: int | None = None):
    """`(arrays, preprocessor, counts)`: the inputs of `datasets` featurized and padded to one cap
    (the preprocessor's), each input once (see `_identities`) and none of the `exclude` datasets'
    inputs (benchmarks to be tested on later). Each dataset goes through the feature store a training
    run uses (streamed in chunks, resumable, shared with training runs on the same rows)."""
    from keras_chem.data.loaders import load_dataset
    from keras_chem.models.base import pad_arrays
    from keras_chem.training.features import featurize_dataset

    excluded = _excluded_identities(family, config, list(exclude))
    seen, parts, cap, preprocessor = set(), [], 0, None
    counts = {"n_featurized": 0, "n_skipped": 0, "n_duplicates": 0, "n_excluded": 0}
    for name in datasets:
        data = load_dataset(name, limit=limit)
        store, fitted = featurize_dataset(family, config, data)
        keep = []
        for i, identity in enumerate(_identities(store, fitted, data)):
            if identity in excluded:
                counts["n_excluded"] += 1
            elif identity in seen:
                counts["n_duplicates"] += 1
            else:
                seen.add(identity)
                keep.append(i)
        counts["n_featurized"] += len(store.kept)
        counts["n_skipped"] += len(data.skipped) + len(store.skipped)
        parts.append({k: np.asarray(v[keep]) for k, v in store.arrays.items()})
        cap = max(cap, fitted.cap or 0)
        if parts[0].keys() != parts[-1].keys():
            raise ValueError(f"{name} gives other arrays than {datasets[0]} (other input kinds?); pretrain on them apart")
        preprocessor = preprocessor or fitted  # settled by the inputs it featurized (e.g. elEmBERT's distances)
    if not counts["n_featurized"]:
        raise ValueError("no input could be featurized; see the skipped rows")
    preprocessor.cap = int(cap)
    arrays = {k: np.concatenate([pad_arrays(part, preprocessor.cap, preprocessor.padded_axes)[k] for part in parts]) for k in parts[0]}
    return arrays, preprocessor, counts


def pretrain(family, objective_name: str, datasets: list[str], config: dict, out: str | Path, seed: int = 0,
             limit: int | None = None, exclude: list[str] = ()) -> dict:
    """Pretrain on the inputs of `datasets` (repeated inputs once, inputs of `exclude` never); writes
    the encoder and `pretrain_info.json`, returns the info."""
    import keras

    from keras_chem.training.batching import epoch_end, for_backend
    from keras_chem.training.console import EpochProgress, console
    from keras_chem.training.fold import seed_everything

    if objective_name not in family.pretraining:
        known = ", ".join(family.pretraining) or "none"
        raise ValueError(f"model {family.name!r} has no pretraining objective {objective_name!r} (objectives: {known})")
    objective = family.pretraining[objective_name]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    arrays, preprocessor, counts = build_corpus(family, config, datasets, exclude, limit)
    n = len(next(iter(arrays.values())))
    console.print(f"pretraining ({objective.name}: {objective.description}) on {n} inputs from {', '.join(datasets)} "
                  f"({counts['n_skipped']} skipped, {counts['n_duplicates']} repeated, {counts['n_excluded']} in "
                  f"{', '.join(exclude) or 'no excluded dataset'})")

    seed_everything(seed)
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(n * objective.validation_share))
    val_rows, train_rows = np.sort(order[:n_val]), np.sort(order[n_val:])
    model, encoder = objective.build(config, preprocessor)
    model.compile(optimizer=keras.optimizers.Adam(config["learning_rate"]), loss=objective.loss(), loss_weights=objective.loss_weights,
                  weighted_metrics=objective.metrics() if objective.metrics else None)
    make = objective.make_batch(config, preprocessor, arrays)
    Batches = _batches_class()
    started = time.perf_counter()
    train_input = for_backend(Batches({k: v[train_rows] for k, v in arrays.items()}, preprocessor, config["batch_size"], make, seed=seed,
                                      objective=objective))
    history = model.fit(
        train_input,
        validation_data=for_backend(Batches({k: v[val_rows] for k, v in arrays.items()}, preprocessor, VALIDATION_BATCH, make,
                                            objective=objective)),
        epochs=config["epochs"],
        shuffle=False,  # the batches are shuffled, within buckets, by `ObjectiveBatches`
        verbose=0,
        callbacks=[
            epoch_end(train_input),
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=config["patience"], restore_best_weights=True),
            EpochProgress("pretraining", config["epochs"]),
            keras.callbacks.CSVLogger(str(out / "history.csv")),  # one line per finished epoch, to follow a long run
        ],
    )
    tmp = out / f".{PRETRAIN_ENCODER_FILE}.tmp.keras"
    encoder.save(tmp)
    tmp.replace(out / PRETRAIN_ENCODER_FILE)
    val_losses = history.history["val_loss"]
    best = int(np.argmin(val_losses))
    info = {
        "model": family.name,
        "objective": objective.name,
        "datasets": datasets,
        "n_sequences": int(n),
        **counts,
        "excluded_datasets": list(exclude),
        "seed": seed,
        "config": config,
        "preprocessor": preprocessor.get_config(),
        "best_epoch": best + 1,
        "val_loss": float(val_losses[best]),
        "train_seconds": round(time.perf_counter() - started, 2),
    }
    if objective.summary_metric:
        info[f"val_{objective.summary_metric}"] = float(history.history[f"val_{objective.summary_metric}"][best])
    if objective.encoder_weights:
        from keras_chem.models.saving import save_encoder_weights

        save_encoder_weights(encoder, {"config": config, "preprocessor": info["preprocessor"]}, out / objective.encoder_weights)
    if objective.element_vectors:
        from keras_chem.training.element_vectors import write_element_vectors

        info.update(write_element_vectors(encoder, arrays, preprocessor, out, objective.element_vectors))
    atomic_write_json(out / "history.json", history.history)
    atomic_write_json(out / PRETRAIN_INFO_FILE, info)
    return info

