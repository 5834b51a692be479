"""The ``ardens`` command: a thin argparse layer over :mod:`ardens.train`, :mod:`ardens.evaluate`,
:mod:`ardens.data`, :mod:`ardens.fetch` and :mod:`ardens.demo`.

Every user error (bad file, bad argument, missing data, dimension mismatch) prints one
line ``ardens: error: <what>: <problem>`` on stderr and exits with status 2.

>>> main(["train", "--epochs", "0", "--model", "nade", "--data", "digits", "--out", "x"])
Traceback (most recent call last):
...
SystemExit: 2
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__

__all__ = ["main", "build_parser", "UserError"]


class UserError(Exception):
    """A problem with the user's input: reported in one line, exit status 2."""


class _DefaultsFormatter(argparse.HelpFormatter):
    """``--help`` shows every option's default (argparse's own formatter also prints ``None`` and
    ``False``, and repeats defaults a help text already states)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        unset = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if unset or "default" in text or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _DefaultsFormatter)  # --help shows defaults
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        sys.stderr.write(f"ardens: error: {message}\n")
        raise SystemExit(2)


def _number(kind: type, what: str, ok: Callable[[float], bool]) -> Callable[[str], float]:
    """An argparse ``type``: parse ``text`` as ``kind`` and check it with ``ok``."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not (math.isfinite(value) and ok(value)):
            raise argparse.ArgumentTypeError(f"expected {what}; got {text!r}")
        return value

    return parse


_positive_int = _number(int, "a positive integer", lambda v: v >= 1)
_non_negative_int = _number(int, "a non-negative integer", lambda v: v >= 0)
_positive_float = _number(float, "a positive number", lambda v: v > 0)
_non_negative_float = _number(float, "a non-negative number", lambda v: v >= 0)
_unit_float = _number(float, "a number in [0, 1)", lambda v: 0 <= v < 1)


def _margin(text: str) -> float | None:
    """``--input-margin``: a non-negative number, or ``none`` (inputs never clipped)."""
    return None if text.strip().lower() == "none" else _non_negative_float(text)


