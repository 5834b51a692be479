"""Validation of user input, with one-line errors that say what was expected and what came."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["as_binary", "check_positive_int"]


def as_binary(x: Any, n: int, *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``x`` as a ``(..., n)`` tensor of 0.0/1.0 of ``dtype`` on ``device``.

    Accepts tensors, NumPy arrays and nested lists of floats, ints or bools.
    Raises ``ValueError`` for a wrong last dimension, NaN/inf or values other than 0/1.

    >>> as_binary([[0, 1, 1]], 3, dtype=torch.float32, device=torch.device("cpu"))
    tensor([[0., 1., 1.]])
    """
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError) as err:
            raise ValueError(f"x: expected a (batch, {n}) array of 0/1 values; got {err}") from None
    if x.is_complex() or not (x.is_floating_point() or x.dtype == torch.bool or _is_int(x)):
        raise ValueError(f"x: expected 0/1 values of a real or bool dtype; got dtype {x.dtype}")
    if x.dim() == 0 or x.shape[-1] != n:
        raise ValueError(f"x: expected shape (batch, {n}); got shape {tuple(x.shape)}")
    # x (1 - x) is 0 exactly for 0 and 1: NaN, inf and every other value (integers too,
    # even where the product wraps around) leave it nonzero. One pass, cheap in training.
    if x.dtype != torch.bool and bool((x * (1 - x)).any()):
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            raise ValueError("x: expected 0/1 values; got NaN or inf")
        example = x[(x != 0) & (x != 1)].flatten()[0].item()
        raise ValueError(f"x: expected 0/1 values; got {example!r}")
    return x.to(device=device, dtype=dtype)


def check_positive_int(name: str, value: Any, *, allow_zero: bool = False) -> int:
    """``value`` as an int, or a ``ValueError`` naming ``name``."""
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        kind = "a non-negative" if allow_zero else "a positive"
        raise ValueError(f"{name}: expected {kind} integer; got {value!r}")
    return int(value)


def check_sizes(name: str, value: Any) -> list[int]:
    """Layer sizes: one positive int, or a sequence of them, as a list."""
    values = [value] if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else list(value)
    return [check_positive_int(name, v) for v in values]


def _is_int(x: torch.Tensor) -> bool:
    return not x.is_floating_point() and not x.is_complex() and x.dtype != torch.bool
