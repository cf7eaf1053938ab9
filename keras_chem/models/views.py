"""Random choices for the augmented views of self-supervised pretraining (numpy, at batch time)."""

from __future__ import annotations

import numpy as np


def random_subset(mask: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """bool like `mask`: along the last axis, `counts[...]` of the True entries of `mask`, chosen at random."""
    scores = np.where(mask, rng.random(mask.shape), np.inf)
    rank = np.argsort(np.argsort(scores, axis=-1), axis=-1)
    return rank < np.expand_dims(counts, -1)
