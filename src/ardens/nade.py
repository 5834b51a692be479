"""NADE: the neural autoregressive distribution estimator (Larochelle & Murray, 2011).

For an ordering ``o``, with ``W`` (d, n), ``b`` (d), ``V`` (n, d), ``c`` (n):

    h_k = act(b + W[:, o_<k] x_o<k),    p(x_ok = 1 | x_o<k) = sigmoid(V[o_k] . h_k + c[o_k])

The pre-activation is a running sum, ``a_{k+1} = a_k + W[:, o_k] x_ok``, so ``log p(x)``
costs O(nd) per example. Rows of ``V`` and entries of ``c`` are indexed by input position.

Two forms of the first hidden state: by default ``h_1 = act(b)`` (2nd + d + n parameters,
as the NADE paper); ``first_hidden="learned"`` makes ``h_1`` a parameter of its own, as in
the NADE lecture's definition (2nd + n + 2d parameters). Other column types (``columns=``):
``W`` has one column per encoded input (a categorical column's one-hot block, a real
column standardized) and ``V``, ``c`` one row per parameter of the column heads
(:mod:`ardens.heads`); the all-binary default runs on the fast kernels.

Conditional NADE, ``p(x | c)`` (``context_features=C``): a context ``c`` (a real vector of
width ``C``, used as given) enters every hidden unit, unmasked, through ``W_context`` (d, C)::

    h_k = act(b + W_context c + W[:, o_<k] x_o<k)

so every position's hidden state (and every column's parameters) sees it. With
``first_hidden="learned"`` the parameter ``h1`` is then read as a *pre-activation*:
``h_1 = act(h1 + W_context c)`` (a context-free ``h_1`` would leave the first column
ignoring the context). Context models run on the general path (the fused all-binary kernels
take no context); models without context are unchanged.

>>> import torch, ardens
>>> model = ardens.NADE(n_inputs=6, hidden=8)
>>> x = torch.tensor([[0, 1, 1, 0, 0, 1]])
>>> model.log_prob(x).shape
torch.Size([1])
>>> model.sample(4, generator=torch.Generator().manual_seed(0)).shape
torch.Size([4, 6])

>>> cond = ardens.NADE(n_inputs=3, hidden=4, context_features=2)
>>> cond.log_prob(torch.tensor([[0, 1, 1]]), context=torch.tensor([[0.5, -1.0]])).shape
torch.Size([1])
>>> cond.sample(5, context=torch.tensor([0.5, -1.0])).shape  # one context row for all samples
torch.Size([5, 3])
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from . import _nade_ops, queries
from ._checks import check_positive_int
from ._columnwise import inputs_before_position, params_by_position
from .base import (
    ACTIVATIONS,
    AutoregressiveModel,
    activation_fn,
    bernoulli_log_prob,
    flat_batch,
    resolve_columns,
    uniforms,
)
from .heads import DEFAULT_INPUT_MARGIN
from .masks import OrderingSpec, make_ordering

__all__ = ["NADE"]


FIRST_HIDDEN = ("bias", "learned")


class NADE(AutoregressiveModel):
    """NADE with one layer of ``hidden`` units, over binary vectors or typed columns.

    Args:
        n_inputs: the number of columns ``n`` (all binary unless ``columns`` is given).
        hidden: the number of hidden units ``d``.
        activation: ``"sigmoid"`` (as in the paper) or ``"relu"``.
        ordering: ``None``/``"natural"``, ``"random"`` (drawn from ``seed``), or a
            permutation listing input positions in generation order.
        seed: seeds the random ordering; parameters are initialised from torch's RNG.
        first_hidden: ``"bias"`` (``h_1 = act(b)``) or ``"learned"`` (``h_1`` a parameter; with
            context the parameter is a pre-activation, ``h_1 = act(h1 + W_context c)``).
        columns: column types (:mod:`ardens.heads`), e.g. ``["real", "categorical:3"]``.
        min_scale: the mixture heads' standard-deviation floor (standardized units).
        input_margin: real inputs reach the network clipped to the training range widened by
            this many standard deviations (:mod:`ardens.heads`; ``None``: never clipped).
        context_features: ``C``, the width of a context ``c``; ``C > 0`` makes the model the
            conditional density ``p(x | c)`` (module docstring), and then ``log_prob``,
            ``sample``, ``params``, ``encoded_params``, ``forward``/``training_loss``,
            ``marginal_log_prob`` and ``impute`` all require ``context=c``, shape ``(..., C)``
            (one row per row of ``x`` or per sample, or one row ``(C,)`` for all).
        dropout: probability of zeroing each hidden unit in :meth:`log_prob` while the module
            is in training mode (survivors scaled by ``1 / (1 - dropout)``; the general path,
            not the fused binary kernels); evaluation mode never drops.
    """

    def __init__(
        self,
        n_inputs: int | None = None,
        hidden: int = 500,
        activation: str = "sigmoid",
        ordering: OrderingSpec = None,
        seed: int = 0,
        first_hidden: str = "bias",
        columns: Any = None,
        min_scale: float | None = None,
        input_margin: float | None = DEFAULT_INPUT_MARGIN,
        context_features: int = 0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.columns = resolve_columns(n_inputs, columns, min_scale, input_margin)
        self.n_inputs = n = self.columns.n
        self.hidden = d = check_positive_int("hidden", hidden)
        if not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
            raise ValueError(f"dropout: expected a probability in [0, 1); got {dropout!r}")
        self.dropout = float(dropout)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {ACTIVATIONS}; got {activation!r}")
        if first_hidden not in FIRST_HIDDEN:
            raise ValueError(f"first_hidden: expected one of {FIRST_HIDDEN}; got {first_hidden!r}")
        self.activation, self.first_hidden = activation, first_hidden
        self.seed = int(seed)
        order = make_ordering(n, ordering, seed=self.seed)
        self._ordering_spec = ordering if isinstance(ordering, str) or ordering is None else order.tolist()
        self.register_buffer("order", torch.as_tensor(order))
        n_in, n_out = self.columns.input_width, self.columns.param_width
        self.W = nn.Parameter(torch.empty(d, n_in).uniform_(-1, 1) / math.sqrt(n_in))
        self.b = nn.Parameter(torch.zeros(d))
        self.V = nn.Parameter(torch.empty(n_out, d).uniform_(-1, 1) / math.sqrt(d))
        self.c = nn.Parameter(torch.zeros(n_out))
        self.h1 = nn.Parameter(torch.full((d,), 0.5)) if first_hidden == "learned" else None
        self.context_features = n_ctx = check_positive_int("context_features", context_features, allow_zero=True)
        self.W_context = nn.Parameter(torch.empty(d, n_ctx).uniform_(-1, 1) / math.sqrt(n_ctx)) if n_ctx else None

    def config(self) -> dict[str, Any]:
        out = {
            "n_inputs": self.n_inputs,
            "hidden": self.hidden,
            "activation": self.activation,
            "ordering": self._ordering_spec,
            "seed": self.seed,
        }
        if self.first_hidden != "bias":
            out["first_hidden"] = self.first_hidden
        if self.dropout:
            out["dropout"] = self.dropout
        return {**out, **self.columns_config(), **self.context_config()}

    def ordering(self, i: int = 0) -> torch.Tensor:
        """Generation order: input positions, first generated first (one member: ``i = 0``)."""
        return self.order

    def output_bias(self) -> torch.Tensor:
        return self.c

    @property
    def _fast(self) -> bool:
        """All-binary with ``h_1 = act(b)``: the fused kernels of :mod:`ardens._nade_ops`."""
        return self.columns.all_binary and self.h1 is None and not self.context_features

    def _params(self) -> tuple[torch.Tensor, ...]:
        return self.W, self.b, self.V, self.c, self.order

    def conditionals(self, x: Any, context: Any = None) -> torch.Tensor:
        """Logits of ``p(x_k = 1 | x_<k)``, shape ``(..., n)``, indexed by input position
        (all-binary models; :meth:`params` gives every head's parameters)."""
        if not self.columns.all_binary:
            raise ValueError("conditionals: only for all-binary models; use params(x) for other columns")
        return self.params(x, context=context)

    def params(self, x: Any, mask: int | None = None, context: Any = None) -> torch.Tensor:
        """Every column's conditional parameters given the columns before it in the ordering
        (and the context), ``(..., param_width)`` (binary: logits; see :mod:`ardens.heads`)."""
        x = self.check_input(x)
        flat, batch = flat_batch(x)
        ctx = self.check_context(context, batch)
        if self._fast:
            z = _nade_ops.logits(flat, *self._params(), self.activation)
        else:
            z = self._encoded_params(self.columns.encode(flat), ctx)
        return z.reshape(*batch, self.columns.param_width)

    def encoded_params(self, e: torch.Tensor, member: int = 0, context: Any = None) -> torch.Tensor:
        """The network on encoded inputs ``(B, input_width)``: parameters ``(B, param_width)``.

        Every column's contribution ``W_j e_j`` to the pre-activation, summed over the columns
        strictly before it in the ordering (an exclusive cumulative sum, so nothing of a column
        reaches its own parameters), then each column's parameters read the hidden state at its
        position (:mod:`ardens._columnwise`). Memory ``O(B n d)``. ``context``: ``(B, C)`` (or
        one row) for a conditional model."""
        return self._encoded_params(e, self.check_context(context, e.shape[:-1]))

    def _encoded_params(self, e: torch.Tensor, ctx: torch.Tensor | None, dropout: bool = False) -> torch.Tensor:
        B, d = e.shape[0], self.hidden
        act = activation_fn(self.activation)
        before = inputs_before_position(e, self.W, self.columns, self.order)  # (B, n, d) in generation order
        start = self.b if ctx is None else self.b + ctx @ self.W_context.t()  # (d,) or (B, d)
        if torch.is_grad_enabled():
            h = act(start.reshape(-1, 1, d) + before)
        else:  # evaluation: the (B, n, d) pre-activations become the hidden states in place
            h = activation_fn(self.activation + "_")(before.add_(start.reshape(-1, 1, d)))
        if self.h1 is not None:
            h1 = self.h1.expand(B, 1, d) if ctx is None else act(self.h1 + ctx @ self.W_context.t())[:, None]
            h = torch.cat([h1, h[:, 1:]], dim=1)
        if dropout:
            h = torch.nn.functional.dropout(h, self.dropout, training=True)
        return params_by_position(h, self.V, self.c, self.columns, self.order)

    def log_prob(self, x: Any, *, observed: Any = None, context: Any = None) -> torch.Tensor:
        """Exact ``log p(x)`` in nats (densities of real columns in the data's units),
        shape ``x.shape[:-1]``.

        With ``observed`` (a boolean mask of ``x``'s shape), ``log p(x_unobserved | x_observed)``:
        exact when every row's observed columns are a prefix of the ordering, else a
        ``ValueError`` (:mod:`ardens.queries`). ``context``: ``log p(x | c)`` (``context_features > 0``)."""
        if observed is not None:
            return queries.conditional_log_prob(self, x, observed, context=context)
        x = self.check_input(x)
        flat, batch = flat_batch(x)
        ctx = self.check_context(context, batch)
        drop = bool(self.training and self.dropout)
        if self._fast and not drop:
            return _nade_ops.log_prob(flat, *self._params(), self.activation).reshape(batch)
        params = self._encoded_params(self.columns.encode(flat), ctx, dropout=drop)
        return self.columns.column_log_probs(params, flat).sum(-1).reshape(batch)

    def marginal_log_prob(self, x: Any, observed: Any, context: Any = None) -> torch.Tensor:
        """``log p(x_observed)`` per row (unobserved entries never read); exact when every row's
        observed columns are a prefix of the ordering, else a ``ValueError`` (:mod:`ardens.queries`)."""
        return queries.marginal_log_prob(self, x, observed, context=context)

    def impute(
        self,
        x: Any,
        observed: Any,
        generator: torch.Generator | None = None,
        draws: int = 1,
        fill: str = "sample",
        context: Any = None,
    ) -> torch.Tensor:
        """``x`` with its unobserved entries drawn from ``p(x_unobserved | x_observed)`` (observed
        columns a prefix of the ordering); ``fill``, ``draws`` and errors in :func:`ardens.queries.impute`."""
        return queries.impute(self, x, observed, generator=generator, draws=draws, fill=fill, context=context)

    def _draw_given(
        self, x: torch.Tensor, observed: torch.Tensor, member: int, u: torch.Tensor, ctx: torch.Tensor | None = None
    ) -> torch.Tensor | None:
        """Conditional draws for an observed prefix on the sampling kernel (the observed values
        kept, the others drawn in order with uniforms ``u``, ``(B, n, per_column)``): all-binary
        models without context; None otherwise (:mod:`ardens.queries` then runs a pass per column)."""
        if not self._fast or ctx is not None or u.shape[-1] != 1:
            return None
        given = torch.where(observed, x, torch.full_like(x, math.nan))
        return _nade_ops.sample(u[..., 0], *self._params(), self.activation, given=given).to(x)

    def _training_loss(
        self, x: torch.Tensor, step: int, generator: torch.Generator | None, context: Any = None
    ) -> torch.Tensor:
        return -self.log_prob(x, context=context)

    @torch.no_grad()
    def sample(self, num: int, generator: torch.Generator | None = None, context: Any = None) -> torch.Tensor:
        """``num`` exact samples, drawn one dimension at a time in the model's ordering; for a
        conditional model from ``p(x | c)``, ``context`` one row per sample or one row for all."""
        num = check_positive_int("num", num, allow_zero=True)
        ctx = self.check_context(context, (num,))
        cols = self.columns
        u = uniforms(num, self.n_inputs, like=self.W, generator=generator, per_column=cols.uniforms_per_column)
        if self._fast:
            return _nade_ops.sample(u, *self._params(), self.activation)
        act = activation_fn(self.activation)
        u = u if u.dim() == 3 else u.unsqueeze(-1)
        x = u.new_zeros(num, self.n_inputs)
        a = self.b.expand(num, -1).clone() if ctx is None else self.b + ctx @ self.W_context.t()
        for k, j in enumerate(self.order.tolist()):
            h = act(a) if (k or self.h1 is None) else _first_hidden(self, ctx, act).expand(num, -1)
            ps = cols.param_slice(j)
            x[:, j] = cols.sample_column(j, h @ self.V[ps].t() + self.c[ps], u[:, j])
            a = a + cols.encode_column(j, x[:, j], standardized=False) @ self.W[:, cols.input_slice(j)].t()
        return x


def _first_hidden(model: NADE, ctx: torch.Tensor | None, act) -> torch.Tensor:
    """``h_1`` of a learned-``h_1`` model: the parameter, or with context ``act(h1 + W_context c)``."""
    return model.h1 if ctx is None else act(model.h1 + ctx @ model.W_context.t())


def _exclusive_cumsum(t: torch.Tensor) -> torch.Tensor:
    """``sum_{e < k} t[:, e]`` along dim 1: no term includes its own index (no round-off leak)."""
    return torch.nn.functional.pad(torch.cumsum(t[:, :-1], dim=1), (0, 0, 1, 0))


def slow_log_prob(model: NADE, x: torch.Tensor, context: Any = None) -> torch.Tensor:
    """Reference ``log p(x)``: each conditional recomputed from scratch, O(n^2 d) per example.

    Only for tests and benchmarks: it follows the definition with no running sum, column by
    column, for every column type (and ``h_1`` learned or not).
    """
    x = model.check_input(x)
    ctx = model.check_context(context, x.shape[:-1])
    cols = model.columns
    act = activation_fn(model.activation)
    b = model.b if ctx is None else model.b + ctx @ model.W_context.t()
    e = cols.encode(x)
    total = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for k, j in enumerate(model.order.tolist()):
        before = [i for c in model.order[:k].tolist() for i in range(*cols.input_slice(c).indices(cols.input_width))]
        if k == 0 and model.h1 is not None:
            h = _first_hidden(model, ctx, act).expand(x.shape[0], -1)
        else:
            h = act(b + e[:, before] @ model.W[:, before].t())
        ps = cols.param_slice(j)
        z = h @ model.V[ps].t() + model.c[ps]
        if cols.all_binary:
            total = total + bernoulli_log_prob(z, x[:, j : j + 1])
        else:
            full = torch.zeros(x.shape[0], cols.param_width, dtype=x.dtype)
            full[:, ps] = z
            total = total + cols.column_log_probs(full, x)[:, j]
    return total
