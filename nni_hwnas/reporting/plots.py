"""PNG plots next to the JSON/CSV results (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_pareto(rows: Sequence[Mapping], front: Sequence[Mapping], path: Path, *, x: str = "latency_ms",
                y: str = "accuracy", title: str = "") -> Path:
    """Scatter every trial (over-budget ones hollow) and draw the Pareto front as a staircase."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    inside = [r for r in rows if r.get("within_budget", 1) == 1]
    outside = [r for r in rows if r.get("within_budget", 1) != 1]
    ax.scatter([r[x] for r in inside], [r[y] for r in inside], s=22, color="tab:blue", alpha=0.6,
               label=f"trials ({len(inside)})")
    if outside:
        ax.scatter([r[x] for r in outside], [r[y] for r in outside], s=22, facecolors="none",
                   edgecolors="tab:gray", label=f"over budget ({len(outside)})")
    if front:
        ordered = sorted(front, key=lambda r: r[x])
        ax.step([r[x] for r in ordered], [r[y] for r in ordered], where="post", color="tab:red")
        ax.scatter([r[x] for r in ordered], [r[y] for r in ordered], s=40, color="tab:red",
                   label=f"Pareto front ({len(ordered)})", zorder=3)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_hypervolume(curves: Mapping[str, Sequence[float] | Sequence[Sequence[float]]], path: Path, *,
                     subtitle: str = "") -> Path:
    """Hypervolume against trials; a label with several curves (seeds) shows median and range."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for label, curve in curves.items():
        runs = [list(c) for c in curve] if curve and isinstance(curve[0], (list, tuple, np.ndarray)) else [list(curve)]
        length = min(len(r) for r in runs)
        if length == 0:
            continue
        matrix = np.array([r[:length] for r in runs])
        x = np.arange(1, length + 1)
        ax.plot(x, np.median(matrix, axis=0), label=f"{label}" + (f" (median of {len(runs)})" if len(runs) > 1 else ""))
        if len(runs) > 1:
            ax.fill_between(x, matrix.min(axis=0), matrix.max(axis=0), alpha=0.2)
    ax.set_xlabel("trials")
    ax.set_ylabel("hypervolume (normalised)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    if subtitle:
        ax.set_title(f"reference: {subtitle}", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_fronts(fronts: Mapping[str, Sequence[Mapping]], path: Path, *, x: str = "latency_ms",
                y: str = "accuracy") -> Path:
    """Pareto fronts of several runs overlaid as staircases."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    for label, front in fronts.items():
        ordered = sorted(front, key=lambda r: r[x])
        if not ordered:
            continue
        line = ax.step([r[x] for r in ordered], [r[y] for r in ordered], where="post", label=f"{label} ({len(ordered)})")
        ax.scatter([r[x] for r in ordered], [r[y] for r in ordered], s=18, color=line[0].get_color())
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
