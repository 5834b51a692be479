"""Straightforward reference implementations, written as simple readable baselines.

These are what one writes first in PyTorch; ardens must be far ahead of them. They are
correct (the tests check ardens against the same mathematics) but slow.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class LoopNADE(nn.Module):
    """NADE that loops over the n dimensions with autograd (running pre-activation)."""

    def __init__(self, n: int, d: int) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.empty(d, n).uniform_(-1, 1) / math.sqrt(n))
        self.b = nn.Parameter(torch.zeros(d))
        self.V = nn.Parameter(torch.empty(n, d).uniform_(-1, 1) / math.sqrt(d))
        self.c = nn.Parameter(torch.zeros(n))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        a = self.b.expand(x.shape[0], -1)
        total = x.new_zeros(x.shape[0])
        for k in range(x.shape[1]):
            z = torch.sigmoid(a) @ self.V[k] + self.c[k]
            total = total - F.binary_cross_entropy_with_logits(z, x[:, k], reduction="none")
            a = a + x[:, k : k + 1] * self.W[:, k]
        return total


class CumsumNADE(LoopNADE):
    """NADE vectorized over dimensions: all (B, n, d) pre-activations by ``cumsum``."""

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        contrib = x[:, :, None] * self.W.t()[None]  # (B, n, d)
        a = self.b + torch.cumsum(contrib, dim=1) - contrib  # exclusive prefix sums
        z = (torch.sigmoid(a) * self.V).sum(-1) + self.c
        return -F.binary_cross_entropy_with_logits(z, x, reduction="none").sum(-1)


class PlainMADE(nn.Module):
    """A masked MLP: ``F.linear(x, mask * weight, bias)``, natural order, one fixed mask."""

    def __init__(self, n: int, hidden: list[int], seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        degrees = [torch.arange(1, n + 1)]
        for h in hidden:
            low = int(degrees[-1].min())
            degrees.append(torch.randint(low, n, (h,), generator=g))
        self.masks = [(b[:, None] >= a[None, :]).float() for a, b in zip(degrees, degrees[1:])]
        self.masks.append((degrees[0][:, None] > degrees[-1][None, :]).float())
        sizes = [n, *hidden, n]
        self.layers = nn.ModuleList(nn.Linear(i, o) for i, o in zip(sizes, sizes[1:]))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for i, (layer, mask) in enumerate(zip(self.layers, self.masks)):
            h = F.linear(h, mask * layer.weight, layer.bias)
            if i < len(self.layers) - 1:
                h = torch.relu(h)
        return h

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return -F.binary_cross_entropy_with_logits(self.logits(x), x, reduction="none").sum(-1)

    @torch.no_grad()
    def sample_n_pass(self, num: int) -> torch.Tensor:
        """One full forward pass per dimension."""
        x = torch.zeros(num, self.layers[0].in_features)
        for k in range(x.shape[1]):
            x[:, k] = torch.bernoulli(torch.sigmoid(self.logits(x)[:, k]))
        return x
