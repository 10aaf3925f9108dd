"""``CmaEs``: CMA-ES over a relaxed encoding of the choices, with a fitness table (CMANAS).

Each label with ``k`` values owns ``k`` real coordinates; a point ``x`` decodes to the value with
the largest coordinate per label (the continuous relaxation of the CMANAS seed paper, Sinha & Chen,
with argmax decoding). CMA-ES (Hansen's standard rank-mu/rank-one update, ``purecma`` constants)
moves a Gaussian over that space. Two objectives have no single fitness, so a generation is
ordered by Pareto rank, then crowding (:func:`strategies.selection.rank_and_crowding`), and the
weighted recombination uses that order.

The fitness table: an architecture told once is never evaluated again. A sample that decodes to
a known architecture joins the generation with its recorded losses at no trial's cost, and
:meth:`CmaEs.ask` draws again until it finds a new one (random draws after ``max_attempts``).

Plain ask/tell like :class:`strategies.hw_evolution.HwEvolution`: seedable, ``state_dict`` as
JSON data, failed trials remembered (worst rank in their generation, never proposed again).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from nni_hwnas.errors import UserError
from nni_hwnas.metrics import to_losses
from nni_hwnas.reporting.pareto import pareto_front_indices

from .hw_evolution import SpaceExhausted, _check_labels, _jsonable_rng_state, default_identity
from .objectives import ObjectiveConfig
from .operators import random_sample
from .selection import rank_and_crowding

__all__ = ["CmaEs", "STATE_FORMAT"]

STATE_FORMAT = "cmaes/1"
Sample = dict[str, Any]


class CmaEs:
    """Multi-objective CMA-ES over the choices (ask/tell, seedable, resumable).

    Args:
        labels: label -> candidate values (``SpaceDefinition.mutable_labels()``).
        population_size: Samples per generation (lambda); ``None`` = ``4 + 3 ln(n)`` for ``n``
            coordinates, CMA-ES's default (14 for NAS-Bench-201's 30).
        sigma: Initial step size. 1.0 with the mean at 0 makes the first generation a uniform
            random draw over the values of every label (argmax of i.i.d. normals).
        objectives: Score and cost metric names (:class:`~strategies.objectives.ObjectiveConfig`
            fields ``score_metric`` and ``cost_metric``); novelty and diversity are not used here.
        seed: Seeds the strategy's own ``numpy`` generator.
        identity: sample -> architecture id for the fitness table (``SpaceDefinition.arch_id``).
        max_attempts: Draws per proposal before falling back to random sampling.
    """

    def __init__(self, labels: Mapping[str, Sequence[Any]], *, population_size: int | None = None,
                 sigma: float = 1.0, objectives: ObjectiveConfig | Sequence[str] | Mapping[str, Any] | None = None,
                 seed: int | None = None, identity: Callable[[Mapping[str, Any]], str] | None = None,
                 max_attempts: int = 200) -> None:
        self.labels = _check_labels(labels)
        self.mutable = [label for label, values in self.labels.items() if len(values) > 1]
        if not self.mutable:
            raise UserError("cmaes needs at least one label with two or more values")
        self.blocks = [len(self.labels[label]) for label in self.mutable]
        self.dim = sum(self.blocks)
        lam = 4 + int(3 * math.log(self.dim)) if population_size is None else population_size
        if not (isinstance(lam, int) and not isinstance(lam, bool) and lam >= 4):
            raise UserError(f"`population_size` must be an integer >= 4, got {population_size!r}")
        if not (isinstance(sigma, (int, float)) and not isinstance(sigma, bool) and sigma > 0):
            raise UserError(f"`sigma` must be a number > 0, got {sigma!r}")
        if not (isinstance(max_attempts, int) and not isinstance(max_attempts, bool) and max_attempts >= 1):
            raise UserError(f"`max_attempts` must be an integer >= 1, got {max_attempts!r}")
        self.population_size, self.sigma0, self.max_attempts = lam, float(sigma), int(max_attempts)
        self.objectives = ObjectiveConfig.create(objectives)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self._identity = identity or default_identity(self.labels)
        self._constants()
        self.mean = np.zeros(self.dim)
        self.sigma = self.sigma0
        self.cov = np.eye(self.dim)
        self.path_c = np.zeros(self.dim)
        self.path_s = np.zeros(self.dim)
        self.n_updates = 0
        self._table: dict[str, dict[str, Any]] = {}  # id -> told record (sample, status, losses)
        self._order: list[str] = []  # ids in tell order
        self._pending: dict[str, Sample] = {}
        self._generation: list[tuple[list[float], str]] = []  # (x, id) drawn for the current update

    # ------------------------------------------------------------------ public API

    def identity(self, sample: Mapping[str, Any]) -> str:
        return str(self._identity(sample))

    def ask(self) -> Sample:
        """A new architecture: the next draw of the search distribution that is not in the table."""
        for _ in range(self.max_attempts):
            x = self._draw()
            sample = self._decode(x)
            cid = self.identity(sample)
            if cid in self._table:  # known: its recorded losses count in this generation, free
                self._generation.append((x.tolist(), cid))
                self._maybe_update()
                continue
            if cid in self._pending:
                continue
            self._generation.append((x.tolist(), cid))
            self._pending[cid] = sample
            return dict(sample)
        for _ in range(self.max_attempts):
            sample = random_sample(self.labels, self.rng)
            cid = self.identity(sample)
            if cid not in self._table and cid not in self._pending:
                self._pending[cid] = sample
                return dict(sample)
        raise SpaceExhausted(f"no new architecture found in {2 * self.max_attempts} draws: "
                             f"{len(self._table)} evaluated and {len(self._pending)} running")

    def tell(self, sample: Mapping[str, Any], metrics: Mapping[str, Any] | None, failed: bool = False) -> bool:
        """Record a finished trial; False when this architecture was already told."""
        cid = self.identity(sample)
        if cid in self._table:
            return False
        self._pending.pop(cid, None)
        names = [self.objectives.score_metric, self.objectives.cost_metric]
        ok = not failed and metrics is not None and all(
            isinstance(metrics.get(n), (int, float)) and math.isfinite(metrics[n]) for n in names)
        losses = to_losses([metrics], names)[0].tolist() if ok else None
        self._table[cid] = {"id": cid, "sample": dict(sample), "status": "succeeded" if ok else "failed",
                            "losses": losses, "metrics": {k: float(v) for k, v in (metrics or {}).items()
                                                          if isinstance(v, (int, float))}}
        self._order.append(cid)
        self._maybe_update()
        return True

    @property
    def history(self) -> list[dict[str, Any]]:
        """Every told trial in tell order: ``id``, ``sample``, ``status``, ``losses``, ``metrics``."""
        return [dict(self._table[cid]) for cid in self._order]

    @property
    def pending(self) -> list[Sample]:
        """Proposals not yet told, oldest first."""
        return [dict(s) for s in self._pending.values()]

    def mark_pending(self, sample: Mapping[str, Any]) -> None:
        """Note an architecture running elsewhere (e.g. a trial NNI re-runs on resume)."""
        cid = self.identity(sample)
        if cid not in self._table:
            self._pending.setdefault(cid, dict(sample))

    def forget_pending(self, sample: Mapping[str, Any]) -> None:
        """Drop a proposal that will never be evaluated; its draw leaves the generation, which
        would otherwise wait for it forever."""
        cid = self.identity(sample)
        self._pending.pop(cid, None)
        self._generation = [(x, g) for x, g in self._generation if g != cid or g in self._table]

    def pareto_front(self, within_budget: bool = True) -> list[dict[str, Any]]:
        """Non-dominated successful trials over (score up, cost down), cheapest first.

        ``within_budget`` is accepted for the adapters' sake: CMA-ES has no budget.
        """
        told = [self._table[cid] for cid in self._order if self._table[cid]["losses"] is not None]
        if not told:
            return []
        idx = pareto_front_indices(np.array([r["losses"] for r in told]))
        return sorted((dict(told[i]) for i in idx), key=lambda r: r["losses"][1])

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT, "labels": {k: list(v) for k, v in self.labels.items()},
                "settings": {"population_size": self.population_size, "sigma": self.sigma0, "seed": self.seed,
                             "objectives": self.objectives.as_dict()},
                "rng": _jsonable_rng_state(self.rng.bit_generator.state),
                "mean": self.mean.tolist(), "sigma": self.sigma, "cov": self.cov.tolist(),
                "path_c": self.path_c.tolist(), "path_s": self.path_s.tolist(), "n_updates": self.n_updates,
                "table": [self._table[cid] for cid in self._order],
                "pending": [[cid, dict(s)] for cid, s in self._pending.items()],
                "generation": [[x, cid] for x, cid in self._generation]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"not a {STATE_FORMAT} state (format {state.get('format')!r})")
        if {k: list(v) for k, v in state["labels"].items()} != {k: list(v) for k, v in self.labels.items()}:
            raise ValueError("the saved state searched other choices")
        self.rng.bit_generator.state = dict(state["rng"])
        self.mean, self.sigma = np.array(state["mean"]), float(state["sigma"])
        self.cov = np.array(state["cov"])
        self.path_c, self.path_s = np.array(state["path_c"]), np.array(state["path_s"])
        self.n_updates = int(state["n_updates"])
        self._table = {r["id"]: dict(r) for r in state["table"]}
        self._order = [r["id"] for r in state["table"]]
        self._pending = {cid: dict(s) for cid, s in state["pending"]}
        self._generation = [(list(x), cid) for x, cid in state["generation"]]

    # ------------------------------------------------------------------ CMA-ES

    def _constants(self) -> None:
        n, lam = self.dim, self.population_size
        self.mu = lam // 2
        weights = np.log(self.mu + 0.5) - np.log(np.arange(1, self.mu + 1))
        self.weights = weights / weights.sum()
        self.mueff = 1.0 / float((self.weights ** 2).sum())
        self.cc = (4 + self.mueff / n) / (n + 4 + 2 * self.mueff / n)
        self.cs = (self.mueff + 2) / (n + self.mueff + 5)
        self.c1 = 2 / ((n + 1.3) ** 2 + self.mueff)
        self.cmu = min(1 - self.c1, 2 * (self.mueff - 2 + 1 / self.mueff) / ((n + 2) ** 2 + self.mueff))
        self.damps = 1 + 2 * max(0.0, math.sqrt((self.mueff - 1) / (n + 1)) - 1) + self.cs
        self.chi_n = math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n))

    def _draw(self) -> np.ndarray:
        values, vectors = np.linalg.eigh(self.cov)
        scale = np.sqrt(np.maximum(values, 1e-20))
        return self.mean + self.sigma * vectors @ (scale * self.rng.standard_normal(self.dim))

    def _decode(self, x: np.ndarray) -> Sample:
        sample: Sample = {label: values[0] for label, values in self.labels.items()}
        start = 0
        for label, width in zip(self.mutable, self.blocks):
            sample[label] = self.labels[label][int(np.argmax(x[start:start + width]))]
            start += width
        return sample

    def _maybe_update(self) -> None:
        """Update the distribution once every member of the generation has losses (or failed)."""
        if len(self._generation) < self.population_size:
            return
        members = self._generation[: self.population_size]
        if any(cid not in self._table for _, cid in members):
            return
        self._generation = self._generation[self.population_size:]
        ok = [i for i, (_, cid) in enumerate(members) if self._table[cid]["losses"] is not None]
        order = list(ok)
        if ok:
            losses = np.array([self._table[members[i][1]]["losses"] for i in ok])
            ranks, crowding = rank_and_crowding(losses)
            order = [ok[j] for j in np.lexsort((-crowding, ranks))]
        order += [i for i in range(len(members)) if i not in ok]  # failed trials rank last
        xs = np.array([members[i][0] for i in order[: self.mu]])
        self._update(xs)

    def _update(self, best: np.ndarray) -> None:
        """Hansen's update from the ``mu`` best points, best first (``purecma.CMAES.tell``)."""
        old = self.mean
        self.mean = self.weights @ best
        y = (self.mean - old) / self.sigma
        values, vectors = np.linalg.eigh(self.cov)
        inv_sqrt = vectors @ np.diag(1 / np.sqrt(np.maximum(values, 1e-20))) @ vectors.T
        self.path_s = (1 - self.cs) * self.path_s + math.sqrt(self.cs * (2 - self.cs) * self.mueff) * (inv_sqrt @ y)
        self.n_updates += 1
        norm_s = float(np.linalg.norm(self.path_s))
        hsig = norm_s / math.sqrt(1 - (1 - self.cs) ** (2 * self.n_updates)) / self.chi_n < 1.4 + 2 / (self.dim + 1)
        self.path_c = (1 - self.cc) * self.path_c + hsig * math.sqrt(self.cc * (2 - self.cc) * self.mueff) * y
        steps = (best - old) / self.sigma
        self.cov = ((1 - self.c1 - self.cmu) * self.cov
                    + self.c1 * (np.outer(self.path_c, self.path_c) + (1 - hsig) * self.cc * (2 - self.cc) * self.cov)
                    + self.cmu * steps.T @ np.diag(self.weights) @ steps)
        self.cov = (self.cov + self.cov.T) / 2
        self.sigma *= math.exp(min(1.0, (self.cs / self.damps) * (norm_s / self.chi_n - 1)))
