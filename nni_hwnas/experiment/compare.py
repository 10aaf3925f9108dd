"""``nni-hwnas compare``: several strategies, equal budgets and seeds, one report.

Every (strategy, seed) pair runs as its own NNI experiment through :func:`run_search` with the
same space, evaluator, dataset and trial budget; the report compares hypervolume over trials,
the fronts, and the best accuracy under each budget.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


from nni_hwnas.experiment.config import RunConfig, StrategyConfig, _build, load_config
from nni_hwnas.errors import UserError, read_yaml


@dataclass
class CompareConfig:
    """What to compare: a base experiment, the strategies, the seeds and the shared budget."""

    base: str = "quickstart.yaml"
    strategies: list = field(default_factory=lambda: [{"name": "Random"}])
    seeds: list = field(default_factory=lambda: [0])
    max_trials: int | None = None
    budgets: list | None = None
    output: str | None = None
    title: str = "nni-hwnas comparison"


def load_compare_config(path: str | Path) -> tuple[CompareConfig, RunConfig, list[StrategyConfig]]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"comparison config {path} not found; e.g. experiments/compare_digits.yaml")
    data = read_yaml(path, "comparison config") or {}
    if not isinstance(data, dict):
        raise UserError(f"comparison config {path} must be a YAML mapping (base, strategies, seeds, ...)")
    compare = _build(CompareConfig, data)
    base = load_config((path.parent / compare.base).resolve())
    strategies = [_build(StrategyConfig, s, f"strategies[{i}]") if isinstance(s, dict)
                  else _build(StrategyConfig, {"name": s}, f"strategies[{i}]") for i, s in enumerate(compare.strategies)]
    if not strategies or not compare.seeds:
        raise UserError("comparison config: `strategies` and `seeds` must each list at least one entry")
    if any(not isinstance(s, int) or isinstance(s, bool) for s in compare.seeds):
        raise UserError(f"comparison config: `seeds` must be integers, got {compare.seeds}")
    if compare.output:
        compare.output = str((path.parent / compare.output).resolve())
    return compare, base, strategies


def strategy_label(strategy: StrategyConfig) -> str:
    return strategy.name


def run_comparison(path: str | Path, *, port: int | None = None, output: str | Path | None = None,
                   echo: Callable[[str], None] = print, overwrite: bool = False) -> Path:
    """Run every strategy with every seed, then write the comparison report."""
    from nni_hwnas.experiment.launch import prepare, run_search
    from nni_hwnas.reporting.report import write_report
    from nni_hwnas.experiment.strategy_registry import strategy_names

    compare, base, strategies = load_compare_config(path)
    for strategy in strategies:
        if strategy.name not in strategy_names():
            from nni_hwnas.errors import unknown

            raise unknown("strategy", strategy.name, strategy_names())
    prepared = prepare(base)  # data and space errors surface before the first experiment starts
    out = Path(output or compare.output or Path("results") / Path(path).stem)
    from nni_hwnas.experiment.output_dir import check_output_dir

    check_output_dir(out / "runs", overwrite=overwrite)
    groups: dict[str, list[list[dict[str, Any]]]] = {}
    for strategy in strategies:
        for seed in compare.seeds:
            config = copy.deepcopy(base)
            config.strategy = strategy
            config.seed = int(seed)
            config.name = f"{Path(path).stem}-{strategy.name}-seed{seed}"
            if compare.max_trials:
                config.experiment.max_trials = compare.max_trials
            run_dir = out / "runs" / f"{strategy_label(strategy)}-seed{seed}"
            echo(f"nni-hwnas compare: {strategy.name}, seed {seed} -> {run_dir}")
            run_search(config, port=port, output=run_dir, echo=echo, overwrite=overwrite)
            rows = json.loads((run_dir / "trials.json").read_text())
            groups.setdefault(strategy_label(strategy), []).append(rows)
    notes = [f"Base experiment: `{Path(compare.base).name}`; dataset `{base.dataset.name}`; "
             f"{compare.max_trials or base.experiment.max_trials} trials per run; seeds {compare.seeds}; "
             f"evaluator: {base.evaluator.epochs} epochs, train subset {base.evaluator.train_subset or 'all'}."]
    report = write_report(out, groups, title=compare.title, cost_levels=compare.budgets, notes=notes,
                          budgets=prepared.budgets)
    echo(f"nni-hwnas compare: report written to {report}")
    return report
