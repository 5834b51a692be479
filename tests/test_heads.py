"""Typed columns (binary, categorical, real mixtures) in NADE, MADE and DeepNADE: normalized
over every column type, the log-Jacobian of the standardization applied once, autoregressive,
sampled from the right law, and the fast binary paths equal to the general one."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import chisquare, kstest

import ardens
from ardens import heads
from ardens.base import ensemble_size
from ardens.nade import slow_log_prob
from conftest import all_binary, enumerate_discrete, rank_of

MIXED = ["binary", "categorical:3", "real:3"]
DISCRETE = ["categorical:3", "binary", "categorical:4"]
LONG = ["real:2", "categorical:3", "binary", "real:1", "categorical:4"]
EQUAL = ["real:3"] * 4  # equal head widths: the unpadded path of params_by_position

KIND_ARGS = {
    "nade": {"hidden": 7, "ordering": "random", "seed": 3},
    "nade-learned": {"hidden": 7, "activation": "relu", "ordering": "random", "seed": 4, "first_hidden": "learned"},
    "made": {"hidden": [30, 30], "ordering": "random", "seed": 3},
    "made-K": {"hidden": [30, 30], "num_masks": 4, "ordering": "random", "seed": 5},
    "made-direct": {"hidden": [25, 25], "ordering": "random", "direct": True, "seed": 4, "activation": "sigmoid"},
    "deepnade-K": {"hidden": [9, 7], "num_orderings": 3, "seed": 4},
}
KINDS = list(KIND_ARGS)

# (loc, scale) of the data of the first, second, ... real column of a model
REAL_STATS = [(5.0, 3.0), (-2.0, 0.5)]


def build(kind: str, columns, *, seed: int = 0, strength: float = 3.0, **kwargs) -> ardens.base.AutoregressiveModel:
    """A small float64 model with perturbed weights (conditionals far from uniform) and, if it
    has real columns, a standardization fitted to data of mean/std ``REAL_STATS``."""
    torch.manual_seed(seed)
    kw = {"columns": columns, **KIND_ARGS[kind], **kwargs}
    model = {"nade": ardens.NADE, "made": ardens.MADE, "deepnade": ardens.DeepNADE}[kind.split("-")[0]](**kw).double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(strength).add_(0.3 * torch.randn_like(p))
    if not model.columns.all_discrete:
        model.columns.fit_standardization(fake_data(model.columns, 400, seed=seed))
    return model


def fake_data(cols: heads.Columns, rows: int, seed: int = 0) -> np.ndarray:
    """Valid rows; the i-th real column has exactly the mean and std ``REAL_STATS[i]``."""
    rng = np.random.default_rng(seed)
    out = np.zeros((rows, cols.n))
    real_seen = 0
    for j, col in enumerate(cols.list):
        if col.kind == "binary":
            out[:, j] = rng.random(rows) < 0.3
        elif col.kind == "categorical":
            out[:, j] = rng.integers(0, col.levels, rows)
        else:
            v = rng.standard_normal(rows)
            mean, std = REAL_STATS[real_seen % len(REAL_STATS)]
            out[:, j] = mean + std * (v - v.mean()) / v.std()
            real_seen += 1
    return out


def members(model) -> list[int]:
    return list(range(ensemble_size(model)))


def member_log_prob(model, x, member):
    if isinstance(model, ardens.NADE):
        assert member == 0
        return model.log_prob(x)
    return model.log_prob(x, mask=member)


# -- 1. normalization over the discrete columns ----------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_discrete_columns_sum_to_one(kind):
    model = build(kind, DISCRETE)
    rows = enumerate_discrete(model.columns)
    assert len(rows) == 3 * 2 * 4
    with torch.no_grad():
        lp = model.log_prob(rows)
        assert abs(torch.logsumexp(lp, 0).item()) < 1e-10
        assert (lp.max() - lp.min()).item() > math.log(5)  # far from uniform: the test can fail
        for member in members(model):
            assert abs(torch.logsumexp(member_log_prob(model, rows, member), 0).item()) < 1e-10


def test_discrete_normalization_check_can_fail():
    """The sum detects a leak: each column's own value added to its logits (a parameter that sees
    its own column) makes the enumerated probabilities sum to more than one."""
    model = build("made", DISCRETE)
    rows = enumerate_discrete(model.columns)
    with torch.no_grad():
        params = model.encoded_params(model.columns.encode(rows))
        own = model.columns.encode(rows)  # a column's own one-hot added to its logits: not normalized
        leaked = params.clone()
        for j in range(model.columns.n):
            ps, ins = model.columns.param_slice(j), model.columns.input_slice(j)
            leaked[:, ps] = leaked[:, ps] + 2.0 * own[:, ins][:, : ps.stop - ps.start]
        lp = model.columns.column_log_probs(leaked, rows).sum(-1)
    assert abs(torch.logsumexp(lp, 0).item()) > 1e-3


# -- 2. normalization with real columns, by quadrature -----------------------------------------

# Composite Gauss-Legendre quadrature with breakpoints at mu + t sigma of every mixture component:
# intervals of a fraction of the narrowest nearby component, out to 40 standard deviations.
_T = np.array([0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 40.0])
_T = np.concatenate([-_T[:0:-1], _T])
_GL_X, _GL_W = (torch.as_tensor(a) for a in np.polynomial.legendre.leggauss(8))


def quadrature(cols: heads.Columns, j: int, blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights ``(B, N)`` in the data's units of real column ``j``, one rule per row of
    ``blocks`` ``(B, M, 3C)`` (the rule resolves all ``M`` mixtures of a row)."""
    c = cols.list[j].components
    means, sigma = blocks[..., c : 2 * c], cols.min_scale + blocks[..., 2 * c :].exp()
    bps = (means[..., None] + sigma[..., None] * torch.as_tensor(_T)).reshape(len(blocks), -1).sort(-1).values
    a, b = bps[:, :-1, None], bps[:, 1:, None]
    z = ((a + b) / 2 + (b - a) / 2 * _GL_X).reshape(len(blocks), -1)
    w = ((b - a) / 2 * _GL_W).reshape(len(blocks), -1)
    return cols.loc[j] + cols.scale[j] * z, cols.scale[j] * w


