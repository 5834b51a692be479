"""DeepNADE (order-agnostic NADE) and EoNADE: exact normalization, the autoregressive property,
an unbiased order-agnostic training loss, sampling frequencies, and chunked = one-pass likelihoods."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ardens
from ardens import deepnade
from ardens.data import load_digits
from ardens.train import ModelConfig, TrainConfig, build_model, fit


def all_vectors(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0, 1], repeat=n)), dtype=torch.float64)


def small_model(n: int = 5, k: int = 3, ordering: str = "random", seed: int = 4) -> ardens.DeepNADE:
    torch.manual_seed(seed)
    model = ardens.DeepNADE(n, hidden=[9, 7], num_orderings=k, ordering=ordering, seed=seed).double()
    with torch.no_grad():  # larger weights than the default initialization: far from uniform
        for p in model.parameters():
            p.mul_(3)
    return model


def ordering_nll_by_hand(model: ardens.DeepNADE, x: torch.Tensor, order: list[int]) -> torch.Tensor:
    """sum_d -log p(x_{o_d} | x_{o_<d}), one conditional_logits call per position."""
    observed = torch.zeros_like(x)
    total = torch.zeros(x.shape[0], dtype=x.dtype)
    for j in order:
        z = model.conditional_logits(x, observed)[:, j]
        total = total + F.binary_cross_entropy_with_logits(z, x[:, j], reduction="none")
        observed[:, j] = 1
    return total


@pytest.mark.parametrize("ordering", ["random", "natural"])
def test_every_ordering_and_the_ensemble_sum_to_one(ordering):
    model = small_model(ordering=ordering)
    x = all_vectors(5)
    with torch.no_grad():
        for i in range(3):
            assert model.log_prob(x, mask=i).exp().sum().item() == pytest.approx(1.0, abs=1e-12)
        assert model.log_prob(x).exp().sum().item() == pytest.approx(1.0, abs=1e-12)
    if ordering == "natural":
        assert model.ordering(0).tolist() == [0, 1, 2, 3, 4]
    assert len({tuple(model.ordering(i).tolist()) for i in range(3)}) > 1


def test_conditionals_ignore_the_unobserved_values():
    model = small_model(n=6, k=1)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        x = torch.randint(0, 2, (6,), generator=gen).double()
        observed = torch.randint(0, 2, (6,), generator=gen).double()
        jac = torch.autograd.functional.jacobian(lambda v, m=observed: model.conditional_logits(v, m), x)
        assert torch.all(jac[:, observed == 0] == 0)
        assert torch.any(jac[:, observed == 1] != 0) or observed.sum() == 0


def test_log_prob_is_the_chain_rule_in_each_ordering_and_chunking_changes_nothing(monkeypatch):
    model = small_model(n=6, k=2)
    x = all_vectors(6)[::5]
    with torch.no_grad():
        one_pass = [model.log_prob(x, mask=i) for i in range(2)]
        monkeypatch.setattr(deepnade, "ROWS_PER_PASS", 7)  # several chunks of examples
        monkeypatch.setattr(deepnade, "CACHED_ELEMENTS", 2 * 6 * 9)  # the in-place kernel's: 2 examples
        assert model._in_place_chunk(torch.device("cpu")) == 2
        chunked = [model.log_prob(x, mask=i) for i in range(2)]
        for i in range(2):
            by_hand = -ordering_nll_by_hand(model, x, model.ordering(i).tolist())
            torch.testing.assert_close(one_pass[i], by_hand, rtol=0, atol=1e-12)
            torch.testing.assert_close(chunked[i], by_hand, rtol=0, atol=1e-12)
        ensemble = torch.stack(one_pass).logsumexp(0) - math.log(2)
        torch.testing.assert_close(model.log_prob(x), ensemble, rtol=0, atol=1e-12)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
@pytest.mark.parametrize("hidden", [[9], [9, 7], [9, 7, 5]])
def test_in_place_evaluation_equals_the_autograd_pass(activation, hidden, monkeypatch):
    """Without autograd, log_prob runs in reused buffers (DeepNADE._binary_pass_inplace): it
    must give the autograd pass's values for every depth, with a context, in several chunks."""
    torch.manual_seed(0)
    model = ardens.DeepNADE(7, hidden=hidden, num_orderings=2, activation=activation, context_features=2).double()
    x = torch.bernoulli(torch.full((23, 7), 0.4, dtype=torch.float64))
    c = torch.randn(23, 2, dtype=torch.float64)
    monkeypatch.setattr(deepnade, "ROWS_PER_PASS", 30)  # chunks of 4 rows, the last one shorter
    monkeypatch.setattr(deepnade, "CACHED_ELEMENTS", 4 * 7 * 9)  # and in the in-place kernel
    assert model._in_place_chunk(torch.device("cpu")) == 4
    with_grad = model.log_prob(x, context=c)
    assert with_grad.requires_grad
    with torch.no_grad():
        in_place = model.log_prob(x, context=c)
    torch.testing.assert_close(in_place, with_grad.detach(), rtol=0, atol=1e-12)
    # the conditional queries: each row in its own observed-first ordering, on the same kernel
    observed = torch.rand(23, 7, generator=torch.Generator().manual_seed(1)) < 0.5
    cond_grad = model.log_prob(x, observed=observed, context=c)
    marg_grad = model.marginal_log_prob(x, observed, context=c)
    assert cond_grad.requires_grad
    with torch.no_grad():
        cond = model.log_prob(x, observed=observed, context=c)
        marg = model.marginal_log_prob(x, observed, context=c)
    torch.testing.assert_close(cond, cond_grad.detach(), rtol=0, atol=1e-12)
    torch.testing.assert_close(marg, marg_grad.detach(), rtol=0, atol=1e-12)


