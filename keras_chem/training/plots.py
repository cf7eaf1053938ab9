"""PNG pictures of a run directory: ROC curves, confusion matrices or parity plots, t-SNE of embeddings.

Everything is drawn on `matplotlib.figure.Figure` objects with the Agg renderer (never pyplot), so
no display is needed, no global backend is switched and no figure outlives its function. Each PNG
is rendered into memory and written atomically; the same inputs give the same bytes.

`task_info` is the dict under "task" in model_info.json:
{"task": "classification" | "multiclass" | "regression", "target_names": [...], "class_names": [...] | None}.
"""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

import numpy as np

from keras_chem.io import atomic_write_bytes, atomic_write_json

DPI = 100
TSNE_MAX_ITER = 500  # 250 early-exaggeration + 250 more; on 3000 points as well separated as 750, in 2/3 of the time
MAX_PANELS = 64  # more tasks/classes than this in one grid figure are left out (named in the title)
MAX_SCATTER_POINTS = 20000  # per parity panel; the statistics always use every row
ROC_JSON = "roc_auc_by_fold.json"


# ---------------------------------------------------------------- reading a run directory


def read_fold_predictions(run_dir) -> list[tuple[int, dict[str, list[str]]]]:
    """(fold index, column name -> cell strings) of every `fold_<k>/test_predictions.csv`, by k."""
    folds = []
    for fold_dir in Path(run_dir).glob("fold_*"):
        match = re.fullmatch(r"fold_(\d+)", fold_dir.name)
        path = fold_dir / "test_predictions.csv"
        if not match or not path.is_file():
            continue
        with path.open(newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            rows = list(reader)
        columns = {name: [row[i] if i < len(row) else "" for row in rows] for i, name in enumerate(header)}
        folds.append((int(match.group(1)), columns))
    return sorted(folds, key=lambda fold: fold[0])


def _floats(cells: list[str]) -> np.ndarray:
    out = np.full(len(cells), np.nan)
    for i, cell in enumerate(cells):
        try:
            out[i] = float(cell)
        except ValueError:
            pass
    return out


def _binary_folds(folds, name: str) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(k, labels 0/1, probabilities) per fold for one task; rows without a label or a prediction dropped."""
    out = []
    for k, columns in folds:
        if name not in columns or f"{name}_pred" not in columns:
            continue
        y, p = _floats(columns[name]), _floats(columns[f"{name}_pred"])
        keep = ~np.isnan(y) & ~np.isnan(p)
        out.append((k, (y[keep] > 0.5).astype(np.int64), p[keep]))
    return out


def _multiclass_folds(folds, class_names: list[str]) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(k, true class index, probabilities [n, C]) per fold; rows with an unknown label dropped."""
    index = {name: i for i, name in enumerate(class_names)}
    out = []
    for k, columns in folds:
        labels = columns.get("label", [])
        probs = np.stack([_floats(columns.get(f"prob_{c}", [""] * len(labels))) for c in class_names], axis=1)
        y = np.asarray([index.get(label, -1) for label in labels], dtype=np.int64)
        keep = (y >= 0) & ~np.isnan(probs).any(axis=1)
        out.append((k, y[keep], probs[keep]))
    return out


# ---------------------------------------------------------------- ROC-AUC numbers


def _one_class_note(y: np.ndarray) -> str | None:
    if len(y) == 0:
        return "no labelled rows"
    if y.min() == y.max():
        return f"one class only ({'all positive' if y[0] else 'all negative'})"
    return None


def _auc_entry(fold_data: list[tuple[int, np.ndarray, np.ndarray]]) -> dict:
    """Per-fold ROC-AUC, mean ± sample std (ddof=1, as summary.json) and the pooled-over-folds AUC."""
    from sklearn.metrics import roc_auc_score

    by_fold, notes = {}, {}
    for k, y, p in fold_data:
        note = _one_class_note(y)
        if note:
            notes[str(k)] = note
            by_fold[str(k)] = None
        else:
            by_fold[str(k)] = float(roc_auc_score(y, p))
    scored = [v for v in by_fold.values() if v is not None]
    y_all = np.concatenate([y for _, y, _ in fold_data]) if fold_data else np.empty(0, np.int64)
    p_all = np.concatenate([p for _, _, p in fold_data]) if fold_data else np.empty(0)
    return {
        "auc_by_fold": by_fold,
        "notes": notes,
        "mean": float(np.mean(scored)) if scored else None,
        "std": float(np.std(scored, ddof=1)) if len(scored) > 1 else None,
        "n_folds": len(scored),
        "pooled_auc": None if _one_class_note(y_all) else float(roc_auc_score(y_all, p_all)),
        "n_rows": int(len(y_all)),
        "n_positive": int(y_all.sum()),
    }


def roc_auc_summary(run_dir, task_info: dict) -> dict:
    """The numbers behind the ROC pictures (also written to `roc_auc_by_fold.json`).

    Classification: `per_task[name]`; multiclass: `per_class[name]` (one-vs-rest). Each entry has
    `auc_by_fold` (fold index -> AUC, None where the fold holds one class only, explained in
    `notes`), `mean`, `std` (ddof=1), `n_folds`, `pooled_auc` (all test folds' rows together).
    """
    folds = read_fold_predictions(run_dir)
    kind = task_info["task"]
    out: dict = {"task": kind, "folds": [k for k, _ in folds]}
    if kind == "classification":
        out["per_task"] = {name: _auc_entry(_binary_folds(folds, name)) for name in task_info["target_names"]}
        means = [e["mean"] for e in out["per_task"].values() if e["mean"] is not None]
        out["mean_over_tasks"] = float(np.mean(means)) if means else None
    elif kind == "multiclass":
        classes = list(task_info["class_names"] or [])
        data = _multiclass_folds(folds, classes)
        out["per_class"] = {
            name: _auc_entry([(k, (y == c).astype(np.int64), p[:, c]) for k, y, p in data]) for c, name in enumerate(classes)
        }
    return out


# ---------------------------------------------------------------- figures


def _figure(width: float, height: float, layout: str | None = "constrained"):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout=layout)


