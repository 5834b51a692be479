"""Conditional models p(x | c) (``context_features=C``) for NADE, MADE and DeepNADE, every column
type: every column's parameters depend on the context, the autoregressive property in x holds,
every p(. | c) is normalized and sampled from the right law, save/load, queries, errors and the
training entry point all take the context."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.stats import chisquare

import ardens
from ardens import heads
from ardens.base import ensemble_size
from ardens.nade import slow_log_prob
from conftest import enumerate_discrete, rank_of

C = 3
MIXED = ["binary", "categorical:3", "real:2"]
DISCRETE = ["categorical:3", "binary", "categorical:4"]

KIND_ARGS = {
    "nade": {"hidden": 7, "ordering": "random", "seed": 3},
    "nade-learned": {"hidden": 7, "activation": "relu", "ordering": "random", "seed": 4, "first_hidden": "learned"},
    "made-K": {"hidden": [30, 30], "num_masks": 3, "ordering": "random", "seed": 5},
    "made-direct": {"hidden": [25, 25], "ordering": "random", "direct": True, "seed": 4, "activation": "sigmoid"},
    "made-none": {"hidden": [], "ordering": "random", "seed": 2},
    "deepnade-K": {"hidden": [9, 7], "num_orderings": 3, "seed": 4},
}
KINDS = list(KIND_ARGS)
CLASSES = {"nade": ardens.NADE, "made": ardens.MADE, "deepnade": ardens.DeepNADE}
CONTEXTS = torch.tensor([[1.0, -0.5, 0.8], [-1.2, 0.9, -0.6], [0.0, 0.0, 0.0]], dtype=torch.float64)


def build(kind: str, columns, *, seed: int = 0, strength: float = 3.0, context_features: int = C, **kwargs):
    """A small float64 model with perturbed weights (context weights included) and, with real
    columns, a standardization fitted to data of mean 5 and standard deviation 3."""
    torch.manual_seed(seed)
    kw = {"columns": columns, **KIND_ARGS[kind], "context_features": context_features, **kwargs}
    model = CLASSES[kind.split("-")[0]](**kw).double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(strength).add_(0.3 * torch.randn_like(p))
    if not model.columns.all_discrete:
        model.columns.fit_standardization(fake_data(model.columns, 300, seed=seed))
    return model


def fake_data(cols: heads.Columns, rows: int, seed: int = 0) -> np.ndarray:
    if rows < 2:
        return fake_data(cols, 2, seed)[:rows]
    rng = np.random.default_rng(seed)
    out = np.zeros((rows, cols.n))
    for j, col in enumerate(cols.list):
        if col.kind == "binary":
            out[:, j] = rng.random(rows) < 0.4
        elif col.kind == "categorical":
            out[:, j] = rng.integers(0, col.levels, rows)
        else:
            v = rng.standard_normal(rows)
            out[:, j] = 5.0 + 3.0 * (v - v.mean()) / v.std()
    return out


def members(model) -> list[int]:
    return list(range(ensemble_size(model)))


def params(model, x, member, context):
    if isinstance(model, ardens.NADE):
        return model.params(x, context=context)
    return model.params(x, mask=member, context=context)


def member_log_prob(model, x, member, context):
    if isinstance(model, ardens.NADE):
        return model.log_prob(x, context=context)
    return model.log_prob(x, mask=member, context=context)


# -- every column depends on the context ---------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("columns", [MIXED, DISCRETE])
def test_every_column_parameters_depend_on_the_context(kind, columns):
    model = build(kind, columns)
    cols = model.columns
    x = torch.as_tensor(fake_data(cols, 1, seed=2))
    for member in members(model):
        J = torch.autograd.functional.jacobian(lambda c, m=member: params(model, x, m, c[None])[0], CONTEXTS[0])
        assert J.shape == (cols.param_width, C)
        for j in range(cols.n):
            assert (J[cols.param_slice(j)] != 0).any(), f"{kind} member {member}: column {j} ignores the context"
    # and a model without context has no such dependence: the same x, no context argument
    plain = build(kind, columns, context_features=0)
    assert "context_features" not in plain.config()
    assert plain.context_features == 0


def test_context_dependence_check_can_fail():
    """Without MADE's direct context-to-output map, the first column of an ordering (degree 1, no
    hidden unit below it) would ignore the context: the test above detects that."""
    model = build("made-K", MIXED)
    with torch.no_grad():
        model.context_out.weight.zero_()
    x = torch.as_tensor(fake_data(model.columns, 1))
    for member in members(model):
        J = torch.autograd.functional.jacobian(lambda c, m=member: model.params(x, m, context=c[None])[0], CONTEXTS[0])
        first = int(model.ordering(member)[0])
        assert (J[model.columns.param_slice(first)] == 0).all()
        assert (J != 0).any()


# -- the autoregressive property in x --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["nade", "nade-learned", "made-K", "made-direct", "made-none"])
def test_encoded_params_are_autoregressive_with_context(kind):
    model = build(kind, MIXED)
    cols = model.columns
    gen = torch.Generator().manual_seed(0)
    for member in members(model):
        rank = rank_of(model.ordering(member))
        allowed = rank[cols.input_column][None, :] < rank[cols.output_column][:, None]  # (outputs, inputs)
        seen = torch.zeros_like(allowed)
        for c in CONTEXTS[:2]:
            e = torch.randn(cols.input_width, generator=gen, dtype=torch.float64)
            J = torch.autograd.functional.jacobian(
                lambda v, m=member, c=c: model.encoded_params(v[None], m, context=c[None])[0], e
            )
            assert (J[~allowed] == 0).all(), f"{kind} member {member}: a parameter sees its own or a later column"
            seen |= J != 0
        assert seen[allowed].double().mean() > 0.8, f"{kind} member {member}: earlier inputs ignored"


def test_deepnade_params_are_autoregressive_with_context():
    model = build("deepnade-K", ["binary", "real:2", "real:1"])
    cols = model.columns
    x = torch.as_tensor(fake_data(cols, 1, seed=4))[0]
    for member in members(model):
        rank = rank_of(model.ordering(member))
        allowed = rank[None, :] < rank[cols.output_column][:, None]  # (outputs, columns)
        J = torch.autograd.functional.jacobian(lambda v, m=member: model.params(v[None], m, context=CONTEXTS[1])[0], x)
        assert (J[~allowed] == 0).all(), f"member {member}: a parameter sees its own or a later column"
        assert (J[allowed] != 0).double().mean() > 0.8


@pytest.mark.parametrize("first_hidden", ["bias", "learned"])
def test_nade_log_prob_with_context_equals_slow_definition(first_hidden):
    model = build("nade" if first_hidden == "bias" else "nade-learned", MIXED)
    x = torch.as_tensor(fake_data(model.columns, 6, seed=3))
    ctx = CONTEXTS[torch.arange(6) % 3]
    with torch.no_grad():
        torch.testing.assert_close(model.log_prob(x, context=ctx), slow_log_prob(model, x, ctx), rtol=0, atol=1e-10)


# -- normalization for every context -----------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_discrete_normalization_for_every_context(kind):
    model = build(kind, DISCRETE)
    rows = enumerate_discrete(model.columns)
    with torch.no_grad():
        lps = []
        for c in CONTEXTS:
            lp = model.log_prob(rows, context=c)
            assert abs(torch.logsumexp(lp, 0).item()) < 1e-10
            for member in members(model):
                assert abs(torch.logsumexp(member_log_prob(model, rows, member, c), 0).item()) < 1e-10
            lps.append(lp)
    assert (lps[0] - lps[1]).abs().max() > 0.5  # the context changes the distribution


@pytest.mark.parametrize("kind", ["nade-learned", "made-none", "deepnade-K"])
def test_real_column_integrates_to_one_for_every_context(kind):
    """sum over the binary value of the integral over the real column, by scipy's quad, with the
    mixtures' components as breakpoints."""
    extra = {"num_orderings": 2} if kind.startswith("deepnade") else {}
    model = build(kind, ["binary", "real:2"], strength=1.5, activation="sigmoid", **extra)  # smooth in x
    cols = model.columns
    loc, scale = float(cols.loc[1]), float(cols.scale[1])
    for c in CONTEXTS[:2]:
        with torch.no_grad():
            anchors = torch.tensor([[0.0, loc], [1.0, loc]], dtype=torch.float64)
            blocks = torch.cat([params(model, anchors, i, c)[:, cols.param_slice(1)] for i in members(model)])
        means = loc + scale * blocks[:, 2:4].flatten()
        sigmas = scale * (cols.min_scale + blocks[:, 4:6].exp().flatten())
        lo, hi = float((means - 12 * sigmas).min()), float((means + 12 * sigmas).max())
        points = sorted({float(v) for v in means})
        total = 0.0
        for v in (0.0, 1.0):

            def density(t, v=v, c=c):
                with torch.no_grad():
                    return model.log_prob(torch.tensor([[v, t]], dtype=torch.float64), context=c).exp().item()

            value, _ = quad(density, lo, hi, points=points, limit=200, epsabs=1e-8, epsrel=1e-8)
            total += value
        assert abs(total - 1) < 1e-6, f"{kind}, context {c.tolist()}: integral {total}"