def _add_data_args(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument(
        "--data",
        required=required,
        metavar="NAME_OR_PATH",
        help="'digits' (embedded), a named set (binarized_mnist, dna, red_wine, ...), or a"
        " .csv/.tsv/.txt/.amat/.npz/.npy file",
    )
    p.add_argument("--data-dir", metavar="DIR", help="where named sets are looked up first (then $ARDENS_DATA, cache)")
    p.add_argument(
        "--fold", type=_positive_int, help="red_wine, white_wine, parkinsons: which of the 10 folds (1..10; default 1)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ardens", description="Neural autoregressive density estimation (NADE, MADE) on binary data.")
    parser.add_argument("--version", action="version", version=f"ardens {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser(
        "train",
        help="train NADE, MADE or DeepNADE with early stopping",
        description="Train NADE, MADE or DeepNADE (order-agnostic NADE; EoNADE with --num-masks K orderings).",
    )
    p.add_argument("--model", choices=("nade", "made", "deepnade"), help="required unless --resume")
    _add_data_args(p, required=False)
    p.add_argument("--out", metavar="RUN_DIR", help="new (or empty) run directory; required unless --resume")
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR: interrupted, at its epoch limit (with a larger --epochs) or stopped"
        " early (with a larger --patience); only --epochs, --patience, --lr, --lr-decay, --valid-every, --device,"
        " --threads and --quiet may change. A run that diverged (NaN loss) resumes only with a smaller --lr, from"
        " its best epoch",
    )
    p.add_argument("--epochs", type=_positive_int, help="maximum epochs (default 100)")
    p.add_argument("--seed", type=_non_negative_int, default=0, help="seeds initialization, ordering, masks, shuffling")
    p.add_argument(
        "--hidden",
        type=_positive_int,
        nargs="*",
        help="hidden sizes (NADE: one; default 500); MADE with none (--hidden alone) is an FVSBN",
    )
    p.add_argument("--activation", choices=("sigmoid", "relu"), help="default: sigmoid for NADE, relu for MADE")
    p.add_argument("--ordering", choices=("natural", "random"), default="natural")
    p.add_argument(
        "--num-masks", type=_positive_int, default=1, help="MADE: number of masks; DeepNADE: orderings in the ensemble"
    )
    p.add_argument("--direct", action="store_true", help="MADE: direct input-output connections")
    p.add_argument(
        "--dropout", type=_unit_float, default=0.0, help="MADE: probability of dropping each hidden unit while training"
    )
    p.add_argument(
        "--valid-masks",
        type=_positive_int,
        default=8,
        help="an ensemble of K (MADE masks, DeepNADE orderings): early-stop on its first min(K, this) members",
    )
    p.add_argument(
        "--optimizer",
        choices=("adam", "sgd", "adagrad", "lbfgs"),
        default="adam",
        help="lbfgs: full-batch L-BFGS for one-member models (an FVSBN to its optimum)",
    )
    p.add_argument("--lr", type=_positive_float, help="default: 1e-3 (lbfgs: 1, its initial step)")
    p.add_argument(
        "--lr-decay",
        type=_number(float, "a number in (0, 1]", lambda v: 0 < v <= 1),
        default=1.0,
        help="multiply the learning rate by this after --decay-patience epochs without improvement",
    )
    p.add_argument("--decay-patience", type=_positive_int, default=5)
    p.add_argument("--momentum", type=_unit_float, default=0.9, help="SGD momentum")
    p.add_argument(
        "--batch-size", type=_positive_int, help="default: 100 (lbfgs: 10000, rows per chunk of the full batch)"
    )
    p.add_argument("--weight-decay", type=_non_negative_float, default=0.0)
    p.add_argument("--no-bias-decay", action="store_true", help="exempt the biases from --weight-decay")
    p.add_argument("--patience", type=_positive_int, default=10, help="validations without improvement before stopping")
    p.add_argument(
        "--valid-every", type=_positive_int, default=1, help="validate after every N epochs (default: every epoch)"
    )
    p.add_argument(
        "--columns",
        metavar="SPEC",
        help="column types, inferred by default: one KIND per column (real,real,categorical:3) or KEY=KIND"
        " overrides (KEY a header name, a 0-based index or *; KIND binary, categorical[:K], real[:C])",
    )
    p.add_argument(
        "--context-columns",
        metavar="NAME[,NAME...]",
        help="train a conditional model p(x | c): these columns of the --data file (header names or 0-based"
        " indices) are removed from x and become the context c (text labels and small integer codes one-hot,"
        " 0/1 as is, real numbers standardized with the training split); evaluate, score and sample then read"
        " the same columns",
    )
    p.add_argument(
        "--one-hot-groups",
        choices=("auto",),
        help="model runs of at-most-one-hot binary columns as categorical columns (found on the training split)",
    )
    p.add_argument(
        "--first-hidden",
        choices=("bias", "learned"),
        default="bias",
        help="NADE: h_1 = act(b) (the paper) or a learned parameter (the lecture's NADE)",
    )
    p.add_argument(
        "--min-scale",
        type=_non_negative_float,
        help="real columns: floor of each mixture component's standard deviation, in standardized units (default 1e-3)",
    )
    p.add_argument(
        "--input-margin",
        type=_margin,
        default=1.0,  # heads.DEFAULT_INPUT_MARGIN (not imported here: the CLI imports torch lazily)
        help="real columns: the network sees each input clipped to the training range widened by this many"
        " standard deviations; the density stays exact (default 1; 'none': never clipped)",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument(
        "--threads",
        type=_positive_int,
        help="torch CPU threads (default: 1 for models under 1M parameters, else every core; under torchrun:"
        " the cores divided among the ranks of the node)",
    )
    p.add_argument(
        "--nproc",
        type=_positive_int,
        metavar="N",
        help="data-parallel training on N processes of this machine: the same command relaunched under torchrun"
        " (python -m torch.distributed.run --standalone --nproc-per-node N -m ardens train ...; DDP, gloo on the"
        " CPU, nccl on CUDA); --batch-size stays the global batch",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars; one log line per epoch")

    p = sub.add_parser("evaluate", help="test NLL (nats ± SE) and bits per dimension")
    p.add_argument("checkpoint", metavar="CHECKPOINT_OR_RUN_DIR")
    _add_data_args(p, required=False)
    p.add_argument("--split", choices=("train", "valid", "test"), help="which split to score (default: test)")
    p.add_argument(
        "--all-rows",
        action="store_true",
        help="score every row of the --data file (default: the training file), unsplit, instead of a split;"
        " complete rows only (for rows with missing cells use 'ardens score')",
    )
    p.add_argument(
        "--masks", type=_positive_int, help="MADE/DeepNADE: ensemble of the first K masks/orderings (default all)"
    )
    p.add_argument("--batch-size", type=_positive_int, default=1000)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("sample", help="draw samples to a .npy or .csv (and a PNG grid for images)")
    p.add_argument("checkpoint", metavar="CHECKPOINT_OR_RUN_DIR")
    p.add_argument("-n", "--num", type=_positive_int, help="number of samples (default 64)")
    p.add_argument(
        "--context",
        metavar="NAME=VALUE[,NAME=VALUE...]",
        action="append",
        help="conditional models: the context of every sample, one value per context column (a label, or a number)",
    )
    p.add_argument(
        "--context-from",
        metavar="FILE",
        help="conditional models: one sample per row of FILE's context columns (found by header name; a file"
        " without a header holds exactly the context columns, or the training file's columns)",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="FILE.npy|FILE.csv",
        help=".csv: a header of column names, integers for discrete columns, category labels kept (conditional"
        " models: the context columns too, in the training file's layout); .npy: the modelled columns only",
    )
    p.add_argument("--seed", type=_non_negative_int, default=0, help="seeds the sampling generator")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")

    p = sub.add_parser(
        "score",
        help="log-likelihood of every row of a file (rows with missing cells: of their observed cells)",
        description="Write one line per row of FILE, in file order: row,log_likelihood,observed_columns,exact."
        " row: the row's number as ardens' messages give it (its 1-based line in a text file, its 0-based index"
        " in an array); log_likelihood: log p(x) in nats, in the data's units, for a complete row, and log"
        " p(x_observed) (the missing cells marginalized out, model.marginal_log_prob) for a row with missing"
        " cells (empty, NA, NaN, nan); observed_columns: how many of the model's columns the row has;"
        " exact: yes. DeepNADE marginalizes any set of columns exactly; NADE and MADE only when the observed"
        " columns come first in their ordering: any other row is a one-line error naming the first such row"
        " (train a DeepNADE), unless --skip-inexact, which leaves its log_likelihood empty with exact=no."
        " A summary line gives the rows scored, how many were marginalized, and the mean log-likelihood.",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT_OR_RUN_DIR")
    p.add_argument(
        "--data",
        required=True,
        metavar="FILE",
        help="a .csv/.tsv/.txt table (header checked against the model's column names), .npy, or .npz (one"
        " array, or an array 'x' or 'data'); in the model's column types and labels",
    )
    p.add_argument("--out", required=True, metavar="SCORES.csv", help="the scores (written atomically)")
    p.add_argument(
        "--masks", type=_positive_int, help="MADE/DeepNADE: ensemble of the first K masks/orderings (default all)"
    )
    p.add_argument(
        "--skip-inexact",
        action="store_true",
        help="NADE/MADE: leave rows whose observed columns are not a prefix of the ordering unscored (exact=no)"
        " instead of failing",
    )
    p.add_argument("--batch-size", type=_positive_int, default=1000, help="rows per batch")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")

    p = sub.add_parser(
        "impute",
        help="fill the missing cells of a file from p(missing | observed)",
        description="Write FILE with its missing cells (empty, NA, NaN, nan) filled from the model's"
        " conditional p(x_missing | x_observed) (model.impute); observed cells are written back exactly as"
        " the input text has them (.npy/.npz input: their values), the header kept, category labels for"
        " labelled columns. --fill sample: random draws (with --draws K > 1, K lines per input row, each"
        " with a first column 'draw' numbered 0..K-1); --fill mean/mode: one line per row summarizing"
        " --draws draws (default 100): real columns their mean, discrete ones their most frequent value."
        " DeepNADE conditions on any set of columns; NADE and MADE only when the missing columns come last"
        " in their ordering (else a one-line error: train a DeepNADE). One-hot-group models: a group with"
        " a missing cell is imputed as a whole (its cells are all rewritten).",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT_OR_RUN_DIR")
    p.add_argument(
        "--data", required=True, metavar="FILE", help="a .csv/.tsv/.txt table, .npy, or .npz with missing cells"
    )
    p.add_argument("--out", required=True, metavar="FILLED.csv", help="the filled table (written atomically)")
    p.add_argument(
        "--draws", type=_positive_int, help="draws per row (default: 1 for --fill sample, 100 for mean/mode)"
    )
    p.add_argument(
        "--fill",
        choices=("sample", "mean", "mode"),
        default="sample",
        help="sample: the draws themselves; mean, mode: one summary of the draws per row",
    )
    p.add_argument("--seed", type=_non_negative_int, default=0, help="seeds the imputation generator")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")

    p = sub.add_parser("demo", help="train NADE and MADE on the embedded digits and compare with baselines")
    p.add_argument("--out", metavar="DIR", help="output directory (default: ./ardens-demo, or -2, -3, ... if taken)")
    p.add_argument("--epochs", type=_positive_int, help="override the demo's epoch limit (for a quick look)")
    p.add_argument("--threads", type=_positive_int, default=1, help="torch CPU threads (default 1: fastest here)")
    p.add_argument("--quiet", action="store_true")

    p = sub.add_parser("fetch", help="download a data set (binarized_mnist)")
    p.add_argument("name", choices=("binarized_mnist",))
    p.add_argument("--data-dir", metavar="DIR", help="default: $ARDENS_DATA, else ~/.cache/ardens")
    p.add_argument("--url", help="base URL (default: $ARDENS_MNIST_URL, else Larochelle's page)")
    p.add_argument("--quiet", action="store_true")
    return parser


# -- commands -----------------------------------------------------------------------------
def _log(line: str) -> None:
    from .distributed import env_rank

    if env_rank() == 0:  # under torchrun, rank 0 alone reports
        print(line, flush=True)


def _without_nproc(argv: Sequence[str]) -> list[str]:
    """``argv`` less its ``--nproc N`` (or ``--nproc=N``)."""
    out: list[str] = []
    skip = False
    for token in argv:
        if skip:
            skip = False
        elif token == "--nproc":
            skip = True
        elif not token.startswith("--nproc="):
            out.append(token)
    return out


def _launch(args: argparse.Namespace) -> int:
    """``ardens train --nproc N ...``: the same command line under ``torchrun --standalone``
    (after the checks that need no data, so that they stay one-line errors); its exit status."""
    import os
    import subprocess

    from .distributed import launched, threads_per_rank
    from .train import check_new_run_dir, check_not_busy

    if launched():
        raise UserError("--nproc: not under torchrun (it has already started the ranks)")
    optimizer = args.optimizer
    if args.resume:
        from .train import RESUME, _read_resume

        if not Path(args.resume).is_dir():
            raise UserError(f"{args.resume}: no resume state (no such run directory)")
        check_not_busy(args.resume)
        optimizer = _read_resume(Path(args.resume) / RESUME)[1]["train_config"]["optimizer"]
    if optimizer == "lbfgs":
        raise UserError(f"--optimizer lbfgs: full-batch, one process; not with --nproc {args.nproc}")
    if not args.resume:
        missing = [name for name in ("model", "data", "out") if getattr(args, name) is None]
        if missing:
            raise UserError(f"--{missing[0]}: required (unless --resume RUN_DIR)")
        check_new_run_dir(args.out)
    argv = _without_nproc(args.argv)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.nproc}"]
    command += ["-m", "ardens", *argv]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(args.threads or threads_per_rank(args.nproc)))  # torchrun's default is 1
    return subprocess.run(command, env=env).returncode


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from . import distributed

    if args.nproc is not None and args.nproc > 1:
        return _launch(args)
    threads = torch.get_num_threads()  # restored afterwards, for callers of main() in one process
    started = False
    if distributed.launched():
        from .train import resolve_device

        started = distributed.init(resolve_device(args.device))
        torch.set_num_threads(args.threads or distributed.threads_per_rank())
    elif args.threads:
        torch.set_num_threads(args.threads)
    run = Path(args.resume or args.out or ".")
    finished = False
    try:
        code = _train(args, run)
        finished = code == 0
        return code
    except KeyboardInterrupt:
        from .train import CURVE, RESUME

        if distributed.env_rank() != 0:
            return 130
        if (run / RESUME).is_file():
            made = f" ({CURVE} written)" if (run / CURVE).is_file() else ""
            sys.stderr.write(f"ardens: interrupted{made}; continue with: ardens train --resume {run}\n")
        else:
            sys.stderr.write("ardens: interrupted before the first epoch finished; nothing to resume\n")
        return 130
    finally:
        torch.set_num_threads(threads)
        if started:
            distributed.teardown(barrier=finished)


#: Below this many parameters, ``train`` uses one CPU thread unless ``--threads`` says otherwise.
SMALL_MODEL_PARAMETERS = 1_000_000


def auto_threads(n_params: int) -> int:
    """One thread for small models (their steps are too short to split: on a busy 2-core machine
    a MADE on the 8x8 digits took 1.9-2.2 s with one thread and 12.7-44 s with two), every
    core torch would use for the others.

    >>> auto_threads(65_000), auto_threads(10_000_000) >= 1
    (1, True)
    """
    import os

    return 1 if n_params < SMALL_MODEL_PARAMETERS else max(1, os.cpu_count() or 1)


#: train options that ``--resume`` may change; the others are the run's own (model, data, optimizer).
RESUME_OPTIONS = ("epochs", "patience", "lr", "threads", "device", "quiet", "valid_every", "lr_decay", "nproc")
_RESUME_KEEPS = ("resume", "out", "data", "data_dir", "fold", "command")


def _given_train_options(argv: Sequence[str]) -> set[str]:
    """The train options written on the command line ``argv`` (defaults aside)."""
    parser = build_parser()
    train = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    for action in train._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(list(argv))))


