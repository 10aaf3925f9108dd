"""Representation similarity from Gram matrices: the estimators behind the RMI proxy.

What HW-EvRSNAS and MO-HDNAS call *Representation Mutual Information* (RMI) is, in the code it
descends from (RMI-NAS, MAC-AutoML/XNAS), **linear CKA**: centred kernel alignment between the
Gram matrices of two representations of the same batch (Kornblith et al., ICML 2019,
https://arxiv.org/abs/1905.00414). CKA is the Hilbert-Schmidt independence criterion (HSIC)
normalised to [0, 1]; it is a kernel *dependence* measure rather than Shannon mutual information,
but it shares MI's key properties for this use: it is 1 for identical representations, invariant
to rotations and isotropic scaling of either side, and (with a characteristic kernel such as the
RBF kernel) zero in population exactly when the two are independent.

Shapes: a representation is ``(n_samples, ...)``; it is flattened to ``(n, d)`` per sample. Gram
matrices are ``(n, n)``. All arithmetic is float64: centring and the products of large Gram
entries lose digits in float32 on wide layers. Functions take and return torch tensors so the
RMI proxy can differentiate through :func:`cka` when it trains a candidate toward the reference.

What holds exactly (and is tested):
- ``linear_cka(x, x) == 1``; ``linear_cka(x, c * x @ Q) == 1`` for orthogonal ``Q`` and ``c != 0``.
- For an arbitrary invertible map ``A`` and column-whitened, centred ``x`` (``x.T @ x = s I``),
  ``linear_cka(x, x @ A) = tr(M) / sqrt(d * tr(M @ M))`` with ``M = A @ A.T``: the mean over the
  root-mean-square of ``M``'s eigenvalues, below 1 unless ``A`` is a scaled rotation.
- The biased estimator is positive for independent finite samples (about ``sqrt(d1 d2) / n`` for
  Gaussian features); ``debiased=True`` (Song et al., JMLR 2012, unbiased HSIC) removes that bias.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["as_features", "center_gram", "cka", "gram_linear", "gram_rbf", "hsic", "linear_cka", "rbf_cka",
           "ESTIMATORS", "similarity"]


def as_features(x: Tensor) -> Tensor:
    """``(n, ...)`` -> ``(n, d)`` float64: one row of features per sample."""
    if x.dim() < 2:
        raise ValueError(f"a representation needs a sample axis and features, got shape {tuple(x.shape)}")
    return x.reshape(x.shape[0], -1).to(torch.float64)


def gram_linear(x: Tensor) -> Tensor:
    """Linear kernel ``x x^T`` of ``(n, ...)`` features: ``(n, n)``."""
    f = as_features(x)
    return f @ f.T


def gram_rbf(x: Tensor, bandwidth: float = 1.0) -> Tensor:
    """RBF kernel ``exp(-|xi - xj|^2 / (2 sigma^2))`` with ``sigma = bandwidth * median distance``.

    Scaling sigma by the median pairwise distance (the usual heuristic, Kornblith et al. 2019)
    makes the kernel invariant to the overall scale of the features.
    """
    f = as_features(x)
    sq = f.pow(2).sum(dim=1)
    dist2 = (sq[:, None] + sq[None, :] - 2.0 * (f @ f.T)).clamp_min(0.0)
    off_diagonal = dist2[~torch.eye(len(f), dtype=torch.bool, device=f.device)]
    median = off_diagonal.median() if off_diagonal.numel() else dist2.new_tensor(0.0)
    sigma2 = (bandwidth ** 2) * median.clamp_min(1e-12)
    return torch.exp(-dist2 / (2.0 * sigma2))


def center_gram(gram: Tensor) -> Tensor:
    """``H K H`` with ``H = I - 11^T / n``: removes the feature means from a Gram matrix."""
    gram = gram.to(torch.float64)
    gram = gram - gram.mean(dim=0, keepdim=True)
    return gram - gram.mean(dim=1, keepdim=True)


def _unbiased_terms(gram: Tensor) -> Tensor:
    """Gram with zeroed diagonal, the ingredient of the unbiased HSIC estimator."""
    return gram - torch.diag_embed(torch.diagonal(gram))


def hsic(k: Tensor, l: Tensor, debiased: bool = False) -> Tensor:
    """HSIC of two ``(n, n)`` Gram matrices of the same samples.

    Biased: ``tr(Kc Lc) / (n - 1)^2`` (Gretton et al. 2005). Debiased: Song et al. 2012, eq. 5,
    which needs ``n >= 4`` and may come out slightly negative for independent data.
    """
    n = k.shape[0]
    if k.shape != (n, n) or l.shape != (n, n):
        raise ValueError(f"Gram matrices must be square and equal in size, got {tuple(k.shape)} and {tuple(l.shape)}")
    k, l = k.to(torch.float64), l.to(torch.float64)
    if not debiased:
        return (center_gram(k) * center_gram(l)).sum() / (n - 1) ** 2
    if n < 4:
        raise ValueError(f"the debiased HSIC needs at least 4 samples, got {n}")
    kt, lt = _unbiased_terms(k), _unbiased_terms(l)
    trace = (kt * lt).sum()
    cross = kt.sum() * lt.sum() / ((n - 1) * (n - 2))
    middle = 2.0 * (kt.sum(dim=0) @ lt.sum(dim=0)) / (n - 2)
    return (trace + cross - middle) / (n * (n - 3))


def cka(k: Tensor, l: Tensor, debiased: bool = False) -> Tensor:
    """Centred kernel alignment ``HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` of two Gram matrices.

    A representation whose centred Gram is zero (constant features, e.g. a dead ReLU layer) carries
    no information about the batch: its CKA with anything is defined as 0.
    """
    kl = hsic(k, l, debiased)
    kk, ll = hsic(k, k, debiased), hsic(l, l, debiased)
    denominator = torch.sqrt(kk.clamp_min(0.0) * ll.clamp_min(0.0))
    if float(denominator.detach()) <= 1e-300:
        return kl.new_tensor(0.0)
    return kl / denominator


def linear_cka(x: Tensor, y: Tensor, debiased: bool = False) -> Tensor:
    """Linear CKA of two representations ``(n, ...)`` of the same ``n`` samples: RMI as in RMI-NAS."""
    return cka(gram_linear(x), gram_linear(y), debiased)


def rbf_cka(x: Tensor, y: Tensor, bandwidth: float = 1.0, debiased: bool = False) -> Tensor:
    """RBF-kernel CKA: also sees non-linear dependence that linear CKA misses."""
    return cka(gram_rbf(x, bandwidth), gram_rbf(y, bandwidth), debiased)


#: Gram-matrix builders by estimator name (what the RMI proxy's ``estimator`` option selects).
ESTIMATORS = {"linear_cka": gram_linear, "rbf_cka": gram_rbf}


def similarity(x: Tensor, y: Tensor, estimator: str = "linear_cka") -> Tensor:
    """CKA of ``x`` and ``y`` with the named estimator (``linear_cka`` or ``rbf_cka``)."""
    try:
        gram = ESTIMATORS[estimator]
    except KeyError:
        raise ValueError(f"unknown similarity estimator {estimator!r}; allowed: {', '.join(ESTIMATORS)}") from None
    return cka(gram(x), gram(y))
