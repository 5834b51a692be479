"""NADE kernels for the CPU, compiled with numba (optional: without it, torch is used).

Per example, in generation order, the hidden state changes only after an input equal to 1
(``a_{k+1} = a_k + W[:, o_k] x_ok``), so the activation is recomputed once per 1 and not
once per dimension; the rest is two or three length-``d`` dot products per dimension.
Chunks of examples run in parallel on torch's own CPU threads (``_openmp.run_chunks``), each
with its own gradient accumulators, so memory is O(threads * n * d) for gradients plus
O(TILE * d) per thread, never O(B * n * d). The kernels themselves are serial: numba's
thread pool is not used.

Set ``ARDENS_NUMBA=0`` to turn these kernels off.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch

from ._openmp import run_on_bounds, split_rows

__all__ = ["AVAILABLE", "NADELogProb", "handles", "sample"]

try:
    if os.environ.get("ARDENS_NUMBA", "1") == "0":
        raise ImportError("disabled by ARDENS_NUMBA=0")
    from llvmlite import ir
    from numba import njit, types
    from numba.extending import intrinsic, overload

    AVAILABLE = True
except ImportError:  # pragma: no cover - exercised where numba is absent
    AVAILABLE = False

SIGMOID, RELU = 0, 1
TILE = 8  # examples processed together, so each row of V is read once per tile


def handles(t: torch.Tensor) -> bool:
    """Whether the numba kernels apply to tensors like ``t``: numba present, CPU, float32/64."""
    return AVAILABLE and t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64)


def _act_code(act: str) -> int:
    return SIGMOID if act == "sigmoid" else RELU


if AVAILABLE:
    # Reassociation lets dot products vectorize; NaN/inf semantics are kept (no nnan/ninf).
    # error_model="numpy": no ZeroDivisionError branches, which would stop vectorization.
    _FAST = {"reassoc", "contract", "nsz", "arcp"}
    KERNEL_OPTIONS = dict(fastmath=_FAST, cache=True, nogil=True, error_model="numpy")
    _jit = njit(**KERNEL_OPTIONS)

    @intrinsic
    def _bits_to_float(typingctx, bits):
        """Reinterpret an int64 as the float64 with the same bits."""

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.DoubleType())

        return types.float64(types.int64), codegen

    @intrinsic
    def _bits_to_float32(typingctx, bits):
        """Reinterpret an int32 as the float32 with the same bits."""

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.FloatType())

        return types.float32(types.int32), codegen

    _LOG2E = 1.4426950408889634
    _LN2_HI = 6.93147180369123816490e-01  # ln 2 split in two for an exact range reduction
    _LN2_LO = 1.90821492927058770002e-10

    @njit(inline="always", **KERNEL_OPTIONS)
    def exp_vectorizable(x):
        """``exp(x)`` to about 1 ulp in float64, in operations a loop can vectorize.

        ``exp(x) = 2^n exp(r)`` with ``n = round(x / ln 2)``, ``|r| <= ln(2) / 2`` and
        ``exp(r)`` by its Taylor series to degree 12 (truncation error below 2e-16);
        ``2^n`` is built from its bits. libm's scalar ``exp`` is several times slower here,
        and the sigmoid of the hidden units is most of NADE's cost on the CPU.
        """
        y = min(max(x, -708.0), 708.0)
        n = math.floor(y * _LOG2E + 0.5)
        r = (y - n * _LN2_HI) - n * _LN2_LO
        p = 1.0 + r * (
            1.0
            + r
            * (
                1 / 2
                + r
                * (
                    1 / 6
                    + r
                    * (
                        1 / 24
                        + r
                        * (
                            1 / 120
                            + r
                            * (
                                1 / 720
                                + r
                                * (
                                    1 / 5040
                                    + r
                                    * (
                                        1 / 40320
                                        + r * (1 / 362880 + r * (1 / 3628800 + r * (1 / 39916800 + r / 479001600)))
                                    )
                                )
                            )
                        )
                    )
                )
            )
        )
        out = p * _bits_to_float((np.int64(n) + 1023) << 52)
        return out if x == x else x  # NaN stays NaN

    _F32 = np.float32
    _LOG2E_32 = _F32(_LOG2E)
    _LN2_HI_32 = _F32(0.693359375)  # 9 significant bits: n * _LN2_HI_32 is exact for |n| < 2^15
    _LN2_LO_32 = _F32(math.log(2.0) - 0.693359375)
    _ONE_32, _HALF_32, _CLAMP_32 = _F32(1.0), _F32(0.5), _F32(87.0)
    _TAYLOR_32 = tuple(_F32(1.0 / math.factorial(k)) for k in range(2, 8))

    @njit(inline="always", **KERNEL_OPTIONS)
    def exp_vectorizable32(x):
        """``exp(x)`` in float32 to a few ulp, in float32 operations only (8 lanes on AVX2).

        The same reduction as :func:`exp_vectorizable`, with ``exp(r)`` by its Taylor series
        to degree 7 (truncation error below 6e-9 for ``|r| <= ln(2) / 2``, under float32's
        epsilon); ``x`` is clamped to [-87, 87], where ``2^n`` is a normal float32.
        """
        y = min(max(x, -_CLAMP_32), _CLAMP_32)
        n = np.floor(y * _LOG2E_32 + _HALF_32)
        r = (y - n * _LN2_HI_32) - n * _LN2_LO_32
        c2, c3, c4, c5, c6, c7 = _TAYLOR_32
        p = _ONE_32 + r * (_ONE_32 + r * (c2 + r * (c3 + r * (c4 + r * (c5 + r * (c6 + r * c7))))))
        out = p * _bits_to_float32((np.int32(n) + np.int32(127)) << np.int32(23))
        return out if x == x else x  # NaN stays NaN

    def _sigmoid_into(a, h):
        """``h = sigmoid(a)`` elementwise, in ``a``'s precision (the overload picks it)."""

    @overload(_sigmoid_into, jit_options=KERNEL_OPTIONS)
    def _sigmoid_into_impl(a, h):
        if a.dtype == types.float32:

            def impl32(a, h):
                for j in range(a.shape[0]):
                    h[j] = _ONE_32 / (_ONE_32 + exp_vectorizable32(-a[j]))

            return impl32

        def impl64(a, h):
            for j in range(a.shape[0]):
                h[j] = 1.0 / (1.0 + exp_vectorizable(-a[j]))

        return impl64

    @_jit
    def _activate(a, h, act):
        if act == SIGMOID:
            _sigmoid_into(a, h)
        else:
            for j in range(a.shape[0]):
                h[j] = a[j] if a[j] > 0.0 else 0.0

    @_jit
    def _softplus(z):
        return max(z, 0.0) + math.log1p(math.exp(-abs(z)))

    @_jit
    def _dot(u, v):
        s = 0.0
        for j in range(u.shape[0]):
            s += u[j] * v[j]
        return s

    @_jit
    def _activation_slope(h, act, j):
        """act'(a) from h = act(a): h (1 - h) for the sigmoid, [h > 0] for ReLU."""
        if act == SIGMOID:
            return h[j] * (1.0 - h[j])
        return 1.0 if h[j] > 0.0 else 0.0

    @_jit
    def _log_prob_kernel(x, order, WT, bias, V, c, act, out, logits, rows_lo, rows_hi):
        """``out[i] = log p(x_i)``; ``logits[i, j]`` of every conditional (position ``j``),
        for the rows ``rows_lo <= i < rows_hi``.

        Inputs are visited in ``order``. Examples go in tiles of ``TILE``: each row of
        ``V`` is read once per tile.
        """
        n = x.shape[1]
        d = WT.shape[1]
        A = np.empty((TILE, d), dtype=WT.dtype)
        H = np.empty((TILE, d), dtype=WT.dtype)
        for lo in range(rows_lo, rows_hi, TILE):
            hi = min(rows_hi, lo + TILE)
            for e in range(hi - lo):
                A[e] = bias
                _activate(A[e], H[e], act)
                out[lo + e] = 0.0
            for k in range(n):
                o = order[k]
                Vo = V[o]
                for e in range(hi - lo):
                    i = lo + e
                    z = c[o] + _dot(Vo, H[e])
                    logits[i, o] = z
                    out[i] += x[i, o] * z - _softplus(z)
                    if x[i, o] != 0.0:
                        a = A[e]
                        for j in range(d):
                            a[j] += WT[o, j]
                        _activate(a, H[e], act)

    @_jit
    def _grad_kernel(x, order, w, logits, WT, bias, V, act, dWTt, dVt, dct, total, rows_lo, rows_hi):
        """Accumulate ``sum_i w_i d log p(x_i)`` over the rows ``rows_lo <= i < rows_hi`` into
        one thread's buffers ``dWTt``, ``dVt``, ``dct``, in one forward sweep.

        With ``dA_s`` the pre-activation gradient of the segment of dimensions sharing a
        hidden state (segments end after each 1), ``d W[:, j] = x_j (T - P_j)``, where
        ``P_j`` sums ``dA`` up to the segment ending at ``j`` and ``T`` sums all of them.
        The sweep accumulates ``-P_j`` into ``dWT`` and returns each example's ``T`` in
        ``total``; the caller adds ``X^T T`` (one matmul) and ``db = sum_i T_i``.
        ``logits`` are the forward pass's; hidden states are recomputed once per 1.

        A tile's ``TILE`` examples update a row of ``dV`` together (one load and store of the
        row per tile, the tile unrolled into registers); a short last tile is padded with
        zero weights ``G`` and zero hidden states, which add exact zeros.
        """
        n = x.shape[1]
        d = WT.shape[1]
        A = np.empty((TILE, d), dtype=WT.dtype)
        H = np.zeros((TILE, d), dtype=WT.dtype)
        DH = np.empty((TILE, d), dtype=WT.dtype)  # gradient of the current hidden state
        P = np.empty((TILE, d), dtype=WT.dtype)  # sum of finished segments' dA
        G = np.empty(TILE, dtype=WT.dtype)  # each example's d log p / d logit, times w
        for lo in range(rows_lo, rows_hi, TILE):
            m = min(TILE, rows_hi - lo)
            G[:] = 0.0
            H[m:] = 0.0  # a short tile's padding: zero weights times zero states
            for e in range(m):
                A[e] = bias
                _activate(A[e], H[e], act)
                DH[e] = 0.0
                P[e] = 0.0
            for k in range(n):
                o = order[k]
                Vk, dVk = V[o], dVt[o]
                for e in range(m):
                    i = lo + e
                    g = w[i] * (x[i, o] - 1.0 / (1.0 + math.exp(-logits[i, o])))
                    G[e] = g
                    dct[o] += g
                for j in range(d):
                    s = dVk[j]
                    for e in range(TILE):
                        s += G[e] * H[e, j]
                    dVk[j] = s
                for e in range(m):
                    g, dh = G[e], DH[e]
                    for j in range(d):
                        dh[j] += g * Vk[j]
                for e in range(m):
                    if x[lo + e, o] != 0.0:
                        dh = DH[e]
                        h, a, p = H[e], A[e], P[e]
                        for j in range(d):
                            p[j] += dh[j] * _activation_slope(h, act, j)
                            dWTt[o, j] -= p[j]
                            a[j] += WT[o, j]
                            dh[j] = 0.0
                        _activate(a, h, act)
            for e in range(m):
                h, dh, p = H[e], DH[e], P[e]
                for j in range(d):
                    total[lo + e, j] = p[j] + dh[j] * _activation_slope(h, act, j)

    @_jit
    def _sample_kernel(u, order, WT, bias, V, c, act, given, x, rows_lo, rows_hi):
        n = u.shape[1]
        d = WT.shape[1]
        for i in range(rows_lo, rows_hi):
            a = bias.copy()
            h = np.empty(d, dtype=WT.dtype)
            _activate(a, h, act)
            for k in range(n):
                o = order[k]
                g = given[i, o]
                if g == g:  # a given value (not NaN) is kept, not drawn
                    one = g == 1.0
                else:
                    one = u[i, o] < 1.0 / (1.0 + math.exp(-(c[o] + _dot(V[o], h))))
                if one:
                    x[i, o] = 1.0
                    for j in range(d):
                        a[j] += WT[o, j]
                    _activate(a, h, act)
                else:
                    x[i, o] = 0.0


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


