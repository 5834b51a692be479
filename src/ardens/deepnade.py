"""DeepNADE: order-agnostic NADE (Uria, Murray & Larochelle, 2014), and EoNADE, its ensemble
over orderings.

One network takes ``[x * m, m]`` (the observed values and the mask of which are observed)
and returns logits for every dimension (with typed columns, ``columns=``: every column's
encoded inputs times its mask bit, the mask, and a parameter block per column); for an
ordering ``o``, ``p(x_{o_d} | x_{o_<d})`` is read at output ``o_d`` with ``m`` the
indicator of ``o_<d``. Trained on random orderings (:meth:`DeepNADE.order_agnostic_nll`),
it is a density for every ordering at once; the
model holds ``K`` of them (member ``i`` is a pure function of ``(seed, i)``), and
``log_prob`` is the normalized ensemble ``log (1/K) sum_i p_{o_i}(x)`` (EoNADE). An exact
likelihood costs, per ordering, NADE's running sum for the first layer and a pass of the
layers above for each of the ``n`` positions; sampling and imputation of all-binary models
run on the same running sum (one column's weights added per step, about one likelihood's
cost), other column types take a network pass per column.

Conditional DeepNADE, ``p(x | c)`` (``context_features=C``): the context ``c`` (a real vector of
width ``C``, used as given) is appended to the first layer's input, ``[x * m, m, c]``, so every
hidden unit sees it, for every ordering and observed set. Every call (``log_prob``, ``sample``,
``params``, ``conditional_params``, ``order_agnostic_nll``, ``forward``/``training_loss`` and the
queries) then takes ``context=c``, shape ``(..., C)`` (one row per row of ``x`` or per sample, or
one row ``(C,)`` for all); the running-sum likelihood adds ``W_c c`` to every position's first
layer.

>>> import torch, ardens
>>> model = ardens.DeepNADE(n_inputs=5, hidden=[16, 16], num_orderings=3, seed=1)
>>> x = torch.tensor([[1, 0, 0, 1, 1]])
>>> model.log_prob(x).shape, model.log_prob(x, mask=2).shape
(torch.Size([1]), torch.Size([1]))
>>> model.sample(4, generator=torch.Generator().manual_seed(0)).shape
torch.Size([4, 5])

>>> cond = ardens.DeepNADE(n_inputs=5, hidden=[16], context_features=2, seed=1)
>>> cond.log_prob(x, context=torch.tensor([1.0, -1.0])).shape
torch.Size([1])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import queries
from ._checks import check_positive_int, check_sizes
from ._columnwise import inputs_before_position, params_by_position
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
from .masks import OrderingSpec, check_ordering, make_ordering

__all__ = ["DeepNADE"]

ROWS_PER_PASS = 1 << 16  # (example, position) rows per chunk in log_prob (scaled by width / 64)
# Elements of one (example x position, hidden) buffer of the in-place exact likelihood: about
# 4 MB in float32, so that its elementwise passes (running sum, activation, output unit) read
# and write cache rather than memory. MNIST 2 x 500 on the 2-core EPYC (2 examples per chunk):
# 366-375 images/s against 289 with 11-example (17 MB) chunks (BENCHMARKS.md, speed round two).
CACHED_ELEMENTS = 1 << 20


class DeepNADE(AutoregressiveModel):
    """Order-agnostic NADE over binary vectors or typed columns, with an ensemble of
    ``num_orderings``.

    Args:
        n_inputs: the number of columns ``n`` (all binary unless ``columns`` is given).
        hidden: sizes of the hidden layers (at least one).
        num_orderings: ``K``, the orderings averaged by ``log_prob`` (EoNADE for ``K > 1``).
        ordering: ``"random"`` (every member from ``(seed, i)``), ``"natural"`` (member 0
            in the natural order, the others random), or a permutation listing input positions
            in generation order: member 0's ordering (the others random; saved in the config).
        seed: seeds the orderings.
        activation: ``"relu"`` (as in the paper) or ``"sigmoid"``.
        columns: column types (:mod:`ardens.heads`), e.g. ``["real", "categorical:3"]``.
        min_scale: the mixture heads' standard-deviation floor (standardized units).
        input_margin: real inputs reach the network clipped to the training range widened by
            this many standard deviations (:mod:`ardens.heads`; ``None``: never clipped).
        context_features: ``C``, the width of a context ``c``; ``C > 0`` makes the model the
            conditional density ``p(x | c)`` (module docstring), and every call then requires
            ``context=c``, shape ``(..., C)`` (or one row ``(C,)`` for all rows).
        dropout: probability of zeroing each hidden unit in the order-agnostic training loss
            while the module is in training mode (survivors scaled by ``1 / (1 - dropout)``);
            likelihoods, queries and sampling never drop.
    """

    member_name = "ordering"

    def __init__(
        self,
        n_inputs: int | None = None,
        hidden: Sequence[int] = (500, 500),
        num_orderings: int = 1,
        ordering: OrderingSpec = "random",
        seed: int = 0,
        activation: str = "relu",
        columns: Any = None,
        min_scale: float | None = None,
        input_margin: float | None = DEFAULT_INPUT_MARGIN,
        context_features: int = 0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.columns = resolve_columns(n_inputs, columns, min_scale, input_margin)
        self.n_inputs = n = self.columns.n
        self.hidden = check_sizes("hidden", hidden)
        if not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
            raise ValueError(f"dropout: expected a probability in [0, 1); got {dropout!r}")
        self.dropout = float(dropout)
        if not self.hidden:
            raise ValueError("hidden: DeepNADE needs at least one hidden layer")
        self.num_orderings = check_positive_int("num_orderings", num_orderings)
        explicit = None
        if not isinstance(ordering, str):
            if ordering is None:
                raise ValueError(f"ordering: expected 'random', 'natural' or a permutation of range({n}); got None")
            explicit = check_ordering(np.asarray(ordering), n)
        elif ordering not in ("random", "natural"):
            raise ValueError(f"ordering: expected 'random', 'natural' or a permutation of range({n}); got {ordering!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {ACTIVATIONS}; got {activation!r}")
        self.ordering_spec = ordering if explicit is None else explicit.tolist()
        self.seed, self.activation = int(seed), activation
        natural = explicit is None and ordering == "natural"
        orders = [
            make_ordering(n, "natural" if (i == 0 and natural) else "random", seed=self.seed, index=i)
            for i in range(self.num_orderings)
        ]
        if explicit is not None:
            orders[0] = explicit
        self.register_buffer("orderings", torch.as_tensor(np.stack(orders), dtype=torch.long))
        self.context_features = check_positive_int("context_features", context_features, allow_zero=True)
        # the first layer's input: [encoded x * mask, mask, context]
        sizes = [self.columns.input_width + n + self.context_features, *self.hidden, self.columns.param_width]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(sizes, sizes[1:]))

    @property
    def num_masks(self) -> int:
        """The ensemble size, under the name evaluation and training share with MADE."""
        return self.num_orderings

    def config(self) -> dict[str, Any]:
        return {
            "n_inputs": self.n_inputs,
            "hidden": self.hidden,
            "num_orderings": self.num_orderings,
            "ordering": self.ordering_spec,
            "seed": self.seed,
            "activation": self.activation,
            **({"dropout": self.dropout} if self.dropout else {}),
            **self.columns_config(),
            **self.context_config(),
        }

    def output_bias(self) -> torch.Tensor:
        return self.layers[-1].bias

    def _reference(self) -> torch.Tensor:
        return self.layers[0].weight

    def ordering(self, i: int = 0) -> torch.Tensor:
        """Generation order of member ``i``: input positions, first generated first."""
        return self.orderings[self._check_member(i)]

    def _check_member(self, i: int) -> int:
        return check_member(i, self.num_orderings)

    # -- the network -------------------------------------------------------------------
    def _network(self, inp: torch.Tensor, dropout: bool = False) -> torch.Tensor:
        act = activation_fn(self.activation)
        h = inp
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            h = layer(h) if i == last else act(layer(h))
            if dropout and i != last:
                h = F.dropout(h, self.dropout, training=True)
        return h

    @staticmethod
    def _input(e: torch.Tensor, m: torch.Tensor, ctx: torch.Tensor | None) -> torch.Tensor:
        """The first layer's input ``[e, m]``, or ``[e, m, c]`` with context."""
        return torch.cat([e, m] if ctx is None else [e, m, ctx], dim=-1)

    def conditional_params(self, x: Any, observed: Any, context: Any = None) -> torch.Tensor:
        """Parameters ``(..., param_width)`` of every column's ``p(x_k | x_observed)`` (given the
        context too, for a conditional model), meaningful for the unobserved ``k``, given a 0/1
        mask ``observed`` of ``x``'s shape. The unobserved entries of ``x`` are never read."""
        x = self.check_input(x)
        m = torch.as_tensor(observed).to(x)
        if m.shape != x.shape:
            raise ValueError(f"observed: expected shape {tuple(x.shape)} (that of x); got {tuple(m.shape)}")
        flat, batch = flat_batch(x)
        ctx = self.check_context(context, batch)
        mf = m.reshape(-1, self.n_inputs)
        e = self.columns.encode(flat) * mf[:, self.columns.input_column.to(mf.device)]
        return self._network(self._input(e, mf, ctx)).reshape(*batch, self.columns.param_width)

    def conditional_logits(self, x: torch.Tensor, observed: torch.Tensor, context: Any = None) -> torch.Tensor:
        """Logits ``(..., n)`` of ``p(x_k = 1 | x_observed)`` for every ``k`` (all-binary
        models; meaningful for the unobserved ``k``), given a 0/1 mask ``observed`` of the
        same shape as ``x``."""
        if not self.columns.all_binary:
            raise ValueError("conditional_logits: only for all-binary models; use conditional_params")
        if context is None and not self.context_features:
            return self._network(torch.cat([x * observed, observed], dim=-1))
        return self.conditional_params(x, observed, context=context)

    def order_agnostic_nll(self, x: Any, generator: torch.Generator | None = None, context: Any = None) -> torch.Tensor:
        """Unbiased estimate, per row, of the NLL averaged over all ``n!`` orderings; ``x``
        of shape ``(..., n)``, the result of shape ``x.shape[:-1]``.

        For each row: ``d`` uniform in ``0..n-1`` and a uniform random set of ``d`` observed
        dimensions; the estimate is ``n / (n - d)`` times the NLL of the ``n - d``
        unobserved dimensions given the observed ones (Uria et al., 2014). Its expectation
        is ``mean_o -log p_o(x)``. The randomness comes from ``generator`` (on the CPU).
        ``context``: of ``p(x | c)``, for a conditional model.
        """
        x = self.check_input(x)
        flat, batch = flat_batch(x)
        ctx = self.check_context(context, batch)
        b, n = flat.shape
        d = torch.randint(n, (b, 1), generator=generator)
        ranks = torch.rand(b, n, generator=generator).argsort(1).argsort(1)
        observed = (ranks < d).to(flat.device, flat.dtype)
        e = self.columns.encode(flat) * observed[:, self.columns.input_column.to(flat.device)]
        params = self._network(self._input(e, observed, ctx), dropout=bool(self.training and self.dropout))
        nll = -(self.columns.column_log_probs(params, flat) * (1 - observed)).sum(-1)
        return (nll * (n / (n - d.squeeze(1))).to(flat.device, flat.dtype)).reshape(batch)

    def _training_loss(
        self, x: torch.Tensor, step: int, generator: torch.Generator | None, context: Any = None
    ) -> torch.Tensor:
        return self.order_agnostic_nll(x, generator, context=context)

    # -- likelihood --------------------------------------------------------------------
    def log_prob(
        self, x: Any, mask: int | None = None, *, observed: Any = None, ordering: Any = None, context: Any = None
    ) -> torch.Tensor:
        """Exact ``log p(x)``: the ensemble ``log mean_i p_{o_i}(x)``, or with ``mask=i``
        member ``i``'s own log-likelihood, or with ``ordering=o`` (a permutation) the
        log-likelihood ``log p_o(x)`` of that one ordering.

        With ``observed`` (a boolean mask of ``x``'s shape), ``log p(x_unobserved | x_observed)``,
        exact for any observed set: the conditional of the ensemble of the observed-first
        orderings ``o_i'`` (each row's observed columns in ``o_i``'s relative order, then the
        others), which for one member (``mask=i``, or ``ordering=o``) is ``p_{o'}(x_U | x_O)``
        (:mod:`ardens.queries`). ``context``: ``log p(x | c)`` (``context_features > 0``)."""
        if observed is not None:
            return queries.conditional_log_prob(self, x, observed, mask=mask, ordering=ordering, context=context)
        x = self.check_input(x)
        flat, batch = flat_batch(x)
        ctx = self.check_context(context, batch)
        if ordering is not None:
            if mask is not None:
                raise ValueError("ordering: give mask or ordering, not both")
            order = torch.as_tensor(check_ordering(_numpy(ordering), self.n_inputs), device=self.orderings.device)
            return self._ordering_pass(flat, 0, want_params=False, order=order, ctx=ctx).reshape(batch)
        if mask is not None or self.num_orderings == 1:
            return self._ordering_log_prob(flat, self._check_member(0 if mask is None else mask), ctx).reshape(batch)
        members = torch.stack([self._ordering_log_prob(flat, i, ctx) for i in range(self.num_orderings)])
        return (torch.logsumexp(members, 0) - math.log(self.num_orderings)).reshape(batch)

    def marginal_log_prob(
        self, x: Any, observed: Any, mask: int | None = None, ordering: Any = None, context: Any = None
    ) -> torch.Tensor:
        """``log p(x_observed)`` per row, exact for any observed set: ``log mean_i p_{o_i'}(x_O)``
        over the observed-first orderings (one member with ``mask=i`` or ``ordering=o``); the
        unobserved entries are never read (:mod:`ardens.queries`)."""
        return queries.marginal_log_prob(self, x, observed, mask=mask, ordering=ordering, context=context)

    def impute(
        self,
        x: Any,
        observed: Any,
        generator: torch.Generator | None = None,
        draws: int = 1,
        fill: str = "sample",
        mask: int | None = None,
        ordering: Any = None,
        context: Any = None,
    ) -> torch.Tensor:
        """``x`` with its unobserved entries drawn exactly from the conditional that
        ``log_prob(x, observed=...)`` scores (a member per row from its posterior ``p_{o_i'}(x_O)``,
        then ancestral sampling in ``o_i'``); ``fill``, ``draws`` and errors in
        :func:`ardens.queries.impute`."""
        return queries.impute(
            self,
            x,
            observed,
            generator=generator,
            draws=draws,
            fill=fill,
            mask=mask,
            ordering=ordering,
            context=context,
        )

    def params(self, x: Any, mask: int | None = None, context: Any = None) -> torch.Tensor:
        """Every column's parameters ``(..., param_width)`` given the columns before it in
        ordering ``mask`` (default 0), and the context: the conditionals of that member."""
        x = self.check_input(x)
        flat, batch = flat_batch(x)
        ctx = self.check_context(context, batch)
        i = self._check_member(0 if mask is None else mask)
        return self._ordering_pass(flat, i, want_params=True, ctx=ctx).reshape(*batch, self.columns.param_width)

    def _ordering_log_prob(self, x: torch.Tensor, i: int, ctx: torch.Tensor | None = None) -> torch.Tensor:
        return self._ordering_pass(x, i, want_params=False, ctx=ctx)

    def _ordering_pass(
        self,
        x: torch.Tensor,
        i: int,
        want_params: bool,
        order: torch.Tensor | None = None,
        ctx: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``log p_o(x)`` (or every column's parameters) for ordering ``o = orderings[i]``, all
        ``n`` positions at once.

        The first layer is NADE's running sum: at position ``d`` its input is
        ``b + sum_{e<d} (W[:, o_e] x_{o_e} + W[:, n + o_e])`` (an exclusive sum), so it costs
        ``O(H)`` per position instead of ``O(nH)``; the layers above run on every position,
        and the output layer only for the column each position predicts. ``order``, if given,
        replaces ``orderings[i]``. A context ``ctx`` ``(B, C)`` adds ``W_c c`` to every position's
        first layer."""
        cols = self.columns
        n, order = self.n_inputs, (self.orderings[i] if order is None else order)
        if not want_params and self.in_place_ok():
            return self._positions_inplace(x, order, ctx, self._in_place_chunk(x.device)).sum(-1)
        act, act_ = activation_fn(self.activation), activation_fn(self.activation + "_")
        first, out_layer = self.layers[0], self.layers[-1]
        n_in = cols.input_width
        # the mask's part of the running sum is the same for every example: b + sum_{e<d} W[:, n_in + o_e]
        w_m = first.weight[:, n_in + order].t()
        offset = first.bias + F.pad(torch.cumsum(w_m[:-1], dim=0), (0, 0, 1, 0))  # (n, H1)
        binary = cols.all_binary
        if binary:
            w_x = first.weight[:, order].t()  # (n, H1), rows in generation order
            w_out, b_out = out_layer.weight[order], out_layer.bias[order]  # (n, H_L)
        step = self._rows_per_chunk()
        out = []
        for lo in range(0, x.shape[0], step):
            xb = x[lo : lo + step]
            if binary:
                xo = xb[:, order]  # (B, n)
                before = F.pad(torch.cumsum(xo[:, :-1, None] * w_x[:-1], dim=1), (0, 0, 1, 0))
            else:
                before = inputs_before_position(cols.encode(xb), first.weight[:, :n_in], cols, order)
            if ctx is not None:
                before = before + (ctx[lo : lo + step] @ first.weight[:, n_in + n :].t())[:, None, :]
            if torch.is_grad_enabled():
                h = act(before + offset)
                for layer in self.layers[1:-1]:
                    h = act(layer(h))
            else:  # evaluation: every layer's pre-activations become its hidden states in place
                h = act_(before.add_(offset))
                for layer in self.layers[1:-1]:
                    h = act_(layer(h))
            if binary:
                z = torch.einsum("bdh,dh->bd", h, w_out) + b_out  # (B, n): position d predicts o_d
                if want_params:
                    out.append(z[:, torch.argsort(order)])
                else:
                    out.append(-F.binary_cross_entropy_with_logits(z, xo, reduction="none").sum(-1))
            else:
                params = params_by_position(h, out_layer.weight, out_layer.bias, cols, order)
                out.append(params if want_params else cols.column_log_probs(params, xb).sum(-1))
        if not out:
            return x.new_zeros((0, cols.param_width) if want_params else (0,))
        return torch.cat(out)

    def in_place_ok(self) -> bool:
        """Whether :meth:`positions_log_prob` applies: all-binary columns, no autograd needed."""
        return self.columns.all_binary and not (torch.is_grad_enabled() and self.layers[0].weight.requires_grad)

    def positions_log_prob(
        self, x: torch.Tensor, orders: torch.Tensor, ctx: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``log p(x_{o_d} | x_{o_<d})`` by position ``d``, ``(B, n)``, for an all-binary model
        without autograd (:meth:`in_place_ok`), each row ``r`` in its own ordering
        ``orders[r]`` (``(B, n)``; or one ordering ``(n,)`` for every row). The exact
        likelihood's kernel: NADE's running sum for the first layer and the layers above on
        every position, as :meth:`_ordering_pass`, with every ``(B, n, H)`` intermediate
        written in place into buffers reused across chunks, so that the layers' matmuls, not
        fresh allocations and their page faults, set the time. The conditional queries of
        :mod:`ardens.queries` (each row's observed-first ordering) run on it too."""
        if not self.in_place_ok():
            raise ValueError("positions_log_prob: only for all-binary models, without autograd")
        return self._positions_inplace(x, orders, ctx, self._in_place_chunk(x.device))

    def _in_place_chunk(self, device: torch.device) -> int:
        """Examples per chunk of the in-place exact likelihood: on the CPU, ``CACHED_ELEMENTS``
        elements in each ``(examples x n, H)`` buffer (at least one example), for the cache;
        on an accelerator, as large as the autograd pass's chunks, for the launches."""
        if device.type != "cpu":
            return self._rows_per_chunk()
        return max(1, CACHED_ELEMENTS // (self.n_inputs * max(self.hidden)))

    def _rows_per_chunk(self) -> int:
        """Examples per chunk of the exact likelihood: ``ROWS_PER_PASS`` (example, position) rows,
        scaled by the widest layer / 64."""
        width = max(self.n_inputs, self.columns.param_width)
        return max(1, ROWS_PER_PASS // (width * max(1, max(self.hidden) // 64)))

    def _positions_inplace(
        self, x: torch.Tensor, orders: torch.Tensor, ctx: torch.Tensor | None, step: int
    ) -> torch.Tensor:
        n = self.n_inputs
        first, out_layer = self.layers[0], self.layers[-1]
        in_place = torch.sigmoid_ if self.activation == "sigmoid" else torch.relu_
        w_x, w_m = first.weight[:, :n].t(), first.weight[:, n : 2 * n].t()  # (n, H1) each
        w_ctx = None if ctx is None else first.weight[:, 2 * n :].t()
        shared = orders.dim() == 1
        if shared:
            # position d's first layer: b + sum_{k<d} W[:, n + o_k] (the same for every row:
            # `offset`) + sum_{k<d} x_{o_k} W[:, o_k], which changes only after a 1: a cumsum over
            # each row's ones, gathered by the number of ones before d, so the one full-size pass
            # is a gather and an add (torch's cumsum over positions is the slow pass, ~4x an add)
            offset = first.bias + F.pad(torch.cumsum(w_m[orders[:-1]], dim=0), (0, 0, 1, 0))  # (n, H1)
            w_prev = F.pad(w_x[orders[:-1]], (0, 0, 1, 0))  # row d: W[:, o_{d-1}]; row 0: zeros
            w_out, b_out = out_layer.weight[orders], out_layer.bias[orders]
        else:
            # per row: the same running sum over rows of one table: the bias (row 2n) at d = 0,
            # then column o_{d-1}'s contribution, W[:, n + j] (row j, x_j = 0) or
            # W[:, j] + W[:, n + j] (row n + j, x_j = 1): one gather and one cumsum per chunk
            table = torch.cat([w_m, w_m + w_x, first.bias[None]])  # (2n + 1, H1)
        uppers = self.layers[1:-1]
        buffers: dict[tuple[int, ...], torch.Tensor] = {}

        def buffer(*shape: int, slot: int) -> torch.Tensor:
            key = (slot, *shape)
            if key not in buffers:
                buffers[key] = x.new_empty(shape)
            return buffers[key]

        out = []
        for lo in range(0, x.shape[0], step):
            xb = x[lo : lo + step]
            b = xb.shape[0]
            h = buffer(b, n, w_x.shape[1], slot=0)
            if shared:
                xo = xb[:, orders]  # (b, n): x in generation order
                before = F.pad(xo[:, :-1], (1, 0))  # position d: x_{o_{d-1}}
                count = before.ne(0).cumsum(1)  # ones among x_{o_0..o_{d-1}}: a row of `sums`
                e, d = before.nonzero(as_tuple=True)
                width = int(count[:, -1].max()) + 1
                sums = xb.new_zeros(b, width, h.shape[-1])  # row r of example e: its first r ones
                sums[e, count[e, d]] = before[e, d, None] * w_prev[d]
                sums.cumsum_(1)
                rows = count + width * torch.arange(b, device=x.device)[:, None]
                torch.index_select(sums.view(b * width, -1), 0, rows.reshape(-1), out=h.view(b * n, -1))
                h.add_(offset)
            else:
                o = orders[lo : lo + step]
                xo = xb.gather(1, o)  # (b, n): x in generation order
                index = F.pad(o[:, :-1] + n * xo[:, :-1].long(), (1, 0), value=2 * n)  # (b, n)
                torch.index_select(table, 0, index.reshape(-1), out=h.view(b * n, -1))
                h.cumsum_(1)
            if w_ctx is not None:
                h.add_((ctx[lo : lo + step] @ w_ctx)[:, None, :])
            in_place(h)
            for j, layer in enumerate(uppers):
                nxt = buffer(b * n, layer.weight.shape[0], slot=1 + j % 2)
                torch.addmm(layer.bias, h.view(b * n, -1), layer.weight.t(), out=nxt)
                h = in_place(nxt).view(b, n, -1)
            if shared:
                h.mul_(w_out)  # position d reads output unit o_d: (h_d * w_out[d]).sum() + b_out[d]
                z = h.sum(-1).add_(b_out)
            else:
                rows = buffer(b * n, h.shape[-1], slot=3)
                torch.index_select(out_layer.weight, 0, o.reshape(-1), out=rows)
                h.mul_(rows.view(b, n, -1))
                z = h.sum(-1).add_(out_layer.bias[o])
            out.append(-F.binary_cross_entropy_with_logits(z, xo, reduction="none"))
        if not out:
            return x.new_zeros((0, n))
        return torch.cat(out)

    def draw_in_orders(
        self, x: torch.Tensor, seq: torch.Tensor, n_obs: torch.Tensor, u: torch.Tensor, ctx: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Ancestral draws of an all-binary model on the running sum: row ``r`` keeps its columns
        ``seq[r, :n_obs[r]]`` (its observed values in ``x``) and draws ``seq[r, s]`` for
        ``s >= n_obs[r]`` given those before it, ``x_j = [u[r, j] < p]`` (``u``: ``(B, n)``).

        The first layer's pre-activation is updated by one column per step (``O(H1)``), so a step
        costs the layers above and one output unit, not a pass of the whole network: ``n`` steps
        cost about one exact likelihood. The same draws as a pass of the network per step."""
        n = self.n_inputs
        first, out_layer = self.layers[0], self.layers[-1]
        act = activation_fn(self.activation)
        w_x, w_m = first.weight[:, :n].t(), first.weight[:, n : 2 * n].t()
        table = torch.cat([w_m, w_m + w_x])  # row j: column j observed at 0; row n + j: at 1
        rank = seq.argsort(-1)
        known = (rank < n_obs[:, None]).to(x.dtype)
        a = torch.addmm(first.bias, x * known, w_x) + known @ w_m
        if ctx is not None:
            a = a + ctx @ first.weight[:, 2 * n :].t()
        x = x.clone()
        for s in range(int(n_obs.min()) if len(n_obs) else n, n):
            rows = (s >= n_obs).nonzero().squeeze(1)
            j = seq[rows, s]
            h = act(a[rows])
            for layer in self.layers[1:-1]:
                h = act(layer(h))
            z = (h * out_layer.weight[j]).sum(-1) + out_layer.bias[j]
            v = (u[rows, j] < torch.sigmoid(z)).to(x.dtype)
            x[rows, j] = v
            a.index_add_(0, rows, table[j + n * v.long()])
        return x

    # -- sampling ----------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self, num: int, generator: torch.Generator | None = None, mask: int | None = None, context: Any = None
    ) -> torch.Tensor:
        """``num`` exact samples, ``(num, n)``: each from one member (``mask``, or uniformly
        chosen per sample: that samples the ensemble), one dimension at a time in its ordering;
        of ``p(x | c)`` with ``context`` (one row per sample, or one row for all)."""

        cols = self.columns
        num = check_positive_int("num", num, allow_zero=True)
        ctx = self.check_context(context, (num,))

        def draw(u: torch.Tensor, i: int, c: torch.Tensor | None = None) -> torch.Tensor:
            if cols.all_binary:
                seq = self.orderings[i].expand(u.shape[0], -1)
                return self.draw_in_orders(u.new_zeros(u.shape), seq, seq.new_zeros(u.shape[0]), u, c)
            uu = u if u.dim() == 3 else u.unsqueeze(-1)
            x = u.new_zeros(u.shape[0], self.n_inputs)
            observed = torch.zeros_like(x)
            for j in self.orderings[i].tolist():
                e = cols.encode(x) * observed[:, cols.input_column.to(x.device)]
                z = self._network(self._input(e, observed, c))[:, cols.param_slice(j)]
                x[:, j] = cols.sample_column(j, z, uu[:, j])
                observed[:, j] = 1
            return x

        return sample_ensemble(
            num,
            self.num_orderings,
            mask,
            like=self._reference(),
            n=self.n_inputs,
            generator=generator,
            draw=draw,
            per_column=cols.uniforms_per_column,
            context=ctx,
        )


def _numpy(v: Any) -> np.ndarray:
    return v.cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
