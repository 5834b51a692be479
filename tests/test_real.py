"""Real-valued models (RNADE, MADE-MoG, DeepRNADE/EoRNADE): the order-agnostic loss is unbiased
with mixture heads, ensembles are log-mean-exp of joint densities, a saved model scores the
same from another directory, and the committed real-valued models reproduce their figures."""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import ardens
from ardens.evaluate import log_likelihoods
from test_cli import call

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ARDENS_DATA") or ROOT.parent / "shared" / "data")
REAL_RESULTS = ROOT / "benchmarks" / "results" / "real"


def real_model(kind: str, columns, seed: int = 0, **kwargs):
    """A float64 model with perturbed weights and a standardization of data with mean 3, std 2."""
    torch.manual_seed(seed)
    cls = {"nade": ardens.NADE, "made": ardens.MADE, "deepnade": ardens.DeepNADE}[kind]
    model = cls(len(columns), columns=columns, **kwargs).double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2.0).add_(0.3 * torch.randn_like(p))
    rng = np.random.default_rng(seed)
    model.columns.fit_standardization(3 + 2 * rng.standard_normal((200, len(columns))))
    return model


def test_order_agnostic_loss_with_mixture_heads_is_unbiased_for_the_mean_over_orderings():
    columns = ["real:3", "real:2", "real:3", "real:1"]
    n = len(columns)
    model = real_model("deepnade", columns, hidden=[8, 6])
    x = torch.tensor([[2.5, 4.0, -1.0, 3.3]], dtype=torch.float64)
    with torch.no_grad():
        over_orderings = np.mean(
            [-float(model.log_prob(x, ordering=list(o))) for o in itertools.permutations(range(n))]
        )
        # exact expectation of the estimator: d uniform in 0..n-1, then a uniform d-subset observed
        expectation = 0.0
        for d in range(n):
            subsets = list(itertools.combinations(range(n), d))
            for subset in subsets:
                observed = torch.zeros_like(x)
                observed[0, list(subset)] = 1
                per_column = model.columns.column_log_probs(model.conditional_params(x, observed), x)
                nll = -float((per_column * (1 - observed)).sum())
                expectation += nll * n / (n - d) / n / len(subsets)
        assert expectation == pytest.approx(over_orderings, rel=1e-12)
        draws = model.order_agnostic_nll(x.expand(40_000, -1), torch.Generator().manual_seed(1))
        se = float(draws.std()) / math.sqrt(len(draws))
        assert abs(float(draws.mean()) - expectation) < 4 * se
        # a loss that forgot the n / (n - d) weight is far outside that band
        assert abs(over_orderings - expectation * 0.8) > 10 * se


@pytest.mark.parametrize(
    "kind,kwargs",
    [
        ("made", {"hidden": [20, 20], "num_masks": 4, "ordering": "random"}),
        ("deepnade", {"hidden": [9], "num_orderings": 3}),
    ],
)
def test_real_ensembles_are_the_log_mean_exp_of_joint_densities(kind, kwargs):
    model = real_model(kind, ["real:3", "real:2", "real:2"], **kwargs)
    k = model.num_masks
    x = torch.as_tensor(3 + 2 * np.random.default_rng(1).standard_normal((50, 3)))
    with torch.no_grad():
        joint = torch.stack([model.log_prob(x, mask=i) for i in range(k)])
        expected = torch.logsumexp(joint, 0) - math.log(k)
        torch.testing.assert_close(model.log_prob(x), expected, rtol=0, atol=1e-12)
        np.testing.assert_allclose(log_likelihoods(model, x.numpy()), expected.numpy(), rtol=0, atol=1e-9)
        # not the average of the log-densities (Jensen: strictly lower for distinct members)
        assert (expected - joint.mean(0) > 1e-6).all()


