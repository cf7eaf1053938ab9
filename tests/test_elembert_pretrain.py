"""Masked-token pretraining of the elEmBERT encoder and fine-tuning from it (--init)."""

import json

import numpy as np
import pytest

from keras_chem.featurizers.tokens import CLS_ID, PAD_ID, SEP_ID
from keras_chem.models.base import TaskInfo
from keras_chem.models.elembert import FAMILY, ElembertPreprocessor
from keras_chem.models.elembert_pretrain import mask_maker, pretrained_encoder_weights
from keras_chem.training.config import resolve_model_config
from keras_chem.training.pretrain import build_corpus, pretrain

V0 = resolve_model_config(FAMILY, {"tokens": "v0", "epochs": 2, "batch_size": 16})


def test_masks_follow_the_bert_recipe():
    pre = ElembertPreprocessor(tokens="v0")
    smiles = ["CCCCCCCCCCCCO"] * 400
    tokens = pre.fit_transform([str(i) for i in range(400)], smiles, "smiles").arrays["tokens"]
    inputs, originals, weights = mask_maker(V0, pre)({"tokens": tokens})
    positions = inputs["mask_positions"][weights > 0]
    rows = np.repeat(np.arange(len(weights)), (weights > 0).sum(axis=1))
    assert not np.isin(tokens[rows, positions], [PAD_ID, CLS_ID, SEP_ID]).any()
    assert np.array_equal(originals[weights > 0], tokens[rows, positions])
    n_atoms = np.count_nonzero(tokens > CLS_ID)
    assert (weights > 0).sum() / n_atoms == pytest.approx(0.15, abs=0.02)
    replaced = inputs["tokens"][rows, positions]
    assert np.mean(replaced == pre.vocabulary.mask_id) == pytest.approx(0.8, abs=0.05)
    assert np.mean(replaced == originals[weights > 0]) == pytest.approx(0.1 + 0.1 / len(pre.vocabulary), abs=0.05)


def test_pretrain_then_init_transfers_the_encoder(tmp_path):
    info = pretrain(FAMILY, "mlm", ["bbbp"], V0, tmp_path / "pt", seed=0, limit=80)
    assert info["n_sequences"] == 80 and 0.0 <= info["val_accuracy"] <= 1.0
    assert json.loads((tmp_path / "pt" / "pretrain_info.json").read_text())["datasets"] == ["bbbp"]

    pre = ElembertPreprocessor(tokens="v0")
    pre.fit_transform(["a"], ["CCO"], "smiles")
    pretrained = pretrained_encoder_weights(str(tmp_path / "pt"), V0, pre)
    from_npz = pretrained_encoder_weights(str(tmp_path / "pt" / "encoder_weights.npz"), V0, pre)
    model = FAMILY.build(V0, pre, TaskInfo("classification", ["t"]))
    FAMILY.initialize(model, str(tmp_path / "pt"), V0, pre)
    for mine, theirs, shipped in zip(model.get_layer("elembert_encoder").get_weights(), pretrained, from_npz, strict=True):
        np.testing.assert_array_equal(mine, theirs)
        np.testing.assert_array_equal(mine, shipped)

    smaller = {**V0, "embed_dim": 16}
    with pytest.raises(ValueError, match="embed_dim"):
        FAMILY.initialize(FAMILY.build(smaller, pre, TaskInfo("classification", ["t"])), str(tmp_path / "pt"), smaller, pre)
    with pytest.raises(FileNotFoundError, match="pretrain_info.json"):
        pretrained_encoder_weights(str(tmp_path), V0, pre)
    with pytest.raises(ValueError, match="no pretraining objective 'ssl'"):
        pretrain(FAMILY, "ssl", ["bbbp"], V0, tmp_path / "other")


def test_a_trained_model_passes_its_encoder_on(bbbp_run):
    """Supervised transfer: `--init RUN` starts a model for other labels from the encoder of a `kchem train elembert` run."""
    from keras_chem.models.saving import load_model

    trained = load_model(bbbp_run / "fold_0" / "model.keras").get_layer("elembert_encoder").get_weights()
    config = resolve_model_config(FAMILY, {"tokens": "v0", "layers": 1})  # the run's (`runs.TINY`)
    pre = FAMILY.preprocessor(config)
    pre.fit_transform(["a", "b"], ["CCO", "c1ccccc1N"], "smiles")
    model = FAMILY.build(config, pre, TaskInfo("classification", ["another assay"]))
    FAMILY.initialize(model, str(bbbp_run), config, pre)
    for mine, theirs in zip(model.get_layer("elembert_encoder").get_weights(), trained, strict=True):
        np.testing.assert_array_equal(mine, theirs)

    wider = {**config, "embed_dim": 64}
    with pytest.raises(ValueError, match="embed_dim: pretrained 32 vs 64"):
        FAMILY.initialize(FAMILY.build(wider, pre, TaskInfo("classification", ["t"])), str(bbbp_run), wider, pre)


