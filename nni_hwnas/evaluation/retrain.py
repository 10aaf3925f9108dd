"""Take the model home: retrain a chosen architecture from a results directory and export it.

``nni-hwnas train --from RESULTS_DIR --pick <trial id | best | metric<=value>`` rebuilds the
architecture from the run's recorded space, retrains it on the full training split for more
epochs, reports test accuracy (and AUC for MedMNIST through medmnist's own ``Evaluator``), the
latency measured here beside the one the search reported, and writes TorchScript and ONNX files
that are loaded back and checked against the PyTorch outputs.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from nni_hwnas.errors import UserError

PICK_BUDGET = re.compile(r"^(?P<metric>[a-z_]+)\s*<=\s*(?P<value>[0-9.eE+-]+)$")


@dataclass
class SearchRun:
    """What a results directory holds about the search that produced it."""

    directory: Path
    run: dict
    trials: list[dict]
    front: list[dict]


def read_results(directory: str | Path) -> SearchRun:
    directory = Path(directory)
    needed = [directory / name for name in ("run.json", "trials.json", "pareto.json")]
    missing = [p.name for p in needed if not p.is_file()]
    if missing:
        raise UserError(f"{directory} is not a results directory (missing {', '.join(missing)}); "
                        f"pass the --output folder of `nni-hwnas search`")
    try:
        run, trials, pareto = (json.loads(p.read_text()) for p in needed)
    except json.JSONDecodeError as exc:
        raise UserError(f"{directory}: a results file is not valid JSON ({exc.msg}); rerun the search") from None
    return SearchRun(directory, run, trials, list(pareto.get("front", [])))


def pick_trial(run: SearchRun, pick: str) -> dict:
    """A trial by id, ``best`` (highest accuracy on the front) or ``metric<=value`` (most accurate
    front member within that budget)."""
    by_id = {t["trial_id"]: t for t in run.trials}
    if pick in by_id:
        if by_id[pick].get("status") != "SUCCEEDED":
            raise UserError(f"trial {pick} did not succeed ({by_id[pick].get('status')}); pick another")
        return by_id[pick]
    if not run.front:
        raise UserError(f"{run.directory} has no Pareto front to pick from; pick a trial id instead")
    if pick == "best":
        return max(run.front, key=lambda t: t["accuracy"])
    match = PICK_BUDGET.match(pick.replace(" ", ""))
    if match:
        metric, limit = match["metric"], float(match["value"])
        if metric not in run.front[0]:
            raise UserError(f"--pick {pick!r}: trials have no metric {metric!r}; try latency_ms, params, flops, peak_mem_kb")
        inside = [t for t in run.front if t[metric] <= limit]
        if not inside:
            smallest = min(t[metric] for t in run.front)
            raise UserError(f"--pick {pick!r}: no Pareto architecture has {metric} <= {limit}; the smallest is {smallest:g}")
        return max(inside, key=lambda t: t["accuracy"])
    raise UserError(f"--pick {pick!r} is not a trial id of this run, 'best', or 'metric<=value' "
                    f"(e.g. latency_ms<=0.2); trial ids: {', '.join(sorted(by_id))}")


def sample_of_trial(trial: Mapping[str, Any]) -> dict[str, Any]:
    return {key[len("arch."):]: value for key, value in trial.items() if key.startswith("arch.")}


def export_and_check(network: torch.nn.Module, example: torch.Tensor, out_dir: Path) -> dict[str, Any]:
    """Write TorchScript and ONNX files, load both back, and compare their outputs with PyTorch's."""
    import onnxruntime

    network.eval()
    with torch.inference_mode():
        reference = network(example).numpy()
    script_path, onnx_path = out_dir / "model.torchscript.pt", out_dir / "model.onnx"
    torch.jit.save(torch.jit.trace(network, example[:1]), str(script_path))
    with torch.inference_mode():
        scripted = torch.jit.load(str(script_path))(example).numpy()
    torch.onnx.export(network, (example[:1],), str(onnx_path), dynamo=False, input_names=["images"],
                      output_names=["logits"], dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_out = session.run(None, {"images": example.numpy()})[0]
    return {
        "torchscript": script_path.name, "onnx": onnx_path.name,
        "torchscript_max_abs_diff": float(np.abs(scripted - reference).max()),
        "onnx_max_abs_diff": float(np.abs(onnx_out - reference).max()),
    }


def medmnist_scores(flag: str, data_root: str, probabilities: np.ndarray) -> dict[str, float] | None:
    """Test AUC and ACC from medmnist's own evaluator (None when its labels don't match ours)."""
    import medmnist

    evaluator = medmnist.Evaluator(flag, "test", root=data_root)
    if evaluator.labels.shape[0] != probabilities.shape[0]:
        return None
    result = evaluator.evaluate(probabilities)
    return {"test_auc": float(result.AUC), "test_acc_medmnist": float(result.ACC)}


def next_free_dir(base: Path) -> Path:
    """``base`` if it is free, else ``base-2``, ``base-3``, ...: every retrain keeps its own folder."""
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def retrain(results_dir: str | Path, pick: str, *, epochs: int = 30, output: str | Path | None = None,
            seed: int | None = None, echo=print, overwrite: bool = False) -> dict[str, Any]:
    """Retrain the picked architecture, evaluate it on the test split, export it, and save a summary.

    Without ``output`` each run writes a new ``retrain-<trial>[-N]/``; an explicit ``output`` that
    holds files is refused unless ``overwrite``.
    """
    from search_spaces import make_definition
    from search_spaces.layers import build_network

    from nni_hwnas.experiment.config import RunConfig, apply_override, parse_config
    from nni_hwnas.experiment.output_dir import check_output_dir
    from nni_hwnas.data.datasets import _medmnist_2d_flags, load_dataset, resolve_data_root
    from nni_hwnas.experiment.trial_args import trial_dataset_args, trial_training_args
    from nni_hwnas.experiment.runinfo import run_record
    from nni_hwnas.hardware.timing import TimingSettings, measure_model_latency, torch_threads
    from nni_hwnas.evaluation.training import TrainSettings, predict_logits, accuracy, train_model

    run = read_results(results_dir)
    trial = pick_trial(run, pick)
    config = parse_config({k: v for k, v in run.run["config"].items() if k != "source"})
    apply_override(config, "evaluator.epochs", epochs, "--epochs")  # the config's own bounds
    if seed is not None:
        apply_override(RunConfig(), "seed", seed, "--seed")  # validated only: the splits keep the search's seed
    seed = config.seed if seed is None else seed
    definition = make_definition(run.run["space"], run.run["space_choices"], run.run["input_shape"],
                                 run.run["num_classes"])
    sample = definition.complete(sample_of_trial(trial))
    if output is not None:
        check_output_dir(Path(output), overwrite=overwrite)
    out_dir = Path(output) if output is not None else next_free_dir(run.directory / f"retrain-{trial['trial_id']}")
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_dataset(seed=config.seed, **trial_dataset_args(config))
    settings = TrainSettings(**{**trial_training_args(config), "epochs": epochs, "train_subset": None})
    torch.manual_seed(seed)
    network = build_network(definition.describe(sample))
    echo(f"nni-hwnas: retraining trial {trial['trial_id']} ({definition.canonical(sample)}) for {epochs} epochs")
    started = time.perf_counter()
    with torch_threads(max(1, torch.get_num_threads())):
        history = train_model(network, data, settings, seed,
                              on_epoch=lambda e: echo(f"  epoch {e.epoch + 1}/{epochs}: val accuracy {e.val_accuracy:.4f}"))
    logits = predict_logits(network, data.test_x)
    summary: dict[str, Any] = {
        "trial_id": trial["trial_id"], "pick": pick, "sample": sample, "epochs": epochs,
        "train_seconds": time.perf_counter() - started,
        "val_accuracy": history.final_accuracy,
        "test_accuracy": accuracy(logits, data.test_y, data.is_multilabel),
        "search_accuracy": trial.get("accuracy"),
        "latency_reported_ms": trial.get("latency_ms"),
    }
    if config.dataset.name in _medmnist_2d_flags():  # medmnist's own AUC/ACC evaluator
        probs = torch.sigmoid(logits) if data.is_multilabel else torch.softmax(logits, dim=1)
        scores = medmnist_scores(config.dataset.name, str(resolve_data_root(config.dataset.data_root)), probs.numpy())
        if scores:
            summary.update(scores)
    timer = TimingSettings()  # the profiler's defaults: comparable with a table's rows
    measured = measure_model_latency(network, data.input_shape, batch_size=1,
                                     threads=config.evaluator.threads, settings=timer)
    summary["latency_measured_ms"] = measured.value(timer.statistic)
    summary["latency_measured_statistic"] = timer.statistic
    summary["latency_measured_iqr_ms"] = measured.iqr_ms
    torch.save(network.state_dict(), out_dir / "model_state.pt")
    summary.update(export_and_check(network, data.test_x[:16].contiguous(), out_dir))
    (out_dir / "retrain.json").write_text(json.dumps(
        run_record(seed, config.to_dict(), results_dir=str(run.directory), **summary), indent=2, default=str) + "\n")
    echo(f"nni-hwnas: test accuracy {summary['test_accuracy']:.4f}"
         + (f", test AUC {summary['test_auc']:.4f}" if "test_auc" in summary else "")
         + f"; latency measured {summary['latency_measured_ms']:.3f} ms vs {summary['latency_reported_ms']} ms in the search;"
         f" exported {out_dir / 'model.torchscript.pt'} and {out_dir / 'model.onnx'}")
    return summary
