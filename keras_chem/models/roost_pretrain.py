"""Self-supervised pretraining of the Roost encoder (PretrainRoost, spec B.3) and `--init` from it.

`ssl`: Barlow Twins on two views of every composition. View 1 is the composition; view 2 zeroes the
element vectors of max(1, ⌊0.1·n⌋) of its n elements, drawn afresh every time a batch is read, with
the fractions kept and every pair passing messages (the original pairs view-2 elements only with
themselves and freezes the masks after the first epoch; neither is copied). Both views go through
the same encoder and a `Linear(256 → 1024)` projector; `losses/barlow_twins.py` compares them.

`multimodal`: an MLP head regresses, per composition, the learned vector of a structure model
(`kchem embed RUN --input FILE --out emb.npz` on a CrysToGraph run today), matched by formula.

`fingerprint`: a linear head regresses the Magpie-style fingerprint (`featurizers/magpie.py`),
min-max scaled on the pretraining corpus, MSE. `ssl+fingerprint`: both, Barlow Twins + 0.1 × MSE
(the original's `BT_Magpie`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from keras_chem.models.base import PRETRAIN_ENCODER_FILE, PRETRAIN_INFO_FILE, PretrainObjective

PROJECTOR_WIDTH = 1024
REDUNDANCY_WEIGHT = 0.0051  # λ
MASKED_SHARE = 0.1
FINGERPRINT_WEIGHT = 0.1  # of the MSE beside the Barlow Twins loss in `ssl+fingerprint`
ENCODER_SHAPE_KEYS = ("element_features", "element_embedding", "elem_fea_len", "n_graph", "heads", "readout_heads", "hidden",
                      "trunk", "trunk_out")
ENCODER_LAYERS = ("element_vectors", "element_projection", "readout", "trunk")


def encoder_model(config: dict, preprocessor):
    import keras

    from keras_chem.models.roost_encoder import build_encoder

    inputs, embedding = build_encoder(config, preprocessor)
    return keras.Model(inputs, embedding, name="roost_encoder")


def build_barlow_twins(config: dict, preprocessor):
    """Two views through one encoder and one projector, side by side: `(model, encoder)`."""
    import keras

    encoder = encoder_model(config, preprocessor)
    names = ("elem_z", "elem_frac", "elem_mask", "masked_elem_z")
    dtypes = {"elem_z": "int32", "elem_frac": "float32", "elem_mask": "bool", "masked_elem_z": "int32"}
    inputs = {name: keras.Input((None,), dtype=dtypes[name], name=name) for name in names}
    shared = {"elem_frac": inputs["elem_frac"], "elem_mask": inputs["elem_mask"]}
    projector = keras.layers.Dense(PROJECTOR_WIDTH, name="projector")
    first = projector(encoder({"elem_z": inputs["elem_z"], **shared}))
    second = projector(encoder({"elem_z": inputs["masked_elem_z"], **shared}))
    return keras.Model(inputs, keras.layers.Concatenate(name="views")([first, second]), name="roost_barlow_twins"), encoder


def hide_elements(elem_z: np.ndarray, elem_mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`elem_z` with max(1, ⌊0.1·n⌋) random real elements of each row set to 0, the table's zero row
    (a learned table learns that row instead: a mask vector)."""
    from keras_chem.models.views import random_subset

    hidden_count = np.maximum(1, np.floor(MASKED_SHARE * elem_mask.sum(axis=1))).astype(int)
    return np.where(random_subset(elem_mask, hidden_count, rng), 0, elem_z).astype(elem_z.dtype)


def view_maker(config: dict, preprocessor, arrays=None):
    """`make(inputs) -> (x, y)`: both views of a batch; y is unused by the loss."""
    rng = np.random.default_rng(np.random.randint(2**31))  # `pretrain` seeds numpy first

    def make(inputs: dict):
        x = {**inputs, "masked_elem_z": hide_elements(inputs["elem_z"], inputs["elem_mask"], rng)}
        return x, np.zeros((len(inputs["elem_z"]), 1), dtype=np.float32)

    return make


def build_fingerprint(config: dict, preprocessor):
    """The encoder and a linear head onto the Magpie-style fingerprint: `(model, encoder)`."""
    import keras

    from keras_chem.featurizers.magpie import feature_names

    encoder = encoder_model(config, preprocessor)
    inputs = {t.name: keras.Input(t.shape[1:], dtype=t.dtype, name=t.name) for t in encoder.inputs}
    head = keras.layers.Dense(len(feature_names()), name="fingerprint_head")(encoder(inputs))
    return keras.Model(inputs, head, name="roost_fingerprint"), encoder


