"""Masked-token pretraining of the elEmBERT encoder on unlabeled structures.

15% of the atom tokens of a sequence are selected (never [CLS], [SEP] or padding); of those
80% become [MASK], 10% a random token and 10% stay, and the model predicts the originals.
keras-hub's `MaskedLMMaskGenerator` draws the masks (on the data side, fresh for every batch
read, under either backend) and `MaskedLMHead` predicts through the tied token embedding.
`training/pretrain.py` runs the objective; `--init` loads the encoder it saved.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from keras_chem.featurizers.tokens import CLS_ID, PAD_ID, SEP_ID
from keras_chem.models.base import PRETRAIN_ENCODER_FILE, PRETRAIN_INFO_FILE, PretrainObjective

MASK_RATE = 0.15
ENCODER_SHAPE_KEYS = ("tokens", "embed_dim", "heads", "layers", "ff_dim", "positional", "distances")
# switches whose weights a pretrained encoder may lack: a model fine-tuned with them starts them at zero
FINE_TUNING_SWITCHES = {"atom_features": "atom_feature_embedding", "bonds": "bond_bias"}
# in the package `keras_chem.weights`: with distance-biased attention (the default for molecules), and without
SHIPPED_ENCODERS = ("elembert_mlm_v1_distances.npz", "elembert_mlm_v1.npz")
SHIPPED_INIT = "pretrained"  # --init value naming the shipped encoder
AUTO_INIT = "auto"  # elEmBERT's default --init: the shipped encoder when the model fits it
TRAINED_MODEL = "fold_0/model.keras"  # --init RUN: the encoder of a `kchem train elembert` run's first model
ENCODER_LAYER = "elembert_encoder"


def build_mlm(config: dict, preprocessor):
    """The encoder plus a masked-token head tied to its token embedding: `(model, encoder)`."""
    import keras
    import keras_hub

    from keras_chem.models.elembert_encoder import build_encoder, encoder_config, encoder_inputs

    config = encoder_config(config, preprocessor)
    encoder = build_encoder(config, len(preprocessor.vocabulary))
    inputs = encoder_inputs(config)
    embeddings = encoder(inputs)
    mask_positions = keras.Input((None,), dtype="int32", name="mask_positions")
    head = keras_hub.layers.MaskedLMHead(
        token_embedding=encoder.get_layer("token_embedding"), activation="softmax", name="mlm_head"
    )
    predictions = head(embeddings, mask_positions=mask_positions)
    return keras.Model({**inputs, "mask_positions": mask_positions}, predictions, name="elembert_mlm"), encoder


def mask_maker(config: dict, preprocessor, arrays=None):
    """`make(inputs) -> (x, y, weights)`: masked tokens and positions, the original ids, their weights;
    of the preprocessor's other arrays, only those the encoder reads."""
    import keras_hub

    from keras_chem.models.elembert_encoder import encoder_config, encoder_input_names

    masker = keras_hub.layers.MaskedLMMaskGenerator(
        vocabulary_size=len(preprocessor.vocabulary),
        mask_selection_rate=MASK_RATE,
        mask_token_id=preprocessor.vocabulary.mask_id,
        mask_selection_length=max(1, math.ceil(MASK_RATE * preprocessor.cap)),
        unselectable_token_ids=[PAD_ID, CLS_ID, SEP_ID],
        mask_token_rate=0.8,
        random_token_rate=0.1,
    )

    names = encoder_input_names(encoder_config(config, preprocessor))

    def make(inputs: dict):
        masked = masker(inputs["tokens"])
        x = {**{name: inputs[name] for name in names}, "tokens": np.asarray(masked["token_ids"]), "mask_positions": np.asarray(masked["mask_positions"])}
        return x, np.asarray(masked["mask_ids"]), np.asarray(masked["mask_weights"])

    return make


def _loss():
    import keras

    return keras.losses.SparseCategoricalCrossentropy()


def _metrics():
    import keras

    return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


# every molecule dataset of the registry (QM9 once: its other files hold the same molecules), about 324k rows
MOLECULE_CORPUS = ("tox21", "toxcast", "bbbp", "bace", "clintox", "sider", "hiv", "muv", "qm7", "qm8", "qm9_hlg", "esol", "freesolv",
                   "lipophilicity")


MASKED_TOKENS = PretrainObjective(
    name="mlm",
    description="masked atom tokens (15 %, BERT's 80/10/10), predicted through the tied token embedding",
    build=build_mlm,
    make_batch=mask_maker,
    loss=_loss,
    metrics=_metrics,
    summary_metric="accuracy",
    default_datasets=MOLECULE_CORPUS,
    encoder_weights="encoder_weights.npz",
    # descriptors: the encoder never sees them; atom features and bonds would give away much of a masked atom (its
    # degree, hydrogens, hybridization), and a model fine-tuned with them starts their embedding and bias at zero
    defaults={"descriptors": False, "atom_features": False, "bonds": False},
)


def shipped_encoder_path(name: str) -> Path:
    """A shipped encoder (`weights/`, one of `SHIPPED_ENCODERS`), pretrained by `kchem pretrain elembert`."""
    from importlib.resources import files

    return Path(str(files("keras_chem.weights") / name))


