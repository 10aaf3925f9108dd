"""Training-free scores of a candidate network: the RMI proxy, zero-cost baselines, and size.

Every proxy has one interface, ``fn(network, batch_x, batch_y, settings) -> float``, and **higher
is better** for all of them (the metric contract's ``default``), so one strategy can use any.
A proxy never changes the network it is given (it works on a copy) and is deterministic for
``settings.seed``. A forward pass that raises, or a non-finite score, raises :class:`ProxyFailed`,
which NNI records as a failed trial.

Networks are ``nn.Sequential`` whose children are blocks, as :func:`search_spaces.layers.
build_network` makes them: conv blocks, then linear blocks, the last one the classifier. The
*hidden representations* are the outputs of every block but the classifier. Candidates are scored
with batch-statistics batch-norm and dropout off; the reference in eval mode.

How well each ranks trained accuracy on our spaces is measured, not assumed:
``experiments/benchmarks/proxy_quality.py`` (results in ``experiments/benchmarks/results/proxy_quality.json``).
No proxy wins everywhere.

| name | what it measures | reference |
|---|---|---|
| ``rmi`` | mean CKA (linear, or RBF) between the candidate's hidden representations and a trained reference's, blocks matched by relative depth (:func:`match_by_relative_depth`), at initialisation or after ``train_steps`` | RMI-NAS (CVPR 2022), HW-EvRSNAS, MO-HDNAS |
| ``synflow`` | log of the sum over parameters of ``theta * dR/dtheta`` for ``R`` = output sum of the network with ``abs`` weights on an all-ones input | Tanaka et al. 2020; Abdelfattah et al. 2021 |
| ``naswot`` | log-determinant of the ReLU activation-pattern kernel of the batch | Mellor et al., ICML 2021 |
| ``grad_norm`` | sum over parameter tensors of the L2 norm of the cross-entropy gradient on the batch | Abdelfattah et al. 2021 |
| ``params`` / ``flops`` | trainable parameters / MACs at batch 1: the baselines a proxy must beat | |
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from nni_hwnas.evaluation.sgd import Sgd
from nni_hwnas.evaluation.similarity import ESTIMATORS, center_gram, cka

__all__ = ["PROXIES", "ProxyFailed", "ProxySettings", "RmiReference", "hidden_representations",
           "match_by_relative_depth", "proxy_names", "score"]


class ProxyFailed(RuntimeError):
    """The candidate's forward pass failed or gave a non-finite score: a failed trial."""


@dataclass(frozen=True)
class RmiReference:
    """The trained reference's side of RMI, computed once per batch.

    ``grams``: one centred ``(n, n)`` float64 Gram matrix per hidden block of the reference, in
    depth order, built with ``estimator`` on the same batch the candidates see.
    """

    grams: tuple[Tensor, ...]
    estimator: str = "linear_cka"

    @classmethod
    def from_network(cls, reference: nn.Sequential, batch_x: Tensor, estimator: str = "linear_cka") -> "RmiReference":
        """Run the trained reference (eval mode, no gradients) on the batch and keep its Grams."""
        gram = _gram_builder(estimator)
        with torch.no_grad():
            reps = hidden_representations(reference, batch_x, train_mode=False)
        return cls(tuple(center_gram(gram(r)) for r in reps), estimator)


@dataclass(frozen=True)
class ProxySettings:
    """Options of the proxies (each proxy reads only what it needs).

    Attributes:
        seed: seeds torch before anything random (RMI's training steps).
        reference: the reference side of ``rmi``; required by ``rmi`` only.
        train_steps: 0 scores the candidate at initialisation; ``N > 0`` first trains it for N SGD
            steps on the batch toward the reference, as RMI-NAS does (``rmi`` only).
        learning_rate: SGD learning rate of those steps (RMI-NAS: 0.1, momentum 0.9, wd 5e-4).
        blocks: ``"all"`` compares every reference hidden block with its relative-depth match;
            ``"last"`` only the last hidden representations (the classifier's input) of both.
    """

    seed: int = 0
    reference: RmiReference | None = None
    train_steps: int = 0
    learning_rate: float = 0.1
    blocks: str = "all"


def _gram_builder(estimator: str) -> Callable[[Tensor], Tensor]:
    try:
        return ESTIMATORS[estimator]
    except KeyError:
        raise ValueError(f"unknown RMI estimator {estimator!r}; allowed: {', '.join(ESTIMATORS)}") from None


# ----------------------------------------------------------------------------------------------
# helpers


def _blocks(network: nn.Module) -> list[nn.Module]:
    children = list(network.children())
    if len(children) < 2:
        raise ProxyFailed(f"{type(network).__name__} has {len(children)} block(s); proxies need a "
                          "Sequential of blocks whose last is the classifier (search_spaces.layers.build_network)")
    return children