@pytest.mark.backend_independent
def test_corpus_knows_a_molecule_by_its_canonical_smiles():
    """ToxCast's first rows are mostly Tox21 molecules spelled differently: excluding Tox21 must
    catch them by canonical SMILES, and isomers (equal V0 tokens) must both stay."""
    from keras_chem.data.dedup import smiles_key
    from keras_chem.data.loaders import load_dataset

    toxcast = load_dataset("toxcast", limit=200)
    tox21 = load_dataset("tox21")
    spelled_alike = len(set(toxcast.inputs) & set(tox21.inputs))
    in_tox21 = len({smiles_key(s) for s in toxcast.inputs} & {smiles_key(s) for s in tox21.inputs})
    assert in_tox21 > 2 * spelled_alike
    arrays, preprocessor, counts = build_corpus(FAMILY, V0, ["toxcast"], exclude=["tox21"], limit=200)
    assert counts["n_excluded"] >= in_tox21 and len(arrays["tokens"]) == counts["n_featurized"] - counts["n_excluded"] - counts["n_duplicates"]
    assert preprocessor.cap == arrays["tokens"].shape[1]

    arrays, _, _ = build_corpus(FAMILY, V0, ["esol"])
    assert len(arrays["tokens"]) == len({smiles_key(s) for s in load_dataset("esol").inputs})
    assert len(np.unique(arrays["tokens"], axis=0)) < len(arrays["tokens"])  # isomers: equal V0 tokens, both kept


@pytest.mark.parametrize("name, distances", [("elembert_mlm_v1_distances.npz", True), ("elembert_mlm_v1.npz", False)])
def test_the_shipped_encoders_are_the_default_init_and_fine_tune(name, distances):
    """weights/: the manifest's sha256, the default V1 vocabulary and the paper's sizes, with
    distance-biased attention and without; a default model (the one that fits) starts from it and
    takes a training step; another size starts afresh."""
    import hashlib

    import keras

    from keras_chem.models.elembert_pretrain import ENCODER_SHAPE_KEYS, shipped_encoder_path
    from keras_chem.models.saving import load_encoder_weights

    path = shipped_encoder_path(name)
    manifest = [json.loads(line) for line in (path.parent / "MANIFEST.jsonl").read_text().splitlines()]
    entry = next(e for e in manifest if e["file"] == name)
    assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert entry["objective"] == "mlm" and entry["n_sequences"] > 100_000 and "pretrain elembert" in entry["command"]

    config = resolve_model_config(FAMILY, {"learning_rate": 1e-2, **({} if distances else {"distances": "false"})})
    assert config["init"] == "auto"
    weights, meta = load_encoder_weights(path)
    pre = FAMILY.preprocessor(config)
    assert meta["preprocessor"]["vocabulary"]["tokens"] == pre.vocabulary.tokens
    assert meta["preprocessor"]["subelements_sha256"] == pre.subelements_sha256
    shapes = {**{k: meta["config"][k] for k in ENCODER_SHAPE_KEYS if k != "distances"}, "distances": meta["preprocessor"].get("distances", False)}
    assert shapes == {"tokens": "v1", "embed_dim": 32, "heads": 2, "layers": 2, "ff_dim": 32, "positional": False, "distances": distances}
    assert weights[0].shape == (len(pre.vocabulary), 32)

    arrays = pre.fit_transform([str(i) for i in range(4)], ["CCO", "c1ccccc1O", "CC(=O)N", "CCCl"], "smiles").arrays
    assert pre.distances is distances and ("coordinates" in arrays) is distances
    task = TaskInfo("classification", ["t"])
    model = FAMILY.build(config, pre, task)
    FAMILY.initialize(model, config["init"], config, pre)
    encoder = model.get_layer("elembert_encoder")
    # atom features, and bonds beside distances: on by default; the shipped encoders have neither
    fine_tuning_only = ("atom_feature_embedding", "bond_bias") if distances else ("atom_feature_embedding",)
    assert {layer.name for layer in encoder.layers} & {"atom_feature_embedding", "bond_bias"} == set(fine_tuning_only)
    chemistry = {v.path: v for name in fine_tuning_only for v in encoder.get_layer(name).weights}
    assert len(chemistry) == len(fine_tuning_only) and not any(keras.ops.convert_to_numpy(v).any() for v in chemistry.values())
    pretrained_part = [keras.ops.convert_to_numpy(v) for v in encoder.weights if v.path not in chemistry]
    for mine, shipped in zip(pretrained_part, weights, strict=True):
        np.testing.assert_array_equal(mine, shipped)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=FAMILY.loss(task, None, config))
    loss = model.train_on_batch(arrays, np.array([[1.0], [0.0], [1.0], [0.0]]))
    assert np.isfinite(loss)
    assert not np.array_equal(model.get_layer("elembert_encoder").get_weights()[0], weights[0])

    wider = {**config, "embed_dim": 64}
    model = FAMILY.build(wider, pre, task)
    before = model.get_layer("elembert_encoder").get_weights()[0]
    FAMILY.initialize(model, "auto", wider, pre)
    np.testing.assert_array_equal(model.get_layer("elembert_encoder").get_weights()[0], before)
    with pytest.raises(ValueError, match="embed_dim: pretrained 32 vs 64"):
        FAMILY.initialize(model, "pretrained", wider, pre)
