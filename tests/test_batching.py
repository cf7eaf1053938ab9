"""Length-bucketed batches: every row once, little padding, and training on both backends
even when the first batches all share one shape."""

import numpy as np

from keras_chem.models.base import TaskInfo
from keras_chem.models.elembert import DEFAULTS, ElembertPreprocessor, build
from keras_chem.training.batching import batches, bucket_sizes, plan_batches, predict


def test_bucket_ladder_ends_at_the_cap():
    assert bucket_sizes(100).tolist() == [8, 16, 24, 32, 40, 56, 72, 96, 100]
    assert bucket_sizes(16).tolist() == [8, 16]
    assert bucket_sizes(5).tolist() == [5]
    ladder = bucket_sizes(1000)
    assert np.all(ladder[1:-1] / ladder[:-2] <= 2) and np.all(ladder[:-1] % 8 == 0)
    assert bucket_sizes(12, step=1).tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 10, 12]  # compositions: every small size


def test_plan_covers_every_row_once_and_is_seeded():
    sizes = np.random.default_rng(0).integers(3, 120, size=500)
    plan = plan_batches(sizes, 128, 32, np.random.default_rng(1))
    rows = np.concatenate([r for r, _ in plan])
    assert sorted(rows.tolist()) == list(range(500))
    assert all(sizes[r].max() <= size for r, size in plan)
    assert sorted(len(r) for r, _ in plan)[1:] == [32] * (len(plan) - 1), "only one batch may be short"
    again = plan_batches(sizes, 128, 32, np.random.default_rng(1))
    assert all(np.array_equal(a, b) and s == t for (a, s), (b, t) in zip(plan, again))
    other_epoch = plan_batches(sizes, 128, 32, np.random.default_rng(2))
    assert not all(np.array_equal(a, b) for (a, _), (b, _) in zip(plan, other_epoch))


def test_eval_batches_are_padded_to_few_row_counts():
    from keras_chem.training.batching import padded_rows, plan_eval_batches

    assert [padded_rows(n, 256) for n in (1, 8, 9, 100, 129, 256)] == [8, 8, 16, 128, 256, 256]
    assert padded_rows(20, 16) == 16
    sizes = np.random.default_rng(0).integers(3, 120, size=500)
    plan = plan_eval_batches(sizes, 128, 256)
    assert sorted(np.concatenate([r for r, _ in plan]).tolist()) == list(range(500))
    assert all(sizes[r].max() <= size and len(r) <= 256 for r, size in plan)


def test_sparse_buckets_join_the_next_larger_one():
    from keras_chem.training.batching import merge_sparse_buckets

    # counts per bucket: 40, 5, 0, 20, 15, 3 -> the 5 join bucket 2 (still 5), then bucket 3 (25),
    # then bucket 4 (40, enough); the last bucket keeps its 3 rows
    bucket_of = np.repeat(np.arange(6), [40, 5, 0, 20, 15, 3])
    merged = merge_sparse_buckets(bucket_of, 6, min_rows=32)
    assert np.bincount(merged, minlength=6).tolist() == [40, 0, 0, 0, 40, 3]
    assert np.all(merged >= bucket_of)
    from keras_chem.training.batching import plan_eval_batches

    sizes = np.concatenate([np.full(200, 6), [30, 50, 90]])  # three lone large rows
    assert sorted({size for _, size in plan_eval_batches(sizes, 100, 256)}) == [8, 100]


def test_training_and_prediction_with_changing_batch_shapes():
    import keras

    smiles = ["CO"] * 70 + ["CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC"] * 5
    pre = ElembertPreprocessor(tokens="v0")
    arrays = pre.fit_transform([str(i) for i in range(len(smiles))], smiles, "smiles").arrays
    y = np.arange(len(smiles)).reshape(-1, 1).astype("float32") % 2
    task = TaskInfo("classification", ["t"])
    model = build({**DEFAULTS, "tokens": "v0"}, pre, task)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    # unshuffled, the first batches are full batches of the shortest bucket; later ones differ
    model.fit(batches(arrays, y, pre, 32), epochs=2, shuffle=False, verbose=0)
    expected = model.predict(arrays, verbose=0)
    np.testing.assert_allclose(predict(model, arrays, pre, 32), expected, atol=1e-5)
    assert keras.backend.backend() in {"jax", "tensorflow"}