class NADELogProb(torch.autograd.Function):
    """``log p(x)`` with the analytic backward, on the CPU, in input-position coordinates.

    ``WT`` is ``W.t()`` (n, d), contiguous; ``order`` a CPU int64 tensor.
    """

    @staticmethod
    def forward(ctx, x, order, WT, b, V, c, act):  # type: ignore[override]
        x = x.to(WT.dtype).contiguous()
        out = np.empty(x.shape[0], dtype=_np(WT).dtype)
        logits = np.empty(tuple(x.shape), dtype=out.dtype)
        args = (_np(x), _np(order), _np(WT), _np(b), _np(V), _np(c), _act_code(act), out, logits)
        run_on_bounds(lambda t, lo, hi: _log_prob_kernel(*args, lo, hi), split_rows(x.shape[0], min_rows=TILE))
        ctx.act = act
        ctx.save_for_backward(x, order, WT, b, V, torch.from_numpy(logits))
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, grad_ll):  # type: ignore[override]
        x, order, WT, b, V, logits = ctx.saved_tensors
        n, d = WT.shape
        bounds = split_rows(x.shape[0], min_rows=TILE)
        chunks = len(bounds) - 1
        # one set of gradient buffers per chunk, summed into the first afterwards
        dWT = WT.new_zeros((chunks, n, d))
        dV = WT.new_zeros((chunks, n, d))
        dc = WT.new_zeros((chunks, n))
        T = WT.new_empty((x.shape[0], d))
        w = _np(grad_ll.to(WT.dtype))
        args = (_np(x), _np(order), w, _np(logits), _np(WT), _np(b), _np(V), _act_code(ctx.act))
        dWTn, dVn, dcn, Tn = dWT.numpy(), dV.numpy(), dc.numpy(), T.numpy()
        run_on_bounds(lambda t, lo, hi: _grad_kernel(*args, dWTn[t], dVn[t], dcn[t], Tn, lo, hi), bounds)
        for t in range(1, chunks):
            dWT[0] += dWT[t]
            dV[0] += dV[t]
            dc[0] += dc[t]
        return None, None, dWT[0].addmm_(x.t(), T), T.sum(0), dV[0], dc[0], None


def sample(
    u: torch.Tensor,
    order: torch.Tensor,
    WT: torch.Tensor,
    b: torch.Tensor,
    V: torch.Tensor,
    c: torch.Tensor,
    act: str,
    given: torch.Tensor | None = None,
) -> torch.Tensor:
    """Ancestral samples ``x[:, j] = [u[:, j] < p(x_j = 1 | earlier inputs)]``, visiting ``order``;
    where ``given`` (``u``'s shape) is not NaN, ``x`` takes its value instead of a draw."""
    x = np.empty(tuple(u.shape), dtype=_np(WT).dtype)
    g = np.full(x.shape, np.nan, dtype=x.dtype) if given is None else _np(given.to(WT.dtype))
    args = (_np(u.to(WT.dtype)), _np(order), _np(WT), _np(b), _np(V), _np(c), _act_code(act), g, x)
    run_on_bounds(lambda t, lo, hi: _sample_kernel(*args, lo, hi), split_rows(x.shape[0]))
    return torch.from_numpy(x)