def _set_mode(network: nn.Module, train_mode: bool) -> None:
    """Train mode (batch-statistics BN) or eval mode, with dropout off either way: deterministic."""
    network.train(train_mode)
    for module in network.modules():
        if isinstance(module, nn.modules.dropout._DropoutNd):
            module.eval()


def hidden_representations(network: nn.Module, x: Tensor, train_mode: bool = True) -> list[Tensor]:
    """Outputs of every block but the classifier, in depth order: ``[(n, ...), ...]``."""
    blocks = _blocks(network)
    _set_mode(network, train_mode)
    reps: list[Tensor] = []
    out = x
    try:
        for block in blocks[:-1]:
            out = block(out)
            reps.append(out)
    except RuntimeError as exc:
        raise ProxyFailed(f"forward pass failed: {exc}") from exc
    return reps


def match_by_relative_depth(n_candidate: int, n_reference: int) -> list[tuple[int, int]]:
    """Pairs ``(candidate block, reference block)``, 0-based, one per reference block.

    The rule: reference block ``j`` (1-based, of ``r``) is matched with candidate block
    ``ceil(j * m / r)`` (of ``m``), the shallowest candidate block at least as deep in relative
    terms. Every candidate is thus scored on the same number of terms (``r``), and the last hidden
    blocks of both are always compared (``j = r`` gives ``m``), where the reference is most task-specific.
    """
    if n_candidate < 1 or n_reference < 1:
        raise ValueError(f"need at least one hidden block on each side, got {n_candidate} and {n_reference}")
    return [(math.ceil(j * n_candidate / n_reference) - 1, j - 1) for j in range(1, n_reference + 1)]


def _check_finite(name: str, value: float) -> float:
    if not math.isfinite(value):
        raise ProxyFailed(f"proxy {name!r} gave a non-finite score ({value})")
    return float(value)


def _task_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy for class labels ``(n,)``; BCE-with-logits for multi-label targets ``(n, L)``."""
    if y.dim() == 2 and y.is_floating_point():
        return nn.functional.binary_cross_entropy_with_logits(logits, y.to(logits.dtype))
    return nn.functional.cross_entropy(logits, y)


def _forward(network: nn.Module, x: Tensor) -> Tensor:
    try:
        out = network(x)
    except RuntimeError as exc:
        raise ProxyFailed(f"forward pass failed: {exc}") from exc
    if not torch.isfinite(out).all():
        raise ProxyFailed("forward pass gave NaN or infinite outputs")
    return out


# ----------------------------------------------------------------------------------------------
# RMI


def _rmi_terms(reps: Sequence[Tensor], reference: RmiReference, blocks: str) -> Tensor:
    """Mean CKA over the matched pairs (a differentiable tensor)."""
    gram = _gram_builder(reference.estimator)
    if blocks == "last":
        pairs = [(len(reps) - 1, len(reference.grams) - 1)]
    elif blocks == "all":
        pairs = match_by_relative_depth(len(reps), len(reference.grams))
    else:
        raise ValueError(f"unknown RMI blocks option {blocks!r}; allowed: all, last")
    cache: dict[int, Tensor] = {}
    values = []
    for i, j in pairs:
        if i not in cache:
            if not torch.isfinite(reps[i]).all():
                raise ProxyFailed(f"hidden block {i + 1} gave NaN or infinite values")
            cache[i] = gram(reps[i])
        values.append(cka(cache[i], reference.grams[j]))
    return torch.stack(values).mean()


def _train_toward_reference(network: nn.Module, x: Tensor, y: Tensor, settings: ProxySettings) -> None:
    """RMI-NAS's candidate training: SGD on ``0.8 * (1 - mean CKA) + 0.2 * cross-entropy``."""
    optimizer = Sgd(network.parameters(), momentum=0.9, weight_decay=5e-4)
    blocks = _blocks(network)
    for step in range(settings.train_steps):
        reps = hidden_representations(network, x, train_mode=True)
        logits = blocks[-1](reps[-1])
        loss = 0.8 * (1.0 - _rmi_terms(reps, settings.reference, settings.blocks)) \
            + 0.2 * _task_loss(logits, y).to(torch.float64)
        if not torch.isfinite(loss):
            raise ProxyFailed(f"RMI training loss became {float(loss)} at step {step + 1}")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step(settings.learning_rate)


def rmi(network: nn.Module, batch_x: Tensor, batch_y: Tensor, settings: ProxySettings) -> float:
    """Representation similarity to the trained reference, in [0, 1] (higher is better)."""
    if settings.reference is None:
        raise ValueError("proxy 'rmi' needs a reference (ProxySettings.reference)")
    if settings.train_steps > 0:
        _train_toward_reference(network, batch_x, batch_y, settings)
    with torch.no_grad():
        reps = hidden_representations(network, batch_x, train_mode=True)
        return float(_rmi_terms(reps, settings.reference, settings.blocks))


