"""Training: run directory contents, early stopping, bit-identical resume, baselines, evaluation."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import ardens
from ardens.baselines import IndependentBernoulli, MixtureOfBernoullis, select_mixture
from ardens.data import Dataset, load_digits
from ardens.evaluate import evaluate, log_likelihoods, member_log_likelihoods
from ardens.train import (
    ModelConfig,
    RunDirError,
    TrainConfig,
    build_model,
    fit,
    flush_denormals,
    init_output_bias,
    make_optimizer,
    resume,
)

DIGITS = load_digits()
SMALL = Dataset("digits", DIGITS.train[:300], DIGITS.valid[:100], DIGITS.test[:100], (8, 8))


def metrics(run_dir) -> list[dict]:
    """The rows of a run's metrics.jsonl."""
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_fit_writes_run_dir_and_checkpoint_metadata(tmp_path):
    torch.manual_seed(0)
    model = build_model("made", 64, ModelConfig(hidden=[32], num_masks=2, ordering="random"))
    result = fit(model, SMALL, TrainConfig(epochs=3, batch_size=50, lr=0.01), tmp_path / "run", progress=False)
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} == {
        "best.safetensors",
        "resume.safetensors",
        "metrics.jsonl",
        "learning_curve.png",
    }
    rows = metrics(run)
    assert [r["epoch"] for r in rows] == [1, 2, 3] and result.epochs_run == 3
    assert set(rows[0]) == {"epoch", "train_nll", "valid_nll", "seconds", "lr"}
    best = min(rows, key=lambda r: r["valid_nll"])
    meta = ardens.read_metadata(run / "best.safetensors")
    assert meta["epoch"] == best["epoch"] == result.best_epoch
    assert meta["data"] == "digits" and meta["image_shape"] == [8, 8] and meta["training"]["lr"] == 0.01
    # the saved best model reproduces the logged validation NLL (ensemble of both masks)
    again = ardens.load(run / "best.safetensors")
    assert -log_likelihoods(again, SMALL.valid).mean() == pytest.approx(best["valid_nll"], rel=1e-5)


def test_valid_masks_sets_the_validation_ensemble(tmp_path):
    torch.manual_seed(0)
    model = build_model("made", 64, ModelConfig(hidden=[16], num_masks=4, ordering="random"))
    config = TrainConfig(epochs=1, batch_size=50, lr=0.01, valid_masks=2)
    fit(model, SMALL, config, tmp_path / "run", progress=False)
    logged = metrics(tmp_path / "run")[0]["valid_nll"]
    best = ardens.load(tmp_path / "run" / "best.safetensors")
    two = float(-log_likelihoods(best, SMALL.valid, masks=2).mean())
    four = float(-log_likelihoods(best, SMALL.valid).mean())
    assert logged == pytest.approx(two, rel=1e-5) and abs(two - four) > 1e-3
    with pytest.raises(ValueError, match="valid_masks"):
        TrainConfig(valid_masks=0)


def test_training_improves_on_the_initial_model(tmp_path):
    torch.manual_seed(0)
    model = build_model("nade", 64, ModelConfig(hidden=[20]))
    before = evaluate(model, SMALL.valid).nll
    result = fit(model, SMALL, TrainConfig(epochs=5, batch_size=50, lr=0.01), tmp_path, progress=False)
    assert result.best_valid_nll < before - 3


def test_output_bias_starts_at_the_marginals():
    model = build_model("made", 64, ModelConfig(hidden=[16]))
    init_output_bias(model, SMALL.train)
    p = np.clip(SMALL.train.mean(0), 1e-3, 1 - 1e-3)
    np.testing.assert_allclose(torch.sigmoid(model.layers[-1].bias).detach().numpy(), p, rtol=1e-5)
    nade = build_model("nade", 64, ModelConfig(hidden=[4]))
    init_output_bias(nade, SMALL.train)
    np.testing.assert_allclose(torch.sigmoid(nade.c).detach().numpy(), p, rtol=1e-5)


