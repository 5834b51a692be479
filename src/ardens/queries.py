"""Conditional queries for every model and column type: ``log p(x_U | x_O)``, ``log p(x_O)`` and
imputation of ``x_U`` given ``x_O``.

``observed`` is a boolean (or 0/1) array of ``x``'s shape: true where a value is known (the set
``O`` of that row), false where it is not (``U``). Every row has its own set. The models expose
these as ``model.log_prob(x, observed=m)``, ``model.marginal_log_prob(x, m)`` and
``model.impute(x, m)``.

What is exact:

* **DeepNADE**, for any observed set. Member ``i`` (ordering ``o_i``) is read in its
  *observed-first* ordering ``o_i'``: the row's observed columns in ``o_i``'s relative order, then
  its unobserved ones in ``o_i``'s relative order. With one member (or ``mask=i``) the answers are
  exactly ``p_{o'}(x_U | x_O)`` and ``p_{o'}(x_O)``; for ``K`` members they are the exact
  conditional and marginal of the ensemble of the ``o_i'``::

      p(x_U | x_O) = sum_i p_{o_i'}(x_O) p_{o_i'}(x_U | x_O) / sum_i p_{o_i'}(x_O)
      p(x_O)       = mean_i p_{o_i'}(x_O)

  An order-agnostic network is a density for every ordering at once, so this is its natural
  reading. It is not, in general, the conditional of ``log_prob(x)`` (the ensemble of the ``o_i``
  themselves): a trained network agrees across orderings only approximately. Cost: ``n`` network
  passes per member (only the passes some row needs).
* **NADE and MADE** when, in every row, the observed columns are a prefix of the model's ordering
  (for MADE, of the ordering of every member used: all of them, or member ``mask``). Then
  ``p(x_U | x_O)`` is the product of the later columns' conditionals and ``p(x_O)`` that of the
  earlier ones; a MADE ensemble gives the mixture's exact conditional
  ``sum_i p_i(x_O) p_i(x_U | x_O) / sum_i p_i(x_O)`` and marginal ``mean_i p_i(x_O)``. Any other
  observed set is a one-line ``ValueError`` naming the first row that is not a prefix (those
  models cannot marginalize a column that comes before an observed one; DeepNADE can).

Conditional models (``context_features > 0``) take ``context=c`` in every query (shape
``(..., C)``: one row per row of ``x``, or one row ``(C,)`` for all): the answers are then those of
``p(x | c)``, e.g. ``log p(x_U | x_O, c)`` and ``log p(x_O | c)``, with every statement above
holding for each context.

Rows with nothing unobserved have ``log p(x_U | x_O) = 0``; rows with nothing observed have
``log p(x_O) = 0`` (and ``log p(x_U | x_O)`` is then ``log p(x)``).

>>> import torch, ardens
>>> model = ardens.DeepNADE(columns=["binary", "categorical:3", "real"], hidden=[8], seed=0).double()
>>> x = torch.tensor([[1.0, 2.0, float("nan")]])     # the real value is unknown
>>> m = torch.tensor([[True, True, False]])
>>> model.marginal_log_prob(x, m).shape            # log p(x_0, x_1): the NaN is never read
torch.Size([1])
>>> filled = model.impute(x, m, generator=torch.Generator().manual_seed(0))
>>> bool(torch.isfinite(filled).all()), filled[0, :2].tolist()
(True, [1.0, 2.0])
>>> model.impute(x, m, draws=5).shape
torch.Size([5, 1, 3])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ._checks import check_positive_int
from .base import AutoregressiveModel, check_member, context_kw, ensemble_size, uniforms
from .masks import check_ordering

__all__ = ["FILLS", "conditional_log_prob", "marginal_log_prob", "impute"]

FILLS = ("sample", "mean", "mode")


# -- public queries ---------------------------------------------------------------------------
def conditional_log_prob(
    model: AutoregressiveModel,
    x: Any,
    observed: Any,
    *,
    mask: int | None = None,
    ordering: Sequence[int] | None = None,
    context: Any = None,
) -> torch.Tensor:
    """``log p(x_U | x_O)`` per row, shape ``x.shape[:-1]`` (exactness: see the module).

    Every entry of ``x`` is read (the unobserved values are the ones scored). ``mask=i``: member
    ``i`` alone; ``ordering`` (DeepNADE only): one explicit ordering in place of the members';
    ``context``: of ``p(x | c)`` for a conditional model."""
    flat, m, batch, _ = _prepare(model, x, observed, read_unobserved=True)
    ctx = model.check_context(context, batch)
    orders, members = _members(model, mask, ordering, flat.device)
    need = "unobserved" if len(orders) == 1 else "both"
    a, c = _pieces(model, flat, m, orders, members, need, ctx)
    if len(orders) == 1:
        out = c[0]
    else:
        out = torch.logsumexp(a + c, 0) - torch.logsumexp(a, 0)
    return torch.where(m.all(-1), torch.zeros_like(out), out).reshape(batch)


def marginal_log_prob(
    model: AutoregressiveModel,
    x: Any,
    observed: Any,
    *,
    mask: int | None = None,
    ordering: Sequence[int] | None = None,
    context: Any = None,
) -> torch.Tensor:
    """``log p(x_O)`` per row, shape ``x.shape[:-1]`` (exactness: see the module). The unobserved
    entries of ``x`` are never read (they may be NaN). ``context``: of ``p(x | c)``."""
    flat, m, batch, _ = _prepare(model, x, observed, read_unobserved=False)
    ctx = model.check_context(context, batch)
    orders, members = _members(model, mask, ordering, flat.device)
    a, _ = _pieces(model, flat, m, orders, members, "observed", ctx)
    out = a[0] if len(orders) == 1 else torch.logsumexp(a, 0) - math.log(len(orders))
    return torch.where(m.any(-1), out, torch.zeros_like(out)).reshape(batch)


@torch.no_grad()
def impute(
    model: AutoregressiveModel,
    x: Any,
    observed: Any,
    *,
    generator: torch.Generator | None = None,
    draws: int = 1,
    fill: str = "sample",
    mask: int | None = None,
    ordering: Sequence[int] | None = None,
    context: Any = None,
) -> torch.Tensor:
    """``x`` with its unobserved entries drawn from ``p(x_U | x_O)`` (exactness: see the module;
    ``p(x_U | x_O, c)`` with ``context`` for a conditional model).

    Sampling is ancestral, in the observed-first ordering (NADE/MADE: the model's ordering, whose
    prefix is observed). For an ensemble each row's member is drawn from its posterior
    ``p_i(x_O) / sum_j p_j(x_O)`` and the row completed by that member: that samples the
    mixture's conditional exactly. The unobserved entries of ``x`` are never read (NaN allowed);
    observed entries come back bit for bit. The result is on the model's device, of ``x``'s dtype
    if ``x`` is floating point (else the model's).

    ``fill``:

    * ``"sample"``: the draws themselves, shape ``x.shape`` for ``draws=1`` and
      ``(draws, *x.shape)`` for ``draws > 1``.
    * ``"mean"``: one completion of shape ``x.shape`` summarizing ``draws`` draws: for a real
      column the mean of its draws (a Monte Carlo estimate of ``E[x_j | x_O]``); for a binary or
      categorical column the most frequent value among its draws, ties to the smallest code.
      Columns are summarized one by one (the result need not be one of the draws).
    * ``"mode"``: at present the same as ``"mean"`` (the most frequent value of a discrete
      column, the mean of a real one); the name reads better for discrete data.

    Errors (one-line ``ValueError``): ``observed`` of another shape than ``x``, or not 0/1; a NaN in
    an observed entry; no row with anything unobserved; NADE/MADE with a non-prefix observed set.
    A row with nothing observed is allowed (it is a plain sample)."""
    if fill not in FILLS:
        raise ValueError(f"fill: expected one of {', '.join(map(repr, FILLS))}; got {fill!r}")
    draws = check_positive_int("draws", draws)
    flat, m, batch, keep = _prepare(model, x, observed, read_unobserved=False)
    ctx = model.check_context(context, batch)
    if bool(m.all()):
        raise ValueError("nothing to impute: every entry is observed")
    orders, members = _members(model, mask, ordering, flat.device)
    B, n = flat.shape
    ref = model._reference()
    if len(orders) > 1:  # each (draw, row) takes a member from the posterior p_i(x_O) / sum_j p_j(x_O)
        a, _ = _pieces(model, flat, m, orders, members, "observed", ctx)
        post = a.log_softmax(0).exp().t().repeat(draws, 1)  # (draws * B, K)
        u = torch.rand(draws * B, generator=generator, device=ref.device, dtype=ref.dtype)
        choice = (post.cumsum(-1) <= u[:, None]).sum(-1).clamp(max=len(orders) - 1)
    else:
        choice = torch.zeros(draws * B, dtype=torch.long, device=flat.device)
    u = uniforms(draws * B, n, like=ref, generator=generator, per_column=model.columns.uniforms_per_column)
    u = u if u.dim() == 3 else u.unsqueeze(-1)
    xs, ms = flat.repeat(draws, 1), m.repeat(draws, 1)
    cs = None if ctx is None else ctx.repeat(draws, 1)
    for k in choice.unique().tolist():
        rows = (choice == k).nonzero().squeeze(1)
        c_rows = None if cs is None else cs[rows]
        if _any_subset(model):
            xs[rows] = _draw_any_subset(model, xs[rows], ms[rows], orders[k], u[rows], c_rows)
        else:
            xs[rows] = _draw_prefix(model, xs[rows], ms[rows], orders[k], members[k], u[rows], c_rows)
    xs = xs.reshape(draws, B, n)
    if fill != "sample":
        xs = _summarize(model, xs)[None]
    out = torch.where(m, keep, xs.to(keep.dtype))  # observed entries: x's own values, bit for bit
    if fill == "sample" and draws > 1:
        return out.reshape(draws, *batch, n)
    return out.reshape(*batch, n)


# -- input ------------------------------------------------------------------------------------
def _prepare(
    model: AutoregressiveModel, x: Any, observed: Any, *, read_unobserved: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Size, torch.Tensor]:
    """``(flat x, flat observed (bool), batch shape, x as given (model's device; x's dtype if
    floating))``. Where the unobserved entries are not read they become 0 before the checks."""
    x = _as_tensor("x", x)
    m = _as_tensor("observed", observed)
    if tuple(m.shape) != tuple(x.shape):
        raise ValueError(f"observed: expected shape {tuple(x.shape)} (that of x); got shape {tuple(m.shape)}")
    n = model.columns.n
    if x.dim() == 0 or x.shape[-1] != n:
        model.check_input(x)  # its one-line error about x's shape
    if m.dtype != torch.bool:
        bad = (m != 0) & (m != 1)
        if bool(bad.any()):
            r, c = _first(bad, n)
            raise ValueError(
                f"observed: expected a boolean or 0/1 mask; got {m.reshape(-1, n)[r, c].item()!r}"
                f" at row {r}, column {c}"
            )
        m = m != 0
    ref = model._reference()
    m = m.to(ref.device)
    x = x.to(ref.device)
    if x.is_floating_point():
        nan = torch.isnan(x) if read_unobserved else torch.isnan(x) & m
        if bool(nan.any()):
            r, c = _first(nan, n)
            if bool(m.reshape(-1, n)[r, c]):
                what = "an observed entry"
            else:
                what = (
                    "an unobserved entry, which log_prob(x, observed=...) scores (marginal_log_prob does not read it)"
                )
            raise ValueError(f"x: missing value (NaN) at row {r}, column {c}, {what}")
    keep = x if x.is_floating_point() else x.to(ref.dtype)
    if not read_unobserved:
        x = torch.where(m, x, torch.zeros_like(x))  # a valid placeholder for every column type
    flat = model.check_input(x).reshape(-1, n)
    return flat, m.reshape(-1, n), x.shape[:-1], keep.reshape(-1, n)


def _as_tensor(name: str, v: Any) -> torch.Tensor:
    if isinstance(v, torch.Tensor):
        return v
    try:
        return torch.as_tensor(np.asarray(v))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: expected a numeric array; got {err}") from None


def _first(bad: torch.Tensor, n: int) -> tuple[int, int]:
    pos = bad.reshape(-1, n).nonzero()[0]
    return int(pos[0]), int(pos[1])


# -- members ----------------------------------------------------------------------------------
def _any_subset(model: AutoregressiveModel) -> bool:
    """DeepNADE-like: the network conditions on any observed set (``conditional_params``)."""
    return hasattr(model, "conditional_params")


def _members(
    model: AutoregressiveModel, mask: int | None, ordering: Sequence[int] | None, device: torch.device
) -> tuple[list[torch.Tensor], list[int]]:
    """The base orderings used, and their members: all of them, member ``mask``, or (DeepNADE) one
    explicit ``ordering``."""
    if ordering is not None:
        if not _any_subset(model):
            raise ValueError(f"ordering: only DeepNADE takes an ordering per call; {type(model).__name__} has its own")
        if mask is not None:
            raise ValueError("ordering: give mask or ordering, not both")
        order = torch.as_tensor(check_ordering(_numpy(ordering), model.columns.n), device=device)
        return [order], [0]
    k = ensemble_size(model)
    members = list(range(k)) if mask is None else [check_member(mask, k)]
    return [model.ordering(i).to(device) for i in members], members


def _numpy(v: Any) -> np.ndarray:
    return v.cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)


def _pieces(
    model: AutoregressiveModel,
    flat: torch.Tensor,
    m: torch.Tensor,
    orders: list[torch.Tensor],
    members: list[int],
    need: str,
    ctx: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log p_i(x_O), log p_i(x_U | x_O))``, each ``(members, B)``; ``need`` (``"observed"``,
    ``"unobserved"``, ``"both"``) lets DeepNADE skip the passes nobody reads (zeros there);
    ``ctx``: the context rows ``(B, C)`` of a conditional model."""
    a, c = [], []
    for order, i in zip(orders, members):
        if _any_subset(model):
            ai, ci = _any_subset_pieces(model, flat, m, order, need, ctx)
        else:
            ai, ci = _prefix_pieces(model, flat, m, order, i, ctx)
        a.append(ai)
        c.append(ci)
    return torch.stack(a), torch.stack(c)


# -- NADE and MADE: observed prefixes -----------------------------------------------------------
def _check_prefix(model: AutoregressiveModel, m: torch.Tensor, order: torch.Tensor, member: int) -> None:
    ms = m[:, order]
    bad = (ms[:, 1:] & ~ms[:, :-1]).any(-1)
    if bool(bad.any()):
        row = int(bad.nonzero()[0, 0])
        name = type(model).__name__
        which = f" of member {member}" if ensemble_size(model) > 1 else ""
        seen = m[row].nonzero().squeeze(1).tolist()
        raise ValueError(
            f"observed: {name} conditions only on a prefix of its ordering, but row {row} observes columns "
            f"{_short(seen)}, not a prefix of the ordering{which} {_short(order.tolist())}; the observed columns "
            "must be a prefix of the ordering (DeepNADE conditions on any set)"
        )


def _short(v: list[int], most: int = 12) -> str:
    return str(v) if len(v) <= most else f"[{', '.join(map(str, v[:most]))}, ...]"


def _prefix_pieces(
    model: AutoregressiveModel,
    flat: torch.Tensor,
    m: torch.Tensor,
    order: torch.Tensor,
    member: int,
    ctx: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    _check_prefix(model, m, order, member)
    lp = model.columns.column_log_probs(model.params(flat, mask=member, **context_kw(ctx)), flat)
    zero = torch.zeros_like(lp)
    return torch.where(m, lp, zero).sum(-1), torch.where(m, zero, lp).sum(-1)


def _draw_prefix(
    model: AutoregressiveModel,
    x: torch.Tensor,
    m: torch.Tensor,
    order: torch.Tensor,
    member: int,
    u: torch.Tensor,
    ctx: torch.Tensor | None = None,
) -> torch.Tensor:
    """Ancestral sampling of the unobserved columns: the model's own sampler with the prefix
    given where it has one (``_draw_given``: all-binary NADE, MADE of any columns), else one
    network pass per column of the ordering that some row lacks (a column's parameters read
    only the columns before it)."""
    _check_prefix(model, m, order, member)
    fast = getattr(model, "_draw_given", None)
    if fast is not None:  # the model's sampler with the prefix given (NADE: all-binary; MADE: any columns)
        drawn = fast(x, m, member, u, ctx)
        if drawn is not None:
            return drawn
    cols = model.columns
    x = x.clone()
    for j in order[int(m.sum(-1).min()) :].tolist():
        rows = (~m[:, j]).nonzero().squeeze(1)
        if len(rows):
            params = model.params(x[rows], mask=member, **_rows_kw(ctx, rows))[:, cols.param_slice(j)]
            x[rows, j] = cols.sample_column(j, params, u[rows, j])
    return x


# -- DeepNADE: any observed set ------------------------------------------------------------------
def _observed_first(m: torch.Tensor, order: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the observed-first ordering ``o'`` (``(B, n)``: the column at rank ``s``) and its
    ranks (``(B, n)``: the rank of column ``j``)."""
    n = m.shape[1]
    rank = torch.empty_like(order)
    rank[order] = torch.arange(n, device=order.device)
    key = (~m).long() * n + rank  # observed first, each group in the base ordering's relative order
    seq = key.argsort(-1)
    return seq, seq.argsort(-1)


def _rows_kw(ctx: torch.Tensor | None, rows: torch.Tensor) -> dict[str, Any]:
    """``context=`` for some rows, or nothing for a model without context."""
    return {} if ctx is None else {"context": ctx[rows]}


def _any_subset_pieces(
    model: AutoregressiveModel,
    flat: torch.Tensor,
    m: torch.Tensor,
    order: torch.Tensor,
    need: str,
    ctx: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The chain rule in ``o'``: pass ``s`` conditions each row on its columns of rank ``< s`` and
    reads the column of rank ``s`` (observed if ``s < |O|``), for the rows that need it."""
    B, n = flat.shape
    seq, rank = _observed_first(m, order)
    n_obs = m.sum(-1)
    if getattr(model, "in_place_ok", lambda: False)():  # all-binary DeepNADE: the likelihood's kernel
        lp = model.positions_log_prob(flat, seq, ctx)  # (B, n) by rank in o'
        is_obs = torch.arange(n, device=flat.device)[None, :] < n_obs[:, None]
        return torch.where(is_obs, lp, 0).sum(-1), torch.where(is_obs, 0, lp).sum(-1)
    a = flat.new_zeros(B)
    c = flat.new_zeros(B)
    for s in range(n):
        is_obs = s < n_obs
        want = {"observed": is_obs, "unobserved": ~is_obs, "both": torch.ones_like(is_obs)}[need]
        rows = want.nonzero().squeeze(1)
        if not len(rows):
            continue
        xs = flat[rows]
        params = model.conditional_params(xs, (rank[rows] < s).to(flat.dtype), **_rows_kw(ctx, rows))
        lp = model.columns.column_log_probs(params, xs).gather(1, seq[rows, s, None]).squeeze(1)
        obs = is_obs[rows]
        a = a.index_add(0, rows, torch.where(obs, lp, torch.zeros_like(lp)))
        c = c.index_add(0, rows, torch.where(obs, torch.zeros_like(lp), lp))
    return a, c


def _draw_any_subset(
    model: AutoregressiveModel,
    x: torch.Tensor,
    m: torch.Tensor,
    order: torch.Tensor,
    u: torch.Tensor,
    ctx: torch.Tensor | None = None,
) -> torch.Tensor:
    """Ancestral sampling of the unobserved columns in ``o'``: pass ``s`` draws, for every row with
    ``s >= |O|``, its column of rank ``s`` given those of lower rank."""
    cols = model.columns
    seq, rank = _observed_first(m, order)
    n_obs = m.sum(-1)
    if cols.all_binary and u.shape[-1] == 1 and hasattr(model, "draw_in_orders"):  # the running sum
        return model.draw_in_orders(x, seq, n_obs, u[..., 0], ctx)
    x = x.clone()
    for s in range(int(n_obs.min()), x.shape[1]):
        rows = (s >= n_obs).nonzero().squeeze(1)
        if not len(rows):
            continue
        params = model.conditional_params(x[rows], (rank[rows] < s).to(x.dtype), **_rows_kw(ctx, rows))
        js = seq[rows, s]
        for j in js.unique().tolist():
            sel = js == j
            r = rows[sel]
            x[r, j] = cols.sample_column(j, params[sel][:, cols.param_slice(j)], u[r, j])
    return x


# -- summaries of draws ---------------------------------------------------------------------------
def _summarize(model: AutoregressiveModel, xs: torch.Tensor) -> torch.Tensor:
    """``(B, n)`` from draws ``(D, B, n)``: real columns their mean, discrete ones their most
    frequent value (ties: the smallest code; ``argmax`` returns the first maximum)."""
    out = xs.mean(0)
    for j, col in enumerate(model.columns.list):
        if col.discrete:
            levels = col.levels if col.kind == "categorical" else 2
            counts = torch.nn.functional.one_hot(xs[:, :, j].long(), levels).sum(0)  # (B, levels)
            out[:, j] = counts.argmax(-1).to(out.dtype)
    return out
