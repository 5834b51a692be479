"""MADE: the masked autoencoder for distribution estimation (Germain et al., 2015).

A multilayer perceptron whose weight matrices are multiplied by binary masks so that
output ``k`` depends only on inputs earlier in the ordering. With ``num_masks=K > 1`` the
model holds ``K`` orderings/connectivities (member ``i`` is a pure function of
``(seed, i)``); training cycles through them and ``log_prob`` is the normalized mixture
``log (1/K) sum_i p_i(x)``.

>>> import torch, ardens
>>> made = ardens.MADE(n_inputs=5, hidden=[16, 16], num_masks=4, ordering="random", seed=1)
>>> x = torch.tensor([[1, 0, 0, 1, 1]])
>>> made.log_prob(x).shape, made.log_prob(x, mask=2).shape
(torch.Size([1]), torch.Size([1]))
>>> made.sample(3, generator=torch.Generator().manual_seed(0)).shape
torch.Size([3, 5])

Dropout regularizes training only; in eval mode ``log_prob`` is exact and deterministic:

>>> wide = ardens.MADE(n_inputs=5, hidden=[64], dropout=0.3)
>>> _ = torch.manual_seed(0)
>>> bool(wide.log_prob(x) == wide.log_prob(x))  # training mode: a new draw of dropped units
False
>>> _ = wide.eval()
>>> bool(wide.log_prob(x) == wide.log_prob(x))
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import _made_cpu, _nade_cpu
from ._checks import check_positive_int, check_sizes
from .base import (
    ACTIVATIONS,
    AutoregressiveModel,
    activation_fn,
    bernoulli_log_prob,
    check_member,
    flat_batch,
    sample_ensemble,
)
from .masks import HiddenDegrees, OrderingSpec, direct_mask, made_degrees, made_masks

__all__ = ["MADE", "MaskedLinear"]


class MaskedLinear(nn.Linear):
    """``F.linear(x, mask * weight, bias)``: the mask is a buffer, the weights stay whole.

    >>> layer = MaskedLinear(3, 2)
    >>> layer.set_mask(torch.tensor([[1, 0, 0], [1, 1, 0]]))
    >>> layer(torch.ones(1, 3)).shape
    torch.Size([1, 2])
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias)
        self.register_buffer("mask", torch.ones(out_features, in_features), persistent=False)

    def set_mask(self, mask: torch.Tensor | np.ndarray) -> None:
        self.mask.copy_(torch.as_tensor(mask))

    def masked_weight(self) -> torch.Tensor:
        return self.mask * self.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.masked_weight(), self.bias)