def _train(args: argparse.Namespace, run: Path) -> int:
    from .data import load_dataset
    from .distributed import is_distributed, on_main, world_size
    from .train import ModelConfig, TrainConfig, build_model, check_new_run_dir, check_not_busy, fit, resume

    given = getattr(args, "given", None)
    if args.resume:
        if args.out and Path(args.out).resolve() != Path(args.resume).resolve():
            raise UserError("--out: not needed with --resume (the run continues in its own directory)")
        if given is not None:
            fixed = sorted(given - set(RESUME_OPTIONS) - set(_RESUME_KEEPS))
            if fixed:
                raise UserError(
                    f"--{fixed[0].replace('_', '-')}: cannot change with --resume (the run keeps its own);"
                    f" --resume may change only {', '.join('--' + o.replace('_', '-') for o in RESUME_OPTIONS)}"
                )
        from .train import RESUME, _read_resume

        if not Path(args.resume).is_dir():
            raise UserError(f"{args.resume}: no resume state (no such run directory)")
        on_main(lambda: check_not_busy(args.resume))
        _, state = _read_resume(Path(args.resume) / RESUME)
        spec = args.data or _stored_spec(state["data"]["name"], state["data"]["source"])
        data = _load_for(spec, args, state["data"])
        before = state["epoch"]
        explicit = given or set()
        result = resume(
            args.resume,
            data,
            epochs=args.epochs,
            device=args.device if "device" in explicit or args.device != "cpu" else None,
            patience=args.patience if "patience" in explicit else None,
            lr=args.lr,
            valid_every=args.valid_every if "valid_every" in explicit else None,
            lr_decay=args.lr_decay if "lr_decay" in explicit else None,
            progress=not args.quiet,
            log=_log,
        )
        if result.stopped_early and result.epochs_run == before:
            _log(
                f"this run had already stopped early (patience {state['train_config']['patience']});"
                f" to continue it: ardens train --resume {run} --patience N, with a larger N"
            )
    else:
        missing = [name for name in ("model", "data", "out") if getattr(args, name) is None]
        if missing:
            raise UserError(f"--{missing[0]}: required (unless --resume RUN_DIR)")
        if args.model == "deepnade" and (args.direct or args.dropout):
            raise UserError("--direct/--dropout: only for --model made")
        if args.model == "nade" and args.num_masks != 1:
            raise UserError("--num-masks: only for --model made or deepnade")
        if args.model == "nade" and (args.direct or args.dropout):
            raise UserError("--direct/--dropout: only for --model made")
        if args.model == "nade" and args.hidden is not None and len(args.hidden) != 1:
            raise UserError(f"--hidden: NADE has one hidden layer; got {len(args.hidden)} sizes")
        on_main(lambda: check_new_run_dir(args.out))  # under torchrun: rank 0's check, every rank's error
        config = TrainConfig(
            epochs=args.epochs or 100,
            batch_size=args.batch_size or (10000 if args.optimizer == "lbfgs" else 100),
            optimizer=args.optimizer,
            lr=args.lr if args.lr is not None else (1.0 if args.optimizer == "lbfgs" else 1e-3),
            momentum=args.momentum,
            weight_decay=args.weight_decay,
            patience=args.patience,
            seed=args.seed,
            device=args.device,
            lr_decay=args.lr_decay,
            decay_patience=args.decay_patience,
            valid_masks=args.valid_masks,
            decay_biases=not args.no_bias_decay,
            valid_every=args.valid_every,
        )
        from .train import resolve_device

        resolve_device(args.device)  # fail before loading data
        data = load_dataset(
            args.data,
            args.data_dir,
            seed=args.seed,
            fold=args.fold,
            columns=args.columns,
            one_hot_groups=args.one_hot_groups,
        )
        if args.model != "nade" and args.first_hidden != "bias":
            raise UserError("--first-hidden: only for --model nade")
        if args.context_columns is not None:
            from .context import ContextEncoding
            from .data import split_context

            keys = [k.strip() for k in args.context_columns.split(",")]
            if not all(keys):
                raise UserError(f"--context-columns: an empty name in {args.context_columns!r}")
            data = split_context(data, keys)
            enc = ContextEncoding.from_meta(data.context_encoding)
            _log(f"context: {enc.describe()} (width {enc.width})")
        _log(f"columns: {describe_columns(data)}")
        import torch

        torch.manual_seed(args.seed)
        model = build_model(
            args.model,
            data.dim,
            ModelConfig(
                first_hidden=args.first_hidden,
                min_scale=args.min_scale,
                input_margin=args.input_margin,
                hidden=args.hidden if args.hidden is not None else [500],
                activation=args.activation,
                ordering=args.ordering,
                num_masks=args.num_masks,
                direct=args.direct,
                seed=args.seed,
                dropout=args.dropout,
                context_features=data.context_width,
            ),
            columns=data.column_specs,
        )
        n_params = sum(p.numel() for p in model.parameters())
        if not args.threads and not is_distributed():
            torch.set_num_threads(auto_threads(n_params))
        threads = f"{torch.get_num_threads()} thread{'s' if torch.get_num_threads() > 1 else ''}"
        how = "" if args.threads else " (by model size; --threads N to choose)"
        if is_distributed():
            how = f" per rank, {world_size()} ranks (DDP), global batch {config.batch_size}"
        _log(f"training {args.model.upper()} ({n_params} parameters) on {data.name}, {threads}{how}")
        result = fit(model, data, config, args.out, model_kind=args.model, progress=not args.quiet, log=_log)
    why = "early stop" if result.stopped_early else "epoch limit"
    more = ""
    if not result.stopped_early and result.best_epoch > 0:  # still improving within its patience
        more = f"; to train longer: ardens train --resume {run} --epochs {2 * result.epochs_run}"
    _log(
        f"done ({why}): best valid NLL {result.best_valid_nll:.4f} nats at epoch {result.best_epoch} "
        f"of {result.epochs_run}, {result.seconds:.1f}s; model in {result.run_dir / 'best.safetensors'}{more}"
    )
    return 0


