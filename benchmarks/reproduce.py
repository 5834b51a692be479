"""Reproduce the published NADE/MADE tables: train, select on validation, test once, render.

Run:
    .venv/bin/python benchmarks/reproduce.py uci               # every row of the UCI table
    .venv/bin/python benchmarks/reproduce.py mnist --rows nade  # rows whose id matches
    .venv/bin/python benchmarks/reproduce.py uci --render-only  # rebuild the markdown tables
    .venv/bin/python benchmarks/reproduce.py mnist --rows nade --validation-only  # no test

Each row is one committed config file, ``benchmarks/configs/<table>/<row>.json``:

    {"dataset": "dna", "row": "NADE", "published": 84.81, "kind": "nade",
     "model": {"hidden": [500]}, "train": {"lr": 0.001, "patience": 20},
     "grid": {"train.lr": [0.001, 0.0003]}}

(or ``"points": [{"train.lr": 0.001}, {"train.lr": 0.0003, "train.lr_decay": 0.5}]``).

``kind`` is ``nade``, ``made`` or ``deepnade`` (trained with :func:`ardens.train.fit`),
``mob`` (mixture of Bernoullis, EM, K chosen from ``grid.k``) or ``bernoulli`` (independent
pixels). Every grid point is trained on ``train`` with early stopping on ``valid``; the
point whose best checkpoint has the lowest validation NLL is chosen, and only that model is
evaluated on ``test``. An ensemble (MADE's masks, DeepNADE's orderings) is evaluated, on
validation for the choice and on test, as the normalized ensemble over all its members.

Runs live in ``runs/reproduce/<table>/<row>/<point>`` (interrupted runs are resumed, and
raising a config's ``train.epochs`` continues runs that stopped at the old cap), results in
``benchmarks/results/<table>/<row>.json``, and the chosen model is copied to
``pretrained/<table>/<row>.safetensors`` (up to 16 MB) with a model card beside it. The
markdown tables are written into BENCHMARKS.md between ``<!-- reproduce:<table> -->``
markers. A run longer than one round of work can leave a committed resume state in
``benchmarks/resume/<table>/<row>/<point>`` (``--commit-resume`` copies the run's resume files
there, replacing the last one); a run directory that does not exist yet starts from it.
"""

from __future__ import annotations

import argparse
import copy
import fnmatch
import hashlib
import itertools
import json
import math
import os
import platform
import shutil
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open

import ardens
from ardens.baselines import IndependentBernoulli, MixtureOfBernoullis
from ardens.data import load_dataset
from ardens.evaluate import evaluate
from ardens.serialization import atomic_write, atomic_write_text
from ardens.train import ModelConfig, TrainConfig, TrainResult, build_model, fit, resolve_device, resume

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "benchmarks" / "configs"
RESULTS = ROOT / "benchmarks" / "results"
PRETRAINED = ROOT / "pretrained"
RUNS = ROOT / "runs" / "reproduce"
# Committed resume states of runs longer than a round of work (run directories do not outlast
# one): <table>/<row>/<point>/ holds the files a run resumes exactly from. One state per point,
# replaced by --commit-resume, removed when the row is done.
RESUME_STATES = ROOT / "benchmarks" / "resume"
RESUME_FILES = ("resume.safetensors", "best.safetensors", "metrics.jsonl")
NEURAL = ("nade", "made", "deepnade")  # kinds trained with fit(); the others are baselines
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"