def fingerprint_maker(config: dict, preprocessor, arrays):
    """`make(inputs) -> (inputs, fingerprint)`: the Magpie-style fingerprint of each composition,
    min-max scaled to [0, 1] over the pretraining corpus (constant features become 0)."""
    from keras_chem.featurizers.magpie import magpie_fingerprint

    corpus = magpie_fingerprint(arrays["elem_z"], arrays["elem_frac"], arrays["elem_mask"])
    low, span = corpus.min(axis=0), np.ptp(corpus, axis=0)
    span = np.where(span > 0, span, 1.0)

    def make(inputs: dict):
        fingerprint = magpie_fingerprint(inputs["elem_z"], inputs["elem_frac"], inputs["elem_mask"])
        return inputs, ((fingerprint - low) / span).astype(np.float32)

    return make


def _mean_squared_error():
    import keras

    return keras.losses.MeanSquaredError()


FINGERPRINT = PretrainObjective(
    name="fingerprint",
    description="regression of a 126-d Magpie-style fingerprint, min-max scaled on the corpus (MSE)",
    build=build_fingerprint,
    make_batch=fingerprint_maker,
    loss=_mean_squared_error,
    defaults={"learning_rate": 1e-4, "patience": 10, "batch_size": 128},
    validation_share=0.05,
)


def build_barlow_twins_fingerprint(config: dict, preprocessor):
    """Both: the views' projections and the fingerprint head of view 1, side by side: `(model, encoder)`."""
    import keras

    from keras_chem.featurizers.magpie import feature_names

    twins, encoder = build_barlow_twins(config, preprocessor)
    view = {name: twins.input[name] for name in ("elem_z", "elem_frac", "elem_mask")}
    fingerprint = keras.layers.Dense(len(feature_names()), name="fingerprint_head")(encoder(view))
    outputs = keras.layers.Concatenate(name="views_and_fingerprint")([twins.output, fingerprint])
    return keras.Model(twins.input, outputs, name="roost_barlow_twins_fingerprint"), encoder


def views_and_fingerprint_maker(config: dict, preprocessor, arrays):
    views, fingerprints = view_maker(config, preprocessor, arrays), fingerprint_maker(config, preprocessor, arrays)

    def make(inputs: dict):
        return views(inputs)[0], fingerprints(inputs)[1]

    return make


def _combined_loss():
    from keras_chem.losses.barlow_twins import BarlowTwinsWithRegression

    return BarlowTwinsWithRegression(PROJECTOR_WIDTH, weight=FINGERPRINT_WEIGHT, redundancy_weight=REDUNDANCY_WEIGHT)


def structure_embeddings(config: dict, preprocessor) -> dict[bytes, np.ndarray]:
    """`config["structure_embeddings"]` (a `kchem embed` file of a structure model) as composition key
    → vector, the mean over the structures of one composition (polymorphs)."""
    from keras_chem.models.base import row_keys

    path = config.get("structure_embeddings")
    if not path:
        raise ValueError("--strategy multimodal needs --structure-embeddings FILE.npz, written by `kchem embed` on a structure model")
    with np.load(path, allow_pickle=False) as saved:
        if "formula" not in saved.files:
            raise ValueError(f"{path} has no formula per row; write it again with `kchem embed`")
        formulas, vectors = saved["formula"].tolist(), saved["embeddings"].astype(np.float32)
    usable = [i for i, formula in enumerate(formulas) if formula and np.isfinite(vectors[i]).all()]
    features = preprocessor.featurize([str(i) for i in usable], [formulas[i] for i in usable], "composition")
    keys = row_keys(features.arrays, preprocessor.sizes(features.arrays), preprocessor.padded_axes)
    grouped: dict[bytes, list[np.ndarray]] = {}
    for key, row in zip(keys, np.asarray(usable)[features.kept]):
        grouped.setdefault(key, []).append(vectors[row])
    if not grouped:
        raise ValueError(f"{path}: no row with a formula and a finite embedding")
    return {key: np.mean(group, axis=0) for key, group in grouped.items()}