def _save(fig, path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    fig.clear()
    return atomic_write_bytes(path, buffer.getvalue())


def _safe_name(name: str, used: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._") or "task"
    candidate, i = base, 1
    while candidate.lower() in used:
        i += 1
        candidate = f"{base}_{i}"
    used.add(candidate.lower())
    return candidate


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _mean_std_text(entry: dict) -> str:
    if entry["mean"] is None:
        return "AUC n/a (no fold has both classes)"
    std = f" ± {_fmt(entry['std'])}" if entry["std"] is not None else ""
    folds = "fold" if entry["n_folds"] == 1 else "folds"
    return f"AUC {_fmt(entry['mean'])}{std} ({entry['n_folds']} {folds})"


def _fold_colors(n: int):
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "viridis"]
    return [cmap(i if n <= 10 else i / max(n - 1, 1)) for i in range(n)]


def _draw_roc(ax, fold_data, entry: dict, pooled_color: str = "black", legend: bool = True) -> None:
    from sklearn.metrics import roc_curve

    ax.plot([0, 1], [0, 1], ls="--", lw=1, color="0.6", label="chance")
    for (k, y, p), color in zip(fold_data, _fold_colors(len(fold_data))):
        note = entry["notes"].get(str(k))
        if note:
            ax.plot([], [], " ", label=f"fold {k}: {note}, skipped")
            continue
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, lw=1, alpha=0.7, color=color, label=f"fold {k} (AUC {_fmt(entry['auc_by_fold'][str(k)])})")
    if entry["pooled_auc"] is not None:
        y_all = np.concatenate([y for _, y, _ in fold_data])
        p_all = np.concatenate([p for _, _, p in fold_data])
        fpr, tpr, _ = roc_curve(y_all, p_all)
        ax.plot(fpr, tpr, lw=2.5, color=pooled_color, label=f"all folds pooled (AUC {_fmt(entry['pooled_auc'])})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    if legend:
        ax.legend(title=f"mean {_mean_std_text(entry)}", loc="upper left", bbox_to_anchor=(1.03, 1.0), alignment="left",
                  fontsize="small", title_fontsize="small", frameon=False)


def roc_curves(run_dir, task_info: dict) -> list[Path]:
    """ROC pictures of the test folds; returns the PNGs written (none for regression).

    Classification: `roc_<task>.png` per task (thin line per fold, thick pooled curve, diagonal) and
    `roc_all_tasks.png` (mean AUC per task, sorted). Multiclass: `roc_classes.png`, one-vs-rest per
    class. The numbers are written to `roc_auc_by_fold.json` (see `roc_auc_summary`).
    """
    run_dir = Path(run_dir)
    kind = task_info["task"]
    if kind not in ("classification", "multiclass"):
        return []
    folds = read_fold_predictions(run_dir)
    if not folds:
        return []
    summary = roc_auc_summary(run_dir, task_info)
    atomic_write_json(run_dir / ROC_JSON, summary)
    if kind == "multiclass":
        classes = list(task_info["class_names"] or [])
        return [_roc_classes_figure(run_dir / "roc_classes.png", _multiclass_folds(folds, classes), classes, summary)]

    written = []
    used = {"all_tasks", "classes", "auc_by_fold"}
    for name in task_info["target_names"]:
        fold_data = _binary_folds(folds, name)
        entry = summary["per_task"][name]
        # A fixed layout: constrained layout would cost a second draw, and ToxCast has 617 of these.
        fig = _figure(8.0, 5.0, layout=None)
        fig.subplots_adjust(left=0.085, right=0.6, bottom=0.1, top=0.87)
        ax = fig.subplots()
        ax.set_anchor("W")
        _draw_roc(ax, fold_data, entry)
        ax.set_title(f"ROC on the test folds: {name}\n{entry['n_rows']} labelled rows, {entry['n_positive']} positive")
        written.append(_save(fig, run_dir / f"roc_{_safe_name(name, used)}.png"))
    written.append(_auc_overview(run_dir / "roc_all_tasks.png", summary))
    return written


def _auc_overview(path: Path, summary: dict) -> Path:
    entries = summary["per_task"]
    names = sorted(entries, key=lambda n: (entries[n]["mean"] is None, -(entries[n]["mean"] or 0.0), n))
    names = names[::-1]  # barh draws bottom-up: best task on top
    n = len(names)
    row = 0.3 if n <= 60 else 0.16
    fig = _figure(8.0, 1.6 + row * n)
    ax = fig.subplots()
    means = np.array([entries[t]["mean"] if entries[t]["mean"] is not None else np.nan for t in names])
    stds = np.array([entries[t]["std"] if entries[t]["std"] is not None else 0.0 for t in names])
    positions = np.arange(n)
    means0 = np.nan_to_num(means, nan=0.0)
    errors = np.stack([np.minimum(stds, means0), np.minimum(stds, 1.0 - means0)])  # clipped to [0, 1]
    ax.barh(positions, means0, xerr=np.where(np.isnan(means), 0.0, errors),
            color="tab:blue", alpha=0.8, error_kw={"lw": 1, "capsize": 2})
    fontsize = "small" if n <= 60 else "xx-small"
    for y, t in zip(positions, names):
        entry = entries[t]
        text = "n/a" if entry["mean"] is None else _fmt(entry["mean"])
        if entry["std"] is not None:
            text += f" ± {_fmt(entry['std'])}"
        ax.text(1.02, y, text, va="center", fontsize=fontsize)
    ax.axvline(0.5, ls="--", lw=1, color="0.4")
    ax.set_yticks(positions, names, fontsize=fontsize)
    ax.set_ylim(-0.6, n - 0.4)
    ax.set_xlim(0, 1.25)
    ax.set_xticks(np.linspace(0, 1, 6))
    ax.set_xlabel("ROC-AUC on the test folds (mean ± std over folds; dashed: chance)")
    ax.set_title(f"ROC-AUC per task, mean over tasks {_fmt(summary.get('mean_over_tasks'))}")
    return _save(fig, path)


def _grid(n: int, ncols_max: int = 4) -> tuple[int, int]:
    ncols = min(n, ncols_max)
    return math.ceil(n / ncols), ncols


def _shown_note(n_shown: int, n_total: int, what: str) -> str:
    return "" if n_shown == n_total else f" (first {n_shown} of {n_total} {what})"


def _roc_classes_figure(path: Path, data, classes: list[str], summary: dict) -> Path:
    shown = classes[:MAX_PANELS]
    nrows, ncols = _grid(len(shown), 3)
    fig = _figure(4.0 * ncols, 4.0 * nrows + 1.0)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for c, (name, ax) in enumerate(zip(shown, axes)):
        entry = summary["per_class"][name]
        _draw_roc(ax, [(k, (y == c).astype(np.int64), p[:, c]) for k, y, p in data], entry, legend=False)
        ax.set_title(f"{name} vs rest\nmean {_mean_std_text(entry)}\npooled AUC {_fmt(entry['pooled_auc'])}", fontsize="medium")
        if entry["notes"]:
            skipped = "\n".join(f"fold {k} skipped: {note}" for k, note in entry["notes"].items())
            ax.text(0.97, 0.03, skipped, transform=ax.transAxes, ha="right", va="bottom", fontsize="x-small")
    for ax in axes[len(shown):]:
        ax.set_visible(False)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="--", lw=1, color="0.6")]
    handles += [Line2D([], [], lw=1, color=color) for color in _fold_colors(len(data))]
    handles += [Line2D([], [], lw=2.5, color="black")]
    labels = ["chance", *[f"fold {k}" for k, _, _ in data], "all folds pooled"]
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6), fontsize="small", frameon=False)
    fig.suptitle(f"One-vs-rest ROC per class on the test folds{_shown_note(len(shown), len(classes), 'classes')}\n"
                 "thin: one fold each; thick: all folds pooled")
    return _save(fig, path)


# ---------------------------------------------------------------- confusion matrices and parity


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


# ---------------------------------------------------------------- t-SNE


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


# ---------------------------------------------------------------- everything


def write_run_plots(run_dir, task_info: dict, embeddings=None, embedding_labels=None, label_name=None) -> list[Path]:
    """Every picture of a run directory; returns the PNGs written (`tsne_cls.png` only with embeddings).
    Also writes `roc_auc_by_fold.json` for classification and multiclass runs."""
    run_dir = Path(run_dir)
    written = list(roc_curves(run_dir, task_info))
    matrix = confusion_matrix_png(run_dir, task_info)
    if matrix is not None:
        written.append(matrix)
    if embeddings is not None:
        n = len(embeddings)
        labels = np.full(n, np.nan) if embedding_labels is None else np.asarray(embedding_labels)
        names = None
        if task_info["task"] == "multiclass" and labels.dtype.kind in "iuf":
            names = task_info.get("class_names")
        what = f", coloured by {label_name}" if label_name else ""
        written.append(embedding_tsne(embeddings, labels, run_dir / "tsne_cls.png", f"t-SNE of learned embeddings{what}",
                                      label_names=names, legend_title=label_name))
    return written
