"""Baselines for binary data: independent Bernoulli pixels and a mixture of Bernoullis (EM).

Both give exact per-example log-likelihoods in nats, like the neural models.

>>> import numpy as np
>>> x = np.array([[0, 1], [1, 1], [0, 1], [1, 1]], dtype=np.uint8)
>>> model = IndependentBernoulli(alpha=0.0).fit(x)
>>> model.probs.tolist()
[0.5, 1.0]
>>> MixtureOfBernoullis(2, seed=0).fit(x).log_prob(x).shape
(4,)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["IndependentBernoulli", "MixtureOfBernoullis", "select_mixture"]


def _lse(a: np.ndarray, axis: int) -> np.ndarray:
    m = a.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(a - m).sum(axis=axis, keepdims=True))).squeeze(axis)


class IndependentBernoulli:
    """``p(x) = prod_k p_k^x_k (1-p_k)^(1-x_k)`` with ``p_k = (count_k + alpha) / (N + 2 alpha)``
    (additive smoothing, so a pixel never seen on keeps a small probability)."""

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = float(alpha)
        self.probs: np.ndarray | None = None

    def fit(self, x: np.ndarray) -> IndependentBernoulli:
        x = np.asarray(x, dtype=np.float64)
        self.probs = (x.sum(0) + self.alpha) / (len(x) + 2 * self.alpha)
        return self

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        assert self.probs is not None, "fit first"
        x = np.asarray(x, dtype=np.float64)
        with np.errstate(divide="ignore"):
            lp, lq = np.log(self.probs), np.log1p(-self.probs)
        return np.where(x > 0, lp, 0.0).sum(1) + np.where(x > 0, 0.0, lq).sum(1)


class MixtureOfBernoullis:
    """``p(x) = sum_j pi_j prod_k mu_jk^x_k (1-mu_jk)^(1-x_k)``, fit by EM.

    The M-step adds ``alpha`` pseudo-counts to each mean (a Beta(1+alpha, 1+alpha) prior,
    i.e. MAP-EM) so no mean reaches 0 or 1. Starts from responsibilities drawn at random
    from ``seed``; stops when the training log-likelihood per example improves by less
    than ``tol`` nats or after ``max_iter`` steps.
    """

    def __init__(self, k: int, alpha: float = 1.0, max_iter: int = 200, tol: float = 1e-4, seed: int = 0) -> None:
        self.k, self.alpha, self.max_iter, self.tol, self.seed = int(k), float(alpha), int(max_iter), tol, seed
        self.log_pi: np.ndarray | None = None
        self.mu: np.ndarray | None = None
        self.iterations = 0

    def _component_ll(self, x: np.ndarray) -> np.ndarray:
        assert self.mu is not None and self.log_pi is not None, "fit first"
        return x @ np.log(self.mu).T + (1 - x) @ np.log1p(-self.mu).T + self.log_pi

    def fit(self, x: np.ndarray) -> MixtureOfBernoullis:
        x = np.asarray(x, dtype=np.float64)
        rng = np.random.default_rng(self.seed)
        resp = rng.dirichlet(np.ones(self.k), size=len(x))
        last = -np.inf
        for it in range(1, self.max_iter + 1):
            weight = resp.sum(0)
            with np.errstate(divide="ignore"):  # a component left with no responsibility: log 0 = -inf,
                self.log_pi = np.log(weight / len(x))  # and it stays empty (its mean is then 1/2)
            self.mu = (resp.T @ x + self.alpha) / (weight[:, None] + 2 * self.alpha)
            joint = self._component_ll(x)
            total = _lse(joint, 1)
            resp = np.exp(joint - total[:, None])
            ll = total.mean()
            self.iterations = it
            if ll - last < self.tol:
                break
            last = ll
        return self

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        return _lse(self._component_ll(np.asarray(x, dtype=np.float64)), 1)


@dataclass
class Selection:
    """The mixture chosen on validation data, and the validation NLL of each candidate ``K``."""

    model: MixtureOfBernoullis
    valid_nll: dict[int, float]


def select_mixture(
    train: np.ndarray, valid: np.ndarray, ks: Sequence[int] = (1, 2, 5, 10, 20, 40, 80), seed: int = 0
) -> Selection:
    """Fit a mixture for each ``K`` in ``ks``; keep the one with the lowest validation NLL."""
    scores, best = {}, None
    for k in ks:
        model = MixtureOfBernoullis(k, seed=seed).fit(train)
        scores[k] = float(-model.log_prob(valid).mean())
        if best is None or scores[k] < scores[best.k]:
            best = model
    assert best is not None
    return Selection(best, scores)
