"""Conditional models p(x | c) through the data, training, evaluation, the estimator and the CLI:
context columns of a table encoded (:mod:`ardens.context`), trained on, stored in checkpoints and
read again; conditioning helps where x depends on the context, samples follow each context,
every p(. | c) is normalized after save/load, Bayes' rule over a label context classifies, and
bad context input is a one-line error."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

import ardens
from ardens.context import ContextEncoding, ContextError, fit_context
from ardens.data import Dataset, load_dataset, split_context
from ardens.estimator import DensityEstimator
from ardens.evaluate import evaluate, load_checkpoint, log_likelihoods
from ardens.train import ModelConfig, TrainConfig, build_model, fit
from test_cli import assert_user_error, call

LABELS = ["cat", "dog", "owl"]
#: P(x_j = 1 | label) of four binary columns, far apart between labels
P_BINARY = np.array([[0.9, 0.1, 0.85, 0.2], [0.1, 0.9, 0.5, 0.5], [0.5, 0.5, 0.1, 0.9]])
REAL_MEAN = np.array([0.0, 2.0, 4.0])  # the real column's mean given each label (sd 0.5)


def synthetic(n: int, seed: int = 0, real: bool = True) -> pd.DataFrame:
    """A label column and binary (and real) columns that depend strongly on it."""
    rng = np.random.default_rng(seed)
    lab = rng.integers(0, 3, n)
    cols = {"label": np.array(LABELS, dtype=object)[lab]}
    bits = (rng.random((n, 4)) < P_BINARY[lab]).astype(np.int64)
    for j in range(4):
        cols[f"b{j}"] = bits[:, j]
    if real:
        cols["r"] = rng.normal(REAL_MEAN[lab], 0.5)
    return pd.DataFrame(cols)


def write_csv(df: pd.DataFrame, path) -> None:
    df.to_csv(path, index=False)


# -- the encoding ------------------------------------------------------------------------------------
def test_context_encoding_kinds_and_round_trip():
    cols = [
        np.array(["b", "a", "c", "a"], dtype=object),
        np.array([0.0, 1.0, 1.0, 0.0]),
        np.array([2.0, 0.0, 1.0, 2.0]),
        np.array([1.0, 2.5, 3.0, 6.0]),
    ]
    enc = fit_context(cols, ["lab", "flag", "code", "dose"])
    assert [c.kind for c in enc.columns] == ["categorical", "binary", "categorical", "real"]
    assert enc.width == 3 + 1 + 3 + 1
    out = enc.encode(cols)
    assert out[:, :3].sum(1).tolist() == [1, 1, 1, 1] and out[1, 0] == 1 and out[2, 2] == 1
    assert out[:, 3].tolist() == [0, 1, 1, 0]
    assert out[:, 4:7].argmax(1).tolist() == [2, 0, 1, 2]
    dose = out[:, 7]  # standardized with the mean and population std
    assert abs(dose.mean()) < 1e-12 and abs(dose.std() - 1) < 1e-12
    again = ContextEncoding.from_meta(json.loads(json.dumps(enc.to_meta())))
    assert np.array_equal(again.encode(cols), out)
    with pytest.raises(ContextError, match=r"label 'z' was not seen in training at row 1, context column 'lab'"):
        again.encode([np.array(["a", "z"], dtype=object), [0, 1], [0, 1], [1.0, 2.0]])
    with pytest.raises(ContextError, match=r"missing context value at row 0, context column 'dose'"):
        again.encode([np.array(["a"], dtype=object), [0], [0], [float("nan")]])
    with pytest.raises(ContextError, match="expected 0 or 1"):
        again.encode([np.array(["a"], dtype=object), [2], [0], [1.0]])


# -- training ----------------------------------------------------------------------------------------
def _dataset(df: pd.DataFrame, tmp_path) -> Dataset:
    path = tmp_path / "d.csv"
    write_csv(df, path)
    return split_context(load_dataset(path), ["label"])


def test_fit_refuses_a_context_width_mismatch(tmp_path):
    data = _dataset(synthetic(200, real=False), tmp_path)
    assert data.context_width == 3 and data.dim == 4 and data.columns is None  # binary x: uint8 fast path
    plain = Dataset("plain", data.train, data.valid, data.test)
    config = TrainConfig(epochs=1)
    cases = [
        (build_model("made", 4, ModelConfig(hidden=[8], context_features=3)), plain, "width 3.*has no context"),
        (build_model("made", 4, ModelConfig(hidden=[8])), data, "context of width 3.*takes none"),
        (build_model("made", 4, ModelConfig(hidden=[8], context_features=2)), data, "width 3.*takes width 2"),
    ]
    for model, d, pattern in cases:
        with pytest.raises(ValueError, match=pattern) as err:
            fit(model, d, config, progress=False)
        assert "\n" not in str(err.value)


def _mutual_information() -> float:
    """I(x; label) in nats of the binary columns of :func:`synthetic` (labels uniform)."""
    xs = np.array(list(itertools.product([0, 1], repeat=4)))
    joint = np.prod(np.where(xs[:, None, :] == 1, P_BINARY[None], 1 - P_BINARY[None]), -1) / 3
    return float((joint * np.log(joint / (joint.sum(1, keepdims=True) / 3))).sum())


def test_conditioning_helps_and_samples_follow_each_label():
    df = synthetic(1500, seed=1, real=False)
    kw = dict(hidden=(16,), epochs=40, lr=1e-2, patience=8, random_state=0)
    cond = DensityEstimator(context_columns=["label"], **kw).fit(df)
    plain = DensityEstimator(**kw).fit(df.drop(columns="label"))
    assert list(cond.validation_indices_) == list(plain.validation_indices_)  # the same held-out rows
    # the label carries I(x; label) = 0.66 nats about x: the conditional model must recover most of it
    info = _mutual_information()
    assert info > 0.6
    gap = plain.best_validation_nll_ - cond.best_validation_nll_
    assert gap > 0.5 * info, (cond.best_validation_nll_, plain.best_validation_nll_, info)
    n = 3000
    for label in LABELS:
        samples = cond.sample(n, context=[label], random_state=7)
        assert list(samples.columns) == list(df.columns)
        assert (samples["label"] == label).all()
        rows = df[df["label"] == label]
        for col in ["b0", "b1", "b2", "b3"]:
            se = math.sqrt(rows[col].var() / len(rows) + samples[col].var() / n)
            diff = samples[col].mean() - rows[col].mean()
            assert abs(diff) < 4 * se, (label, col, diff, se)


def test_bayes_posterior_over_a_label_context_classifies():
    train, test = synthetic(2400, seed=2, real=False), synthetic(600, seed=3, real=False)
    est = DensityEstimator(
        model="nade", hidden=(16,), epochs=60, lr=1e-2, patience=10, random_state=0, context_columns=["label"]
    ).fit(train)
    prior = np.log(np.array([(train["label"] == y).mean() for y in LABELS]))
    loglik = np.stack([est.score_samples(test.assign(label=y)) for y in LABELS], axis=1)  # log p(x | y)
    joint = loglik + prior
    posterior = np.exp(joint - np.logaddexp.reduce(joint, axis=1, keepdims=True))
    assert np.allclose(posterior.sum(1), 1.0, atol=1e-12)
    predicted = np.array(LABELS)[posterior.argmax(1)]
    accuracy = (predicted == test["label"].to_numpy()).mean()
    # the Bayes classifier of the true generating process, on the same rows
    bits = test[["b0", "b1", "b2", "b3"]].to_numpy()[:, None, :]
    true_ll = (bits * np.log(P_BINARY) + (1 - bits) * np.log(1 - P_BINARY)).sum(-1)
    best = (np.array(LABELS)[true_ll.argmax(1)] == test["label"].to_numpy()).mean()
    assert accuracy > 0.6 and accuracy > best - 0.05, (accuracy, best)


# -- the CLI: train, evaluate, score, sample; normalization and save/load --------------------------
@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """A NADE trained by the CLI on a CSV with a label context column (in the middle) and a real
    context column (last); x: two binary columns and a categorical:3 column."""
    tmp = tmp_path_factory.mktemp("ctx")
    rng = np.random.default_rng(5)
    n = 600
    lab = rng.integers(0, 3, n)
    dose = rng.normal(1.0, 2.0, n)
    b0 = (rng.random(n) < P_BINARY[lab, 0]).astype(int)
    k = (lab + (rng.random(n) < 0.2)) % 3
    b1 = (rng.random(n) < 1 / (1 + np.exp(-dose))).astype(int)
    df = pd.DataFrame({"b0": b0, "animal": np.array(LABELS)[lab], "k": k, "b1": b1, "dose": dose})
    path = tmp / "d.csv"
    write_csv(df, path)
    run = tmp / "run"
    proc = call(
        "train", "--model", "nade", "--data", str(path), "--out", str(run), "--context-columns", "animal,dose",
        "--epochs", "8", "--hidden", "12", "--lr", "0.01", "--quiet",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "context: animal=categorical(cat|dog|owl), dose=real (width 4)" in proc.stdout
    return tmp, path, run, df


def test_cli_checkpoint_is_normalized_for_every_context_after_load(cli_run):
    _, _, run, _ = cli_run
    model, meta = load_checkpoint(run)
    assert model.context_features == 4 and model.columns.specs() == ["binary", "categorical:3", "binary"]
    enc = ContextEncoding.from_meta(meta["context"])
    xs = torch.tensor(list(itertools.product([0, 1], [0, 1, 2], [0, 1])), dtype=torch.float64)
    for label, dose in itertools.product(LABELS, [-3.0, 0.5, 4.2]):
        c = enc.encode([[label], [dose]])
        with torch.no_grad():
            lp = model.log_prob(xs.to(torch.float32), context=torch.as_tensor(c).float()).double()
        assert abs(float(lp.logsumexp(0).exp()) - 1) < 1e-5, (label, dose)
    # and the context matters: another label gives other probabilities
    a, b = (enc.encode([[lab], [0.0]]) for lab in ("cat", "owl"))
    with torch.no_grad():
        la = model.log_prob(xs.float(), context=torch.as_tensor(a).float())
        lb = model.log_prob(xs.float(), context=torch.as_tensor(b).float())
    assert (la - lb).abs().max() > 0.1


def test_cli_evaluate_and_score_equal_the_in_memory_model(cli_run, tmp_path):
    tmp, path, run, df = cli_run
    proc = call("evaluate", str(run), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    model, meta = load_checkpoint(run)
    data = split_context(load_dataset(path), ["animal", "dose"])
    direct = evaluate(model, data.test, context=data.context_test)
    assert report["nll"] == pytest.approx(direct.nll, abs=1e-9) and report["n_examples"] == len(data.test)
    # every row, by score: log p(x | c) of each row, the context read from the same row
    out = tmp_path / "scores.csv"
    proc = call("score", str(run), "--data", str(path), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    scores = pd.read_csv(out)
    enc = ContextEncoding.from_meta(meta["context"])
    c = enc.encode([df["animal"].tolist(), df["dose"].tolist()])
    x = np.array(df[["b0", "k", "b1"]], dtype=np.float64)
    expected = log_likelihoods(model, x, context=c)
    assert np.allclose(scores["log_likelihood"].to_numpy(), expected, atol=1e-5)
    # the context changes the score: the same x with another label scores differently
    other = enc.encode([["owl"] * len(df), df["dose"].tolist()])
    assert np.abs(log_likelihoods(model, x, context=other) - expected).max() > 0.1


def test_cli_sample_with_context_writes_the_context_columns(cli_run, tmp_path):
    tmp, path, run, df = cli_run
    out = tmp_path / "s.csv"
    proc = call("sample", str(run), "-n", "50", "--context", "animal=owl,dose=1.5", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    samples = pd.read_csv(out)
    assert list(samples.columns) == list(df.columns) and len(samples) == 50
    assert (samples["animal"] == "owl").all() and (samples["dose"] == 1.5).all()
    assert set(samples["k"]) <= {0, 1, 2}
    ctx = tmp_path / "ctx.csv"
    ctx.write_text("dose,animal\n0.5,cat\n-1,dog\n2,owl\n")
    out2 = tmp_path / "s2.csv"
    proc = call("sample", str(run), "--context-from", str(ctx), "--out", str(out2), "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    samples2 = pd.read_csv(out2)
    assert samples2["animal"].tolist() == ["cat", "dog", "owl"] and samples2["dose"].tolist() == [0.5, -1, 2]
    # the samples are a file the model reads again (same layout): score them
    proc = call("score", str(run), "--data", str(out2), "--out", str(tmp_path / "sc.csv"))
    assert proc.returncode == 0, proc.stderr


def test_cli_bad_context_input_is_a_one_line_error(cli_run, tmp_path):
    tmp, path, run, df = cli_run
    before = path.read_bytes()
    out = tmp_path / "o.csv"
    bad_label = tmp_path / "bad_label.csv"
    write_csv(df.head(5).assign(animal=["cat", "cat", "emu", "dog", "owl"]), bad_label)
    empty = tmp_path / "empty.csv"
    empty.write_text("b0,animal,k,b1,dose\n1,cat,0,1,0.5\n0,dog,1,1,\n")
    no_ctx = tmp_path / "no_ctx.csv"
    write_csv(df.head(5).drop(columns=["dose"]), no_ctx)
    plain = tmp_path / "plain"
    proc = call("train", "--model", "nade", "--data", str(path), "--out", str(plain), "--epochs", "1", "--hidden", "4",
                "--columns", "animal=categorical", "--quiet")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    cases = [
        (("train", "--model", "nade", "--data", str(path), "--out", str(tmp_path / "r"), "--context-columns", "zebra"),
         ("d.csv", "context column 'zebra'", "no such column", "animal")),
        (("score", str(run), "--data", str(bad_label), "--out", str(out)),
         ("bad_label.csv", "'emu' was not seen in training", "row 4", "column 1 (animal)")),
        (("evaluate", str(run), "--data", str(bad_label), "--all-rows"), ("bad_label.csv", "'emu'", "row 4")),
        (("score", str(run), "--data", str(empty), "--out", str(out)),
         ("empty.csv", "missing context value", "row 3", "column 4 (dose)")),
        (("score", str(run), "--data", str(no_ctx), "--out", str(out)), ("no_ctx.csv", "no context column 'dose'")),
        (("sample", str(run), "-n", "3", "--out", str(out)), ("--context", "required", "animal, dose")),
        (("sample", str(run), "--context", "animal=emu,dose=1", "--out", str(out)),
         ("--context", "'emu' was not seen in training", "'animal'")),
        (("sample", str(run), "--context", "animal=cat", "--out", str(out)), ("--context", "no value", "'dose'")),
        (("sample", str(run), "--context", "animal=cat,dose=NaN", "--out", str(out)), ("--context", "missing", "dose")),
        (("sample", str(run), "--context", "colour=red,dose=1", "--out", str(out)), ("no context column 'colour'",)),
        (("sample", str(run), "--context-from", str(empty), "--out", str(out)), ("empty.csv", "row 3", "dose")),
        (("sample", str(plain), "--context", "animal=cat", "--out", str(out)), ("--context", "takes no context")),
        (("impute", str(run), "--data", str(empty), "--out", str(out)), ("conditional",)),
    ]  # fmt: skip
    for args, fragments in cases:
        proc = call(*args)
        assert_user_error(proc, *fragments)
        assert not out.exists(), args
    assert path.read_bytes() == before


def test_checkpoint_evaluation_equals_the_in_memory_model(tmp_path):
    df = synthetic(500, seed=4)
    data = _dataset(df, tmp_path)
    assert data.context_width == 3 and data.columns == ("binary",) * 4 + ("real:10",)
    torch.manual_seed(0)
    model = build_model("made", data.dim, ModelConfig(hidden=[16], num_masks=2, context_features=3), data.column_specs)
    fit(model, data, TrainConfig(epochs=3, batch_size=50), tmp_path / "run", progress=False)
    loaded, meta = load_checkpoint(tmp_path / "run")
    assert meta["context"]["columns"][0]["categories"] == LABELS
    for split in ("valid", "test"):
        a = evaluate(model, data.split(split), context=data.context(split))
        b = evaluate(loaded, data.split(split), context=data.context(split))
        assert a.nll == b.nll and a.single_mask_nll == b.single_mask_nll
    # the context is used: without the right rows' contexts the figures differ
    shuffled = data.context_test[np.roll(np.arange(len(data.test)), 1)]
    right = evaluate(loaded, data.test, context=data.context_test).nll
    assert evaluate(loaded, data.test, context=shuffled).nll != right
    with pytest.raises(ValueError, match="context"):
        evaluate(loaded, data.test)


def test_estimator_context_errors_and_array_input():
    df = synthetic(300, seed=6, real=False)
    est = DensityEstimator(hidden=(8,), epochs=2, random_state=0, context_columns=["label"]).fit(df)
    assert est.n_features_in_ == 5 and est.columns_ == ["binary"] * 4 and est.context_columns_ == [0]
    with pytest.raises(ValueError, match=r"unseen|not seen in training.*'label'"):
        est.score_samples(df.head(2).assign(label=["cat", "emu"]))
    with pytest.raises(ValueError, match="pass context="):
        est.sample(3)
    with pytest.raises(ValueError, match="n_samples"):
        est.sample(3, context=pd.DataFrame({"label": ["cat", "dog"]}))
    with pytest.raises(ValueError, match="context_columns: 'nope'"):
        DensityEstimator(context_columns=["nope"]).fit(df)
    with pytest.raises(ValueError, match="takes no context"):
        DensityEstimator(hidden=(4,), epochs=1).fit(df.drop(columns="label")).sample(2, context=["cat"])
    arr = df.to_numpy(dtype=object)
    est2 = DensityEstimator(hidden=(8,), epochs=2, random_state=0, context_columns=[0]).fit(arr)
    out = est2.sample(2, context=np.array([["owl"], ["cat"]], dtype=object), random_state=0)
    assert out.shape == (2, 5) and out[:, 0].tolist() == ["owl", "cat"]
    assert np.allclose(est2.score_samples(arr), est.score_samples(df))
    assert ardens.DensityEstimator is DensityEstimator