def test_early_stopping_with_patience(tmp_path):
    torch.manual_seed(0)
    model = build_model("made", 64, ModelConfig(hidden=[64]))
    # a large learning rate overfits 300 examples quickly
    result = fit(model, SMALL, TrainConfig(epochs=200, batch_size=20, lr=0.03, patience=2), tmp_path, progress=False)
    assert result.stopped_early and result.epochs_run == result.best_epoch + 2 < 200


@pytest.mark.parametrize("run_dir", [True, False])
def test_fit_ends_with_the_best_validation_weights(tmp_path, run_dir):
    """Overfitting past the best epoch: the model handed to fit ends as its best epoch, with or
    without a run directory, and equals best.safetensors."""
    torch.manual_seed(0)
    model = build_model("made", 64, ModelConfig(hidden=[64]))
    config = TrainConfig(epochs=200, batch_size=20, lr=0.03, patience=3)
    result = fit(model, SMALL, config, tmp_path / "run" if run_dir else None, progress=False)
    assert result.best_epoch < result.epochs_run
    last = result.history[-1]["valid_nll"]
    assert result.best_valid_nll < last
    assert float(-log_likelihoods(model, SMALL.valid).mean()) == pytest.approx(result.best_valid_nll, rel=1e-6)
    if run_dir:
        saved = ardens.load(tmp_path / "run" / "best.safetensors")
        for (k, a), b in zip(model.state_dict().items(), saved.state_dict().values()):
            assert torch.equal(a, b), k
    else:
        assert not (tmp_path / "run").exists()


class SimulatedInterruptError(Exception):
    pass


def _interrupt_after(epoch: int):
    def log(line: str) -> None:
        if line.startswith(f"epoch {epoch:3d}"):
            raise SimulatedInterruptError

    return log


def test_resumed_optimizer_state_is_copied_out_of_the_file(tmp_path):
    """safetensors puts tensors at any 8-byte offset of its buffer, and on some CPUs BLAS
    reductions round differently there (on an AMD EPYC, ``torch.dot`` of the same float32
    vectors gave another result for 12 of 15 offsets): restored L-BFGS history read in place
    made a resumed run drift from the uninterrupted one. Resume copies the state out."""
    from safetensors.torch import load_file, save_file

    from ardens.train import _flatten_optimizer, _unflatten_optimizer

    model = torch.nn.Linear(5, 3)
    opt = torch.optim.LBFGS(model.parameters(), history_size=4, max_iter=5)

    def closure():
        opt.zero_grad()
        loss = (model(torch.ones(2, 5)) - 1).pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    tensors, other = _flatten_optimizer(opt.state_dict())
    save_file(tensors, str(tmp_path / "state.safetensors"))
    loaded = load_file(str(tmp_path / "state.safetensors"))
    state = _unflatten_optimizer(loaded, other)["state"][0]
    restored = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    restored.update(
        {f"{k}.{i}": t for k, v in state.items() if isinstance(v, list) for i, t in enumerate(v) if t is not None}
    )
    assert restored and restored.keys() <= {k.split("optim.0.", 1)[1] for k in loaded}
    file_pointers = {t.data_ptr() for t in loaded.values()}
    for name, t in restored.items():
        assert t.data_ptr() not in file_pointers, f"{name} is read in place from the file"
        assert t.data_ptr() % 64 == 0, f"{name} is not 64-byte aligned"
        assert torch.equal(t, loaded[f"optim.0.{name}"])


@pytest.mark.parametrize(
    "kind,model_config,optimizer",
    [
        ("nade", ModelConfig(hidden=[16]), "adam"),
        ("made", ModelConfig(hidden=[24, 24], num_masks=3, ordering="random", direct=True), "sgd"),
        ("made", ModelConfig(hidden=[24], dropout=0.3), "adagrad"),
        ("deepnade", ModelConfig(hidden=[16, 16], num_masks=2, ordering="random"), "adam"),
        ("made", ModelConfig(hidden=[16]), "lbfgs"),
    ],
)
def test_interrupted_and_resumed_run_is_bit_identical(tmp_path, kind, model_config, optimizer):
    config = TrainConfig(epochs=5, batch_size=64, lr=0.01, optimizer=optimizer, seed=7, patience=100)

    def new_model():
        torch.manual_seed(3)
        return build_model(kind, 64, model_config)

    full = fit(new_model(), SMALL, config, tmp_path / "full", progress=False)
    with pytest.raises(SimulatedInterruptError):
        fit(new_model(), SMALL, config, tmp_path / "cut", progress=False, log=_interrupt_after(2))
    torch.manual_seed(999)  # the global RNG is restored from the resume state, not inherited
    resumed = resume(tmp_path / "cut", SMALL, progress=False)
    assert resumed.epochs_run == full.epochs_run == 5
    a = ardens.load(tmp_path / "full" / "best.safetensors").state_dict()
    b = ardens.load(tmp_path / "cut" / "best.safetensors").state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [(r["epoch"], r["valid_nll"]) for r in metrics(tmp_path / "full")] == [
        (r["epoch"], r["valid_nll"]) for r in metrics(tmp_path / "cut")
    ]