def describe_columns(data) -> str:
    """The column types of ``data``, run-length encoded, with names where there are few columns."""
    specs = data.column_specs
    names = data.column_names
    if names and len(specs) <= 16:
        return ", ".join(f"{name}={spec}" for name, spec in zip(names, specs))
    runs: list[list] = []
    for spec in specs:
        if runs and runs[-1][0] == spec:
            runs[-1][1] += 1
        else:
            runs.append([spec, 1])
    return ", ".join(spec if k == 1 else f"{k} x {spec}" for spec, k in runs)


def _stored_spec(name: str | None, source: str | None) -> str | None:
    """How to find a model's data again: a named set by its name, a file by its stored path."""
    from .data import NAMED_SETS, REAL_SETS

    if name == "digits" or name in NAMED_SETS or name in REAL_SETS:
        return name
    return source or name


def _load_for(spec: str, args: argparse.Namespace, meta: dict):
    """The data a trained model reads: its fold, column types and one-hot groups from ``meta``
    (a checkpoint header or a run's data record), unless the command line says otherwise."""
    from .data import align_to_model, load_dataset

    fold = getattr(args, "fold", None) or meta.get("fold")
    seed = int(meta.get("split_seed") or 0)  # the split a single-array file was trained on
    groups = meta.get("one_hot_groups")
    columns = meta.get("columns")
    if groups:  # the stored types are those of the regrouped table; the file is binary
        columns = None
    elif columns and meta.get("categories"):  # labelled columns: codes follow the model's labels (align_to_model)
        columns = ["categorical" if str(j) in meta["categories"] else c for j, c in enumerate(columns)]
    if (meta.get("context") or {}).get("columns"):  # the file holds the context columns too: encoded as stored
        from .data import context_load_columns, split_context

        full = context_load_columns(meta, columns)
        data = load_dataset(spec, args.data_dir, seed=seed, fold=fold, columns=full, one_hot_groups=groups)
        data = split_context(data, encoding=meta["context"])
    else:
        data = load_dataset(spec, args.data_dir, seed=seed, fold=fold, columns=columns, one_hot_groups=groups)
    return align_to_model(data, meta)


