"""Our spaces in the form NNI 3.0's one-shot strategies can mutate, and our latency as their penalty.

NNI's one-shot strategies (DARTS, GumbelDARTS, Proxyless, RandomOneShot) only understand NNI's
mutable modules, not the ``add_mutable`` / ``ensure_frozen`` pattern our ``HwModelSpace`` uses for
multi-trial search. :class:`OneShotConvNet` builds ``conv_net`` from them with the same labels:

- ``depth``: a ``LayerChoice`` over one chain per depth (the classifier's input size depends on the
  depth, so depth prefixes cannot be summed the way NNI's ``Repeat`` does); the chains share every
  per-layer label, so DARTS learns one set of filter/kernel/BN weights for all depths;
- ``conv{i}_filters`` / ``conv{i}_kernel``: ``MutableConv2d`` arguments (padding the kernel's half,
  so every kernel keeps the map size, as in our frozen model);
- ``conv{i}_bn``: a ``LayerChoice`` between batch-norm and identity, keyed ``"False"``/``"True"``;
- ``dropout``: a ``LayerChoice`` of ``nn.Dropout``s keyed ``"0_5"`` for 0.5 (NNI 3.0's one-shot
  strategies reject ``MutableDropout``: "dangling mutables").

:func:`to_sample` turns an exported NNI sample back into ours (``nni-hwnas train --from`` and the
predictor take it as is). :class:`ExpectedLatencyPenalty` is NNI's ``ExpectationProfilerPenalty``
fed by :class:`~nni_hwnas.oneshot.expected_latency.ExpectedLatency`.

NNI 3.0 workaround: DARTS hands the penalty ``export_probs()``, whose probabilities are Python floats
(``.cpu().tolist()``), so NNI's own penalty never sends a gradient to the architecture; bound to the
one-shot module (:meth:`ExpectedLatencyPenalty.bind`, done by :func:`bind_penalty`), ours reads the
live architecture parameters instead, and the latency term trains the logits.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import nni
import torch
from nni.nas.nn.pytorch import LayerChoice, ModelSpace, MutableConv2d, MutableLinear
from nni.nas.oneshot.pytorch.profiler import ExpectationProfilerPenalty
from torch import nn

from search_spaces.conv_net import ConvNetDefinition
from search_spaces.layers import should_pool

from .expected_latency import ExpectedLatency


def _choice(label: str, values: Sequence[Any]) -> Any:
    return nni.choice(label, list(values)) if len(values) > 1 else values[0]


class OneShotConvNet(ModelSpace):
    """``conv_net`` from NNI mutable modules (see the module docstring)."""

    def __init__(self, choices: Mapping[str, Sequence] | None = None, input_shape: Sequence[int] = (1, 28, 28),
                 num_classes: int = 10) -> None:
        super().__init__()
        self.definition = ConvNetDefinition.create(choices, input_shape, num_classes)
        labels = self.definition.labels()
        channels, size, _ = self.definition.input_shape
        filters = [_choice(f"conv{i}_filters", labels[f"conv{i}_filters"]) for i in range(max(labels["depth"]))]
        kernels = [_choice(f"conv{i}_kernel", labels[f"conv{i}_kernel"]) for i in range(max(labels["depth"]))]
        self.blocks = nn.ModuleList()
        for i in range(max(labels["depth"])):
            norm = {_key(bn): (nn.BatchNorm2d(max(labels[f"conv{i}_filters"])) if bn else nn.Identity())
                    for bn in labels[f"conv{i}_bn"]}
            self.blocks.append(nn.ModuleDict({
                "conv": MutableConv2d(channels if i == 0 else filters[i - 1], filters[i], kernels[i],
                                      padding=kernels[i] // 2),
                "bn": LayerChoice(norm, label=f"conv{i}_bn") if len(norm) > 1 else next(iter(norm.values())),
            }))
        self.pools = [should_pool(hw) for hw in self._sizes(size, max(labels["depth"]))]
        heads = {}
        for depth in labels["depth"]:
            hw = self._sizes(size, depth + 1)[depth]
            heads[str(depth)] = MutableLinear(filters[depth - 1] * hw * hw, num_classes)
        self.heads = nn.ModuleDict(heads)
        self.depths = list(labels["depth"])
        drops = {_key(p): nn.Dropout(p) for p in labels["dropout"]}
        self.dropout = LayerChoice(drops, label="dropout") if len(drops) > 1 else next(iter(drops.values()))
        self.depth_choice = LayerChoice([_Depth(self, d) for d in self.depths], label="depth") \
            if len(self.depths) > 1 else _Depth(self, self.depths[0])

    @staticmethod
    def _sizes(size: int, n: int) -> list[int]:
        sizes = [size]
        for _ in range(n - 1):
            sizes.append(sizes[-1] // 2 if should_pool(sizes[-1]) else sizes[-1])
        return sizes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.depth_choice(x)


class _Depth(nn.Module):
    """The chain of one depth over the shared blocks (held by reference, not as submodules)."""

    def __init__(self, space: OneShotConvNet, depth: int) -> None:
        super().__init__()
        self.__dict__["_space"] = space  # not registered: the blocks belong to the space
        self.depth = depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        space = self.__dict__["_space"]
        for i in range(self.depth):
            block = space.blocks[i]
            x = torch.relu(block["bn"](block["conv"](x)))
            if space.pools[i]:
                x = nn.functional.max_pool2d(x, 2)
        return space.heads[str(self.depth)](space.dropout(x.flatten(1)))


def _key(value: Any) -> str:
    """A ``LayerChoice`` key for one of our values (module names may not contain dots)."""
    return str(value).replace(".", "_")


def _our_value(values: Sequence[Any], label: str, key: Any) -> Any:
    """NNI's key of a choice (``depth``: candidate index; ``LayerChoice`` keys: :func:`_key`) as our value."""
    if label == "depth":
        return values[int(key)]
    if isinstance(key, str):
        return next(v for v in values if _key(v) == key)
    return key


