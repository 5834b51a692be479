"""NADE's fast paths (numba CPU kernel, blocked torch with analytic backward) equal the
straightforward autograd computation, values and gradients, in float64."""

from __future__ import annotations

import pytest
import torch

import ardens
from ardens import _nade_cpu, _nade_ops
from ardens.nade import slow_log_prob

needs_numba = pytest.mark.skipif(not _nade_cpu.AVAILABLE, reason="numba not installed")


def setup(act: str, n: int = 70, d: int = 19, B: int = 33):
    model = ardens.NADE(n, hidden=d, activation=act, ordering="random", seed=5).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    x = torch.bernoulli(torch.full((B, n), 0.3, dtype=torch.float64))
    weights = torch.randn(B, dtype=torch.float64)  # a non-uniform upstream gradient
    return model, x, weights


def grads(model, value: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad(value, [model.W, model.b, model.V, model.c]))


def kernel(impl):
    """The implementation under test, as a function of (x, W, b, V, c, order, act)."""
    if impl == "cpu":
        return lambda x, W, b, V, c, order, act: _nade_cpu.NADELogProb.apply(x, order, W.t().contiguous(), b, V, c, act)
    return lambda x, W, b, V, c, order, act: _nade_ops._BlockedNADE.apply(
        *_nade_ops._ordered(x, W, b, V, c, order), act
    )


@pytest.mark.parametrize("act", ["sigmoid", "relu"])
@pytest.mark.parametrize(
    "impl",
    [pytest.param("cpu", marks=needs_numba), "blocked"],
)
def test_fast_log_prob_and_gradients_equal_autograd_on_slow_version(act, impl):
    model, x, w = setup(act)
    fast = kernel(impl)(x, *model._params(), model.activation)
    slow = slow_log_prob(model, x)
    torch.testing.assert_close(fast, slow, atol=1e-9, rtol=0)
    for g_fast, g_slow in zip(grads(model, (w * fast).sum()), grads(model, (w * slow).sum())):
        torch.testing.assert_close(g_fast, g_slow, atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("impl", [pytest.param("cpu", marks=needs_numba), "blocked"])
def test_gradcheck(impl):
    model, x, _ = setup("sigmoid", n=40, d=5, B=4)
    fn = kernel(impl)
    params = [t.detach().requires_grad_() for t in (model.W, model.b, model.V, model.c)]
    assert torch.autograd.gradcheck(lambda *p: fn(x, *p, model.order, model.activation), params)


@needs_numba
@pytest.mark.parametrize("act", ["sigmoid", "relu"])
def test_cpu_sampler_equals_torch_sampler(act, monkeypatch):
    model, _, _ = setup(act)
    fast = model.sample(300, generator=torch.Generator().manual_seed(1))
    monkeypatch.setattr(_nade_cpu, "AVAILABLE", False)
    plain = model.sample(300, generator=torch.Generator().manual_seed(1))
    assert torch.equal(fast, plain)


def test_edge_cases():
    model = ardens.NADE(1, hidden=3).double()
    x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    assert abs(model.log_prob(x).exp().sum().item() - 1) < 1e-12
    assert model.log_prob(torch.zeros(0, 1)).shape == (0,)
    assert model.sample(0).shape == (0, 1)


@needs_numba
def test_vectorizable_exp_is_accurate():
    import math

    import numpy as np
    from numba import njit

    exp = njit(lambda v: np.array([_nade_cpu.exp_vectorizable(t) for t in v]))
    x = np.concatenate([np.linspace(-700, 700, 20001), np.random.default_rng(0).normal(0, 5, 10000), [0.0, -0.0]])
    got, want = exp(x), np.array([math.exp(t) for t in x])
    assert np.max(np.abs(got - want) / want) < 4 * np.finfo(np.float64).eps
    assert np.isnan(exp(np.array([np.nan]))[0])
    assert exp(np.array([-1e4]))[0] < 1e-300 and np.isfinite(exp(np.array([1e4]))[0])


@needs_numba
def test_vectorizable_exp32_is_accurate():
    import numpy as np
    from numba import njit

    exp32 = njit(lambda v: np.array([_nade_cpu.exp_vectorizable32(t) for t in v], dtype=np.float32))
    x = np.concatenate(
        [np.linspace(-87, 87, 200001), np.random.default_rng(0).normal(0, 5, 10000), [0.0, -0.0]]
    ).astype(np.float32)
    got, want = exp32(x).astype(np.float64), np.exp(x.astype(np.float64))
    assert got.dtype == np.float64 and exp32(x).dtype == np.float32
    assert np.max(np.abs(got - want) / want) < 4 * np.finfo(np.float32).eps
    assert np.isnan(exp32(np.array([np.nan], dtype=np.float32))[0])
    assert exp32(np.array([-1e4], dtype=np.float32))[0] < 1e-37
    assert np.isfinite(exp32(np.array([1e4], dtype=np.float32))[0])


@needs_numba
@pytest.mark.parametrize("act", ["sigmoid", "relu"])
def test_float32_kernel_is_as_accurate_as_torch_float32(act):
    """The float32 kernel (its own float32 sigmoid) against the float64 computation: its error,
    values and gradients, stays within a small multiple of that of torch's float32 autograd path
    (4x: on one thread the kernel sums a parameter's gradient over the examples in sequence,
    where torch's reductions sum in blocks)."""
    model, x, w = setup(act, n=200, d=50, B=64)
    slow = slow_log_prob(model, x)
    want = [slow] + grads(model, (w * slow).sum())
    model.float()
    x32, w32 = x.float(), w.float()
    fast = kernel("cpu")(x32, *model._params(), model.activation)
    plain = slow_log_prob(model, x32)
    got = [fast] + grads(model, (w32 * fast).sum())
    ref32 = [plain] + grads(model, (w32 * plain).sum())
    for g, r, exact in zip(got, ref32, want):
        assert g.dtype == torch.float32
        scale = exact.abs().max().item()
        err, err_torch = (g.double() - exact).abs().max().item(), (r.double() - exact).abs().max().item()
        assert err <= 4 * err_torch + 1e-7 * scale, (err, err_torch)