_SCORE_HINT = "evaluate scores complete rows: use 'ardens score' for rows with missing cells"


def _missing_hint(err: ValueError) -> UserError | ValueError:
    """The loaders' missing-value error, pointing at ``ardens score`` instead of "not supported"."""
    from .tables import _MISSING_NOTE

    text = str(err)
    return UserError(text.replace(_MISSING_NOTE, _SCORE_HINT)) if _MISSING_NOTE in text else err


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Under torchrun, the rows are split across the ranks (see :func:`ardens.evaluate.evaluate`); rank 0 prints."""
    from . import distributed
    from .train import resolve_device

    started = distributed.init(resolve_device(args.device)) if distributed.launched() else False
    finished = False
    try:
        code = _evaluate_command(args)
        finished = code == 0
        return code
    finally:
        if started:
            distributed.teardown(barrier=finished)


def _evaluate_command(args: argparse.Namespace) -> int:
    import numpy as np

    from .data import NAMED_SETS, REAL_SETS, DataError
    from .distributed import env_rank
    from .evaluate import evaluate, load_checkpoint
    from .train import resolve_device

    if args.all_rows and (args.split or args.fold):
        raise UserError(f"--{'split' if args.split else 'fold'}: not with --all-rows (every row of the file is scored)")
    split = args.split or "test"
    model, meta = load_checkpoint(args.checkpoint, resolve_device(args.device))
    spec = args.data or _stored_spec(meta.get("data"), meta.get("data_source"))
    if not spec:
        raise UserError("--data: required (the checkpoint does not say which data it was trained on)")
    if args.all_rows:
        if spec == "digits" or spec in NAMED_SETS or spec in REAL_SETS:
            raise UserError(f"--all-rows: reads a file; {spec} is a named set (score one of its splits with --split)")
        rows = _read_rows(spec, model, meta)
        if rows.missing.any():
            r, j = (int(v) for v in np.argwhere(rows.missing)[0])
            raise UserError(f"{rows.where}: missing value at {rows.row(r)}, {rows.column(j)}; {_SCORE_HINT}")
        x, name, fold, split, context = rows.x, Path(spec).stem, None, "all rows", rows.context
    else:
        try:
            data = _load_for(spec, args, meta)
        except DataError as err:
            raise _missing_hint(err) from None
        x, name, fold, context = data.split(split), data.name, data.fold, data.context(split)
        if x.shape[1] != model.n_inputs:
            raise UserError(
                f"{data.source or data.name}: data has {x.shape[1]} dimensions; the model expects {model.n_inputs}"
            )
    _check_has_context(model, meta, context, spec)
    report = evaluate(model, x, masks=args.masks, batch_size=args.batch_size, context=context)
    if env_rank() != 0:  # under torchrun, rank 0 prints
        return 0
    if args.json:
        which = "all" if args.all_rows else split
        print(json.dumps({"checkpoint": str(args.checkpoint), "data": name, "split": which, **report.as_dict()}))
        return 0
    kind = type(model).__name__
    member = model.member_name
    label = f"{kind}, ensemble of {report.masks} {member}s" if report.masks > 1 else kind
    fold = f" (fold {fold})" if fold is not None else ""
    print(f"{name}{fold} {split}: {report.n_examples} examples, {report.dim} columns")
    bits = f", {report.bits_per_dim:.4f} bits/dim" if report.bits_per_dim is not None else ""
    print(f"{label}: NLL {report.nll:.4f} ± {report.stderr:.4f} nats{bits}")
    if report.standardized_log_likelihood is not None:
        print(
            f"mean log-likelihood in the standardized space of the training split: "
            f"{report.standardized_log_likelihood:.4f} nats (the RNADE papers' scale)"
        )
    if report.single_mask_nll is not None:
        print(f"{kind}, {member} 0 alone: NLL {report.single_mask_nll:.4f} ± {report.single_mask_stderr:.4f} nats")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np

    from .evaluate import draw_samples, load_checkpoint
    from .plots import save_sample_grid
    from .serialization import atomic_write
    from .train import resolve_device

    out = Path(args.out)
    if out.suffix.lower() not in (".npy", ".csv"):
        raise UserError(f"{out}: --out must end in .npy or .csv")
    png = out.with_suffix(".png")
    if not args.force:
        for path in (out, png):
            if path.exists():
                raise UserError(f"{path}: exists; choose another --out or pass --force")
    model, meta = load_checkpoint(args.checkpoint, resolve_device(args.device))
    context, raw = _sample_context(args, model, meta)
    num = len(context) if args.context_from else (args.num or 64)
    x = draw_samples(model, num, seed=args.seed, context=context)
    if meta.get("one_hot_groups"):  # back to the binary file's columns
        from .tables import ungroup

        x = ungroup(x.astype(np.float64), meta["one_hot_groups"], int(meta["one_hot_groups_width"]))
    if out.suffix.lower() == ".csv":
        text = samples_csv(x, model, meta, context=None if raw is None else _repeat(raw, len(x)))
        atomic_write(out, lambda tmp: Path(tmp).write_text(text))
    else:

        def write_npy(tmp: str) -> None:
            with open(tmp, "wb") as f:  # a file object: np.save would add ".npy" to a name
                np.save(f, x)

        atomic_write(out, write_npy)
    print(f"wrote {len(x)} samples of {x.shape[1]} columns to {out}")
    shape = meta.get("image_shape")
    if shape and shape[0] * shape[1] == x.shape[1]:
        save_sample_grid(x, shape, png, order=meta.get("image_order", "C"))
        print(f"wrote a {shape[0]}x{shape[1]} image grid to {png}")
    return 0


def _check_has_context(model, meta: dict, context, where: str) -> None:
    """A conditional model needs its context columns; an unconditional one takes none."""
    if model.context_features and context is None:
        names = ", ".join(c["name"] for c in (meta.get("context") or {}).get("columns", []))
        raise UserError(f"{where}: the model is conditioned on context columns ({names or 'unnamed'}); none read")


def _repeat(raw: list[list], n: int) -> list[list]:
    return [col * n if len(col) == 1 else col for col in raw]


def _parse_context_arg(texts: list[str], enc) -> list[list]:
    """``--context NAME=VALUE,...``: one raw value per context column (labels as text)."""
    given: dict[str, str] = {}
    for text in texts:
        for entry in text.split(","):
            name, eq, value = entry.partition("=")
            name, value = name.strip(), value.strip()
            if not eq or not name:
                raise UserError(f"--context: expected NAME=VALUE; got {entry.strip()!r}")
            if name not in enc.names:
                raise UserError(
                    f"--context: no context column {name!r}; the model is conditioned on {', '.join(enc.names)}"
                )
            if name in given:
                raise UserError(f"--context: context column {name!r} is given twice")
            given[name] = value
    raw = []
    for col in enc.columns:
        if col.name not in given:
            raise UserError(
                f"--context: no value for context column {col.name!r} (the model is conditioned on"
                f" {', '.join(enc.names)})"
            )
        value = given[col.name]
        if value in ("", "NA", "N/A", "NaN", "nan", "null"):
            raise UserError(f"--context: context column {col.name!r}: missing value {value!r}")
        if col.labelled:
            raw.append([value])
            continue
        try:
            number = float(value)
        except ValueError:
            raise UserError(f"--context: context column {col.name!r}: expected a number; got {value!r}") from None
        raw.append([number])
    return raw


def _sample_context(args: argparse.Namespace, model, meta: dict):
    """The encoded context of ``ardens sample`` and its raw values per column (or ``(None, None)``)."""
    from .context import ContextEncoding, ContextError

    if args.context and args.context_from:
        raise UserError("--context: not with --context-from (give one or the other)")
    if args.context_from and args.num is not None:
        raise UserError("-n/--num: not with --context-from (one sample per row of its file)")
    if not model.context_features:
        if args.context or args.context_from:
            flag = "--context" if args.context else "--context-from"
            raise UserError(f"{flag}: this model takes no context (it was trained without --context-columns)")
        return None, None
    enc_meta = meta.get("context") or {}
    if "columns" not in enc_meta:
        raise UserError(f"{args.checkpoint}: the checkpoint does not say how its context columns are encoded")
    enc = ContextEncoding.from_meta(enc_meta)
    if not args.context and not args.context_from:
        raise UserError(
            f"--context: required: the model is conditioned on {', '.join(enc.names)}"
            " (pass --context NAME=VALUE,... or --context-from FILE)"
        )
    if args.context:
        raw = _parse_context_arg(args.context, enc)
        try:
            context = enc.encode(raw, where="--context", cell=lambda r, j, name: f"context column {name!r}")
        except ContextError as err:
            raise UserError(str(err)) from None
        return context, raw
    from .data import _read_any_table, take_context

    table = _read_any_table(Path(args.context_from), args.context_from)
    context, raw, _ = take_context(table, enc_meta, args.context_from)
    if not len(context):
        raise UserError(f"{args.context_from}: no rows")
    return context, raw


def _context_cell(value, col) -> str:
    if isinstance(value, str):
        return _csv_cell(value)
    if col.kind == "real":
        return repr(float(value))
    return str(int(value))


def samples_csv(x, model, meta: dict, context: list[list] | None = None) -> str:
    """Samples as CSV text: the training file's column names as header (``x0, x1, ...`` if it
    had none), integers for discrete columns, the original labels for labelled categories.
    ``context``: a conditional model's raw context values (one list per context column, one
    value per sample), written as the training file had them, in its layout."""
    import numpy as np

    n = x.shape[1]
    names = meta.get("column_names") or [f"x{j}" for j in range(n)]
    if len(names) != n:
        names = [f"x{j}" for j in range(n)]
    labels = {int(k): v for k, v in (meta.get("categories") or {}).items()}
    specs = model.columns.specs() if n == model.n_inputs else ["binary"] * n
    header = [_csv_cell(str(v)) for v in names]
    ctx_cols = []
    if context is not None:
        from .context import ContextEncoding

        enc = ContextEncoding.from_meta(meta["context"])
        ctx_cols = enc.columns
        width = int(meta["context"].get("file_width", 0))
        places = [c.index for c in ctx_cols]
        in_layout = width == n + len(ctx_cols) and all(p is not None for p in places)
        order = sorted(range(len(ctx_cols)), key=lambda k: places[k]) if in_layout else range(len(ctx_cols))
        for k in order:  # inserted in increasing file position: each lands at its index
            at = int(places[k]) if in_layout else k
            header.insert(at, _csv_cell(ctx_cols[k].name))
    lines = [",".join(header)]
    for r, row in enumerate(np.asarray(x)):
        cells = []
        for j, v in enumerate(row):
            if j in labels:  # a level with no label (a one-label column is categorical:2) is written as its code
                names_j = labels[j]
                cells.append(_csv_cell(names_j[int(v)] if int(v) < len(names_j) else str(int(v))))
            elif specs[j].startswith("real"):
                cells.append(repr(float(v)))
            else:
                cells.append(str(int(v)))
        for k in order if ctx_cols else ():
            at = int(places[k]) if in_layout else k
            cells.insert(at, _context_cell(context[k][r], ctx_cols[k]))
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def _csv_cell(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


# -- files with missing cells: score, impute -------------------------------------------------
def _read_rows(path: str, model, meta: dict):
    """Every row of ``path`` in the model's columns (:func:`ardens.data.read_rows`), NaN where missing."""
    from .data import read_rows

    return read_rows(path, meta, columns=model.columns.specs())


