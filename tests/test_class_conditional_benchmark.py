"""The mathematics of benchmarks/class_conditional.py, on tiny models and data (no files read).

A conditional MADE over n = 4 binary inputs with 3 classes is small enough to enumerate all 16
images: the class log-likelihood matrix, the mixture p(x) = sum_y p(x | y) p(y), the posterior
and Bayes' rule are checked against sums written out one term at a time; the table is rendered
from a fake results file."""

from __future__ import annotations

import itertools
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ardens
from conftest import load_benchmark

ROOT = Path(__file__).resolve().parents[1]


cc = load_benchmark("class_conditional")

N_INPUTS, K = 4, 3
ALL_X = np.array(list(itertools.product([0, 1], repeat=N_INPUTS)), dtype=np.uint8)  # (16, 4)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    made = ardens.MADE(n_inputs=N_INPUTS, hidden=[8], direct=True, context_features=K)
    with torch.no_grad():  # weights large enough that the classes differ clearly
        for p in made.parameters():
            p.mul_(3.0)
    return made.eval()


def _brute_force(made) -> np.ndarray:
    """log p(x | y) of every image and class, one model call per (x, y) pair, context per row."""
    out = np.empty((len(ALL_X), K))
    with torch.no_grad():
        for i, x in enumerate(ALL_X):
            for y in range(K):
                c = torch.zeros(1, K)
                c[0, y] = 1.0
                out[i, y] = float(made.log_prob(torch.as_tensor(x[None], dtype=torch.float32), context=c)[0])
    return out


def test_class_log_likelihoods_match_one_call_per_pair(model):
    got = cc.class_log_likelihoods(model, ALL_X, K, batch_size=5)  # batches that split the rows
    assert got.shape == (16, K) and got.dtype == np.float64
    np.testing.assert_allclose(got, _brute_force(model), rtol=0, atol=1e-5)
    for y in range(K):  # each p(. | y) is a distribution over the 16 images
        assert math.isclose(math.fsum(np.exp(got[:, y])), 1.0, abs_tol=1e-5)
    assert np.abs(got[:, 0] - got[:, 1]).max() > 0.1  # the context matters


def test_mixture_posterior_and_bayes_rule_by_enumeration(model):
    labels = np.array([0, 0, 0, 1, 2, 2, 2, 2, 2, 1])
    log_py = cc.log_prior(labels, K)
    prior = [3 / 10, 2 / 10, 5 / 10]
    np.testing.assert_allclose(np.exp(log_py), prior, rtol=1e-12)
    cond = cc.class_log_likelihoods(model, ALL_X, K)
    mix = cc.mixture_log_prob(cond, log_py)
    post = cc.log_posterior(cond, log_py)
    pred = cc.bayes_predict(cond, log_py)
    for i in range(len(ALL_X)):
        terms = [math.exp(cond[i, y]) * prior[y] for y in range(K)]
        px = math.fsum(terms)
        assert math.isclose(mix[i], math.log(px), rel_tol=0, abs_tol=1e-10)
        posterior = [t / px for t in terms]
        np.testing.assert_allclose(np.exp(post[i]), posterior, rtol=1e-10)
        assert pred[i] == max(range(K), key=lambda y: posterior[y])
    assert math.isclose(math.fsum(np.exp(mix)), 1.0, abs_tol=1e-5)  # p(x) sums to one over all images
    assert len(set(pred.tolist())) > 1  # a test that could tell a constant classifier apart


def test_classifier_scores_by_hand():
    cond = np.log(np.array([[0.5, 0.1], [0.2, 0.4], [0.3, 0.3]]))
    log_py = np.log(np.array([0.25, 0.75]))
    labels = np.array([0, 0, 1])
    s = cc.classifier_scores(cond, log_py, labels)
    px = np.array([0.5 * 0.25 + 0.1 * 0.75, 0.2 * 0.25 + 0.4 * 0.75, 0.3])
    assert math.isclose(s["nll_x_given_y"], -np.mean(np.log([0.5, 0.2, 0.3])), rel_tol=1e-12)
    assert math.isclose(s["nll_x"], -np.mean(np.log(px)), rel_tol=1e-12)
    # joints: row 0 (0.125, 0.075) -> 0; row 1 (0.05, 0.3) -> 1; row 2 (0.075, 0.225) -> 1
    assert math.isclose(s["accuracy"], 2 / 3)
    loss = -np.mean(np.log([0.125 / px[0], 0.05 / px[1], 0.225 / px[2]]))
    assert math.isclose(s["log_loss"], loss, rel_tol=1e-12)
    nll = -np.log(px)
    assert math.isclose(s["nll_x_se"], nll.std(ddof=1) / math.sqrt(3), rel_tol=1e-12)


def test_mixture_is_stable_far_below_float_range():
    cond = np.array([[-2000.0, -2001.0, -5000.0]])
    log_py = np.log(np.array([0.5, 0.25, 0.25]))
    want = -2000.0 + math.log(0.5 + 0.25 * math.exp(-1.0))
    assert math.isclose(float(cc.mixture_log_prob(cond, log_py)[0]), want, rel_tol=0, abs_tol=1e-9)
    assert cc.bayes_predict(cond, log_py)[0] == 0


def test_log_prior_needs_every_class():
    with pytest.raises(ValueError):
        cc.log_prior(np.array([0, 2, 2]), 3)


