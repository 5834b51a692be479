"""The mathematics of NADE and MADE: autoregressive, normalized, sampled correctly, exact."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

import ardens
from ardens.nade import slow_log_prob
from conftest import all_binary, codes


def make(kind: str) -> ardens.base.AutoregressiveModel:
    """Small float64 models covering every architecture option."""
    n = 6
    models = {
        "nade": lambda: ardens.NADE(n, hidden=7),
        "nade-relu-random": lambda: ardens.NADE(n, hidden=7, activation="relu", ordering="random", seed=3),
        "made-0": lambda: ardens.MADE(n, hidden=[], ordering="random", seed=1),
        "made-1": lambda: ardens.MADE(n, hidden=[30], seed=2),
        "made-2-random": lambda: ardens.MADE(n, hidden=[30, 30], ordering="random", seed=3, activation="sigmoid"),
        "made-3-direct": lambda: ardens.MADE(n, hidden=[25, 25, 25], ordering="random", direct=True, seed=4),
        "made-even": lambda: ardens.MADE(n, hidden=[12], ordering=[5, 0, 4, 1, 3, 2], hidden_degrees="even"),
        "made-K-random": lambda: ardens.MADE(n, hidden=[30, 30], num_masks=5, ordering="random", seed=5),
        "made-K-natural": lambda: ardens.MADE(n, hidden=[30], num_masks=4, direct=True, seed=6),
    }
    model = models[kind]().double()
    with torch.no_grad():  # make the conditionals far from uniform
        for p in model.parameters():
            p.mul_(3.0).add_(0.3 * torch.randn_like(p))
    return model


ALL = [
    "nade",
    "nade-relu-random",
    "made-0",
    "made-1",
    "made-2-random",
    "made-3-direct",
    "made-even",
    "made-K-random",
    "made-K-natural",
]


def members(model) -> list[int | None]:
    return list(range(model.num_masks)) if isinstance(model, ardens.MADE) else [None]


def order_of(model, member) -> torch.Tensor:
    return model.order if isinstance(model, ardens.NADE) else model.ordering(member)


def conditionals(model, x, member):
    return model.conditionals(x) if member is None else model.conditionals(x, mask=member)


@pytest.mark.parametrize("kind", ALL)
def test_autoregressive_property_by_jacobian(kind):
    model = make(kind)
    n = model.n_inputs
    for member in members(model):
        rank = torch.empty(n, dtype=torch.long)
        rank[order_of(model, member)] = torch.arange(n)
        later_or_same = rank[None, :] >= rank[:, None]  # [k, j]: j is not before k
        seen = torch.zeros(n, n, dtype=torch.bool)
        for x in all_binary(n)[::7]:
            J = torch.autograd.functional.jacobian(lambda v, m=member: conditionals(model, v[None], m)[0], x)
            assert (J[later_or_same] == 0).all(), f"{kind} member {member}: output sees a later input"
            seen |= J != 0
        if kind != "made-even":  # 12 evenly spread units still reach all earlier inputs
            assert torch.equal(seen, ~later_or_same), f"{kind} member {member}: an earlier input is ignored"


@pytest.mark.parametrize("kind", ALL)
def test_normalized_over_all_vectors(kind):
    model = make(kind)
    x = all_binary(model.n_inputs)
    total = torch.logsumexp(model.log_prob(x), 0).exp().item()
    assert abs(total - 1) < 1e-6
    for member in members(model)[1:]:
        assert abs(torch.logsumexp(model.log_prob(x, mask=member), 0).exp().item() - 1) < 1e-6


def test_normalized_n10():
    for model in (
        ardens.NADE(10, 16, ordering="random", seed=1),
        ardens.MADE(10, [40], num_masks=3, ordering="random"),
    ):
        model = model.double()
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(4)
        assert abs(model.log_prob(all_binary(10)).logsumexp(0).exp().item() - 1) < 1e-6


@pytest.mark.parametrize("kind", ALL)
def test_log_prob_is_sum_of_conditionals(kind):
    model = make(kind)
    x = all_binary(model.n_inputs)
    if kind == "made-K-random":
        with pytest.raises(ValueError, match="different orderings"):
            model.conditionals(x)
        return
    # For a K-mask model sharing one ordering these are the mixture's exact conditionals.
    z = model.conditionals(x)
    from_conditionals = (x * torch.nn.functional.logsigmoid(z) + (1 - x) * torch.nn.functional.logsigmoid(-z)).sum(1)
    torch.testing.assert_close(from_conditionals, model.log_prob(x), atol=1e-9, rtol=0)


def test_ensemble_is_log_mean_exp_of_joint_likelihoods():
    model = make("made-K-random")
    x = all_binary(6)
    each = torch.stack([model.log_prob(x, mask=i) for i in range(model.num_masks)])
    expected = torch.log(each.exp().mean(0))
    torch.testing.assert_close(model.log_prob(x), expected, atol=1e-12, rtol=0)
    # Members differ, so averaging their logits would give a different (unnormalized) answer.
    assert not torch.allclose(each[0], each[1])


def chi_square_p(model, samples: torch.Tensor) -> float:
    n = model.n_inputs
    counts = torch.bincount(codes(samples), minlength=2**n).numpy()
    probs = model.log_prob(all_binary(n)).exp().detach().numpy()
    return chisquare(counts, probs / probs.sum() * counts.sum()).pvalue


@pytest.mark.parametrize("kind", ["nade", "nade-relu-random", "made-3-direct", "made-K-random", "made-K-natural"])
def test_sampling_frequencies_match_probabilities(kind):
    model = make(kind)
    samples = model.sample(40_000, generator=torch.Generator().manual_seed(11))
    assert samples.shape == (40_000, 6) and set(samples.unique().tolist()) <= {0.0, 1.0}
    assert chi_square_p(model, samples) > 1e-4


def test_chi_square_detects_wrong_order_sampling():
    """The test above can fail: samples drawn in the reversed ordering are rejected."""
    model = make("made-2-random")
    reversed_model = ardens.MADE(
        6, hidden=[30, 30], ordering=model.ordering(0).flip(0).tolist(), activation="sigmoid"
    ).double()
    reversed_model.load_state_dict(model.state_dict() | {"degrees": reversed_model.degrees})
    samples = reversed_model.sample(40_000, generator=torch.Generator().manual_seed(11))
    assert chi_square_p(model, samples) < 1e-6


@pytest.mark.parametrize("kind", ["made-1", "made-3-direct", "made-K-random", "made-0", "made-2-random"])
@pytest.mark.parametrize("engine", ["numba", "torch"])
def test_made_fast_sampler_equals_n_pass_sampler(kind, engine, monkeypatch):
    if engine == "torch":
        monkeypatch.setattr(ardens._made_cpu, "AVAILABLE", False)
    elif not ardens._made_cpu.AVAILABLE:
        pytest.skip("numba not installed")
    model = make(kind)
    fast = model.sample(500, generator=torch.Generator().manual_seed(3))
    slow = model.sample_slow(500, generator=torch.Generator().manual_seed(3))
    assert torch.equal(fast, slow)


def test_nade_fast_log_prob_equals_slow_recomputation():
    for act in ("sigmoid", "relu"):
        model = ardens.NADE(70, hidden=20, activation=act, ordering="random", seed=9).double()
        x = torch.bernoulli(torch.full((64, 70), 0.3, dtype=torch.float64))
        torch.testing.assert_close(model.log_prob(x), slow_log_prob(model, x), atol=1e-6, rtol=0)
        z = model.conditionals(x)
        torch.testing.assert_close(ardens.base.bernoulli_log_prob(z, x), slow_log_prob(model, x), atol=1e-6, rtol=0)


def test_nade_parameter_count():
    n, d = 784, 500
    model = ardens.NADE(n, hidden=d)
    assert sum(p.numel() for p in model.parameters()) == 2 * n * d + d + n


def test_masks_are_not_baked_into_weights():
    model = ardens.MADE(8, hidden=[16], num_masks=3, ordering="random", seed=0)
    before = [layer.weight.detach().clone() for layer in model.layers]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.bernoulli(torch.full((32, 8), 0.5))
    for step in range(6):
        opt.zero_grad()
        (-model.log_prob(x, mask=step % 3).mean()).backward()
        opt.step()
    union = [torch.zeros_like(w, dtype=torch.bool) for w in before]
    for i in range(3):
        for u, mask in zip(union, model.member_masks(i)):
            u |= mask.bool()
    for u, w0, layer in zip(union, before, model.layers):
        assert torch.equal(layer.weight[~u], w0[~u])  # never used: untouched, not zeroed
        assert (layer.weight[u] != w0[u]).any()


def test_k_mask_sampling_picks_members_uniformly():
    model = make("made-K-random")
    # Sampling with a fixed member draws from that member only.
    one = model.sample(40_000, generator=torch.Generator().manual_seed(5), mask=2)
    counts = torch.bincount(codes(one), minlength=64).numpy()
    probs = model.log_prob(all_binary(6), mask=2).exp().detach().numpy()
    assert chisquare(counts, probs / probs.sum() * counts.sum()).pvalue > 1e-4
    assert math.isclose(probs.sum(), 1, abs_tol=1e-9)


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.zeros(3, 5), r"shape \(batch, 6\); got shape \(3, 5\)"),
        (torch.full((2, 6), 0.5), "0/1 values; got 0.5"),
        (torch.full((2, 6), float("nan")), "NaN or inf"),
        (np.array([["a"] * 6]), "x: expected"),
        (torch.tensor(1.0), "shape"),
        (torch.full((1, 6), 2, dtype=torch.int64), "got 2"),
    ],
)
def test_bad_input_is_a_value_error(bad, message):
    for model in (ardens.NADE(6, 4), ardens.MADE(6, [8])):
        with pytest.raises(ValueError, match=message):
            model.log_prob(bad)


def test_accepts_bool_int_numpy_and_batch_shapes():
    model = ardens.NADE(6, 4)
    x = torch.bernoulli(torch.full((2, 3, 6), 0.5))
    ll = model.log_prob(x)
    assert ll.shape == (2, 3)
    torch.testing.assert_close(model.log_prob(x.bool()), ll)
    torch.testing.assert_close(model.log_prob(x.long().numpy()), ll)
    assert model.conditionals(x).shape == (2, 3, 6)


def test_constructor_errors():
    with pytest.raises(ValueError, match="hidden"):
        ardens.NADE(5, hidden=0)
    with pytest.raises(ValueError, match="activation"):
        ardens.MADE(5, activation="gelu")
    with pytest.raises(ValueError, match="direct"):
        ardens.MADE(5, hidden=[], direct=True)
    with pytest.raises(ValueError, match="dropout"):
        ardens.MADE(5, dropout=1.0)
    with pytest.raises(ValueError, match="dropout"):
        ardens.MADE(5, hidden=[], dropout=0.1)
    with pytest.raises(ValueError, match="mask"):
        ardens.MADE(5, num_masks=2).log_prob(torch.zeros(1, 5), mask=2)


def test_dropout_keeps_autoregressive_masks_and_leaves_eval_exact():
    """In training mode each draw of dropped units is still autoregressive (dropout removes
    connections); in eval mode the model equals the same weights without dropout."""
    model = ardens.MADE(6, hidden=[40, 40], ordering="random", direct=True, seed=7, dropout=0.5).double()
    plain = ardens.MADE(6, hidden=[40, 40], ordering="random", direct=True, seed=7).double()
    plain.load_state_dict(model.state_dict())
    n, x = 6, all_binary(6)
    rank = torch.empty(n, dtype=torch.long)
    rank[model.ordering()] = torch.arange(n)
    later_or_same = rank[None, :] >= rank[:, None]
    model.train()
    for seed in range(5):

        def dropped(v, seed=seed):
            torch.manual_seed(seed)
            return model._logits(v[None], dropout=True)[0]

        J = torch.autograd.functional.jacobian(dropped, x[37])
        assert (J[later_or_same] == 0).all(), f"dropout draw {seed}: an output sees a later input"
    torch.manual_seed(0)
    a = model.log_prob(x)
    torch.manual_seed(1)
    assert not torch.equal(a, model.log_prob(x)), "training mode should drop units"
    assert torch.equal(model.conditionals(x), plain.conditionals(x)), "conditionals never drop units"
    model.eval()
    assert torch.equal(model.log_prob(x), plain.log_prob(x))
    assert torch.logsumexp(model.log_prob(x), 0).abs() < 1e-12
    g = torch.Generator()
    assert torch.equal(model.sample(50, generator=g.manual_seed(3)), plain.sample(50, generator=g.manual_seed(3)))
    model.train()
    assert torch.equal(model.sample(50, generator=g.manual_seed(3)), plain.sample(50, generator=g.manual_seed(3)))
    assert torch.equal(
        model.sample_slow(50, generator=g.manual_seed(3)), plain.sample_slow(50, generator=g.manual_seed(3))
    )


def test_made_sampler_cache_follows_weight_changes():
    model = make("made-2-random")
    before = model.sample(2000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.layers[-1].bias.add_(5.0)  # in place: every conditional now far more likely 1
    after = model.sample(2000, generator=torch.Generator().manual_seed(0))
    assert after.mean() > before.mean() + 0.2
    assert torch.equal(after, model.sample_slow(2000, generator=torch.Generator().manual_seed(0)))