def _output_file(out: str, force: bool, data: str) -> Path:
    """``--out``: a .csv that is not the input, and not overwritten without ``--force``."""
    path = Path(out)
    if path.suffix.lower() != ".csv":
        raise UserError(f"{path}: --out must end in .csv")
    if Path(data).exists() and path.exists() and path.resolve() == Path(data).resolve():
        raise UserError(f"{path}: is the --data file, which ardens never modifies; choose another --out")
    if path.is_dir():
        raise UserError(f"{path}: is a directory; --out is a file")
    if path.exists() and not force:
        raise UserError(f"{path}: exists; choose another --out or pass --force")
    return path


def _not_prefix(model, observed, members: int):
    """Rows (boolean) whose observed columns are not a prefix of the ordering of one of the first
    ``members`` members: those NADE and MADE cannot condition on (never for DeepNADE)."""
    import numpy as np

    bad = np.zeros(len(observed), dtype=bool)
    if hasattr(model, "conditional_params"):  # DeepNADE: any observed set
        return bad
    for i in range(members):
        ms = observed[:, model.ordering(i).cpu().numpy()]
        bad |= (ms[:, 1:] & ~ms[:, :-1]).any(1)
    return bad


def _prefix_error(model, rows, bad, members: int, what: str, tail: str = "") -> UserError:
    """The one-line error for the first row NADE/MADE cannot condition on."""
    import numpy as np

    from .base import ensemble_size

    r = int(np.argmax(bad))
    observed = ~rows.missing[r]
    for i in range(members):
        order = model.ordering(i).cpu().numpy()
        ms = observed[order]
        if (ms[1:] & ~ms[:-1]).any():
            j = int(order[np.flatnonzero(~ms)[0]])
            break
    name = type(model).__name__
    member = f" (member {i})" if ensemble_size(model) > 1 else ""
    others = int(bad.sum()) - 1
    more = f" ({others} more row{'s' if others != 1 else ''} like it)" if others else ""
    return UserError(
        f"{rows.where}: {rows.row(r)}: {name} can {what} only when the missing columns come last in its ordering"
        f"{member}, but {rows.column(j)} is missing before observed columns{more}; train a DeepNADE"
        f" (--model deepnade), which conditions on any set of columns{tail}"
    )