def params_given(model, x: torch.Tensor, member: int, observed: list[int]) -> torch.Tensor:
    """Member ``member``'s parameters of the columns after ``observed`` (NADE/MADE read only a
    column's predecessors; DeepNADE is told which columns are observed)."""
    if isinstance(model, ardens.DeepNADE):
        mask = torch.zeros_like(x)
        mask[:, observed] = 1
        return model.conditional_params(x, mask)
    return model.encoded_params(model.columns.encode(x), member)


def test_quadrature_rule_integrates_a_mixture_to_one():
    """The rule itself: a wide and a very narrow component, far apart, in the data's units."""
    cols = heads.Columns(["real:2"])
    with torch.no_grad():
        cols.loc.fill_(5.0)
        cols.scale.fill_(3.0)
    block = torch.tensor([[[0.3, -0.2, -7.0, 9.0, 2.5, -6.0]]], dtype=torch.float64)
    x, w = quadrature(cols, 0, block)
    dens = cols.column_log_probs(block[:, 0, None, :].expand(-1, x.shape[1], -1), x[..., None]).exp()[..., 0]
    assert abs(float((w * dens).sum()) - 1) < 1e-9


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("columns", [["categorical:3", "real:3"], ["real:2", "binary"]])
def test_real_and_discrete_columns_integrate_to_one(kind, columns):
    model = build(kind, columns)
    cols = model.columns
    (r,) = cols.real_idx
    d = 1 - r
    levels = cols.list[d].levels if cols.list[d].kind == "categorical" else 2
    rows = torch.zeros(levels, 2, dtype=torch.float64)
    rows[:, d] = torch.arange(levels)
    rows[:, r] = cols.loc[r]

    def integral(member, blocks):
        """sum over the discrete value v of the integral over the real column, each v with the
        rule of its mixtures ``blocks[v]``."""
        nodes, weights = quadrature(cols, r, blocks)
        x = torch.zeros(levels, nodes.shape[1], 2, dtype=torch.float64)
        x[..., r], x[..., d] = nodes, rows[:, None, d]
        lp = model.log_prob(x) if member is None else member_log_prob(model, x, member)
        return float((weights * lp.exp()).sum())

    with torch.no_grad():
        blocks = []  # the real column's mixture for every discrete value, one per member
        for member in members(model):
            d_first = bool(rank_of(model.ordering(member))[d] == 0)
            blocks.append(params_given(model, rows, member, [d] if d_first else [])[:, cols.param_slice(r)])
            total = integral(member, blocks[-1][:, None])
            assert abs(total - 1) < 1e-6, f"member {member}: integral {total}"
        # one rule for all v (a real-first member's p(v | x) is not smooth in x; summed over v it is 1)
        union = torch.cat(blocks).reshape(1, -1, blocks[0].shape[-1]).expand(levels, -1, -1)
        total = integral(None, union)
        assert abs(total - 1) < 1e-6, f"ensemble: integral {total}"


@pytest.mark.parametrize("kind", KINDS)
def test_two_real_columns_integrate_to_one(kind):
    model = build(kind, ["real:2", "real:2"], activation="sigmoid")  # parameters bounded in x
    cols = model.columns
    torch.testing.assert_close(cols.loc, torch.tensor([5.0, -2.0], dtype=torch.float64))
    torch.testing.assert_close(cols.scale, torch.tensor([3.0, 0.5], dtype=torch.float64))
    with torch.no_grad():
        for member in members(model):
            first, second = model.ordering(member).tolist()
            x = cols.loc[None].clone()
            outer, w_outer = quadrature(
                cols, first, params_given(model, x, member, [])[:, None, cols.param_slice(first)]
            )
            x = cols.loc.expand(outer.shape[1], -1).clone()
            x[:, first] = outer[0]
            inner_blocks = params_given(model, x, member, [first])[:, None, cols.param_slice(second)]
            inner, w_inner = quadrature(cols, second, inner_blocks)  # a rule for every outer node
            grid = x[:, None, :].expand(-1, inner.shape[1], -1).clone()
            grid[..., second] = inner
            dens = member_log_prob(model, grid.reshape(-1, 2), member).exp().reshape(inner.shape)
            total = float((w_outer[0] * (w_inner * dens).sum(1)).sum())
            assert abs(total - 1) < 1e-6, f"member {member}: integral {total}"


# -- 3. the standardization's log-Jacobian, exactly once ----------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("columns", [MIXED, LONG])
def test_log_jacobian_is_applied_exactly_once(kind, columns):
    model = build(kind, columns)
    cols = model.columns
    real = torch.as_tensor(cols.real_idx)
    x = torch.as_tensor(fake_data(cols, 50, seed=7))
    # the same network in standardized units: loc 0, scale 1, evaluated at z = (x - loc) / scale
    unit = build(kind, columns)
    with torch.no_grad():
        unit.columns.loc.zero_()
        unit.columns.scale.fill_(1.0)
    z = x.clone()
    z[:, real] = (x[:, real] - cols.loc[real]) / cols.scale[real]
    expected_jac = -sum(math.log(REAL_STATS[i % 2][1]) for i in range(len(real)))
    assert cols.log_jacobian() == pytest.approx(expected_jac, abs=1e-12)
    with torch.no_grad():
        for member in members(model):
            diff = member_log_prob(model, x, member) - member_log_prob(unit, z, member)
            torch.testing.assert_close(diff, torch.full_like(diff, expected_jac), rtol=0, atol=1e-10)
        diff = model.log_prob(x) - unit.log_prob(z)
        torch.testing.assert_close(diff, torch.full_like(diff, expected_jac), rtol=0, atol=1e-10)


