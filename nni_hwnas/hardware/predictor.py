"""End-to-end latency from a lookup table: the sum of the layers' measured times, corrected.

Layers are timed alone (:mod:`nni_hwnas.hardware.profiler`); inside a network they cost more, and what the
residuals on this machine showed (experiments in the benchmark note) decides the correction::

    latency_ms = overhead_ms_ + scale_ * sum(table[layer]) + per_layer_ms_ * n_layers
                 + sum(switch_ms_[pair] for each consecutive pair of different kernel classes)

- ``overhead_ms_``: once per model (the outer ``nn.Sequential`` call);
- ``scale_``: work-proportional effects (a layer's data is colder after other layers ran);
- ``per_layer_ms_``: the hand-over between layers;
- ``switch_ms_``: consecutive blocks running different kernels (``conv3`` then ``conv5``: about
  10 µs on this CPU, same-kernel neighbours about 1 µs), counted cyclically because the model
  runs back to back (its last layer precedes its first).

Terms are chosen per table context by leave-one-out error on the measured whole models (a term
that does not predict held-out models better is dropped), and fitted by least squares on the
*relative* error, because accuracy is judged within ±10% and a ms-scale model would otherwise
outweigh a 50 µs one.

:class:`nni_hwnas.hardware.nni_profiler.HwLatencyProfiler` exposes the predictor as an NNI
``Profiler`` so NNI's ``RangeProfilerFilter``, ``Filter`` middleware and ``ProfilerPenalty`` use it
unchanged; it lives in its own module because importing ``nni.nas`` costs seconds.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from search_spaces.definition import SpaceDefinition
from search_spaces.layers import LayerSpec

from nni_hwnas.errors import UserError
from nni_hwnas.hardware.latency_table import LatencyTable, LayerKey, correction_context, profile_command, space_context

TERMS = ("per_layer", "switch")


def switch_counts(classes: Sequence[str]) -> dict[str, int]:
    """Consecutive pairs of different kernel classes, cyclic, unordered (``"conv3|conv5"``)."""
    counts: dict[str, int] = {}
    items = list(classes)
    for before, after in zip(items[-1:] + items[:-1], items):
        if before != after:
            pair = "|".join(sorted((before, after)))
            counts[pair] = counts.get(pair, 0) + 1
    return counts


class LatencyCorrection:
    """From a model's layer-time sum to its end-to-end latency (see the module docstring).

    Args:
        terms: optional terms to consider besides overhead and scale (``per_layer``, ``switch``).
        select: choose among subsets of ``terms`` by leave-one-out relative error (else use all).
        min_pair_models: a switch pair seen in fewer fit models is not fitted (its cost stays 0).
        outlier_rel: models further than this (relative) from a first overhead+scale fit are left
            out, e.g. a multi-thread measurement stalled throughout by another process.
    """

    def __init__(self, terms: Sequence[str] = TERMS, select: bool = True, min_pair_models: int = 5,
                 outlier_rel: float = 0.5) -> None:
        unknown_terms = set(terms) - set(TERMS)
        if unknown_terms:
            raise ValueError(f"unknown correction terms {sorted(unknown_terms)}; known: {TERMS}")
        self.terms = tuple(terms)
        self.select = select
        self.min_pair_models = min_pair_models
        self.outlier_rel = outlier_rel
        self.n_outliers_ = 0
        self.terms_: tuple[str, ...] = ()
        self.overhead_ms_ = 0.0
        self.scale_ = 1.0
        self.per_layer_ms_ = 0.0
        self.switch_ms_: dict[str, float] = {}
        self.loo_rel_rms_ = float("nan")
        self.n_models_ = 0

    @staticmethod
    def _columns(terms: Sequence[str], sum_ms: np.ndarray, n_layers: np.ndarray,
                 switches: Sequence[Mapping[str, int]], pairs: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        names = ["overhead", "scale"]
        columns = [np.ones_like(sum_ms), sum_ms]
        if "per_layer" in terms:
            names.append("per_layer")
            columns.append(n_layers)
        if "switch" in terms:
            for pair in pairs:
                names.append(pair)
                columns.append(np.array([float(s.get(pair, 0)) for s in switches]))
        return np.stack(columns, axis=1), names

    @staticmethod
    def _fit_relative(design: np.ndarray, measured: np.ndarray) -> tuple[np.ndarray, float]:
        """Least squares on relative error; returns coefficients and the leave-one-out relative RMS."""
        weighted = design / measured[:, None]
        target = np.ones_like(measured)
        coef, *_ = np.linalg.lstsq(weighted, target, rcond=None)
        hat = np.einsum("ij,jk,ik->i", weighted, np.linalg.pinv(weighted.T @ weighted), weighted)
        residual = (target - weighted @ coef) / np.clip(1.0 - hat, 1e-3, None)
        return coef, float(np.sqrt(np.mean(residual ** 2)))

    def _inliers(self, sum_ms: np.ndarray, measured: np.ndarray) -> np.ndarray:
        """Models whose measurement is not wildly off a first overhead+scale fit.

        On a shared machine a multi-thread measurement can be stalled for its whole series (a thread
        of the team descheduled: a 0.3 ms model measured at 40 ms); such a model is not evidence
        about the device and would drag every coefficient. Dropped: relative residual above
        ``outlier_rel``.
        """
        design = np.stack([np.ones_like(sum_ms), sum_ms], axis=1)
        keep = np.ones(sum_ms.size, dtype=bool)
        for _ in range(3):
            if keep.sum() < 5:
                return np.ones(sum_ms.size, dtype=bool)
            weighted = design[keep] / measured[keep, None]
            coef, *_ = np.linalg.lstsq(weighted, np.ones(int(keep.sum())), rcond=None)
            residual = np.abs(design @ coef / measured - 1.0)
            new_keep = residual <= self.outlier_rel
            if (new_keep == keep).all():
                break
            keep = new_keep
        return keep if keep.sum() >= 5 else np.ones(sum_ms.size, dtype=bool)

    def fit(self, sum_ms: Sequence[float], n_layers: Sequence[int], measured_ms: Sequence[float],
            switches: Sequence[Mapping[str, int]] | None = None) -> "LatencyCorrection":
        """Fit on whole models: table sums ``sum_ms`` (n,), ``n_layers`` (n,), ``measured_ms`` (n,) and
        each model's :func:`switch_counts` (n dicts; omitted: no switch term).

        With fewer than 5 models only the overhead and scale are fitted.
        """
        s = np.asarray(sum_ms, dtype=float)
        n = np.asarray(n_layers, dtype=float)
        y = np.asarray(measured_ms, dtype=float)
        if not (s.shape == n.shape == y.shape and s.ndim == 1) or s.size == 0:
            raise ValueError(f"need equal-length 1-D inputs, got {s.shape}, {n.shape}, {y.shape}")
        if np.any(y <= 0):
            raise ValueError("measured latencies must be positive")
        switches = list(switches) if switches is not None else [{} for _ in range(s.size)]
        seen = {pair: sum(1 for sw in switches if pair in sw) for pair in {p for sw in switches for p in sw}}
        pairs = sorted(pair for pair, count in seen.items() if count >= self.min_pair_models)
        if s.size < 5:
            candidates: list[tuple[str, ...]] = [()]
        elif self.select:
            candidates = [c for r in range(len(self.terms) + 1) for c in itertools.combinations(self.terms, r)]
        else:
            candidates = [self.terms]
        total = int(s.size)
        keep = self._inliers(s, y)
        s, n, y = s[keep], n[keep], y[keep]
        switches = [sw for sw, k in zip(switches, keep) if k]
        best = None
        for terms in candidates:
            design, names = self._columns(terms, s, n, switches, pairs)
            if design.shape[1] >= s.size:
                continue
            coef, loo = self._fit_relative(design, y)
            if best is None or loo < best[0] - 1e-12:
                best = (loo, terms, dict(zip(names, (float(c) for c in coef))))
        if best is None:  # too few models for any design: overhead and scale only
            design, names = self._columns((), s, n, switches, pairs)
            coef, loo = self._fit_relative(design, y)
            best = (loo, (), dict(zip(names, (float(c) for c in coef))))
        self.n_outliers_ = int((~keep).sum())
        self.loo_rel_rms_, self.terms_, values = best
        self.overhead_ms_ = values.pop("overhead")
        self.scale_ = values.pop("scale")
        self.per_layer_ms_ = values.pop("per_layer", 0.0)
        self.switch_ms_ = values
        self.n_models_ = total
        return self

    def predict(self, sum_ms: float, n_layers: int, switches: Mapping[str, int] | None = None) -> float:
        extra = sum(self.switch_ms_.get(pair, 0.0) * count for pair, count in (switches or {}).items())
        return self.overhead_ms_ + self.scale_ * sum_ms + self.per_layer_ms_ * n_layers + extra

    def to_dict(self) -> dict[str, Any]:
        return {"terms": list(self.terms), "select": self.select, "min_pair_models": self.min_pair_models,
                "outlier_rel": self.outlier_rel, "terms_": list(self.terms_), "n_outliers_": self.n_outliers_, "overhead_ms_": self.overhead_ms_, "scale_": self.scale_,
                "per_layer_ms_": self.per_layer_ms_, "switch_ms_": dict(self.switch_ms_),
                "loo_rel_rms_": self.loo_rel_rms_, "n_models_": self.n_models_}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LatencyCorrection":
        correction = cls(terms=tuple(data["terms"]), select=bool(data["select"]),
                         min_pair_models=int(data["min_pair_models"]), outlier_rel=float(data["outlier_rel"]))
        correction.terms_ = tuple(data["terms_"])
        correction.n_outliers_ = int(data["n_outliers_"])
        correction.overhead_ms_ = float(data["overhead_ms_"])
        correction.scale_ = float(data["scale_"])
        correction.per_layer_ms_ = float(data["per_layer_ms_"])
        correction.switch_ms_ = {str(k): float(v) for k, v in data["switch_ms_"].items()}
        correction.loo_rel_rms_ = float(data["loo_rel_rms_"])
        correction.n_models_ = int(data["n_models_"])
        return correction

    def __repr__(self) -> str:
        switches = ", ".join(f"{k}: {1000 * v:.1f}" for k, v in sorted(self.switch_ms_.items()))
        return (f"LatencyCorrection(terms_={list(self.terms_)}, overhead_ms_={self.overhead_ms_:.4f}, "
                f"scale_={self.scale_:.4f}, per_layer_ms_={self.per_layer_ms_:.4f}, switch_us={{{switches}}}, "
                f"loo_rel_rms_={self.loo_rel_rms_:.3f}, n_models_={self.n_models_}, n_outliers_={self.n_outliers_})")


MIN_STEADY_MODELS = 10


def steady_models(models: Sequence[Any]) -> list[Any]:
    """The whole models whose series was steady (IQR within 10% of the median), when there are at
    least :data:`MIN_STEADY_MODELS` of them; else all.

    A disturbed series' minimum still runs high, and the correction's scale follows it. Profiled
    with one core kept busy (``staged_net`` at 8x8): the scale was 1.12 fitted on the six least
    disturbed models, 1.15 on the twenty, 1.22 on all forty, and held-out models came out +6%,
    +9% and +12% high on average; for ``conv_net`` at 8x8 (34 of 40 steady) the mean error was
    +0.1% on the steady ones against +0.5% on all."""
    steady = [m for m in models if not m.timing.noisy]
    return steady if len(steady) >= MIN_STEADY_MODELS else list(models)


def fit_corrections(table: LatencyTable, correction: LatencyCorrection | None = None) -> dict[str, LatencyCorrection]:
    """Fit one correction per :func:`correction_context` of the table's whole models, plus ``"*"`` on all."""
    template = (correction or LatencyCorrection()).to_dict()
    times = table.times_ms()
    statistic = table.header.statistic
    usable = [m for m in table.models if all(key in times for key in m.layers)]
    if not usable:
        raise ValueError("the table holds no whole-model measurement whose layers are all in it")
    groups: dict[str, list] = {"*": usable}
    for model in usable:
        groups.setdefault(correction_context(model.context), []).append(model)
    fitted = {}
    for context, models in groups.items():
        models = steady_models(models)
        estimator = LatencyCorrection(tuple(template["terms"]), template["select"], template["min_pair_models"],
                                      template["outlier_rel"])
        fitted[context] = estimator.fit(
            [sum(times[key] for key in m.layers) for m in models], [len(m.layers) for m in models],
            [m.timing.value(statistic) for m in models],
            [switch_counts([key.kernel_class for key in m.layers]) for m in models])
    return fitted