class MADE(AutoregressiveModel):
    """MADE over ``{0,1}^n_inputs``.

    Args:
        n_inputs: the dimension ``n``.
        hidden: sizes of the hidden layers; ``[]`` is the logistic autoregressive
            model (FVSBN).
        num_masks: number ``K`` of orderings/connectivities (ensemble members).
        ordering: ``"natural"``, ``"random"`` (one per member, from ``(seed, i)``) or a
            permutation listing input positions in generation order (shared by all).
        direct: add a direct input-to-output connection (masked strictly).
        seed: seeds orderings and hidden degrees.
        activation: ``"relu"`` (as in the paper) or ``"sigmoid"``.
        hidden_degrees: ``"random"`` (uniform in ``[min of layer below, n-1]``) or ``"even"``.
        dropout: probability of zeroing each hidden unit in :meth:`log_prob` while the
            module is in training mode (survivors scaled by ``1 / (1 - dropout)``), a
            regularizer for wide layers. It removes connections, never adds them, so every
            draw is still autoregressive; in eval mode, and always in :meth:`sample` and
            :meth:`conditionals`, the network is deterministic and the density exact.
    """

    def __init__(
        self,
        n_inputs: int,
        hidden: Sequence[int] = (500,),
        num_masks: int = 1,
        ordering: OrderingSpec = "natural",
        direct: bool = False,
        seed: int = 0,
        activation: str = "relu",
        hidden_degrees: HiddenDegrees = "random",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.n_inputs = n = check_positive_int("n_inputs", n_inputs)
        self.hidden = check_sizes("hidden", hidden)
        self.num_masks = check_positive_int("num_masks", num_masks)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {ACTIVATIONS}; got {activation!r}")
        if direct and not self.hidden:
            raise ValueError("direct: a MADE with no hidden layer is already the direct (FVSBN) model")
        self.activation, self.direct, self.seed = activation, bool(direct), int(seed)
        self.hidden_degrees = hidden_degrees
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1); got {dropout!r}")
        if dropout and not self.hidden:
            raise ValueError("dropout: a MADE with no hidden layer has no units to drop")
        self.dropout = float(dropout)
        members = [
            made_degrees(n, self.hidden, seed=self.seed, index=i, ordering=ordering, hidden_degrees=hidden_degrees)
            for i in range(self.num_masks)
        ]
        first_order = np.argsort(members[0][0])
        self._ordering_spec = ordering if isinstance(ordering, str) or ordering is None else first_order.tolist()
        # Degrees of every member, saved with the weights: [inputs | hidden_1 | ... | hidden_L].
        self.register_buffer(
            "degrees", torch.as_tensor(np.stack([np.concatenate(m) for m in members]), dtype=torch.int32)
        )
        sizes = [n, *self.hidden]
        self.layers = nn.ModuleList(MaskedLinear(i, o) for i, o in zip(sizes, sizes[1:] + [n]))
        self.direct_layer = MaskedLinear(n, n, bias=False) if self.direct else None
        self._member = -1
        self.set_mask(0)

    def config(self) -> dict[str, Any]:
        return {
            "n_inputs": self.n_inputs,
            "hidden": self.hidden,
            "num_masks": self.num_masks,
            "ordering": self._ordering_spec,
            "direct": self.direct,
            "seed": self.seed,
            "activation": self.activation,
            "hidden_degrees": self.hidden_degrees,
            "dropout": self.dropout,
        }

    # -- members -----------------------------------------------------------------------
    def member_degrees(self, i: int) -> list[np.ndarray]:
        """Degrees ``[inputs, hidden_1, ...]`` of member ``i``."""
        flat = self.degrees[self._check_member(i)].cpu().numpy().astype(np.int64)
        bounds = np.cumsum([self.n_inputs, *self.hidden])[:-1]
        return np.split(flat, bounds)

    def ordering(self, i: int = 0) -> torch.Tensor:
        """Generation order of member ``i``: input positions, first generated first."""
        return torch.as_tensor(np.argsort(self.member_degrees(i)[0], kind="stable"), device=self.degrees.device)

    def set_mask(self, i: int) -> None:
        """Use member ``i``'s masks in the forward pass (training cycles through them)."""
        i = self._check_member(i)
        if i == self._member:
            return
        degrees = self.member_degrees(i)
        for layer, mask in zip(self.layers, made_masks(degrees)):
            layer.set_mask(mask)
        if self.direct_layer is not None:
            self.direct_layer.set_mask(direct_mask(degrees[0]))
        self._member = i

    def _check_member(self, i: int) -> int:
        return check_member(i, self.num_masks)

    def _reference(self) -> torch.Tensor:
        return self.layers[0].weight

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._member = -1  # the degrees may have changed: rebuild the masks from them
        self.set_mask(0)

    # -- the network -------------------------------------------------------------------
    def _logits(self, x: torch.Tensor, dropout: bool = False) -> torch.Tensor:
        act = activation_fn(self.activation)
        h = x
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):  # (slicing a ModuleList builds a new module)
            h = layer(h) if i == last else act(layer(h))
            if i != last and dropout and self.dropout:
                h = F.dropout(h, self.dropout, training=True)
        return h if self.direct_layer is None else h + self.direct_layer(x)

    def conditionals(self, x: Any, mask: int | None = None) -> torch.Tensor:
        """Logits ``(..., n)`` of ``p(x_k = 1 | x_<k)``, indexed by input position.

        With ``mask=i``, member ``i``'s conditionals. With ``mask=None`` and ``K > 1``
        members sharing one ordering, the exact conditionals of the mixture: each member's
        conditional weighted by its posterior ``p_i(x_<k) / sum_j p_j(x_<k)``. Members with
        different orderings have no common conditionals; then ``mask`` is required.
        """
        x = self.check_input(x)
        flat, batch = flat_batch(x)
        if mask is not None or self.num_masks == 1:
            self.set_mask(0 if mask is None else mask)
            return self._logits(flat).reshape(*batch, self.n_inputs)
        order = self.ordering(0)
        if any(not torch.equal(self.ordering(i), order) for i in range(1, self.num_masks)):
            raise ValueError("mask: members have different orderings, so pass mask=i for one member")
        log_w, log_p1, log_p0 = [], [], []
        for i in range(self.num_masks):
            self.set_mask(i)
            z = self._logits(flat)
            terms = -F.binary_cross_entropy_with_logits(z, flat, reduction="none")[:, order]
            before = torch.cumsum(terms, dim=1) - terms  # log p_i(x_<k), in generation order
            log_w.append(before)
            log_p1.append(F.logsigmoid(z[:, order]))
            log_p0.append(F.logsigmoid(-z[:, order]))
        log_w = torch.stack(log_w).log_softmax(0)
        z_mix = torch.logsumexp(log_w + torch.stack(log_p1), 0) - torch.logsumexp(log_w + torch.stack(log_p0), 0)
        out = torch.empty_like(z_mix)
        out[:, order] = z_mix
        return out.reshape(*batch, self.n_inputs)

    def log_prob(self, x: Any, mask: int | None = None) -> torch.Tensor:
        """Exact ``log p(x)``; for ``K > 1`` members the mixture ``log mean_i p_i(x)``.

        ``mask=i`` gives member ``i``'s own log-likelihood.
        """
        x = self.check_input(x)
        flat, batch = flat_batch(x)
        if mask is not None or self.num_masks == 1:
            return self._member_log_prob(flat, 0 if mask is None else mask).reshape(batch)
        members = torch.stack([self._member_log_prob(flat, i) for i in range(self.num_masks)])
        return (torch.logsumexp(members, 0) - math.log(self.num_masks)).reshape(batch)

    def _member_log_prob(self, flat: torch.Tensor, i: int) -> torch.Tensor:
        self.set_mask(i)
        return bernoulli_log_prob(self._logits(flat, dropout=self.training), flat)

    # -- sampling ----------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, num: int, generator: torch.Generator | None = None, mask: int | None = None) -> torch.Tensor:
        """``num`` exact samples, ``(num, n)``.

        Each sample is drawn from one member (``mask``, or uniformly chosen per sample for
        ``K > 1``: that samples the mixture), one dimension at a time in that member's
        ordering, computing each hidden unit once, as soon as its inputs are known.
        """
        return self._sample(num, generator, mask, _sample_member_fast)

    @torch.no_grad()
    def sample_slow(self, num: int, generator: torch.Generator | None = None, mask: int | None = None) -> torch.Tensor:
        """Reference sampler: one full forward pass per dimension (n passes). Same draws as
        :meth:`sample` for the same generator."""
        return self._sample(num, generator, mask, _sample_member_n_pass)

    def _sample(self, num, generator, mask, sampler) -> torch.Tensor:
        def draw(u: torch.Tensor, i: int) -> torch.Tensor:
            self.set_mask(i)
            return sampler(self, u, i)

        return sample_ensemble(
            num, self.num_masks, mask, like=self._reference(), n=self.n_inputs, generator=generator, draw=draw
        )


