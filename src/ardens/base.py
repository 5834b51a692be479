"""What every ardens model shares: input checks, log-likelihood from logits, config, and the
context of conditional models.

A model built with ``context_features=C > 0`` is a conditional density ``p(x | c)``: every call
that evaluates or draws from it (``log_prob``, ``sample``, ``params``, ``encoded_params``, the
training entry point ``forward(x, training_step=s, context=c)`` / ``training_loss``, and the
queries of :mod:`ardens.queries`) takes ``context=c``, a real array of shape ``(..., C)``: one row
per row of ``x`` (or per sample), or a single row ``(C,)`` broadcast to all of them. The context
is used as given (no standardization inside the model). :meth:`AutoregressiveModel.check_context`
makes a missing context, a context of the wrong width, NaN/inf in it, or a context given to a
model without one a one-line ``ValueError`` naming ``context``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_positive_int
from .heads import DEFAULT_INPUT_MARGIN, DEFAULT_MIN_SCALE, Columns

__all__ = [
    "AutoregressiveModel",
    "resolve_columns",
    "bernoulli_log_prob",
    "ensemble_size",
    "check_member",
    "sample_ensemble",
    "ACTIVATIONS",
    "context_kw",
]

ACTIVATIONS = ("sigmoid", "relu")


def bernoulli_log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``sum_k log p(x_k)`` for Bernoulli logits, in log space: ``x z - softplus(z)``.

    >>> bernoulli_log_prob(torch.zeros(1, 3), torch.ones(1, 3))  # 3 log(1/2)
    tensor([-2.0794])
    """
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def activation_fn(name: str):
    """The activation ``name``; ``name + "_"`` its in-place form."""
    if name in ("sigmoid", "sigmoid_"):
        return torch.sigmoid if name == "sigmoid" else torch.sigmoid_
    if name in ("relu", "relu_"):
        return torch.relu if name == "relu" else torch.relu_
    raise ValueError(f"activation: expected one of {ACTIVATIONS}; got {name!r}")


def resolve_columns(
    n_inputs: int | None,
    columns: Any,
    min_scale: float | None = None,
    input_margin: float | None = DEFAULT_INPUT_MARGIN,
) -> Columns:
    """The model's :class:`~ardens.heads.Columns`: ``columns`` (a list of column specs), or
    ``n_inputs`` binary columns; both given must agree."""
    if columns is None:
        if n_inputs is None:
            raise ValueError("n_inputs: expected a positive integer (or pass columns=...)")
        return Columns(["binary"] * check_positive_int("n_inputs", n_inputs))
    if isinstance(columns, Columns):
        columns = columns.specs()
    if isinstance(columns, str):
        columns = [columns] * check_positive_int("n_inputs", n_inputs) if n_inputs is not None else [columns]
    cols = Columns(list(columns), **({} if min_scale is None else {"min_scale": min_scale}), input_margin=input_margin)
    if n_inputs is not None and check_positive_int("n_inputs", n_inputs) != cols.n:
        raise ValueError(f"n_inputs: {n_inputs} does not match the {cols.n} columns given")
    return cols