def _marginal(model, x, observed, masks: int | None, batch_size: int, context=None):
    """``log p(x_observed)`` per row (float64), the ensemble of the first ``masks`` members
    (``log p(x_observed | c)`` with the rows' ``context``, for a conditional model)."""
    import numpy as np
    import torch

    from .base import ensemble_size

    ref = next(model.parameters())
    k = ensemble_size(model) if masks is None else masks
    out = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb = torch.as_tensor(x[start : start + batch_size]).to(ref.device, ref.dtype)
            mb = torch.as_tensor(observed[start : start + batch_size]).to(ref.device)
            kw = {} if context is None else {"context": context[start : start + batch_size]}
            if k == ensemble_size(model):
                lp = model.marginal_log_prob(xb, mb, **kw)
            else:
                members = torch.stack([model.marginal_log_prob(xb, mb, mask=i, **kw) for i in range(k)])
                lp = members[0] if k == 1 else members.logsumexp(0) - math.log(k)
            out.append(lp.double().cpu().numpy())
    return np.concatenate(out)


def cmd_score(args: argparse.Namespace) -> int:
    import numpy as np

    from .evaluate import _members, load_checkpoint, log_likelihoods
    from .serialization import atomic_write_text
    from .train import resolve_device

    out = _output_file(args.out, args.force, args.data)
    model, meta = load_checkpoint(args.checkpoint, resolve_device(args.device))
    k = _members(model, args.masks)
    rows = _read_rows(args.data, model, meta)
    x, missing = rows.x, rows.missing
    observed = ~missing
    complete = ~missing.any(1)
    ll = np.full(len(x), np.nan)
    exact = np.ones(len(x), dtype=bool)
    context = rows.context
    _check_has_context(model, meta, context, rows.where)
    if complete.any():
        ll[complete] = log_likelihoods(
            model,
            x[complete],
            masks=args.masks,
            batch_size=args.batch_size,
            context=None if context is None else context[complete],
        )
    bad = _not_prefix(model, observed, k) & ~complete
    if bad.any() and not args.skip_inexact:
        raise _prefix_error(model, rows, bad, k, "score a row with missing cells", ", or pass --skip-inexact")
    todo = ~complete & ~bad
    if todo.any():
        ll[todo] = _marginal(
            model, x[todo], observed[todo], args.masks, args.batch_size, None if context is None else context[todo]
        )
    exact[bad] = False
    lines = ["row,log_likelihood,observed_columns,exact"]
    for r in range(len(x)):
        value = repr(float(ll[r])) if exact[r] else ""
        lines.append(f"{int(rows.numbers[r])},{value},{int(observed[r].sum())},{'yes' if exact[r] else 'no'}")
    atomic_write_text(out, "\n".join(lines) + "\n")
    scored = int(exact.sum())
    mean = f"{ll[exact].mean():.4f} nats" if scored else "n/a"
    skipped = f"; {int(bad.sum())} not scored (exact=no)" if bad.any() else ""
    print(
        f"scored {scored} of {len(x)} rows ({int(todo.sum())} with missing cells marginalized{skipped});"
        f" mean log-likelihood {mean}; wrote {out}"
    )
    return 0


