"""Masked-token pretraining of the elEmBERT encoder on unlabeled structures.

15% of the atom tokens of a sequence are selected (never [CLS], [SEP] or padding); of those
80% become [MASK], 10% a random token and 10% stay, and the model predicts the originals.
keras-hub's `MaskedLMMaskGenerator` draws the masks (it runs on the data side, under either
backend) and `MaskedLMHead` predicts through the tied token embedding.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from keras_chem.featurizers.tokens import CLS_ID, PAD_ID, SEP_ID
from keras_chem.io import atomic_write_json

MASK_RATE = 0.15
ENCODER_FILE = "encoder.keras"
INFO_FILE = "pretrain_info.json"


def _masked_batches_class():
    import keras
    import keras_hub

    class MaskedBatches(keras.utils.PyDataset):
        """Length-bucketed token batches with fresh masks drawn every time a batch is read."""

        def __init__(self, tokens, preprocessor, batch_size, vocabulary_size, mask_id, seed=None):
            super().__init__()
            from keras_chem.training.batching import plan_batches

            self.tokens = tokens
            self.preprocessor = preprocessor
            self.batch_size = batch_size
            self.seed = seed
            self.epoch = 0
            self._plan = lambda: plan_batches(
                preprocessor.sizes({"tokens": tokens}), preprocessor.cap, batch_size,
                np.random.default_rng([seed, self.epoch]) if seed is not None else None,
            )
            self.batches = self._plan()
            self.masker = keras_hub.layers.MaskedLMMaskGenerator(
                vocabulary_size=vocabulary_size,
                mask_selection_rate=MASK_RATE,
                mask_token_id=mask_id,
                mask_selection_length=max(1, math.ceil(MASK_RATE * preprocessor.cap)),
                unselectable_token_ids=[PAD_ID, CLS_ID, SEP_ID],
                mask_token_rate=0.8,
                random_token_rate=0.1,
            )

        def __len__(self):
            return len(self.batches)

        def __getitem__(self, index):
            rows, size = self.batches[index]
            masked = self.masker(self.tokens[rows, :size])
            inputs = {"tokens": np.asarray(masked["token_ids"]), "mask_positions": np.asarray(masked["mask_positions"])}
            return inputs, np.asarray(masked["mask_ids"]), np.asarray(masked["mask_weights"])

        def on_epoch_end(self):
            if self.seed is not None:
                self.epoch += 1
                self.batches = self._plan()

    return MaskedBatches


def build_mlm(config: dict, vocabulary_size: int):
    """The encoder plus a masked-token head tied to its token embedding."""
    import keras
    import keras_hub

    from keras_chem.models.elembert import build_encoder

    encoder = build_encoder(config, vocabulary_size)
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    mask_positions = keras.Input((None,), dtype="int32", name="mask_positions")
    head = keras_hub.layers.MaskedLMHead(
        token_embedding=encoder.get_layer("token_embedding"), activation="softmax", name="mlm_head"
    )
    predictions = head(encoder(tokens), mask_positions=mask_positions)
    return keras.Model({"tokens": tokens, "mask_positions": mask_positions}, predictions, name="elembert_mlm"), encoder


def pretrain(datasets: list[str], config: dict, out: str | Path, seed: int = 0, limit: int | None = None) -> dict:
    """Pretrain on the inputs (not the labels) of `datasets`; writes `encoder.keras` and its info."""
    import keras

    from keras_chem.data.loaders import load_dataset
    from keras_chem.models.elembert import ElembertPreprocessor
    from keras_chem.training.console import EpochProgress, console
    from keras_chem.training.runner import seed_everything

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    preprocessor = ElembertPreprocessor(tokens=config["tokens"], max_atoms=config["max_atoms"], subelements=config["subelements"])
    ids, inputs, kinds = [], [], []
    for name in datasets:
        data = load_dataset(name, limit=limit)
        ids += [f"{name}/{i}" for i in data.ids]
        inputs += data.inputs
        kinds.append(data.input_kind)
    if len(set(kinds)) != 1:
        raise ValueError(f"pretraining datasets must share one input kind, got {sorted(set(kinds))}")
    features = preprocessor.fit_transform(ids, inputs, kinds[0])
    tokens = features.arrays["tokens"]
    console.print(f"pretraining on {len(tokens)} sequences from {', '.join(datasets)} ({len(features.skipped)} skipped)")

    seed_everything(seed)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(tokens))
    n_val = max(1, len(tokens) // 10)
    val_rows, train_rows = np.sort(order[:n_val]), np.sort(order[n_val:])
    vocabulary_size = len(preprocessor.vocabulary)
    model, encoder = build_mlm(config, vocabulary_size)
    model.compile(
        optimizer=keras.optimizers.Adam(config["learning_rate"]),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    from keras_chem.training.batching import for_backend

    Batches = _masked_batches_class()
    mask_id = preprocessor.vocabulary.mask_id
    started = time.perf_counter()
    history = model.fit(
        for_backend(Batches(tokens[train_rows], preprocessor, config["batch_size"], vocabulary_size, mask_id, seed=seed)),
        validation_data=for_backend(Batches(tokens[val_rows], preprocessor, 256, vocabulary_size, mask_id)),
        epochs=config["epochs"],
        shuffle=False,  # the batches are shuffled, within buckets, by `MaskedBatches`
        verbose=0,
        callbacks=[
            keras.callbacks.EarlyStopping(monitor="val_loss", patience=config["patience"], restore_best_weights=True),
            EpochProgress("pretraining", config["epochs"]),
        ],
    )
    tmp = out / f".{ENCODER_FILE}.tmp.keras"
    encoder.save(tmp)
    tmp.replace(out / ENCODER_FILE)
    val_losses = history.history["val_loss"]
    best = int(np.argmin(val_losses))
    info = {
        "datasets": datasets,
        "n_sequences": int(len(tokens)),
        "n_skipped": len(features.skipped),
        "seed": seed,
        "config": config,
        "preprocessor": preprocessor.get_config(),
        "best_epoch": best + 1,
        "val_loss": float(val_losses[best]),
        "val_masked_accuracy": float(history.history["val_accuracy"][best]),
        "train_seconds": round(time.perf_counter() - started, 2),
    }
    atomic_write_json(out / "history.json", history.history)
    atomic_write_json(out / INFO_FILE, info)
    return info


ENCODER_SHAPE_KEYS = ("tokens", "embed_dim", "heads", "layers", "ff_dim", "positional")


def load_pretrained_encoder(run_dir: str | Path, config: dict, vocabulary_tokens: list[str]):
    """The encoder saved by `pretrain`, after checking it fits the model being built."""
    from keras_chem.export import load_model

    run_dir = Path(run_dir)
    info_path = run_dir / INFO_FILE
    if not info_path.exists():
        raise FileNotFoundError(f"--init {run_dir}: no {INFO_FILE}; pass a `kchem pretrain` output directory")
    info = json.loads(info_path.read_text())
    mismatched = [k for k in ENCODER_SHAPE_KEYS if info["config"].get(k) != config.get(k)]
    if mismatched:
        details = ", ".join(f"{k}: pretrained {info['config'].get(k)!r} vs {config.get(k)!r}" for k in mismatched)
        raise ValueError(f"--init {run_dir} does not fit this model ({details})")
    if info["preprocessor"]["vocabulary"]["tokens"] != vocabulary_tokens:
        raise ValueError(f"--init {run_dir} was pretrained with another token vocabulary")
    return load_model(run_dir / ENCODER_FILE)