def _objective(model, x: torch.Tensor, weight_decay: float, decay_biases: bool) -> torch.Tensor:
    """What L-BFGS minimizes: mean NLL plus weight_decay / 2 times the squared norm of the
    decayed parameters (the biases too, unless exempt)."""
    penalty = sum(p.pow(2).sum() for p in model.parameters() if decay_biases or p.ndim > 1)
    return -model.log_prob(x).mean() + 0.5 * weight_decay * penalty


@pytest.mark.parametrize("decay_biases", [True, False])
def test_lbfgs_takes_an_fvsbn_to_the_optimum_of_its_objective(tmp_path, decay_biases):
    """An FVSBN's objective is convex: L-BFGS must end at a stationary point (float64), whose
    objective no long Adam run with the same weight decay beats. (Near the optimum each epoch's
    L-BFGS call stops after few iterations on ``tolerance_change``, so the gradient shrinks
    slowly: after 30 epochs its largest entry was below 1e-6 on the Intel machine and 1.13e-6
    on the AMD one, after 60 epochs 5.8e-7 there.)"""
    wd = 1e-2
    x = torch.as_tensor(SMALL.train, dtype=torch.float64)

    def fvsbn():
        torch.manual_seed(0)
        return build_model("made", 64, ModelConfig(hidden=[])).double()

    def train(model, name, **kwargs):
        config = TrainConfig(weight_decay=wd, decay_biases=decay_biases, patience=100, **kwargs)
        fit(model, SMALL, config, tmp_path / name, progress=False)
        return model

    def last_epoch(model, name):
        """``fit`` leaves the best validation epoch in the model; the optimum is the last one's."""
        tensors = load_file(str(tmp_path / name / "resume.safetensors"))
        model.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")})
        return model

    lbfgs = last_epoch(train(fvsbn(), "lbfgs", epochs=60, optimizer="lbfgs", lr=1.0, batch_size=128), "lbfgs")
    objective = _objective(lbfgs, x, wd, decay_biases)
    grads = torch.autograd.grad(objective, list(lbfgs.parameters()))
    assert max(float(g.abs().max()) for g in grads) < 1e-6
    adam = train(fvsbn(), "adam", epochs=100, lr=0.01, batch_size=50)
    adam_objective = float(_objective(adam, x, wd, decay_biases).detach())
    best = float(objective.detach())
    assert best <= adam_objective < best + 0.5  # near it after 600 steps, never below it


def test_decay_biases_false_exempts_exactly_the_biases():
    model = build_model("nade", 64, ModelConfig(hidden=[8]))
    groups = make_optimizer(model, TrainConfig(weight_decay=0.1, decay_biases=False)).param_groups
    decayed = {id(p) for g in groups if g["weight_decay"] == 0.1 for p in g["params"]}
    assert decayed == {id(model.W), id(model.V)}
    assert len(make_optimizer(model, TrainConfig(weight_decay=0.1)).param_groups) == 1


def test_lbfgs_refuses_stochastic_losses(tmp_path):
    config = TrainConfig(epochs=1, optimizer="lbfgs", lr=1.0)
    cases = [
        ("made", ModelConfig(hidden=[8], num_masks=2)),
        ("made", ModelConfig(hidden=[8], dropout=0.1)),
        ("deepnade", ModelConfig(hidden=[8])),
    ]
    for i, (kind, model_config) in enumerate(cases):
        with pytest.raises(ValueError, match="lbfgs needs a deterministic full-batch loss"):
            fit(build_model(kind, 64, model_config), SMALL, config, tmp_path / str(i), progress=False)
        assert not (tmp_path / str(i)).exists()


