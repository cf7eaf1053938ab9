"""Roost pretraining: the Barlow Twins loss against numpy, the masked views, `kchem pretrain roost
--strategy ssl` end to end and `--init` fine-tuning from it."""

import json

import keras
import numpy as np
import pytest

from keras_chem.losses.barlow_twins import BarlowTwinsLoss, BarlowTwinsWithRegression
from keras_chem.models.roost_pretrain import hide_elements

TINY = ["--elem-fea-len", "16", "--hidden", "16", "--n-graph", "2", "--heads", "2", "--readout-heads", "2", "--trunk", "32,16",
        "--trunk-out", "16", "--output-hidden", "16"]


def test_barlow_twins_matches_numpy():
    rng = np.random.default_rng(0)
    z1, z2 = rng.normal(size=(12, 5)), rng.normal(size=(12, 5))
    loss = keras.losses.deserialize(keras.losses.serialize(BarlowTwinsLoss(0.0051)))
    value = float(loss(np.zeros((12, 1)), np.concatenate([z1, z2], axis=1).astype("float32")))

    def normalised(z):
        return (z - z.mean(0)) / np.sqrt(z.var(0) + 1e-5)

    c = normalised(z1).T @ normalised(z2) / 12
    expected = np.sum((1 - np.diag(c)) ** 2) + 0.0051 * (np.sum(c**2) - np.sum(np.diag(c) ** 2))
    assert value == pytest.approx(expected, rel=1e-4)
    same = float(loss(np.zeros((12, 1)), np.concatenate([z1, z1], axis=1).astype("float32")))
    assert same < value  # identical views correlate perfectly on the diagonal

    fingerprint, target = rng.normal(size=(12, 3)), rng.normal(size=(12, 3))
    combined = keras.losses.deserialize(keras.losses.serialize(BarlowTwinsWithRegression(5, weight=0.1, redundancy_weight=0.0051)))
    got = float(combined(target.astype("float32"), np.concatenate([z1, z2, fingerprint], axis=1).astype("float32")))
    assert got == pytest.approx(expected + 0.1 * np.mean((target - fingerprint) ** 2), rel=1e-4)


def test_views_hide_a_tenth_of_the_real_elements_afresh():
    rng = np.random.default_rng(0)
    sizes = np.array([1, 3, 9, 10, 25])
    mask = np.arange(25)[None, :] < sizes[:, None]
    elem_z = np.where(mask, np.arange(1, 26)[None, :], 0).astype(np.int32)
    hidden = hide_elements(elem_z, mask, rng)
    assert ((hidden == 0) & mask).sum(axis=1).tolist() == [1, 1, 1, 1, 2]  # max(1, ⌊0.1 n⌋)
    assert np.array_equal(hidden[~mask], elem_z[~mask]) and hidden.dtype == elem_z.dtype
    draws = {hide_elements(elem_z, mask, rng)[3].tobytes() for _ in range(20)}
    assert len(draws) > 1  # fresh masks on every call, not frozen after the first epoch


@pytest.mark.runner_logic
def test_pretrain_then_fine_tune_from_the_encoder(tmp_path):
    from keras_chem.models.base import TaskInfo
    from keras_chem.models.registry import get_model_family
    from keras_chem.models.saving import load_model
    from keras_chem.training.config import resolve, resolve_model_config
    from keras_chem.training.runner import run

    from keras_chem.training.pretrain import pretrain

    out = tmp_path / "pretrained"
    family = get_model_family("roost")
    options = dict(zip([flag[2:].replace("-", "_") for flag in TINY[::2]], TINY[1::2]))
    strategy = family.pretraining["ssl+fingerprint"]
    pretrain(family, "ssl+fingerprint", ["roost_expt_non_metals", "matbench_expt_gap"],
             resolve_model_config(family, {**strategy.defaults, **options, "epochs": 2}), out, limit=150)
    info = json.loads((out / "pretrain_info.json").read_text())
    assert info["n_featurized"] == 300 and info["n_sequences"] == 300 - info["n_duplicates"]
    config = resolve_model_config(family, options)
    preprocessor = family.preprocessor(config)
    preprocessor.fit_transform(["a"], ["NaCl"], "composition")
    model = family.build(config, preprocessor, TaskInfo("regression", ["y"]))
    family.initialize(model, out, config, preprocessor)
    encoder = load_model(out / "encoder.keras")
    for name in ("element_projection", "message_0", "message_1", "readout", "trunk"):
        for ours, theirs in zip(model.get_layer(name).get_weights(), encoder.get_layer(name).get_weights()):
            np.testing.assert_array_equal(ours, theirs)
    with pytest.raises(ValueError, match="does not fit this model"):
        family.initialize(model, out, {**config, "n_graph": 3}, preprocessor)

    summary = run(resolve("roost", {}, {**options, "dataset": "matbench_expt_gap", "limit": 96, "epochs": 1, "replicates": 1,
                                        "split": "random", "init": str(out), "out": str(tmp_path / "fine-tuned")}))
    assert np.isfinite(summary["metrics"]["mae"]["mean"])


def test_corpus_takes_each_composition_once_and_leaves_out_excluded_datasets():
    from keras_chem.models.roost import FAMILY
    from keras_chem.training.config import resolve_model_config
    from keras_chem.training.pretrain import build_corpus

    config = resolve_model_config(FAMILY, {})
    arrays, preprocessor, counts = build_corpus(FAMILY, config, ["matbench_phonons_composition", "matbench_phonons", "roost_expt_non_metals"],
                                                limit=40)
    assert counts["n_featurized"] == 120 and counts["n_duplicates"] >= 40  # a structure's cell is its formula
    assert len(arrays["elem_z"]) == 120 - counts["n_duplicates"] and preprocessor.cap == arrays["elem_z"].shape[1]
    _, _, counts = build_corpus(FAMILY, config, ["matbench_phonons", "roost_expt_non_metals"], ["matbench_phonons_composition"], 40)
    assert counts["n_excluded"] >= 40  # every phonons row, and the non-metals that are phonons materials too


@pytest.mark.parametrize("strategy", [
    pytest.param("ssl", marks=pytest.mark.skipif(keras.backend.backend() == "jax", reason="runs end to end under JAX above")),
    pytest.param("fingerprint", marks=pytest.mark.runner_logic),
])
def test_pretraining_runs_in_process_on_this_backend(tmp_path, strategy):
    """The two views travel as bucketed batches (under TensorFlow, a tf.data spec whose padded axes
    stay open, the added `masked_elem_z` included)."""
    from keras_chem.models.registry import get_model_family
    from keras_chem.training.config import resolve_model_config
    from keras_chem.training.pretrain import pretrain

    family = get_model_family("roost")
    options = dict(zip([flag[2:].replace("-", "_") for flag in TINY[::2]], TINY[1::2]))
    config = resolve_model_config(family, {**family.pretraining[strategy].defaults, **options, "epochs": 1, "batch_size": 16})
    info = pretrain(family, strategy, ["matbench_steels", "roost_expt_non_metals"], config, tmp_path, limit=24)
    assert np.isfinite(info["val_loss"]) and (tmp_path / "encoder.keras").exists()
