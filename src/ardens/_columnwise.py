"""Per-column block products for the typed-column paths of NADE and DeepNADE.

A column owns a contiguous block of encoded inputs (width 1, or K for a categorical one-hot)
and a contiguous block of head parameters. Both networks need, for every position ``k`` of an
ordering, the product of one column's block with its rows of a weight matrix. Padding every
block to the widest one turns those ``n`` small products into one batched matmul
(``einsum`` on ``(n, width, d)`` weights), with no ``(B, units, d)`` gather: the padded slots
read a zero row and are never read back.

>>> import torch
>>> from ardens.heads import Columns
>>> cols = Columns(["binary", "categorical:3"])
>>> order = torch.tensor([1, 0])
>>> e = torch.tensor([[1.0, 0.0, 0.0, 1.0]])  # x = (1, code 2)
>>> W = torch.arange(8.0).reshape(2, 4)          # (d, input_width)
>>> inputs_by_position(e, W, cols, order)        # column 1 first: W[:, 3], then column 0: W[:, 0]
tensor([[[3., 7.],
         [0., 4.]]])
"""

from __future__ import annotations

import numpy as np
import torch

from .heads import Columns

__all__ = ["inputs_by_position", "inputs_before_position", "params_by_position"]

#: Encoded widths up to this run the prefix sums as one masked GEMM (see inputs_before_position).
GEMM_PREFIX_WIDTH = 64


def _padded(offsets: np.ndarray, order: np.ndarray, pad: int) -> np.ndarray:
    """``(n, width)`` unit indices of each column's block, columns in ``order``, padded with ``pad``."""
    widths = np.diff(offsets)
    width = int(widths.max())
    index = np.full((len(order), width), pad, dtype=np.int64)
    for k, j in enumerate(order):
        index[k, : widths[j]] = np.arange(offsets[j], offsets[j + 1])
    return index


def inputs_by_position(e: torch.Tensor, W: torch.Tensor, cols: Columns, order: torch.Tensor) -> torch.Tensor:
    """``(B, n, d)``: at position ``k``, column ``order[k]``'s contribution ``W_j e_j`` to the
    pre-activation (``e``: ``(B, input_width)``, ``W``: ``(d, input_width)``)."""
    index = torch.as_tensor(_padded(cols.input_offsets, order.cpu().numpy(), cols.input_width), device=e.device)
    e_pad = torch.cat([e, e.new_zeros(e.shape[0], 1)], dim=1)[:, index]  # (B, n, Q)
    w_pad = torch.cat([W.t(), W.new_zeros(1, W.shape[0])], dim=0)[index]  # (n, Q, d)
    return torch.einsum("bnq,nqd->bnd", e_pad, w_pad)


def inputs_before_position(e: torch.Tensor, W: torch.Tensor, cols: Columns, order: torch.Tensor) -> torch.Tensor:
    """``(B, n, d)``: at position ``k``, the exclusive sum ``sum_{i<k} W_{o_i} e_{o_i}`` of the
    columns before it (the running pre-activation of NADE and of DeepNADE's first layer).

    For narrow inputs (``input_width <= GEMM_PREFIX_WIDTH``: real and small tables) one GEMM
    of the inputs masked per position, ``(B n, input_width) @ (input_width, d)``: the masked
    entries are exact zeros, so no term of a column or of the columns after it enters. Wider
    inputs take the per-column products and a cumulative sum, ``O(B n d)``."""
    if cols.input_width <= GEMM_PREFIX_WIDTH:
        position = torch.empty_like(order)
        position[order] = torch.arange(len(order), device=order.device)
        unit_position = position[cols.input_column.to(order.device)]  # (input_width,)
        before = unit_position[None, :] < torch.arange(len(order), device=order.device)[:, None]  # (n, input_width)
        masked = e[:, None, :] * before.to(e.dtype)  # (B, n, input_width)
        return (masked.reshape(-1, e.shape[1]) @ W.t()).reshape(e.shape[0], len(order), W.shape[0])
    contrib = inputs_by_position(e, W, cols, order)
    return torch.nn.functional.pad(torch.cumsum(contrib[:, :-1], dim=1), (0, 0, 1, 0))


def params_by_position(
    h: torch.Tensor, V: torch.Tensor, c: torch.Tensor, cols: Columns, order: torch.Tensor
) -> torch.Tensor:
    """Every column's parameters ``(B, param_width)``, column ``order[k]``'s block read from
    the hidden state ``h[:, k]`` (``h``: ``(B, n, d)``; ``V``: ``(param_width, d)``, ``c``:
    ``(param_width,)``)."""
    widths = np.diff(cols.param_offsets)
    n, d = len(order), V.shape[1]
    if (widths == widths[0]).all():  # equal blocks: V is (n, P, d) as a view, no padding
        p = int(widths[0])
        out = torch.einsum("bnd,npd->bnp", h, V.reshape(n, p, d)[order])  # (B, n, P) by position
        position = torch.empty_like(order)
        position[order] = torch.arange(n, device=order.device)
        return out[:, position].reshape(h.shape[0], -1) + c
    order_np = order.cpu().numpy()
    index = _padded(cols.param_offsets, order_np, cols.param_width)  # (n, P)
    index_t = torch.as_tensor(index, device=h.device)
    v_pad = torch.cat([V, V.new_zeros(1, V.shape[1])], dim=0)[index_t]  # (n, P, d)
    out = torch.einsum("bnd,npd->bnp", h, v_pad).reshape(h.shape[0], -1)  # (B, n * P)
    # where each parameter unit landed: (position of its column) * P + (slot in its block)
    flat = np.empty(cols.param_width, dtype=np.int64)
    rows, slots = np.nonzero(index < cols.param_width)
    flat[index[rows, slots]] = rows * index.shape[1] + slots
    return out[:, torch.as_tensor(flat, device=h.device)] + c
