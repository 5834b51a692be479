"""What every ardens model shares: input checks, log-likelihood from logits, config."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._checks import as_binary, check_positive_int

__all__ = [
    "AutoregressiveModel",
    "bernoulli_log_prob",
    "ensemble_size",
    "check_member",
    "sample_ensemble",
    "ACTIVATIONS",
]

ACTIVATIONS = ("sigmoid", "relu")


def bernoulli_log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``sum_k log p(x_k)`` for Bernoulli logits, in log space: ``x z - softplus(z)``.

    >>> bernoulli_log_prob(torch.zeros(1, 3), torch.ones(1, 3))  # 3 log(1/2)
    tensor([-2.0794])
    """
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def activation_fn(name: str):
    if name == "sigmoid":
        return torch.sigmoid
    if name == "relu":
        return torch.relu
    raise ValueError(f"activation: expected one of {ACTIVATIONS}; got {name!r}")


class AutoregressiveModel(nn.Module):
    """Base class: a distribution over ``{0,1}^n`` with exact ``log_prob`` and ``sample``."""

    n_inputs: int
    member_name = "mask"  # what one member of an ensemble of this model is called

    def _reference(self) -> torch.Tensor:
        """A parameter, for the model's dtype and device."""
        for p in self._parameters.values():
            if p is not None:
                return p
        return next(self.parameters())

    def check_input(self, x: Any) -> torch.Tensor:
        """``x`` validated and converted to this model's dtype and device, flattened to 2-D."""
        ref = self._reference()
        return as_binary(x, self.n_inputs, dtype=ref.dtype, device=ref.device)

    def config(self) -> dict[str, Any]:
        """The constructor's keyword arguments, as JSON-serializable values."""
        raise NotImplementedError

    def log_prob(self, x: Any) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, num: int, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: Any) -> torch.Tensor:
        """Same as :meth:`log_prob`."""
        return self.log_prob(x)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items() if not isinstance(v, list) or len(v) < 8)


def ensemble_size(model: AutoregressiveModel) -> int:
    """``K`` for an ensemble (MADE's masks, DeepNADE's orderings: ``log_prob(x, mask=i)`` is
    member ``i``), 1 for a single model."""
    return int(getattr(model, "num_masks", 1))


def flat_batch(x: torch.Tensor) -> tuple[torch.Tensor, torch.Size]:
    """``x`` of shape ``(..., n)`` as ``(B, n)``, and the batch shape to restore."""
    return x.reshape(-1, x.shape[-1]), x.shape[:-1]


def uniforms(num: int, n: int, *, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """``(num, n)`` uniforms on ``like``'s device and dtype: the randomness of sampling.

    Drawing them up front makes samples a deterministic function of the generator, so
    that different sampling algorithms can be compared sample for sample.
    """
    return torch.rand(num, n, generator=generator, device=like.device, dtype=like.dtype)


def check_member(i: Any, k: int) -> int:
    """``i`` as the index of one of ``k`` ensemble members, or a ``ValueError`` naming ``mask``."""
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < k:
        raise ValueError(f"mask: expected an integer in [0, {k}); got {i!r}")
    return int(i)


def sample_ensemble(
    num: int,
    k: int,
    mask: int | None,
    *,
    like: torch.Tensor,
    n: int,
    generator: torch.Generator | None,
    draw: Callable[[torch.Tensor, int], torch.Tensor],
) -> torch.Tensor:
    """``num`` samples of a ``k``-member ensemble: each from member ``mask``, or from a member
    chosen uniformly per sample (that samples the mixture). ``draw(u, i)`` turns the
    uniforms ``u`` of some samples into member ``i``'s samples."""
    num = check_positive_int("num", num, allow_zero=True)
    if mask is not None:
        members = torch.full((num,), check_member(mask, k), dtype=torch.long)
    else:
        members = torch.randint(k, (num,), generator=generator, device=like.device).cpu()
    u = uniforms(num, n, like=like, generator=generator)
    x = torch.zeros_like(u)
    for i in members.unique().tolist():
        rows = (members == i).nonzero().flatten().to(like.device)
        x[rows] = draw(u[rows], i)
    return x
