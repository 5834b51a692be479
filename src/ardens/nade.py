"""NADE: the neural autoregressive distribution estimator (Larochelle & Murray, 2011).

For an ordering ``o``, with ``W`` (d, n), ``b`` (d), ``V`` (n, d), ``c`` (n):

    h_k = act(b + W[:, o_<k] x_o<k),    p(x_ok = 1 | x_o<k) = sigmoid(V[o_k] . h_k + c[o_k])

The pre-activation is a running sum, ``a_{k+1} = a_k + W[:, o_k] x_ok``, so ``log p(x)``
costs O(nd) per example. Rows of ``V`` and entries of ``c`` are indexed by input position.

>>> import torch, ardens
>>> model = ardens.NADE(n_inputs=6, hidden=8)
>>> x = torch.tensor([[0, 1, 1, 0, 0, 1]])
>>> model.log_prob(x).shape
torch.Size([1])
>>> model.sample(4, generator=torch.Generator().manual_seed(0)).shape
torch.Size([4, 6])
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from . import _nade_ops
from ._checks import check_positive_int
from .base import ACTIVATIONS, AutoregressiveModel, activation_fn, bernoulli_log_prob, flat_batch, uniforms
from .masks import OrderingSpec, make_ordering

__all__ = ["NADE"]


class NADE(AutoregressiveModel):
    """NADE over ``{0,1}^n_inputs`` with one layer of ``hidden`` units.

    Args:
        n_inputs: the dimension ``n``.
        hidden: the number of hidden units ``d``.
        activation: ``"sigmoid"`` (as in the paper) or ``"relu"``.
        ordering: ``None``/``"natural"``, ``"random"`` (drawn from ``seed``), or a
            permutation listing input positions in generation order.
        seed: seeds the random ordering; parameters are initialised from torch's RNG.
    """

    def __init__(
        self,
        n_inputs: int,
        hidden: int = 500,
        activation: str = "sigmoid",
        ordering: OrderingSpec = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.n_inputs = n = check_positive_int("n_inputs", n_inputs)
        self.hidden = d = check_positive_int("hidden", hidden)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {ACTIVATIONS}; got {activation!r}")
        self.activation = activation
        self.seed = int(seed)
        order = make_ordering(n, ordering, seed=self.seed)
        self._ordering_spec = ordering if isinstance(ordering, str) or ordering is None else order.tolist()
        self.register_buffer("order", torch.as_tensor(order))
        self.W = nn.Parameter(torch.empty(d, n).uniform_(-1, 1) / math.sqrt(n))
        self.b = nn.Parameter(torch.zeros(d))
        self.V = nn.Parameter(torch.empty(n, d).uniform_(-1, 1) / math.sqrt(d))
        self.c = nn.Parameter(torch.zeros(n))

    def config(self) -> dict[str, Any]:
        return {
            "n_inputs": self.n_inputs,
            "hidden": self.hidden,
            "activation": self.activation,
            "ordering": self._ordering_spec,
            "seed": self.seed,
        }

    def _params(self) -> tuple[torch.Tensor, ...]:
        return self.W, self.b, self.V, self.c, self.order

    def conditionals(self, x: Any) -> torch.Tensor:
        """Logits of ``p(x_k = 1 | x_<k)``, shape ``(..., n)``, indexed by input position."""
        x = self.check_input(x)
        flat, batch = flat_batch(x)
        return _nade_ops.logits(flat, *self._params(), self.activation).reshape(*batch, self.n_inputs)

    def log_prob(self, x: Any) -> torch.Tensor:
        """Exact ``log p(x)`` in nats, shape ``x.shape[:-1]``."""
        x = self.check_input(x)
        flat, batch = flat_batch(x)
        return _nade_ops.log_prob(flat, *self._params(), self.activation).reshape(batch)

    @torch.no_grad()
    def sample(self, num: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``num`` exact samples, drawn one dimension at a time in the model's ordering."""
        num = check_positive_int("num", num, allow_zero=True)
        u = uniforms(num, self.n_inputs, like=self.W, generator=generator)
        return _nade_ops.sample(u, *self._params(), self.activation)


def slow_log_prob(model: NADE, x: torch.Tensor) -> torch.Tensor:
    """Reference ``log p(x)``: each conditional recomputed from scratch, O(n^2 d) per example.

    Only for tests and benchmarks: it follows the definition with no running sum.
    """
    x = model.check_input(x)
    act = activation_fn(model.activation)
    total = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for k, j in enumerate(model.order.tolist()):
        before = model.order[:k]
        h = act(model.b + x[:, before] @ model.W[:, before].t())
        z = h @ model.V[j] + model.c[j]
        total = total + bernoulli_log_prob(z[:, None], x[:, j : j + 1])
    return total