def write_real_csv(path: Path, rows: int = 300, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    a = rng.normal(40, 8, rows)
    b = 0.02 * a**2 + rng.gamma(2.0, 1.5, rows)
    c = rng.lognormal(0.0, 0.5, rows)
    lines = ["a,b,c"] + [f"{a[i]:.5f},{b[i]:.5f},{c[i]:.5f}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_saved_real_model_scores_the_same_from_another_working_directory(tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    write_real_csv(first / "t.csv")
    monkeypatch.chdir(first)
    proc = call(
        "train", "--model", "nade", "--data", "t.csv", "--out", "run", "--epochs", "5", "--hidden", "12", "--quiet"
    )
    assert proc.returncode == 0, proc.stderr
    here = json.loads(call("evaluate", "run", "--json").stdout)
    shutil.copy(first / "run" / "best.safetensors", second / "model.safetensors")
    shutil.copy(first / "t.csv", second / "t.csv")
    monkeypatch.chdir(second)
    there = json.loads(call("evaluate", "model.safetensors", "--data", "t.csv", "--json").stdout)
    for key in ("nll", "standardized_log_likelihood", "n_examples", "median_log_likelihood"):
        assert here[key] == there[key], key
    # and the figure is the model's own: the test rows of the run's split, in the data's units
    model = ardens.load(second / "model.safetensors")
    data = ardens.data.load_dataset(str(second / "t.csv"))
    assert there["nll"] == pytest.approx(-log_likelihoods(model, data.test).mean(), rel=1e-12)
    assert there["standardized_log_likelihood"] == pytest.approx(
        -there["nll"] - model.columns.log_jacobian(), rel=1e-12
    )


def committed_real_folds() -> list[tuple[str, str, str]]:
    """(set, row, fold) of every committed real-valued ardens model: fold 1 of each row, and
    every fold of red wine's cheapest row (NADE)."""
    out = []
    for path in sorted(REAL_RESULTS.glob("*/*.json")):
        record = json.loads(path.read_text())
        if record.get("kind") not in ("nade", "made", "deepnade"):
            continue
        folds = list(record["folds"]) if (record["dataset"], record["kind"]) == ("red_wine", "nade") else ["1"]
        out += [(record["dataset"], path.stem, k) for k in folds if k in record["folds"]]
    return out


@pytest.mark.skipif(not (SHARED / "real").is_dir(), reason="needs ../shared/data/real (the real-valued sets)")
@pytest.mark.parametrize(
    "dataset,row,fold",
    committed_real_folds() or [pytest.param("", "", "", marks=pytest.mark.skip("no committed real-valued results"))],
)
def test_committed_real_models_reproduce_their_test_figures(dataset, row, fold):
    record = json.loads((REAL_RESULTS / dataset / f"{row}.json").read_text())["folds"][fold]
    proc = call(
        "evaluate",
        str(ROOT / record["checkpoint"]),
        "--data",
        dataset,
        "--fold",
        fold,
        "--data-dir",
        str(SHARED),
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    # float32 evaluation: equal up to its round-off (the kernels may sum in another order than
    # the run that produced the figure; the table prints three decimals)
    assert -report["nll"] == pytest.approx(record["test_ll"], abs=1e-4)
    assert report["standardized_log_likelihood"] == pytest.approx(record["test_standardized_ll"], abs=1e-4)
    arrays = np.load(REAL_RESULTS / dataset / f"{row}.npz", allow_pickle=False)
    rows = arrays["original"][arrays["fold"] == int(fold)]
    assert report["n_examples"] == len(rows) and float(rows.mean()) == pytest.approx(-report["nll"], abs=1e-6)


@pytest.mark.parametrize(
    "kind,kwargs",
    [("nade", {"hidden": 12}), ("made", {"hidden": [16, 16]}), ("deepnade", {"hidden": [12, 10], "num_orderings": 2})],
)
def test_dropout_acts_only_in_training_and_is_saved(kind, kwargs, tmp_path):
    columns = ["real:3", "real:2", "binary"]
    model = real_model(kind, columns, dropout=0.3, **kwargs)
    plain = real_model(kind, columns, **kwargs)  # same seed: the same weights, no dropout
    plain.load_state_dict(model.state_dict())
    rng = np.random.default_rng(2)
    x = torch.as_tensor(np.column_stack([3 + 2 * rng.standard_normal((40, 2)), rng.integers(0, 2, 40)]))
    model.eval(), plain.eval()
    with torch.no_grad():
        torch.testing.assert_close(model.log_prob(x), plain.log_prob(x), rtol=0, atol=0)
        model.train(), plain.train()
        g = torch.Generator().manual_seed(0)
        a = model(x, training_step=0, generator=g)
        b = model(x, training_step=0, generator=torch.Generator().manual_seed(0))
        reference = plain(x, training_step=0, generator=torch.Generator().manual_seed(0))
        assert not torch.equal(a, b) and not torch.equal(a, reference)  # units dropped, differently each call
    ardens.save(model, tmp_path / "m.safetensors")
    loaded = ardens.load(tmp_path / "m.safetensors")
    assert loaded.dropout == 0.3
    with torch.no_grad():
        torch.testing.assert_close(loaded.double().log_prob(x), model.eval().log_prob(x), rtol=0, atol=1e-12)