def test_column_log_probs_add_minus_log_scale_to_real_columns_only():
    cols = heads.Columns(LONG)
    cols.fit_standardization(fake_data(cols, 300))
    unit = heads.Columns(LONG)
    x = torch.as_tensor(fake_data(cols, 20, seed=1))
    params = torch.randn(20, cols.param_width, dtype=torch.float64)
    diff = cols.column_log_probs(params, x) - unit.column_log_probs(params, cols.standardize(x))
    expected = torch.zeros(cols.n, dtype=torch.float64)
    expected[0], expected[3] = -math.log(3.0), -math.log(0.5)
    torch.testing.assert_close(diff, expected.expand(20, -1), rtol=0, atol=1e-12)


# -- 4. the autoregressive property -----------------------------------------------------------


@pytest.mark.parametrize("kind", ["nade", "nade-learned", "made", "made-K", "made-direct"])
@pytest.mark.parametrize("columns", [MIXED, DISCRETE, LONG])
def test_encoded_params_are_autoregressive_by_jacobian(kind, columns):
    model = build(kind, columns)
    cols = model.columns
    gen = torch.Generator().manual_seed(0)
    for member in members(model):
        rank = rank_of(model.ordering(member))
        allowed = rank[cols.input_column][None, :] < rank[cols.output_column][:, None]  # (outputs, inputs)
        seen = torch.zeros_like(allowed)
        for _ in range(4):
            e = torch.randn(cols.input_width, generator=gen, dtype=torch.float64)
            J = torch.autograd.functional.jacobian(lambda v, m=member: model.encoded_params(v[None], m)[0], e)
            assert J.shape == (cols.param_width, cols.input_width)
            assert (J[~allowed] == 0).all(), f"{kind} member {member}: a parameter sees its own or a later column"
            seen |= J != 0
        if kind.startswith("nade") or kind == "made-direct":
            assert torch.equal(seen, allowed), f"{kind} member {member}: an earlier input is ignored"
        else:
            assert seen[allowed].double().mean() > 0.9, f"{kind} member {member}: most earlier inputs ignored"


@pytest.fixture(params=["gemm", "cumsum"])
def prefix_path(request, monkeypatch):
    """Both ways of summing the columns before each position: one masked GEMM (narrow inputs)
    and per-column products with a cumulative sum (wide inputs, forced here)."""
    if request.param == "cumsum":
        monkeypatch.setattr(ardens._columnwise, "GEMM_PREFIX_WIDTH", 0)
    return request.param


@pytest.mark.parametrize("first_hidden", ["bias", "learned"])
@pytest.mark.parametrize("columns", [MIXED, DISCRETE, LONG, EQUAL])
def test_nade_log_prob_equals_slow_definition(first_hidden, columns, prefix_path):
    model = build("nade" if first_hidden == "bias" else "nade-learned", columns)
    x = torch.as_tensor(fake_data(model.columns, 40, seed=3))
    with torch.no_grad():
        torch.testing.assert_close(model.log_prob(x), slow_log_prob(model, x), rtol=0, atol=1e-10)


@pytest.mark.parametrize("columns", [MIXED, LONG])
def test_deepnade_conditionals_ignore_unobserved_values(columns):
    model = build("deepnade-K", columns)
    cols = model.columns
    gen = torch.Generator().manual_seed(1)
    x = torch.as_tensor(fake_data(cols, 6, seed=2))
    real = torch.zeros(cols.n, dtype=torch.bool)
    real[torch.as_tensor(cols.real_idx)] = True
    seen_real = 0
    for row in x:
        observed = torch.randint(0, 2, (cols.n,), generator=gen).double()
        J = torch.autograd.functional.jacobian(lambda v, m=observed: model.conditional_params(v, m), row)
        assert (J[:, (observed == 0) & real] == 0).all(), "a conditional reads an unobserved real value"
        for j in np.flatnonzero(((observed == 1) & real).numpy()):
            assert (J[:, j] != 0).all(), "an observed real value is ignored"
            seen_real += 1
        with torch.no_grad():  # changing an unobserved discrete value changes nothing, an observed one does
            base = model.conditional_params(row, observed)
            for j, col in enumerate(cols.list):
                if not col.discrete:
                    continue
                other = row.clone()
                other[j] = (row[j] + 1) % (col.levels if col.kind == "categorical" else 2)
                changed = model.conditional_params(other, observed)
                if observed[j] == 0:
                    assert torch.equal(changed, base)
                else:
                    assert not torch.equal(changed, base)
    assert seen_real > 0


@pytest.mark.parametrize("columns", [MIXED, DISCRETE, LONG, EQUAL])
def test_deepnade_log_prob_is_the_chain_rule_of_conditional_params(columns, prefix_path):
    model = build("deepnade-K", columns)
    cols = model.columns
    x = torch.as_tensor(fake_data(cols, 30, seed=4))
    with torch.no_grad():
        each = []
        for i in members(model):
            observed = torch.zeros_like(x)
            total = torch.zeros(len(x), dtype=torch.float64)
            for j in model.ordering(i).tolist():
                total = total + cols.column_log_probs(model.conditional_params(x, observed), x)[:, j]
                observed[:, j] = 1
            torch.testing.assert_close(model.log_prob(x, mask=i), total, rtol=0, atol=1e-10)
            each.append(total)
        ensemble = torch.stack(each).logsumexp(0) - math.log(len(each))
        torch.testing.assert_close(model.log_prob(x), ensemble, rtol=0, atol=1e-10)
        assert len({tuple(model.ordering(i).tolist()) for i in members(model)}) > 1