def machine(device: str = "cpu") -> dict[str, Any]:
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__}
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def grid_points(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The candidates of a row: every combination of its ``grid`` (``section.key`` -> values),
    or its explicit ``points`` (a list of ``{section.key: value}``), applied to its config."""
    if "points" in config:
        settings = [dict(sorted(p.items())) for p in config["points"]]
    else:
        grid = config.get("grid", {})
        keys = sorted(grid)
        settings = [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]
    points = []
    for setting in settings:
        point = copy.deepcopy(config)
        for key, value in setting.items():
            section, _, name = key.partition(".")
            point.setdefault(section, {})[name] = value
        point["point"] = setting
        points.append(point)
    return points


def point_id(point: dict[str, Any]) -> str:
    """The point's settings, readable, then a hash of everything that defines its run (so an
    edited config never resumes a run made under another).

    The epoch cap is left out of the hash: a run stopped by the cap, not by early stopping,
    continues where it stopped when the cap is raised, exactly as a run started with the
    higher cap would have (the resume state holds the optimizer, the learning rate reached
    and the shuffling generator)."""
    parts = [f"{k.split('.')[-1]}={v}" for k, v in point["point"].items() if k != "train.epochs"]
    readable = ",".join(parts).replace(" ", "").replace("[", "").replace("]", "") or "default"
    train = {k: v for k, v in point.get("train", {}).items() if k != "epochs"}
    defining = json.dumps(
        {"dataset": point.get("dataset"), "kind": point.get("kind"), "model": point.get("model"), "train": train},
        sort_keys=True,
    )
    return f"{readable}-{hashlib.sha1(defining.encode()).hexdigest()[:8]}"


def committed_state(run_dir: Path) -> Path:
    """Where the committed resume state of the run in ``run_dir`` lives."""
    return RESUME_STATES / run_dir.relative_to(RUNS)


def seed_from_committed(run_dir: Path) -> bool:
    """Start a run directory that has no resume state from its point's committed one, if any."""
    if not run_dir.is_relative_to(RUNS) or (run_dir / "resume.safetensors").exists():
        return False
    src = committed_state(run_dir)
    if not (src / "resume.safetensors").is_file():
        return False
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in RESUME_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, run_dir / name)
    print(f"   starting from the committed resume state {src}", flush=True)
    return True


def commit_resume(run_dir: Path) -> Path:
    """Copy the run's resume files to its committed state (replacing the previous one)."""
    if not (run_dir / "resume.safetensors").is_file():
        sys.exit(f"reproduce: {run_dir}: no resume state to commit")
    dst = committed_state(run_dir)
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for name in RESUME_FILES:
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, dst / name)
    return dst


def train_point(
    point: dict[str, Any], data, run_dir: Path, device: str | None = None, finish: bool = False
) -> TrainResult:
    """Train (or resume) one grid point in ``run_dir``, on ``device`` where given (else the
    config's, by default the CPU). The device is not part of the run's identity: a run started
    on one device continues on another. ``finish``: no further epochs; the run ends where its
    resume state stands (its best checkpoint is the one chosen)."""
    seed_from_committed(run_dir)
    if finish and not (run_dir / "resume.safetensors").is_file():
        sys.exit(f"reproduce: --finish: {run_dir} has no resume state to finish")
    if (run_dir / "resume.safetensors").is_file():
        epochs, valid_every = point["train"].get("epochs"), None
        if finish:  # the cap is the epochs run: none more
            with safe_open(str(run_dir / "resume.safetensors"), framework="pt") as f:
                epochs = int(json.loads(f.metadata()["ardens_resume"])["epoch"])
            if epochs < 1:
                sys.exit(f"reproduce: --finish: {run_dir} has not finished an epoch yet")
            valid_every = min(epochs, point["train"].get("valid_every", 1))
        result = resume(run_dir, data, epochs=epochs, valid_every=valid_every, device=device, progress=False, log=print)
    else:
        torch.manual_seed(point["train"].get("seed", 0))
        model = build_model(point["kind"], data.dim, ModelConfig(**point.get("model", {})), columns=data.column_specs)
        train = dict(point.get("train", {}), **({"device": device} if device is not None else {}))
        result = fit(
            model,
            data,
            TrainConfig(**train),
            run_dir,
            model_kind=point["kind"],
            progress=False,
            log=print,
        )
    return result


