"""PNG plots next to the JSON/CSV results (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_pareto(rows: Sequence[Mapping], front: Sequence[Mapping], path: Path, *, x: str = "latency_ms",
                y: str = "accuracy", title: str = "", within: Callable[[Mapping], bool] | None = None) -> Path:
    """Scatter every trial (over-budget ones hollow: ``within`` is the run's
    :meth:`~nni_hwnas.budgets.Budgets.admits`) and draw the Pareto front as a staircase."""
    from nni_hwnas.budgets import Budgets

    within = within or Budgets().admits
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    inside = [r for r in rows if within(r)]
    outside = [r for r in rows if not within(r)]
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


def plot_pareto_matrix(rows: Sequence[Mapping], front: Sequence[Mapping], path: Path, *,
                       objectives: Sequence[str], title: str = "") -> Path:
    """Three or more objectives: a pairwise scatter matrix (every trial, the front highlighted);
    the diagonal shows each objective's histogram. A 3-D front seen pairwise has members that
    look dominated in one panel: they win on the objective the panel leaves out."""
    n = len(objectives)
    fig, axes = plt.subplots(n, n, figsize=(2.6 * n, 2.6 * n), dpi=110, squeeze=False)
    front_ids = {id(r) for r in front}
    rest = [r for r in rows if id(r) not in front_ids]
    for i, y in enumerate(objectives):
        for j, x in enumerate(objectives):
            ax = axes[i][j]
            if i == j:
                ax.hist([r[x] for r in rows], bins=15, color="tab:blue", alpha=0.6)
                ax.hist([r[x] for r in front], bins=15, color="tab:red", alpha=0.8)
            else:
                ax.scatter([r[x] for r in rest], [r[y] for r in rest], s=10, color="tab:blue", alpha=0.5)
                ax.scatter([r[x] for r in front], [r[y] for r in front], s=22, color="tab:red", zorder=3)
            if i == n - 1:
                ax.set_xlabel(x, fontsize=8)
            if j == 0:
                ax.set_ylabel(y, fontsize=8)
            ax.tick_params(labelsize=6)
            ax.grid(alpha=0.3)
    fig.suptitle((title + ": " if title else "") + f"{len(rows)} trials, Pareto front ({len(front)}) in red",
                 fontsize=9)
    return _save(fig, path)


def plot_parallel_coordinates(rows: Sequence[Mapping], front: Sequence[Mapping], path: Path, *,
                              objectives: Sequence[str], title: str = "") -> Path:
    """One line per trial across the objectives, each axis scaled to its own [min, max]; the
    front's members in red, so its trade-offs read as crossing lines."""
    import numpy as np

    fig, ax = plt.subplots(figsize=(1.8 * len(objectives) + 2.5, 4.2), dpi=120)
    values = np.array([[float(r[k]) for k in objectives] for r in rows]) if rows else np.zeros((0, len(objectives)))
    low, high = (values.min(axis=0), values.max(axis=0)) if len(values) else (0, 1)
    span = np.where(np.asarray(high - low) > 0, high - low, 1.0)
    front_ids = {id(r) for r in front}
    x = np.arange(len(objectives))
    for row, v in zip(rows, values):
        on_front = id(row) in front_ids
        ax.plot(x, (v - low) / span, color="tab:red" if on_front else "tab:blue",
                alpha=0.9 if on_front else 0.25, linewidth=1.6 if on_front else 0.8, zorder=3 if on_front else 1)
    ax.set_xticks(x, [f"{k}\n[{lo:.3g}, {hi:.3g}]" for k, lo, hi in zip(objectives, np.atleast_1d(low),
                                                                     np.atleast_1d(high))], fontsize=8)
    ax.set_ylabel("scaled to each axis' range")
    ax.set_title((title + ": " if title else "") + f"Pareto front ({len(front)}) in red", fontsize=9)
    ax.grid(alpha=0.3, axis="x")
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
