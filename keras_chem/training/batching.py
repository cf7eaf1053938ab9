"""Batches of similar-size rows, trimmed to their bucket's size, so padding stays small.

The arrays of a dataset are padded to the dataset's cap; a batch only pays for the bucket it
falls in. Bucket sizes are few (a geometric ladder), and batches have few row counts: training
batches are full but for one, evaluation batches are padded with empty rows to a power of two.
So `jit` compiles a handful of shapes, the same ones in every fold, and the persistent compile
cache (`compile_cache.py`) serves the later folds.
"""

from __future__ import annotations

import numpy as np

MIN_BUCKET_ROWS = 32
MIN_EVAL_ROWS = 8


def bucket_sizes(cap: int, smallest: int = 8, growth: float = 1.25, multiple: int = 8) -> np.ndarray:
    """Sizes 8, 16, 24, 32, 40, 56, 72, 96, 120, ... below `cap`, then `cap`: each about a quarter
    above the last and a multiple of 8, so little of a batch is padding and shapes stay few."""
    sizes, size = [], smallest
    while size < cap:
        sizes.append(size)
        size = max(size + multiple, -(-int(size * growth) // multiple) * multiple)
    return np.asarray(sizes + [cap], dtype=np.int64)


def merge_sparse_buckets(bucket_of: np.ndarray, n_buckets: int, min_rows: int) -> np.ndarray:
    """Rows of a bucket holding fewer than `min_rows` rows (counting rows merged into it) move to the
    next larger bucket: compiling a shape for a handful of large rows costs more than their padding."""
    counts = np.bincount(bucket_of, minlength=n_buckets)
    target, carried = np.arange(n_buckets), 0
    for bucket in range(n_buckets - 1):
        carried += counts[bucket]
        if 0 < carried < min_rows:
            target[bucket] = bucket + 1
        else:
            carried = 0
    for bucket in range(n_buckets - 2, -1, -1):
        target[bucket] = target[target[bucket]]
    return target[bucket_of]


def plan_batches(row_sizes: np.ndarray, cap: int, batch_size: int, rng: np.random.Generator | None) -> list[tuple[np.ndarray, int]]:
    """Training batches, `(rows, size)` each: the rows, shuffled within their bucket when `rng` is
    given, are laid end to end from the smallest bucket up and cut into batches of `batch_size`; a
    batch takes the bucket of its largest row, and the batches are shuffled. Only the last batch is
    short, so every batch of a bucket has the same shape."""
    ladder = bucket_sizes(cap)
    order = rng.permutation(len(row_sizes)) if rng is not None else np.arange(len(row_sizes))
    bucket_of = np.searchsorted(ladder, row_sizes, side="left")
    order = order[np.argsort(bucket_of[order], kind="stable")]
    batches = [(order[i : i + batch_size], int(ladder[bucket_of[order[i : i + batch_size]].max()]))
               for i in range(0, len(order), batch_size)]
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def plan_eval_batches(row_sizes: np.ndarray, cap: int, batch_size: int, min_rows: int = MIN_BUCKET_ROWS) -> list[tuple[np.ndarray, int]]:
    """Evaluation batches, `(rows, size)` each, in row order within each bucket (sparse buckets
    merged into larger ones); `padded_rows` gives the row count a batch is padded to."""
    ladder = bucket_sizes(cap)
    bucket_of = merge_sparse_buckets(np.searchsorted(ladder, row_sizes, side="left"), len(ladder), min_rows)
    batches = []
    for bucket in np.unique(bucket_of):
        rows = np.flatnonzero(bucket_of == bucket)
        batches += [(rows[i : i + batch_size], int(ladder[bucket])) for i in range(0, len(rows), batch_size)]
    return batches


def padded_rows(n: int, batch_size: int) -> int:
    """`n` rounded up to a power of two (at least 8, at most `batch_size`)."""
    return min(batch_size, max(MIN_EVAL_ROWS, 1 << (n - 1).bit_length()))


def _py_dataset_class():
    import keras

    class BucketedBatches(keras.utils.PyDataset):
        """Keras input: batches of rows trimmed by `trim(arrays, size)` of the preprocessor.

        Training (`targets` given): `plan_batches`, reshuffled every epoch when `seed` is given.
        Evaluation (`targets=None`): `plan_eval_batches`, each batch padded with all-zero rows
        (pure padding: no atom, no token) to `padded_rows`; `real_rows()` says which outputs count.
        """

        def __init__(self, arrays, targets, preprocessor, batch_size, seed=None):
            super().__init__()
            self.arrays = arrays
            self.targets = targets
            self.preprocessor = preprocessor
            self.batch_size = batch_size
            self.seed = seed
            self.row_sizes = preprocessor.sizes(arrays)
            self.cap = preprocessor.cap
            self.epoch = 0
            self._plan()

        def _plan(self):
            if self.targets is None:
                self.batches = plan_eval_batches(self.row_sizes, self.cap, self.batch_size)
                return
            rng = np.random.default_rng([self.seed, self.epoch]) if self.seed is not None else None
            self.batches = plan_batches(self.row_sizes, self.cap, self.batch_size, rng)

        def __len__(self):
            return len(self.batches)

        def __getitem__(self, index):
            rows, size = self.batches[index]
            inputs = self.preprocessor.trim({k: v[rows] for k, v in self.arrays.items()}, size)
            if self.targets is not None:
                return inputs, self.targets[rows]
            extra = padded_rows(len(rows), self.batch_size) - len(rows)
            return {k: np.pad(v, [(0, extra)] + [(0, 0)] * (v.ndim - 1)) for k, v in inputs.items()}

        def on_epoch_end(self):
            if self.seed is not None:
                self.epoch += 1
                self._plan()

        def row_order(self) -> np.ndarray:
            return np.concatenate([rows for rows, _ in self.batches])

        def real_rows(self) -> np.ndarray:
            """Per output row of an evaluation pass: True for a real row, False for padding."""
            return np.concatenate([np.arange(padded_rows(len(rows), self.batch_size)) < len(rows) for rows, _ in self.batches])

    return BucketedBatches


def batches(arrays, targets, preprocessor, batch_size, seed=None):
    """Training batches, shuffled with `seed` (a fixed order with `seed=None`)."""
    return for_backend(_py_dataset_class()(arrays, targets, preprocessor, batch_size, seed))


def for_backend(data):
    """Under TensorFlow, a `tf.data.Dataset` whose spec leaves the batch and the padded axis (axis 1)
    open: Keras infers a `PyDataset`'s spec from its first two batches, and bucketed batches vary."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return data
    import tensorflow as tf

    def open_spec(array):  # inputs: batch and padded axes vary; neighbour and feature axes are fixed
        return tf.TensorSpec((None, None, *array.shape[2:]), tf.as_dtype(array.dtype))

    def batch_spec(array):  # targets and weights: only the batch axis varies
        return tf.TensorSpec((None, *array.shape[1:]), tf.as_dtype(array.dtype))

    first = data[0]
    if isinstance(first, tuple):
        spec = (keras.tree.map_structure(open_spec, first[0]), *[keras.tree.map_structure(batch_spec, p) for p in first[1:]])
    else:
        spec = keras.tree.map_structure(open_spec, first)

    def generate():
        for index in range(len(data)):
            yield data[index]
        data.on_epoch_end()

    dataset = tf.data.Dataset.from_generator(generate, output_signature=spec)
    # A known length lets Keras count the steps instead of warning that the input ran out of data.
    return dataset.apply(tf.data.experimental.assert_cardinality(len(data))).prefetch(2)


def predict(model, arrays, preprocessor, batch_size: int = 256) -> np.ndarray:
    """`model.predict` over bucketed, padded batches, returned in the rows' original order."""
    data = _py_dataset_class()(arrays, None, preprocessor, batch_size)
    outputs = np.asarray(model.predict(for_backend(data), verbose=0))[data.real_rows()]
    result = np.empty_like(outputs)
    result[data.row_order()] = outputs
    return result