def test_resume_can_extend_and_checks_the_data(tmp_path):
    torch.manual_seed(0)
    model = build_model("nade", 64, ModelConfig(hidden=[8]))
    fit(model, SMALL, TrainConfig(epochs=2, batch_size=100), tmp_path, progress=False)
    assert resume(tmp_path, SMALL, epochs=4, progress=False).epochs_run == 4
    other = Dataset("other", DIGITS.valid, DIGITS.valid, DIGITS.test)
    with pytest.raises(ValueError, match="not the training data of this run"):
        resume(tmp_path, other, epochs=6, progress=False)


def test_raising_the_epoch_cap_continues_a_run_exactly(tmp_path):
    """benchmarks/reproduce.py relies on this: a run capped at 4 epochs, resumed to 8, is the run
    started with a cap of 8 (weights, validation curve and learning-rate decays)."""
    config = TrainConfig(epochs=8, batch_size=64, lr=0.3, seed=1, patience=100, lr_decay=0.5, decay_patience=1)

    def new_model():
        torch.manual_seed(5)
        return build_model("made", 64, ModelConfig(hidden=[16], num_masks=2, ordering="random"))

    fit(new_model(), SMALL, config, tmp_path / "long", progress=False)
    fit(new_model(), SMALL, TrainConfig(**{**asdict(config), "epochs": 4}), tmp_path / "short", progress=False)
    resume(tmp_path / "short", SMALL, epochs=8, progress=False)
    a = ardens.load(tmp_path / "long" / "best.safetensors").state_dict()
    b = ardens.load(tmp_path / "short" / "best.safetensors").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [(r["valid_nll"], r["lr"]) for r in metrics(tmp_path / "long")] == [
        (r["valid_nll"], r["lr"]) for r in metrics(tmp_path / "short")
    ]
    assert any(r["lr"] < config.lr for r in metrics(tmp_path / "long")), "the decay was not exercised"


def test_fit_refuses_a_non_empty_run_dir_and_a_wrong_dimension(tmp_path):
    (tmp_path / "keep.txt").write_text("precious")
    model = build_model("nade", 64, ModelConfig(hidden=[8]))
    with pytest.raises(RunDirError, match="not empty"):
        fit(model, SMALL, TrainConfig(epochs=1), tmp_path, progress=False)
    assert (tmp_path / "keep.txt").read_text() == "precious"
    with pytest.raises(ValueError, match="data has 64 dimensions; the model expects 10"):
        fit(build_model("nade", 10, ModelConfig(hidden=[8])), SMALL, TrainConfig(epochs=1), tmp_path / "new")
    with pytest.raises(RunDirError, match="no resume state"):
        resume(tmp_path, SMALL)


def test_bad_train_config_values():
    for kwargs, pattern in [
        ({"epochs": 0}, "epochs"),
        ({"lr": -1.0}, "lr"),
        ({"lr": math.nan}, "lr"),
        ({"optimizer": "rmsprop"}, "optimizer"),
        ({"momentum": 1.5}, "momentum"),
        ({"batch_size": 2.5}, "batch_size"),
    ]:
        with pytest.raises(ValueError, match=pattern):
            TrainConfig(**kwargs)


def test_evaluate_ensemble_and_single_mask():
    torch.manual_seed(0)
    model = ardens.MADE(64, hidden=[16], num_masks=4, ordering="random")
    x = DIGITS.test[:50]
    report = evaluate(model, x, masks=2, batch_size=7)
    xt = torch.as_tensor(x, dtype=torch.float32)
    with torch.no_grad():
        members = torch.stack([model.log_prob(xt, mask=i) for i in range(2)])
        expected = -(members.logsumexp(0) - math.log(2)).double()
        single = -model.log_prob(xt, mask=0).double()
    assert report.masks == 2 and report.nll == pytest.approx(float(expected.mean()), rel=1e-6)
    assert report.stderr == pytest.approx(float(expected.std() / math.sqrt(50)), rel=1e-5)
    assert report.single_mask_nll == pytest.approx(float(single.mean()), rel=1e-6)
    assert report.bits_per_dim == pytest.approx(report.nll / (64 * math.log(2)))
    with torch.no_grad():
        plain = -float(model.log_prob(xt).double().mean())
    assert evaluate(model, x).nll == pytest.approx(plain, rel=1e-5)
    with pytest.raises(ValueError, match="masks"):
        evaluate(model, x, masks=5)
    with pytest.raises(ValueError, match="dimensions"):
        evaluate(model, x[:, :10])


