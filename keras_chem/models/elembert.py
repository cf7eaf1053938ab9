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

DEFAULTS = {
    "tokens": "v0",
    "embed_dim": 32,
    "heads": 2,
    "layers": 2,
    "ff_dim": 32,
    "dropout": 0.1,
    "max_atoms": None,
    "learning_rate": 1e-3,
    "batch_size": 32,
    "epochs": 100,
    "patience": 10,
}


class ElembertPreprocessor:
    """SMILES / structures / formulas → `tokens [n, L] int32` as `[CLS] atoms [SEP]`, 0-padded.

    `L` is taken from the data at `fit_transform` (longest sequence); with `max_atoms` set, a longer
    input is skipped and reported instead of truncated.
    """

    def __init__(self, tokens: str = "v0", max_atoms: int | None = None, seq_len: int | None = None, vocabulary=None):
        if tokens != "v0":
            raise ValueError(f"unknown token set {tokens!r}; available: v0")
        self.tokens = tokens
        self.max_atoms = max_atoms
        self.seq_len = seq_len
        self.vocabulary = Vocabulary.from_dict(vocabulary) if vocabulary else Vocabulary.elements()

    def _tokenize(self, ids, inputs, input_kind):
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
        return {
            "tokens": self.tokens,
            "max_atoms": self.max_atoms,
            "seq_len": self.seq_len,
            "vocabulary": self.vocabulary.to_dict(),
        }


def build(config: dict, preprocessor: ElembertPreprocessor, task: TaskInfo, target_stats: dict | None = None):
    import keras
    import keras_hub
    from keras import ops

    from keras_chem.models.heads import output_head

    # Variable length: batches are trimmed to their bucket; the export fixes it to the cap.
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(len(preprocessor.vocabulary), config["embed_dim"], name="token_embedding")(tokens)
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
    cls_embedding = x[:, 0, :]
    outputs = output_head(cls_embedding, task, target_stats)
    return keras.Model({"tokens": tokens}, outputs, name="elembert")


class _Family:
    name = "elembert"

    def default_config(self) -> dict:
        return dict(DEFAULTS)

    def preprocessor(self, config: dict) -> ElembertPreprocessor:
        return ElembertPreprocessor(tokens=config["tokens"], max_atoms=config["max_atoms"])

    def preprocessor_from_config(self, config: dict) -> ElembertPreprocessor:
        return ElembertPreprocessor(**config)

    def build(self, config, preprocessor, task, target_stats=None):
        return build(config, preprocessor, task, target_stats)


FAMILY = _Family()
