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

__all__ = ["AVAILABLE", "NADELogProb", "sample"]

try:
    if os.environ.get("ARDENS_NUMBA", "1") == "0":
        raise ImportError("disabled by ARDENS_NUMBA=0")
    import numba
    from numba import njit, prange

    if "NUMBA_THREADING_LAYER" not in os.environ:
        # numba's OpenMP layer brings a second OpenMP runtime beside torch's; their spinning
        # workers fight over the cores and slow torch's own ops by 10x or more on 2 cores.
        numba.config.THREADING_LAYER = "workqueue"
    AVAILABLE = True
except ImportError:  # pragma: no cover - exercised where numba is absent
    AVAILABLE = False

SIGMOID, RELU = 0, 1


def _act_code(act: str) -> int:
    return SIGMOID if act == "sigmoid" else RELU


if AVAILABLE:
    # Reassociation lets dot products vectorize; NaN/inf semantics are kept (no nnan/ninf).
    _FAST = {"reassoc", "contract", "nsz", "arcp"}
    _jit = njit(fastmath=_FAST, cache=True, nogil=True)
    _pjit = njit(fastmath=_FAST, cache=True, nogil=True, parallel=True)

    @_jit
    def _activate(a, h, act):
        if act == SIGMOID:
            for j in range(a.shape[0]):
                h[j] = 1.0 / (1.0 + math.exp(-a[j]))
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

    @_pjit
    def _log_prob_kernel(x, WT, bias, V, c, act, out, logits):
        B, n = x.shape
        d = WT.shape[1]
        for i in prange(B):
            a = bias.copy()
            h = np.empty(d, dtype=WT.dtype)
            _activate(a, h, act)
            ll = 0.0
            for k in range(n):
                z = c[k] + _dot(V[k], h)
                logits[i, k] = z
                ll += x[i, k] * z - _softplus(z)
                if x[i, k] != 0.0:
                    for j in range(d):
                        a[j] += WT[k, j]
                    _activate(a, h, act)
            out[i] = ll

    @_pjit
    def _grad_kernel(x, w, logits, WT, bias, V, act, dWT, db, dV, dc):
        """Accumulate ``sum_i w_i d log p(x_i)`` into per-chunk buffers ``dWT[t]`` etc.

        ``logits`` are the forward pass's; hidden states are recomputed once per segment.
        """
        B, n = x.shape
        d = WT.shape[1]
        chunks = dWT.shape[0]
        for t in prange(chunks):
            for i in range(t * B // chunks, (t + 1) * B // chunks):
                ones = 0
                for k in range(n):
                    if x[i, k] != 0.0:
                        ones += 1
                H = np.empty((ones + 1, d), dtype=WT.dtype)  # hidden state of each segment
                dH = np.zeros((ones + 1, d), dtype=WT.dtype)  # its accumulated gradient
                starts = np.empty(ones + 1, dtype=np.int64)  # the input whose 1 began it
                a = bias.copy()
                _activate(a, H[0], act)
                starts[0] = -1
                seg = 0
                for k in range(n):
                    h = H[seg]
                    g = w[i] * (x[i, k] - 1.0 / (1.0 + math.exp(-logits[i, k])))
                    dc[t, k] += g
                    dh = dH[seg]
                    for j in range(d):
                        dV[t, k, j] += g * h[j]
                        dh[j] += g * V[k, j]
                    if x[i, k] != 0.0:
                        for j in range(d):
                            a[j] += WT[k, j]
                        seg += 1
                        starts[seg] = k
                        _activate(a, H[seg], act)
                suffix = np.zeros(d, dtype=WT.dtype)
                for s in range(ones, -1, -1):
                    h = H[s]
                    dh = dH[s]
                    if act == SIGMOID:
                        for j in range(d):
                            suffix[j] += dh[j] * h[j] * (1.0 - h[j])
                    else:
                        for j in range(d):
                            if h[j] > 0.0:
                                suffix[j] += dh[j]
                    if s > 0:
                        k0 = starts[s]
                        for j in range(d):
                            dWT[t, k0, j] += suffix[j]
                for j in range(d):
                    db[t, j] += suffix[j]

    @_pjit
    def _sample_kernel(u, WT, bias, V, c, act, x):
        B, n = u.shape
        d = WT.shape[1]
        for i in prange(B):
            a = bias.copy()
            h = np.empty(d, dtype=WT.dtype)
            _activate(a, h, act)
            for k in range(n):
                z = c[k] + _dot(V[k], h)
                if u[i, k] < 1.0 / (1.0 + math.exp(-z)):
                    x[i, k] = 1.0
                    for j in range(d):
                        a[j] += WT[k, j]
                    _activate(a, h, act)
                else:
                    x[i, k] = 0.0


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


class NADELogProb(torch.autograd.Function):
    """``log p(x)`` with the analytic backward, on the CPU."""

    @staticmethod
    def forward(ctx, xo, WT, b, V, c, act):  # type: ignore[override]
        dtype = WT.dtype
        xo = xo.to(dtype)
        out = np.empty(xo.shape[0], dtype=_np(WT).dtype)
        logits = np.empty(tuple(xo.shape), dtype=out.dtype)
        _log_prob_kernel(_np(xo), _np(WT), _np(b), _np(V), _np(c), _act_code(act), out, logits)
        ctx.act = act
        ctx.save_for_backward(xo, WT, b, V, torch.from_numpy(logits))
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, grad_ll):  # type: ignore[override]
        xo, WT, b, V, logits = ctx.saved_tensors
        n, d = WT.shape
        chunks = max(1, min(numba.get_num_threads(), xo.shape[0]))
        np_dtype = _np(WT).dtype
        dWT = np.zeros((chunks, n, d), dtype=np_dtype)
        dV = np.zeros((chunks, n, d), dtype=np_dtype)
        db = np.zeros((chunks, d), dtype=np_dtype)
        dc = np.zeros((chunks, n), dtype=np_dtype)
        w = _np(grad_ll.to(WT.dtype))
        _grad_kernel(_np(xo), w, _np(logits), _np(WT), _np(b), _np(V), _act_code(ctx.act), dWT, db, dV, dc)
        grads = [torch.from_numpy(g.sum(0)) for g in (dWT, db, dV, dc)]
        return None, *grads, None


def sample(
    uo: torch.Tensor, WT: torch.Tensor, b: torch.Tensor, V: torch.Tensor, c: torch.Tensor, act: str
) -> torch.Tensor:
    """Ancestral samples in generation order: ``x_k = [u_k < p(x_k = 1 | x_<k)]``."""
    x = np.empty(tuple(uo.shape), dtype=_np(WT).dtype)
    _sample_kernel(_np(uo.to(WT.dtype)), _np(WT), _np(b), _np(V), _np(c), _act_code(act), x)
    return torch.from_numpy(x)
