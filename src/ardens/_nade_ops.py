"""NADE's O(nd) computations.

The public functions take inputs ``x`` (B, n) and parameters ``W`` (d, n), ``b`` (d),
``V`` (n, d), ``c`` (n) in input-position coordinates, and the ordering ``order``.

Two implementations of the same mathematics:

* :class:`_BlockedNADE` (any device): permutes to generation order, then walks the
  inputs in blocks of ``BLOCK`` dimensions. Inside a block the pre-activations are one
  matmul with a triangular mask; between blocks the running sum ``a`` carries over. Its
  backward is analytic (the gradient of ``W[:, j]`` is ``x_j`` times the suffix sum of
  later pre-activation gradients) and recomputes each block from a ``(B, d)``
  checkpoint, so no ``(B, n, d)`` tensor is kept.
* :mod:`ardens._nade_cpu` (CPU, when numba is installed): one example at a time (in
  small tiles), skipping the hidden units' recomputation where ``x_k = 0`` (``h`` does
  not change there), indexing through ``order`` so nothing is permuted or copied.
"""

from __future__ import annotations

import torch

from . import _nade_cpu
from .base import activation_fn, bernoulli_log_prob

__all__ = ["log_prob", "logits", "sample", "BLOCK"]

BLOCK = 32


def _use_cpu_kernel(x: torch.Tensor, W: torch.Tensor) -> bool:
    return _nade_cpu.handles(W) and x.device.type == "cpu" and x.shape[0] > 0


def _ordered(x: torch.Tensor, W, b, V, c, order: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Inputs and parameters permuted to generation order (no copy for the natural order)."""
    if torch.equal(order, torch.arange(len(order), device=order.device)):
        return x, W.t(), b, V, c
    return x[:, order], W.t()[order], b, V[order], c[order]


def log_prob(x: torch.Tensor, W, b, V, c, order: torch.Tensor, act: str) -> torch.Tensor:
    """``log p(x)`` per example, differentiable in the parameters."""
    if _use_cpu_kernel(x, W):
        return _nade_cpu.NADELogProb.apply(x, order.cpu(), W.t().contiguous(), b, V, c, act)
    return _BlockedNADE.apply(*_ordered(x, W, b, V, c, order), act)


def logits(x: torch.Tensor, W, b, V, c, order: torch.Tensor, act: str) -> torch.Tensor:
    """Logits ``(B, n)`` of every conditional, by input position, differentiable through
    autograd in the parameters and in ``x``."""
    z, _ = _blocked_logits(*_ordered(x, W, b, V, c, order), act)
    result = torch.empty_like(z)
    result[:, order] = z
    return result


def _blocked_logits(xo, WT, b, V, c, act: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Logits ``(B, n)`` in generation order, block by block, and each block's starting
    pre-activation ``(B, d)`` (the checkpoints of the analytic backward)."""
    fn = activation_fn(act)
    B, n = xo.shape
    tril = torch.ones(BLOCK, BLOCK, dtype=xo.dtype, device=xo.device).tril(-1)
    a = b.expand(B, -1)
    starts, out = [], []
    for s in range(0, n, BLOCK):
        xb, Wb = xo[:, s : s + BLOCK], WT[s : s + BLOCK]
        starts.append(a)
        H = fn(_preacts(a, xb, Wb, tril))
        out.append((H * V[s : s + BLOCK]).sum(-1) + c[s : s + BLOCK])
        a = a + xb @ Wb
    return (torch.cat(out, dim=1) if out else xo.new_zeros(B, 0)), starts


def _preacts(a: torch.Tensor, xb: torch.Tensor, Wb: torch.Tensor, tril: torch.Tensor) -> torch.Tensor:
    """Pre-activations ``(B, t, d)`` of a block: ``a + sum_{t' < t} x_t' W_t'``."""
    t = xb.shape[1]
    return a[:, None, :] + torch.matmul(xb[:, None, :] * tril[:t, :t], Wb)


class _BlockedNADE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xo, WT, b, V, c, act):  # type: ignore[override]
        z, starts = _blocked_logits(xo, WT, b, V, c, act)
        ctx.act = act
        ctx.save_for_backward(xo, WT, b, V, z, *starts)
        return bernoulli_log_prob(z, xo)

    @staticmethod
    def backward(ctx, grad_ll):  # type: ignore[override]
        xo, WT, b, V, z, *starts = ctx.saved_tensors
        fn = activation_fn(ctx.act)
        B, n = xo.shape
        g = grad_ll[:, None] * (xo - torch.sigmoid(z))  # d loss / d logit
        triu = torch.ones(BLOCK, BLOCK, dtype=xo.dtype, device=xo.device).triu(1)
        tril = triu.t()
        dWT, dV = torch.zeros_like(WT), torch.zeros_like(V)
        db = torch.zeros_like(b)
        suffix = torch.zeros_like(starts[0]) if starts else None  # sum of dA after the block
        for i in reversed(range(len(starts))):
            s = i * BLOCK
            xb, Wb, Vb, gb = xo[:, s : s + BLOCK], WT[s : s + BLOCK], V[s : s + BLOCK], g[:, s : s + BLOCK]
            t = xb.shape[1]
            A = _preacts(starts[i], xb, Wb, tril)
            H = fn(A)
            dV[s : s + t] = torch.einsum("bt,btd->td", gb, H)
            dH = gb[:, :, None] * Vb
            dA = dH * (H * (1 - H)) if ctx.act == "sigmoid" else dH * (A > 0)
            later = xb[:, :, None] * triu[:t, :t]  # (B, t, t'): x_t where t' > t
            dWT[s : s + t] = xb.t() @ suffix + later.permute(1, 0, 2).reshape(t, B * t) @ dA.reshape(B * t, -1)
            dA_sum = dA.sum(1)
            db += dA_sum.sum(0)
            suffix = suffix + dA_sum
        dc = g.sum(0)
        return None, dWT, db, dV, dc, None


@torch.no_grad()
def sample(
    u: torch.Tensor, W, b, V, c, order: torch.Tensor, act: str, given: torch.Tensor | None = None
) -> torch.Tensor:
    """Ancestral samples ``(B, n)``: ``x_j = [u_j < p(x_j = 1 | earlier inputs)]``, drawn in
    ``order``, the running pre-activation updated incrementally (O(nd) per sample). Where
    ``given`` (``u``'s shape) is not NaN, ``x`` takes its value instead of a draw (with the
    given entries a prefix of ``order``: conditional samples)."""
    if _use_cpu_kernel(u, W):
        return _nade_cpu.sample(u, order.cpu(), W.t().contiguous(), b, V, c, act, given)
    fn = activation_fn(act)
    B, n = u.shape
    a = b.expand(B, -1).clone()
    x = torch.empty_like(u)
    for j in order.tolist():
        p = torch.sigmoid(fn(a) @ V[j] + c[j])
        xj = (u[:, j] < p).to(u.dtype)
        if given is not None:
            xj = torch.where(given[:, j].isnan(), xj, given[:, j].to(u.dtype))
        x[:, j] = xj
        a.addr_(xj, W[:, j])
    return x
