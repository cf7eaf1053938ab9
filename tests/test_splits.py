import csv
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import KFold, StratifiedKFold

from keras_chem.data.matbench_folds import load_matbench_folds, matbench_splits
from keras_chem.data.scaffolds import bemis_murcko_scaffold, scaffolds_from_smiles
from keras_chem.data.split_files import check_splits, read_splits_file, write_splits_file
from keras_chem.data.splits import Split, kfold_splits, replicate_splits, stratify_labels

pytestmark = pytest.mark.backend_independent

METHODS = ["random", "stratified", "scaffold"]


def data_file(*parts) -> Path:
    root = os.environ.get("KCHEM_DATA_DIR")
    if not root:
        pytest.skip("KCHEM_DATA_DIR is not set")
    path = Path(root, *parts)
    if not path.exists():
        pytest.skip(f"{path} not found")
    return path


def read_csv_gz(path: Path) -> list[dict]:
    with gzip.open(path, "rt", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def toy():
    """300 rows, 200 dedup groups (some rows duplicated), 40 scaffolds, imbalanced labels."""
    rng = np.random.default_rng(0)
    group_of_row = np.sort(rng.integers(0, 200, 300))
    groups = [f"mol{g}" for g in group_of_row]
    scaffolds = [f"scaf{g % 40}" for g in group_of_row]
    labels = (group_of_row % 5 == 0).astype(np.int64)
    return groups, labels, scaffolds


@pytest.fixture(scope="module")
def bbbp():
    rows = read_csv_gz(data_file("bbbp", "bbbp.csv.gz"))
    smiles = [next(iter(r.values())) for r in rows]
    return smiles, scaffolds_from_smiles(smiles)


def partition_of(split: Split, n: int) -> np.ndarray:
    part = np.full(n, -1)
    for i, name in enumerate(("train", "val", "test")):
        part[getattr(split, name)] = i
    return part


def assert_no_straddle(splits, keys):
    keys = np.asarray(keys, dtype=object)
    for split in splits:
        part = partition_of(split, len(keys))
        for key in set(keys[part >= 0]):
            assert len(set(part[keys == key]) - {-1}) == 1, f"{key} straddles partitions"


def make_kfold(toy, method, seed=0, n_folds=5):
    groups, labels, scaffolds = toy
    return kfold_splits(n_folds, method=method, seed=seed, groups=groups, labels=labels, scaffolds=scaffolds)


@pytest.mark.parametrize("method", METHODS)
def test_kfold_tests_every_row_once_and_parts_disjoint(toy, method):
    n = len(toy[0])
    splits = make_kfold(toy, method)
    assert len(splits) == 5
    np.testing.assert_array_equal(np.sort(np.concatenate([s.test for s in splits])), np.arange(n))
    for s in splits:
        assert len(s.val) > 0 and len(s.train) > len(s.test) > 0
        everything = np.concatenate([s.train, s.val, s.test])
        np.testing.assert_array_equal(np.sort(everything), np.arange(n))  # disjoint and complete
        assert s.train.dtype == np.int64 and np.all(np.diff(s.train) > 0)
    check_splits(splits, n, groups=toy[0], kfold=True)


@pytest.mark.parametrize("method", METHODS)
def test_kfold_deterministic_per_seed(toy, method):
    assert make_kfold(toy, method, seed=3) == make_kfold(toy, method, seed=3)
    assert make_kfold(toy, method, seed=3) != make_kfold(toy, method, seed=4)


@pytest.mark.parametrize("method", METHODS)
def test_duplicate_groups_never_straddle(toy, method):
    groups, labels, scaffolds = toy
    assert_no_straddle(make_kfold(toy, method), groups)
    reps = replicate_splits(3, method=method, seed=0, groups=groups, labels=labels, scaffolds=scaffolds)
    assert_no_straddle(reps, groups)
    check_splits(reps, len(groups), groups=groups)
    if method == "scaffold":
        assert_no_straddle(make_kfold(toy, method), scaffolds)
        assert_no_straddle(reps, scaffolds)


def test_scaffold_unit_merges_groups_and_scaffolds():
    # rows 0 and 1 are the same molecule but got different scaffold strings: the unit is the union
    groups = ["a", "a", "b", "c", "d", "e", "f", "g"]
    scaffolds = ["s1", "s2", "s2", "s3", "s4", "s5", "s6", "s7"]
    splits = kfold_splits(2, method="scaffold", seed=0, groups=groups, scaffolds=scaffolds, val_fraction=0)
    for s in splits:
        part = partition_of(s, len(groups))
        assert part[0] == part[1] == part[2]


def test_scaffold_kfold_on_bbbp(bbbp):
    smiles, scaffolds = bbbp
    splits = kfold_splits(5, method="scaffold", seed=1, groups=smiles, scaffolds=scaffolds)
    check_splits(splits, len(smiles), groups=smiles, kfold=True)
    check_splits(splits, len(smiles), groups=scaffolds, kfold=True)
    assert_no_straddle(splits[:2], scaffolds)
    sizes = [len(s.test) for s in splits]
    largest_set = max(np.unique(scaffolds, return_counts=True)[1])
    assert max(sizes) - min(sizes) <= largest_set


def test_scaffold_replicates_on_bbbp(bbbp):
    smiles, scaffolds = bbbp
    reps = replicate_splits(2, method="scaffold", seed=0, groups=smiles, scaffolds=scaffolds)
    check_splits(reps, len(smiles), groups=scaffolds)
    for s in reps:
        n = len(smiles)
        assert abs(len(s.train) - 0.8 * n) < 0.02 * n and len(s.val) > 0.05 * n and len(s.test) > 0.05 * n
    assert reps[0] != reps[1]


def test_stratified_keeps_class_ratio(toy):
    groups, labels, _ = toy
    for s in make_kfold(toy, "stratified"):
        assert abs(labels[s.test].mean() - labels.mean()) < 0.06
    for s in replicate_splits(2, method="stratified", seed=0, groups=groups, labels=labels):
        assert abs(labels[s.test].mean() - labels.mean()) < 0.08


def test_replicates_use_seed_plus_r(toy):
    groups, labels, scaffolds = toy
    for method in METHODS:
        kw = dict(method=method, groups=groups, labels=labels, scaffolds=scaffolds)
        two = replicate_splits(2, seed=10, **kw)
        assert two[1] == replicate_splits(1, seed=11, **kw)[0]
        assert two[0] != two[1]
        n = len(groups)
        np.testing.assert_array_equal(np.sort(np.concatenate([two[0].train, two[0].val, two[0].test])), np.arange(n))


def test_random_replicate_sizes_exact_without_duplicates():
    groups = [str(i) for i in range(100)]
    (s,) = replicate_splits(1, method="random", seed=0, groups=groups)
    assert (len(s.train), len(s.val), len(s.test)) == (80, 10, 10)


def test_bad_arguments(toy):
    groups, labels, _ = toy
    with pytest.raises(ValueError, match="labels"):
        kfold_splits(5, method="stratified", seed=0, groups=groups)
    with pytest.raises(ValueError, match="scaffolds"):
        kfold_splits(5, method="scaffold", seed=0, groups=groups)
    with pytest.raises(ValueError, match="unknown split method"):
        kfold_splits(5, method="temporal", seed=0, groups=groups)
    with pytest.raises(ValueError, match="groups"):
        kfold_splits(5, method="random", seed=0, groups=["a", "a", "b"])
    # every scaffold links to every group: one unit cannot fill 3 folds
    with pytest.raises(ValueError, match="1 independent groups cannot fill 3 folds"):
        kfold_splits(3, method="scaffold", seed=0, groups=[str(i % 4) for i in range(12)],
                     scaffolds=[str(i % 3) for i in range(12)])


def test_hash_randomisation_does_not_change_splits(toy, tmp_path):
    code = (
        "import json, numpy as np\n"
        "from keras_chem.data.splits import kfold_splits\n"
        "g = [f'mol{i % 37}' for i in range(120)]\n"
        "lab = np.array([i % 3 == 0 for i in range(120)], dtype=np.int64)\n"
        "sc = [f'scaf{(i % 37) % 11}' for i in range(120)]\n"
        "print(json.dumps([[s.to_dict() for s in kfold_splits(3, method=m, seed=5, groups=g, labels=lab, scaffolds=sc)]"
        " for m in ('random', 'stratified', 'scaffold')]))\n"
    )
    outs = set()
    for hashseed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hashseed)
        outs.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout)
    assert len(outs) == 1


