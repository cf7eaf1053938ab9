"""Mean ± std over folds (or replicates) of per-fold metric dicts."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

STAT_KEYS = ("mean", "std", "n", "values")


def summarize(fold_metrics: Sequence[dict]) -> dict:
    """Mean ± std over folds of every numeric leaf, nested dicts (per_task, ...) included.

    Each leaf becomes `{"mean", "std", "n", "values"}`: `values` holds one entry per fold
    (None where the fold has NaN or lacks the metric), `n` counts the folds used. `std` is
    the sample std (ddof=1, as most papers report it); NaN when n < 2, mean NaN when n = 0.
    Non-numeric leaves (notes, confusion matrices) are left out.
    """
    return _merge(list(fold_metrics))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _merge(dicts: list) -> dict:
    keys: list[str] = []
    for d in dicts:
        for k in d if isinstance(d, dict) else ():
            if k not in keys:
                keys.append(k)
    out = {}
    for k in keys:
        vals = [d.get(k) if isinstance(d, dict) else None for d in dicts]
        if any(isinstance(v, dict) for v in vals):
            out[k] = _merge([v if isinstance(v, dict) else {} for v in vals])
        elif any(_is_number(v) for v in vals):
            out[k] = _stat([float(v) if _is_number(v) else None for v in vals])
    return out


def _stat(vals: list) -> dict:
    vals = [None if v is None or math.isnan(v) else v for v in vals]
    used = [v for v in vals if v is not None]
    n = len(used)
    mean = float(np.mean(used)) if n else float("nan")
    std = float(np.std(used, ddof=1)) if n > 1 else float("nan")
    return {"mean": mean, "std": std, "n": n, "values": vals}


def _is_stat(v: Any) -> bool:
    return isinstance(v, dict) and tuple(v) == STAT_KEYS


def _cell(stat: dict | None) -> str:
    if stat is None or stat["n"] == 0:
        return "–"
    mean, std = stat["mean"], stat["std"]
    fmt = "{:.4g}" if abs(mean) >= 1e5 else "{:.4f}"
    return fmt.format(mean) if math.isnan(std) else f"{fmt.format(mean)} ± {fmt.format(std)}"


def format_summary_markdown(summary: dict) -> str:
    """Markdown tables: the headline metrics, then one table per nested section (per_task, ...)."""
    lines = ["| metric | mean ± std | folds |", "|---|---|---|"]
    sections = []
    for key, value in summary.items():
        if _is_stat(value):
            lines.append(f"| {key} | {_cell(value)} | {value['n']} |")
        elif isinstance(value, dict):
            sections.append((key, value))
    for key, section in sections:
        rows = {name: v for name, v in section.items() if isinstance(v, dict)}
        cols: list[str] = []
        for v in rows.values():
            cols += [c for c, s in v.items() if _is_stat(s) and c not in cols]
        if not cols:
            continue
        lines += ["", f"**{key}**", "", "| name | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for name, v in rows.items():
            lines.append(f"| {name} | " + " | ".join(_cell(v.get(c)) for c in cols) + " |")
    return "\n".join(lines) + "\n"
