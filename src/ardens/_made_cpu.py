"""MADE sampling on the CPU, compiled with numba (optional: without it, torch is used).

One sample at a time, in the member's ordering, with running pre-activations for every
layer and for the outputs. After input ``k`` (degree ``k + 1``) is drawn, its weights are
added to the first layer's pre-activations (only if it is 1), and each hidden unit of
degree ``k + 1`` is finalized and pushed into the layer above (only if it is nonzero).
Masked weights guarantee that a pre-activation is complete when its unit is finalized,
and that output ``k`` has received every unit it depends on when it is read. Total work
per sample is one forward pass, with the zeros of ``x`` and of ReLU units skipped, and the
masked zeros of every weight row: units are sorted by degree, so a row's nonzeros are a
suffix of it (a unit of degree m feeds the units above of degree >= m, outputs of degree > m).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._nade_cpu import AVAILABLE
from ._openmp import run_on_bounds, split_rows

__all__ = ["AVAILABLE", "sample_member"]

TILE = 16  # samples drawn together

if AVAILABLE:
    from numba import njit

    from ._nade_cpu import KERNEL_OPTIONS

    @njit(**KERNEL_OPTIONS)
    def _sample_kernel(u, order, mats, biases, ends, direct, has_direct, relu, given, x, rows_lo, rows_hi):
        """Samples ``rows_lo <= i < rows_hi``, in tiles of ``TILE``: all samples of a member
        finalize the same units at the same step, so each weight row is read once per tile,
        not once per sample. ``u``, ``given`` and ``x`` are in column order; step ``k`` draws
        column ``order[k]``."""
        n = u.shape[1]
        L = len(mats) - 1
        first = mats[0]
        for lo in range(rows_lo, rows_hi, TILE):
            hi = min(rows_hi, lo + TILE)
            pres = [np.empty((hi - lo, biases[j].shape[0]), dtype=biases[j].dtype) for j in range(L + 1)]
            for j in range(L + 1):
                for e in range(hi - lo):
                    pres[j][e] = biases[j]
            out = pres[L]
            for k in range(n):
                for e in range(hi - lo):
                    i = lo + e
                    col = order[k]
                    g = given[i, col]
                    if (g == 1.0) if g == g else (u[i, col] < 1.0 / (1.0 + math.exp(-out[e, k]))):
                        x[i, col] = 1.0
                        # input k (degree k + 1) feeds the units of degree >= k + 1 and the
                        # outputs after it: the masked zeros before them are skipped (as views:
                        # a loop from a variable start compiles 2x slower than one over a view)
                        s0 = k + 1 if L == 0 else ends[0, k]  # no hidden layer: it feeds the outputs
                        target, src = pres[0][e][s0:], first[k][s0:]
                        for v in range(target.shape[0]):
                            target[v] += src[v]
                        if has_direct:
                            dout, dsrc = out[e][k + 1 :], direct[k][k + 1 :]
                            for v in range(dout.shape[0]):
                                dout[v] += dsrc[v]
                    else:
                        x[i, col] = 0.0
                for layer in range(L):
                    below, above, w = pres[layer], pres[layer + 1], mats[layer + 1]
                    # a unit of degree k + 1 feeds the units above of degree >= k + 1 (outputs:
                    # those after output k); the units above are sorted by degree
                    start = k + 1 if layer == L - 1 else ends[layer + 1, k]
                    for unit in range(ends[layer, k], ends[layer, k + 1]):
                        row = w[unit][start:]
                        for e in range(hi - lo):
                            a = below[e, unit]
                            h = (a if a > 0.0 else 0.0) if relu else 1.0 / (1.0 + math.exp(-a))
                            if h != 0.0:
                                dest = above[e][start:]
                                for v in range(dest.shape[0]):
                                    dest[v] += row[v] * h


def sample_member(model, u: torch.Tensor, i: int, given: torch.Tensor | None = None) -> torch.Tensor:
    """Samples ``(B, n)`` of member ``i`` of ``model`` (an all-binary MADE); where ``given``
    (``u``'s shape) is not NaN, the sample takes its value instead of a draw (with the given
    entries a prefix of the member's ordering: conditional samples)."""
    order, mats, biases, ends, direct = _prepared(model, i)
    un = np.ascontiguousarray(u.numpy())
    if given is None:
        gn = np.full(un.shape, np.nan, dtype=un.dtype)
    else:
        gn = np.ascontiguousarray(given.to(u.dtype).numpy())
    xn = np.empty_like(un)
    relu = model.activation == "relu"
    args = (un, order, mats, biases, ends, direct, model.direct_layer is not None, relu, gn, xn)
    bounds = split_rows(un.shape[0], min_rows=TILE)
    run_on_bounds(lambda t, lo, hi: _sample_kernel(*args, lo, hi), bounds)
    return torch.from_numpy(xn).to(model.layers[0].weight.dtype)


CACHE_MAX_ELEMENTS = 20_000_000  # larger models rebuild at every call (the cache would double their memory)


def _prepared(model, i: int) -> tuple:
    """Member ``i``'s masked weights with units sorted by degree.

    Cached for repeated calls (drawing a few samples at a time), and checked against a copy
    of the parameters at every call: an edit through ``.data`` (manual SGD, clipping, EMA)
    leaves no version counter to key on, so only the values themselves can say the cache is
    still right. Reading them costs a fraction of rebuilding; models above
    ``CACHE_MAX_ELEMENTS`` parameters rebuild every time."""
    params = [t.detach() for t in (*model.parameters(), model.degrees)]
    cache = model.__dict__.get("_cpu_sampler_cache")
    if (
        cache is not None
        and cache[0] == i
        and all(a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b) for a, b in zip(cache[1], params))
    ):
        return cache[2]
    prepared = _prepare(model, i)
    if sum(p.numel() for p in params) <= CACHE_MAX_ELEMENTS:
        model.__dict__["_cpu_sampler_cache"] = (i, [p.clone() for p in params], prepared)
    return prepared


def _prepare(model, i: int) -> tuple:
    n = model.n_inputs
    degrees = model.member_degrees(i)
    masks = model.member_masks(i)
    order = np.argsort(degrees[0], kind="stable")
    perms = [np.argsort(d, kind="stable") for d in degrees[1:]]
    rows = [order, *perms]  # units feeding each matrix, sorted by degree
    cols = [*perms, order]  # units fed, sorted by degree (outputs in generation order)
    with torch.no_grad():
        mats = tuple(
            np.ascontiguousarray(layer.masked_weight(mask).numpy()[np.ix_(c, r)].T)
            for layer, mask, r, c in zip(model.layers, masks, rows, cols)
        )
        biases = tuple(np.ascontiguousarray(layer.bias.numpy()[c]) for layer, c in zip(model.layers, cols))
        if model.direct_layer is not None:
            direct = np.ascontiguousarray(model.direct_layer.masked_weight(masks[-1]).numpy()[np.ix_(order, order)].T)
        else:
            direct = np.zeros((0, 0), dtype=mats[0].dtype)
    ends = np.array(
        [np.searchsorted(d[p], np.arange(n + 1), side="right") for d, p in zip(degrees[1:], perms)], dtype=np.int64
    ).reshape(len(perms), n + 1)
    return order, mats, biases, ends, direct
