"""Our ask/tell cores as NNI HPO ``Tuner`` objects for ``nnictl create``: ``HwEvolution`` and ``CmaEs``.

A thin adapter over the core (no second copy of the algorithm), shared by both:
``generate_parameters`` = ask, ``receive_trial_result`` = tell with NNI's whole metric dict
(``default`` plus our metrics), ``trial_end`` tells failures, ``import_data`` tells earlier results
(``nnictl resume``/``experiment import``). Registered for configs as ``tuner: {name: HwEvolution}``
and ``tuner: {name: CmaEs}`` by ``nni-hwnas register``.
"""

from __future__ import annotations

import abc
import json
import logging
from typing import Any, Callable, Mapping, Sequence

from nni.tuner import Tuner
from nni.utils import ClassArgsValidator

from nni_hwnas.errors import UserError

from .hw_evolution import HwEvolution, SpaceExhausted
from .progressive import with_space_stages
from .settings import CmaEsSettings, HwEvolutionSettings

_log = logging.getLogger("nni_hwnas.tuner")

TUNER_NAME = "HwEvolution"
CMAES_TUNER_NAME = "CmaEs"


class AskTellTuner(Tuner, metaclass=abc.ABCMeta):
    """An ask/tell core over an nnictl search space; subclasses build the core (:meth:`_make_core`).

    Args:
        space: Our space the search-space JSON came from (``conv_net``, ``staged_net``, ``nb201``,
            ...), so architectures that differ only in unused layers count as one and ``progressive``
            finds the space's stages; None hashes every label.
    """

    NAME = "?"

    def __init__(self, space: str | None = None) -> None:
        self.space = space
        self.core: Any = None
        self.definition: Any = None  # our space's definition, once the search space arrives
        self._asked: dict[int, dict[str, Any]] = {}  # parameter_id -> sample still running

    @abc.abstractmethod
    def _make_core(self, labels: dict[str, tuple], identity: Callable[[Mapping[str, Any]], str] | None,
                   canonical: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None) -> Any:
        """The ask/tell core over ``labels`` (HwEvolution, CmaEs)."""

    def update_search_space(self, search_space: Mapping[str, Any]) -> None:
        labels: dict[str, tuple] = {}
        for label, spec in search_space.items():
            if not isinstance(spec, Mapping) or spec.get("_type") != "choice":
                raise UserError(f"search space entry {label!r} must be a choice (`_type: choice`); "
                                f"write the file with `nni-hwnas export-space`")
            labels[label] = tuple(spec["_value"])
        identity = canonical = definition = None
        if self.space is not None:
            from search_spaces.registry import definition_from_labels

            definition = definition_from_labels(self.space, labels)
            identity, canonical = definition.arch_id, definition.canonical
        self.definition = definition
        self.core = self._make_core(labels, identity, canonical)

    def generate_parameters(self, parameter_id: int, **kwargs: Any) -> dict[str, Any]:
        if self.core is None:
            raise RuntimeError("the search space has not been received yet")
        try:
            sample = self.core.ask()
        except SpaceExhausted:
            import nni

            raise nni.NoMoreTrialError("every architecture of the space has been proposed") from None
        self._asked[parameter_id] = sample
        return sample

    def receive_trial_result(self, parameter_id: int, parameters: Mapping[str, Any], value: Any,
                             **kwargs: Any) -> None:
        metrics = dict(value) if isinstance(value, Mapping) else {"default": float(value)}
        sample = self._asked.pop(parameter_id, None) or dict(parameters)
        self.core.tell(sample, metrics)

    def trial_end(self, parameter_id: int, success: bool, **kwargs: Any) -> None:
        sample = self._asked.pop(parameter_id, None)
        if sample is not None:  # ended without a final result: failed (or lost)
            self.core.tell(sample, None, failed=True)

    def import_data(self, data: Sequence[Mapping[str, Any]]) -> None:
        for record in data:
            value = record.get("value")
            if isinstance(value, str):
                value = json.loads(value)
            metrics = dict(value) if isinstance(value, Mapping) else {"default": float(value)}
            self.core.tell(dict(record["parameter"]), metrics)


class HwEvolutionTuner(AskTellTuner):
    """Multi-objective regularized evolution over an nnictl search space.

    Args:
        space: as :class:`AskTellTuner`.
        class_args: the names of :class:`~strategies.settings.HwEvolutionSettings` (nnictl's
            ``classArgs`` arrive as keywords; each is checked there, an unknown one by name).
    """

    NAME = TUNER_NAME

    def __init__(self, space: str | None = None, **class_args: Any) -> None:
        super().__init__(space)
        settings = HwEvolutionSettings.from_args(class_args, what=f"classArg of tuner {self.NAME!r}")
        self.objective_config, self.settings = settings.objective_config(), settings.search_settings()

    def _make_core(self, labels: dict[str, tuple], identity: Callable[[Mapping[str, Any]], str] | None,
                   canonical: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None) -> HwEvolution:
        settings = with_space_stages(self.settings, self.definition)  # staged_net's own stages
        return HwEvolution(labels, objectives=self.objective_config, identity=identity, canonical=canonical,
                           **settings)


class CmaEsTuner(AskTellTuner):
    """Multi-objective CMA-ES (:class:`~strategies.cmaes.CmaEs`) over an nnictl search space.

    Args:
        space: as :class:`AskTellTuner`.
        class_args: the names of :class:`~strategies.settings.CmaEsSettings`.
    """

    NAME = CMAES_TUNER_NAME

    def __init__(self, space: str | None = None, **class_args: Any) -> None:
        super().__init__(space)
        self.settings = CmaEsSettings.from_args(class_args, what=f"classArg of tuner {self.NAME!r}")

    def _make_core(self, labels: dict[str, tuple], identity: Callable[[Mapping[str, Any]], str] | None,
                   canonical: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None) -> Any:
        from .cmaes import CmaEs

        return CmaEs(labels, identity=identity, **self.settings.core_args())


def check_class_args(tuner: type[AskTellTuner], kwargs: Mapping[str, Any]) -> None:
    """Build ``tuner`` from ``classArgs``; a bad one is a one-line ``ValueError`` naming the tuner."""
    try:
        tuner(**kwargs)
    except (TypeError, UserError) as exc:
        raise ValueError(f"{tuner.NAME} classArgs: {exc}") from None


class HwEvolutionClassArgsValidator(ClassArgsValidator):
    """Rejects bad ``classArgs`` at ``nnictl create`` time, in one line, instead of a dead dispatcher."""

    def validate_class_args(self, **kwargs: Any) -> None:
        check_class_args(HwEvolutionTuner, kwargs)


class CmaEsClassArgsValidator(ClassArgsValidator):
    """As :class:`HwEvolutionClassArgsValidator`, for ``CmaEs``."""

    def validate_class_args(self, **kwargs: Any) -> None:
        check_class_args(CmaEsTuner, kwargs)