def to_sample(definition: Any, nni_sample: Mapping[str, Any]) -> dict[str, Any]:
    """An exported NNI sample as our sample (``depth`` index -> depth, ``"True"`` -> True, ``"0_5"`` -> 0.5)."""
    labels = definition.labels()
    sample = {label: _our_value(labels[label], label, value) for label, value in nni_sample.items() if label in labels}
    return definition.complete(sample)


def to_probs(definition: Any, nni_probs: Mapping[str, Mapping[Any, Any]]) -> dict[str, dict[Any, Any]]:
    """NNI's ``export_probs()`` (or live tensors in its layout) in our labels' values."""
    labels = definition.labels()
    out = {}
    for label, probs in nni_probs.items():
        if label in labels:
            out[label] = {_our_value(labels[label], label, k): p for k, p in probs.items()}
    return out


class ExpectedLatencyPenalty(ExpectationProfilerPenalty):
    """NNI's ``ExpectationProfilerPenalty`` whose profile is our differentiable expected latency (ms).

    Args:
        expected: :class:`ExpectedLatency` of the space.
        baseline: the latency target (ms) the penalty is normalised by; ``scale``, ``nonlinear`` and
            ``aggregate`` as in NNI (add = ProxylessNAS, mul = FBNet).
    """

    def __init__(self, expected: ExpectedLatency, baseline: float, scale: float = 1.0, **kwargs: Any) -> None:
        super().__init__(profiler=None, baseline=baseline, scale=scale, **kwargs)  # type: ignore[arg-type]
        self.__dict__["expected"] = expected
        self.__dict__["_module"] = None

    def bind(self, oneshot_module: nn.Module) -> None:
        """Read the live architecture parameters of ``oneshot_module`` (the NNI 3.0 workaround above)."""
        self.__dict__["_module"] = oneshot_module

    def profile(self, sample: Mapping[str, Any]) -> torch.Tensor:
        module = self.__dict__["_module"]
        probs = live_probs(module) if module is not None else sample
        return self.__dict__["expected"](to_probs(self.__dict__["expected"].definition, probs)).float()


def live_probs(module: nn.Module) -> dict[str, dict[Any, torch.Tensor]]:
    """``export_probs()`` with tensors that carry gradient: label -> {value: probability}."""
    probs: dict[str, dict[Any, torch.Tensor]] = {}
    for sub in module.modules():
        alpha = getattr(sub, "_arch_alpha", None)
        if alpha is None:
            continue
        softmax = getattr(sub, "_softmax", None) or nn.Softmax(-1)
        if isinstance(alpha, nn.Parameter) and hasattr(sub, "label") and sub.label not in probs:
            probs[sub.label] = dict(zip(sub.names, softmax(alpha)))
        elif isinstance(alpha, nn.ParameterDict) and hasattr(sub, "simplify"):
            for name, spec in sub.simplify().items():
                if name in alpha and name not in probs:
                    probs[name] = dict(zip(spec.values, softmax(alpha[name])))
    return probs


