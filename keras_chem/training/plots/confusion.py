"""Confusion matrices (classification, multiclass) and parity plots (regression) over all folds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_chem.training.plots.figures import MAX_PANELS, _figure, _fmt, _fold_colors, _grid, _save, _shown_note
from keras_chem.training.plots.predictions import _binary_folds, _floats, read_fold_predictions

MAX_SCATTER_POINTS = 20000  # per parity panel; the statistics always use every row


def confusion_matrix_png(run_dir, task_info: dict) -> Path | None:
    """`confusion_matrix.png` over all test folds (binary: threshold 0.5, one 2×2 per task;
    multiclass: one C×C); for regression `parity.png` instead. None when no fold has predictions."""
    run_dir = Path(run_dir)
    folds = read_fold_predictions(run_dir)
    if not folds:
        return None
    kind = task_info["task"]
    if kind == "classification":
        return _binary_confusion(run_dir / "confusion_matrix.png", folds, list(task_info["target_names"]))
    if kind == "multiclass":
        return _multiclass_confusion(run_dir / "confusion_matrix.png", folds, list(task_info["class_names"] or []))
    return _parity(run_dir / "parity.png", folds, list(task_info["target_names"]))


def _draw_matrix(ax, counts: np.ndarray, names: list[str], annotate: bool = True):
    totals = counts.sum(axis=1, keepdims=True)
    fraction = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    image = ax.imshow(fraction, cmap="Blues", vmin=0.0, vmax=1.0)
    if annotate:
        for (i, j), count in np.ndenumerate(counts):
            text = f"{count}\n{100 * fraction[i, j]:.1f}%" if totals[i, 0] else "0"
            ax.text(j, i, text, ha="center", va="center", fontsize="small",
                    color="white" if fraction[i, j] > 0.6 else "black")
    ticks = np.arange(len(names))
    ax.set_xticks(ticks, names)
    ax.set_yticks(ticks, names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return image


def _binary_confusion(path: Path, folds, names: list[str]) -> Path:
    shown = names[:MAX_PANELS]
    nrows, ncols = _grid(len(shown), 4 if len(shown) <= 16 else 6 if len(shown) <= 36 else 8)
    fig = _figure(2.8 * ncols + 1.0, 3.2 * nrows + 0.8)
    fig.get_layout_engine().set(hspace=0.08)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    image = None
    for name, ax in zip(shown, axes):
        data = _binary_folds(folds, name)
        y = np.concatenate([d[1] for d in data]) if data else np.empty(0, np.int64)
        p = np.concatenate([d[2] for d in data]) if data else np.empty(0)
        counts = np.zeros((2, 2), dtype=np.int64)
        np.add.at(counts, (y, (p >= 0.5).astype(np.int64)), 1)
        image = _draw_matrix(ax, counts, ["0", "1"])
        accuracy = f"acc {np.trace(counts) / len(y):.3f}" if len(y) else "no labels"
        ax.set_title(f"{name}\nn={len(y)}, {accuracy}", fontsize="medium")
    for ax in axes[len(shown):]:
        ax.set_visible(False)
    fig.colorbar(image, ax=axes[: len(shown)].tolist(), shrink=min(0.6, 6.0 / (3.2 * nrows)), label="fraction of the true class (row %)")
    fig.suptitle(f"Confusion matrices over all test folds, threshold 0.5{_shown_note(len(shown), len(names), 'tasks')}\n"
                 "cells: count and % of the true class")
    return _save(fig, path)


def _multiclass_confusion(path: Path, folds, classes: list[str]) -> Path:
    index = {name: i for i, name in enumerate(classes)}
    counts = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for _, columns in folds:
        for label, predicted in zip(columns.get("label", []), columns.get("predicted", [])):
            if label in index and predicted in index:
                counts[index[label], index[predicted]] += 1
    size = max(5.0, 0.7 * len(classes) + 3.0)
    fig = _figure(size + 1.2, size)
    ax = fig.subplots()
    image = _draw_matrix(ax, counts, classes, annotate=len(classes) <= 20)
    if len(classes) > 8:
        ax.tick_params(axis="x", labelrotation=90)
    fig.colorbar(image, ax=ax, shrink=0.7, label="fraction of the true class (row %)")
    n = int(counts.sum())
    accuracy = f"accuracy {np.trace(counts) / n:.3f}" if n else "no labelled rows"
    ax.set_title(f"Confusion matrix over all test folds\n{n} rows, {accuracy}; cells: count and % of the true class")
    return _save(fig, path)


def _parity(path: Path, folds, names: list[str]) -> Path:
    shown = names[:MAX_PANELS]
    nrows, ncols = _grid(len(shown), 3)
    fig = _figure(4.2 * ncols, 4.2 * nrows + 1.0)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    colors = _fold_colors(len(folds))
    rng = np.random.default_rng(0)
    for name, ax in zip(shown, axes):
        per_fold = []
        for (k, columns), color in zip(folds, colors):
            if name not in columns or f"{name}_pred" not in columns:
                continue
            y, p = _floats(columns[name]), _floats(columns[f"{name}_pred"])
            keep = ~np.isnan(y) & ~np.isnan(p)
            per_fold.append((k, y[keep], p[keep], color))
        y_all = np.concatenate([f[1] for f in per_fold]) if per_fold else np.empty(0)
        p_all = np.concatenate([f[2] for f in per_fold]) if per_fold else np.empty(0)
        n = len(y_all)
        keep_fraction = min(1.0, MAX_SCATTER_POINTS / max(n, 1))
        size = 10 if n < 1000 else 4
        for k, y, p, color in per_fold:
            if keep_fraction < 1.0:
                chosen = np.sort(rng.choice(len(y), int(round(keep_fraction * len(y))), replace=False))
                y, p = y[chosen], p[chosen]
            ax.scatter(y, p, s=size, alpha=0.6, color=color, linewidths=0, label=f"fold {k}", rasterized=True)
        if n:
            low, high = float(min(y_all.min(), p_all.min())), float(max(y_all.max(), p_all.max()))
            pad = 0.03 * (high - low or 1.0)
            low, high = low - pad, high + pad
            ax.plot([low, high], [low, high], ls="--", lw=1, color="0.3")
            ax.set_xlim(low, high)
            ax.set_ylim(low, high)
            mae = float(np.mean(np.abs(p_all - y_all)))
            rmse = float(np.sqrt(np.mean((p_all - y_all) ** 2)))
            variance = float(np.sum((y_all - y_all.mean()) ** 2))
            r2 = 1.0 - float(np.sum((p_all - y_all) ** 2)) / variance if variance > 0 else float("nan")
            stats = f"n={n}\nMAE {mae:.4g}\nRMSE {rmse:.4g}\nR² {_fmt(r2)}"
            if keep_fraction < 1.0:
                stats += f"\n({int(round(keep_fraction * n))} points drawn)"
            ax.text(0.03, 0.97, stats, transform=ax.transAxes, va="top", fontsize="small",
                    bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8, "edgecolor": "0.8"})
        else:
            ax.text(0.5, 0.5, "no labelled rows", ha="center", va="center", transform=ax.transAxes)
        ax.set_aspect("equal", adjustable="box")
        ax.set_xlabel(f"true {name}")
        ax.set_ylabel(f"predicted {name}")
        ax.set_title(name)
    for ax in axes[len(shown):]:
        ax.set_visible(False)
    if 1 < len(folds) <= 10:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 8), markerscale=2,
                   fontsize="small", frameon=False)
    fig.suptitle(f"Predicted vs true on the test folds{_shown_note(len(shown), len(names), 'targets')}\ndashed: y = x")
    return _save(fig, path)
