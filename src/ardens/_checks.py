"""Validation of user input, with one-line errors that say what was expected and what came."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["check_positive_int", "check_sizes"]


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