# --- Matbench official folds ------------------------------------------------------------


def official(task: str):
    return load_matbench_folds(data_file("matbench_splits", "matbench_v0.1_folds.json.gz"), task)


@pytest.mark.parametrize(
    "task, target, splitter",
    [("phonons", "last phdos peak", KFold), ("expt_is_metal", "is_metal", StratifiedKFold)],
)
def test_matbench_reproduces_official_folds(task, target, splitter):
    rows = read_csv_gz(data_file("matbench_compositions", f"matbench_{task}_composition.csv.gz"))
    ids = [r["mbid"] for r in rows]
    y = np.array([r[target] for r in rows])
    cv = splitter(n_splits=5, shuffle=True, random_state=18012019)
    regenerated = [np.sort(test) for _, test in cv.split(np.zeros((len(ids), 1)), y)]
    splits = matbench_splits(ids, official(f"matbench_{task}"), seed=0)
    assert len(splits) == 5
    for mine, ref in zip(splits, regenerated):
        np.testing.assert_array_equal(mine.test, ref)
        assert abs(len(mine.val) - 0.1 * (len(ids) - len(ref))) <= 1
        np.testing.assert_array_equal(np.sort(np.concatenate([mine.train, mine.val, mine.test])), np.arange(len(ids)))
    check_splits(splits, len(ids), kfold=True)
    assert matbench_splits(ids, official(task), seed=0) == splits
    assert matbench_splits(ids, official(task), seed=1) != splits


