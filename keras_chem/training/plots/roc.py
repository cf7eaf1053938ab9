"""ROC curves per task (every fold and pooled), their AUC numbers, and the all-task overview."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_chem.io import atomic_write_json
from keras_chem.training.plots.figures import MAX_PANELS, _figure, _fmt, _mean_std_text, _fold_colors, _grid, _safe_name, _save, _shown_note
from keras_chem.training.plots.predictions import _binary_folds, _multiclass_folds, read_fold_predictions

ROC_JSON = "roc_auc_by_fold.json"


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
