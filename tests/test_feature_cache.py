"""Feature cache (.npz keyed by config hash) and the row mapper with Skips."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from keras_chem.data.types import Skip
from keras_chem.featurizers.cache import cache_key, feature_cache_dir, load_or_build
from keras_chem.featurizers.progress import map_rows

pytestmark = pytest.mark.backend_independent


@pytest.fixture(autouse=True)
def cache_root(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("KCHEM_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("KCHEM_PROGRESS", "0")
    return tmp_path


class CountingBuild:
    def __init__(self):
        self.calls = 0

    def __call__(self) -> dict[str, np.ndarray]:
        self.calls += 1
        return {
            "tokens": np.arange(12, dtype=np.int32).reshape(3, 4),
            "pdf": np.linspace(0, 1, 6, dtype=np.float32),
            "symbols": np.array(["C", "Cl", "H"]),
        }


CONFIG = {"dataset": "tox21", "featurizer": "tokens", "max_len": 256, "cutoff": 10.0}


def test_cache_dir_follows_env(cache_root, monkeypatch):
    assert feature_cache_dir() == cache_root / "features"
    monkeypatch.delenv("KCHEM_CACHE_DIR")
    assert feature_cache_dir() == Path.home() / ".cache" / "keras_chem" / "features"


def test_cache_key_is_short_and_canonical():
    key = cache_key(CONFIG)
    assert len(key) == 20 and all(c in "0123456789abcdef" for c in key)
    assert cache_key(dict(reversed(list(CONFIG.items())))) == key
    assert cache_key({**CONFIG, "cutoff": 8.0}) != key
    assert cache_key({**CONFIG, "cutoff": np.float64(10.0)}) == key


def test_builds_once_then_loads(cache_root):
    build = CountingBuild()
    first = load_or_build(CONFIG, build)
    second = load_or_build(CONFIG, build)
    assert build.calls == 1
    assert (cache_root / "features" / f"{cache_key(CONFIG)}.npz").is_file()
    assert first.keys() == second.keys() == {"tokens", "pdf", "symbols"}
    for name in first:
        assert np.array_equal(first[name], second[name])
        assert first[name].dtype == second[name].dtype
    assert second["symbols"].tolist() == ["C", "Cl", "H"]
    load_or_build({**CONFIG, "max_len": 128}, build)
    assert build.calls == 2


def test_corrupt_cache_is_rebuilt_with_a_warning(cache_root):
    build = CountingBuild()
    load_or_build(CONFIG, build)
    path = cache_root / "features" / f"{cache_key(CONFIG)}.npz"
    path.write_bytes(b"definitely not a zip file")
    with pytest.warns(UserWarning, match="unreadable.*rebuilding"):
        arrays = load_or_build(CONFIG, build)
    assert build.calls == 2
    assert arrays["tokens"].shape == (3, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_or_build(CONFIG, build)  # the rebuilt file is good again
    assert build.calls == 2


def test_pickled_objects_are_refused():
    with pytest.raises(TypeError, match="object dtype"):
        load_or_build(CONFIG, lambda: {"bad": np.array([{"a": 1}], dtype=object)})


def test_map_rows_keeps_order_and_turns_errors_into_skips():
    def fn(x):
        if x == 0:
            raise ValueError("no zeros")
        if x < 0:
            return None, "negative\ninput"
        return 10 / x, None

    kept, values, skips = map_rows(["a", "b", "c", "d", "e"], [1, 0, 2, -1, 5], fn, "dividing")
    assert isinstance(kept, np.ndarray) and kept.tolist() == [0, 2, 4]
    assert values == [10.0, 5.0, 2.0]
    assert skips == [Skip("b", "ValueError: no zeros"), Skip("d", "negative input")]


def test_a_bug_in_a_featurizer_stops_with_the_row_named_instead_of_skipping_every_row():
    from keras_chem.featurizers.progress import FeaturizerBug

    def buggy(x):
        return x.no_such_attribute, None

    with pytest.raises(FeaturizerBug, match="internal error while featurizing row a: AttributeError"):
        map_rows(["a", "b"], [1, 2], buggy, "buggy")


def test_map_rows_length_mismatch():
    with pytest.raises(ValueError, match="2 ids but 1 inputs"):
        map_rows(["a", "b"], [1], lambda x: (x, None), "x")