# -- 5. sampling law --------------------------------------------------------------------------


def _row_codes(cols: heads.Columns, x: torch.Tensor) -> np.ndarray:
    sizes = [c.levels if c.kind == "categorical" else 2 for c in cols.list]
    return np.ravel_multi_index(x.long().T.numpy(), sizes)


@pytest.mark.parametrize("kind", ["nade", "nade-learned", "made-K", "made-direct", "deepnade-K"])
def test_discrete_samples_follow_the_enumerated_probabilities(kind):
    model = build(kind, DISCRETE)
    cols = model.columns
    rows = enumerate_discrete(cols)
    assert np.array_equal(_row_codes(cols, rows), np.arange(len(rows)))
    with torch.no_grad():
        probs = model.log_prob(rows).exp().numpy()
        samples = model.sample(20_000, generator=torch.Generator().manual_seed(11))
    assert samples.shape == (20_000, 3)
    counts = np.bincount(_row_codes(cols, samples), minlength=len(rows))
    assert chisquare(counts, probs / probs.sum() * counts.sum()).pvalue > 1e-3
    # negative control: the same samples against a different model's probabilities
    other = build(kind, DISCRETE, seed=99)
    with torch.no_grad():
        wrong = other.log_prob(rows).exp().numpy()
    assert chisquare(counts, wrong / wrong.sum() * counts.sum()).pvalue < 1e-6


def _real_cdf(cols: heads.Columns, j: int, block: torch.Tensor):
    def cdf(v):
        z = (torch.as_tensor(np.asarray(v), dtype=torch.float64) - cols.loc[j]) / cols.scale[j]
        return heads.mixture_cdf(block, z, cols.min_scale).numpy()

    return cdf


def _first_params(model, x: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """Parameters ``(B, param_width)`` given the observed columns (NADE/MADE: by the ordering)."""
    if isinstance(model, ardens.DeepNADE):
        return model.conditional_params(x, observed)
    return model.params(x)


SINGLE = {
    "nade": lambda cols, order: ardens.NADE(columns=cols, hidden=6, ordering=order),
    "made": lambda cols, order: ardens.MADE(columns=cols, hidden=[20, 20], ordering=order, seed=1),
    "deepnade": lambda cols, order: ardens.DeepNADE(columns=cols, hidden=[8, 6], ordering="natural"),
}


def _single(kind: str, columns, order) -> ardens.base.AutoregressiveModel:
    torch.manual_seed(5)
    model = SINGLE[kind](columns, order).double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0).add_(0.3 * torch.randn_like(p))
    model.columns.fit_standardization(fake_data(model.columns, 300))
    return model


@pytest.mark.parametrize("kind", ["nade", "made", "deepnade"])
def test_single_real_column_samples_follow_the_mixture(kind):
    model = _single(kind, ["real:3"], None)
    cols = model.columns
    with torch.no_grad():
        block = _first_params(model, torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1, 1))[0]
        assert torch.equal(block, _first_params(model, torch.full((1, 1), 7.5), torch.zeros(1, 1))[0])
        samples = model.sample(20_000, generator=torch.Generator().manual_seed(2))[:, 0].numpy()
        # the CDF's derivative is the density log_prob gives
        v = np.linspace(-5, 15, 9)
        h = 1e-5
        slope = (_real_cdf(cols, 0, block)(v + h) - _real_cdf(cols, 0, block)(v - h)) / (2 * h)
        density = model.log_prob(torch.as_tensor(v)[:, None]).exp().numpy()
        np.testing.assert_allclose(slope, density, rtol=1e-6, atol=1e-9)
    assert kstest(samples, _real_cdf(cols, 0, block)).pvalue > 1e-3
    shift = 0.25 * float(cols.scale[0])
    assert kstest(samples + shift, _real_cdf(cols, 0, block)).pvalue < 1e-6  # negative control


@pytest.mark.parametrize("kind", ["nade", "made", "deepnade"])
def test_real_column_given_a_binary_one_follows_its_conditional_mixture(kind):
    model = _single(kind, ["binary", "real:3"], [0, 1])
    cols = model.columns
    with torch.no_grad():
        samples = model.sample(20_000, generator=torch.Generator().manual_seed(3))
        x = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
        params = _first_params(model, x, torch.tensor([[1.0, 0.0], [1.0, 0.0]]))
        p1 = float(torch.sigmoid(_first_params(model, x, torch.zeros(2, 2))[0, 0]))
    blocks = [params[b, cols.param_slice(1)] for b in (0, 1)]
    assert not torch.allclose(blocks[0], blocks[1], atol=1e-2), "the conditional should depend on the binary value"
    b = samples[:, 0].numpy()
    assert set(np.unique(b)) <= {0.0, 1.0}
    assert abs(b.mean() - p1) < 5 * math.sqrt(p1 * (1 - p1) / len(b))
    for value in (0, 1):
        part = samples[b == value, 1].numpy()
        assert len(part) > 500
        assert kstest(part, _real_cdf(cols, 1, blocks[value])).pvalue > 1e-3
        # negative control: the other value's conditional, and a shifted one, are rejected
        assert kstest(part, _real_cdf(cols, 1, blocks[1 - value])).pvalue < 1e-6
        assert kstest(part + 0.25 * float(cols.scale[1]), _real_cdf(cols, 1, blocks[value])).pvalue < 1e-6


