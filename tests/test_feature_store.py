"""The streamed feature store: chunk by chunk, resumable after a kill, memory-mapped, keyed by
the data file, the featurizer version and its settings."""

import numpy as np
import pytest

from keras_chem.data.types import Skip
from keras_chem.featurizers.store import Chunk, build_store, open_store, store_dir

pytestmark = pytest.mark.backend_independent

KEY = {"dataset": "toy", "file_sha256": "ab12", "featurizer_version": 1}


def _rows(n=23):
    rng = np.random.default_rng(0)
    return [f"r{i}" for i in range(n)], [int(v) for v in rng.integers(0, 7, n)]


class Featurizer:
    """Row value v → a sequence of v+1 tokens (padded axis 1); v == 0 is a bad row."""

    def __init__(self, fail_at_chunk=None):
        self.calls, self.fail_at_chunk = 0, fail_at_chunk

    def __call__(self, ids, values):
        if self.calls == self.fail_at_chunk:
            raise KeyboardInterrupt  # the user stops the featurization
        self.calls += 1
        kept = [i for i, v in enumerate(values) if v > 0]
        width = max((values[i] + 1 for i in kept), default=1)
        tokens = np.zeros((len(kept), width), np.int32)
        for row, i in enumerate(kept):
            tokens[row, : values[i] + 1] = 1 + np.arange(values[i] + 1)
        features = np.full((len(kept), 3), 0.5, np.float32)
        skipped = [Skip(ids[i], "zero") for i, v in enumerate(values) if v == 0]
        return Chunk(np.asarray(kept, np.int64), {"tokens": tokens, "features": features}, skipped)


def _build(tmp_path, featurize, key=KEY):
    ids, values = _rows()
    return build_store(key, ids, values, featurize, {"tokens": (1,)}, lambda cap: {"cap": cap}, cache_dir=tmp_path, chunk_rows=5)


def test_chunks_are_laid_out_in_input_order_padded_to_the_dataset_cap(tmp_path):
    ids, values = _rows()
    store = _build(tmp_path, Featurizer())
    good = [i for i, v in enumerate(values) if v > 0]
    assert store.kept.tolist() == good
    assert store.meta["cap"] == max(values) + 1 == store.arrays["tokens"].shape[1]
    assert isinstance(store.arrays["tokens"], np.memmap) and not store.arrays["tokens"].flags.writeable
    for row, i in enumerate(good):
        assert np.count_nonzero(store.arrays["tokens"][row]) == values[i] + 1
    assert [s.row_id for s in store.skipped] == [ids[i] for i, v in enumerate(values) if v == 0]
    assert store.meta["extra"] == {"cap": store.meta["cap"]}
    assert not list(store.path.glob("chunk_*")), "chunks are removed once the store is assembled"


def test_a_killed_featurization_resumes_from_the_last_chunk_written(tmp_path):
    interrupted = Featurizer(fail_at_chunk=3)
    with pytest.raises(KeyboardInterrupt):
        _build(tmp_path, interrupted)
    assert len(list(store_dir(KEY, tmp_path).glob("chunk_*.npz"))) == 3
    resumed = Featurizer()
    store = _build(tmp_path, resumed)
    assert resumed.calls == 2, "only the two chunks not written yet are featurized"
    reference = _build(tmp_path / "fresh", Featurizer())
    for name in reference.arrays:
        np.testing.assert_array_equal(store.arrays[name], reference.arrays[name])
    again = Featurizer()
    _build(tmp_path, again)
    assert again.calls == 0 and open_store(store.path).meta == store.meta


def test_another_featurizer_version_or_data_file_is_another_store(tmp_path):
    first = _build(tmp_path, Featurizer()).path
    assert _build(tmp_path, Featurizer(), {**KEY, "featurizer_version": 2}).path != first
    assert _build(tmp_path, Featurizer(), {**KEY, "file_sha256": "cd34"}).path != first
