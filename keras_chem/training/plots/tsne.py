"""t-SNE of learned embeddings, coloured by label."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_chem.training.plots.figures import _figure, _save

TSNE_MAX_ITER = 500  # 250 early-exaggeration + 250 more; on 3000 points as well separated as 750, in 2/3 of the time


def _discrete_codes(labels: np.ndarray, label_names) -> tuple[np.ndarray, list[str]] | None:
    """Integer codes (-1 = missing) and names when the labels are categories; None when continuous."""
    if labels.dtype.kind in "OUSb":
        text = np.asarray(["" if v is None else str(v) for v in labels.tolist()])
        missing = np.isin(text, ["", "nan", "None"])
        names = sorted(set(text[~missing].tolist()))
        lookup = {name: i for i, name in enumerate(names)}
        return np.asarray([-1 if m else lookup[t] for t, m in zip(text, missing)], dtype=np.int64), names
    values = labels.astype(float)
    finite = np.isfinite(values)
    distinct = np.unique(values[finite])
    integral = np.all(distinct == np.round(distinct))
    if not integral or not (len(distinct) <= 20 or label_names is not None):
        return None
    if label_names is not None and np.all((distinct >= 0) & (distinct < len(label_names))):
        names = [str(n) for n in label_names]
        codes = np.where(finite, np.nan_to_num(values, nan=-1.0), -1.0).astype(np.int64)
        return codes, names
    lookup = {v: i for i, v in enumerate(distinct.tolist())}
    codes = np.asarray([lookup[v] if f else -1 for v, f in zip(values.tolist(), finite)], dtype=np.int64)
    return codes, [f"{v:g}" for v in distinct]


def _subsample(n: int, codes: np.ndarray | None, max_points: int, seed: int) -> np.ndarray:
    """Sorted row indices, exactly max_points of n; per category in proportion (each keeps ≥1) when codes given."""
    if n <= max_points:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    if codes is None:
        return np.sort(rng.choice(n, max_points, replace=False))
    groups = [np.flatnonzero(codes == c) for c in np.unique(codes)]
    sizes = np.array([len(g) for g in groups])
    share = max_points * sizes / n
    quota = np.maximum(1, np.floor(share).astype(np.int64))
    for i in np.argsort(-(share - np.floor(share)), kind="stable"):  # largest remainders first
        if quota.sum() >= max_points:
            break
        quota[i] += quota[i] < sizes[i]
    for i in np.argsort(-sizes, kind="stable"):  # the minimum of one may have overshot: trim the largest
        if quota.sum() <= max_points:
            break
        quota[i] -= min(quota.sum() - max_points, quota[i] - 1)
    return np.sort(np.concatenate([rng.choice(g, q, replace=False) for g, q in zip(groups, quota)]))


def embedding_tsne(embeddings: np.ndarray, labels: np.ndarray, path, title: str, label_names=None, seed: int = 0,
                   max_points: int = 3000, legend_title: str | None = None) -> Path:
    """2-D t-SNE of `embeddings` [n, d] coloured by `labels` [n] into the PNG `path`.

    Categories (strings, or at most 20 distinct integers, or integer codes into `label_names`) get
    discrete colours and a legend; NaN/empty labels are grey "missing"; other numbers a colormap.
    More than `max_points` rows are subsampled deterministically, per category in proportion.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    x = np.asarray(embeddings, dtype=float).reshape(len(embeddings), -1)
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != len(x):
        raise ValueError(f"{len(x)} embeddings but {len(labels)} labels")
    finite_rows = np.flatnonzero(np.isfinite(x).all(axis=1))
    x, labels = x[finite_rows], labels[finite_rows]
    discrete = _discrete_codes(labels, label_names)
    chosen = _subsample(len(x), discrete[0] if discrete else None, max_points, seed)
    x, labels = x[chosen], labels[chosen]
    n_total = len(finite_rows)

    fig = _figure(8.0, 6.5)
    ax = fig.subplots()
    if len(x) < 5 or np.ptp(x, axis=0).max(initial=0.0) == 0.0:
        reason = f"too few points for t-SNE (n = {len(x)})" if len(x) < 5 else "all embeddings are identical"
        ax.text(0.5, 0.5, reason, ha="center", va="center", fontsize="large", transform=ax.transAxes)
        ax.set_axis_off()
        ax.set_title(title)
        return _save(fig, path)

    if x.shape[1] > 50:
        x = PCA(50, random_state=seed).fit_transform(x)
    perplexity = min(30.0, (len(x) - 1) / 3)
    # One OpenMP thread: on a busy 2-core machine sklearn's threaded Barnes-Hut step ran 4x slower than one
    # thread (spin-waiting); the result is the same either way.
    with threadpool_limits(1):
        xy = TSNE(2, init="pca", random_state=seed, perplexity=perplexity, max_iter=TSNE_MAX_ITER).fit_transform(x)
    size = 14 if len(x) < 500 else 6 if len(x) < 2000 else 4
    if discrete is not None:
        _scatter_categories(fig, ax, xy, discrete[0][chosen], discrete[1], size, legend_title)
    else:
        values = labels.astype(float)
        missing = ~np.isfinite(values)
        if missing.any():
            ax.scatter(*xy[missing].T, s=size, color="0.75", linewidths=0)
        points = ax.scatter(*xy[~missing].T, s=size, c=values[~missing], cmap="viridis", linewidths=0)
        fig.colorbar(points, ax=ax, shrink=0.8, label=legend_title or "label")
    sub = f"{len(x)} points" + (f" (subsampled from {n_total})" if len(x) < n_total else "")
    if discrete is None and not np.isfinite(labels.astype(float)).all():
        sub += f", grey: {int((~np.isfinite(labels.astype(float))).sum())} without a label"
    ax.set_title(f"{title}\n{sub}, perplexity {perplexity:.3g}")
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    ax.set_xticks([])
    ax.set_yticks([])
    return _save(fig, path)


def _scatter_categories(fig, ax, xy, codes, names, size, legend_title) -> None:
    from matplotlib import colormaps

    missing = codes < 0
    if missing.any():
        ax.scatter(*xy[missing].T, s=size, color="0.75", linewidths=0, label=f"missing ({int(missing.sum())})")
    present = [c for c in range(len(names)) if (codes == c).any()]
    if len(present) > 20:
        points = ax.scatter(*xy[~missing].T, s=size, c=codes[~missing], cmap="viridis", linewidths=0)
        fig.colorbar(points, ax=ax, shrink=0.8, label=f"{legend_title or 'label'} (category index)")
        return
    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    for c in present:
        rows = codes == c
        ax.scatter(*xy[rows].T, s=size, color=cmap(c % cmap.N), linewidths=0, label=f"{names[c]} ({int(rows.sum())})")
    ax.legend(title=legend_title, loc="upper left", bbox_to_anchor=(1.02, 1.0), markerscale=2.5, fontsize="small",
              frameon=False)