def run_neural(
    config: dict[str, Any], data, runs: Path, test: bool = True, device: str | None = None, finish: bool = False
) -> dict[str, Any]:
    """Train every point; choose the one whose best checkpoint has the lowest validation NLL,
    measured as the test will be (a K-mask MADE stops early on an ensemble of its first
    members, ``train.valid_masks``, but is scored and chosen as the ensemble of all K).
    With ``test=False``, stop there: the validation NLL of every point, and no test. Training
    and evaluation run on ``device`` where given, else on the CPU. ``finish``: no further
    training (:func:`train_point`); a single point then has nothing to be chosen against, so
    its validation figure is the one training recorded for its best checkpoint (on
    ``train.valid_masks`` members, which the results say) instead of a K-member evaluation."""
    where = device or "cpu"
    points = grid_points(config)
    scores, seconds, best = {}, 0.0, None
    valid_members = None
    for point in points:
        pid = point_id(point)
        print(f"-- {config['dataset']} {config['row']} [{pid}]", flush=True)
        result = train_point(point, data, runs / pid, device, finish=finish)
        if finish and len(points) == 1:
            valid_members = point["train"].get("valid_masks", 1)
            valid = types.SimpleNamespace(nll=result.best_valid_nll)
        else:
            valid = evaluate(ardens.load(runs / pid / "best.safetensors", map_location=where), data.valid)
        scores[pid], seconds = valid.nll, seconds + result.seconds
        if best is None or valid.nll < best[3].nll:
            best = (pid, point, result, valid)
        print(f"   valid {valid.nll:.3f} (best epoch {result.best_epoch} of {result.epochs_run})", flush=True)
    if not test:
        return {"grid_valid_nll": scores, "chosen": best[1]["point"]}
    pid, point, result, valid = best
    checkpoint = runs / pid / "best.safetensors"
    model = ardens.load(checkpoint, map_location=where)
    test = evaluate(model, data.test)
    return {
        "chosen": point["point"],
        "model": model.config(),
        "train": point.get("train", {}),
        "valid_nll": valid.nll,
        "test_nll": test.nll,
        "test_stderr": test.stderr,
        "test_single_mask_nll": test.single_mask_nll,
        "masks_averaged": test.masks,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "grid_valid_nll": scores,
        "seconds": seconds,
        "checkpoint": str(checkpoint.relative_to(ROOT)),
        **(
            {
                "finished": f"by --finish at epoch {result.epochs_run} (a time budget), not by early stopping",
                "valid_nll_members": valid_members,
            }
            if finish
            else {}
        ),
    }


def run_baseline(config: dict[str, Any], data) -> dict[str, Any]:
    """Independent Bernoulli, or a mixture of Bernoullis with ``k`` and the prior's pseudo-count
    ``alpha`` chosen on validation from ``grid``."""
    start = time.perf_counter()
    if config["kind"] == "bernoulli":
        model, scores, chosen = IndependentBernoulli(alpha=config.get("alpha", 1.0)).fit(data.train), {}, {}
    else:
        scores, best = {}, None
        for alpha in config["grid"].get("alpha", [1.0]):
            for k in config["grid"]["k"]:
                candidate = MixtureOfBernoullis(k, alpha=alpha, seed=config.get("seed", 0)).fit(data.train)
                key = f"k={k},alpha={alpha}"
                scores[key] = float(-candidate.log_prob(data.valid).mean())
                if best is None or scores[key] < scores[best[0]]:
                    best = (key, candidate, {"k": k, "alpha": alpha})
        _, model, chosen = best
    test_nll = -model.log_prob(data.test)
    return {
        "chosen": chosen,
        "valid_nll": float(-model.log_prob(data.valid).mean()),
        "test_nll": float(test_nll.mean()),
        "test_stderr": float(test_nll.std(ddof=1) / math.sqrt(len(test_nll))),
        "grid_valid_nll": scores,
        "seconds": time.perf_counter() - start,
    }


