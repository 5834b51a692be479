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

__all__ = ["inputs_by_position", "params_by_position"]


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


def params_by_position(
    h: torch.Tensor, V: torch.Tensor, c: torch.Tensor, cols: Columns, order: torch.Tensor
) -> torch.Tensor:
    """Every column's parameters ``(B, param_width)``, column ``order[k]``'s block read from
    the hidden state ``h[:, k]`` (``h``: ``(B, n, d)``; ``V``: ``(param_width, d)``, ``c``:
    ``(param_width,)``)."""
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
