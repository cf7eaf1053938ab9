"""A 2-D map of per-element vectors: PCA, each point labelled by its symbol, coloured by group."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_chem.training.plots.figures import _figure, _save


def plot_element_map(z: np.ndarray, vectors: np.ndarray, path: str | Path, title: str = "element vectors (PCA)") -> Path:
    """PCA of `vectors [n, d]` (one row per atomic number in `z`) to a labelled scatter at `path`."""
    from matplotlib import colormaps
    from pymatgen.core import Element
    from sklearn.decomposition import PCA

    points = PCA(n_components=2, random_state=0).fit_transform(vectors) if len(z) > 2 else np.zeros((len(z), 2))
    elements = [Element.from_Z(int(e)) for e in z]
    groups = np.array([0 if e.is_lanthanoid or e.is_actinoid else e.group for e in elements])  # 0: f block
    cmap = colormaps["tab20"]
    fig = _figure(9, 7.5)
    ax = fig.add_subplot()
    ax.scatter(points[:, 0], points[:, 1], c=[cmap(g % 20) for g in groups], s=90, alpha=0.35, linewidths=0)
    for (x, y), element, group in zip(points, elements, groups):
        ax.annotate(element.symbol, (x, y), ha="center", va="center", fontsize=8, color=cmap(group % 20))
    handles = [ax.scatter([], [], color=cmap(g % 20), label="f block" if g == 0 else f"group {g}") for g in sorted(set(groups))]
    ax.legend(handles=handles, fontsize=7, ncols=2, loc="best", frameon=False)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(title)
    return _save(fig, path)