@pytest.mark.parametrize("kind", ["nade", "made"])
def test_real_column_first_is_the_empty_prefix_mixture(kind):
    model = _single(kind, ["binary", "real:3"], [1, 0])
    cols = model.columns
    with torch.no_grad():
        block = model.params(torch.tensor([[1.0, 3.0]], dtype=torch.float64))[0, cols.param_slice(1)]
        again = model.params(torch.tensor([[0.0, -4.0]], dtype=torch.float64))[0, cols.param_slice(1)]
        assert torch.equal(block, again)
        samples = model.sample(20_000, generator=torch.Generator().manual_seed(4))[:, 1].numpy()
    assert kstest(samples, _real_cdf(cols, 1, block)).pvalue > 1e-3
    assert kstest(samples - 0.25 * float(cols.scale[1]), _real_cdf(cols, 1, block)).pvalue < 1e-6


# -- 6. fast binary paths equal the general path -----------------------------------------------


@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_binary_nade_fast_path_equals_general_path(activation):
    torch.manual_seed(0)
    model = ardens.NADE(8, hidden=9, activation=activation, ordering="random", seed=2).double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0).add_(0.3 * torch.randn_like(p))
    assert model._fast
    x = all_binary(8)[::3]
    with torch.no_grad():
        fast = model.log_prob(x)
        general = model.columns.column_log_probs(model.encoded_params(model.columns.encode(x)), x).sum(-1)
        torch.testing.assert_close(fast, slow_log_prob(model, x), rtol=0, atol=1e-10)
        torch.testing.assert_close(fast, general, rtol=0, atol=1e-10)
        torch.testing.assert_close(model.conditionals(x), model.encoded_params(x), rtol=0, atol=1e-10)
        assert abs(torch.logsumexp(model.log_prob(all_binary(8)), 0).item()) < 1e-10


@pytest.mark.parametrize(
    "ctor",
    [
        lambda: ardens.MADE(7, [30, 30], ordering="random", seed=3),
        lambda: ardens.MADE(7, [20], num_masks=3, ordering="random", direct=True, seed=4),
        lambda: ardens.MADE(7, [], ordering="random", seed=5),
    ],
)
def test_binary_made_sample_equals_sample_slow(ctor):
    torch.manual_seed(0)
    model = ctor().double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0).add_(0.3 * torch.randn_like(p))
    fast = model.sample(3000, generator=torch.Generator().manual_seed(8))
    slow = model.sample_slow(3000, generator=torch.Generator().manual_seed(8))
    assert torch.equal(fast, slow)
    assert 0.05 < fast.mean() < 0.95


@pytest.mark.parametrize(
    "columns, kwargs",
    [
        (MIXED, {"hidden": [30, 20], "num_masks": 3, "ordering": "random"}),
        (LONG, {"hidden": [25, 25], "direct": True, "ordering": "random", "seed": 2}),
        (EQUAL, {"hidden": [30], "context_features": 2, "activation": "sigmoid"}),
        (["real:2"], {"hidden": [9], "context_features": 3}),  # one column: only the context reaches it
        (["categorical:4", "binary"], {"hidden": [12, 7], "context_features": 2, "ordering": "random"}),
    ],
)
def test_typed_made_sample_by_degree_equals_sample_slow(columns, kwargs):
    """``sample`` (each hidden unit computed once, in order of degree) against ``sample_slow``
    (a masked pass per column) with the same generator: discrete draws equal, real ones equal
    up to rounding (the by-degree sums leave out the masked zeros), also with context."""
    torch.manual_seed(0)
    model = ardens.MADE(columns=columns, **kwargs).double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0).add_(0.3 * torch.randn_like(p))
    if not model.columns.all_discrete:
        model.columns.fit_standardization(fake_data(model.columns, 400))
    ctx = torch.randn(2000, model.context_features, dtype=torch.float64) if model.context_features else None
    with torch.no_grad():
        fast = model.sample(2000, generator=torch.Generator().manual_seed(8), context=ctx)
        slow = model.sample_slow(2000, generator=torch.Generator().manual_seed(8), context=ctx)
    discrete = [j for j, c in enumerate(model.columns.list) if c.kind != "real"]
    assert torch.equal(fast[:, discrete], slow[:, discrete])
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-10)
    assert fast.std(0).min() > 0  # the draws vary


def test_binary_deepnade_fast_path_equals_conditional_params_chain():
    torch.manual_seed(0)
    model = ardens.DeepNADE(6, hidden=[9, 7], num_orderings=2, seed=2).double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    x = all_binary(6)
    with torch.no_grad():
        for i in range(2):
            observed = torch.zeros_like(x)
            total = torch.zeros(len(x), dtype=torch.float64)
            for j in model.ordering(i).tolist():
                total = total + model.columns.column_log_probs(model.conditional_params(x, observed), x)[:, j]
                observed[:, j] = 1
            torch.testing.assert_close(model.log_prob(x, mask=i), total, rtol=0, atol=1e-10)


# -- 7. the training entry point --------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_forward_with_training_step_is_the_training_loss(kind):
    model = build(kind, MIXED)
    x = torch.as_tensor(fake_data(model.columns, 25, seed=5))
    K = ensemble_size(model)
    for s in range(5):
        got = model(x, training_step=s, generator=torch.Generator().manual_seed(s))
        assert got.shape == (25,)
        if isinstance(model, ardens.DeepNADE):
            expected = model.order_agnostic_nll(x, torch.Generator().manual_seed(s))
        elif isinstance(model, ardens.MADE):
            expected = -model.log_prob(x, mask=s % K)
        else:
            expected = -model.log_prob(x)
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
        torch.testing.assert_close(
            model.training_loss(x, s, torch.Generator().manual_seed(s)), expected, rtol=0, atol=0
        )
    if K > 1 and isinstance(model, ardens.MADE):  # the step chooses the member
        assert not torch.equal(model(x, training_step=0), model(x, training_step=1))
    torch.testing.assert_close(model(x), model.log_prob(x), rtol=0, atol=0)