def bind_penalty(strategy: Any) -> Any:
    """Make ``strategy`` (DARTS, GumbelDARTS, Proxyless) bind its ``ExpectedLatencyPenalty`` to the one-shot module."""
    original = strategy.configure_oneshot_module

    def configure(training_module: Any) -> Any:
        module = original(training_module)
        if isinstance(getattr(strategy, "penalty", None), ExpectedLatencyPenalty):
            strategy.penalty.bind(module)
        return module

    strategy.configure_oneshot_module = configure
    return strategy


ONESHOT_STRATEGIES = ("DARTS", "GumbelDARTS", "Proxyless", "RandomOneShot")


def run_oneshot(strategy_name: str, data: Any, choices: Mapping[str, Sequence] | None, predictor: Any,
                target_ms: float | None, *, epochs: int = 2, batch_size: int = 64, penalty_scale: float = 1.0,
                arc_learning_rate: float = 3e-4,
                working_directory: str | None = None, seed: int = 0) -> dict[str, Any]:
    """One NNI one-shot search on ``conv_net`` through ``NasExperiment`` (NNI's sequential engine).

    With ``target_ms``, DARTS/GumbelDARTS/Proxyless get :class:`ExpectedLatencyPenalty` (ProxylessNAS'
    add mode, penalised only above the target); RandomOneShot keeps only samples predicted within it
    (NNI's ``RangeProfilerFilter`` over our predictor). Returns the exported sample in our format,
    its predicted latency and the wall time.
    """
    import time

    from nni.nas.evaluator.pytorch import Classification, DataLoader
    from nni.nas.experiment import NasExperiment
    from nni.nas.oneshot.pytorch.profiler import RangeProfilerFilter
    from nni.nas.strategy import DARTS, GumbelDARTS, Proxyless, RandomOneShot
    from torch.utils.data import TensorDataset

    from nni_hwnas.errors import unknown

    if strategy_name not in ONESHOT_STRATEGIES:
        raise unknown("one-shot strategy", strategy_name, ONESHOT_STRATEGIES)
    torch.manual_seed(seed)
    space = OneShotConvNet(choices, data.input_shape, data.num_classes)
    train = DataLoader(TensorDataset(data.train_x, data.train_y), batch_size=batch_size, shuffle=True)
    val = DataLoader(TensorDataset(data.val_x, data.val_y), batch_size=batch_size)
    evaluator = Classification(train_dataloaders=train, val_dataloaders=val, max_epochs=epochs,
                               num_classes=data.num_classes, accelerator="cpu", enable_progress_bar=False,
                               logger=False, enable_checkpointing=False)
    if strategy_name == "RandomOneShot":
        kwargs = {}
        if target_ms is not None:
            kwargs["filter"] = RangeProfilerFilter(_NniSampleProfiler(predictor, space), max=target_ms)
        strategy = RandomOneShot(**kwargs)
    else:
        kwargs = {"arc_learning_rate": arc_learning_rate}
        if target_ms is not None:
            kwargs["penalty"] = ExpectedLatencyPenalty(ExpectedLatency(predictor), baseline=target_ms,
                                                       scale=penalty_scale, nonlinear="positive")
        strategy = bind_penalty({"DARTS": DARTS, "GumbelDARTS": GumbelDARTS, "Proxyless": Proxyless}[strategy_name](**kwargs))
    experiment = NasExperiment(space, evaluator, strategy)
    if working_directory:
        experiment.config.experiment_working_directory = working_directory
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        experiment.run()
        exported = experiment.export_top_models(formatter="dict")[0]
    finally:
        experiment.stop()
    sample = to_sample(space.definition, exported)
    return {"strategy": strategy_name, "target_ms": target_ms, "sample": sample, "nni_sample": dict(exported),
            "predicted_latency_ms": float(predictor.predict(sample)), "seconds": time.perf_counter() - started,
            "cpu_seconds": time.process_time() - cpu_started, "experiment_id": experiment.id, "strategy_object": strategy}


class _NniSampleProfiler:
    """Our predictor answering NNI-format samples of :class:`OneShotConvNet` (depth index, string keys),
    the ``profile(sample)`` that NNI's ``RangeProfilerFilter`` calls."""

    def __init__(self, predictor: Any, space: OneShotConvNet) -> None:
        self.predictor, self.space = predictor, space

    def profile(self, sample: Mapping[str, Any]) -> float:
        return self.predictor.predict(to_sample(self.space.definition, sample))
