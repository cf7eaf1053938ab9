"""The Gaussian grids and guards of CrysToGraph's edge and angle features (specs §A.1), shared by
the Keras layers in `layers/crystal_edges.py` and their numpy references in the tests.

A grid is `(start, stop, step)`: the centres of upstream's `arange(start, stop + step, step)` and
sigma = step, for g(x) = exp(-(x - mu)^2 / sigma^2).
"""

from __future__ import annotations

import numpy as np

DISTANCE_GRID = (0.0, 8.0, 0.2)  # rho, Å: 41 centres
THETA_GRID = (0.0, 3.2, 0.2)  # polar angle, rad: 17 centres
PHI_GRID = (-3.2, 3.2, 0.4)  # azimuth, rad: 17 centres
ANGLE_GRID = (-1.4, 1.5, 0.1)  # bond cosine: 30 centres
FLAG_RADIUS = 8.0  # the 76th edge feature is rho > 8 Å (the neighbour radius had to grow)
SPHERICAL_GUARD = 0.001  # rho == 0 -> 0.001, x == 0 -> 0.001 (upstream's guards)
COS_DENOM_GUARD = 1e-4  # added to every denominator of a crystal when one of them is 0


def grid_centres(start: float, stop: float, step: float) -> np.ndarray:
    """The centres of `arange(start, stop + step, step)` (float64, read-only): arange's count, but
    the values `start + i * step`, free of arange's float drift."""
    count = len(np.arange(start, stop + step, step))
    centres = np.round(start + step * np.arange(count, dtype=np.float64), 10)
    centres.flags.writeable = False
    return centres