# -- 8. init_from_data ------------------------------------------------------------------------


def _zero_weights(model) -> None:
    with torch.no_grad():
        if isinstance(model, ardens.NADE):
            model.W.zero_()
            model.V.zero_()
        else:
            for layer in model.layers:
                layer.weight.zero_()
            if getattr(model, "direct_layer", None) is not None:
                model.direct_layer.weight.zero_()


@pytest.mark.parametrize("kind", KINDS)
def test_init_from_data_starts_every_head_at_its_marginal(kind):
    columns = ["binary", "categorical:4", "real:3", "real", "binary"]
    model = build(kind, columns)
    cols = model.columns
    rng = np.random.default_rng(3)
    rows = 2000
    skewed = rng.gamma(4.0, 1.0, rows)
    data = np.stack(
        [
            rng.random(rows) < 0.3,
            rng.choice(4, rows, p=[0.5, 0.3, 0.2, 0.0]),  # level 3 never seen: clipped, not -inf
            5.0 + 3.0 * rng.standard_normal(rows),
            -20.0 + 0.1 * skewed,
            np.ones(rows),  # constant binary column: p clipped below 1
        ],
        1,
    ).astype(np.float64)
    model.init_from_data(data)
    _zero_weights(model)
    np.testing.assert_allclose(cols.loc[[2, 3]].numpy(), data[:, [2, 3]].mean(0), rtol=1e-12)
    np.testing.assert_allclose(cols.scale[[2, 3]].numpy(), data[:, [2, 3]].std(0), rtol=1e-12)
    x = torch.as_tensor(data[:20])
    with torch.no_grad():
        if isinstance(model, ardens.DeepNADE):
            params = model.conditional_params(x, torch.zeros_like(x))
        else:
            params = model.params(x)
    assert torch.equal(params, params[:1].expand_as(params)), "zero weights: parameters do not depend on x"
    p = params[0]
    # binary: p = mean, clipped
    assert float(torch.sigmoid(p[cols.param_slice(0)])) == pytest.approx(data[:, 0].mean(), abs=1e-12)
    assert float(torch.sigmoid(p[cols.param_slice(4)])) == pytest.approx(1 - 1e-3, abs=1e-12)
    # categorical: frequencies (the unseen level at the clip)
    freq = np.bincount(data[:, 1].astype(int), minlength=4) / rows
    probs = p[cols.param_slice(1)].softmax(-1).numpy()
    np.testing.assert_allclose(probs, np.clip(freq, 1e-3, None) / np.clip(freq, 1e-3, None).sum(), atol=1e-12)
    np.testing.assert_allclose(probs, freq, atol=2e-3)
    # real: the mixture's mean, in the data's units, near the data's mean
    for j in (2, 3):
        c = cols.list[j].components
        block = p[cols.param_slice(j)]
        mean_z = float((block[:c].softmax(-1) * block[c : 2 * c]).sum())
        mean_x = float(cols.loc[j] + cols.scale[j] * mean_z)
        assert abs(mean_x - data[:, j].mean()) < 0.1 * data[:, j].std()
    # and log_prob is the product of these marginals
    with torch.no_grad():
        torch.testing.assert_close(model.log_prob(x), cols.column_log_probs(params, x).sum(-1), rtol=0, atol=1e-12)


# -- 9. save / load ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("min_scale", [None, 0.02])
def test_save_load_keeps_log_prob_for_every_head(kind, min_scale, tmp_path):
    model = build(kind, LONG, min_scale=min_scale)
    x = torch.as_tensor(fake_data(model.columns, 40, seed=6))
    path = tmp_path / "m.safetensors"
    ardens.save(model, path)
    again = ardens.load(path)
    assert type(again) is type(model) and again.config() == model.config()
    assert again.columns.specs() == LONG
    assert again.columns.min_scale == model.columns.min_scale
    assert torch.equal(again.columns.loc, model.columns.loc) and torch.equal(again.columns.scale, model.columns.scale)
    with torch.no_grad():
        assert torch.equal(again.log_prob(x), model.log_prob(x))
        for member in members(model):
            assert torch.equal(member_log_prob(again, x, member), member_log_prob(model, x, member))


# -- 10. regressions --------------------------------------------------------------------------


def test_regression_made_ensemble_log_prob_and_conditionals_backward():
    model = ardens.MADE(6, [7], num_masks=2)
    model.log_prob(torch.zeros(1, 6)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    shared = ardens.MADE(6, [7], num_masks=2)  # natural ordering: shared by both members
    shared.conditionals(torch.zeros(2, 6)).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in shared.parameters() if p.grad is not None)


def test_regression_made_sampler_sees_bias_written_after_first_sample():
    m = ardens.MADE(6, [16])
    m.sample(1)
    m.layers[-1].bias.data.fill_(-20.0)
    assert m.sample(2000).mean() == 0


def test_regression_order_agnostic_nll_of_a_vector_is_a_scalar():
    model = build("deepnade-K", MIXED)
    x = torch.as_tensor(fake_data(model.columns, 5, seed=8))[:1]
    one = model.order_agnostic_nll(x[0], torch.Generator().manual_seed(4))
    two = model.order_agnostic_nll(x, torch.Generator().manual_seed(4))
    assert one.shape == () and two.shape == (1,)
    assert torch.equal(one, two[0])
    binary = ardens.DeepNADE(5, hidden=[6], num_orderings=2)
    v = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0])
    one = binary.order_agnostic_nll(v, torch.Generator().manual_seed(2))
    assert one.shape == ()
    assert torch.equal(one, binary.order_agnostic_nll(v[None], torch.Generator().manual_seed(2))[0])