class LatencyPredictor:
    """Predicted end-to-end latency (ms) of a space's architectures on the table's device.

    Precomputes ``LayerKey -> ms`` once; :meth:`predict` then costs one ``describe`` and a few dict
    lookups (tens of microseconds).
    """

    def __init__(self, table: LatencyTable, definition: SpaceDefinition,
                 correction: LatencyCorrection | None = None, hint_command: str | None = None) -> None:
        self.table = table
        self.definition = definition
        self.context = space_context(definition)
        self.hint_command = hint_command or profile_command(table.header.profile, self.context)
        if correction is None:
            fitted = table.corrections.get(correction_context(self.context)) or table.corrections.get("*")
            if not fitted:
                raise UserError(f"latency table {table.path or ''} has no fitted correction; measure whole models "
                                f"with: {self.hint_command}")
            try:
                correction = LatencyCorrection.from_dict(fitted)
            except (KeyError, TypeError, ValueError):
                raise UserError(f"latency table {table.path or ''} has a correction in an older format; refit it "
                                f"(nothing is re-measured) with: {self.hint_command}") from None
        self.correction = correction
        self._times = table.times_ms()
        self._spec_ms: dict[LayerSpec, tuple[float, str]] = {}

    def _lookup(self, spec: LayerSpec) -> tuple[float, str]:
        try:
            return self._spec_ms[spec]
        except KeyError:
            pass
        key = LayerKey.from_spec(spec)
        if key not in self._times:
            raise UserError(f"latency table of profile {self.table.header.profile!r} ({self.table.path or 'in memory'}) "
                            f"has no row for {key.describe()}; measure it with: {self.hint_command}")
        self._spec_ms[spec] = entry = (self._times[key], key.kernel_class)
        return entry

    def layer_ms(self, spec: LayerSpec) -> float:
        """One layer's table time (cached per spec); a missing row is a :class:`UserError`."""
        return self._lookup(spec)[0]

    def layer_sum_ms(self, specs: Iterable[LayerSpec]) -> float:
        """The uncorrected sum of the layers' table times."""
        return sum(self.layer_ms(spec) for spec in specs)

    def predict_specs(self, specs: Sequence[LayerSpec]) -> float:
        """Predicted latency in ms of the network ``specs`` describes."""
        entries = [self._lookup(spec) for spec in specs]
        return float(self.correction.predict(sum(ms for ms, _ in entries), len(entries),
                                             switch_counts([kernel for _, kernel in entries])))

    def predict(self, sample: Mapping[str, Any]) -> float:
        """Predicted latency in ms of the network ``sample`` (choice label -> value) selects."""
        return self.predict_specs(self.definition.describe(sample))

    def missing_keys(self) -> list[LayerKey]:
        """Layers the space can produce that the table lacks (empty: every architecture is covered)."""
        return [key for key in map(LayerKey.from_spec, self.definition.enumerate_layers()) if key not in self._times]

    def check_coverage(self) -> None:
        """Fail before a search starts, in one line, when some architecture could not be predicted."""
        missing = self.missing_keys()
        if missing:
            raise UserError(f"latency table of profile {self.table.header.profile!r} lacks {len(missing)} layer(s) "
                            f"of space {self.context}, e.g. {missing[0].describe()}; measure them with: "
                            f"{self.hint_command}")