def test_evaluate_reads_each_member_once_per_batch(monkeypatch):
    model = ardens.MADE(64, hidden=[16], num_masks=3, ordering="random", seed=1)
    x = DIGITS.test[:20]
    xt = torch.as_tensor(x, dtype=torch.float32)
    with torch.no_grad():
        expected = torch.stack([model.log_prob(xt, mask=i) for i in range(3)])
    members = member_log_likelihoods(model, x, batch_size=6)
    assert members.shape == (3, 20) and torch.allclose(members, expected, rtol=1e-6)
    calls = []
    log_prob = model.log_prob
    monkeypatch.setattr(model, "log_prob", lambda xb, mask=None: calls.append(mask) or log_prob(xb, mask=mask))
    report = evaluate(model, x, batch_size=10)
    assert calls == [0, 1, 2, 0, 1, 2]  # member 0's figure comes from the same pass
    assert report.single_mask_nll == pytest.approx(-float(expected[0].double().mean()), rel=1e-6)
    assert report.nll == pytest.approx(-float(log_likelihoods(model, x).mean()), rel=1e-12)


def test_baselines_are_normalized_and_fit_by_em():
    rng = np.random.default_rng(0)
    n = 6
    grid = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(np.uint8)
    x = (rng.random((400, n)) < np.where(rng.random(400)[:, None] < 0.5, 0.9, 0.1)).astype(np.uint8)
    for model in (IndependentBernoulli().fit(x), MixtureOfBernoullis(3, seed=1).fit(x)):
        assert np.exp(model.log_prob(grid)).sum() == pytest.approx(1.0, abs=1e-9)
    # two clear clusters: the mixture beats independence; K is chosen on held-out data
    sel = select_mixture(x[:300], x[300:], ks=(1, 2, 4))
    assert sel.valid_nll[2] < sel.valid_nll[1] - 1.0
    assert sel.model.k == min(sel.valid_nll, key=sel.valid_nll.get)
    assert sel.valid_nll[1] == pytest.approx(-IndependentBernoulli().fit(x[:300]).log_prob(x[300:]).mean(), abs=0.05)


def test_mixture_with_components_left_empty_stays_normalized():
    """More components than distinct rows: EM empties some (weight exactly 0, log 0 = -inf)."""
    n = 4
    grid = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(np.uint8)
    x = np.repeat(grid[[3, 12]], 5, axis=0)
    with np.errstate(divide="raise", invalid="raise"):  # no warning: an empty component is expected
        model = MixtureOfBernoullis(64, alpha=0.01, seed=0, max_iter=500, tol=-1.0).fit(x)
    assert np.isneginf(model.log_pi).any(), "no component emptied: the case is not exercised"
    assert np.exp(model.log_prob(grid)).sum() == pytest.approx(1.0, abs=1e-9)
    assert np.isfinite(model.log_prob(grid)).all()


def _interrupted_then_resumed(config: TrainConfig, run_dir, interrupt_after: int):
    """Train a small MADE with ``config``, interrupt it after an epoch, resume it to the end."""
    torch.manual_seed(0)
    with pytest.raises(SimulatedInterruptError):
        fit(
            build_model("made", 64, ModelConfig(hidden=[8])),
            SMALL,
            config,
            run_dir,
            progress=False,
            log=_interrupt_after(interrupt_after),
        )
    return resume(run_dir, SMALL, progress=False)


