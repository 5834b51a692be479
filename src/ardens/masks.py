"""Orderings, MADE degrees and connectivity masks, as pure functions.

Conventions used throughout ardens:

* An **ordering** ``o`` is a permutation of ``range(n)`` listing input positions in the
  order in which they are generated: ``x[o[0]]`` first, then ``x[o[1]]`` given it, ...
* The **rank** of input ``j`` is its place in the ordering: ``rank[o[k]] = k``.
* In MADE, input ``j`` has degree ``rank[j] + 1`` (in ``1..n``); hidden units get degrees
  in ``1..n-1``; a unit of degree ``m`` may only see inputs of degree ``<= m``.

Everything here is deterministic: mask ``i`` of a model is a function of ``(seed, i)``.

>>> order = make_ordering(4, "natural")
>>> order.tolist()
[0, 1, 2, 3]
>>> degrees = made_degrees(4, [3], seed=0, index=0, ordering="natural", hidden_degrees="even")
>>> [d.tolist() for d in degrees]
[[1, 2, 3, 4], [1, 2, 3]]
>>> masks = made_masks(degrees)
>>> masks[-1].astype(int).tolist()  # output k sees hidden units of degree < k + 1
[[0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Union

import numpy as np

OrderingSpec = Union[None, str, Sequence[int], np.ndarray]  # noqa: UP007 (a runtime alias on 3.10)
HiddenDegrees = Literal["random", "even"]

__all__ = [
    "OrderingSpec",
    "check_ordering",
    "direct_mask",
    "made_degrees",
    "made_masks",
    "make_ordering",
    "rank_of",
    "rng_for",
]


def rng_for(seed: int, index: int) -> np.random.Generator:
    """The random generator of member ``index`` of a model built with ``seed``.

    >>> int(rng_for(0, 1).integers(100)) == int(rng_for(0, 1).integers(100))
    True
    """
    return np.random.default_rng([int(seed), int(index)])


def check_ordering(order: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
    """Validate an explicit ordering and return it as an int64 array.

    >>> check_ordering([2, 0, 1], 3).tolist()
    [2, 0, 1]
    """
    arr = np.asarray(order)
    if arr.shape != (n,) or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"ordering: expected a permutation of range({n}); got {_describe(order)}")
    arr = arr.astype(np.int64)
    if not np.array_equal(np.sort(arr), np.arange(n)):
        raise ValueError(f"ordering: expected a permutation of range({n}); got {arr.tolist()}")
    return arr


def make_ordering(n: int, spec: OrderingSpec = "natural", *, seed: int = 0, index: int = 0) -> np.ndarray:
    """The ordering named by ``spec``: ``None``/``"natural"``, ``"random"`` or a permutation.

    ``"random"`` draws the permutation from ``rng_for(seed, index)``.

    >>> make_ordering(5, "random", seed=3).tolist() == make_ordering(5, "random", seed=3).tolist()
    True
    """
    if spec is None or (isinstance(spec, str) and spec == "natural"):
        return np.arange(n, dtype=np.int64)
    if isinstance(spec, str):
        if spec == "random":
            return rng_for(seed, index).permutation(n).astype(np.int64)
        raise ValueError(f"ordering: expected 'natural', 'random' or a permutation; got {spec!r}")
    return check_ordering(spec, n)


def rank_of(order: np.ndarray) -> np.ndarray:
    """Inverse permutation: ``rank[order[k]] = k``.

    >>> rank_of(np.array([2, 0, 1])).tolist()
    [1, 2, 0]
    """
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order), dtype=order.dtype)
    return rank


def made_degrees(
    n: int,
    hidden: Sequence[int],
    *,
    seed: int = 0,
    index: int = 0,
    ordering: OrderingSpec = "natural",
    hidden_degrees: HiddenDegrees = "random",
) -> list[np.ndarray]:
    """Degrees of MADE member ``index``: ``[inputs, hidden_1, ..., hidden_L]``.

    Input ``j`` has degree ``rank[j] + 1``. Units of hidden layer ``l`` take degrees in
    ``[min(previous layer), n - 1]``, so every unit has at least one incoming connection.
    ``hidden_degrees="random"`` samples them uniformly (Germain et al., 2015);
    ``"even"`` spreads them evenly over that range.
    """
    if hidden_degrees not in ("random", "even"):
        raise ValueError(f"hidden_degrees: expected 'random' or 'even'; got {hidden_degrees!r}")
    rng = rng_for(seed, index)
    if isinstance(ordering, str) and ordering == "random":
        order = rng.permutation(n).astype(np.int64)  # == make_ordering(n, "random", ...)
    else:
        order = make_ordering(n, ordering)
    degrees = [rank_of(order) + 1]
    top = max(n - 1, 1)  # n == 1: hidden units carry no information; any degree >= 1 works
    for size in hidden:
        low = min(int(degrees[-1].min()), top)
        if hidden_degrees == "random":
            m = rng.integers(low, top + 1, size=size)
        else:
            m = low + (np.arange(size) * (top - low + 1)) // max(size, 1)
        degrees.append(m.astype(np.int64))
    return degrees


def made_masks(degrees: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Boolean masks ``(out, in)`` for each hidden layer, then the output layer.

    A hidden unit connects to a unit below of degree ``<=`` its own; output ``k``
    connects to the top hidden units of degree ``<`` its input degree.
    """
    masks = [later[:, None] >= earlier[None, :] for earlier, later in zip(degrees, degrees[1:])]
    masks.append(degrees[0][:, None] > degrees[-1][None, :])
    return masks


def direct_mask(input_degrees: np.ndarray) -> np.ndarray:
    """Mask ``(n, n)`` of the direct input-to-output connection: strictly earlier inputs."""
    return input_degrees[:, None] > input_degrees[None, :]


def _describe(value: object) -> str:
    shape = getattr(value, "shape", None)
    return f"shape {tuple(shape)}" if shape is not None else repr(value)
