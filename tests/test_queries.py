"""Conditional queries (ardens.queries): log p(x_U | x_O), log p(x_O) and imputation, checked
against enumeration of each model's own joint (DeepNADE: the joint of the observed-first
orderings o_i', built as a copy of the model whose orderings are the o_i'), by quadrature over
real columns, and by chi-square tests of the imputed draws."""

from __future__ import annotations

import copy
import itertools
import math

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

import ardens
from ardens import heads, queries

DISCRETE = ["binary", "categorical:3", "binary", "categorical:3"]
MIXED = ["real:2", "categorical:3", "binary", "real:3"]

KIND_ARGS = {
    "nade": {"hidden": 7, "ordering": [2, 0, 3, 1]},
    "nade-binary": {"hidden": 7, "ordering": [3, 1, 0, 2]},
    "made": {"hidden": [24, 24], "ordering": "random", "seed": 3},
    "made-K": {"hidden": [24, 24], "num_masks": 3, "ordering": [1, 3, 0, 2], "seed": 5},  # one ordering, 3 masks
    "made-random-K": {"hidden": [24, 24], "num_masks": 3, "ordering": "random", "seed": 6},
    "deepnade": {"hidden": [9, 7], "num_orderings": 1, "seed": 4},
    "deepnade-K": {"hidden": [9, 7], "num_orderings": 3, "seed": 4},
}


def build(kind: str, columns=DISCRETE, *, seed: int = 0, strength: float = 3.0, **kwargs):
    """A small float64 model with perturbed weights (conditionals far from uniform); real columns
    standardized to data of mean 5, std 3."""
    torch.manual_seed(seed)
    kw = {**KIND_ARGS[kind], **kwargs}
    if kind == "nade-binary":
        kw["n_inputs"] = len(columns)
    else:
        kw["columns"] = columns
    cls = {"nade": ardens.NADE, "made": ardens.MADE, "deepnade": ardens.DeepNADE}[kind.split("-")[0]]
    model = cls(**kw).double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(strength).add_(0.3 * torch.randn_like(p))
        if not model.columns.all_discrete:
            model.columns.loc.copy_(torch.where(torch.as_tensor(model.columns._real_mask()), 5.0, 0.0))
            model.columns.scale.copy_(torch.where(torch.as_tensor(model.columns._real_mask()), 3.0, 1.0))
    return model


def enumerate_rows(cols: heads.Columns) -> torch.Tensor:
    levels = [range(c.levels) if c.kind == "categorical" else range(2) for c in cols.list]
    return torch.tensor(list(itertools.product(*levels)), dtype=torch.float64)


def enumerated(joint: torch.Tensor, rows: torch.Tensor, x: torch.Tensor, m: torch.Tensor):
    """By enumeration of ``joint`` (log p of every row of ``rows``): ``log p(x_U | x_O)`` and
    ``log p(x_O)`` for each row of ``x`` with observed mask ``m``."""
    same = rows[None] == x[:, None]  # (B, N, n)
    marg = torch.logsumexp(torch.where((same | ~m[:, None]).all(-1), joint, -math.inf), 1)
    own = joint[same.all(-1).float().argmax(1)]
    return own - marg, marg


def observed_first(order: torch.Tensor, m: torch.Tensor) -> list[int]:
    """The derived ordering o': observed columns in ``order``'s relative order, then the others."""
    o = order.tolist()
    return [j for j in o if m[j]] + [j for j in o if not m[j]]