def test_matbench_skipped_rows_and_empty_fold():
    folds = [["a", "b", "zz"], ["c", "d"], ["e", "f"]]
    ids = ["a", "b", "c", "d", "e", "f", "g"]
    skipped = [i for i in ids if i != "d"]  # row "d" failed to load
    splits = matbench_splits(skipped, folds, seed=0, val_fraction=0)
    assert [[skipped[i] for i in s.test] for s in splits] == [["a", "b"], ["c"], ["e", "f"]]
    with pytest.raises(ValueError, match="fold 1"):
        matbench_splits([i for i in ids if i not in ("c", "d")], folds, seed=0)


def test_matbench_groups_drop_leaking_training_rows():
    ids = ["a", "b", "c", "d", "e", "f"]
    groups = ["x", "y", "x", "z", "w", "v"]  # "a" (test) and "c" are the same material
    (s,) = matbench_splits(ids, [["a", "b"]], seed=0, val_fraction=0, groups=groups)
    np.testing.assert_array_equal(s.test, [0, 1])
    np.testing.assert_array_equal(s.train, [3, 4, 5])


def test_load_matbench_folds_names():
    folds = official("matbench_steels")
    assert [len(f) for f in folds] == [63, 63, 62, 62, 62]
    assert official("steels") == folds
    with pytest.raises(ValueError, match="unknown Matbench task"):
        official("matbench_nope")


# --- splits files and checks -------------------------------------------------------------


def test_splits_file_round_trip(tmp_path, toy):
    splits = make_kfold(toy, "random")
    path = write_splits_file(tmp_path / "splits.json", splits)
    assert json.loads(path.read_text())[0].keys() == {"train", "val", "test"}
    assert read_splits_file(path, len(toy[0])) == splits
    assert Split.from_dict(splits[1].to_dict()) == splits[1]