def build_multimodal(config: dict, preprocessor):
    """The encoder and spec B.4's head onto the structure embedding (1024, 512, 256 → d): `(model, encoder)`."""
    import keras

    width = len(next(iter(structure_embeddings(config, preprocessor).values())))
    encoder = encoder_model(config, preprocessor)
    inputs = {t.name: keras.Input(t.shape[1:], dtype=t.dtype, name=t.name) for t in encoder.inputs}
    h = encoder(inputs)
    for i, units in enumerate((1024, 512)):
        h = keras.layers.Dense(units, activation="relu", name=f"structure_head_{i}")(h)
    h = keras.layers.Dense(256, name="structure_head_2")(h)
    return keras.Model(inputs, keras.layers.Dense(width, name="structure_embedding")(h), name="roost_multimodal"), encoder


def structure_target_maker(config: dict, preprocessor, arrays):
    """`make(inputs) -> (inputs, vectors)`: each composition's structure embedding, NaN (no loss)
    where the file has none."""
    from keras_chem.models.base import row_keys

    targets = structure_embeddings(config, preprocessor)
    width = len(next(iter(targets.values())))
    missing = np.full(width, np.nan, dtype=np.float32)
    found = sum(key in targets for key in row_keys(arrays, preprocessor.sizes(arrays), preprocessor.padded_axes))
    if found == 0:
        raise ValueError("no pretraining composition has a structure embedding; pretrain on the datasets you embedded")

    def make(inputs: dict):
        keys = row_keys(inputs, preprocessor.sizes(inputs), preprocessor.padded_axes)
        return inputs, np.stack([targets.get(key, missing) for key in keys])

    return make


def _masked_mean_squared_error():
    from keras_chem.losses.masked import MaskedMeanSquaredError

    return MaskedMeanSquaredError()


MULTIMODAL = PretrainObjective(
    name="multimodal",
    description="regression of each composition's structure embedding from a keras-chem structure model (`kchem embed`), MSE",
    build=build_multimodal,
    make_batch=structure_target_maker,
    loss=_masked_mean_squared_error,
    defaults={"learning_rate": 1e-4, "patience": 10, "batch_size": 128},
    validation_share=0.05,
)


def _barlow_twins_loss():
    from keras_chem.losses.barlow_twins import BarlowTwinsLoss

    return BarlowTwinsLoss(REDUNDANCY_WEIGHT)


BARLOW_TWINS = PretrainObjective(
    name="ssl",
    description="Barlow Twins between each composition and a copy with 10 % of its element vectors zeroed (fresh every epoch)",
    build=build_barlow_twins,
    make_batch=view_maker,
    loss=_barlow_twins_loss,
    defaults={"learning_rate": 1e-4, "patience": 10, "batch_size": 128},
    validation_share=0.05,
    padded_inputs={"masked_elem_z": (1,)},
)

BARLOW_TWINS_FINGERPRINT = PretrainObjective(
    name="ssl+fingerprint",
    description="Barlow Twins + 0.1 × the fingerprint MSE (the original's combined loss)",
    build=build_barlow_twins_fingerprint,
    make_batch=views_and_fingerprint_maker,
    loss=_combined_loss,
    defaults={"learning_rate": 1e-4, "patience": 10, "batch_size": 128},
    validation_share=0.05,
    padded_inputs={"masked_elem_z": (1,)},
)


def initialize_from_pretraining(model, source: str | Path, config: dict) -> None:
    """Copy the pretrained encoder (element vectors and projection, message layers, readout, trunk)
    into `model`, after checking it has the same shape; the output heads stay new."""
    from keras_chem.models.saving import load_model

    source = Path(source)
    info_path = source / PRETRAIN_INFO_FILE
    if not info_path.exists():
        raise FileNotFoundError(f"--init {source}: no {PRETRAIN_INFO_FILE}; pass a `kchem pretrain roost` output directory")
    info = json.loads(info_path.read_text())
    if info.get("model") != "roost":
        raise ValueError(f"--init {source} pretrained a {info.get('model')!r} model, not roost")
    from keras_chem.models.roost_encoder import widths

    def shape(options, key):
        return widths(options.get(key)) if key == "trunk" else options.get(key)

    mismatched = [k for k in ENCODER_SHAPE_KEYS if shape(info["config"], k) != shape(config, k)]
    if mismatched:
        details = ", ".join(f"{k}: pretrained {info['config'].get(k)!r} vs {config.get(k)!r}" for k in mismatched)
        raise ValueError(f"--init {source} does not fit this model ({details})")
    encoder = load_model(source / PRETRAIN_ENCODER_FILE)
    names = [*ENCODER_LAYERS, *(f"message_{i}" for i in range(config["n_graph"]))]
    for name in names:
        model.get_layer(name).set_weights(encoder.get_layer(name).get_weights())
