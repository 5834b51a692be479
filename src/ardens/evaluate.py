"""Evaluating and sampling trained models: NLL ± standard error, bits per dimension, samples.

>>> import torch, ardens
>>> from ardens.data import load_digits
>>> model = ardens.MADE(64, hidden=[16], num_masks=3, ordering="random")
>>> report = evaluate(model, load_digits().test)
>>> report.masks, report.n_examples, round(report.bits_per_dim, 3) == round(report.nll / (64 * math.log(2)), 3)
(3, 300, True)
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._heap import reuse_freed_blocks
from .base import AutoregressiveModel, context_kw, ensemble_size
from .serialization import load, read_metadata

__all__ = [
    "Evaluation",
    "evaluate",
    "log_likelihoods",
    "member_log_likelihoods",
    "resolve_checkpoint",
    "load_checkpoint",
    "draw_samples",
]


@dataclass
class Evaluation:
    """Average NLL in nats with its standard error (std / sqrt(N)), and bits per dimension.

    The NLL is in the data's own units (densities of real columns). ``bits_per_dim`` is given
    only where every column is discrete (``None`` otherwise). For models with real columns,
    ``standardized_log_likelihood`` is the mean log-likelihood in the space of the training
    split's standardization (``log p(x) + sum log scale``), the scale the RNADE papers report.

    For an ensemble of K (MADE's masks, DeepNADE's orderings), ``nll`` is the ensemble of the
    first ``masks`` members and ``single_mask_nll`` that of member 0 alone (``None`` for
    single models).
    """

    nll: float
    stderr: float
    bits_per_dim: float | None
    n_examples: int
    dim: int
    masks: int
    single_mask_nll: float | None = None
    single_mask_stderr: float | None = None
    standardized_log_likelihood: float | None = None
    median_log_likelihood: float | None = None
    worst_log_likelihood: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _members(model: AutoregressiveModel, masks: int | None) -> int:
    """How many members ``masks`` asks for (all where ``None``), checked against the model."""
    k = ensemble_size(model)
    if masks is None:
        return k
    if isinstance(masks, bool) or not isinstance(masks, int) or not 1 <= masks <= k:
        raise ValueError(f"masks: expected an integer in [1, {k}] for this model; got {masks!r}")
    return masks


def _context_rows(model: AutoregressiveModel, context: Any, n: int) -> torch.Tensor | None:
    """``context`` checked for ``n`` rows of x: ``(n, C)`` on the model's device (a single row
    broadcast), or None for a model without context (a one-line ``ValueError`` otherwise)."""
    return model.check_context(context, (n,))


@torch.no_grad()
def member_log_likelihoods(
    model: AutoregressiveModel,
    x: np.ndarray | torch.Tensor,
    masks: int | None = None,
    batch_size: int = 1000,
    context: Any = None,
) -> torch.Tensor:
    """``log p_i(x)`` of members ``i = 0..K-1`` for each row: a ``(K, N)`` CPU tensor in the model's dtype.

    ``context``: for a conditional model, ``log p_i(x | c)`` with one context row per row of
    ``x`` (or one row for all of them).

    ``masks=K`` takes the first K members of an ensemble (MADE's masks, DeepNADE's orderings);
    ``None`` takes all of them. A single model has one member, ``K = 1``. Batches run on the
    model's device.

    >>> import ardens
    >>> model = ardens.MADE(4, hidden=[8], num_masks=3)
    >>> member_log_likelihoods(model, torch.ones(5, 4)).shape
    torch.Size([3, 5])
    """
    ref = next(model.parameters())
    if x.ndim != 2 or x.shape[-1] != model.n_inputs:
        raise ValueError(f"data has {x.shape[-1]} dimensions; the model expects {model.n_inputs}")
    k = _members(model, masks)
    ensemble = ensemble_size(model) > 1
    cond = _context_rows(model, context, len(x))
    out = []
    model.eval()
    with reuse_freed_blocks(ref.device.type == "cpu"):
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size]
            xb = (xb if isinstance(xb, torch.Tensor) else torch.as_tensor(np.asarray(xb))).to(ref.device, ref.dtype)
            kw = {} if cond is None else context_kw(cond[start : start + batch_size])
            if ensemble:
                lp = torch.stack([model.log_prob(xb, mask=i, **kw) for i in range(k)])
            else:
                lp = model.log_prob(xb, **kw).unsqueeze(0)
            out.append(lp.cpu())
    return torch.cat(out, dim=1)


def _mixture(members: torch.Tensor) -> np.ndarray:
    """Log-mean-exp over the members (rows) of a ``(K, N)`` tensor, as float64 NumPy."""
    k = members.shape[0]
    mixed = members[0] if k == 1 else members.logsumexp(0) - math.log(k)
    return mixed.double().numpy()


def log_likelihoods(
    model: AutoregressiveModel,
    x: np.ndarray | torch.Tensor,
    masks: int | None = None,
    batch_size: int = 1000,
    context: Any = None,
) -> np.ndarray:
    """``log p(x)`` of each row (float64 NumPy), in batches on the model's device; ``log p(x | c)``
    for a conditional model, with ``context`` (one row per row of ``x``, or one row for all).

    For an ensemble (MADE's masks, DeepNADE's orderings) with ``masks=K``: the mixture of
    members ``0..K-1``, ``logsumexp_i log p_i(x) - log K``; ``masks=None`` means all members.
    """
    return _mixture(member_log_likelihoods(model, x, masks, batch_size, context=context))


def _summary(ll: np.ndarray) -> tuple[float, float]:
    nll = -ll
    se = float(nll.std(ddof=1) / math.sqrt(len(nll))) if len(nll) > 1 else math.nan
    return float(nll.mean()), se


def evaluate(
    model: AutoregressiveModel, x: np.ndarray, masks: int | None = None, batch_size: int = 1000, context: Any = None
) -> Evaluation:
    """NLL statistics of ``model`` on the rows of ``x`` (see :class:`Evaluation`); for a
    conditional model, of ``-log p(x | c)`` with the rows' ``context``.

    One pass over the data: member 0's figure comes from the same member log-likelihoods as
    the ensemble's.

    Under a process group of several ranks (``torchrun ... -m ardens evaluate``), each rank scores
    its contiguous share of the rows; the sums of the NLLs, of their squares and the counts (and
    the worst row) are all-reduced, the median is taken over the gathered log-likelihoods; every
    rank returns the same :class:`Evaluation` (equal to one process's up to float64 round-off).
    """
    from . import distributed

    if distributed.is_distributed():
        return _evaluate_sharded(model, x, masks, batch_size, context)
    members = member_log_likelihoods(model, x, masks, batch_size, context=context)
    ll = _mixture(members)
    nll, se = _summary(ll)
    k = members.shape[0]
    bits = nll / (model.n_inputs * math.log(2)) if model.columns.all_discrete else None
    result = Evaluation(nll, se, bits, members.shape[1], model.n_inputs, k)
    if len(ll):
        result.median_log_likelihood, result.worst_log_likelihood = float(np.median(ll)), float(ll.min())
    if not model.columns.all_discrete:
        result.standardized_log_likelihood = -nll - model.columns.log_jacobian()
    if ensemble_size(model) > 1:
        result.single_mask_nll, result.single_mask_stderr = _summary(_mixture(members[:1]))
    return result


def _evaluate_sharded(model, x, masks, batch_size, context) -> Evaluation:
    from . import distributed

    n = len(x)
    start, stop = distributed.shard(n, distributed.rank(), distributed.world_size())
    k = _members(model, masks)
    cond = _context_rows(model, context, n)
    if stop > start:
        members = member_log_likelihoods(
            model, x[start:stop], k, batch_size, context=None if cond is None else cond[start:stop]
        )
        ll, single = _mixture(members), _mixture(members[:1])
    else:
        ll = single = np.zeros(0)
    sums = distributed.all_reduce_sums([-ll.sum(), (ll**2).sum(), len(ll), -single.sum(), (single**2).sum()])
    count = int(sums[2])

    def summary(total: float, squares: float) -> tuple[float, float]:
        mean = total / count if count else math.nan
        var = max(squares - count * mean * mean, 0.0) / (count - 1) if count > 1 else math.nan
        return mean, math.sqrt(var) / math.sqrt(count) if count > 1 else math.nan

    nll, se = summary(sums[0], sums[1])
    bits = nll / (model.n_inputs * math.log(2)) if model.columns.all_discrete else None
    result = Evaluation(nll, se, bits, count, model.n_inputs, k)
    if count:
        import torch.distributed as dist

        shares: list[Any] = [None] * distributed.world_size()
        dist.all_gather_object(shares, ll.tolist())
        everything = np.concatenate([np.asarray(s, dtype=np.float64) for s in shares])
        (worst,) = distributed.all_reduce_min([float(ll.min()) if len(ll) else math.inf])
        result.median_log_likelihood, result.worst_log_likelihood = float(np.median(everything)), worst
    if not model.columns.all_discrete:
        result.standardized_log_likelihood = -nll - model.columns.log_jacobian()
    if ensemble_size(model) > 1:
        result.single_mask_nll, result.single_mask_stderr = summary(sums[3], sums[4])
    return result


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A ``.safetensors`` file, or a run directory's ``best.safetensors``."""
    path = Path(path)
    if path.is_dir():
        best = path / "best.safetensors"
        if not best.is_file():
            raise ValueError(f"{path}: run directory has no best.safetensors (no epoch finished yet?)")
        return best
    if not path.exists():
        raise ValueError(f"{path}: no such checkpoint file or run directory")
    return path


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[AutoregressiveModel, dict]:
    """The model and its header metadata (``extra`` from training: data name, image shape, ...)."""
    file = resolve_checkpoint(path)
    meta = read_metadata(file)
    return load(file, map_location=device), meta


def draw_samples(model: AutoregressiveModel, num: int, seed: int = 0, context: Any = None) -> np.ndarray:
    """``num`` samples from a generator seeded with ``seed``: ``uint8`` for all-binary
    models, ``int64`` codes where every column is discrete, else ``float64`` (real columns in
    the data's units). ``context``: for a conditional model, one row per sample or one row for all.

    >>> import ardens
    >>> draw_samples(ardens.NADE(5, hidden=3), 4).dtype
    dtype('uint8')
    """
    ref = next(model.parameters())
    generator = torch.Generator(device=ref.device).manual_seed(seed)
    x = model.sample(num, generator=generator, **context_kw(context)).cpu().numpy()
    if model.columns.all_binary:
        return x.astype(np.uint8)
    return np.rint(x).astype(np.int64) if model.columns.all_discrete else x.astype(np.float64)
