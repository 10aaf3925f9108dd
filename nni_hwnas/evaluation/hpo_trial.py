"""The nnictl route's trial: ``python -m nni_hwnas.evaluation.hpo_trial --config EXPERIMENT.yaml``.

A tuner (ours or NNI's TPE/Evolution/...) hands a parameter dict whose keys are the space's
choice labels (the JSON written by ``nni-hwnas export-space``). This entry point freezes the same
space definition the NAS route uses, trains it with the same :func:`evaluate_architecture`, and
reports the same metric dict. It imports no ``nni.nas`` module, so a trial starts in about the
time torch takes to import instead of the ~4.5 s ``nni.nas`` costs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Mapping, Sequence

from nni_hwnas.experiment.config import RunConfig, load_config
from nni_hwnas.errors import UserError


def definition_for(config: RunConfig) -> Any:
    """The space definition a config names, at its dataset's input shape and class count."""
    return space_and_data(config)[0]


def space_and_data(config: RunConfig) -> tuple[Any, Any]:
    """The space definition and the dataset splits it was sized by (None for a tabular evaluator,
    which reads no dataset): the trial trains on those splits rather than loading them twice."""
    from search_spaces import make_definition

    from nni_hwnas.data.datasets import load_dataset
    from nni_hwnas.experiment.trial_args import resolve_space, trial_dataset_args
    from nni_hwnas.hardware.timing import torch_threads

    space, choices = resolve_space(config)
    if config.evaluator.kind == "tabular":
        from nni_hwnas.evaluation.tabular import tabular_info

        info = tabular_info(config.evaluator.benchmark, config.dataset.name)
        return make_definition(space, choices, info.input_shape, info.num_classes), None
    with torch_threads(config.evaluator.threads):  # as the training will: no pool of the host's cores started
        data = load_dataset(seed=config.seed, **trial_dataset_args(config))
    return make_definition(space, choices, data.input_shape, data.num_classes), data


def prepare_warm(argv: Sequence[str]) -> str:
    """What a warm-trial server runs before forking a trial of ``argv`` (this module's arguments):
    read the config's latency table into this process, so every forked trial inherits it parsed.
    Returns what was read. Reads no dataset and runs no torch op: the server must stay free of
    thread pools at ``fork``. Raises what the trial itself would then report (UserError etc.)."""
    from nni_hwnas.experiment.trial_args import trial_hardware_args
    from nni_hwnas.hardware.costs import preload_table
    from nni_hwnas.hardware.profiles import load_profile

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--config")
    args, _ = parser.parse_known_args(list(argv))
    if args.config is None:
        return "nothing"
    config = load_config(args.config)
    hardware = trial_hardware_args(config)  # as the trial reads it (evaluation.trial.hardware_costs)
    if config.evaluator.kind == "tabular" or not (hardware and hardware.get("profile")):
        return "nothing"
    table = preload_table(load_profile(hardware["profile"]), hardware.get("table"))
    return "nothing" if table is None else f"latency table {table.path}"


def check_parameters(definition: Any, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Reject a parameter dict that does not fit the space (a search-space file of another space)."""
    labels = definition.labels()
    extra = sorted(set(parameters) - set(labels))
    if extra:
        raise UserError(f"parameters {extra} are not choices of space {definition.name!r} "
                        f"(labels: {', '.join(labels)}); regenerate the search space with "
                        f"`nni-hwnas export-space --config ...`")
    return definition.complete(parameters)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="nni-hwnas trial for nnictl experiments")
    parser.add_argument("--config", required=True, help="the experiment YAML (dataset, space, evaluator)")
    args = parser.parse_args(argv)
    import nni

    from nni_hwnas.experiment.trial_args import trial_hardware_args, trial_objective_args, trial_training_args
    from nni_hwnas.evaluation.trial import evaluate_architecture

    try:
        config = load_config(args.config)
        definition, data = space_and_data(config)
        sample = check_parameters(definition, nni.get_next_parameter() or {})
    except UserError as exc:
        print(f"nni-hwnas trial: error: {exc}", file=sys.stderr)
        return exc.exit_code
    if config.evaluator.inherit_weights:  # a tuner's parameters carry no parent: say so, train from scratch
        print("nni-hwnas trial: `evaluator.inherit_weights` works on the `nni-hwnas search` route only; "
              "this nnictl trial trains from scratch", file=sys.stderr)
    if config.evaluator.kind == "tabular":
        from nni_hwnas.evaluation.tabular import tabular_metrics

        nni.report_final_result(tabular_metrics(sample, config.dataset.name, config.seed, trial_objective_args(config)))
        return 0
    metrics = evaluate_architecture(definition.describe(sample), data,
                                    trial_training_args(config), config.seed, config.evaluator.threads,
                                    config.evaluator.latency_repeats,
                                    on_epoch=lambda epoch, metrics: nni.report_intermediate_result(metrics),
                                    objective=trial_objective_args(config), definition=definition,
                                    hardware=trial_hardware_args(config))
    nni.report_final_result(metrics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