def test_log_prob_is_differentiable_and_its_gradient_matches_the_chain_rule():
    model = small_model(n=5, k=2)
    x = all_vectors(5)[::3]
    model.log_prob(x).sum().backward()
    fast = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    by_hand = [-ordering_nll_by_hand(model, x, model.ordering(i).tolist()) for i in range(2)]
    (torch.stack(by_hand).logsumexp(0) - math.log(2)).sum().backward()
    for a, b in zip(fast, (p.grad for p in model.parameters())):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_order_agnostic_loss_is_unbiased_for_the_mean_over_all_orderings():
    n = 4
    model = small_model(n=n, k=1)
    x = torch.tensor([[1.0, 0.0, 1.0, 1.0]], dtype=torch.float64)
    with torch.no_grad():
        over_orderings = np.mean(
            [float(ordering_nll_by_hand(model, x, list(o))) for o in itertools.permutations(range(n))]
        )
        # the estimator's exact expectation: d uniform in 0..n-1, then a uniform subset of size d
        expectation = 0.0
        for d in range(n):
            subsets = list(itertools.combinations(range(n), d))
            for subset in subsets:
                observed = torch.zeros_like(x)
                observed[0, list(subset)] = 1
                nll = F.binary_cross_entropy_with_logits(model.conditional_logits(x, observed), x, reduction="none")
                expectation += float((nll * (1 - observed)).sum()) * n / (n - d) / n / len(subsets)
        assert expectation == pytest.approx(over_orderings, rel=1e-12)
        # and the sampled estimate has that mean (so d and the subsets are drawn uniformly)
        draws = model.order_agnostic_nll(x.expand(40_000, -1), torch.Generator().manual_seed(1))
        se = float(draws.std()) / math.sqrt(len(draws))
        assert abs(float(draws.mean()) - expectation) < 4 * se


def test_sampling_frequencies_match_the_exact_ensemble_probabilities():
    model = small_model(n=3, k=3, seed=2)
    with torch.no_grad():
        probs = model.log_prob(all_vectors(3)).exp().numpy()
        samples = model.sample(30_000, generator=torch.Generator().manual_seed(0)).numpy()
    index = samples @ np.array([4, 2, 1])
    counts = np.bincount(index.astype(int), minlength=8)
    expected = probs * len(samples)
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected * (1 - probs)) + 1)
    with torch.no_grad():  # one member's samples follow that member
        member = model.sample(30_000, generator=torch.Generator().manual_seed(1), mask=1).numpy() @ np.array([4, 2, 1])
        p1 = model.log_prob(all_vectors(3), mask=1).exp().numpy()
    counts1 = np.bincount(member.astype(int), minlength=8)
    assert np.all(np.abs(counts1 - p1 * 30_000) < 5 * np.sqrt(30_000 * p1 * (1 - p1)) + 1)


