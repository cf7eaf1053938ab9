"""Per-element vectors from a pretrained atom encoder: each element's mean atom output over a corpus."""

from __future__ import annotations

from pathlib import Path

import numpy as np

NEIGHBOUR_ELEMENTS = ("Li", "Fe", "O", "Si", "Cu")


def element_means(encoder, arrays: dict, preprocessor, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per element of the corpus (`atom_z` > 0 in `arrays`): atomic numbers, atom counts, and the mean of
    its atoms' encoder outputs (`encoder` maps a batch of the arrays to `[B, N, d]`), L2-normalised."""
    from keras_chem.featurizers.cgcnn_elements import MAX_Z
    from keras_chem.training.batching import plan_batches, trim

    sums, counts = None, np.zeros(MAX_Z + 1, dtype=np.int64)
    for rows, size in plan_batches(preprocessor.sizes(arrays), preprocessor.cap, batch_size, None, preprocessor.bucket_step):
        batch = trim({name: np.asarray(array[rows]) for name, array in arrays.items()}, size, preprocessor.padded_axes)
        real = batch["atom_z"] > 0
        h = np.asarray(encoder.predict_on_batch(batch), dtype=np.float64)
        if sums is None:
            sums = np.zeros((len(counts), h.shape[-1]))
        np.add.at(sums, batch["atom_z"][real], h[real])
        counts += np.bincount(batch["atom_z"][real], minlength=len(counts))
    z = np.flatnonzero(counts)
    means = sums[z] / counts[z, None]
    return z, counts[z], (means / np.linalg.norm(means, axis=1, keepdims=True)).astype(np.float32)


def nearest_elements(z: np.ndarray, vectors: np.ndarray, symbols=NEIGHBOUR_ELEMENTS, n: int = 5) -> dict[str, list[str]]:
    """The `n` elements whose vectors have the highest cosine similarity to each of `symbols` present."""
    from pymatgen.core import Element

    names = [Element.from_Z(int(e)).symbol for e in z]
    similarity = vectors @ vectors.T
    nearest = {}
    for symbol in symbols:
        if symbol in names:
            row = names.index(symbol)
            nearest[symbol] = [names[i] for i in np.argsort(-similarity[row]) if i != row][:n]
    return nearest


def write_element_vectors(encoder, arrays: dict, preprocessor, out: Path, file_name: str) -> dict:
    """`file_name` (z, vectors, counts), a PCA picture and the nearest elements of a few, in `out`;
    returns their summary for `pretrain_info.json`, with the elements that never occur."""
    from pymatgen.core import Element

    from keras_chem.featurizers.cgcnn_elements import MAX_Z
    from keras_chem.io import atomic_save_npz, atomic_write_json
    from keras_chem.training.plots.element_map import plot_element_map

    z, counts, vectors = element_means(encoder, arrays, preprocessor)
    atomic_save_npz(out / file_name, z=z.astype(np.int32), vectors=vectors, counts=counts)
    stem = Path(file_name).stem
    plot_element_map(z, vectors, out / f"{stem}.png", title=f"{stem}: {len(z)} elements, {vectors.shape[1]}-d (PCA)")
    nearest = nearest_elements(z, vectors)
    atomic_write_json(out / "nearest_elements.json", nearest)
    present = set(z.tolist())
    return {"n_elements": int(len(z)), "n_atoms": int(counts.sum()), "nearest_elements": nearest,
            "missing_elements": [Element.from_Z(e).symbol for e in range(1, MAX_Z + 1) if e not in present]}