def _cell_text(value: float, spec: str, labels: list[str] | None) -> str:
    """A value as ``samples_csv`` writes it: a label, an integer code, or a float."""
    if labels is not None:
        code = int(round(value))
        return _csv_cell(labels[code] if code < len(labels) else str(code))
    if spec.startswith("real"):
        return repr(float(value))
    return str(int(round(value)))


def cmd_impute(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from .base import ensemble_size
    from .evaluate import load_checkpoint
    from .serialization import atomic_write_text
    from .tables import ungroup
    from .train import resolve_device

    out = _output_file(args.out, args.force, args.data)
    model, meta = load_checkpoint(args.checkpoint, resolve_device(args.device))
    if model.context_features:
        raise UserError(f"{args.checkpoint}: impute does not support conditional models (context columns) yet")
    rows = _read_rows(args.data, model, meta)
    missing = rows.missing
    if not missing.any():
        raise UserError(f"nothing to impute: no missing cell in {rows.where}")
    partial = missing.any(1)
    bad = _not_prefix(model, ~missing, ensemble_size(model)) & partial
    if bad.any():
        raise _prefix_error(model, rows, bad, ensemble_size(model), "impute")
    draws = args.draws or (1 if args.fill == "sample" else 100)
    copies = draws if args.fill == "sample" else 1
    ref = next(model.parameters())
    generator = torch.Generator(device=ref.device).manual_seed(args.seed)
    which = np.flatnonzero(partial)
    filled = np.repeat(rows.x[None], copies, axis=0)  # (copies, rows, n)
    for start in range(0, len(which), 1000):
        idx = which[start : start + 1000]
        got = model.impute(
            torch.as_tensor(rows.x[idx]),
            torch.as_tensor(~missing[idx]),
            generator=generator,
            draws=draws,
            fill=args.fill,
        )
        filled[:, idx] = got.double().cpu().numpy().reshape(copies, len(idx), -1)
    # back to the file's columns: one-hot groups ungrouped; ``rewrite``: the file cells taken from ``filled``
    if rows.groups:
        width = rows.file_values.shape[1]
        owner = np.empty(width, dtype=np.int64)
        pos = k = 0
        for start, stop, _ in rows.groups:
            owner[pos:start] = np.arange(k, k + start - pos)
            k += start - pos
            owner[start:stop] = k
            k += 1
            pos = stop
        owner[pos:] = np.arange(k, k + width - pos)
        rewrite = missing[:, owner]
        values = [ungroup(f, rows.groups, width).astype(np.float64) for f in filled]
        specs, labels = rows.file_specs, {}
    else:
        rewrite = missing
        values = list(filled)
        specs, labels = rows.file_specs, rows.labels
    n_file = rows.file_values.shape[1]
    header = rows.file_names
    if header is None and rows.cells is None:  # arrays: name the columns
        header = rows.names if rows.names and len(rows.names) == n_file else [f"x{j}" for j in range(n_file)]
    lines = []
    if header is not None:
        lines.append(",".join((["draw"] if copies > 1 else []) + [_csv_cell(str(h)) for h in header]))
    for r in range(len(rows.x)):
        for d in range(copies):
            cells = [str(d)] if copies > 1 else []
            for c in range(n_file):
                if rows.cells is not None and not rewrite[r, c]:
                    cells.append(_csv_cell(rows.cells[r][c]))
                else:
                    cells.append(_cell_text(values[d][r, c], specs[c], labels.get(c)))
            lines.append(",".join(cells))
    atomic_write_text(out, "\n".join(lines) + "\n")
    n_cells = int(np.isnan(rows.file_values).sum())
    how = {"sample": f"{draws} draw{'s' if draws > 1 else ''} each", "mean": f"mean of {draws} draws"}
    how["mode"] = f"mode of {draws} draws"
    print(
        f"filled {n_cells} missing cells in {len(which)} of {len(rows.x)} rows ({how[args.fill]});"
        f" wrote {len(lines) - (header is not None)} rows to {out}"
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    run_demo(args.out, epochs=args.epochs, progress=not args.quiet, log=_log)
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from .fetch import fetch

    path = fetch(args.name, args.data_dir, base_url=args.url, progress=not args.quiet)
    print(f"wrote {path}")
    return 0


COMMANDS = {
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "score": cmd_score,
    "impute": cmd_impute,
    "sample": cmd_sample,
    "demo": cmd_demo,
    "fetch": cmd_fetch,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (also raised as ``SystemExit`` by argparse)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.command == "train":
        args.given = _given_train_options(argv)
        args.argv = argv
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        sys.stderr.write("ardens: interrupted\n")
        return 130
    except (UserError, ValueError, OSError, FloatingPointError) as err:  # DataError, RunDirError: ValueErrors
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if isinstance(err, OSError) and err.filename and str(err.filename) not in message:
            message = f"{err.filename}: {err.strerror or message}"
        from .distributed import env_rank

        if env_rank() == 0:  # under torchrun every rank fails alike; rank 0 says why
            sys.stderr.write(f"ardens: error: {message}\n")
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
