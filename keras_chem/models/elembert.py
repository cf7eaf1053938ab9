"""elEmBERT: a BERT-style encoder over atom tokens with a [CLS] classification head.

Paper: `elembert.md`; what the original code does: `specs/elembert-original.md`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keras_chem.data.types import Skip
from keras_chem.featurizers.progress import map_rows
from keras_chem.featurizers.tokens import PAD_ID, Vocabulary, element_tokens
from keras_chem.models.base import Features, TaskInfo

CONFORMER_SEED = 0xC0FFEE  # conformers do not change with --seed, so they are computed once

DEFAULTS = {
    "tokens": "v1",
    "subelements": "default",
    "positional": False,
    "per_task": False,
    "init": None,
    "embed_dim": 32,
    "heads": 2,
    "layers": 2,
    "ff_dim": 32,
    "dropout": 0.1,
    "max_atoms": None,
    "learning_rate": 1e-3,
    "lr_schedule": "constant",
    "batch_size": 32,
    "epochs": 100,
    "patience": 10,
}


class ElembertPreprocessor:
    """SMILES / structures / formulas → `tokens [n, L] int32` as `[CLS] atoms [SEP]`, 0-padded.

    `L` is taken from the data at `fit_transform` (longest sequence); with `max_atoms` set, a longer
    input is skipped and reported instead of truncated.
    """

    def __init__(self, tokens: str = "v1", max_atoms: int | None = None, seq_len: int | None = None,
                 vocabulary=None, subelements: str = "default", subelements_sha256: str | None = None,
                 conformer_seed: int = CONFORMER_SEED):
        if tokens not in TOKEN_SETS:
            raise ValueError(f"unknown token set {tokens!r}; choose one of {', '.join(TOKEN_SETS)}")
        self.tokens = tokens
        self.max_atoms = max_atoms
        self.seq_len = seq_len
        self.conformer_seed = conformer_seed
        self.subelements = subelements
        self.subelements_sha256 = subelements_sha256
        self._subelement_model = None
        if tokens == "v1":
            self._subelement_model, sha256 = _load_subelements(subelements, subelements_sha256)
            self.subelements_sha256 = sha256
            default_vocabulary = Vocabulary(self._subelement_model.vocabulary_tokens())
        else:
            default_vocabulary = Vocabulary.elements()
        self.vocabulary = Vocabulary.from_dict(vocabulary) if vocabulary else default_vocabulary

    def _tokenize(self, ids, inputs, input_kind):
        if self.tokens == "v1":
            from keras_chem.featurizers.v1 import subelement_tokens_batch

            return subelement_tokens_batch(ids, inputs, input_kind, self._subelement_model, self.conformer_seed)
        return map_rows(ids, inputs, lambda item: element_tokens(item, input_kind), "tokenizing")

    def fit_transform(self, ids: list[str], inputs: list[Any], input_kind: str) -> Features:
        tokenized = self._tokenize(ids, inputs, input_kind)
        lengths = [len(t) for t in tokenized[1] if self.max_atoms is None or len(t) <= self.max_atoms]
        if not lengths:
            raise ValueError("no input could be tokenized; see the skipped rows")
        self.seq_len = max(lengths) + 2
        return self._encode(ids, *tokenized)

    def transform(self, ids: list[str], inputs: list[Any], input_kind: str) -> Features:
        if self.seq_len is None:
            raise RuntimeError("call fit_transform() before transform()")
        return self._encode(ids, *self._tokenize(ids, inputs, input_kind))

    def _encode(self, ids, kept, token_lists, skipped) -> Features:
        cap = self.seq_len - 2
        limit = f"--max-atoms {self.max_atoms}" if self.max_atoms is not None else f"the model's cap of {cap} atoms"
        keep = []
        sequences = np.full((len(token_lists), self.seq_len), PAD_ID, dtype=np.int32)
        for row, (position, tokens) in enumerate(zip(kept, token_lists)):
            if len(tokens) > cap:
                skipped.append(Skip(ids[position], f"{len(tokens)} atoms, over {limit}"))
                continue
            encoded = self.vocabulary.encode(tokens)
            sequences[row, : len(encoded)] = encoded
            keep.append(row)
        return Features(kept=np.asarray(kept, dtype=np.int64)[keep], arrays={"tokens": sequences[keep]}, skipped=skipped)

    @property
    def cap(self) -> int:
        return self.seq_len

    def sizes(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        return np.count_nonzero(arrays["tokens"] != PAD_ID, axis=1)

    def trim(self, arrays: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
        return {"tokens": arrays["tokens"][:, :size]}

    def input_signature(self) -> dict:
        return {"tokens": ((self.seq_len,), "int32")}

    def get_config(self) -> dict:
        config = {
            "tokens": self.tokens,
            "max_atoms": self.max_atoms,
            "seq_len": self.seq_len,
            "vocabulary": self.vocabulary.to_dict(),
        }
        if self.tokens == "v1":
            config.update(
                subelements=self.subelements, subelements_sha256=self.subelements_sha256, conformer_seed=self.conformer_seed
            )
        return config


TOKEN_SETS = ("v0", "v1")


def _load_subelements(path: str, expected_sha256: str | None):
    """The sub-element model (`"default"`: the one shipped in weights/), checked against its hash."""
    import hashlib
    from pathlib import Path

    from keras_chem.featurizers.subelements import SubelementModel, default_model_path

    file = default_model_path() if path == "default" else Path(path)
    if not Path(file).exists():
        raise FileNotFoundError(f"sub-element model {file} not found; fit one with `kchem subelements fit`")
    sha256 = hashlib.sha256(Path(file).read_bytes()).hexdigest()
    if expected_sha256 and sha256 != expected_sha256:
        raise ValueError(
            f"sub-element model {file} has sha256 {sha256[:12]}…, but this model was trained with {expected_sha256[:12]}…; "
            "tokens would not match"
        )
    return SubelementModel.load(file), sha256


def build_encoder(config: dict, vocabulary_size: int):
    """Token ids `[B, L]` → contextual embeddings `[B, L, embed_dim]`; padding is masked.

    Post-LN blocks as in the paper (keras-hub `TransformerEncoder`, `normalize_first=False`);
    no positional information unless `positional` (a fixed sinusoidal table, Appendix C).
    """
    import keras
    import keras_hub
    from keras import ops

    tokens = keras.Input((None,), dtype="int32", name="tokens")
    # Reversible so that the masked-token head of pretraining can reuse it as its output layer.
    x = keras_hub.layers.ReversibleEmbedding(vocabulary_size, config["embed_dim"], name="token_embedding")(tokens)
    if config["positional"]:
        x = keras.layers.Add(name="add_positions")([x, keras_hub.layers.SinePositionEncoding(name="positions")(x)])
    padding_mask = ops.not_equal(tokens, PAD_ID)
    for i in range(config["layers"]):
        x = keras_hub.layers.TransformerEncoder(
            intermediate_dim=config["ff_dim"],
            num_heads=config["heads"],
            dropout=config["dropout"],
            layer_norm_epsilon=1e-6,
            normalize_first=False,
            name=f"encoder_{i}",
        )(x, padding_mask=padding_mask)
    return keras.Model(tokens, x, name="elembert_encoder")


def build(config: dict, preprocessor: ElembertPreprocessor, task: TaskInfo, target_stats: dict | None = None):
    """Encoder → `[CLS]` embedding → one sigmoid per task, a softmax, or values."""
    import keras

    from keras_chem.models.heads import output_head

    # Variable length: batches are trimmed to their bucket; the export fixes it to the cap.
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    encoder = build_encoder(config, len(preprocessor.vocabulary))
    if config.get("init"):
        from keras_chem.models.elembert_pretrain import load_pretrained_encoder

        encoder.set_weights(load_pretrained_encoder(config["init"], config, preprocessor.vocabulary.tokens).get_weights())
    cls_embedding = keras.layers.Identity(name="cls_embedding")(encoder(tokens)[:, 0, :])
    outputs = output_head(cls_embedding, task, target_stats)
    return keras.Model({"tokens": tokens}, outputs, name="elembert")


class _Family:
    name = "elembert"

    def default_config(self) -> dict:
        return dict(DEFAULTS)

    def preprocessor(self, config: dict) -> ElembertPreprocessor:
        return ElembertPreprocessor(tokens=config["tokens"], max_atoms=config["max_atoms"], subelements=config["subelements"])

    def preprocessor_from_config(self, config: dict) -> ElembertPreprocessor:
        return ElembertPreprocessor(**config)

    def build(self, config, preprocessor, task, target_stats=None):
        return build(config, preprocessor, task, target_stats)

    def pretrain(self, datasets, config, out, seed=0, limit=None):
        from keras_chem.models.elembert_pretrain import pretrain

        return pretrain(datasets, config, out, seed=seed, limit=limit)


FAMILY = _Family()