def run_row(
    table: str, path: Path, data_dir: str | None, test: bool = True, device: str | None = None, finish: bool = False
) -> dict[str, Any] | None:
    """Train, choose and test one row, and write its results. With ``test=False`` (neural
    rows only), train the points (in ``runs/``) and report their validation NLL: no test, and no
    results, model card or table written. ``device`` (``cpu``, ``cuda``, ...) is where neural
    rows train and are evaluated; the baselines always run on the CPU."""
    config = json.loads(path.read_text())
    device = None if device is None else str(resolve_device(device))  # "auto" -> cuda or cpu; refuses unknown names
    data = load_dataset(config["dataset"], data_dir=data_dir, one_hot_groups=config.get("one_hot_groups"))
    row_id = path.stem
    if not test:
        if config["kind"] not in NEURAL:
            sys.exit(f"reproduce: --validation-only is for trained rows; {path.name} is a {config['kind']} baseline")
        scores = run_neural(config, data, RUNS / table / row_id, test=False, device=device)
        print(f"== {config['dataset']} {config['row']}: validation only, would choose {scores['chosen']}", flush=True)
        return None
    if config["kind"] in NEURAL:
        result = run_neural(config, data, RUNS / table / row_id, device=device, finish=finish)
        publish(table, row_id, config, result)
    else:
        result = run_baseline(config, data)
    result.update(
        dataset=config["dataset"],
        row=config["row"],
        published=config.get("published"),
        binary_row=config.get("binary_row"),
        one_hot_groups=[list(g) for g in data.one_hot_groups] if data.one_hot_groups else None,
        source=config.get("source", ""),
        config_file=str(path.relative_to(ROOT)),
        machine=machine(device if config["kind"] in NEURAL and device else "cpu"),
        command=f".venv/bin/python benchmarks/reproduce.py {table} --rows {row_id}"
        + (f" --device {device}" if device else "")
        + (" --finish" if finish else ""),
    )
    atomic_write_text(RESULTS / table / f"{row_id}.json", json.dumps(result, indent=1) + "\n")
    print(
        f"== {config['dataset']} {config['row']}: test {result['test_nll']:.2f} ± {result['test_stderr']:.2f} "
        f"(valid {result['valid_nll']:.2f}; published {config.get('published')})",
        flush=True,
    )
    return result


MAX_PRETRAINED_MB = 16  # larger chosen models (MADE with 8000 units: 50 MB) stay in runs/


def publish(table: str, row_id: str, config: dict[str, Any], result: dict[str, Any]) -> None:
    """Copy the chosen model to pretrained/ with a model card."""
    folder = PRETRAINED / table
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint, weights = ROOT / result["checkpoint"], folder / f"{row_id}.safetensors"
    size_mb = checkpoint.stat().st_size / 2**20
    if size_mb <= MAX_PRETRAINED_MB:
        atomic_write(weights, lambda tmp: shutil.copyfile(checkpoint, tmp))
        check = f"`ardens evaluate pretrained/{table}/{row_id}.safetensors --data {config['dataset']}`"
    else:
        weights.unlink(missing_ok=True)
        check = (
            f"the weights ({size_mb:.0f} MB) are above the repository's {MAX_PRETRAINED_MB} MB limit and are not"
            f" committed; the command above trains them again into `{result['checkpoint']}`"
        )
    masks = f" (ensemble of {result['masks_averaged']} masks)" if result["masks_averaged"] > 1 else ""
    groups = ""
    if config.get("one_hot_groups"):
        groups = (
            "; its one-hot groups of binary columns modeled as categorical columns (found on the training split,"
            " stored in the checkpoint, so the model reads and scores the original binary file)"
        )
    published = "no published value cited" if config.get("published") is None else f"published: {config['published']}"
    if config.get("binary_row"):
        published = f"binary model of the same kind: `benchmarks/results/{config['binary_row']}.json`"
    finished = f" (ended {result['finished']})" if "finished" in result else ""
    finish_flag = " --finish" if "finished" in result else ""
    members = result.get("valid_nll_members")
    valid_members = f" (as training recorded it: {members} member{'s' if members > 1 else ''})" if members else ""
    card = f"""# {config["row"]} on {config["dataset"]}

- data: `{config["dataset"]}` (ardens named set; train/valid/test as in the papers){groups}
- model: `{json.dumps(result["model"])}`
- training: `{json.dumps(result["train"])}`; best epoch {result["best_epoch"]} of {result["epochs_run"]}{finished}
- chosen on validation from: `{json.dumps(result["grid_valid_nll"])}`
- validation NLL{valid_members}: {result["valid_nll"]:.4f} nats
- test NLL{masks}: {result["test_nll"]:.4f} ± {result["test_stderr"]:.4f} nats ({published})
- command: `.venv/bin/python benchmarks/reproduce.py {table} --rows {row_id}{finish_flag}`
- check: {check}
"""
    atomic_write_text(folder / f"{row_id}.md", card)