def test_learning_rate_decays_on_plateau_and_survives_resume(tmp_path, monkeypatch):
    """Validation NLL that never improves after epoch 1: the rate halves every 2 bad epochs."""
    scores = iter([10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0])
    monkeypatch.setattr(ardens.train, "mean_nll", lambda *args, **kwargs: next(scores))
    config = TrainConfig(epochs=6, batch_size=100, lr=0.01, patience=100, lr_decay=0.5, decay_patience=2)
    _interrupted_then_resumed(config, tmp_path, interrupt_after=4)
    rows = metrics(tmp_path)
    assert [r["lr"] for r in rows] == [0.01, 0.01, 0.005, 0.005, 0.0025, 0.0025]
    with pytest.raises(ValueError, match="lr_decay"):
        TrainConfig(lr_decay=0.0)


def test_valid_every_validates_on_its_schedule_and_counts_patience_in_validations(tmp_path, monkeypatch):
    """Validation after epochs 3, 6, 9, ... only; a plateau of 2 validations stops the run;
    the best checkpoint is the validated epoch with the lowest NLL; resume is exact."""
    scores = iter([10.0, 9.0, 9.5, 9.7, 99.0])
    calls = []

    def fake_mean_nll(*args, **kwargs):
        calls.append(1)
        return next(scores)

    monkeypatch.setattr(ardens.train, "mean_nll", fake_mean_nll)
    config = TrainConfig(epochs=30, batch_size=100, lr=0.01, patience=2, valid_every=3)
    result = _interrupted_then_resumed(config, tmp_path, interrupt_after=7)
    rows = metrics(tmp_path)
    assert [r["epoch"] for r in rows if r["valid_nll"] is not None] == [3, 6, 9, 12]
    assert [r["valid_nll"] for r in rows if r["valid_nll"] is not None] == [10.0, 9.0, 9.5, 9.7]
    assert len(calls) == 4 and result.epochs_run == 12 and result.stopped_early
    assert (result.best_epoch, result.best_valid_nll) == (6, 9.0)
    assert ardens.read_metadata(tmp_path / "best.safetensors")["epoch"] == 6
    with pytest.raises(ValueError, match="valid_every"):
        TrainConfig(epochs=2, valid_every=3)


def test_training_flushes_denormals_only_while_it_runs():
    tiny = torch.tensor([1e-40])  # a float32 denormal
    assert tiny.item() != 0.0
    with flush_denormals(torch.device("cpu")):
        flushed = (tiny * 1.0).item()
    if flushed != 0.0 and not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush denormals")
    assert flushed == 0.0
    assert (tiny * 1.0).item() == pytest.approx(1e-40, rel=1e-3), "left flushing on after training"


def test_denormals_are_flushed_on_every_intra_op_thread():
    # torch.set_flush_denormal alone reaches only the calling thread: with two threads, the
    # OpenMP worker's half of an elementwise op kept its denormals (and ran ~20x slower).
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        tiny = torch.full((1 << 20,), 1e-40)  # large enough to be split across the threads
        _ = tiny * 1.0  # the worker pool exists before flushing starts
        with flush_denormals(torch.device("cpu")):
            kept_inside = int((tiny * 1.0 != 0).sum())
        kept_after = int((tiny * 1.0 != 0).sum())
    finally:
        torch.set_num_threads(threads)
    if kept_inside == tiny.numel() and not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush denormals")
    assert kept_inside == 0, f"{kept_inside} of {tiny.numel()} denormals survived on some thread"
    assert kept_after == tiny.numel(), "left flushing on after training"


def test_denormals_are_flushed_on_torchs_workers_when_another_openmp_runtime_is_loaded():
    """scikit-learn's wheel carries its own libgomp: loaded first, it must not be mistaken for
    torch's (its parallel region would set the flags on its own workers, not torch's)."""
    pytest.importorskip("sklearn")
    import subprocess
    import sys

    code = (
        "import numpy as np; from sklearn.mixture import GaussianMixture;"
        "GaussianMixture(2).fit(np.random.rand(50, 2));"
        "import torch; from ardens._denormals import flush_denormals;"
        "torch.set_num_threads(2); tiny = torch.full((1 << 20,), 1e-40); _ = tiny * 1.0\n"
        "with flush_denormals(torch.device('cpu')): kept = int((tiny * 1.0 != 0).sum())\n"
        "print(kept if torch.set_flush_denormal(False) else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert int(out.strip()) == 0