def pretrained_encoder_weights(source: str, config: dict, preprocessor) -> list[np.ndarray] | None:
    """The weights of the encoder `--init` names, after checking it fits the model being built.

    `source`: `pretrained` (the shipped encoder that fits), `auto` (the shipped encoder that fits,
    else None: a random initialisation), a `kchem pretrain` output directory or its `encoder_weights.npz`, or a
    `kchem train elembert` run directory (supervised transfer: the encoder of its first model, trained on other labels).
    """
    from keras_chem.models.saving import load_encoder_weights, load_model

    if source in (AUTO_INIT, SHIPPED_INIT):
        problems = []
        for path in map(shipped_encoder_path, SHIPPED_ENCODERS):
            weights, meta = load_encoder_weights(path) if path.exists() else (None, None)
            problem = _mismatch(meta, config, preprocessor) if meta else "not installed"
            if not problem:
                return weights
            problems.append(f"{path.name}: {problem}")
        if source == AUTO_INIT:
            return None
        raise ValueError(f"--init pretrained: no shipped encoder fits this model ({'; '.join(problems)}); --init none trains from scratch")
    path = Path(source)
    if path.is_dir() and (path / PRETRAIN_INFO_FILE).exists():
        meta = json.loads((path / PRETRAIN_INFO_FILE).read_text())
        read_weights = lambda: load_model(path / PRETRAIN_ENCODER_FILE).get_weights()  # noqa: E731
    elif path.is_dir() and (path / TRAINED_MODEL).exists():
        meta = _trained_model_meta(path)
        read_weights = lambda: load_model(path / TRAINED_MODEL).get_layer(ENCODER_LAYER).get_weights()  # noqa: E731
    elif path.suffix == ".npz" and path.exists():
        weights, meta = load_encoder_weights(path)
        read_weights = lambda: weights  # noqa: E731
    else:
        raise FileNotFoundError(f"--init {source}: neither a `kchem pretrain` output directory (its {PRETRAIN_INFO_FILE}), an "
                                f"encoder .npz nor a finished `kchem train elembert` run directory (its {TRAINED_MODEL})")
    problem = _mismatch(meta, config, preprocessor)
    if problem:
        raise ValueError(f"--init {source} does not fit this model ({problem}); --init none trains from scratch")
    return read_weights()


def _trained_model_meta(run: Path) -> dict:
    """The `meta` of an encoder npz for the encoder of a `kchem train elembert` run (its configuration and fitted preprocessor)."""
    info = json.loads((run / "model_info.json").read_text())
    if info["model"] != "elembert":
        raise ValueError(f"--init {run}: a {info['model']} run, not an elEmBERT one")
    return {"config": json.loads((run / "config.json").read_text())["model_config"], "preprocessor": info["preprocessor"]}


def _mismatch(meta: dict, config: dict, preprocessor) -> str:
    """Why a pretrained encoder (its `meta`: config and preprocessor) does not fit; "" if it does."""
    from keras_chem.models.elembert_encoder import ENCODER_SWITCHES, encoder_config

    config = encoder_config(config, preprocessor)
    pretrained = {**meta["config"], **{k: meta["preprocessor"].get(k, False) for k in ENCODER_SWITCHES}}  # as settled
    mismatched = [k for k in ENCODER_SHAPE_KEYS if pretrained.get(k) != config.get(k)]
    # the other way round, they start at zero
    mismatched += [k for k in FINE_TUNING_SWITCHES if pretrained[k] and not config.get(k)]
    if _biased(pretrained) != _biased(config) and not {"distances", "bonds"} & set(mismatched):
        mismatched.append("bonds")  # without distances, bonds alone turn keras-hub's attention blocks into biased ones
    if mismatched:
        return ", ".join(f"{k}: pretrained {pretrained.get(k)!r} vs {config.get(k)!r}" for k in mismatched)
    if meta["preprocessor"]["vocabulary"]["tokens"] != preprocessor.vocabulary.tokens:
        return "another token vocabulary"
    if meta["preprocessor"].get("subelements_sha256") != preprocessor.subelements_sha256:
        return "tokens from another sub-element model"
    return ""


def _biased(config: dict) -> bool:
    """Whether the encoder's attention blocks take a pair bias (`BiasedTransformerEncoder`) rather than keras-hub's."""
    return bool(config.get("distances") or config.get("bonds"))


def set_encoder_weights(encoder, weights: list[np.ndarray]) -> None:
    """`weights` (`pretrained_encoder_weights`) into `encoder`; the layers of `FINE_TUNING_SWITCHES` that an encoder
    pretrained without them lacks stay as they are (zero: the model starts as the pretrained one)."""
    import itertools

    from keras import ops

    variables = encoder.weights
    layer_names = {layer.name for layer in encoder.layers}
    present = [name for name in FINE_TUNING_SWITCHES.values() if name in layer_names]
    for lacking in itertools.chain.from_iterable(itertools.combinations(present, n) for n in range(len(present) + 1)):
        kept = {variable.path for name in lacking for variable in encoder.get_layer(name).weights}
        if [tuple(v.shape) for v in variables if v.path not in kept] == [tuple(w.shape) for w in weights]:
            pretrained = iter(weights)
            encoder.set_weights([ops.convert_to_numpy(v) if v.path in kept else next(pretrained) for v in variables])
            return
    encoder.set_weights(weights)  # raises with Keras's account of the mismatch
