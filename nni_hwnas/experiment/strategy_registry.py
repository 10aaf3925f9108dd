"""NNI strategies by name, as a config or the command line names them.

Built-ins are NNI's own classes, constructed with the user's ``args`` plus the run's seed where
they take one. Constructor mistakes (an unknown argument) become one-line errors.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping

from nni_hwnas.nni_compat.builtins import builtin_defaults
from nni_hwnas.errors import UserError, unknown


def _builtin(name: str) -> Callable[..., Any]:
    import nni.nas.strategy as nas_strategy

    return getattr(nas_strategy, name)


BUILTIN_STRATEGIES = ("Random", "GridSearch", "RegularizedEvolution", "TPE", "PolicyBasedRL")
OUR_STRATEGIES = ("hw_evolution", "cmaes")


def strategy_names() -> list[str]:
    return [*OUR_STRATEGIES, *BUILTIN_STRATEGIES]


def check_our_args(name: str, args: Mapping[str, Any] | None) -> None:
    """Check the ``args`` of one of our strategies by name and value, without importing NNI (so a
    bad one fails before the data is loaded); others are checked when they are built."""
    from strategies.settings import CmaEsSettings, HwEvolutionSettings

    settings = {"hw_evolution": HwEvolutionSettings, "cmaes": CmaEsSettings}.get(name)
    if settings is not None:
        settings.from_args({k: v for k, v in (args or {}).items() if k != "poll_interval_s"})


def _accepted_args(factory: Callable[..., Any]) -> list[str]:
    signature = inspect.signature(factory.__init__ if inspect.isclass(factory) else factory)
    return [p.name for p in signature.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def make_strategy(name: str, args: Mapping[str, Any] | None, seed: int, *, definition: Any = None,
                  screen: Callable[[Mapping[str, Any]], float | None] | None = None,
                  budgets: Any = None) -> Any:
    """Build the NNI strategy ``name`` with ``args``; the run's seed is passed where accepted.

    Ours take the space definition (architecture identity); ``hw_evolution`` also a cost
    predictor to screen children with, and the run's :class:`~nni_hwnas.budgets.Budgets`.
    """
    if name == "hw_evolution":
        from strategies.nni_strategy import make_hw_evolution

        return make_hw_evolution(args, seed, definition=definition, screen=screen, budgets=budgets)
    if name == "cmaes":
        from strategies.nni_strategy import make_cmaes

        return make_cmaes(args, seed, definition=definition)
    if name not in BUILTIN_STRATEGIES:
        raise unknown("strategy", name, strategy_names())
    factory = _builtin(name)
    kwargs = dict(args or {})
    accepted = _accepted_args(factory)
    if name == "TPE":
        from nni.algorithms.hpo.tpe_tuner import TpeTuner

        accepted = _accepted_args(TpeTuner)
    for key in kwargs:
        if key not in accepted:
            raise UserError(f"strategy {name!r} does not take argument {key!r}; it takes: {', '.join(accepted)}")
    if "seed" in accepted:
        kwargs.setdefault("seed", seed)
    kwargs = builtin_defaults(name, kwargs)  # TPE's minimise default (nni_hwnas/nni_compat/builtins.py)
    try:
        return factory(**kwargs)
    except (TypeError, ValueError, ImportError) as exc:
        raise UserError(f"strategy {name!r} cannot be built from {kwargs}: {exc}") from None
