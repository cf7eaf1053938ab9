"""SchNet: its layers against numpy references of spec C.3, invariance of the pooled vector to rotation,
translation and atom order, and the model end to end on given geometries, RDKit conformers and
periodic crystals, with every pooling; predict with the bad-input rules; `.keras` and SavedModel."""

import ase
import keras
import numpy as np
import pytest

from keras_chem.layers.schnet import GaussianSmearing, SchNetInteraction
from keras_chem.training.config import resolve
from keras_chem.training.runner import run
from runs import check_round_trip_and_saved_model, kchem

B, N, K, D = 2, 5, 4, 6
SIZES = [5, 2]
SMALL = {"hidden": 16, "filters": 16, "interactions": 2, "abp_hidden": 16, "abp_heads": 4, "abp_seeds": 4,
         "batch_size": 16, "epochs": 2, "patience": 2, "learning_rate": 1e-3}


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


def _ssp(x):
    return np.logaddexp(0.0, x) - np.log(2.0)


def _dense(layer, x):
    return x @ _np(layer.kernel) + (_np(layer.bias) if layer.use_bias else 0.0)


def test_gaussian_smearing_is_pygs():
    d = np.array([[0.0, 1.3, 9.99]], np.float32)
    centres = np.linspace(0, 10, 50)
    expected = np.exp(-0.5 / (centres[1] - centres[0]) ** 2 * (d[..., None] - centres) ** 2)
    np.testing.assert_allclose(_np(GaussianSmearing(10.0, 50)(d)), expected, rtol=1e-5, atol=1e-7)


def test_interaction_matches_a_flat_edge_list_and_ignores_padding():
    rng = np.random.default_rng(0)
    atom_mask = np.arange(N)[None] < np.array(SIZES)[:, None]
    nbr_idx = np.stack([rng.integers(0, n, size=(N, K)) for n in SIZES]).astype(np.int32)
    nbr_mask = atom_mask[..., None] & (rng.random((B, N, K)) < 0.7)
    distances = rng.uniform(0.5, 4.9, size=(B, N, K)).astype(np.float32)
    h = rng.normal(size=(B, N, D)).astype(np.float32)
    layer = SchNetInteraction(filters=8, cutoff=5.0)
    smear = GaussianSmearing(5.0, 12)
    out = _np(layer(h, nbr_idx, nbr_mask, smear(distances), distances))
    centres = np.linspace(0, 5, 12)
    for b, n in enumerate(SIZES):
        summed = np.zeros((n, 8))
        for i, s in zip(*np.nonzero(nbr_mask[b])):
            d = float(distances[b, i, s])
            rbf = np.exp(-0.5 / (centres[1] - centres[0]) ** 2 * (d - centres) ** 2)
            weight = _dense(layer.filter_out, _ssp(_dense(layer.filter_in, rbf))) * 0.5 * (np.cos(np.pi * d / 5.0) + 1)
            summed[i] += _dense(layer.lin1, h[b, nbr_idx[b, i, s]]) * weight
        expected = h[b, :n] + _dense(layer.lin, _ssp(_dense(layer.lin2, summed)))
        np.testing.assert_allclose(out[b, :n], expected, rtol=1e-4, atol=1e-5)
    garbled_idx = np.where(nbr_mask, nbr_idx, rng.integers(0, N, size=(B, N, K))).astype(np.int32)
    garbled_d = np.where(nbr_mask, distances, np.nan).astype(np.float32)
    again = _np(layer(h, garbled_idx, nbr_mask, smear(garbled_d), garbled_d))
    np.testing.assert_allclose(again[atom_mask], out[atom_mask], rtol=1e-6, atol=1e-6)


def _methane_like():
    return ase.Atoms("CH4", positions=[[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63], [-0.63, 0.63, -0.63], [0.63, -0.63, -0.6]])


