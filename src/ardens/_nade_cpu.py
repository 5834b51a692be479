"""NADE kernels for the CPU, compiled with numba (optional: without it, torch is used).

Per example, in generation order, the hidden state changes only after an input equal to 1
(``a_{k+1} = a_k + W[:, o_k] x_ok``), so the activation is recomputed once per 1 and not
once per dimension; the rest is two or three length-``d`` dot products per dimension.
Examples run in parallel over numba's threads, each with its own gradient accumulators,
so memory is O(threads * n * d) for gradients plus O((ones + 1) * d) per example in flight,
never O(B * n * d).

Set ``ARDENS_NUMBA=0`` to turn these kernels off. numba's ``workqueue`` threading layer is
used unless ``NUMBA_THREADING_LAYER`` says otherwise (see the comment at the import).
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch

__all__ = ["AVAILABLE", "NADELogProb", "handles", "sample"]

try:
    if os.environ.get("ARDENS_NUMBA", "1") == "0":
        raise ImportError("disabled by ARDENS_NUMBA=0")
    import numba
    from llvmlite import ir
    from numba import njit, prange, types
    from numba.extending import intrinsic

    if "NUMBA_THREADING_LAYER" not in os.environ:
        # numba's OpenMP layer brings a second OpenMP runtime beside torch's; their spinning
        # workers fight over the cores and slow torch's own ops by 10x or more on 2 cores.
        numba.config.THREADING_LAYER = "workqueue"
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
    _pjit = njit(parallel=True, **KERNEL_OPTIONS)

    @intrinsic
    def _bits_to_float(typingctx, bits):
        """Reinterpret an int64 as the float64 with the same bits."""

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.DoubleType())

        return types.float64(types.int64), codegen

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

    @_jit
    def _activate(a, h, act):
        if act == SIGMOID:
            for j in range(a.shape[0]):
                h[j] = 1.0 / (1.0 + exp_vectorizable(-a[j]))
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

    @_pjit
    def _log_prob_kernel(x, order, WT, bias, V, c, act, out, logits):
        """``out[i] = log p(x_i)``; ``logits[i, j]`` of every conditional (position ``j``).

        Inputs are visited in ``order``. Examples go in tiles of ``TILE``: each row of
        ``V`` is read once per tile.
        """
        B, n = x.shape
        d = WT.shape[1]
        for t in prange((B + TILE - 1) // TILE):
            lo, hi = t * TILE, min(B, (t + 1) * TILE)
            A = np.empty((hi - lo, d), dtype=WT.dtype)
            H = np.empty((hi - lo, d), dtype=WT.dtype)
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

    @_pjit
    def _grad_kernel(x, order, w, logits, WT, bias, V, act, dWT, dV, dc, total):
        """Accumulate ``sum_i w_i d log p(x_i)`` into per-thread buffers, in one forward sweep.

        With ``dA_s`` the pre-activation gradient of the segment of dimensions sharing a
        hidden state (segments end after each 1), ``d W[:, j] = x_j (T - P_j)``, where
        ``P_j`` sums ``dA`` up to the segment ending at ``j`` and ``T`` sums all of them.
        The sweep accumulates ``-P_j`` into ``dWT`` and returns each example's ``T`` in
        ``total``; the caller adds ``X^T T`` (one matmul) and ``db = sum_i T_i``.
        ``logits`` are the forward pass's; hidden states are recomputed once per 1.
        """
        B, n = x.shape
        d = WT.shape[1]
        chunks = dWT.shape[0]
        for t in prange(chunks):
            A = np.empty((TILE, d), dtype=WT.dtype)
            H = np.empty((TILE, d), dtype=WT.dtype)
            DH = np.empty((TILE, d), dtype=WT.dtype)  # gradient of the current hidden state
            P = np.empty((TILE, d), dtype=WT.dtype)  # sum of finished segments' dA
            dVt, dWTt = dV[t], dWT[t]
            for lo in range(t * B // chunks, (t + 1) * B // chunks, TILE):
                m = min(TILE, (t + 1) * B // chunks - lo)
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
                        dc[t, o] += g
                        h, dh = H[e], DH[e]
                        for j in range(d):
                            dVk[j] += g * h[j]
                            dh[j] += g * Vk[j]
                        if x[i, o] != 0.0:
                            a, p = A[e], P[e]
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

    @_pjit
    def _sample_kernel(u, order, WT, bias, V, c, act, given, x):
        B, n = u.shape
        d = WT.shape[1]
        for i in prange(B):
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
        _log_prob_kernel(_np(x), _np(order), _np(WT), _np(b), _np(V), _np(c), _act_code(act), out, logits)
        ctx.act = act
        ctx.save_for_backward(x, order, WT, b, V, torch.from_numpy(logits))
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, grad_ll):  # type: ignore[override]
        x, order, WT, b, V, logits = ctx.saved_tensors
        n, d = WT.shape
        chunks = max(1, min(numba.get_num_threads(), x.shape[0]))
        np_dtype = _np(WT).dtype
        dWT = np.zeros((chunks, n, d), dtype=np_dtype)
        dV = np.zeros((chunks, n, d), dtype=np_dtype)
        dc = np.zeros((chunks, n), dtype=np_dtype)
        total = np.empty((x.shape[0], d), dtype=np_dtype)
        w = _np(grad_ll.to(WT.dtype))
        args = (_np(x), _np(order), w, _np(logits), _np(WT), _np(b), _np(V), _act_code(ctx.act))
        _grad_kernel(*args, dWT, dV, dc, total)
        T = torch.from_numpy(total)
        dWT = torch.from_numpy(dWT.sum(0)).addmm_(x.t(), T)
        return None, None, dWT, T.sum(0), torch.from_numpy(dV.sum(0)), torch.from_numpy(dc.sum(0)), None


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
    _sample_kernel(_np(u.to(WT.dtype)), _np(order), _np(WT), _np(b), _np(V), _np(c), _act_code(act), g, x)
    return torch.from_numpy(x)
