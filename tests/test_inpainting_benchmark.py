"""benchmarks/inpainting.py on tiny synthetic data: the Bernoulli peer's conditional against
enumeration, the masks (seeded per image, exactly half, the same for every method), the
completions' error rates, the KNN peer, an ardens conditional in chunks against enumeration, and
a whole run (tiny stand-in models, synthetic 28x28 images) rendered into a BENCHMARKS.md copy
and re-rendered from its JSON."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ardens
from ardens.data import Dataset
from conftest import load_benchmark

ROOT = Path(__file__).resolve().parents[1]


inpainting = load_benchmark("inpainting")


def _enumerated_conditional_nll(log_p: np.ndarray, x: np.ndarray, observed: np.ndarray) -> float:
    """-log p(x_U | x_O) = -log p(x) + log sum_{y: y_O = x_O} p(y), from log p of all 2^n vectors."""
    n = len(x)
    ys = np.array(list(itertools.product([0, 1], repeat=n)))
    agree = (ys[:, observed] == x[observed]).all(1)
    row = int((ys == x).all(1).nonzero()[0][0])
    return float(-log_p[row] + np.logaddexp.reduce(log_p[agree]))


def test_bernoulli_conditional_nll_and_fill_match_enumeration():
    rng = np.random.default_rng(0)
    n = 5
    probs = rng.uniform(0.05, 0.95, n)
    ys = np.array(list(itertools.product([0, 1], repeat=n)))
    log_p = (ys * np.log(probs) + (1 - ys) * np.log1p(-probs)).sum(1)
    x = rng.integers(0, 2, (12, n)).astype(np.uint8)
    observed = rng.random((12, n)) < 0.5
    got = inpainting.bernoulli_conditional_nll(probs, x, observed)
    want = [_enumerated_conditional_nll(log_p, x[i], observed[i]) for i in range(len(x))]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    fill = inpainting.bernoulli_fill(probs, x, observed)
    assert np.array_equal(fill[observed], x[observed])
    for i, j in zip(*np.nonzero(~observed)):  # the most probable value of each missing pixel
        assert fill[i, j] == int(probs[j] > 0.5)


def test_error_rates_count_missing_pixels_only():
    x = np.array([[1, 0, 1, 0], [0, 0, 0, 0]], dtype=np.uint8)
    observed = np.array([[True, False, False, False], [False, False, True, True]])
    fill = np.array([[0, 0, 0, 0], [1, 0, 1, 1]], dtype=np.uint8)  # the wrong observed pixel is not counted
    np.testing.assert_allclose(inpainting.error_rates(fill, x, observed), [1 / 3, 1 / 2])


def test_random_masks_are_half_seeded_per_image_and_split():
    idx = np.arange(20)
    a = inpainting.random_observed("test", idx)
    assert a.shape == (20, 784) and (a.sum(1) == 392).all()
    assert np.array_equal(a, inpainting.random_observed("test", idx))  # deterministic
    assert np.array_equal(a[7], inpainting.random_observed("test", [7])[0])  # independent of the other images
    assert np.array_equal(a[[3, 11]], inpainting.observed_for("random", "test", np.array([3, 11])))
    assert len({a[i].tobytes() for i in idx}) == 20  # every image its own mask
    assert not np.array_equal(a, inpainting.random_observed("valid", idx))
    top = inpainting.observed_for("top", "test", idx)
    assert top[:, :392].all() and not top[:, 392:].any()  # rows 0-13 of a row-major 28x28 image
    # subsets: fixed, without repeats, a shorter one a prefix of a longer one
    s = inpainting.subset("test", 10_000, 50)
    assert len(set(s.tolist())) == 50 and np.array_equal(s[:8], inpainting.subset("test", 10_000, 8))


def test_knn_fill_takes_the_neighbours_majority():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 2, (1, 12)).astype(np.uint8)
    observed = np.zeros((1, 12), dtype=bool)
    observed[0, :6] = True
    near = np.repeat(x, 5, 0).astype(np.float64)
    near[:2, 6:] = 1 - near[:2, 6:]  # 3 of the 5 nearest agree with x on the missing pixels
    far = 1.0 - np.repeat(x, 20, 0)  # far on the observed pixels
    fill = inpainting.knn_fill(np.vstack([near, far]), x, observed)
    assert np.array_equal(fill, x)
    near[2, 6:] = 1 - near[2, 6:]  # now 3 of 5 disagree
    fill = inpainting.knn_fill(np.vstack([near, far]), x, observed)
    assert np.array_equal(fill[0, 6:], 1 - x[0, 6:]) and np.array_equal(fill[0, :6], x[0, :6])


@pytest.mark.parametrize("kind", ["nade", "deepnade"])
def test_model_conditional_nll_in_chunks_matches_enumeration(kind):
    torch.manual_seed(0)
    n = 6
    model = ardens.NADE(n, hidden=5) if kind == "nade" else ardens.DeepNADE(n, hidden=[5], num_orderings=2)
    model = model.double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5 * torch.randn_like(p))
    ys = torch.tensor(list(itertools.product([0, 1], repeat=n)), dtype=torch.float64)
    log_p = model.log_prob(ys).detach().numpy()
    rng = np.random.default_rng(2)
    x = rng.integers(0, 2, (7, n)).astype(np.uint8)
    observed = np.zeros((7, n), dtype=bool)
    observed[:, :3] = True  # a prefix of the natural ordering
    if kind == "deepnade":
        observed = rng.random((7, n)) < 0.5
        observed[0] = False
    got = inpainting.model_conditional_nll(model, x, observed, batch=3)
    if kind == "nade":
        want = [_enumerated_conditional_nll(log_p, x[i], observed[i]) for i in range(len(x))]
        np.testing.assert_allclose(got, want, rtol=1e-4)  # float32 inputs, float64 model
    else:  # the ensemble of the observed-first orderings: check against the unchunked library call
        whole = -model.log_prob(torch.as_tensor(x, dtype=torch.float64), observed=torch.as_tensor(observed))
        np.testing.assert_allclose(got, whole.detach().numpy(), rtol=1e-5)
        np.testing.assert_allclose(got[0], -log_p[int("".join(map(str, x[0])), 2)], rtol=1e-5)
    fill = inpainting.model_mode_fill(model, x, observed, draws=3, seed=0, batch=2)
    assert np.array_equal(fill[observed], x[observed]) and set(np.unique(fill)) <= {0, 1}


def _tiny_models(tmp_path: Path) -> tuple[Path, Path]:
    torch.manual_seed(3)
    nade, made = ardens.NADE(784, hidden=4), ardens.MADE(784, hidden=[6], direct=True)
    paths = tmp_path / "nade.safetensors", tmp_path / "made.safetensors"
    ardens.save(nade, paths[0])
    ardens.save(made, paths[1])
    return paths


def _synthetic(rng: np.random.Generator) -> Dataset:
    """Strokes on 28x28 images: a column band whose position varies, plus noise."""

    def images(count: int) -> np.ndarray:
        out = (rng.random((count, 28, 28)) < 0.05).astype(np.uint8)
        for k, c in enumerate(rng.integers(6, 20, count)):
            out[k, 4:24, c : c + 3] = 1
        return out.reshape(count, 784)

    return Dataset(name="synthetic", train=images(40), valid=images(12), test=images(12), image_shape=(28, 28))


def test_a_whole_run_uses_the_same_masks_for_every_method_and_renders(tmp_path, monkeypatch):
    data = _synthetic(np.random.default_rng(4))
    nade_file, made_file = _tiny_models(tmp_path)
    monkeypatch.setattr(inpainting, "load_dataset", lambda *a, **k: data)
    monkeypatch.setattr(inpainting, "NADE_FILE", nade_file)
    monkeypatch.setattr(inpainting, "MADE_FILE", made_file)
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("before\n<!-- inpainting -->\nSTALE-BLOCK\n<!-- /inpainting -->\nafter <!-- other -->\n")
    monkeypatch.setattr(sys.modules[inpainting.write_block.__module__], "BENCHMARKS_MD", md)
    seen: dict[str, list[np.ndarray]] = {}

    def record(name):
        fn = getattr(inpainting, name)

        def wrapped(*args, **kw):
            seen.setdefault(name, []).append(np.array(args[2] if name != "knn_fill" else args[2]))
            return fn(*args, **kw)

        monkeypatch.setattr(inpainting, name, wrapped)

    for name in ("bernoulli_fill", "knn_fill", "model_mode_fill", "bernoulli_conditional_nll", "model_conditional_nll"):
        record(name)
    results = tmp_path / "r.json"
    argv = ["--hidden", "3", "--epochs", "1", "--valid-images", "6", "--test-images", "5", "--error-images", "2"]
    argv += ["--draws", "1", "--runs", str(tmp_path / "runs"), "--results", str(results)]
    argv += ["--figure", str(tmp_path / "f.png")]
    inpainting.main(argv)
    rec = json.loads(results.read_text())
    assert (tmp_path / "f.png").stat().st_size > 0
    it = inpainting.subset("test", 12, 5)
    for task in inpainting.TASKS:
        mt = inpainting.observed_for(task, "test", it)
        # every completion (Bernoulli, KNN, each ardens model tested) saw the same masks of the same images
        fills = [m for name in ("bernoulli_fill", "knn_fill", "model_mode_fill") for m in seen[name]]
        same = [m for m in fills if np.array_equal(m, mt[:2])]
        tested = [n for n, r in rec["tasks"][task]["test"].items() if "skipped" not in r]
        assert len(same) == len(tested)
        nlls = [m for name in ("bernoulli_conditional_nll", "model_conditional_nll") for m in seen[name]]
        assert sum(np.array_equal(m, mt) for m in nlls) == sum("nll" in rec["tasks"][task]["test"][n] for n in tested)
        # the Bernoulli peer's figure is the one computed here on those images and masks
        probs = (data.train.sum(0) + 1.0) / (len(data.train) + 2.0)
        want = inpainting.bernoulli_conditional_nll(probs, data.test[it], mt).mean()
        assert rec["tasks"][task]["test"][inpainting.BERNOULLI]["nll"] == pytest.approx(want)
    rand = rec["tasks"]["random"]["test"]
    assert "prefix" in rand[inpainting.NADE_NAME]["library_error"] and "skipped" in rand[inpainting.MADE_NAME]
    text = md.read_text()
    assert text.startswith("before\n<!-- inpainting -->\n") and text.endswith(
        "<!-- /inpainting -->\nafter <!-- other -->\n"
    )
    assert "STALE-BLOCK" not in text and "not exact for this observed set" in text and inpainting.KNN in text
    top = rec["tasks"]["top"]["test"][inpainting.BERNOULLI]
    assert f"{top['nll']:.2f} ± {top['nll_stderr']:.2f}" in text
    md.write_text("<!-- inpainting -->\n<!-- /inpainting -->\n")
    inpainting.main(["--render-only", "--results", str(results)])
    assert md.read_text() == text[len("before\n") : -len("after <!-- other -->\n")]