@pytest.mark.parametrize("model, pooling", [("schnet", "abp"), ("schnet", "max"), ("dimenet", "abp")])
def test_pooled_vector_ignores_rotation_translation_and_atom_order(model, pooling):
    from scipy.spatial.transform import Rotation

    from keras_chem.models.base import TaskInfo
    from keras_chem.models.registry import get_model_family
    from keras_chem.training.config import resolve_model_config
    from test_dimenet import SMALL as DIMENET_SMALL

    keras.utils.set_random_seed(0)  # the pooled vector's scale spans 1e-8 to 400 over initializations
    family = get_model_family(model)
    small = SMALL if model == "schnet" else DIMENET_SMALL
    config = resolve_model_config(family, {**{k: v for k, v in small.items() if k in family.options}, "pooling": pooling})
    preprocessor = family.preprocessor(config)
    molecule = _methane_like()
    moved = molecule.copy()
    moved.positions = Rotation.from_euler("xyz", [0.3, 1.1, -0.7]).apply(molecule.positions) + [3.0, -2.0, 7.5]
    shuffled = molecule[[3, 0, 4, 2, 1]]
    other = ase.Atoms("NH3", positions=[[0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    arrays = preprocessor.fit_transform(["a", "b", "c", "d"], [molecule, moved, shuffled, other], "structure").arrays
    network = family.build(config, preprocessor, TaskInfo("regression", ["y"]))
    from keras_chem.layers.dimenet import DimeNetOutput

    for layer in network.layers:
        if isinstance(layer, DimeNetOutput):  # DimeNet++'s output blocks start at zero: give them weights
            layer.lin.kernel.assign(np.random.default_rng(0).normal(scale=0.1, size=layer.lin.kernel.shape))
    embedding = _np(family.embedder(network)(arrays))
    assert np.abs(embedding[0]).max() > 1e-2, embedding  # at a tinier scale the absolute tolerances below could not fail
    assert not np.allclose(embedding[3], embedding[0], atol=1e-3)
    np.testing.assert_allclose(embedding[1], embedding[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(embedding[2], embedding[0], rtol=1e-4, atol=1e-5)


def test_batches_of_small_molecules_carry_fewer_neighbour_slots():
    import ase.build

    from keras_chem.models.base import TaskInfo
    from keras_chem.models.neighbor_graph import RadiusGraphPreprocessor
    from keras_chem.models.schnet import FAMILY
    from keras_chem.training.batching import trim
    from keras_chem.training.config import resolve_model_config

    config = resolve_model_config(FAMILY, {k: v for k, v in SMALL.items() if k in FAMILY.options})
    preprocessor = FAMILY.preprocessor(config)
    arrays = preprocessor.fit_transform(["a", "b"], [_methane_like(), ase.build.molecule("CH3CH2OH")], "structure").arrays
    batch = trim(arrays, 16, preprocessor.padded_axes)
    small = preprocessor.trim_slots(batch, 16)
    assert batch["nbr_idx"].shape[2] == 32 and small["nbr_idx"].shape[2] == 16 and small["nbr_mask"].sum() == batch["nbr_mask"].sum()
    model = FAMILY.build(config, preprocessor, TaskInfo("regression", ["y"]))
    np.testing.assert_allclose(_np(model(small)), _np(model(batch)), rtol=1e-5, atol=1e-6)
    crystal = RadiusGraphPreprocessor(cutoff=4.0, max_neighbors=48)
    copper = crystal.fit_transform(["cu"], [ase.build.bulk("Cu", "fcc", a=3.6)], "structure").arrays
    assert crystal.trim_slots(trim(copper, 8, crystal.padded_axes), 8)["nbr_idx"].shape[2] == 48  # 18 neighbours (periodic images) for 1 atom


def _run(out, dataset, limit, model="schnet", **options):
    options = {"dataset": dataset, "split": "random", "replicates": 1, "limit": limit, "out": str(out), **options}
    return run(resolve(model, {}, options))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("schnet")
    summary = _run(out, "qm9_first500_u0", 48, pooling="abp", **{**SMALL, "batch_size": 64})  # one shape to compile
    assert np.isfinite(summary["metrics"]["mae"]["mean"]) and summary["geometry"] == "the coordinates given"
    return out


def bad_molecules() -> list:
    """A good molecule, then one per rule: a single atom and an atom far from the rest (both kept),
    overlapping atoms, NaN coordinates, an element past the embedding, more atoms than the cap."""
    far = _methane_like() + ase.Atoms("O", positions=[[30.0, 0, 0]])
    overlap = ase.Atoms("CO", positions=[[0, 0, 0], [0.01, 0, 0]])
    nan = ase.Atoms("CO", positions=[[0, 0, 0], [np.nan, 0, 0]])
    heavy = ase.Atoms(numbers=[6, 100], positions=[[0, 0, 0], [1.5, 0, 0]])
    big = ase.Atoms("C30", positions=[[1.5 * i, 0, 0] for i in range(30)])  # a chain: at most 13 neighbours in 10 Å
    return [_methane_like(), ase.Atoms("Ar", positions=[[0, 0, 0]]), far, overlap, nan, heavy, big]


@pytest.mark.runner_logic
def test_predict_applies_the_bad_input_rules(run_dir):
    import keras_chem

    frame = keras_chem.predict(run_dir, structures=bad_molecules())
    values, reasons = frame[frame.columns[0]], frame["reason"]
    assert np.isfinite(values[:3]).all() and not any(reasons[:3])
    assert "overlap" in reasons[3] and "non-finite" in reasons[4] and "Z=100" in reasons[5] and "over the model's cap" in reasons[6]


def test_keras_round_trip_and_saved_model(run_dir, tmp_path):
    check_round_trip_and_saved_model(run_dir, bad_molecules()[:3], "structure", tmp_path)


@pytest.mark.runner_logic
def test_attention_picture_and_a_fresh_process_predicts_and_embeds(run_dir, tmp_path):
    import ase.io

    assert (run_dir / "attention.png").stat().st_size > 10_000
    molecules = tmp_path / "molecules.extxyz"
    ase.io.write(molecules, bad_molecules()[:4], format="extxyz")
    assert "3 predicted, 1 could not be featurized" in " ".join(kchem("predict", str(run_dir), "--input", str(molecules)).stdout.split())
    kchem("embed", str(run_dir), "--input", str(molecules), "--out", str(tmp_path / "vectors.npz"))
    with np.load(tmp_path / "vectors.npz") as saved:
        assert saved["embeddings"].shape == (4, SMALL["hidden"] // 2) and np.isfinite(saved["embeddings"][:3]).all()


@pytest.mark.runner_logic
def test_smiles_train_on_rdkit_conformers(tmp_path):
    summary = _run(tmp_path, "qm7", 40, pooling="mean", **SMALL)
    assert np.isfinite(summary["metrics"]["mae"]["mean"]) and summary["geometry"].startswith("RDKit ETKDG + MMFF conformer")


@pytest.mark.runner_logic
def test_crystals_train_on_periodic_radius_graphs_and_crowded_ones_are_reported(tmp_path):
    summary = _run(tmp_path, "matbench_phonons", 24, pooling="abp", cutoff=4.0, max_neighbors=24, max_atoms=12, **SMALL)
    assert np.isfinite(summary["metrics"]["mae"]["mean"]) and summary["n_rows_used"] >= 10
    skipped = (tmp_path / "skipped.csv").read_text()
    assert "neighbours within 4 Å, over --max-neighbors 24" in skipped


def test_two_devices_train_the_weights_one_device_trains():
    from data_parallel import assert_two_devices_match

    assert_two_devices_match("keras_chem.models.schnet", "qm9_first500_u0", 64, {**SMALL, "pooling": "abp", "epochs": 1})
