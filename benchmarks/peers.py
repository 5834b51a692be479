"""Peers for the real-valued table: what a user would install instead of ardens.

Every peer is fitted in the fold's standardized space (the training split's mean and
population standard deviation, as the RNADE protocol), and :func:`fit_peer` returns its
per-row log-likelihoods in that space; the original units differ by the constant
``-sum(log scale)`` (:func:`standardize`).

- ``gaussian``: one full-covariance Gaussian (maximum likelihood), a scale check;
- ``gmm``: scikit-learn's ``GaussianMixture`` (full covariances), ``k`` chosen on validation;
- ``zuko_maf``, ``zuko_nsf``: zuko's masked autoregressive flow and neural spline flow;
- ``nflows_mog_made``: nflows' ``MixtureOfGaussiansMADE``.

The neural peers are trained exactly as ardens' models are in the same benchmark: Adam,
minibatches of 100 rows reshuffled every epoch by a seeded generator, early stopping on the
validation log-likelihood with the same patience and epoch cap, and the weights of the best
validation epoch kept. They are an optional extra (``pip install -e '.[bench]'``); nothing
in ``src/ardens`` imports them.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import numpy as np
import torch

PEERS = ("gaussian", "gmm", "zuko_maf", "zuko_nsf", "nflows_mog_made")


def standardize(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The training split's mean and population standard deviation (ddof 0)."""
    train = np.asarray(train, dtype=np.float64)
    return train.mean(0), train.std(0)


def gaussian_log_likelihoods(train: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Per-row log-density of ``x`` under the maximum-likelihood full-covariance Gaussian of ``train``."""
    mean = train.mean(0)
    cov = np.cov(train, rowvar=False, ddof=0)
    chol = np.linalg.cholesky(cov)
    z = np.linalg.solve(chol, (x - mean).T)
    return -0.5 * (z**2).sum(0) - np.log(np.diag(chol)).sum() - 0.5 * x.shape[1] * math.log(2 * math.pi)


def _gmm(k: int, seed: int):
    from sklearn.mixture import GaussianMixture

    return GaussianMixture(k, covariance_type="full", n_init=3, max_iter=500, reg_covar=1e-6, random_state=seed)


def _torch_peer(kind: str, dim: int, point: dict[str, Any]) -> tuple[torch.nn.Module, Any, Any]:
    """A peer module with ``log_prob(x)`` per row and ``sample(n)``, as two callables."""
    if kind in ("zuko_maf", "zuko_nsf"):
        import zuko

        cls = zuko.flows.MAF if kind == "zuko_maf" else zuko.flows.NSF
        flow = cls(dim, transforms=point.get("transforms", 3), hidden_features=tuple(point.get("hidden", (64, 64))))
        return flow, (lambda x: flow().log_prob(x)), (lambda n: flow().sample((n,)))
    if kind == "nflows_mog_made":
        from nflows.nn.nde.made import MixtureOfGaussiansMADE

        made = MixtureOfGaussiansMADE(
            dim,
            point.get("hidden", 100),
            num_blocks=point.get("blocks", 2),
            num_mixture_components=point.get("components", 10),
        )
        # nflows 0.14 cannot sample this model without a context (it reads context.shape[0]);
        # the table only needs its log-likelihoods, so no sampler is offered
        return made, (lambda x: made.log_prob(x).reshape(-1)), None
    raise ValueError(f"unknown peer {kind!r}")


def _mean_ll(log_prob, x: torch.Tensor, batch: int = 2000) -> float:
    with torch.no_grad():
        return float(torch.cat([log_prob(x[i : i + batch]) for i in range(0, len(x), batch)]).double().mean())


def train_torch_peer(
    kind: str, point: dict[str, Any], train: np.ndarray, valid: np.ndarray, budget: dict[str, Any]
) -> tuple[Any, float, dict[str, Any]]:
    """Train a neural peer on standardized ``train`` with early stopping on ``valid``.

    ``budget``: ``lr``, ``batch_size``, ``epochs`` (cap), ``patience`` (epochs), ``seed``.
    Returns ``(log_prob, best validation mean log-likelihood, info)``, holding the best weights."""
    seed = budget.get("seed", 0)
    torch.manual_seed(seed)
    module, log_prob, sample = _torch_peer(kind, train.shape[1], point)
    opt = torch.optim.Adam(module.parameters(), lr=point.get("lr", budget.get("lr", 1e-3)))
    gen = torch.Generator().manual_seed(seed)
    xt = torch.as_tensor(train, dtype=torch.float32)
    xv = torch.as_tensor(valid, dtype=torch.float32)
    bs, patience = budget.get("batch_size", 100), budget.get("patience", 30)
    best, best_state, best_epoch, epoch, start = -math.inf, None, 0, 0, time.perf_counter()
    for epoch in range(1, budget.get("epochs", 1000) + 1):
        module.train()
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), bs):
            loss = -log_prob(xt[perm[i : i + bs]]).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        module.eval()
        v = _mean_ll(log_prob, xv)
        if math.isfinite(v) and v > best:
            best, best_state, best_epoch = v, copy.deepcopy(module.state_dict()), epoch
        elif epoch - best_epoch >= patience:
            break
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    info = {"best_epoch": best_epoch, "epochs_run": epoch, "seconds": time.perf_counter() - start}
    return (log_prob, sample), best, info


def fit_peer(
    kind: str, points: list[dict[str, Any]], train: np.ndarray, valid: np.ndarray, budget: dict[str, Any]
) -> dict[str, Any]:
    """Fit every candidate ``point`` of peer ``kind`` on standardized data and choose on
    validation. Returns the chosen point, every candidate's validation mean log-likelihood,
    and ``log_prob(x) -> per-row numpy`` and ``sample(n) -> numpy`` of the chosen model."""
    seed = budget.get("seed", 0)
    scores: dict[str, float] = {}
    best = None
    start = time.perf_counter()
    for point in points:
        key = ",".join(f"{k}={v}" for k, v in sorted(point.items())) or "default"
        info: dict[str, Any] = {}
        if kind == "gaussian":
            model = (lambda x, t=train: gaussian_log_likelihoods(t, x), None)
            score = float(model[0](valid).mean())
        elif kind == "gmm":
            g = _gmm(point["k"], seed).fit(train)
            model = (g.score_samples, lambda n, g=g: g.sample(n)[0])
            score = float(g.score_samples(valid).mean())
        else:
            (lp, sm), score, info = train_torch_peer(kind, point, train, valid, budget)

            def model_lp(x, lp=lp):
                with torch.no_grad():
                    xs = torch.as_tensor(x, dtype=torch.float32)
                    return torch.cat([lp(xs[i : i + 2000]) for i in range(0, len(xs), 2000)]).double().numpy()

            def model_sample(n, sm=sm):
                with torch.no_grad():
                    return sm(n).double().numpy()

            model = (model_lp, model_sample if sm is not None else None)
        scores[key] = score
        if best is None or score > best[1]:
            best = (key, score, point, model, info)
    key, score, point, (log_prob, sample), info = best
    return {
        "chosen": point,
        "valid_ll": score,
        "grid_valid_ll": scores,
        "log_prob": log_prob,
        "sample": sample,
        "seconds": time.perf_counter() - start,
        **info,
    }
