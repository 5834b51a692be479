"""Per-column output distributions ("heads"), shared by NADE, MADE and DeepNADE.

A network emits one block of parameters per column; a head turns its column's block into a
log-probability or a sample. Three heads:

* ``binary``: Bernoulli, 1 parameter (the logit).
* ``categorical:K``: softmax over K logits; the column holds the codes ``0..K-1``.
* ``real`` (``real:C``): a mixture of ``C`` Gaussians (RNADE's MoG; default ``C = 10``),
  ``3C`` parameters ``[mixing logits | means | raw scales]``, computed in log space. The
  network sees the column standardized, ``z = (x - loc) / scale``; the mixture is a density
  of ``z``, and :meth:`Columns.column_log_probs` returns densities of ``x`` in the data's own
  units (the log-Jacobian ``-log scale`` is added exactly once, there). A component's
  standard deviation is ``min_scale + exp(raw)``: ``min_scale`` (standardized units) is a
  variance floor that keeps one extreme row from costing thousands of nats.

Inputs enter the networks clipped to the range of the training data: a real column's
standardized input is clamped to ``[min - input_margin, max + input_margin]`` of its training
values (:meth:`Columns.fit_standardization`; ``input_margin`` in standardized units, default 1).
Only what the network *sees* is clipped, never the value a head scores or draws, so each
conditional ``p(x_k | x_<k)`` is still a normalized density of ``x_k`` and the model still an
exact, normalized density; training rows are never clipped, so training is unchanged. What it
changes: an observed value far outside the training range (a test-row outlier) no longer
drives the network into extrapolation, where the conditionals of later columns were seen to put
their mass 10^6-10^9 standard deviations away (imputing white wine and parkinsons).

Inputs enter the networks encoded: binary as 0/1, categorical one-hot (``K`` inputs), real
standardized. Parameters and encoded inputs are laid out column after column, so
:class:`Columns` knows, for every input and output unit, its column (``input_column``,
``output_column``): that is all the networks need to keep the autoregressive property.

Sampling is a deterministic function of uniforms drawn up front (``uniforms_per_column``
each): Bernoulli ``u < sigmoid(z)``, categorical and mixture component by the inverse CDF,
the Gaussian by ``sqrt(2) erfinv(2u - 1)``.

>>> cols = Columns(["binary", "categorical:3", "real:2"])
>>> cols.n, cols.input_width, cols.param_width
(3, 5, 10)
>>> cols.input_column.tolist(), cols.output_column.tolist()
([0, 1, 1, 1, 2], [0, 1, 1, 1, 2, 2, 2, 2, 2, 2])
>>> cols.describe()
'binary, categorical:3, real:2'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "Column",
    "Columns",
    "ColumnSpec",
    "parse_column",
    "KINDS",
    "DEFAULT_COMPONENTS",
    "DEFAULT_MIN_SCALE",
    "DEFAULT_INPUT_MARGIN",
]

KINDS = ("binary", "categorical", "real")
DEFAULT_COMPONENTS = 10
DEFAULT_MIN_SCALE = 1e-3
#: How far (standardized units) beyond the training range a real input may go before the
#: networks see it clipped; set to 1 and checked against no clipping on the validation rows of
#: benchmarks/imputation.py (no other value tried).
DEFAULT_INPUT_MARGIN = 1.0
LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
#: Largest log standard deviation of a mixture component (standardized units, e^20 = 4.9e8):
#: part of the parametrization, sigma = min(e^raw, e^20) + min_scale, the same in log_prob, cdf
#: and sampling. A far-off, nearly weightless component can reach raws whose exp overflows
#: float32; its draws then fed infinities into the network (seen imputing white wine).
MAX_LOG_SCALE = 20.0


@dataclass(frozen=True)
class Column:
    """One column's type: ``kind`` in :data:`KINDS`; ``levels`` K for a categorical column,
    ``components`` C for a real one."""

    kind: str
    levels: int = 2
    components: int = DEFAULT_COMPONENTS

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"column kind: expected one of {', '.join(KINDS)}; got {self.kind!r}")
        if self.kind == "categorical" and (isinstance(self.levels, bool) or int(self.levels) < 2):
            raise ValueError(f"categorical column: expected at least 2 levels; got {self.levels!r}")
        if self.kind == "real" and (isinstance(self.components, bool) or int(self.components) < 1):
            raise ValueError(f"real column: expected at least 1 mixture component; got {self.components!r}")

    @property
    def input_width(self) -> int:
        return self.levels if self.kind == "categorical" else 1

    @property
    def param_width(self) -> int:
        return {"binary": 1, "categorical": self.levels, "real": 3 * self.components}[self.kind]

    @property
    def discrete(self) -> bool:
        return self.kind != "real"

    def spec(self) -> str:
        """The short text form: ``binary``, ``categorical:K`` or ``real:C``."""
        if self.kind == "categorical":
            return f"categorical:{self.levels}"
        if self.kind == "real":
            return f"real:{self.components}"
        return "binary"


ColumnSpec = "Column | str | dict[str, Any]"


def parse_column(spec: Any) -> Column:
    """A :class:`Column` from itself, a text form or a dict.

    >>> parse_column("categorical:4"), parse_column("real").components
    (Column(kind='categorical', levels=4, components=10), 10)
    """
    if isinstance(spec, Column):
        return spec
    if isinstance(spec, dict):
        try:
            return Column(**spec)
        except TypeError as err:
            raise ValueError(f"column: {err}") from None
    if isinstance(spec, str):
        kind, _, arg = spec.strip().lower().partition(":")
        kind = {"b": "binary", "bin": "binary", "c": "categorical", "cat": "categorical", "r": "real"}.get(kind, kind)
        if kind not in KINDS:
            raise ValueError(f"column: expected binary, categorical:K or real[:C]; got {spec!r}")
        if kind == "binary":
            if arg:
                raise ValueError(f"column: 'binary' takes no argument; got {spec!r}")
            return Column("binary")
        if kind == "categorical" and not arg:
            raise ValueError(f"column: a categorical column needs its number of levels, as categorical:K; got {spec!r}")
        if arg and not arg.isdigit():
            raise ValueError(f"column: expected a positive integer after ':'; got {spec!r}")
        if kind == "categorical":
            return Column("categorical", levels=int(arg))
        return Column("real", components=int(arg) if arg else DEFAULT_COMPONENTS)
    raise ValueError(f"column: expected a Column, a text such as 'real' or 'categorical:3', or a dict; got {spec!r}")


class Columns(nn.Module):
    """The column types of a model, their layout, and the heads' mathematics.

    Holds, as buffers, the standardization ``loc``/``scale`` of the real columns (identity
    until :meth:`fit_standardization`; saved in checkpoints) and, unless ``input_margin`` is
    ``None``, the standardized input range ``lo``/``hi`` the networks see (unbounded until
    :meth:`fit_standardization`). Column sets without a real column hold no buffers, so binary
    and categorical checkpoints are unchanged.
    """

    def __init__(
        self,
        columns: Sequence[Any],
        min_scale: float = DEFAULT_MIN_SCALE,
        input_margin: float | None = DEFAULT_INPUT_MARGIN,
    ) -> None:
        super().__init__()
        self.list: tuple[Column, ...] = tuple(parse_column(c) for c in columns)
        if not self.list:
            raise ValueError("columns: expected at least one column")
        if not (math.isfinite(min_scale) and min_scale >= 0):
            raise ValueError(f"min_scale: expected a non-negative number; got {min_scale!r}")
        self.min_scale = float(min_scale)
        _check_input_margin(input_margin)
        self.n = len(self.list)
        in_w = np.array([c.input_width for c in self.list])
        out_w = np.array([c.param_width for c in self.list])
        self.input_width, self.param_width = int(in_w.sum()), int(out_w.sum())
        self.input_offsets = np.concatenate([[0], np.cumsum(in_w)])
        self.param_offsets = np.concatenate([[0], np.cumsum(out_w)])
        self.input_column = torch.as_tensor(np.repeat(np.arange(self.n), in_w))
        self.output_column = torch.as_tensor(np.repeat(np.arange(self.n), out_w))
        kinds = np.array([c.kind for c in self.list])
        self.all_binary = bool((kinds == "binary").all())
        self.all_discrete = bool((kinds != "real").all())
        self.binary_idx = np.flatnonzero(kinds == "binary")
        self.real_idx = np.flatnonzero(kinds == "real")
        # columns grouped by shape, so that each group's heads run as one tensor operation
        self.cat_groups: dict[int, np.ndarray] = _groups(self.list, "categorical", "levels")
        self.real_groups: dict[int, np.ndarray] = _groups(self.list, "real", "components")
        if len(self.real_idx):
            self.register_buffer("loc", torch.zeros(self.n))
            self.register_buffer("scale", torch.ones(self.n))
        else:
            self.loc = self.scale = None
        self.input_margin = None if input_margin is None or not len(self.real_idx) else float(input_margin)
        if self.input_margin is not None:
            self.register_buffer("lo", torch.full((self.n,), -math.inf))
            self.register_buffer("hi", torch.full((self.n,), math.inf))
        else:  # None buffers (not in the state dict) that fit_input_range(train, margin) may fill
            self.register_buffer("lo", None)
            self.register_buffer("hi", None)

    # -- description --------------------------------------------------------------------
    def specs(self) -> list[str]:
        return [c.spec() for c in self.list]

    def describe(self) -> str:
        return ", ".join(self.specs())

    def config(self) -> list[str]:
        return self.specs()

    def input_slice(self, j: int) -> slice:
        return slice(int(self.input_offsets[j]), int(self.input_offsets[j + 1]))

    def param_slice(self, j: int) -> slice:
        return slice(int(self.param_offsets[j]), int(self.param_offsets[j + 1]))

    # -- checks and encoding ------------------------------------------------------------
    def check(self, x: Any, *, dtype: torch.dtype, device: torch.device, name: str = "x") -> torch.Tensor:
        """``x`` as a ``(..., n)`` tensor of ``dtype`` on ``device``, every value valid for its
        column, or a one-line ``ValueError`` naming the row and column."""
        if not isinstance(x, torch.Tensor):
            try:
                x = torch.as_tensor(np.asarray(x))
            except (TypeError, ValueError) as err:
                raise ValueError(f"{name}: expected a (batch, {self.n}) numeric array; got {err}") from None
        if x.is_complex() or not (x.is_floating_point() or x.dtype == torch.bool or _is_int(x)):
            raise ValueError(f"{name}: expected numeric values; got dtype {x.dtype}")
        if x.dim() == 0 or x.shape[-1] != self.n:
            raise ValueError(f"{name}: expected shape (batch, {self.n}); got shape {tuple(x.shape)}")
        if self.all_binary:
            # x (1 - x) is 0 exactly for 0 and 1: NaN, inf and every other value leave it nonzero.
            if x.dtype != torch.bool and bool((x * (1 - x)).any()):
                if x.is_floating_point() and not bool(torch.isfinite(x).all()):
                    raise ValueError(f"{name}: expected 0/1 values; got NaN or inf{_where(x, ~torch.isfinite(x))}")
                bad = (x != 0) & (x != 1)
                raise ValueError(f"{name}: expected 0/1 values; got {x[bad].flatten()[0].item()!r}{_where(x, bad)}")
            return x.to(device=device, dtype=dtype)
        flat = x.reshape(-1, self.n)
        if flat.is_floating_point():
            bad = torch.isnan(flat)
            if bool(bad.any()):
                raise ValueError(f"{name}: missing value (NaN){_where(flat, bad)}; use observed= masks to condition")
            bad = torch.isinf(flat)
            if bool(bad.any()):
                raise ValueError(f"{name}: expected finite values; got inf{_where(flat, bad)}")
        for j, col in enumerate(self.list):
            v = flat[:, j]
            if col.kind == "binary":
                bad = (v != 0) & (v != 1)
                what = "0/1"
            elif col.kind == "categorical":
                bad = (v != torch.round(v.double()).to(v.dtype)) | (v < 0) | (v > col.levels - 1)
                what = f"an integer code in 0..{col.levels - 1}"
            else:
                continue
            if bool(bad.any()):
                row = int(bad.nonzero()[0, 0])
                raise ValueError(f"{name}: row {row}, column {j}: expected {what}; got {v[row].item()!r}")
        return x.to(device=device, dtype=dtype)

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        """Real columns as ``(x - loc) / scale``; the others unchanged."""
        if self.loc is None:
            return x
        real = torch.zeros(self.n, dtype=torch.bool, device=x.device)
        real[torch.as_tensor(self.real_idx, device=x.device)] = True
        return torch.where(real, (x - self.loc.to(x.dtype)) / self.scale.to(x.dtype), x)

    def unstandardize_column(self, j: int, z: torch.Tensor) -> torch.Tensor:
        if self.loc is None or self.list[j].kind != "real":
            return z
        return z * self.scale[j].to(z.dtype) + self.loc[j].to(z.dtype)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The networks' input ``(..., input_width)``: categorical one-hot, real standardized."""
        if self.all_binary:
            return x
        x = self.standardize(x)
        if not self.cat_groups:  # one input per column: every real column clipped at once
            if self.lo is None:
                return x
            return torch.minimum(torch.maximum(x, self.lo.to(x.dtype)), self.hi.to(x.dtype))
        parts = [self.encode_column(j, x[..., j]) for j in range(self.n)]
        return torch.cat(parts, dim=-1)

    def encode_column(self, j: int, v: torch.Tensor, standardized: bool = True) -> torch.Tensor:
        """Column ``j``'s values ``(...)`` as its encoded inputs ``(..., width)`` (a real column
        standardized unless ``standardized`` says it is already, then clipped to the input range;
        NaN stays NaN)."""
        col = self.list[j]
        if col.kind == "categorical":
            return F.one_hot(v.long(), col.levels).to(v.dtype)
        if col.kind == "real" and not standardized and self.loc is not None:
            v = (v - self.loc[j].to(v.dtype)) / self.scale[j].to(v.dtype)
        if col.kind == "real" and self.lo is not None:
            v = torch.minimum(torch.maximum(v, self.lo[j].to(v.dtype)), self.hi[j].to(v.dtype))
        return v.unsqueeze(-1)

    # -- densities ------------------------------------------------------------------------
    def column_log_probs(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``log p(x_j | parameters of column j)`` for every column, ``(..., n)``, in the data's
        units (real columns: a density of ``x``, the standardization's log-Jacobian included)."""
        if self.all_binary:
            return -F.binary_cross_entropy_with_logits(params, x, reduction="none")
        out = []
        order = []
        if len(self.binary_idx):
            idx = torch.as_tensor(self.param_offsets[self.binary_idx], device=params.device)
            xb = x[..., torch.as_tensor(self.binary_idx, device=x.device)]
            out.append(-F.binary_cross_entropy_with_logits(params[..., idx], xb, reduction="none"))
            order.append(self.binary_idx)
        for k, cols in self.cat_groups.items():
            logits = self._group_params(params, cols, k)  # (..., m, K)
            codes = self._take(x, cols).long()
            out.append(logits.log_softmax(-1).gather(-1, codes.unsqueeze(-1)).squeeze(-1))
            order.append(cols)
        for c, cols in self.real_groups.items():
            block = self._group_params(params, cols, 3 * c)  # (..., m, 3C)
            loc, scale = self._take(self.loc, cols).to(x.dtype), self._take(self.scale, cols).to(x.dtype)
            lp = mixture_log_prob(block, (self._take(x, cols) - loc) / scale, self.min_scale)
            out.append(lp - scale.log())
            order.append(cols)
        if len(out) == 1 and len(order[0]) == self.n:  # one group of every column, in order
            return out[0]
        joined = torch.cat(out, dim=-1)
        inverse = torch.as_tensor(np.argsort(np.concatenate(order), kind="stable"), device=joined.device)
        return joined[..., inverse]

    def _take(self, t: torch.Tensor, cols: np.ndarray) -> torch.Tensor:
        """``t[..., cols]``: a view where ``cols`` is every column in order (no copy)."""
        if len(cols) == self.n:  # groups list their columns in increasing order
            return t
        return t[..., torch.as_tensor(cols, device=t.device)]

    def log_jacobian(self) -> float:
        """``-sum log scale`` over the real columns: log p(x) = log p(z) + this."""
        if self.scale is None:
            return 0.0
        return float(-self.scale[torch.as_tensor(self.real_idx)].double().log().sum())

    def _group_params(self, params: torch.Tensor, cols: np.ndarray, width: int) -> torch.Tensor:
        """The blocks of columns ``cols`` (each ``width`` wide) as ``(..., len(cols), width)``:
        a view where the blocks are adjacent, else a gather."""
        starts = self.param_offsets[cols]
        if np.array_equal(starts, starts[0] + width * np.arange(len(cols))):
            lo = int(starts[0])
            return params[..., lo : lo + width * len(cols)].unflatten(-1, (len(cols), width))
        idx = torch.as_tensor((starts[:, None] + np.arange(width)[None, :]).reshape(-1), device=params.device)
        return params[..., idx].reshape(*params.shape[:-1], len(cols), width)

    # -- sampling ---------------------------------------------------------------------------
    @property
    def uniforms_per_column(self) -> int:
        """Uniforms a column's draw consumes (the widest head's need, for a rectangular layout)."""
        return 2 if len(self.real_idx) else 1

    def sample_column(self, j: int, params: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Column ``j`` drawn from its parameters ``(B, P_j)`` with uniforms ``(B, U)``, in the
        data's units (real columns un-standardized)."""
        col = self.list[j]
        if col.kind == "binary":
            return (u[:, 0] < torch.sigmoid(params[:, 0])).to(params.dtype)
        if col.kind == "categorical":
            return _inverse_cdf(params.softmax(-1), u[:, 0]).to(params.dtype)
        z = mixture_sample(params, u[:, 0], u[:, 1], self.min_scale)
        return self.unstandardize_column(j, z)

    # -- initial parameters -------------------------------------------------------------------
    def fit_standardization(self, train: np.ndarray) -> None:
        """Set the real columns' ``loc``/``scale`` to the training mean and population standard
        deviation, and the input range to the training range widened by ``input_margin``; a
        constant real column is an error naming it."""
        if self.loc is None:
            return
        data = np.asarray(train, dtype=np.float64)
        mean, std = data.mean(0), data.std(0)
        for j in self.real_idx:
            if not std[j] > 0:
                raise ValueError(f"column {j}: a real column is constant in the training data (standard deviation 0)")
        with torch.no_grad():
            self.loc.copy_(torch.as_tensor(np.where(self._real_mask(), mean, 0.0)))
            self.scale.copy_(torch.as_tensor(np.where(self._real_mask(), std, 1.0)))
        self.fit_input_range(data)

    def fit_input_range(self, train: np.ndarray, margin: float | None = None) -> None:
        """Set the input range the networks see (standardized units) to the training rows'
        range widened by ``input_margin`` on each side (after :meth:`fit_standardization`).
        ``margin`` replaces ``input_margin`` when given: a model built without one (a checkpoint
        written before clipping existed) gains the range. Training rows are never clipped, so
        with the model's own training rows the training-time network is unchanged."""
        if margin is not None:
            _check_input_margin(margin)
            if self.loc is not None and self.lo is None:
                self.register_buffer("lo", torch.full_like(self.loc, -math.inf))
                self.register_buffer("hi", torch.full_like(self.loc, math.inf))
            self.input_margin = float(margin) if self.loc is not None else None
        if self.lo is None:
            return
        data = np.asarray(train, dtype=np.float64)
        real = self._real_mask()
        loc, scale = self.loc.double().cpu().numpy(), self.scale.double().cpu().numpy()
        z = (data - loc) / scale
        with torch.no_grad():
            self.lo.copy_(torch.as_tensor(np.where(real, z.min(0) - self.input_margin, -np.inf)))
            self.hi.copy_(torch.as_tensor(np.where(real, z.max(0) + self.input_margin, np.inf)))

    def _real_mask(self) -> np.ndarray:
        mask = np.zeros(self.n, dtype=bool)
        mask[self.real_idx] = True
        return mask

    def initial_params(self, train: np.ndarray, clip: float = 1e-3) -> torch.Tensor:
        """Output biases ``(param_width,)`` that make every head its column's marginal:
        Bernoulli and categorical at the clipped training frequencies, a mixture with equal
        weights and means at evenly spaced quantiles of the (standardized) column."""
        data = np.asarray(train, dtype=np.float64)
        out = np.zeros(self.param_width)
        loc = self.loc.double().numpy() if self.loc is not None else np.zeros(self.n)
        scale = self.scale.double().numpy() if self.scale is not None else np.ones(self.n)
        for j, col in enumerate(self.list):
            s = self.param_slice(j)
            v = data[:, j]
            if col.kind == "binary":
                p = np.clip(v.mean(), clip, 1 - clip)
                out[s] = np.log(p / (1 - p))
            elif col.kind == "categorical":
                freq = np.bincount(v.astype(np.int64), minlength=col.levels)[: col.levels] / max(len(v), 1)
                out[s] = np.log(np.clip(freq, clip, None))
            else:
                z = (v - loc[j]) / scale[j]
                c = col.components
                means = np.quantile(z, (np.arange(c) + 0.5) / c)
                spread = max(float(z.std()) / c, 0.05) if c > 1 else max(float(z.std()), 0.05)
                sd = max(spread - self.min_scale, 1e-3)
                out[s] = np.concatenate([np.zeros(c), means, np.full(c, math.log(sd))])
        return torch.as_tensor(out)


def _check_input_margin(margin: Any) -> None:
    """``None`` or a finite non-negative number, else a one-line ``ValueError`` naming it."""
    if margin is not None and (
        isinstance(margin, bool) or not isinstance(margin, (int, float)) or not (math.isfinite(margin) and margin >= 0)
    ):
        raise ValueError(f"input_margin: expected a non-negative number or None; got {margin!r}")


def mixture_log_prob(block: torch.Tensor, z: torch.Tensor, min_scale: float) -> torch.Tensor:
    """``log sum_c w_c N(z; mu_c, sigma_c)`` for blocks ``(..., 3C)`` and values ``(...)``."""
    c = block.shape[-1] // 3
    logits, means, raw = block[..., :c], block[..., c : 2 * c], block[..., 2 * c :]
    sigma = raw.clamp(max=MAX_LOG_SCALE).exp() + min_scale
    t = (z.unsqueeze(-1) - means) / sigma
    comp = torch.addcmul(logits - sigma.log(), t, t, value=-0.5)  # log w_c + log N(z; mu_c, sigma_c) + const
    return torch.logsumexp(comp, dim=-1) - torch.logsumexp(logits, dim=-1) - LOG_SQRT_2PI


def mixture_cdf(block: torch.Tensor, z: torch.Tensor, min_scale: float) -> torch.Tensor:
    """The mixture's CDF at ``z`` (for Kolmogorov-Smirnov tests)."""
    c = block.shape[-1] // 3
    logits, means, raw = block[..., :c], block[..., c : 2 * c], block[..., 2 * c :]
    sigma = min_scale + raw.clamp(max=MAX_LOG_SCALE).exp()
    phi = 0.5 * (1 + torch.erf((z.unsqueeze(-1) - means) / (sigma * math.sqrt(2))))
    return (logits.softmax(-1) * phi).sum(-1)


def mixture_sample(block: torch.Tensor, u_comp: torch.Tensor, u_value: torch.Tensor, min_scale: float) -> torch.Tensor:
    """Draws ``(B,)`` from mixture blocks ``(B, 3C)``: the component by the inverse CDF of
    ``u_comp``, the value by the Gaussian inverse CDF of ``u_value``."""
    c = block.shape[-1] // 3
    logits, means, raw = block[..., :c], block[..., c : 2 * c], block[..., 2 * c :]
    k = _inverse_cdf(logits.softmax(-1), u_comp).unsqueeze(-1)
    eps = torch.finfo(block.dtype).eps
    normal = math.sqrt(2) * torch.erfinv(2 * u_value.clamp(eps, 1 - eps) - 1)
    return (
        means.gather(-1, k).squeeze(-1)
        + (min_scale + raw.gather(-1, k).squeeze(-1).clamp(max=MAX_LOG_SCALE).exp()) * normal
    )


def _inverse_cdf(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The index ``k`` with ``cdf[k-1] <= u < cdf[k]`` (the last index for round-off)."""
    cdf = probs.cumsum(-1)
    return (cdf <= u.unsqueeze(-1)).sum(-1).clamp(max=probs.shape[-1] - 1)


def _groups(cols: Sequence[Column], kind: str, attr: str) -> dict[int, np.ndarray]:
    groups: dict[int, list[int]] = {}
    for j, c in enumerate(cols):
        if c.kind == kind:
            groups.setdefault(int(getattr(c, attr)), []).append(j)
    return {k: np.array(v, dtype=np.int64) for k, v in groups.items()}


def _is_int(x: torch.Tensor) -> bool:
    return not x.is_floating_point() and not x.is_complex() and x.dtype != torch.bool


def _where(x: torch.Tensor, bad: torch.Tensor) -> str:
    pos = bad.reshape(-1, x.shape[-1]).nonzero()
    return f" at row {int(pos[0, 0])}, column {int(pos[0, 1])}" if len(pos) else ""