# -- sampling ----------------------------------------------------------------------------------------


def _chisquare_pvalue(counts: np.ndarray, probs: np.ndarray) -> float:
    """Pearson's test, the cells expected fewer than 5 times pooled into one."""
    expected = probs / probs.sum() * counts.sum()
    small = expected < 5
    if small.any():
        counts = np.append(counts[~small], counts[small].sum())
        expected = np.append(expected[~small], expected[small].sum())
    return chisquare(counts, expected).pvalue


def _codes(cols: heads.Columns, x: torch.Tensor) -> np.ndarray:
    sizes = [c.levels if c.kind == "categorical" else 2 for c in cols.list]
    return np.ravel_multi_index(x.long().T.numpy(), sizes)


@pytest.mark.parametrize("kind", ["nade-learned", "made-K", "deepnade-K"])
def test_samples_with_context_follow_the_conditional(kind):
    model = build(kind, DISCRETE)
    cols = model.columns
    rows = enumerate_discrete(cols)
    probs, counts = [], []
    with torch.no_grad():
        for k, c in enumerate(CONTEXTS[:2]):
            probs.append(model.log_prob(rows, context=c).exp().numpy())
            samples = model.sample(20_000, generator=torch.Generator().manual_seed(11 + k), context=c)
            counts.append(np.bincount(_codes(cols, samples), minlength=len(rows)))
    for k in range(2):
        assert _chisquare_pvalue(counts[k], probs[k]) > 1e-3
        assert _chisquare_pvalue(counts[k], probs[1 - k]) < 1e-6  # the other context's law