class AutoregressiveModel(nn.Module):
    """Base class: a distribution over rows of typed columns (binary, categorical, real)
    with exact ``log_prob`` and ``sample``.

    Every model holds ``columns`` (:class:`~ardens.heads.Columns`), and one network that
    maps encoded inputs to a block of parameters per column (``param_width`` in all).
    ``forward(x)`` is ``log_prob(x)``; ``forward(x, training_step=s, generator=g)`` is the
    model's per-row training loss (:meth:`training_loss`), so that training, DDP and the
    estimator call every model the same way.
    """

    n_inputs: int
    columns: Columns
    context_features: int = 0  # C: the width of the context of p(x | c) (0: an unconditional model)
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
        return self.columns.check(x, dtype=ref.dtype, device=ref.device)

    def columns_config(self) -> dict[str, Any]:
        """``{"columns": [...]}`` for models that are not all-binary (binary configs stay as they were)."""
        if self.columns.all_binary:
            return {}
        out: dict[str, Any] = {"columns": self.columns.specs()}
        if self.columns.min_scale != DEFAULT_MIN_SCALE:
            out["min_scale"] = self.columns.min_scale
        if self.columns.loc is not None:  # real columns: always written (absent = a checkpoint from before clipping)
            out["input_margin"] = self.columns.input_margin
        return out

    def context_config(self) -> dict[str, Any]:
        """``{"context_features": C}`` for conditional models (unconditional configs stay as they were)."""
        return {"context_features": self.context_features} if self.context_features else {}

    def check_context(self, context: Any, batch: tuple[int, ...] | torch.Size) -> torch.Tensor | None:
        """``context`` as a ``(rows, C)`` tensor of the model's dtype and device, one row per
        element of ``batch`` (the batch shape of ``x``, or ``(num,)`` for samples; a single row
        is broadcast), or ``None`` for a model without context; else a one-line ``ValueError``."""
        width = self.context_features
        if not width:
            if context is not None:
                shape = tuple(np.shape(context)) if not isinstance(context, torch.Tensor) else tuple(context.shape)
                raise ValueError(f"context: this model takes no context (context_features=0); got shape {shape}")
            return None
        if context is None:
            raise ValueError(f"context: this model needs a context of width {width} (context_features); got none")
        if not isinstance(context, torch.Tensor):
            try:
                context = torch.as_tensor(np.asarray(context, dtype=np.float64))
            except (TypeError, ValueError) as err:
                raise ValueError(f"context: expected a real array of shape (..., {width}); got {err}") from None
        if context.is_complex() or not (context.is_floating_point() or _is_int(context) or context.dtype == torch.bool):
            raise ValueError(f"context: expected real values; got dtype {context.dtype}")
        if context.dim() == 0 or context.shape[-1] != width:
            got = "a scalar" if context.dim() == 0 else f"width {context.shape[-1]} (shape {tuple(context.shape)})"
            raise ValueError(f"context: expected width {width} (context_features={width}); got {got}")
        ref = self._reference()
        context = context.to(device=ref.device, dtype=ref.dtype)
        bad = ~torch.isfinite(context)
        if bool(bad.any()):
            pos = bad.reshape(-1, width).nonzero()[0]
            row, col = int(pos[0]), int(pos[1])
            raise ValueError(f"context: expected finite values; got NaN or inf at row {row}, column {col}")
        target = (*tuple(batch), width)
        try:
            context = torch.broadcast_to(context, target)
        except RuntimeError:
            raise ValueError(
                f"context: expected shape {target} (a row per row of x) or ({width},); got shape {tuple(context.shape)}"
            ) from None
        return context.reshape(-1, width)

    def output_bias(self) -> torch.Tensor:
        """The bias of the output layer, ``(param_width,)``: where :meth:`init_from_data` writes."""
        raise NotImplementedError

    @torch.no_grad()
    def init_from_data(self, train: Any) -> None:
        """Standardize the real columns with the training mean and population standard
        deviation, and start every head at its column's training marginal (output biases)."""
        data = np.asarray(train, dtype=np.float64)
        if data.ndim != 2 or data.shape[1] != self.n_inputs:
            raise ValueError(f"train: expected shape (rows, {self.n_inputs}); got {data.shape}")
        self.columns.fit_standardization(data)
        bias = self.output_bias()
        bias.copy_(self.columns.initial_params(data).to(bias))

    def training_loss(
        self, x: Any, step: int = 0, generator: torch.Generator | None = None, context: Any = None
    ) -> torch.Tensor:
        """The per-row loss that training minimizes, through :meth:`forward` (so DDP sees it)."""
        return self(x, training_step=step, generator=generator, context=context)

    def _training_loss(
        self, x: torch.Tensor, step: int, generator: torch.Generator | None, context: Any = None
    ) -> torch.Tensor:
        return -self.log_prob(x, **context_kw(context))

    def config(self) -> dict[str, Any]:
        """The constructor's keyword arguments, as JSON-serializable values."""
        raise NotImplementedError

    def log_prob(self, x: Any) -> torch.Tensor:
        raise NotImplementedError

    def sample(self, num: int, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def forward(
        self,
        x: Any,
        *,
        training_step: int | None = None,
        generator: torch.Generator | None = None,
        context: Any = None,
    ) -> torch.Tensor:
        """:meth:`log_prob`, or with ``training_step`` the per-row training loss (NADE:
        ``-log p``; MADE: member ``step % K``'s ``-log p``; DeepNADE: the order-agnostic loss);
        ``context`` for conditional models (``context_features > 0``)."""
        if training_step is None:
            return self.log_prob(x, **context_kw(context))
        return self._training_loss(x, int(training_step), generator, **context_kw(context))

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items() if not isinstance(v, list) or len(v) < 8)


def context_kw(context: Any) -> dict[str, Any]:
    """``{"context": context}``, or ``{}`` when there is none (so that models without a context
    argument are called as before)."""
    return {} if context is None else {"context": context}


def _is_int(x: torch.Tensor) -> bool:
    return not x.is_floating_point() and not x.is_complex() and x.dtype != torch.bool


def ensemble_size(model: AutoregressiveModel) -> int:
    """``K`` for an ensemble (MADE's masks, DeepNADE's orderings: ``log_prob(x, mask=i)`` is
    member ``i``), 1 for a single model."""
    return int(getattr(model, "num_masks", 1))


def flat_batch(x: torch.Tensor) -> tuple[torch.Tensor, torch.Size]:
    """``x`` of shape ``(..., n)`` as ``(B, n)``, and the batch shape to restore."""
    return x.reshape(-1, x.shape[-1]), x.shape[:-1]


def uniforms(
    num: int, n: int, *, like: torch.Tensor, generator: torch.Generator | None, per_column: int = 1
) -> torch.Tensor:
    """``(num, n)`` uniforms (``(num, n, per_column)`` where a column needs more than one) on
    ``like``'s device and dtype: the randomness of sampling.

    Drawing them up front makes samples a deterministic function of the generator, so
    that different sampling algorithms can be compared sample for sample.
    """
    shape = (num, n) if per_column == 1 else (num, n, per_column)
    return torch.rand(*shape, generator=generator, device=like.device, dtype=like.dtype)


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
    draw: Callable[..., torch.Tensor],
    per_column: int = 1,
    context: torch.Tensor | None = None,
) -> torch.Tensor:
    """``num`` samples of a ``k``-member ensemble: each from member ``mask``, or from a member
    chosen uniformly per sample (that samples the mixture). ``draw(u, i)`` turns the
    uniforms ``u`` of some samples into member ``i``'s samples; with ``context`` (``(num, C)``),
    ``draw(u, i, c)`` also gets those samples' rows of the context."""
    num = check_positive_int("num", num, allow_zero=True)
    if mask is not None:
        members = torch.full((num,), check_member(mask, k), dtype=torch.long)
    else:
        members = torch.randint(k, (num,), generator=generator, device=like.device).cpu()
    u = uniforms(num, n, like=like, generator=generator, per_column=per_column)
    x = torch.zeros(num, n, dtype=u.dtype, device=u.device)
    for i in members.unique().tolist():
        rows = (members == i).nonzero().flatten().to(like.device)
        x[rows] = draw(u[rows], i) if context is None else draw(u[rows], i, context[rows])
    return x
