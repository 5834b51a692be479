"""MADE: the masked autoencoder for distribution estimation (Germain et al., 2015).

A multilayer perceptron whose weight matrices are multiplied by binary masks so that
output ``k`` depends only on inputs earlier in the ordering. With typed columns
(``columns=``, :mod:`ardens.heads`), every encoded input of a column (a categorical
column's whole one-hot block) and every parameter of its head take the column's degree, so
nothing in a column's parameters sees that column's own value. Masks are values: member
``i``'s masks are a pure function of its saved degrees, built as new tensors and passed to
the layers, never written into a tensor in place. With ``num_masks=K > 1`` the
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

Conditional MADE, ``p(x | c)`` (``context_features=C``): the context ``c`` (a real vector of
width ``C``, used as given) enters as inputs of degree 0, which the mask rules connect to
everything: one *unmasked* linear map ``context_layer`` (C -> the first hidden layer) added to
that layer's pre-activation, and one ``context_out`` (C -> the outputs, a direct connection:
the first column of an ordering has degree 1 and reads no hidden unit, so without it its
parameters would ignore ``c``); a MADE with no hidden layer has ``context_out`` only. Every
column's parameters then depend on ``c`` while the masks keep the autoregressive property in ``x``. Every
call then takes ``context=c``, shape ``(..., C)`` (one row per row of ``x`` or per sample, or
one row ``(C,)`` for all). Sampling with context computes each hidden unit once, in order of
degree, like every non-binary sampler (:func:`_sample_member_typed`).

>>> cond = ardens.MADE(n_inputs=5, hidden=[16], num_masks=2, context_features=3)
>>> cond.log_prob(x, context=torch.tensor([[0.1, 0.2, 0.3]])).shape
torch.Size([1])
>>> cond.sample(2, context=torch.zeros(2, 3)).shape
torch.Size([2, 5])

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

from . import _made_cpu, _nade_cpu, queries
from ._checks import check_positive_int, check_sizes
from .base import (
    ACTIVATIONS,
    AutoregressiveModel,
    activation_fn,
    check_member,
    flat_batch,
    resolve_columns,
    sample_ensemble,
)
from .heads import DEFAULT_INPUT_MARGIN
from .masks import HiddenDegrees, OrderingSpec, made_degrees

__all__ = ["MADE", "MaskedLinear"]


class MaskedLinear(nn.Linear):
    """``F.linear(x, mask * weight, bias)``: the weights stay whole; the mask is a value
    passed to :meth:`forward` (or the one given to :meth:`set_mask`, which rebinds it and never
    writes into a tensor autograd may have saved).

    >>> layer = MaskedLinear(3, 2)
    >>> mask = torch.tensor([[1.0, 0, 0], [1, 1, 0]])
    >>> layer(torch.ones(1, 3), mask).shape
    torch.Size([1, 2])
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias)
        self.mask: torch.Tensor | None = None

    def set_mask(self, mask: torch.Tensor | np.ndarray) -> None:
        self.mask = torch.as_tensor(mask).to(self.weight)

    def masked_weight(self, mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = self.mask if mask is None else mask
        return self.weight if mask is None else mask * self.weight

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return F.linear(x, self.masked_weight(mask), self.bias)


class MADE(AutoregressiveModel):
    """MADE over binary vectors or typed columns.

    Args:
        n_inputs: the number of columns ``n`` (all binary unless ``columns`` is given).
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
        columns: column types (:mod:`ardens.heads`), e.g. ``["real", "categorical:3"]``.
        min_scale: the mixture heads' standard-deviation floor (standardized units).
        input_margin: real inputs reach the network clipped to the training range widened by
            this many standard deviations (:mod:`ardens.heads`; ``None``: never clipped).
        context_features: ``C``, the width of a context ``c``; ``C > 0`` makes the model the
            conditional density ``p(x | c)`` (module docstring): ``log_prob``, ``sample``,
            ``sample_slow``, ``params``, ``conditionals``, ``encoded_params``,
            ``forward``/``training_loss``, ``marginal_log_prob`` and ``impute`` then require
            ``context=c``, shape ``(..., C)`` (or one row ``(C,)`` for all rows).
    """

    def __init__(
        self,
        n_inputs: int | None = None,
        hidden: Sequence[int] = (500,),
        num_masks: int = 1,
        ordering: OrderingSpec = "natural",
        direct: bool = False,
        seed: int = 0,
        activation: str = "relu",
        hidden_degrees: HiddenDegrees = "random",
        dropout: float = 0.0,
        columns: Any = None,
        min_scale: float | None = None,
        input_margin: float | None = DEFAULT_INPUT_MARGIN,
        context_features: int = 0,
    ) -> None:
        super().__init__()
        self.columns = resolve_columns(n_inputs, columns, min_scale, input_margin)
        self.n_inputs = n = self.columns.n
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
        # Degrees of every member, saved with the weights: [columns | hidden_1 | ... | hidden_L].
        self.register_buffer(
            "degrees", torch.as_tensor(np.stack([np.concatenate(m) for m in members]), dtype=torch.int32)
        )
        n_in, n_out = self.columns.input_width, self.columns.param_width
        sizes = [n_in, *self.hidden]
        self.layers = nn.ModuleList(MaskedLinear(i, o) for i, o in zip(sizes, sizes[1:] + [n_out]))
        self.direct_layer = MaskedLinear(n_in, n_out, bias=False) if self.direct else None
        self.context_features = n_ctx = check_positive_int("context_features", context_features, allow_zero=True)
        # the context: inputs of degree 0, seen (unmasked) by every unit of the first layer and every output
        self.context_layer = nn.Linear(n_ctx, sizes[1], bias=False) if n_ctx and self.hidden else None
        self.context_out = nn.Linear(n_ctx, n_out, bias=False) if n_ctx else None
        self._masks: dict[tuple, list[torch.Tensor]] = {}

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
            **self.columns_config(),
            **self.context_config(),
        }

    def output_bias(self) -> torch.Tensor:
        return self.layers[-1].bias

    # -- members -----------------------------------------------------------------------
    def member_degrees(self, i: int) -> list[np.ndarray]:
        """Degrees ``[columns, hidden_1, ...]`` of member ``i`` (column ``j`` has degree
        ``rank_j + 1``)."""
        flat = self.degrees[self._check_member(i)].cpu().numpy().astype(np.int64)
        bounds = np.cumsum([self.n_inputs, *self.hidden])[:-1]
        return np.split(flat, bounds)

    def ordering(self, i: int = 0) -> torch.Tensor:
        """Generation order of member ``i``: input positions, first generated first."""
        return torch.as_tensor(np.argsort(self.member_degrees(i)[0], kind="stable"), device=self.degrees.device)

    def member_masks(self, i: int) -> list[torch.Tensor]:
        """Member ``i``'s masks, one per layer (then the direct layer's), as new tensors of the
        weights' dtype and device: a pure function of the saved degrees. Encoded inputs and
        head parameters take their column's degree; a hidden unit of degree ``m`` sees units
        below of degree ``<= m``; a parameter of a column of degree ``m`` sees top units of
        degree ``< m`` (and, directly, inputs of degree ``< m``)."""
        ref = self._reference()
        key = (self._check_member(i), ref.device, ref.dtype, self.degrees.data_ptr())
        if key not in self._masks:
            degrees = self.member_degrees(i)
            cols = self.columns
            d_in = degrees[0][cols.input_column.numpy()]
            d_out = degrees[0][cols.output_column.numpy()]
            below = [d_in, *degrees[1:]]
            masks = [later[:, None] >= earlier[None, :] for earlier, later in zip(below, degrees[1:])]
            masks.append(d_out[:, None] > below[-1][None, :])
            if self.direct_layer is not None:
                masks.append(d_out[:, None] > d_in[None, :])
            self._masks = {k: v for k, v in self._masks.items() if k[1:] == key[1:]}  # drop stale devices/dtypes
            self._masks[key] = [torch.as_tensor(m, dtype=ref.dtype, device=ref.device) for m in masks]
        return self._masks[key]

    def _check_member(self, i: int) -> int:
        return check_member(i, self.num_masks)

    def _reference(self) -> torch.Tensor:
        return self.layers[0].weight

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._masks = {}  # the degrees may have changed: masks are rebuilt from them

    # -- the network -------------------------------------------------------------------
    def encoded_params(
        self, e: torch.Tensor, member: int = 0, dropout: bool = False, context: Any = None
    ) -> torch.Tensor:
        """Member ``member``'s network on encoded inputs ``(B, input_width)``: every column's
        parameters ``(B, param_width)``; ``context`` ``(B, C)`` (or one row) for a conditional model."""
        return self._encoded_params(e, member, dropout, self.check_context(context, e.shape[:-1]))

    def _encoded_params(self, e: torch.Tensor, member: int, dropout: bool, ctx: torch.Tensor | None) -> torch.Tensor:
        masks = self.member_masks(member)
        act = activation_fn(self.activation)
        h = e
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):  # (slicing a ModuleList builds a new module)
            pre = layer(h, masks[i])
            if ctx is not None and i == 0 and self.context_layer is not None:
                pre = pre + self.context_layer(ctx)
            if ctx is not None and i == last:
                pre = pre + self.context_out(ctx)
            h = pre if i == last else act(pre)
            if i != last and dropout and self.dropout:
                h = F.dropout(h, self.dropout, training=True)
        return h if self.direct_layer is None else h + self.direct_layer(e, masks[-1])

    def _logits(
        self, x: torch.Tensor, member: int = 0, dropout: bool = False, ctx: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self._encoded_params(self.columns.encode(x), member, dropout, ctx)

    def params(self, x: Any, mask: int | None = None, context: Any = None) -> torch.Tensor:
        """Member ``mask``'s (default 0) parameters of every column given the columns before
        it (and the context), ``(..., param_width)`` (binary columns: logits; layout in
        :mod:`ardens.heads`)."""
        x = self.check_input(x)
        flat, batch = flat_batch(x)
        ctx = self.check_context(context, batch)
        return self._logits(flat, 0 if mask is None else self._check_member(mask), ctx=ctx).reshape(
            *batch, self.columns.param_width
        )

    def conditionals(self, x: Any, mask: int | None = None, context: Any = None) -> torch.Tensor:
        """Logits ``(..., n)`` of ``p(x_k = 1 | x_<k)``, indexed by input position (all-binary).

        With ``mask=i``, member ``i``'s conditionals. With ``mask=None`` and ``K > 1``
        members sharing one ordering, the exact conditionals of the mixture: each member's
        conditional weighted by its posterior ``p_i(x_<k) / sum_j p_j(x_<k)``. Members with
        different orderings have no common conditionals; then ``mask`` is required.
        """
        if not self.columns.all_binary:
            raise ValueError("conditionals: only for all-binary models; use params(x, mask=i) for other columns")
        if mask is not None or self.num_masks == 1:
            return self.params(x, mask, context=context)
        x = self.check_input(x)
        flat, batch = flat_batch(x)
        ctx = self.check_context(context, batch)
        order = self.ordering(0)
        if any(not torch.equal(self.ordering(i), order) for i in range(1, self.num_masks)):
            raise ValueError("mask: members have different orderings, so pass mask=i for one member")
        log_w, log_p1, log_p0 = [], [], []
        for i in range(self.num_masks):
            z = self._logits(flat, i, ctx=ctx)
            terms = -F.binary_cross_entropy_with_logits(z, flat, reduction="none")[:, order]
            # log p_i(x_<k), in generation order: an exclusive sum, so x_k never enters its own weight
            log_w.append(F.pad(torch.cumsum(terms[:, :-1], dim=1), (1, 0)))
            log_p1.append(F.logsigmoid(z[:, order]))
            log_p0.append(F.logsigmoid(-z[:, order]))
        log_w = torch.stack(log_w).log_softmax(0)
        z_mix = torch.logsumexp(log_w + torch.stack(log_p1), 0) - torch.logsumexp(log_w + torch.stack(log_p0), 0)
        inverse = torch.argsort(order)
        return z_mix[:, inverse].reshape(*batch, self.n_inputs)

    def log_prob(self, x: Any, mask: int | None = None, *, observed: Any = None, context: Any = None) -> torch.Tensor:
        """Exact ``log p(x)``; for ``K > 1`` members the mixture ``log mean_i p_i(x)``.

        ``mask=i`` gives member ``i``'s own log-likelihood. With ``observed`` (a boolean mask of
        ``x``'s shape), ``log p(x_unobserved | x_observed)`` (for ``K > 1``, of the mixture):
        exact when every row's observed columns are a prefix of the ordering of every member
        used, else a ``ValueError`` (:mod:`ardens.queries`). ``context``: ``log p(x | c)``
        (``context_features > 0``).
        """
        if observed is not None:
            return queries.conditional_log_prob(self, x, observed, mask=mask, context=context)
        x = self.check_input(x)
        flat, batch = flat_batch(x)
        ctx = self.check_context(context, batch)
        if mask is not None or self.num_masks == 1:
            return self._member_log_prob(flat, self._check_member(0 if mask is None else mask), ctx).reshape(batch)
        members = torch.stack([self._member_log_prob(flat, i, ctx) for i in range(self.num_masks)])
        return (torch.logsumexp(members, 0) - math.log(self.num_masks)).reshape(batch)

    def marginal_log_prob(self, x: Any, observed: Any, mask: int | None = None, context: Any = None) -> torch.Tensor:
        """``log p(x_observed)`` per row (for ``K > 1`` members the mixture's ``log mean_i p_i(x_O)``;
        unobserved entries never read): exact when every row's observed columns are a prefix of the
        ordering of every member used, else a ``ValueError`` (:mod:`ardens.queries`)."""
        return queries.marginal_log_prob(self, x, observed, mask=mask, context=context)

    def impute(
        self,
        x: Any,
        observed: Any,
        generator: torch.Generator | None = None,
        draws: int = 1,
        fill: str = "sample",
        mask: int | None = None,
        context: Any = None,
    ) -> torch.Tensor:
        """``x`` with its unobserved entries drawn from ``p(x_unobserved | x_observed)`` (for ``K > 1``
        the mixture's: a member per row from its posterior ``p_i(x_O)``); observed columns a prefix of
        the ordering. ``fill``, ``draws`` and errors in :func:`ardens.queries.impute`."""
        return queries.impute(
            self, x, observed, generator=generator, draws=draws, fill=fill, mask=mask, context=context
        )

    def _draw_given(
        self, x: torch.Tensor, observed: torch.Tensor, member: int, u: torch.Tensor, ctx: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Prefix-conditional draws (observed values kept, the others drawn in member
        ``member``'s order with uniforms ``u``, ``(B, n, per_column)``): on the numba kernel for
        all-binary models without context (:func:`_draw_given_fast`), else each hidden unit
        computed once, in order of degree (:func:`_sample_member_typed`)."""
        if u.shape[-1] == 1 and ctx is None:
            drawn = _draw_given_fast(self, x, observed, member, u[..., 0])
            if drawn is not None:
                return drawn
        given = torch.where(observed, x, torch.full_like(x, math.nan))
        return _sample_member_typed(self, u.to(x), member, ctx, given=given)

    def _member_log_prob(self, flat: torch.Tensor, i: int, ctx: torch.Tensor | None = None) -> torch.Tensor:
        z = self._logits(flat, i, dropout=self.training, ctx=ctx)
        return self.columns.column_log_probs(z, flat).sum(-1)

    def _training_loss(
        self, x: torch.Tensor, step: int, generator: torch.Generator | None, context: Any = None
    ) -> torch.Tensor:
        return -self.log_prob(x, mask=step % self.num_masks, context=context)

    # -- sampling ----------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self, num: int, generator: torch.Generator | None = None, mask: int | None = None, context: Any = None
    ) -> torch.Tensor:
        """``num`` exact samples, ``(num, n)`` (of ``p(x | c)`` with ``context``: one row per
        sample, or one row for all).

        Each sample is drawn from one member (``mask``, or uniformly chosen per sample for
        ``K > 1``: that samples the mixture), one dimension at a time in that member's
        ordering. Every model computes each hidden unit once, as soon as its inputs are known
        (all-binary models without context on a compiled kernel where numba is present);
        :meth:`sample_slow` runs one masked pass per column.
        """
        fast = _sample_member_fast if self.columns.all_binary and not self.context_features else _sample_member_typed
        return self._sample(num, generator, mask, fast, context)

    @torch.no_grad()
    def sample_slow(
        self, num: int, generator: torch.Generator | None = None, mask: int | None = None, context: Any = None
    ) -> torch.Tensor:
        """Reference sampler: one full forward pass per dimension (n passes). Same draws as
        :meth:`sample` for the same generator."""
        return self._sample(num, generator, mask, _sample_member_n_pass, context)

    def _sample(self, num, generator, mask, sampler, context=None) -> torch.Tensor:
        num = check_positive_int("num", num, allow_zero=True)
        ctx = self.check_context(context, (num,))
        return sample_ensemble(
            num,
            self.num_masks,
            mask,
            like=self._reference(),
            n=self.n_inputs,
            generator=generator,
            draw=lambda u, i, c=None: sampler(self, u, i, c) if c is not None else sampler(self, u, i),
            per_column=self.columns.uniforms_per_column,
            context=ctx,
        )


def _draw_given_fast(model: MADE, x: torch.Tensor, observed: torch.Tensor, member: int, u: torch.Tensor):
    """Conditional draws for an observed prefix of member ``member``'s ordering on the numba
    sampler (observed values kept, the others drawn in order with uniforms ``u``, ``(B, n)``):
    all-binary models without context on the CPU; None otherwise."""
    if not model.columns.all_binary or model.context_features:
        return None
    if not (_made_cpu.AVAILABLE and _nade_cpu.handles(model._reference())):
        return None
    given = torch.where(observed, x, torch.full_like(x, math.nan))
    return _made_cpu.sample_member(model, u, member, given=given).to(x)


def _sample_member_fast(model: MADE, u: torch.Tensor, i: int) -> torch.Tensor:
    if _made_cpu.AVAILABLE and _nade_cpu.handles(model._reference()):
        return _made_cpu.sample_member(model, u, i)
    return _sample_member_typed(model, u, i)  # the same algorithm in torch (GPU, or without numba)


@torch.no_grad()
def _sample_member_typed(
    model: MADE, u: torch.Tensor, i: int, ctx: torch.Tensor | None = None, given: torch.Tensor | None = None
) -> torch.Tensor:
    """Sample member ``i`` of a MADE of any column types (and context), computing each hidden
    unit once, in order of degree: the draws of :func:`_sample_member_n_pass` for the same
    uniforms (its sums over the masked zeros left out, so equal up to rounding).

    Encoded inputs and units are sorted by degree. After column ``k`` of the ordering (degree
    ``k + 1``) is drawn and encoded (one-hot, or standardized and clipped), the units of degree
    ``k + 1`` are computed from the inputs and units below of degree ``<= k + 1``; column
    ``k``'s parameters need only top units of degree ``<= k`` (and, directly, inputs of degree
    ``<= k``). The context reaches the first layer and the outputs unmasked, as in a pass.
    Where ``given`` (``(B, n)``) is not NaN, the sample takes its value instead of a draw (an
    observed prefix of the ordering: conditional samples); a column given in every row is not
    scored at all."""
    cols = model.columns
    act = activation_fn(model.activation)
    n, dev = cols.n, u.device
    degrees = model.member_degrees(i)
    masks = model.member_masks(i)
    d_in = degrees[0][cols.input_column.numpy()]
    in_order = np.argsort(d_in, kind="stable")  # input units by degree (a column's units stay together, in order)
    below = in_order
    in_ends = np.searchsorted(d_in[below], np.arange(n + 1), side="right")  # inputs of degree <= m
    weights, biases, ends = [], [], []
    for layer, mask, deg in zip(model.layers[:-1], masks, degrees[1:]):
        perm = np.argsort(deg, kind="stable")
        w = layer.masked_weight(mask)[torch.as_tensor(perm, device=dev)][:, torch.as_tensor(below, device=dev)]
        weights.append(w)
        biases.append(layer.bias[torch.as_tensor(perm, device=dev)])
        ends.append(np.searchsorted(deg[perm], np.arange(n + 1), side="right"))  # units of degree <= m
        below = perm
    top = torch.as_tensor(below, device=dev)
    out_w = model.layers[-1].masked_weight(masks[len(model.layers) - 1])[:, top]
    out_b = model.layers[-1].bias
    in_sorted = torch.as_tensor(in_order, device=dev)
    direct_w = None if model.direct_layer is None else model.direct_layer.masked_weight(masks[-1])[:, in_sorted]
    ctx_first = ctx_out = None
    if ctx is not None:
        ctx_out = model.context_out(ctx)
        if model.context_layer is not None:
            ctx_first = model.context_layer(ctx)[:, torch.as_tensor(np.argsort(degrees[1], kind="stable"), device=dev)]
    B = u.shape[0]
    uu = u if u.dim() == 3 else u.unsqueeze(-1)
    x = u.new_zeros(B, n)
    e = u.new_zeros(B, cols.input_width)  # encoded inputs, sorted by degree
    hs = [u.new_zeros(B, w.shape[0]) for w in weights]

    def compute_units(m: int) -> None:
        """The units of degree ``m`` of every layer (the inputs of degree ``<= m`` are in ``e``)."""
        inputs, width = e, in_ends[m]
        for layer, (h, w, bias, end) in enumerate(zip(hs, weights, biases, ends)):
            lo, hi = end[m - 1], end[m]  # hidden degrees are >= 1
            if hi > lo:
                pre = torch.addmm(bias[lo:hi], inputs[:, :width], w[lo:hi, :width].t())
                if layer == 0 and ctx_first is not None:
                    pre = pre + ctx_first[:, lo:hi]
                h[:, lo:hi] = act(pre)
            inputs, width = h, hi

    for k, j in enumerate(np.argsort(degrees[0], kind="stable").tolist()):
        draw = None if given is None else torch.isnan(given[:, j])
        if draw is None or bool(draw.any()):
            s = cols.param_slice(j)
            feed = hs[-1][:, : ends[-1][k]] if hs else e[:, : in_ends[k]]
            z = torch.addmm(out_b[s], feed, out_w[s, : feed.shape[1]].t())
            if direct_w is not None:
                z = z + e[:, : in_ends[k]] @ direct_w[s, : in_ends[k]].t()
            if ctx_out is not None:
                z = z + ctx_out[:, s]
            x[:, j] = cols.sample_column(j, z, uu[:, j])
        if draw is not None:
            x[:, j] = torch.where(draw, x[:, j], given[:, j])
        e[:, in_ends[k] : in_ends[k + 1]] = cols.encode_column(j, x[:, j], standardized=False)
        compute_units(k + 1)
    return x


def _sample_member_n_pass(model: MADE, u: torch.Tensor, i: int, ctx: torch.Tensor | None = None) -> torch.Tensor:
    cols = model.columns
    x = u.new_zeros(u.shape[0], model.n_inputs)
    uu = u if u.dim() == 3 else u.unsqueeze(-1)
    for j in model.ordering(i).tolist():
        z = model._logits(x, i, ctx=ctx)[:, cols.param_slice(j)]
        x[:, j] = cols.sample_column(j, z, uu[:, j])
    return x
