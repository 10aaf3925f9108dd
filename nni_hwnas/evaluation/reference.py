"""The trained reference model of the RMI proxy: chosen, trained once, cached on disk, reused.

RMI scores a candidate by how similar its hidden representations are to those of a *trained*
reference network on the same batch, so the reference must be a model that learned the task.
Three choices, one format (a list of :class:`~search_spaces.layers.LayerSpec` plus weights):

- ``standard`` (default): a small VGG-style CNN with batch-norm, :func:`standard_reference_layers`,
  the role ResNet-20 plays in RMI-NAS. It is independent of the search space (one reference per
  dataset, shared by all spaces) and trains reliably (0.99 validation accuracy on digits, 0.82 on
  BreastMNIST);
- a ``sample`` of the search space, trained here: any architecture the user trusts, or
  :func:`largest_sample` (each label at its largest value), the in-space choice of the papers;
- the user's own ``checkpoint``: a ``state_dict`` file of a network of the space (what
  ``nni-hwnas train`` writes as ``model_state.pt``, with the architecture in ``retrain.json``
  beside it, or given as ``sample``); it is used as it is, never retrained.

Which to pick (``experiments/benchmarks/proxy_quality.py``): scored at initialisation, RMI ranks
candidates by how much they *resemble the reference*, so it is only as good as the reference is
both accurate and typical of the space's good architectures. The largest ``medmnist_cnn`` (5 conv
blocks, no batch-norm) does not train (chance accuracy on digits), and RMI against it ranked
digits architectures inversely to their accuracy (Spearman -0.83; the standard reference: +0.90);
on BreastMNIST ``conv_net`` the largest network (7x7 kernels, 0.92) beat the standard one (3x3
kernels, 0.82) as a reference (+0.39 against -0.28). A checkpoint of a good architecture of the
space itself, when the user has one, is the natural reference.

A reference trained here is cached under ``<cache dir>/<key>/`` (``reference.pt`` weights and
``reference.json`` record), where ``key`` hashes everything that determines the weights: the
dataset (name, split fractions and a fingerprint of the tensors, so a changed data file retrains
while a moved one does not), the reference's layers (for a space sample these carry the space's
input shape, classes and chosen values), the training settings and the seed. Any change gives a
new key, hence a retrain; the same config reuses the files. The cache dir is
``$NNI_HWNAS_CACHE/reference``, else ``$XDG_CACHE_HOME/nni-hwnas/reference``, else
``~/.cache/nni-hwnas/reference``.

The driver calls :func:`prepare_reference` once before a search; it returns a small JSON-able
dict that trials pass to :func:`load_reference` (weights are loaded with ``weights_only=True``:
no pickled code).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from nni_hwnas.errors import UserError

__all__ = ["CACHE_ENV_VAR", "REFERENCE_TRAINING", "data_fingerprint", "default_cache_dir", "largest_sample",
           "load_reference",
           "prepare_reference", "reference_key", "standard_reference_layers"]

CACHE_ENV_VAR = "NNI_HWNAS_CACHE"
_FORMAT = 1  # bump when the cached files' meaning changes: every old entry is then ignored

#: How a reference is trained here (TrainSettings fields): longer than a search trial, once.
REFERENCE_TRAINING: dict[str, Any] = {"epochs": 30, "batch_size": 64, "learning_rate": 0.05, "momentum": 0.9,
                                      "weight_decay": 5e-4, "lr_schedule": "cosine", "train_subset": None,
                                      "augment": True}
#: Widths of the standard reference's conv layers; a 2x2 max-pool follows every second one.
STANDARD_WIDTHS = (32, 32, 64, 64, 128, 128)


def default_cache_dir() -> Path:
    """``$NNI_HWNAS_CACHE/reference``, else ``$XDG_CACHE_HOME/nni-hwnas/reference``, else ``~/.cache/...``."""
    root = os.environ.get(CACHE_ENV_VAR)
    if root:
        return Path(root).expanduser() / "reference"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "nni-hwnas" / "reference"


def standard_reference_layers(input_shape: Sequence[int], num_classes: int,
                              widths: Sequence[int] = STANDARD_WIDTHS) -> list:
    """A VGG-style CNN: conv 3x3 + BN + ReLU per width, 2x2 max-pool after every second conv
    (while the map is at least 2x2, the spaces' shrink rule), then a linear classifier.

    On 28x28 inputs: 6 hidden blocks, 0.29M parameters; it reaches 0.99 validation accuracy on
    digits and 0.82 on BreastMNIST with :data:`REFERENCE_TRAINING`.
    """
    from search_spaces.layers import LayerSpec, should_pool

    channels, hw = int(input_shape[0]), int(input_shape[1])
    layers = []
    for i, width in enumerate(widths):
        spec = LayerSpec("conv", channels, int(width), in_hw=hw, kernel=3, batch_norm=True, relu=True,
                         pool=i % 2 == 1 and should_pool(hw))
        layers.append(spec)
        channels, hw = spec.out_ch, spec.out_hw
    layers.append(LayerSpec("linear", channels * hw * hw, int(num_classes), relu=False, flatten=True))
    return layers


def largest_sample(definition: Any) -> dict[str, Any]:
    """The space's largest network: every label at its largest value, except ``dropout`` labels,
    which take their middle value (a maximal-capacity model that still generalises)."""
    sample = definition.extreme_sample("max")
    for label, values in definition.mutable_labels().items():
        if "dropout" in label:
            sample[label] = sorted(values)[len(values) // 2]
    return definition.canonical(sample)


def data_fingerprint(data: Any) -> str:
    """SHA-1 of the train and validation tensors (shapes and bytes): what the reference learns from."""
    digest = hashlib.sha1()
    for tensor in (data.train_x, data.train_y, data.val_x, data.val_y):
        t = tensor.detach().contiguous().cpu()
        digest.update(str((tuple(t.shape), str(t.dtype))).encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()


def reference_key(config: Mapping[str, Any]) -> str:
    """Stable hash of a reference config (sorted JSON), 16 hex digits."""
    text = json.dumps({"format": _FORMAT, **config}, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write to a temporary sibling, then rename: a concurrent reader sees no half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _build(layers: Sequence[Mapping[str, Any]]) -> nn.Sequential:
    from search_spaces.layers import LayerSpec, build_network

    return build_network(LayerSpec(**dict(layer)) for layer in layers)


def _read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, zip errors...
        raise UserError(f"reference checkpoint {path} could not be read as a state_dict ({type(exc).__name__}); "
                        "pass the model_state.pt written by `nni-hwnas train`") from None
    if not isinstance(state, dict):
        raise UserError(f"reference checkpoint {path} holds a {type(state).__name__}, not a state_dict; "
                        "save `network.state_dict()` instead")
    return state


def _checkpoint_sample(path: Path, sample: Mapping[str, Any] | None) -> dict[str, Any]:
    if sample is not None:
        return dict(sample)
    record = path.parent / "retrain.json"
    if record.is_file():
        try:
            return dict(json.loads(record.read_text())["sample"])
        except (json.JSONDecodeError, KeyError, TypeError):
            pass
    raise UserError(f"reference checkpoint {path}: its architecture is unknown; give `reference_sample` "
                    "or keep the retrain.json that `nni-hwnas train` writes beside it")


def _use_checkpoint(checkpoint: str | Path, sample: Mapping[str, Any] | None, definition: Any,
                    data: Any) -> dict[str, Any]:
    """Check a user checkpoint against its architecture and score it on the validation split."""
    from nni_hwnas.evaluation.training import evaluate_accuracy

    if definition is None:
        raise UserError("a reference checkpoint needs the search space it belongs to (pass `definition`)")
    path = Path(checkpoint).expanduser().resolve()
    if path.is_dir():
        path = path / "model_state.pt"
    if not path.is_file():
        raise UserError(f"reference checkpoint {path} not found; pass a model_state.pt or its folder")
    sample = definition.canonical(_checkpoint_sample(path, sample))
    layers = [spec.as_dict() for spec in definition.describe(sample)]
    network = _build(layers)
    try:
        network.load_state_dict(_read_checkpoint(path))
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise UserError(f"reference checkpoint {path} does not fit architecture {sample} of this space "
                        f"({first}); check `reference_sample` and the space's choices") from None
    accuracy = evaluate_accuracy(network, data.val_x, data.val_y, data.is_multilabel)
    return {"path": str(path), "layers": layers, "sample": sample, "source": "checkpoint",
            "key": reference_key({"checkpoint": str(path), "layers": layers}), "val_accuracy": accuracy,
            "train_seconds": 0.0}


def prepare_reference(dataset: Mapping[str, Any], *, definition: Any = None, sample: Mapping[str, Any] | None = None,
                      checkpoint: str | Path | None = None, training: Mapping[str, Any] | None = None,
                      seed: int = 0, cache_dir: str | Path | None = None, data: Any = None,
                      echo: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
    """Make the reference available to trials: a user checkpoint, a cached one, or train it now.

    Args:
        dataset: :func:`~nni_hwnas.data.datasets.load_dataset` arguments (what trials get too).
        definition: the search space's :class:`~search_spaces.definition.SpaceDefinition`; needed
            with ``sample`` or ``checkpoint`` only.
        sample: a reference architecture of the space; default: the standard reference.
        checkpoint: a user's ``state_dict`` file (or the folder of ``nni-hwnas train``); no training.
        training: :class:`~nni_hwnas.evaluation.training.TrainSettings` fields; default :data:`REFERENCE_TRAINING`.
        data: the loaded dataset, when the caller has it already (else loaded from ``dataset``).

    Returns:
        JSON-able ``{"path", "layers", "sample" (None for the standard one), "key", "source"
        ("checkpoint" | "cache" | "trained"), "val_accuracy", "train_seconds"}`` for
        :func:`load_reference` (``train_seconds``: what training it cost, once; 0 for a checkpoint).
    """
    from nni_hwnas.data.datasets import load_dataset

    if data is None:
        data = load_dataset(seed=seed, **dataset)
    if checkpoint is not None:
        reference = _use_checkpoint(checkpoint, sample, definition, data)
        echo(f"nni-hwnas: RMI reference from checkpoint {reference['path']} "
             f"(val accuracy {reference['val_accuracy']:.4f})")
        return reference

    if sample is None:
        layers = [spec.as_dict() for spec in standard_reference_layers(data.input_shape, data.num_classes)]
    else:
        if definition is None:
            raise UserError("a reference sample needs the search space it belongs to (pass `definition`)")
        sample = definition.canonical(sample)
        layers = [spec.as_dict() for spec in definition.describe(sample)]
    settings = {**REFERENCE_TRAINING, **dict(training or {})}
    config = {"layers": layers, "training": settings, "seed": int(seed),
              "dataset": {"name": data.name, "val_fraction": dataset.get("val_fraction"),
                          "test_fraction": dataset.get("test_fraction"), "fingerprint": data_fingerprint(data)}}
    key = reference_key(config)
    folder = (Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()) / key
    weights, record = folder / "reference.pt", folder / "reference.json"
    found = {"path": str(weights), "layers": layers, "sample": sample, "key": key}
    if weights.is_file() and record.is_file():
        try:
            saved = json.loads(record.read_text())
        except json.JSONDecodeError:
            saved = {}
        if saved.get("key") == key:
            echo(f"nni-hwnas: RMI reference reused from {folder} (val accuracy {saved['val_accuracy']:.4f})")
            return {**found, "source": "cache", "val_accuracy": float(saved["val_accuracy"]),
                    "train_seconds": float(saved.get("train_seconds", 0.0))}

    from nni_hwnas.evaluation.training import TrainSettings, train_model

    echo(f"nni-hwnas: training the RMI reference ({len(layers) - 1} hidden blocks) for {settings['epochs']} "
         f"epochs; cached in {folder}")
    torch.manual_seed(seed)
    network = _build(layers)
    result = train_model(network, data, TrainSettings(**settings), seed)
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_write(weights, lambda path: torch.save(network.state_dict(), path))
    _atomic_write(record, lambda path: path.write_text(json.dumps(
        {"key": key, "config": config, "val_accuracy": result.final_accuracy, "train_seconds": result.train_seconds,
         "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "torch": torch.__version__}, indent=2) + "\n"))
    echo(f"nni-hwnas: RMI reference trained in {result.train_seconds:.0f} s, val accuracy {result.final_accuracy:.4f}")
    return {**found, "source": "trained", "val_accuracy": result.final_accuracy,
            "train_seconds": result.train_seconds}


def load_reference(reference: Mapping[str, Any]) -> nn.Sequential:
    """The reference network in eval mode, from the dict :func:`prepare_reference` returned."""
    network = _build(reference["layers"])
    network.load_state_dict(_read_checkpoint(Path(reference["path"])))
    return network.eval()