def test_regression_shared_ordering_mixture_conditionals_ignore_own_value():
    torch.manual_seed(0)
    n = 200
    model = ardens.MADE(n, [300], num_masks=2, seed=1)  # natural ordering, float32
    assert torch.equal(model.ordering(0), model.ordering(1))
    x = torch.bernoulli(torch.full((n,), 0.5, dtype=torch.float32), generator=torch.Generator().manual_seed(3))
    J = torch.autograd.functional.jacobian(lambda v: model.conditionals(v[None])[0], x, vectorize=True)
    assert J.shape == (n, n) and J.dtype == torch.float32
    assert (torch.diagonal(J) == 0).all(), "output k depends on x_k"
    assert (torch.triu(J) == 0).all(), "output k depends on a later input"
    assert (torch.tril(J, -1) != 0).sum() > 0.9 * n * (n - 1) / 2, "earlier inputs should reach output k"
    # and not by round-off either: flipping x_k leaves output k bit for bit the same
    with torch.no_grad():
        z = model.conditionals(x[None])[0]
        for k in torch.randperm(n, generator=torch.Generator().manual_seed(4))[:40].tolist():
            flipped = x.clone()
            flipped[k] = 1 - flipped[k]
            assert model.conditionals(flipped[None])[0, k] == z[k], f"output {k} moves with x_{k}"


# -- 11. bad input --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["nade", "made-K", "deepnade-K"])
@pytest.mark.parametrize(
    "bad, message",
    [
        ([[0.0, 3.0, 5.0]], r"row 0, column 1: expected an integer code in 0\.\.2; got 3"),
        ([[1.0, 0.0, 5.0], [0.0, -1.0, 5.0]], r"row 1, column 1: expected an integer code in 0\.\.2; got -1"),
        ([[0.0, 1.5, 5.0]], r"column 1: expected an integer code in 0\.\.2; got 1\.5"),
        ([[0.0, 1.0, float("inf")]], r"finite values; got inf at row 0, column 2"),
        ([[0.0, 1.0, -float("inf")]], r"finite values; got inf"),
        ([[0.0, float("nan"), 5.0]], r"missing value \(NaN\) at row 0, column 1"),
        ([[0.0, 1.0, float("nan")]], r"missing value \(NaN\) at row 0, column 2"),
        ([[0.0, 1.0]], r"expected shape \(batch, 3\); got shape \(1, 2\)"),
        ([[0.0, 1.0, 5.0, 1.0]], r"expected shape \(batch, 3\); got shape \(1, 4\)"),
        ([[2.0, 1.0, 5.0]], r"column 0: expected 0/1; got 2"),
    ],
)
def test_bad_input_is_a_one_line_value_error(kind, bad, message):
    model = build(kind, MIXED)
    with pytest.raises(ValueError, match=message) as err:
        model.log_prob(torch.tensor(bad, dtype=torch.float64))
    assert "\n" not in str(err.value)


def test_a_huge_log_scale_is_capped_alike_in_density_cdf_and_draws():
    """sigma = min(e^raw, e^MAX_LOG_SCALE) + min_scale everywhere: a raw whose exp overflows
    float32 gives finite draws, and the density, CDF and draws describe the same Gaussian."""
    from scipy.stats import kstest, norm

    block = torch.tensor([[0.0, 3.0, 500.0]], dtype=torch.float32).expand(4000, 3)  # one component
    sigma = math.exp(heads.MAX_LOG_SCALE) + 1e-3
    g = torch.Generator().manual_seed(0)
    draws = heads.mixture_sample(block, torch.rand(4000, generator=g), torch.rand(4000, generator=g), 1e-3)
    assert torch.isfinite(draws).all()
    z = torch.tensor([0.0, 1e8, -3e9])
    lp = heads.mixture_log_prob(block[:3].double(), z.double(), 1e-3)
    torch.testing.assert_close(lp, torch.as_tensor(norm.logpdf(z.numpy(), 3.0, sigma)), rtol=1e-12, atol=0)
    cdf = heads.mixture_cdf(block[:3].double(), z.double(), 1e-3)
    torch.testing.assert_close(cdf, torch.as_tensor(norm.cdf(z.numpy(), 3.0, sigma)), rtol=1e-9, atol=1e-12)
    assert kstest(draws.double().numpy(), norm(3.0, sigma).cdf).pvalue > 1e-3


# -- the networks' input range: clipping keeps the density exact -------------------------------


def two_real_integral(model, member: int) -> float:
    """The double integral of member ``member``'s density over two real columns (outer column
    by its empty-prefix mixture's rule, inner by a rule for every outer node)."""
    cols = model.columns
    first, second = model.ordering(member).tolist()
    x = cols.loc[None].clone()
    outer, w_outer = quadrature(cols, first, params_given(model, x, member, [])[:, None, cols.param_slice(first)])
    x = cols.loc.expand(outer.shape[1], -1).clone()
    x[:, first] = outer[0]
    inner_blocks = params_given(model, x, member, [first])[:, None, cols.param_slice(second)]
    inner, w_inner = quadrature(cols, second, inner_blocks)
    grid = x[:, None, :].expand(-1, inner.shape[1], -1).clone()
    grid[..., second] = inner
    dens = member_log_prob(model, grid.reshape(-1, 2), member).exp().reshape(inner.shape)
    return float((w_outer[0] * (w_inner * dens).sum(1)).sum())