def _sample_member_fast(model: MADE, u: torch.Tensor, i: int) -> torch.Tensor:
    if _made_cpu.AVAILABLE and _nade_cpu.handles(model._reference()):
        return _made_cpu.sample_member(model, u, i)
    return _sample_member_by_degree(model, u, i)


def _sample_member_n_pass(model: MADE, u: torch.Tensor, i: int) -> torch.Tensor:
    x = torch.zeros_like(u)
    for j in model.ordering(i).tolist():
        z = model._logits(x)[:, j]
        x[:, j] = (u[:, j] < torch.sigmoid(z)).to(x.dtype)
    return x


def _sample_member_by_degree(model: MADE, u: torch.Tensor, i: int) -> torch.Tensor:
    """Sample member ``i`` computing each hidden unit once, in order of degree.

    Units are sorted by degree; a unit of degree ``m`` needs only the first ``m`` inputs
    of the ordering (and units below of degree ``<= m``), so it is computed right after
    the ``m``-th input is drawn. Output ``k`` needs top units of degree ``< rank_k + 1``.
    """
    act = activation_fn(model.activation)
    n = model.n_inputs
    degrees = model.member_degrees(i)
    order = torch.as_tensor(np.argsort(degrees[0], kind="stable"), device=u.device)
    # Weights with rows (units) sorted by degree and columns in generation order.
    weights, biases, ends = [], [], []
    below = order
    for layer, deg in zip(model.layers[:-1], degrees[1:]):
        perm = np.argsort(deg, kind="stable")
        weights.append(layer.masked_weight()[torch.as_tensor(perm, device=u.device)][:, below])
        biases.append(layer.bias[torch.as_tensor(perm, device=u.device)])
        # ends[l][m] = number of units of degree <= m
        ends.append(np.searchsorted(deg[perm], np.arange(n + 1), side="right"))
        below = torch.as_tensor(perm, device=u.device)
    out_w = model.layers[-1].masked_weight()[order][:, below]
    out_b = model.layers[-1].bias[order]
    direct_w = model.direct_layer.masked_weight()[order][:, order] if model.direct_layer is not None else None
    B = u.shape[0]
    xo = torch.zeros_like(u)
    hs = [u.new_zeros(B, w.shape[0]) for w in weights]
    uo = u[:, order]
    for k in range(n):  # draw the input of degree k + 1, then the units of degree k + 1
        top = hs[-1][:, : ends[-1][k]] if hs else xo[:, :k]
        z = top @ out_w[k, : top.shape[1]] + out_b[k]
        if direct_w is not None and k:
            z = z + xo[:, :k] @ direct_w[k, :k]
        xo[:, k] = (uo[:, k] < torch.sigmoid(z)).to(xo.dtype)
        inputs, width = xo, k + 1
        for h, w, bias, end in zip(hs, weights, biases, ends):
            lo, hi = end[k], end[k + 1]
            if hi > lo:
                h[:, lo:hi] = act(torch.addmm(bias[lo:hi], inputs[:, :width], w[lo:hi, :width].t()))
            inputs, width = h, hi
    x = torch.empty_like(xo)
    x[:, order] = xo
    return x