def derived_joints(model: ardens.DeepNADE, m: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``(K, N)``: log p_{o_i'}(rows) of every member, from a copy whose orderings are the o_i' (the
    model's own, untouched, chain-rule likelihood)."""
    other = copy.deepcopy(model)
    with torch.no_grad():
        for i in range(model.num_orderings):
            other.orderings[i] = torch.tensor(observed_first(model.ordering(i), m))
        return torch.stack([other.log_prob(rows, mask=i) for i in range(model.num_orderings)])


def mixture(joints: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(joints, 0) - math.log(len(joints))


def all_masks(n: int) -> list[torch.Tensor]:
    return [torch.tensor(bits, dtype=torch.bool) for bits in itertools.product([False, True], repeat=n)]


def prefix_masks(order: torch.Tensor) -> list[torch.Tensor]:
    out = []
    for k in range(len(order) + 1):
        m = torch.zeros(len(order), dtype=torch.bool)
        m[order[:k]] = True
        out.append(m)
    return out


def group_sums(cond: torch.Tensor, rows: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``sum_{x_U} p(x_U | x_O)`` for every value of ``x_O`` (one mask ``m`` for all rows)."""
    if not m.any():
        return cond.exp().sum()[None]
    _, group = torch.unique(rows[:, m], dim=0, return_inverse=True)
    return torch.zeros(int(group.max()) + 1, dtype=cond.dtype).index_add(0, group, cond.exp())


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one thread is much faster than two on a busy machine (no spinning workers)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- 1. exact conditionals and marginals by enumeration --------------------------------------------


@pytest.mark.parametrize("kind", ["nade", "nade-binary", "made", "made-K"])
def test_prefix_conditionals_and_marginals_equal_enumeration_of_the_joint(kind):
    """NADE and MADE (a MADE ensemble sharing one ordering: the mixture's conditional) with
    observed prefixes, every prefix length in one batch, against their own joint."""
    columns = ["binary"] * 4 if kind == "nade-binary" else DISCRETE
    model = build(kind, columns)
    rows = enumerate_rows(model.columns)
    masks = prefix_masks(model.ordering(0))
    x = rows.repeat(len(masks), 1)
    m = torch.cat([mk.expand(len(rows), -1) for mk in masks])
    with torch.no_grad():
        joint = model.log_prob(rows)
        assert abs(torch.logsumexp(joint, 0).item()) < 1e-10
        cond = model.log_prob(x, observed=m)
        marg = model.marginal_log_prob(x, m)
        also = model.log_prob(x, observed=m.double())  # a 0/1 mask is the same mask
    want_cond, want_marg = enumerated(joint, rows, x, m)
    torch.testing.assert_close(cond, want_cond, rtol=0, atol=1e-10)
    torch.testing.assert_close(marg, want_marg, rtol=0, atol=1e-10)
    assert torch.equal(cond, also)
    torch.testing.assert_close(cond[: len(rows)], joint, rtol=0, atol=1e-12)  # nothing observed: the joint
    assert (marg[: len(rows)] == 0).all()
    assert (cond[-len(rows) :] == 0).all()  # everything observed
    assert (cond - joint.repeat(len(masks))).abs().max() > 0.5  # conditionals are not the joint: can fail
    for k, mk in enumerate(masks):
        sums = group_sums(cond[k * len(rows) : (k + 1) * len(rows)], rows, mk)
        torch.testing.assert_close(sums, torch.ones_like(sums), rtol=0, atol=1e-10)
    if kind == "made-K":  # one member: its own joint
        with torch.no_grad():
            joint1 = model.log_prob(rows, mask=1)
            cond1 = model.log_prob(x, observed=m, mask=1)
        torch.testing.assert_close(cond1, enumerated(joint1, rows, x, m)[0], rtol=0, atol=1e-10)
        assert (cond1 - cond).abs().max() > 1e-3


@pytest.mark.parametrize("kind", ["deepnade", "deepnade-K"])
@pytest.mark.parametrize("columns", [DISCRETE, ["binary"] * 4])
def test_deepnade_conditionals_on_any_subset_equal_the_observed_first_ensemble(kind, columns):
    """Every one of the 2^4 observed sets, all in one batch (a set per row), against the joint of
    the ensemble of the observed-first orderings o_i', enumerated."""
    model = build(kind, columns)
    rows = enumerate_rows(model.columns)
    masks = all_masks(4)
    x = rows.repeat(len(masks), 1)
    m = torch.cat([mk.expand(len(rows), -1) for mk in masks])
    with torch.no_grad():
        cond = model.log_prob(x, observed=m)
        marg = model.marginal_log_prob(x, m)
        cond1 = model.log_prob(x, observed=m, mask=0)
        joint = model.log_prob(rows)
    far_from_joint = 0.0
    for k, mk in enumerate(masks):
        part = slice(k * len(rows), (k + 1) * len(rows))
        joints = derived_joints(model, mk, rows)
        want_cond, want_marg = enumerated(mixture(joints), rows, rows, mk.expand(len(rows), -1))
        torch.testing.assert_close(cond[part], want_cond, rtol=0, atol=1e-10)
        torch.testing.assert_close(marg[part], want_marg, rtol=0, atol=1e-10)
        torch.testing.assert_close(cond1[part], enumerated(joints[0], rows, rows, mk.expand(len(rows), -1))[0])
        sums = group_sums(cond[part], rows, mk)
        torch.testing.assert_close(sums, torch.ones_like(sums), rtol=0, atol=1e-10)
        far_from_joint = max(
            far_from_joint, float((want_cond - enumerated(joint, rows, rows, mk[None])[0]).abs().max())
        )
    if kind == "deepnade-K":
        # the observed-first ensemble is not the conditional of log_prob's ensemble of the o_i: the
        # reference is the right object, and a wrong one would be caught
        assert far_from_joint > 1e-2
        assert (cond1 - cond).abs().max() > 1e-3


def test_deepnade_ordering_keyword_is_a_copy_with_that_ordering():
    model = build("deepnade-K")
    rows = enumerate_rows(model.columns)
    order = [3, 0, 2, 1]
    other = copy.deepcopy(model)
    with torch.no_grad():
        other.orderings[0] = torch.tensor(order)
        lp = model.log_prob(rows, ordering=order)
        torch.testing.assert_close(lp, other.log_prob(rows, mask=0), rtol=0, atol=1e-12)
        assert abs(torch.logsumexp(lp, 0).item()) < 1e-10
        m = torch.tensor([[True, False, False, True]]).expand(len(rows), -1)
        torch.testing.assert_close(
            model.log_prob(rows, observed=m, ordering=order), other.log_prob(rows, observed=m, mask=0)
        )
        torch.testing.assert_close(
            model.marginal_log_prob(rows, m, ordering=order), other.marginal_log_prob(rows, m, mask=0)
        )
    with pytest.raises(ValueError, match="mask or ordering"):
        model.log_prob(rows, mask=0, ordering=order)
    with pytest.raises(ValueError, match="permutation"):
        model.log_prob(rows, ordering=[0, 1, 1, 2])
    with pytest.raises(ValueError, match="only DeepNADE"):
        queries.conditional_log_prob(build("nade"), rows, m, ordering=order)


def test_deepnade_explicit_ordering_is_member_0_and_survives_save_load(tmp_path):
    torch.manual_seed(0)
    model = ardens.DeepNADE(columns=DISCRETE, hidden=[8], num_orderings=3, ordering=[2, 3, 0, 1], seed=7)
    plain = ardens.DeepNADE(columns=DISCRETE, hidden=[8], num_orderings=3, seed=7)
    assert model.ordering(0).tolist() == [2, 3, 0, 1]
    for i in (1, 2):
        assert torch.equal(model.ordering(i), plain.ordering(i))
    assert model.config()["ordering"] == [2, 3, 0, 1]
    ardens.save(model, tmp_path / "m.safetensors")
    again = ardens.load(tmp_path / "m.safetensors")
    assert torch.equal(again.orderings, model.orderings)
    assert again.config() == model.config()
    from_array = ardens.DeepNADE(columns=DISCRETE, hidden=[8], ordering=np.array([1, 0, 3, 2]))
    assert from_array.ordering(0).tolist() == [1, 0, 3, 2] and from_array.config()["ordering"] == [1, 0, 3, 2]
    for bad in ([0, 1, 2], [0, 0, 1, 2], "sideways", None):
        with pytest.raises(ValueError, match="ordering"):
            ardens.DeepNADE(columns=DISCRETE, hidden=[8], ordering=bad)


@pytest.mark.parametrize("kind", ["nade", "made", "made-random-K"])
def test_observed_sets_that_are_not_prefixes_raise(kind):
    model = build(kind)
    order = model.ordering(0)
    x = torch.zeros(3, 4, dtype=torch.float64)
    m = torch.zeros(3, 4, dtype=torch.bool)
    m[0, order[:2]] = True  # a prefix
    m[2, order[1]] = True  # the second column without the first
    for call in (
        lambda: model.log_prob(x, observed=m),
        lambda: model.marginal_log_prob(x, m),
        lambda: model.impute(x, m),
    ):
        with pytest.raises(ValueError, match=r"prefix.*row 2.*DeepNADE") as err:
            call()
        assert "\n" not in str(err.value)
    if kind == "made-random-K":  # a prefix of member 0 only: fine for member 0, not for the mixture
        assert len({tuple(model.ordering(i).tolist()) for i in range(3)}) == 3
        first = m[:1]
        model.log_prob(x[:1], observed=first, mask=0)
        with pytest.raises(ValueError, match="prefix.*row 0.*member"):
            model.log_prob(x[:1], observed=first)


# -- 2. real columns, by quadrature ----------------------------------------------------------------

_T = np.array([0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 40.0])
_T = np.concatenate([-_T[:0:-1], _T])
_GL_X, _GL_W = (torch.as_tensor(a) for a in np.polynomial.legendre.leggauss(8))


def quadrature(cols: heads.Columns, j: int, blocks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Legendre nodes and weights ``(N,)`` in the data's units of real column ``j``, with
    breakpoints at mu + t sigma of every mixture block ``(M, 3C)`` (as in test_heads)."""
    c = cols.list[j].components
    means, sigma = blocks[:, c : 2 * c], cols.min_scale + blocks[:, 2 * c :].exp()
    bps = (means[..., None] + sigma[..., None] * torch.as_tensor(_T)).reshape(-1).sort().values
    a, b = bps[:-1, None], bps[1:, None]
    z = ((a + b) / 2 + (b - a) / 2 * _GL_X).reshape(-1)
    w = ((b - a) / 2 * _GL_W).reshape(-1)
    return cols.loc[j] + cols.scale[j] * z, cols.scale[j] * w


def real_blocks(model, x: torch.Tensor, observed: torch.Tensor, j: int) -> torch.Tensor:
    """Every member's mixture block of column ``j`` given the observed columns (all prefixes here)."""
    with torch.no_grad():
        if isinstance(model, ardens.DeepNADE):
            return model.conditional_params(x, observed)[:, model.columns.param_slice(j)]
        k = ardens.base.ensemble_size(model)
        return torch.cat([model.params(x, mask=i)[:, model.columns.param_slice(j)] for i in range(k)])


@pytest.mark.parametrize("kind", ["nade", "made", "made-K", "deepnade-K"])
def test_real_column_given_a_binary_one_integrates_to_one(kind):
    """p(real | binary) integrates to 1, and p(binary) is the integral of the joint over the real
    column (NADE/MADE: their joint, binary first; DeepNADE: every o_i' is (0, 1))."""
    columns = ["binary", "real:3"]
    model = build(kind, columns, **({} if kind.startswith("deepnade") else {"ordering": [0, 1]}))
    cols = model.columns
    margs = []
    for b in (0.0, 1.0):
        x = torch.tensor([[b, 0.0]], dtype=torch.float64)
        nodes, weights = quadrature(cols, 1, real_blocks(model, x, torch.tensor([[1.0, 0.0]]), 1))
        grid = torch.stack([torch.full_like(nodes, b), nodes], 1)
        m = torch.tensor([True, False]).expand(len(nodes), -1)
        with torch.no_grad():
            cond = model.log_prob(grid, observed=m)
            joint = model.log_prob(grid, ordering=[0, 1]) if kind.startswith("deepnade") else model.log_prob(grid)
            marg = model.marginal_log_prob(torch.tensor([[b, float("nan")]], dtype=torch.float64), m[:1])
        assert abs(float((weights * cond.exp()).sum()) - 1) < 1e-6
        assert abs(float((weights * joint.exp()).sum()) - float(marg.exp())) < 1e-6
        margs.append(float(marg.exp()))
    assert abs(sum(margs) - 1) < 1e-10 and min(margs) < 0.45  # far from a fair coin: can fail


def test_deepnade_binary_given_a_real_column_and_the_real_marginal():
    """The other way round (DeepNADE only: the real column is first in every o_i')."""
    model = build("deepnade-K", ["binary", "real:3"])
    cols = model.columns
    m = torch.tensor([False, True])
    nodes, weights = quadrature(
        cols, 1, real_blocks(model, torch.zeros(1, 2, dtype=torch.float64), torch.zeros(1, 2), 1)
    )
    with torch.no_grad():
        grid = torch.stack([torch.full_like(nodes, float("nan")), nodes], 1)
        marg = model.marginal_log_prob(grid, m.expand(len(nodes), -1))
        p1 = model.log_prob(torch.stack([torch.ones_like(nodes), nodes], 1), observed=m.expand(len(nodes), -1))
        p0 = model.log_prob(torch.stack([torch.zeros_like(nodes), nodes], 1), observed=m.expand(len(nodes), -1))
    assert abs(float((weights * marg.exp()).sum()) - 1) < 1e-6
    torch.testing.assert_close(p0.exp() + p1.exp(), torch.ones_like(p0), rtol=0, atol=1e-12)
    assert float(p1.exp().max() - p1.exp().min()) > 0.1  # the binary column depends on the real one


# -- 3. imputation: the sampling law ---------------------------------------------------------------


def _codes(cols: heads.Columns, x: torch.Tensor, idx: list[int]) -> np.ndarray:
    sizes = [cols.list[j].levels if cols.list[j].kind == "categorical" else 2 for j in idx]
    return np.ravel_multi_index(x[:, idx].long().T.numpy(), sizes)


@pytest.mark.parametrize("kind, observed_values", [("deepnade-K", [0.0, 2.0]), ("made-K", [2.0, 0.0])])
def test_imputed_draws_follow_the_enumerated_conditional(kind, observed_values):
    """Columns 1 and 3 observed (for made-K a prefix of the shared ordering), at values where the
    members' posteriors p_i(x_O) are far from uniform, so that weighting the members 1/K is caught."""
    model = build(kind)
    cols = model.columns
    rows = enumerate_rows(cols)
    mk = torch.tensor([False, True, False, True])
    if kind == "deepnade-K":
        joints = derived_joints(model, mk, rows)
    else:
        assert torch.equal(mk, prefix_masks(model.ordering(0))[2])
        with torch.no_grad():
            joints = torch.stack([model.log_prob(rows, mask=i) for i in range(3)])
    unobs = [0, 2]
    x = torch.tensor([[float("nan"), observed_values[0], float("nan"), observed_values[1]]], dtype=torch.float64)
    cand = x.expand(len(rows), -1).clone()
    cand[:, unobs] = rows[:, unobs]
    cand = torch.unique(cand, dim=0)  # every completion, in code order of the unobserved columns
    assert np.array_equal(_codes(cols, cand, unobs), np.arange(len(cand)))
    m_c = mk.expand(len(cand), -1)
    want = enumerated(mixture(joints), rows, cand, m_c)[0].exp().numpy()
    # the likely bug: members weighted 1/K instead of by their posterior p_i(x_O)
    flat_weights = torch.stack([enumerated(j, rows, cand, m_c)[0] for j in joints]).exp().mean(0).numpy()
    draws = model.impute(x, mk[None], generator=torch.Generator().manual_seed(3), draws=20_000)
    assert draws.shape == (20_000, 1, 4)
    assert torch.equal(draws[:, 0, mk], x[0, mk].expand(20_000, -1))
    counts = np.bincount(_codes(cols, draws[:, 0], unobs), minlength=len(cand))
    assert abs(want.sum() - 1) < 1e-10
    assert chisquare(counts, want * counts.sum()).pvalue > 1e-3
    assert chisquare(counts, flat_weights / flat_weights.sum() * counts.sum()).pvalue < 1e-6
    wrong = np.roll(want, 1)
    assert chisquare(counts, wrong * counts.sum()).pvalue < 1e-6


def test_imputing_with_nothing_observed_samples_the_joint():
    model = build("deepnade-K")
    rows = enumerate_rows(model.columns)
    x = torch.full((1, 4), float("nan"), dtype=torch.float64)
    draws = model.impute(
        x, torch.zeros(1, 4, dtype=torch.bool), generator=torch.Generator().manual_seed(1), draws=20_000
    )
    counts = np.bincount(_codes(model.columns, draws[:, 0], [0, 1, 2, 3]), minlength=len(rows))
    with torch.no_grad():
        probs = model.log_prob(rows).exp().numpy()
    assert chisquare(counts, probs / probs.sum() * counts.sum()).pvalue > 1e-3
    assert chisquare(counts, np.roll(probs, 1) / probs.sum() * counts.sum()).pvalue < 1e-6


# -- 4. imputation: values, shapes, fills, errors ----------------------------------------------------


def _mixed_batch(model, rows: int = 6, seed: int = 0):
    """Rows of MIXED with real values in many bits and per-row observed sets (prefixes of member 0's
    ordering for NADE/MADE, anything for DeepNADE)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.stack(
        [
            5 + 3 * torch.randn(rows, generator=g, dtype=torch.float64),
            torch.randint(3, (rows,), generator=g).double(),
            torch.randint(2, (rows,), generator=g).double(),
            5 + 3 * torch.randn(rows, generator=g, dtype=torch.float64),
        ],
        1,
    )
    if isinstance(model, ardens.DeepNADE):
        m = torch.rand(rows, 4, generator=g) < 0.5
    else:
        masks = prefix_masks(model.ordering(0))
        m = torch.stack([masks[i % 4] for i in range(rows)])
    m[0] = False
    m[1] = True
    return x, m


@pytest.mark.parametrize("kind", ["nade", "made-K", "deepnade-K"])
def test_impute_keeps_observed_entries_bit_for_bit(kind):
    model = build(kind, MIXED)
    x, m = _mixed_batch(model)
    given = torch.where(m, x, torch.tensor(float("nan"), dtype=torch.float64))
    before = given.clone()
    out = model.impute(given, m, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.float64
    assert torch.equal(given.isnan(), before.isnan()) and torch.equal(given[m], before[m])  # input untouched
    assert torch.equal(out[m], x[m])
    assert torch.equal(out[1], x[1])  # a fully observed row comes back as it was
    model.check_input(out)  # valid values everywhere
    assert torch.isfinite(out).all()
    assert not torch.equal(out[~m], x[~m])
    many = model.impute(given, m, generator=torch.Generator().manual_seed(0), draws=3)
    assert many.shape == (3, *x.shape)
    assert torch.equal(many[:, m], x[m].expand(3, -1))
    real = torch.zeros_like(m)
    real[:, [0, 3]] = True
    drawn = many[:, ~m & real]  # every unobserved real entry drawn (a density: draws never repeat)
    assert drawn.numel() and (drawn[0] != drawn[1]).all() and (drawn[1] != drawn[2]).all()
    single = model.impute(given.float(), m.int(), draws=2)  # float32 x, 0/1 int mask
    assert single.dtype == torch.float32 and torch.equal(single[:, m], given.float()[m].expand(2, -1))
    one_row = model.impute(given[0], m[0], generator=torch.Generator().manual_seed(0))
    assert one_row.shape == (4,)


@pytest.mark.parametrize("kind", ["made-K", "deepnade-K"])
def test_fill_mean_and_mode_summarize_the_same_draws(kind):
    model = build(kind, MIXED)
    x, m = _mixed_batch(model)
    draws = model.impute(x, m, generator=torch.Generator().manual_seed(5), draws=40)
    mean = model.impute(x, m, generator=torch.Generator().manual_seed(5), draws=40, fill="mean")
    mode = model.impute(x, m, generator=torch.Generator().manual_seed(5), draws=40, fill="mode")
    assert mean.shape == x.shape
    assert torch.equal(mean, mode)
    assert torch.equal(mean[m], x[m])
    real, discrete = [0, 3], [1, 2]
    torch.testing.assert_close(mean[:, real][~m[:, real]], draws.mean(0)[:, real][~m[:, real]], rtol=0, atol=1e-12)
    for j in discrete:
        for r in range(len(x)):
            if not m[r, j]:
                counts = np.bincount(draws[:, r, j].long().numpy(), minlength=3)
                assert mean[r, j].item() == int(np.argmax(counts))  # numpy: first maximum, the smallest code
    # ties go to the smallest code
    tied = torch.tensor([[[5.0, 2, 1, 0]], [[6.0, 1, 0, 0]], [[7.0, 2, 0, 0]], [[8.0, 1, 1, 0]]], dtype=torch.float64)
    assert queries._summarize(model, tied)[0].tolist() == [6.5, 1.0, 0.0, 0.0]


def test_errors_are_one_line_value_errors():
    model = build("deepnade-K", MIXED)
    x, m = _mixed_batch(model)
    nan_obs = x.clone()
    nan_obs[2, m[2].nonzero()[0, 0]] = float("nan")
    nan_unobs = x.clone()
    nan_unobs[0, 1] = float("nan")
    cases = [
        (lambda: model.impute(x, m[:, :3]), r"observed: expected shape \(6, 4\) \(that of x\); got shape \(6, 3\)"),
        (lambda: model.log_prob(x, observed=m[:2]), r"shape \(6, 4\).*shape \(2, 4\)"),
        (lambda: model.impute(x, torch.ones_like(m)), "nothing to impute: every entry is observed"),
        (lambda: model.impute(nan_obs, m), r"NaN.*row 2.*observed entry"),
        (lambda: model.marginal_log_prob(nan_obs, m), r"NaN.*row 2.*observed entry"),
        (lambda: model.log_prob(nan_unobs, observed=m), r"NaN.*row 0, column 1.*unobserved entry"),
        (lambda: model.impute(x, m.double() * 2), "observed: expected a boolean or 0/1 mask"),
        (lambda: model.impute(x, m, fill="median"), "fill: expected one of"),
        (lambda: model.impute(x, m, draws=0), "draws: expected a positive integer"),
        (lambda: model.impute(x, m, mask=3), "mask: expected an integer in"),
        (lambda: model.impute(x[:, :3], m[:, :3]), r"expected shape \(batch, 4\)"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message) as err:
            call()
        assert "\n" not in str(err.value)
    # unobserved entries are never read by impute and marginal_log_prob: NaN is fine there
    model.impute(nan_unobs, m)
    assert torch.isfinite(model.marginal_log_prob(nan_unobs, m)).all()


@pytest.mark.parametrize("kind", ["nade", "made-K", "deepnade-K"])
def test_conditional_log_prob_has_gradients(kind):
    model = build(kind, MIXED)
    x, m = _mixed_batch(model)
    model.log_prob(x, observed=m).sum().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("kind", ["nade-binary", "made", "made-K"])
@pytest.mark.parametrize("engine", ["kernel", "torch"])
def test_prefix_imputation_on_the_sampling_kernel_equals_a_pass_per_column(kind, engine, monkeypatch):
    """All-binary NADE and MADE impute an observed prefix on their sampling kernels (the observed
    values kept, the rest drawn in order): the same draws, for the same uniforms, as one network
    pass per unobserved column, and their law is the enumerated conditional (chi-square)."""
    if engine == "torch":  # NADE's torch fallback of the kernel
        monkeypatch.setattr(ardens._nade_ops, "_use_cpu_kernel", lambda *a: False)
    model = build(kind, ["binary"] * 4)
    n_masks = ardens.base.ensemble_size(model)
    rows = enumerate_rows(model.columns)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 2, (300, 4), generator=gen).double()
    m = torch.stack([prefix_masks(model.ordering(0))[k] for k in torch.randint(0, 4, (300,), generator=gen)])
    assert model._draw_given(x, m, 0, torch.rand(300, 4, 1, dtype=torch.float64)) is not None  # the kernel applies
    fast = model.impute(x, m, generator=torch.Generator().manual_seed(1), draws=2)
    with monkeypatch.context() as patch:
        patch.setattr(type(model), "_draw_given", lambda *a: None)
        slow = model.impute(x, m, generator=torch.Generator().manual_seed(1), draws=2)
    assert torch.equal(fast, slow)
    assert not torch.equal(fast[0], fast[1])
    # the law, for one observed prefix of length 2
    mk = prefix_masks(model.ordering(0))[2]
    one = torch.where(mk, rows[5], torch.tensor(float("nan"), dtype=torch.float64))
    draws = model.impute(one[None], mk[None], generator=torch.Generator().manual_seed(2), draws=20_000)[:, 0]
    with torch.no_grad():
        joints = torch.stack([model.log_prob(rows, mask=i) for i in range(n_masks)]) if n_masks > 1 else None
        joint = mixture(joints) if joints is not None else model.log_prob(rows)
    cand = rows[(rows[:, mk] == rows[5, mk]).all(-1)]
    want = enumerated(joint, rows, cand, mk.expand(len(cand), -1))[0].exp().numpy()
    codes = (draws[:, None, :] == cand[None]).all(-1).float().argmax(-1).numpy()
    counts = np.bincount(codes, minlength=len(cand))
    assert abs(want.sum() - 1) < 1e-10
    assert chisquare(counts, want * counts.sum()).pvalue > 1e-3
    assert chisquare(counts, np.roll(want, 1) * counts.sum()).pvalue < 1e-6


@pytest.mark.parametrize("kind", ["made", "made-K"])
@pytest.mark.parametrize("columns", [MIXED, DISCRETE])
@pytest.mark.parametrize("context", [0, 2])
def test_made_prefix_imputation_by_degree_equals_a_pass_per_column(kind, columns, context, monkeypatch):
    """MADE of any column types (and context) imputes an observed prefix with its by-degree
    sampler (each hidden unit computed once, the observed values given): the draws of one network
    pass per unobserved column for the same uniforms (discrete equal, real equal up to rounding),
    and the observed entries kept bit for bit."""
    model = build(kind, columns, context_features=context)
    gen = torch.Generator().manual_seed(0)
    ctx = torch.randn(300, context, generator=gen, dtype=torch.float64) if context else None
    with torch.no_grad():
        x = model.sample(300, generator=gen, context=ctx)
    masks = prefix_masks(model.ordering(0))
    m = torch.stack([masks[k] for k in torch.randint(0, len(columns), (300,), generator=gen)])
    fast = model.impute(x, m, generator=torch.Generator().manual_seed(1), draws=2, context=ctx)
    with monkeypatch.context() as patch:
        patch.setattr(type(model), "_draw_given", lambda *a: None)
        slow = model.impute(x, m, generator=torch.Generator().manual_seed(1), draws=2, context=ctx)
    discrete = [j for j, c in enumerate(model.columns.list) if c.kind != "real"]
    assert torch.equal(fast[..., discrete], slow[..., discrete])
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-10)
    assert torch.equal(fast[:, m], x[m].expand(2, -1))
    assert not torch.equal(fast[0], fast[1])
