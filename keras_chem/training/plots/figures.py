"""Figure helpers: an Agg figure, PNG bytes written atomically, safe file names, number formats."""

from __future__ import annotations

import io
import math
import re
from pathlib import Path

from keras_chem.io import atomic_write_bytes

DPI = 100
MAX_PANELS = 64  # more tasks/classes than this in one grid figure are left out (named in the title)


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

def _grid(n: int, ncols_max: int = 4) -> tuple[int, int]:
    ncols = min(n, ncols_max)
    return math.ceil(n / ncols), ncols


def _shown_note(n_shown: int, n_total: int, what: str) -> str:
    return "" if n_shown == n_total else f" (first {n_shown} of {n_total} {what})"
