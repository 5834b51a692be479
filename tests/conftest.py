"""Shared helpers for the tests."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import pytest
import torch

from ardens import heads


def all_binary(n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """All 2^n binary vectors of length n, shape (2^n, n)."""
    return torch.tensor(list(itertools.product([0, 1], repeat=n)), dtype=dtype)


def codes(x: torch.Tensor) -> torch.Tensor:
    """Integer code of each binary row, matching the row index in ``all_binary``."""
    n = x.shape[1]
    weights = 2 ** torch.arange(n - 1, -1, -1)
    return (x.long() * weights).sum(1)


def enumerate_discrete(cols: heads.Columns) -> torch.Tensor:
    """Every row of a set of discrete columns (binary: 0/1; categorical: its codes), float64."""
    levels = [range(c.levels) if c.kind == "categorical" else range(2) for c in cols.list]
    return torch.tensor(list(itertools.product(*levels)), dtype=torch.float64)


def rank_of(order: torch.Tensor) -> torch.Tensor:
    """Each input's place in an ordering: ``rank[order[k]] = k``."""
    rank = torch.empty(len(order), dtype=torch.long)
    rank[order.cpu()] = torch.arange(len(order))
    return rank


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(1234)
    yield


def load_benchmark(name: str):
    """The module ``benchmarks/<name>.py`` (the benchmarks are scripts, not a package)."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
