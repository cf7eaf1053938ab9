"""Batches of similar-size rows, trimmed to their bucket's size, so padding stays small.

The arrays of a dataset are padded to the dataset's cap along the axes the preprocessor
declares (`padded_axes`); a batch only pays for the bucket it falls in. Bucket sizes are few
(a geometric ladder), and batches have few row counts: training batches are full but for one,
evaluation batches are padded with empty rows to a power of two. So `jit` compiles a handful
of shapes, the same ones in every fold, and the persistent compile cache (`compile_cache.py`)
serves the later folds. Under data-parallel training every batch is padded to a multiple of
the device count with empty rows whose targets are missing (NaN), which every loss masks.
"""

from __future__ import annotations

import numpy as np

MIN_BUCKET_ROWS = 32
MIN_EVAL_ROWS = 8


def bucket_sizes(cap: int, step: int = 8, growth: float = 1.25) -> np.ndarray:
    """Sizes 8, 16, 24, 32, 40, 56, 72, 96, 120, ... below `cap`, then `cap`: each about a quarter
    above the last and a multiple of `step` (a preprocessor's `bucket_step`), so little of a batch is
    padding and shapes stay few. `step=1` gives 1, 2, ..., 8, 10, 12, 15, 18, ... (for rows whose
    cost grows with the square of their size, such as the element pairs of a composition)."""
    sizes, size = [], step
    while size < cap:
        sizes.append(size)
        size = max(size + step, -(-int(size * growth) // step) * step)
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


def plan_batches(row_sizes: np.ndarray, cap: int, batch_size: int, rng: np.random.Generator | None,
                 step: int = 8) -> list[tuple[np.ndarray, int]]:
    """Training batches, `(rows, size)` each: the rows, shuffled within their bucket when `rng` is
    given, are laid end to end from the smallest bucket up and cut into batches of `batch_size`; a
    batch takes the bucket of its largest row, and the batches are shuffled. Only the last batch is
    short, so every batch of a bucket has the same shape."""
    ladder = bucket_sizes(cap, step)
    order = rng.permutation(len(row_sizes)) if rng is not None else np.arange(len(row_sizes))
    bucket_of = np.searchsorted(ladder, row_sizes, side="left")
    order = order[np.argsort(bucket_of[order], kind="stable")]
    batches = [(order[i : i + batch_size], int(ladder[bucket_of[order[i : i + batch_size]].max()]))
               for i in range(0, len(order), batch_size)]
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def plan_eval_batches(row_sizes: np.ndarray, cap: int, batch_size: int, min_rows: int = MIN_BUCKET_ROWS,
                      step: int = 8) -> list[tuple[np.ndarray, int]]:
    """Evaluation batches, `(rows, size)` each, in row order within each bucket (sparse buckets
    merged into larger ones); `padded_rows` gives the row count a batch is padded to."""
    ladder = bucket_sizes(cap, step)
    bucket_of = merge_sparse_buckets(np.searchsorted(ladder, row_sizes, side="left"), len(ladder), min_rows)
    batches = []
    for bucket in np.unique(bucket_of):
        rows = np.flatnonzero(bucket_of == bucket)
        batches += [(rows[i : i + batch_size], int(ladder[bucket])) for i in range(0, len(rows), batch_size)]
    return batches


def padded_rows(n: int, batch_size: int, multiple: int = 1) -> int:
    """`n` rounded up to a power of two (at least 8, at most `batch_size`), then to a multiple of `multiple`."""
    rows = min(batch_size, max(MIN_EVAL_ROWS, 1 << (n - 1).bit_length()))
    return -(-rows // multiple) * multiple


def trim(arrays: dict[str, np.ndarray], size: int, padded_axes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """The arrays cut to `size` along their padded axes."""
    return {name: array[tuple(slice(0, size) if a in padded_axes.get(name, ()) else slice(None) for a in range(array.ndim))]
            for name, array in arrays.items()}


def row_sizes(arrays: dict[str, np.ndarray], rows: np.ndarray, preprocessor, chunk: int = 8192) -> np.ndarray:
    """`preprocessor.sizes` of `rows`, read a chunk at a time (the arrays may be memory maps)."""
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([preprocessor.sizes({name: np.asarray(array[rows[i : i + chunk]]) for name, array in arrays.items()})
                           for i in range(0, len(rows), chunk)])


def _pad_rows(array: np.ndarray, rows: int, value=0) -> np.ndarray:
    extra = rows - len(array)
    if extra <= 0:
        return array
    return np.pad(array, [(0, extra)] + [(0, 0)] * (array.ndim - 1), constant_values=value)


def _py_dataset_class():
    import keras

    class BucketedBatches(keras.utils.PyDataset):
        """Keras input: batches of the rows `rows` of `arrays`, trimmed to their bucket.

        Training (`targets` given, one per row of `arrays`): `plan_batches`, reshuffled every epoch
        when `seed` is given. Evaluation (`targets=None`): `plan_eval_batches`, each batch padded
        with all-zero rows (pure padding: no atom, no token) to `padded_rows`; `real_rows()` says
        which outputs count. `row_multiple` pads every batch to a multiple of the device count.
        Rows are gathered batch by batch, so `arrays` may be memory maps of a whole dataset.
        """

        def __init__(self, arrays, targets, preprocessor, batch_size, seed=None, rows=None, row_multiple=1):
            super().__init__()
            self.arrays = arrays
            self.rows = np.arange(len(next(iter(arrays.values())))) if rows is None else np.asarray(rows)
            self.targets = targets
            self.padded_axes = preprocessor.padded_axes
            self.slot_axes = preprocessor.slot_axes
            self.trim_slots = preprocessor.trim_slots
            self.batch_size = batch_size
            self.seed = seed
            self.row_multiple = row_multiple
            self.row_sizes = row_sizes(arrays, self.rows, preprocessor)
            self.cap = preprocessor.cap
            self.step = preprocessor.bucket_step
            self.epoch = 0
            self._plan()

        def _plan(self):
            if self.targets is None:
                self.batches = plan_eval_batches(self.row_sizes, self.cap, self.batch_size, step=self.step)
                return
            rng = np.random.default_rng([self.seed, self.epoch]) if self.seed is not None else None
            self.batches = plan_batches(self.row_sizes, self.cap, self.batch_size, rng, self.step)

        def __len__(self):
            return len(self.batches)

        def __getitem__(self, index):
            positions, size = self.batches[index]
            rows = self.rows[positions]
            inputs = self.trim_slots(trim({k: np.asarray(v[rows]) for k, v in self.arrays.items()}, size, self.padded_axes), size)
            if self.targets is not None:
                n = -(-len(rows) // self.row_multiple) * self.row_multiple
                targets = _pad_rows(np.asarray(self.targets[positions], dtype=np.float32), n, np.nan)
                return {k: _pad_rows(v, n) for k, v in inputs.items()}, targets
            n = padded_rows(len(rows), self.batch_size, self.row_multiple)
            return {k: _pad_rows(v, n) for k, v in inputs.items()}

        def on_epoch_end(self):
            if self.seed is not None:
                self.epoch += 1
                self._plan()

        def row_order(self) -> np.ndarray:
            return np.concatenate([positions for positions, _ in self.batches])

        def real_rows(self) -> np.ndarray:
            """Per output row of an evaluation pass: True for a real row, False for padding."""
            return np.concatenate([np.arange(padded_rows(len(p), self.batch_size, self.row_multiple)) < len(p) for p, _ in self.batches])

    return BucketedBatches


def batches(arrays, targets, preprocessor, batch_size, seed=None, rows=None, row_multiple=1):
    """Training batches of `rows` (all rows by default), shuffled with `seed` (a fixed order with
    `seed=None`); `targets` holds one row per entry of `rows`."""
    data = _py_dataset_class()(arrays, targets, preprocessor, batch_size, seed, rows, row_multiple)
    return for_backend(data)


def for_backend(data):
    """Under TensorFlow, a `tf.data.Dataset` whose spec leaves the batch and the padded axes open:
    Keras infers a `PyDataset`'s spec from its first two batches, and bucketed batches vary.

    Keras reshuffles a `PyDataset` at the end of every epoch itself, but not a `tf.data.Dataset`:
    training with one needs `epoch_end(data)` among the callbacks. (Reshuffling when the generator
    runs out would be wrong: a distribution strategy reads a whole pass ahead before training.)"""
    import keras

    if keras.backend.backend() != "tensorflow":
        return data
    import tensorflow as tf

    open_axes = {name: axes + getattr(data, "slot_axes", {}).get(name, ()) for name, axes in getattr(data, "padded_axes", {}).items()}
    # Under a distribution strategy Keras averages a first batch over the replicas to build the
    # model, which fails for bool tensors: masks travel as uint8 and the model's inputs cast them back.
    as_uint8 = tf.distribute.has_strategy()

    def open_spec(name, array):  # inputs: the batch, padded and slot axes vary; feature axes are fixed
        shape = [None if a == 0 or a in open_axes.get(name, ()) else d for a, d in enumerate(array.shape)]
        dtype = tf.uint8 if as_uint8 and array.dtype == bool else tf.as_dtype(array.dtype)
        return tf.TensorSpec(shape, dtype)

    target_axes = getattr(data, "target_padded_axes", {})

    def target_spec(name, array):  # targets and weights: the batch axis varies, and the padded axes a dict target declares
        shape = [None if a == 0 or a in target_axes.get(name, ()) else d for a, d in enumerate(array.shape)]
        return tf.TensorSpec(shape, tf.as_dtype(array.dtype))

    def part_spec(part):
        if isinstance(part, dict):
            return {name: target_spec(name, array) for name, array in part.items()}
        return keras.tree.map_structure(lambda array: target_spec(None, array), part)

    first = data[0]
    inputs = first[0] if isinstance(first, tuple) else first
    input_spec = {name: open_spec(name, array) for name, array in inputs.items()}
    spec = (input_spec, *[part_spec(p) for p in first[1:]]) if isinstance(first, tuple) else input_spec

    def generate():
        for index in range(len(data)):
            batch = data[index]
            if as_uint8:
                inputs = batch[0] if isinstance(batch, tuple) else batch
                inputs = {name: a.astype(np.uint8) if a.dtype == bool else a for name, a in inputs.items()}
                batch = (inputs, *batch[1:]) if isinstance(batch, tuple) else inputs
            yield batch

    dataset = tf.data.Dataset.from_generator(generate, output_signature=spec)
    # A known length lets Keras count the steps instead of warning that the input ran out of data.
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(len(data))).prefetch(2)
    dataset.keras_chem_source = data
    return dataset


def epoch_end(train_input):
    """A callback that reshuffles `train_input` (from `batches` or `for_backend`) after every epoch
    when Keras does not (a `tf.data.Dataset`)."""
    import keras

    source = getattr(train_input, "keras_chem_source", None)

    class EpochEnd(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if source is not None:
                source.on_epoch_end()

    return EpochEnd()


def predict(model, arrays, preprocessor, batch_size: int = 256, rows=None, row_multiple: int = 1):
    """`model.predict` over bucketed, padded batches of `rows` (all rows by default), in their order:
    an array, or a list of arrays for a model with several outputs."""
    data = _py_dataset_class()(arrays, None, preprocessor, batch_size, rows=rows, row_multiple=row_multiple)
    outputs = model.predict(for_backend(data), verbose=0)
    real, order = data.real_rows(), data.row_order()

    def in_row_order(output) -> np.ndarray:
        output = np.asarray(output)[real]
        result = np.empty_like(output)
        result[order] = output
        return result

    return [in_row_order(o) for o in outputs] if len(model.outputs) > 1 else in_row_order(outputs)
