"""Orderings, degrees and masks: connectivity is autoregressive and nothing is disconnected."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ardens.masks import check_ordering, direct_mask, made_degrees, made_masks, make_ordering, rank_of


def reachability(masks: list[np.ndarray]) -> np.ndarray:
    """(n_out, n_in) boolean: is there a path from input j to output k through the masks?"""
    path = masks[0].astype(np.int64)
    for m in masks[1:]:
        path = (m.astype(np.int64) @ path) > 0
    return path > 0


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 12),
    hidden=st.lists(st.integers(1, 40), min_size=0, max_size=3),
    seed=st.integers(0, 10_000),
    index=st.integers(0, 5),
    ordering=st.sampled_from(["natural", "random"]),
    kind=st.sampled_from(["random", "even"]),
)
def test_paths_only_from_earlier_inputs(n, hidden, seed, index, ordering, kind):
    degrees = made_degrees(n, hidden, seed=seed, index=index, ordering=ordering, hidden_degrees=kind)
    rank = degrees[0] - 1
    reach = reachability(made_masks(degrees))
    earlier = rank[None, :] < rank[:, None]  # earlier[k, j]: input j precedes output k
    assert not (reach & ~earlier).any()
    assert np.array_equal(direct_mask(degrees[0]), earlier)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 12),
    hidden=st.lists(st.integers(1, 40), min_size=1, max_size=3),
    seed=st.integers(0, 10_000),
    kind=st.sampled_from(["random", "even"]),
)
def test_no_hidden_unit_is_disconnected(n, hidden, seed, kind):
    degrees = made_degrees(n, hidden, seed=seed, ordering="random", hidden_degrees=kind)
    for layer_mask in made_masks(degrees)[:-1]:
        assert layer_mask.any(axis=1).all(), "a hidden unit has no incoming connection"
    for m in degrees[1:]:
        assert m.min() >= 1 and m.max() <= n - 1


def test_dense_enough_model_connects_every_earlier_input():
    degrees = made_degrees(6, [200, 200], seed=0, ordering="random")
    rank = degrees[0] - 1
    reach = reachability(made_masks(degrees))
    assert np.array_equal(reach, rank[None, :] < rank[:, None])


def test_member_is_a_pure_function_of_seed_and_index():
    a = made_degrees(10, [20, 20], seed=7, index=3, ordering="random")
    b = made_degrees(10, [20, 20], seed=7, index=3, ordering="random")
    c = made_degrees(10, [20, 20], seed=7, index=4, ordering="random")
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_orderings():
    assert make_ordering(4, None).tolist() == [0, 1, 2, 3]
    order = make_ordering(30, "random", seed=2)
    assert sorted(order.tolist()) == list(range(30)) and order.tolist() != list(range(30))
    assert rank_of(order)[order].tolist() == list(range(30))
    assert made_degrees(5, [3], ordering=[4, 3, 2, 1, 0])[0].tolist() == [5, 4, 3, 2, 1]
    with pytest.raises(ValueError, match="permutation of range"):
        check_ordering([0, 0, 1], 3)
    with pytest.raises(ValueError, match="permutation of range"):
        make_ordering(3, [0, 1])
    with pytest.raises(ValueError, match="'natural', 'random'"):
        make_ordering(3, "reversed")