def test_splits_file_accepts_chemprop_ranges(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps([{"train": "0-5,9", "val": [6], "test": "7-8"}]))
    (s,) = read_splits_file(path, 10)
    assert s.to_dict() == {"train": [0, 1, 2, 3, 4, 5, 9], "val": [6], "test": [7, 8]}


@pytest.mark.parametrize(
    "content, match",
    [
        ([{"train": [0, 1], "val": [], "test": [2]}, {"train": [0, 10], "val": [], "test": [2]}], "split 1 train: index 10 out of range"),
        ([{"train": [0, 1], "val": [1], "test": [2]}], "split 0: 1 rows in both train and val"),
        ([{"train": [0, 1.5], "val": [], "test": [2]}], "split 0 train: index 1.5 is not an int"),
        ([{"train": [0, 1], "val": []}], "split 0 has no test key"),
        ([{"train": [0, 0, 1], "test": [2]}], "split 0 train lists an index more than once"),
        ([{"train": [0, -1], "test": [2]}], "split 0 train: index -1 out of range"),
        ({"oops": 1}, "split 0 has no train, test key"),
        ([], "non-empty JSON list"),
    ],
)
def test_splits_file_validation(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=match):
        read_splits_file(path, 10)


def test_check_splits_catches_straddle_and_coverage():
    groups = ["a", "a", "b", "c"]
    bad = [Split(train=[0, 2], val=[], test=[1, 3])]
    with pytest.raises(ValueError, match="straddle.*'a'"):
        check_splits(bad, 4, groups=groups)
    check_splits(bad, 4)  # no groups given: fine
    folds = [Split(train=[2, 3], val=[], test=[0, 1]), Split(train=[0, 1, 3], val=[], test=[2])]
    check_splits(folds, 4, groups=groups)
    with pytest.raises(ValueError, match="not tested exactly once"):
        check_splits(folds, 4, groups=groups, kfold=True)
    with pytest.raises(ValueError, match="in both train and test"):
        check_splits([Split(train=[0, 1], val=[], test=[1])], 4)


def test_split_is_immutable_sorted_int64():
    s = Split(train=[3, 1, 2], val=np.array([5]), test=[4, 0])
    assert s.train.tolist() == [1, 2, 3] and s.train.dtype == np.int64
    with pytest.raises(ValueError):
        s.train[0] = 7


def test_bemis_murcko_scaffold():
    assert bemis_murcko_scaffold("OC(=O)Cc1ccccc1") == "c1ccccc1"
    assert bemis_murcko_scaffold("C[C@H](N)C(=O)Nc1ccc2ccccc2c1") == "c1ccc2ccccc2c1"
    assert bemis_murcko_scaffold("CCCCO") == ""
    assert bemis_murcko_scaffold("not a smiles(") == "not a smiles("


def test_stratify_labels():
    y = np.array([[np.nan, 1, 0], [1, np.nan, 1], [0, 0, np.nan], [1, 1, 0]])
    # every task has one NaN: the first (task 0) wins; NaN becomes class -1
    np.testing.assert_array_equal(stratify_labels(y), [-1, 1, 0, 1])
    y[0, 0], y[1, 2] = 0, np.nan
    np.testing.assert_array_equal(stratify_labels(y), [0, 1, 0, 1])
    assert stratify_labels(y).dtype == np.int64
    with pytest.raises(ValueError, match="non-integer"):
        stratify_labels(np.array([0.5, 1.0]))


def test_folds_option_takes_the_first_official_matbench_folds():
    from keras_chem.training.splitting import _first_folds

    official = ["f0", "f1", "f2", "f3", "f4"]
    assert _first_folds(official, 2) == ["f0", "f1"] and _first_folds(official, None) == official
    with pytest.raises(ValueError, match="Matbench defines 5 folds"):
        _first_folds(official, 6)