def test_naive_bayes_by_enumeration():
    x = np.array([[1, 0], [1, 1], [0, 0], [0, 1], [0, 1]], dtype=np.uint8)
    y = np.array([0, 0, 1, 1, 1])
    nb = cc.BernoulliNaiveBayes(alpha=1.0).fit(x, y, 2)
    theta = np.array([[(2 + 1) / 4, (1 + 1) / 4], [(0 + 1) / 5, (2 + 1) / 5]])
    grid = np.array(list(itertools.product([0, 1], repeat=2)))
    ll = nb.class_log_likelihoods(grid)
    for i, g in enumerate(grid):
        for k in range(2):
            p = math.prod(theta[k, d] if g[d] else 1 - theta[k, d] for d in range(2))
            assert math.isclose(ll[i, k], math.log(p), rel_tol=1e-12)


def _fake_record() -> dict:
    cand = {"point": {"train.weight_decay": 0.0}, "best_epoch": 7, "epochs_run": 17, "train_seconds": 3.0}
    test = {
        "nll_x_given_y": 21.2345,
        "nll_x_given_y_se": 0.1234,
        "nll_x": 23.4567,
        "nll_x_se": 0.2,
        "accuracy": 0.875,
        "accuracy_se": 0.01,
        "log_loss": 0.4321,
        "log_loss_se": 0.01,
    }
    return {
        "dataset": "ocr_letters",
        "title": "OCR letters",
        "substitution": "SUBSTITUTION-TEXT",
        "file": "ocr_letters.npz",
        "image_shape": [16, 8],
        "classes": 26,
        "rows": {"train": 10, "valid": 5, "test": 4},
        "conditional": {
            "candidates": {"a": dict(cand, valid_nll=22.5, valid_accuracy=0.8)},
            "chosen": "a",
            "model": {"hidden": [500]},
            "test": test,
            "test_seconds": 1.0,
        },
        "unconditional": {
            "candidates": {"b": dict(cand, valid_nll=24.75)},
            "chosen": "b",
            "model": {"hidden": [500]},
            "test": {"nll_x": 24.1111, "nll_x_se": 0.3},
        },
        "naive_bayes": {"test": dict(test, nll_x=40.0)},
        "logistic_regression": {
            "valid_accuracy": {"0.1": 0.7, "1.0": 0.75},
            "chosen_C": 1.0,
            "accuracy": 0.7654,
            "accuracy_se": 0.004,
            "log_loss": 0.9,
            "log_loss_se": 0.02,
            "seconds": 9.0,
        },
        "class_prior": {
            "majority_class": 4,
            "accuracy": 0.0625,
            "accuracy_se": 0.002,
            "log_loss": 3.2,
            "log_loss_se": 0.0,
        },
        "figure": "benchmarks/figures/class_conditional/ocr_letters_samples.png",
        "command": "nice -n 5 .venv/bin/python benchmarks/class_conditional.py --sets ocr_letters",
        "machine": {"cpu": "AMD EPYC", "cores": 2, "threads": 1, "torch": "2.13.0+cpu"},
        "wall_seconds": 123.4,
    }


def test_render_only_from_a_fake_json(tmp_path, monkeypatch):
    results = tmp_path / "results"
    results.mkdir()
    assert cc.render(results) == "(no results yet)"
    (results / "ocr_letters.json").write_text(json.dumps(_fake_record()))
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("head\n<!-- class-conditional -->\nold\n<!-- /class-conditional -->\ntail\n")
    monkeypatch.setattr(cc, "RESULTS", results)
    monkeypatch.setattr(sys.modules["reproduce"], "BENCHMARKS_MD", md)
    monkeypatch.setattr(sys, "argv", ["class_conditional.py", "--render-only"])
    cc.main()
    text = md.read_text()
    assert text.startswith("head\n<!-- class-conditional -->\n") and text.endswith(
        "<!-- /class-conditional -->\ntail\n"
    )
    assert "old" not in text and "SUBSTITUTION-TEXT" in text
    for figure in ("21.23 ± 0.12", "23.46 ± 0.20", "87.50 ± 1.00", "24.11 ± 0.30", "76.54", "0.432 ± 0.010", "6.25"):
        assert figure in text, figure
    assert "--sets ocr_letters" in text and "2-core AMD EPYC, 1 thread" in text
    assert "ocr_letters_samples.png" in text


def test_sample_figure_draws_every_class(model, tmp_path, monkeypatch):
    spec = {"title": "tiny", "image_shape": (2, 2), "image_order": "C", "label_offset": 0, "class_names": None}
    monkeypatch.setitem(cc.SETS, "tiny", spec)
    images = {"train": ALL_X}
    labels = {"train": np.arange(16) % K}
    path = tmp_path / "tiny_samples.png"
    cc.sample_figure("tiny", model, images, labels, K, path)
    assert path.stat().st_size > 1000


def test_a_set_without_labels_stops_with_one_line_naming_them(tmp_path):
    """binarized MNIST as shared holds no labels: asked for, the script names what is missing."""
    images = {s: np.zeros((3, 784), dtype=np.uint8) for s in ("train", "valid", "test")}
    np.savez_compressed(tmp_path / "binarized_mnist.npz", **images)
    with pytest.raises(SystemExit) as info:
        cc.load_labelled("binarized_mnist", str(tmp_path))
    message = str(info.value)
    assert "\n" not in message and "binarized_mnist.npz" in message
    assert "no train_labels, valid_labels, test_labels" in message
    np.savez_compressed(tmp_path / "binarized_mnist.npz", **images, **{f"{s}_labels": np.arange(3) for s in images})
    _, labels, _ = cc.load_labelled("binarized_mnist", str(tmp_path))
    assert labels["test"].tolist() == [0, 1, 2]
    assert "binarized_mnist" not in cc.DEFAULT_SETS and "binarized_mnist" in cc.SETS