# ----------------------------------------------------------------------------------------------
# zero-cost baselines


def synflow(network: nn.Module, batch_x: Tensor, batch_y: Tensor, settings: ProxySettings) -> float:
    """log(1 + synaptic flow): data-free, one all-ones input, float64 to avoid overflow."""
    net = network.double()
    _set_mode(net, train_mode=False)  # BN at init in eval mode is the identity, as the method assumes
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.zero_grad(set_to_none=True)
    ones = torch.ones((1, *batch_x.shape[1:]), dtype=torch.float64)
    _forward(net, ones).sum().backward()
    with torch.no_grad():
        total = sum(float((p * p.grad).sum()) for p in net.parameters() if p.grad is not None)
    return math.log1p(max(total, 0.0))


def naswot(network: nn.Module, batch_x: Tensor, batch_y: Tensor, settings: ProxySettings) -> float:
    """log|det K| with ``K_ij`` = number of ReLUs on which samples i and j agree (on/off).

    A singular kernel (two samples with identical codes, e.g. dead ReLUs) gets a ``1e-6 * I`` ridge
    so the score stays finite and low instead of ``-inf``.
    """
    codes: list[Tensor] = []

    def keep(module: nn.Module, inputs: tuple, output: Tensor) -> None:
        codes.append((output.detach() > 0).reshape(output.shape[0], -1).to(torch.float64))

    hooks = [m.register_forward_hook(keep) for m in network.modules() if isinstance(m, nn.ReLU)]
    try:
        _set_mode(network, train_mode=True)
        with torch.no_grad():
            _forward(network, batch_x)
    finally:
        for hook in hooks:
            hook.remove()
    if not codes:
        return 0.0
    c = torch.cat(codes, dim=1)
    kernel = c @ c.T + (1.0 - c) @ (1.0 - c).T
    sign, logdet = torch.linalg.slogdet(kernel)
    if float(sign) <= 0:
        sign, logdet = torch.linalg.slogdet(kernel + 1e-6 * torch.eye(len(kernel), dtype=kernel.dtype))
    return float(logdet)


def grad_norm(network: nn.Module, batch_x: Tensor, batch_y: Tensor, settings: ProxySettings) -> float:
    """Sum of per-tensor L2 norms of the task-loss gradient on the batch at initialisation."""
    _set_mode(network, train_mode=True)
    network.zero_grad(set_to_none=True)
    _task_loss(_forward(network, batch_x), batch_y).backward()
    return sum(float(p.grad.norm()) for p in network.parameters() if p.grad is not None)


def params(network: nn.Module, batch_x: Tensor, batch_y: Tensor, settings: ProxySettings) -> float:
    """Trainable parameter count: the baseline every proxy must beat (METHODS.md)."""
    return float(sum(p.numel() for p in network.parameters() if p.requires_grad))


def flops(network: nn.Module, batch_x: Tensor, batch_y: Tensor, settings: ProxySettings) -> float:
    """Multiply-accumulates of conv and linear layers for one sample, counted with forward hooks."""
    total = [0]

    def count(module: nn.Module, inputs: tuple, output: Tensor) -> None:
        per_sample = output[0].numel()
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total[0] += per_sample * kh * kw * module.in_channels // module.groups
        else:
            total[0] += per_sample * module.in_features

    hooks = [m.register_forward_hook(count) for m in network.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        _set_mode(network, train_mode=False)
        with torch.no_grad():
            _forward(network, batch_x[:1])
    finally:
        for hook in hooks:
            hook.remove()
    return float(total[0])


ProxyFn = Callable[[nn.Module, Tensor, Tensor, ProxySettings], float]

#: Every proxy by name; all are higher-is-better.
PROXIES: dict[str, ProxyFn] = {
    "rmi": rmi,
    "synflow": synflow,
    "naswot": naswot,
    "grad_norm": grad_norm,
    "params": params,
    "flops": flops,
}


def proxy_names() -> list[str]:
    return list(PROXIES)


def score(name: str, network: nn.Module, batch_x: Tensor, batch_y: Tensor,
          settings: ProxySettings = ProxySettings()) -> float:
    """Score ``network`` with proxy ``name`` on one batch; higher is better.

    The network is copied first (its weights, mode and gradients are left as they were) and torch
    is seeded with ``settings.seed``, so the same inputs give the same score.

    Args:
        batch_x: ``(n, C, H, W)`` float inputs. batch_y: ``(n,)`` int64 class labels.

    Raises:
        ProxyFailed: the forward pass failed or the score is NaN/infinite.
    """
    try:
        fn = PROXIES[name]
    except KeyError:
        raise ValueError(f"unknown proxy {name!r}; allowed: {', '.join(PROXIES)}") from None
    torch.manual_seed(settings.seed)
    candidate = copy.deepcopy(network)
    return _check_finite(name, fn(candidate, batch_x, batch_y, settings))