@pytest.mark.parametrize("kind", ["nade", "made-K", "deepnade-K"])
def test_one_context_row_is_broadcast_to_every_sample(kind):
    model = build(kind, MIXED)
    one = model.sample(50, generator=torch.Generator().manual_seed(3), context=CONTEXTS[0])
    every = model.sample(50, generator=torch.Generator().manual_seed(3), context=CONTEXTS[0].expand(50, C))
    assert torch.equal(one, every)
    mixed = CONTEXTS[torch.arange(50) % 2]
    per_row = model.sample(50, generator=torch.Generator().manual_seed(3), context=mixed)
    assert not torch.equal(per_row, one)
    with torch.no_grad():
        assert torch.isfinite(model.log_prob(per_row, context=mixed)).all()


# -- save/load ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_keeps_the_context(kind, tmp_path):
    model = build(kind, MIXED)
    assert model.config()["context_features"] == C
    path = tmp_path / "model.safetensors"
    ardens.save(model, path)
    again = ardens.load(path).double()
    assert again.config() == model.config()
    x = torch.as_tensor(fake_data(model.columns, 20, seed=5))
    ctx = torch.randn(20, C, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(again.log_prob(x, context=ctx), model.log_prob(x, context=ctx))


# -- queries -----------------------------------------------------------------------------------------


def _observed_first(m: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    rank = rank_of(order)
    return torch.as_tensor(sorted(range(len(order)), key=lambda j: (not bool(m[j]), int(rank[j]))))


def test_deepnade_queries_with_context_equal_the_enumerated_conditional():
    model = build("deepnade-K", DISCRETE)
    rows = enumerate_discrete(model.columns)
    gen = torch.Generator().manual_seed(0)
    x = rows[torch.randint(len(rows), (6,), generator=gen)]
    m = torch.tensor([[1, 0, 1], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 0]], dtype=torch.bool)
    ctx = torch.randn(6, C, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        got = model.log_prob(x, observed=m, context=ctx)
        got_marginal = model.marginal_log_prob(x, m, context=ctx)
        for r in range(6):
            same = (rows[:, m[r]] == x[r, m[r]]).all(-1)  # every completion of the row's observed values
            joint, marginal = [], []
            for i in members(model):
                o = _observed_first(m[r], model.ordering(i))
                lp = model.log_prob(rows[same], ordering=o, context=ctx[r])
                own = (rows[same] == x[r]).all(-1)
                joint.append(lp[own][0])
                marginal.append(torch.logsumexp(lp, 0))
            joint, marginal = torch.stack(joint), torch.stack(marginal)
            expected = torch.logsumexp(joint, 0) - torch.logsumexp(marginal, 0)
            assert abs(got[r].item() - expected.item()) < 1e-10
            expected_marginal = torch.logsumexp(marginal, 0) - math.log(len(marginal))
            assert abs(got_marginal[r].item() - expected_marginal.item()) < 1e-10
        # the context matters for the answer
        other = model.log_prob(x, observed=m, context=-ctx)
        assert (other - got).abs().max() > 1e-3


@pytest.mark.parametrize("kind", ["nade", "made-K"])
def test_prefix_queries_with_context_split_the_joint(kind):
    model = build(kind, MIXED, ordering="natural")  # MADE's members share it: a prefix for all
    x = torch.as_tensor(fake_data(model.columns, 8, seed=6))
    ctx = CONTEXTS[torch.arange(8) % 3]
    first = model.ordering(0)[0]
    m = torch.zeros(8, 3, dtype=torch.bool)
    m[:, first] = True
    with torch.no_grad():
        conditional = model.log_prob(x, observed=m, context=ctx)
        marginal = model.marginal_log_prob(x, m, context=ctx)
        joint = model.log_prob(x, context=ctx)
    torch.testing.assert_close(conditional + marginal, joint, rtol=0, atol=1e-10)


@pytest.mark.parametrize("kind", ["nade", "made-K", "deepnade-K"])
def test_impute_with_context_follows_the_conditional(kind):
    """Impute the last column of the ordering given the others: frequencies match
    ``p(x_last | x_rest, c)`` by enumeration, and not the other context's."""
    model = build(kind, DISCRETE, **({"ordering": "natural"} if kind.startswith("made") else {}))
    order = model.ordering(0)
    last = int(order[-1])
    x = torch.tensor([[1.0, 0.0, 2.0]])
    m = torch.ones(1, 3, dtype=torch.bool)
    m[0, last] = False
    levels = 2 if model.columns.list[last].kind == "binary" else model.columns.list[last].levels
    cand = x.repeat(levels, 1)
    cand[:, last] = torch.arange(levels, dtype=torch.float64)
    with torch.no_grad():
        expected = [model.log_prob(cand, observed=m.expand(levels, -1), context=c).exp().numpy() for c in CONTEXTS[:2]]
        draws = model.impute(x, m, generator=torch.Generator().manual_seed(2), draws=4000, context=CONTEXTS[0])
    assert draws.shape == (4000, 1, 3)
    assert torch.equal(draws[:, 0, m[0]], x[:, m[0]].expand(4000, -1))
    counts = np.bincount(draws[:, 0, last].long().numpy(), minlength=levels)
    assert _chisquare_pvalue(counts, expected[0]) > 1e-3
    assert np.abs(expected[0] - expected[1]).max() > 0.1


# -- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["nade", "nade-learned", "made-K", "deepnade-K"])
def test_context_errors_are_one_line_value_errors(kind):
    model = build(kind, MIXED)
    x = torch.as_tensor(fake_data(model.columns, 4))
    m = torch.ones(4, 3, dtype=torch.bool)
    m[:, int(model.ordering(0)[-1])] = False
    nan = torch.zeros(4, C, dtype=torch.float64)
    nan[2, 1] = float("nan")
    calls = {
        "missing": [
            (lambda: model.log_prob(x), "context: .*width 3"),
            (lambda: model.sample(3), "context: .*width 3"),
            (lambda: model(x, training_step=0), "context: .*width 3"),
            (lambda: model.params(x), "context: .*width 3"),
            (lambda: model.marginal_log_prob(x, m), "context: .*width 3"),
            (lambda: model.impute(x, m), "context: .*width 3"),
        ],
        "width": [
            (lambda: model.log_prob(x, context=torch.zeros(4, 2)), "context: expected width 3.*got width 2"),
            (lambda: model.sample(2, context=torch.zeros(5)), "context: expected width 3.*got width 5"),
            (lambda: model.log_prob(x, context=torch.zeros(3, C)), r"context: expected shape \(4, 3\)"),
            (lambda: model.log_prob(x, context=1.0), "context: expected width 3.*scalar"),
        ],
        "nan": [
            (lambda: model.log_prob(x, context=nan), "context: .*NaN or inf at row 2, column 1"),
            (lambda: model.log_prob(x, observed=m, context=nan), "context: .*NaN"),
            (lambda: model.sample(4, context=nan.abs() / 0), "context: .*NaN or inf"),
        ],
    }
    for what, cases in calls.items():
        for call, message in cases:
            with pytest.raises(ValueError, match=message) as err:
                call()
            assert "\n" not in str(err.value), what
    plain = build(kind, MIXED, context_features=0)
    for call in (
        lambda: plain.log_prob(x, context=torch.zeros(4, C)),
        lambda: plain.sample(2, context=torch.zeros(C)),
        lambda: plain(x, training_step=1, context=torch.zeros(4, C)),
        lambda: plain.marginal_log_prob(x, m, context=torch.zeros(4, C)),
    ):
        with pytest.raises(ValueError, match=r"context: this model takes no context \(context_features=0\)"):
            call()
    with pytest.raises(ValueError, match="context_features: expected a non-negative integer"):
        CLASSES[kind.split("-")[0]](columns=MIXED, context_features=-1)


# -- the training entry point -------------------------------------------------------------------------


def test_made_forward_with_training_step_is_the_member_loss_with_context():
    model = build("made-K", MIXED)
    x = torch.as_tensor(fake_data(model.columns, 10, seed=8))
    ctx = torch.randn(10, C, dtype=torch.float64)
    for step in range(5):
        loss = model(x, training_step=step, context=ctx)
        torch.testing.assert_close(loss, -model.log_prob(x, mask=step % 3, context=ctx), rtol=0, atol=0)
        torch.testing.assert_close(model.training_loss(x, step, context=ctx), loss, rtol=0, atol=0)
    assert not torch.equal(model(x, training_step=0, context=ctx), model(x, training_step=0, context=-ctx))
    torch.testing.assert_close(model(x, context=ctx), model.log_prob(x, context=ctx), rtol=0, atol=0)
    model(x, training_step=1, context=ctx).mean().backward()
    assert model.context_layer.weight.grad.abs().sum() > 0


def test_nade_and_deepnade_training_losses_take_the_context():
    nade = build("nade-learned", MIXED)
    x = torch.as_tensor(fake_data(nade.columns, 10, seed=9))
    ctx = torch.randn(10, C, dtype=torch.float64)
    torch.testing.assert_close(nade(x, training_step=3, context=ctx), -nade.log_prob(x, context=ctx), rtol=0, atol=0)
    deep = build("deepnade-K", MIXED)
    loss = deep(x, training_step=0, generator=torch.Generator().manual_seed(1), context=ctx)
    expected = deep.order_agnostic_nll(x, torch.Generator().manual_seed(1), context=ctx)
    torch.testing.assert_close(loss, expected, rtol=0, atol=0)
    loss.mean().backward()
    assert deep.layers[0].weight.grad[:, -C:].abs().sum() > 0  # the context's columns of the first layer