def render(table: str) -> str:
    """The table's markdown: a row per model, a column per data set; a configured row with no
    result yet shows its published value and "no test figure"."""
    rows = [json.loads(p.read_text()) for p in sorted((RESULTS / table).glob("*.json"))]
    if not rows:
        return "(no results yet)"
    configs = [json.loads(p.read_text()) for p in sorted((CONFIGS / table).glob("*.json"))]
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    cell = {(r["row"], r["dataset"]): r for r in rows}
    pending = {(c["row"], c["dataset"]): c for c in configs if (c["row"], c["dataset"]) not in cell}
    names = sorted(dict.fromkeys([r["row"] for r in rows] + [row for row, _ in pending]), key=_row_rank)
    lines = ["| model | " + " | ".join(datasets) + " |", "|---|" + "---:|" * len(datasets)]
    for name in names:
        cells = []
        for ds in datasets:
            r = cell.get((name, ds))
            if r is None:
                c = pending.get((name, ds))
                pub = "" if c is None or c.get("published") is None else f"({c['published']:.2f}) "
                cells.append("" if c is None else f"{pub}no test figure, see the text")
                continue
            pub = r.get("published")
            if r.get("binary_row"):  # a categorical row is compared with the binary model of its kind
                binary = RESULTS / f"{r['binary_row']}.json"
                pub = json.loads(binary.read_text())["test_nll"] if binary.is_file() else None
            text = f"**{r['test_nll']:.2f}** ± {r['test_stderr']:.2f}"
            if pub is not None:
                diff = r["test_nll"] - pub
                text += f" ({pub:.2f}; {diff:+.2f})"
            if r.get("masks_averaged", 1) > 1:
                text += f", {r['masks_averaged']} masks"
            cells.append(text)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _row_rank(name: str) -> tuple[int, str]:
    """Baselines first, then FVSBN, NADE, EoNADE, MADE (as in the papers' tables)."""
    for rank, prefix in enumerate(("Independent", "MoB", "FVSBN", "NADE", "EoNADE", "MADE")):
        if name.startswith(prefix):
            return rank, name
    return 99, name


def write_markdown(table: str) -> None:
    write_block(f"reproduce:{table}", render(table))


def write_block(marker: str, body: str) -> None:
    """Put ``body`` into BENCHMARKS.md between ``<!-- marker -->`` and ``<!-- /marker -->``
    (appended with both markers if they are not there yet), atomically."""
    begin, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else ""
    block = f"{begin}\n{body}\n{end}"
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    else:
        text += f"\n{block}\n"
    atomic_write_text(BENCHMARKS_MD, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", help="a folder of benchmarks/configs: uci, mnist, caltech")
    parser.add_argument("--rows", default="*", help="glob over row ids (config file names without .json)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--device",
        default=None,
        help="where neural rows train and are evaluated: cpu (default), cuda, auto, ...; not part of a run's id",
    )
    parser.add_argument("--render-only", action="store_true")
    parser.add_argument(
        "--commit-resume",
        action="store_true",
        help="copy the resume state of every point of the rows' runs to benchmarks/resume/ (replacing); no training",
    )
    parser.add_argument(
        "--finish",
        action="store_true",
        help="no further training: end the rows' runs where they stand, then choose and test as usual",
    )
    parser.add_argument(
        "--validation-only",
        action="store_true",
        help="train the points and print their validation NLL; no test, no results, no tables",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device:
        try:
            resolve_device(args.device)
        except ValueError as err:
            sys.exit(f"reproduce: {err}")
    paths = sorted(p for p in (CONFIGS / args.table).glob("*.json") if fnmatch.fnmatch(p.stem, args.rows))
    if args.commit_resume:
        for path in paths:
            for point in grid_points(json.loads(path.read_text())):
                run_dir = RUNS / args.table / path.stem / point_id(point)
                if (run_dir / "resume.safetensors").is_file():
                    print(f"committed {commit_resume(run_dir)}")
        return
    if not args.render_only:
        if not paths:
            sys.exit(f"reproduce: no config matches {args.table}/{args.rows}")
        for path in paths:
            run_row(
                args.table, path, args.data_dir, test=not args.validation_only, device=args.device, finish=args.finish
            )
        if args.validation_only:
            return
    write_markdown(args.table)
    print(render(args.table))


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