@pytest.mark.parametrize("kind", KINDS)
def test_clipped_inputs_keep_the_density_normalized(kind):
    """A narrow input range (a tenth of a standard deviation around the mean, no margin): most
    quadrature nodes of the outer column reach the network clipped, and the joint still
    integrates to one."""
    model = build(kind, ["real:2", "real:2"], activation="relu")
    cols = model.columns
    narrow = np.array(REAL_STATS)[:, 0] + np.array(REAL_STATS)[:, 1] * np.array([[-0.1], [0.1]])
    cols.fit_input_range(narrow, margin=0.0)
    torch.testing.assert_close(cols.lo, torch.full((2,), -0.1, dtype=torch.float64))
    with torch.no_grad():
        for member in members(model):
            first = int(model.ordering(member)[0])
            x = cols.loc[None].clone()
            outer, _ = quadrature(cols, first, params_given(model, x, member, [])[:, None, cols.param_slice(first)])
            z = (outer - cols.loc[first]) / cols.scale[first]
            assert float(((z < -0.1) | (z > 0.1)).double().mean()) > 0.5  # clipping bites
            total = two_real_integral(model, member)
            assert abs(total - 1) < 1e-6, f"member {member}: integral {total}"


@pytest.mark.parametrize("columns", [["real:2", "binary", "real:3"], ["real:2", "categorical:3", "real:3"]])
def test_encode_is_each_column_encoded(columns):
    """``encode`` (vectorized without categorical columns) is the concatenation of
    ``encode_column`` over the columns: standardized, clipped to the input range, NaN kept."""
    cols = build("nade", columns).columns
    x = torch.as_tensor(fake_data(cols, 40))
    x[:5, 0] = float(cols.hi[0] * cols.scale[0] + cols.loc[0]) + 10 * float(cols.scale[0])  # above the range
    x[5:10, 2] = float(cols.lo[2] * cols.scale[2] + cols.loc[2]) - 10 * float(cols.scale[2])  # below it
    x[10, 0] = float("nan")
    z = cols.standardize(x)
    by_column = torch.cat([cols.encode_column(j, z[:, j]) for j in range(3)], dim=-1)
    encoded = cols.encode(x)
    torch.testing.assert_close(encoded, by_column, rtol=0, atol=0, equal_nan=True)
    assert torch.isnan(encoded[10, 0]) and (encoded[:5, 0] == cols.hi[0]).all()
    assert (encoded[5:10, -1] == cols.lo[2]).all()  # column 2 is the last input in both layouts


@pytest.mark.parametrize("kind", KINDS)
def test_inputs_are_clipped_only_outside_the_training_range(kind):
    """Within the training range the model is the unclipped one (same weights, bit for bit);
    outside it, every later column's parameters are those of the value clamped to the bound."""
    columns = ["real:2", "categorical:3", "real:3"]
    clipped = build(kind, columns)
    plain = build(kind, columns, input_margin=None)
    train = fake_data(clipped.columns, 400)
    assert clipped.columns.lo is not None and plain.columns.lo is None
    with torch.no_grad():
        inside = torch.as_tensor(train[:50])
        torch.testing.assert_close(clipped.log_prob(inside), plain.log_prob(inside), rtol=0, atol=0)
        cols = clipped.columns
        rank = rank_of(clipped.ordering(0))
        j0 = min((0, 2), key=lambda j: rank[j])  # the real column that comes first: something follows it
        bound = float(cols.hi[j0] * cols.scale[j0] + cols.loc[j0])  # data units
        far, at_bound = inside.clone(), inside.clone()
        far[:, j0] = bound + 3 * float(cols.scale[j0])
        at_bound[:, j0] = bound
        assert not torch.allclose(clipped.log_prob(far), plain.log_prob(far))
        for member in members(clipped):
            p_far = params_given(clipped, far, member, [j0])
            p_bound = params_given(clipped, at_bound, member, [j0])
            rank = rank_of(clipped.ordering(member))
            others = [j for j in range(3) if j != j0]
            later = others if isinstance(clipped, ardens.DeepNADE) else [j for j in others if rank[j] > rank[j0]]
            for j in later:
                s = cols.param_slice(j)
                torch.testing.assert_close(p_far[:, s], p_bound[:, s], rtol=0, atol=0)
        assert bool(torch.isfinite(clipped.log_prob(far)).all())


def test_a_checkpoint_without_an_input_range_loads_unclipped_and_can_gain_one(tmp_path):
    """Configs written before clipping existed have no ``input_margin``: they load unclipped;
    ``fit_input_range(train, margin)`` gives such a model the range a new model fits, and the
    range is saved."""
    new = build("made", ["real:2", "real:3"])
    config = {k: v for k, v in new.config().items() if k != "input_margin"}
    old = ardens.serialization.model_from_config("MADE", config).double()
    assert old.columns.lo is None and old.config()["input_margin"] is None
    old.load_state_dict({k: v for k, v in new.state_dict().items() if k not in ("columns.lo", "columns.hi")})
    train = fake_data(new.columns, 400)
    far = torch.as_tensor(train[:20] + np.array([0.0, 50.0]))
    far[:, 0] += 1e3
    with torch.no_grad():
        assert not torch.allclose(old.log_prob(far), new.log_prob(far))
        old.columns.fit_input_range(train, margin=1.0)
        torch.testing.assert_close(old.log_prob(far), new.log_prob(far), rtol=0, atol=0)
    ardens.save(old, tmp_path / "m.safetensors")
    back = ardens.load(tmp_path / "m.safetensors").double()
    assert back.config()["input_margin"] == 1.0
    torch.testing.assert_close(back.columns.hi, new.columns.hi)


@pytest.mark.parametrize("bad", [-1.0, math.inf, math.nan, True, "1"])
def test_a_bad_input_margin_is_a_one_line_error(bad):
    with pytest.raises(ValueError, match=r"^input_margin: expected a non-negative number or None"):
        heads.Columns(["real"], input_margin=bad)
    with pytest.raises(ValueError, match="input_margin"):
        ardens.MADE(columns=["real"], hidden=[4], input_margin=bad)