def test_save_load_round_trip_keeps_the_orderings(tmp_path):
    model = ardens.DeepNADE(7, hidden=[5], num_orderings=4, seed=9)
    ardens.save(model, tmp_path / "m.safetensors")
    again = ardens.load(tmp_path / "m.safetensors")
    assert torch.equal(again.orderings, model.orderings) and again.config() == model.config()
    x = all_vectors(7)[::9].float()
    with torch.no_grad():
        torch.testing.assert_close(again.log_prob(x), model.log_prob(x), rtol=0, atol=0)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="hidden"):
        ardens.DeepNADE(4, hidden=[])
    with pytest.raises(ValueError, match="ordering"):
        ardens.DeepNADE(4, ordering="reversed")
    with pytest.raises(ValueError, match="ordering"):  # not silently read as "natural"
        build_model("deepnade", 4, ModelConfig(hidden=[3], ordering="reversed"))
    with pytest.raises(ValueError, match="mask"):
        ardens.DeepNADE(4, hidden=[3], num_orderings=2).log_prob(torch.zeros(1, 4), mask=2)


def test_training_on_the_digits_beats_the_marginals(tmp_path):
    data = load_digits()
    torch.manual_seed(0)
    model = build_model("deepnade", data.dim, ModelConfig(hidden=[32, 32], num_masks=2, ordering="random"))
    result = fit(model, data, TrainConfig(epochs=4, batch_size=50, lr=0.01), tmp_path, progress=False)
    assert result.best_valid_nll < 25.0  # the independent-Bernoulli start is ~25.2 nats


def test_running_sum_draws_equal_a_network_pass_per_step(monkeypatch):
    """All-binary DeepNADE samples and imputes on the running sum (DeepNADE.draw_in_orders, one
    column's weights added per step): the same draws, for the same uniforms, as a pass of the
    whole network per step, with a context and each row in its own observed-first ordering."""
    torch.manual_seed(0)
    model = ardens.DeepNADE(6, hidden=[9, 7], num_orderings=3, context_features=2, seed=2).double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3)
    c = torch.randn(400, 2, dtype=torch.float64)
    samples = model.sample(400, generator=torch.Generator().manual_seed(1), context=c)
    # the reference: member chosen and uniforms drawn as sample_ensemble does, then n full passes
    gen = torch.Generator().manual_seed(1)
    members = torch.randint(3, (400,), generator=gen)
    u = torch.rand(400, 6, generator=gen, dtype=torch.float64)
    want = torch.zeros(400, 6, dtype=torch.float64)
    for i in range(3):
        rows = (members == i).nonzero().squeeze(1)
        x, observed = want[rows], torch.zeros(len(rows), 6, dtype=torch.float64)
        for j in model.ordering(i).tolist():
            z = model.conditional_params(x, observed, context=c[rows])[:, j]
            x[:, j] = (u[rows, j] < torch.sigmoid(z)).double()
            observed[:, j] = 1
        want[rows] = x
    assert torch.equal(samples, want)
    assert len(set(map(tuple, samples.tolist()))) > 20
    # imputation, any observed set per row: against the per-step passes of ardens.queries
    x = torch.bernoulli(torch.full((400, 6), 0.5, dtype=torch.float64), generator=gen)
    m = torch.rand(400, 6, generator=gen) < 0.4
    m[0] = False  # nothing observed: a plain sample
    fast = model.impute(x, m, generator=torch.Generator().manual_seed(2), draws=2, context=c)
    monkeypatch.delattr(ardens.DeepNADE, "draw_in_orders")
    slow = model.impute(x, m, generator=torch.Generator().manual_seed(2), draws=2, context=c)
    assert torch.equal(fast, slow)
    assert not torch.equal(fast[0], fast[1])
