"""A scikit-learn style density estimator over typed tables: :class:`DensityEstimator`.

It follows scikit-learn's estimator conventions (``__init__`` only stores its parameters,
``fit`` returns ``self``, fitted attributes end in ``_``, ``get_params``/``set_params``,
``score`` is the mean log-likelihood per row) without depending on scikit-learn: it inherits
from nothing, and imports scikit-learn only where scikit-learn itself asks (``__sklearn_tags__``)
or, when it is installed, to raise its ``NotFittedError``. ``sklearn.base.clone``,
``Pipeline`` and ``GridSearchCV`` work with it.

Input is a NumPy array (numbers; an ``object`` array may hold text labels) or a pandas
DataFrame. Column types (:mod:`ardens.heads`) come from ``columns=``, or are inferred:

- pandas ``category`` columns: ``categorical:K`` with the dtype's categories as labels;
  ``object``/``string`` columns of text: ``categorical:K`` with their sorted labels (K is at
  least 2: a column of one label gets an unused second level, never sampled);
- ``bool`` columns: ``binary`` (sampled back as ``bool``);
- integer columns, and ``object`` columns of numbers: by :func:`ardens.tables.infer_column`
  (0/1: ``binary``; non-negative integers up to 31: ``categorical:max+1``, the values being
  the codes; others ``real``);
- floating-point columns: ``real:{components}``, whatever their values (pass ``columns=``
  to model a float 0/1 column as ``binary``).

**Conditional models** (``context_columns=``): those columns of ``X`` are the context ``c`` of
a conditional density ``p(other columns | c)``; they are encoded by :mod:`ardens.context`
(text labels, ``category`` columns and small integer codes one-hot; ``bool`` and 0/1 integer
columns 0/1; floating-point columns standardized with the training rows' mean and standard
deviation). ``score_samples(X)`` is then ``log p(x | c)`` and ``sample(n, context=...)`` draws
given context rows.
"""

from __future__ import annotations

import math
import numbers
import operator
import sys
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .context import fit_context
from .data import Dataset
from .evaluate import log_likelihoods
from .heads import parse_column
from .tables import infer_column
from .train import ModelConfig, TrainConfig, build_model, fit, resolve_device

__all__ = ["DensityEstimator", "NotFittedError"]

_KINDS = ("made", "nade", "deepnade")
_MAX_SAMPLE_ROUNDS = 100


class NotFittedError(ValueError, AttributeError):
    """Used (only where scikit-learn is not installed; otherwise scikit-learn's own
    ``NotFittedError``, which subclasses the same two) when an unfitted estimator is used."""


def _not_fitted(est: Any) -> Exception:
    msg = f"This {type(est).__name__} instance is not fitted yet; call fit(X) first."
    try:
        from sklearn.exceptions import NotFittedError as SkNotFittedError
    except ImportError:
        return NotFittedError(msg)
    return SkNotFittedError(msg)


@dataclass
class _Column:
    """What fit learned about one input column, to encode it again and to decode samples."""

    spec: str
    name: Any  # the DataFrame column name, or None
    labels: list | None  # text (or other) labels by code, for categorical columns of labels
    out: str  # "labels", "bool", "int" or "float": what a sampled value becomes
    dtype: Any  # the input column's dtype (NumPy or pandas), to give samples the same one


# -- reading X ----------------------------------------------------------------------------------
def _is_frame(X: Any) -> bool:
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(X, pd.DataFrame)


def _where(r: int, j: int, name: Any) -> str:
    return f"row {r}, column {j}" + ("" if name is None else f" ({name!r})")


def _read(X: Any, what: str = "X") -> tuple[list[np.ndarray], list[Any], list[Any], Any, int]:
    """``X`` as columns: for each one its values (a float64 array, or an object array of
    cells), its kind (``"category"``, ``"bool"``, ``"int"``, ``"float"``, ``"object"``), its
    dtype; the DataFrame's column index (None for arrays); the number of rows."""
    if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(f"{what}: sparse input is not supported; pass a dense array (X.toarray())")
    if _is_frame(X):
        return _read_frame(X, what)
    try:
        arr = np.asarray(X)
        if arr.dtype.kind in "US" and not isinstance(X, np.ndarray):
            arr = np.asarray(X, dtype=object)  # rows mixing numbers and text: keep the numbers numbers
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{what}: expected a 2-D array or a pandas DataFrame; got {type(X).__name__} ({err})"
        ) from None
    if np.iscomplexobj(arr):
        raise ValueError(f"{what}: Complex data not supported (dtype {arr.dtype}); expected real numbers or labels")
    if arr.ndim != 2:
        hint = " Reshape your data with X.reshape(-1, 1) for one feature, or X.reshape(1, -1) for one row." * (
            arr.ndim == 1
        )
        raise ValueError(f"{what}: expected a 2-D array (rows, columns); got shape {arr.shape}.{hint}")
    n, d = arr.shape
    _check_shape(n, d, what, arr.shape)
    if arr.dtype == bool:
        kind = "bool"
    elif np.issubdtype(arr.dtype, np.integer):
        kind = "int"
    elif np.issubdtype(arr.dtype, np.floating):
        kind = "float"
    elif arr.dtype == object or arr.dtype.kind in "US":
        kind = "object"
    else:
        raise ValueError(f"{what}: unsupported dtype {arr.dtype}; expected numbers or text labels")
    if kind == "object":
        cols = [np.asarray(arr[:, j], dtype=object) for j in range(d)]
    else:
        cols = [np.asarray(arr[:, j], dtype=np.float64) for j in range(d)]
    return cols, [kind] * d, [arr.dtype] * d, None, n


def _check_shape(n: int, d: int, what: str, shape: tuple) -> None:
    if d == 0:
        raise ValueError(f"{what}: Found array with 0 feature(s) (shape={shape}) while a minimum of 1 is required.")
    if n == 0:
        raise ValueError(f"{what}: Found array with 0 sample(s) (shape={shape}) while a minimum of 1 is required.")


def _read_frame(X: Any, what: str) -> tuple[list[np.ndarray], list[Any], list[Any], Any, int]:
    import pandas as pd

    n, d = X.shape
    _check_shape(n, d, what, X.shape)
    cols, kinds, dtypes = [], [], []
    for j in range(d):
        s = X.iloc[:, j]
        dt = s.dtype
        if isinstance(dt, pd.CategoricalDtype):
            kind, values = "category", np.asarray(s.astype(object), dtype=object)
        elif pd.api.types.is_bool_dtype(dt):
            kind, values = "bool", s.to_numpy(dtype=np.float64, na_value=np.nan)
        elif pd.api.types.is_complex_dtype(dt):
            raise ValueError(f"{what}: Complex data not supported (column {j} ({X.columns[j]!r}) has dtype {dt})")
        elif pd.api.types.is_integer_dtype(dt):
            kind, values = "int", s.to_numpy(dtype=np.float64, na_value=np.nan)
        elif pd.api.types.is_float_dtype(dt):
            kind, values = "float", s.to_numpy(dtype=np.float64, na_value=np.nan)
        elif pd.api.types.is_object_dtype(dt) or pd.api.types.is_string_dtype(dt):
            kind, values = "object", np.asarray(s.astype(object), dtype=object)
        else:
            raise ValueError(
                f"{what}: column {j} ({X.columns[j]!r}) has dtype {dt}; expected numbers, bool, text or category"
            )
        cols.append(values)
        kinds.append(kind)
        dtypes.append(dt)
    return cols, kinds, dtypes, X.columns, n


def _is_missing(v: Any) -> bool:
    """None, NaN or pandas' NA."""
    if v is None:
        return True
    try:
        return bool(v != v)
    except TypeError:  # pandas.NA: its comparisons are NA, whose truth value is undefined
        return True
    except ValueError:  # an array in a cell: not a missing value (and refused elsewhere)
        return False


def _split_cells(values: np.ndarray, j: int, name: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the text cells and of the number cells of an object column; a missing value
    is a ``ValueError``, any other object a ``TypeError``, naming the cell."""
    missing = np.fromiter((_is_missing(v) for v in values), dtype=bool, count=len(values))
    if missing.any():
        r = int(np.argmax(missing))
        raise ValueError(f"{what}: missing value (NaN) at {_where(r, j, name)}; missing values are not supported")
    text = np.fromiter((isinstance(v, str) for v in values), dtype=bool, count=len(values))
    num = np.fromiter((isinstance(v, (numbers.Real, np.bool_)) for v in values), dtype=bool, count=len(values))
    other = ~(text | num)
    if other.any():
        r = int(np.argmax(other))
        raise TypeError(
            f"{what}: at {_where(r, j, name)}: argument must be a string or a number; got {type(values[r]).__name__}"
        )
    return text, num


def _numbers(values: np.ndarray, kind: str, j: int, name: Any, what: str) -> np.ndarray:
    """A column's values as float64 numbers; text, NaN and inf are errors naming the cell."""
    if kind in ("object", "category"):
        text, num = _split_cells(values, j, name, what)
        if text.any():
            r = int(np.argmax(text))
            raise ValueError(f"{what}: text {values[r]!r} in a numeric column at {_where(r, j, name)}")
        values = np.array([float(v) for v in values], dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        r = int(np.argmax(bad))
        if np.isnan(values[r]):
            raise ValueError(f"{what}: missing value (NaN) at {_where(r, j, name)}; missing values are not supported")
        raise ValueError(f"{what}: infinite value {values[r]} at {_where(r, j, name)}")
    return values


def _check_codes(values: np.ndarray, spec: str, j: int, name: Any, what: str) -> None:
    kind, _, arg = spec.partition(":")
    if kind == "binary":
        bad = (values != 0) & (values != 1)
        expected = "0/1 (the column is binary)"
    elif kind == "categorical":
        bad = (values != np.floor(values)) | (values < 0) | (values > int(arg) - 1)
        expected = f"an integer code in 0..{int(arg) - 1} (the column is {spec})"
    else:
        return
    if bad.any():
        r = int(np.argmax(bad))
        raise ValueError(f"{what}: value {values[r]:g} at {_where(r, j, name)}; expected {expected}")


# -- the estimator --------------------------------------------------------------------------------
class DensityEstimator:
    """A NADE, MADE or DeepNADE density estimator of the rows of a table, with exact
    log-likelihoods, scikit-learn style.

    Parameters:
        model: ``"made"``, ``"nade"`` or ``"deepnade"``.
        hidden: hidden layer sizes (NADE: exactly one).
        columns: column types: None (inferred, see :mod:`ardens.estimator`), a list with one
            spec per column (``"binary"``, ``"categorical:K"``, ``"categorical"`` for K from the
            data, ``"real"``, ``"real:C"``, or None to infer that one), or a dict from column
            names (or indices) to specs.
        num_masks: ensemble members (MADE's masks, DeepNADE's orderings).
        components: Gaussian mixture components of real columns whose spec gives none.
        epochs, batch_size, lr, weight_decay, patience: training (Adam, early stopping on the
            held-out rows; ``patience`` epochs without improvement stop it).
        validation_fraction: the share of rows (shuffled, at least one) held out for early
            stopping; the model keeps its best validation epoch's weights.
        min_scale: the mixture components' standard-deviation floor (standardized units).
        input_margin: real inputs reach the network clipped to the training range widened by
            this many standard deviations (the density stays exact; ``None``: never clipped).
        random_state: an int, None (0: fitting is deterministic) or a ``numpy.random.RandomState``
            (an int is drawn from it); seeds the split, the weights and the minibatches.
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        context_columns: None, or a list of column names (DataFrames) or integer indices of
            ``X``: the context ``c`` of a conditional model ``p(other columns | c)`` (see
            :mod:`ardens.estimator`); every method then reads them from ``X``.

    Attributes (after ``fit``): ``n_features_in_``; ``feature_names_in_`` (DataFrames with
    string column names); ``columns_`` (one spec per column); ``categories_`` (column index
    -> labels, code ``k`` being ``labels[k]``, for categorical columns of labels);
    ``model_`` (the trained torch module, in eval mode); ``n_iter_`` (epochs run);
    ``best_epoch_``; ``best_validation_nll_`` (the mean NLL, nats, of the held-out rows
    with the kept weights; for an ensemble of more than 8 members, that of its first 8);
    ``validation_indices_`` (the held-out rows of X). Conditional models: ``columns_`` and
    ``categories_`` describe the modelled columns (``categories_`` keyed by their index in X);
    ``context_columns_`` (indices in X) and ``context_encoding_``
    (:class:`ardens.context.ContextEncoding`) the context.

    ``score_samples(X)`` is ``log p(x)`` per row in nats, in the data's own units (a density
    for real columns, a probability for discrete ones); ``score(X)`` is its mean, the mean
    log-likelihood per row, which model selection (``GridSearchCV``) maximizes.
    ``sample(n)`` returns rows of the fitted kind: a DataFrame (same columns, dtypes and
    labels) or an array.

    >>> import pandas as pd
    >>> df = pd.DataFrame({
    ...     "size": [1.2, 0.7, 2.5, 1.9, 0.4, 1.1, 2.2, 0.9],
    ...     "colour": pd.Categorical(["red", "blue", "red", "green", "blue", "red", "green", "red"]),
    ...     "on": [0, 1, 1, 0, 1, 0, 1, 1],
    ... })
    >>> est = DensityEstimator(hidden=(8,), epochs=3, random_state=0).fit(df)
    >>> est.columns_, est.categories_
    (['real:10', 'categorical:3', 'binary'], {1: ['blue', 'green', 'red']})
    >>> est.score_samples(df).shape, est.n_iter_
    ((8,), 3)
    >>> samples = est.sample(4, random_state=0)
    >>> list(samples.columns), [str(t) for t in samples.dtypes]
    (['size', 'colour', 'on'], ['float64', 'category', 'int64'])
    >>> set(samples["colour"]) <= {"blue", "green", "red"}
    True
    """

    def __init__(
        self,
        model="made",
        hidden=(100,),
        columns=None,
        num_masks=1,
        components=10,
        epochs=200,
        batch_size=100,
        lr=1e-3,
        weight_decay=0.0,
        patience=20,
        validation_fraction=0.1,
        min_scale=1e-3,
        input_margin=1.0,
        random_state=None,
        device="cpu",
        context_columns=None,
    ):
        self.model = model
        self.hidden = hidden
        self.columns = columns
        self.num_masks = num_masks
        self.components = components
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.min_scale = min_scale
        self.input_margin = input_margin
        self.random_state = random_state
        self.device = device
        self.context_columns = context_columns

    # -- scikit-learn conventions ----------------------------------------------------------
    _PARAMS = (
        "model",
        "hidden",
        "columns",
        "num_masks",
        "components",
        "epochs",
        "batch_size",
        "lr",
        "weight_decay",
        "patience",
        "validation_fraction",
        "min_scale",
        "input_margin",
        "random_state",
        "device",
        "context_columns",
    )

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's parameters, by name (``deep`` changes nothing: none is an estimator)."""
        return {name: getattr(self, name) for name in self._PARAMS}

    def set_params(self, **params: Any) -> DensityEstimator:
        """Set constructor parameters by name; returns ``self``."""
        for key, value in params.items():
            if key not in self._PARAMS:
                raise ValueError(
                    f"Invalid parameter {key!r} for estimator {type(self).__name__}. "
                    f"Valid parameters are: {', '.join(self._PARAMS)}."
                )
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        defaults = type(self)().get_params()
        shown = []
        for name, value in self.get_params().items():
            default = defaults[name]
            try:
                same = type(value) is type(default) and bool(value == default)
            except (TypeError, ValueError):
                same = False
            if not same:
                shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    def __sklearn_tags__(self):  # called by scikit-learn only, so the import is safe here
        from sklearn.utils import InputTags, Tags, TargetTags

        return Tags(
            estimator_type="density_estimator",
            target_tags=TargetTags(required=False),
            input_tags=InputTags(two_d_array=True, sparse=False, allow_nan=False),
        )

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise _not_fitted(self)

    # -- fit --------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> DensityEstimator:
        """Train on the rows of ``X`` (``y`` is ignored); returns ``self``."""
        kind, hidden, seed, device = self._checked_params()
        cols, kinds, dtypes, frame_columns, n = _read(X)
        names = list(frame_columns) if frame_columns is not None else [None] * len(cols)
        specs = self._requested_specs(len(cols), names)
        ctx_idx = self._context_index(len(cols), names)
        x_idx = [j for j in range(len(cols)) if j not in ctx_idx]
        if not x_idx:
            raise ValueError("context_columns: every column of X is a context column; nothing is left to model")
        infos, encoded = [], []
        for j in x_idx:
            info, codes = self._infer(cols[j], kinds[j], dtypes[j], j, names[j], specs[j])
            infos.append(info)
            encoded.append(codes)
        data = np.stack(encoded, axis=1)
        if n < 3:
            raise ValueError(
                f"X: {n} sample{'s' if n != 1 else ''} (rows); at least 3 are needed (training and held-out rows)"
            )
        for j, info in enumerate(infos):
            if info.spec.startswith("real") and not data[:, j].std() > 0:
                raise ValueError(
                    f"X: column {j}{'' if info.name is None else f' ({info.name!r})'} is a constant real column "
                    f"(every value {data[0, j]:g}); drop it or declare it categorical"
                )
        perm = np.random.RandomState(seed).permutation(n)
        n_valid = min(max(1, math.ceil(self.validation_fraction * n)), n - 2)
        valid_idx, train_idx = np.sort(perm[:n_valid]), np.sort(perm[n_valid:])
        train, valid = data[train_idx], data[valid_idx]
        enc, context = self._fit_context(cols, kinds, dtypes, names, ctx_idx, train_idx)
        for j, info in enumerate(infos):
            if info.spec.startswith("real") and not train[:, j].std() > 0:
                raise ValueError(
                    f"X: real column {j}{'' if info.name is None else f' ({info.name!r})'} is constant in the "
                    f"{len(train)} training rows (the rest are held out for early stopping); add rows, change "
                    "random_state or validation_fraction, or declare it categorical"
                )
        spec_list = [info.spec for info in infos]
        str_names = frame_columns is not None and all(isinstance(c, str) for c in names)
        dataset = Dataset(
            "X",
            np.ascontiguousarray(train),
            np.ascontiguousarray(valid),
            np.ascontiguousarray(valid[:0]),
            source="X",
            columns=tuple(spec_list),
            column_names=tuple(names) if str_names else None,
            categories={j: list(map(str, c.labels)) for j, c in enumerate(infos) if c.labels is not None} or None,
            **(
                {}
                if enc is None
                else {
                    "context_train": np.ascontiguousarray(context[train_idx]),
                    "context_valid": np.ascontiguousarray(context[valid_idx]),
                    "context_test": np.zeros((0, enc.width)),
                    "context_names": tuple(enc.names),
                    "context_encoding": enc.to_meta(),
                }
            ),
        )
        config = TrainConfig(
            epochs=_positive_int("epochs", self.epochs),
            batch_size=_positive_int("batch_size", self.batch_size),
            lr=float(self.lr),
            weight_decay=float(self.weight_decay),
            patience=_positive_int("patience", self.patience),
            seed=seed,
            device=str(device),
        )
        model_config = ModelConfig(
            hidden=hidden,
            num_masks=_positive_int("num_masks", self.num_masks),
            seed=seed,
            min_scale=float(self.min_scale),
            input_margin=None if self.input_margin is None else float(self.input_margin),
            context_features=0 if enc is None else enc.width,
        )
        # build_model draws the weights from torch's global CPU generator: seed it, and restore it after
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            net = build_model(kind, len(infos), model_config, columns=spec_list)
            result = fit(net, dataset, config, run_dir=None, progress=False)
        net.eval()
        if hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self.n_features_in_ = len(cols)
        if str_names:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        self.columns_ = spec_list
        self.categories_ = {x_idx[k]: list(c.labels) for k, c in enumerate(infos) if c.labels is not None}
        for attr in ("context_columns_", "context_encoding_"):
            if hasattr(self, attr):
                delattr(self, attr)
        if enc is not None:
            self.context_columns_ = list(ctx_idx)
            self.context_encoding_ = enc
        self.model_ = net
        self.n_iter_ = int(result.epochs_run)
        self.best_epoch_ = int(result.best_epoch)
        self.best_validation_nll_ = float(result.best_valid_nll)
        self.validation_indices_ = valid_idx
        self._infos = infos
        self._x_index = x_idx
        self._context_index_ = list(ctx_idx)
        self._context_dtypes = [dtypes[j] for j in ctx_idx]
        self._frame_columns = frame_columns
        labelled = any(c.labelled for c in enc.columns) if enc is not None else False
        self._object_output = frame_columns is None and (any(c.labels is not None for c in infos) or labelled)
        return self

    def _context_index(self, d: int, names: list[Any]) -> list[int]:
        """The indices in X of ``context_columns`` (names, or integer indices)."""
        keys = self.context_columns
        if keys is None:
            return []
        if isinstance(keys, (str, numbers.Integral)):
            keys = [keys]
        out: list[int] = []
        for key in keys:
            matches = [j for j, name in enumerate(names) if name is not None and name == key]
            if not matches and isinstance(key, numbers.Integral) and not isinstance(key, bool) and 0 <= key < d:
                matches = [int(key)]
            if len(matches) != 1:
                shown = ", ".join(repr(n) for n in names[:20] if n is not None)
                listed = f" (columns: {shown})" if shown else f" (X has {d} columns)"
                what = "names several columns" if matches else "is not a column name or index"
                raise ValueError(f"context_columns: {key!r} {what} of X{listed}")
            if matches[0] in out:
                raise ValueError(f"context_columns: {key!r} is given twice")
            out.append(matches[0])
        return out

    def _fit_context(self, cols, kinds, dtypes, names, ctx_idx, train_idx):
        """The context encoding (fitted: categories on every row, loc/scale on the training
        rows) and the encoded context of every row; ``(None, None)`` without context columns."""
        if not ctx_idx:
            return None, None
        raw, ctx_kinds, cats, ctx_names = [], [], [], []
        for j in ctx_idx:
            values = _raw_context(cols[j], kinds[j], j, names[j], "X")
            raw.append(values)
            ctx_names.append(str(names[j]) if names[j] is not None else str(j))
            if kinds[j] == "category":
                ctx_kinds.append("categorical")
                cats.append(list(dtypes[j].categories))
            elif kinds[j] == "bool":
                ctx_kinds.append("binary")
                cats.append(None)
            elif kinds[j] == "float":
                ctx_kinds.append("real")
                cats.append(None)
            elif any(isinstance(v, str) for v in values):
                ctx_kinds.append("categorical")
                cats.append(sorted(set(values)))
            else:  # integer codes: binary, categorical (codes 0..max over every row) or real, as data columns
                nums = np.asarray(values, dtype=np.float64)
                kind = infer_column(nums).partition(":")[0]
                ctx_kinds.append(kind)
                cats.append(list(range(int(nums.max()) + 1)) if kind == "categorical" else None)
        fit_rows = [[v[i] for i in train_idx] for v in raw]
        enc = fit_context(fit_rows, ctx_names, ctx_kinds, cats, indices=list(ctx_idx), where="X")
        return enc, enc.encode(raw, where="X", cell=lambda r, k, name: _where(r, ctx_idx[k], name))

    def _checked_params(self) -> tuple[str, list[int], int, torch.device]:
        if self.model not in _KINDS:
            raise ValueError(f"model: expected one of {', '.join(_KINDS)}; got {self.model!r}")
        hidden = self.hidden
        if isinstance(hidden, numbers.Integral) and not isinstance(hidden, bool):
            hidden = [hidden]
        try:
            hidden = [_positive_int("hidden", h) for h in hidden]
        except TypeError:
            raise ValueError(f"hidden: expected a sequence of positive integers; got {self.hidden!r}") from None
        _positive_int("components", self.components)
        frac = self.validation_fraction
        if isinstance(frac, bool) or not isinstance(frac, numbers.Real) or not 0 < frac < 1:
            raise ValueError(f"validation_fraction: expected a number in (0, 1); got {frac!r}")
        if isinstance(self.min_scale, bool) or not isinstance(self.min_scale, numbers.Real):
            raise ValueError(f"min_scale: expected a non-negative number; got {self.min_scale!r}")
        margin = self.input_margin
        if margin is not None and (isinstance(margin, bool) or not isinstance(margin, numbers.Real)):
            raise ValueError(f"input_margin: expected a non-negative number or None; got {margin!r}")
        for name in ("lr", "weight_decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"{name}: expected a number; got {value!r}")
        return self.model, hidden, _seed(self.random_state, none=0), resolve_device(str(self.device))

    def _requested_specs(self, d: int, names: list[Any]) -> list[Any]:
        """One requested spec (or None: infer) per column, from ``columns``."""
        cols = self.columns
        if cols is None:
            return [None] * d
        if isinstance(cols, dict):
            out: list[Any] = [None] * d
            for key, spec in cols.items():
                matches = [j for j, name in enumerate(names) if name is not None and name == key]
                if not matches and isinstance(key, numbers.Integral) and not isinstance(key, bool) and 0 <= key < d:
                    matches = [int(key)]
                if len(matches) != 1:
                    shown = ", ".join(repr(n) for n in names[:20] if n is not None)
                    listed = f" (columns: {shown})" if shown else ""
                    what = "names several columns" if matches else "is not a column name or index"
                    raise ValueError(f"columns: {key!r} {what} of X{listed}")
                out[matches[0]] = spec
            return out
        if isinstance(cols, str):
            raise ValueError(f"columns: expected a list with one spec per column or a dict; got the text {cols!r}")
        out = list(cols)
        if len(out) != d:
            raise ValueError(f"columns: {len(out)} specs for the {d} columns of X")
        return out

    def _infer(self, values, kind, dtype, j, name, spec) -> tuple[_Column, np.ndarray]:
        """A column's type (``spec``, or inferred) and its codes; every value checked."""
        requested = None
        if spec is not None:
            if isinstance(spec, str) and spec.strip().lower() in ("categorical", "cat", "c"):
                requested = "categorical"
            elif isinstance(spec, str) and spec.strip().lower() in ("real", "r"):
                requested = f"real:{_positive_int('components', self.components)}"
            else:
                try:
                    requested = parse_column(spec).spec()
                except ValueError as err:
                    raise ValueError(f"columns: column {j}{'' if name is None else f' ({name!r})'}: {err}") from None
        labels = None
        if kind == "category":
            labels = list(dtype.categories)
        elif kind == "object":
            text, num = _split_cells(values, j, name, "X")
            if text.any() and num.any():
                if text.sum() <= num.sum():
                    r = int(np.argmax(text))
                    raise ValueError(f"X: text {values[r]!r} in a numeric column at {_where(r, j, name)}")
                r = int(np.argmax(num))
                raise ValueError(f"X: number {values[r]!r} in a column of text labels at {_where(r, j, name)}")
            if text.any():
                labels = sorted(set(values.tolist()))
        if labels is None:
            return self._numeric(values, kind, dtype, j, name, requested)
        if requested is not None and not requested.startswith("categorical"):
            if kind == "category" and all(isinstance(v, numbers.Real) for v in labels):
                return self._numeric(values, kind, dtype, j, name, requested)  # a category of numbers
            shown = ", ".join(repr(s) for s in labels[:3]) + (", ..." if len(labels) > 3 else "")
            kind_name = requested.partition(":")[0]
            raise ValueError(
                f"X: column {j}{'' if name is None else f' ({name!r})'} holds labels ({shown}), so it cannot be "
                f"{kind_name}; declare it categorical"
            )
        # a categorical column of labels
        levels = max(2, len(labels)) if requested in (None, "categorical") else int(requested.partition(":")[2])
        if levels < len(labels):
            raise ValueError(
                f"X: column {j}{'' if name is None else f' ({name!r})'} has {len(labels)} labels; "
                f"{requested} allows {levels}"
            )
        info = _Column(f"categorical:{levels}", name, labels, "labels", dtype)
        return info, _encode_labels(values, info, j, "X")

    def _numeric(self, values, kind, dtype, j, name, requested) -> tuple[_Column, np.ndarray]:
        x = _numbers(values, kind, j, name, "X")
        if requested is None:
            if kind == "bool":
                spec = "binary"
            elif kind == "float":
                spec = f"real:{_positive_int('components', self.components)}"
            else:
                spec = infer_column(x)
                if spec.startswith("real"):
                    spec = f"real:{_positive_int('components', self.components)}"
        elif requested == "categorical":
            bad = (x != np.floor(x)) | (x < 0)
            if bad.any():
                r = int(np.argmax(bad))
                raise ValueError(
                    f"X: value {x[r]:g} at {_where(r, j, name)}; a categorical column holds integer codes 0..K-1"
                )
            spec = f"categorical:{max(2, int(x.max()) + 1)}"
        else:
            spec = requested
        _check_codes(x, spec, j, name, "X")
        if spec.startswith("real"):
            out = "float"
        elif kind == "bool":
            out = "bool"
        else:
            out = "int"
        return _Column(spec, name, None, out, dtype), x

    # -- scoring ------------------------------------------------------------------------------
    def _encode(self, X: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """``X`` as the model's float64 codes, checked against what fit saw, and the encoded
        context of its rows (None without context columns)."""
        self._check_fitted()
        cols, kinds, _, frame_columns, n = _read(X)
        self._check_names(frame_columns, len(cols))
        context = None
        if self._context_index_:
            idx = self._context_index_
            raw = [
                _raw_context(cols[j], kinds[j], j, frame_columns[j] if frame_columns is not None else None, "X")
                for j in idx
            ]
            context = self.context_encoding_.encode(raw, where="X", cell=lambda r, k, name: _where(r, idx[k], name))
        out = np.empty((n, len(self._infos)))
        for k, (info, j) in enumerate(zip(self._infos, self._x_index)):
            values, kind = cols[j], kinds[j]
            name = info.name if frame_columns is None else frame_columns[j]
            if info.labels is not None:
                out[:, k] = _encode_labels(values, info, j, "X", name)
            else:
                x = _numbers(values, kind, j, name, "X")
                _check_codes(x, info.spec, j, name, "X")
                out[:, k] = x
        return out, context

    def _check_names(self, frame_columns: Any, d: int) -> None:
        fitted = getattr(self, "feature_names_in_", None)
        names = list(frame_columns) if frame_columns is not None else None
        has_names = names is not None and all(isinstance(c, str) for c in names)
        if fitted is not None and has_names:
            if names != list(fitted):
                missing = [c for c in fitted if c not in names]
                unexpected = [c for c in names if c not in list(fitted)]
                parts = []
                if unexpected:
                    parts.append(f"unexpected {unexpected}")
                if missing:
                    parts.append(f"missing {missing}")
                detail = "; ".join(parts) if parts else "same names in another order"
                raise ValueError(
                    f"X: The feature names should match those that were passed during fit "
                    f"({list(fitted)}); got {names} ({detail})"
                )
        elif fitted is not None:
            warnings.warn(
                f"X does not have valid feature names, but {type(self).__name__} was fitted with feature names",
                UserWarning,
                stacklevel=3,
            )
        elif has_names and self._frame_columns is None:
            warnings.warn(
                f"X has feature names, but {type(self).__name__} was fitted without feature names",
                UserWarning,
                stacklevel=3,
            )
        if d != self.n_features_in_:
            raise ValueError(
                f"X has {d} features, but {type(self).__name__} is expecting {self.n_features_in_} features as input."
            )

    def score_samples(self, X: Any) -> np.ndarray:
        """``log p(x)`` of each row of ``X``, in nats, in the data's own units (float64).

        ``X`` is encoded as in ``fit``: the same columns (names, for a DataFrame fitted with
        names), labels mapped with ``categories_`` (an unseen label is an error naming its row
        and column). For a conditional model (``context_columns``): ``log p(x | c)``, the
        context ``c`` read from the same row of ``X``."""
        data, context = self._encode(X)
        return np.asarray(log_likelihoods(self.model_, data, context=context), dtype=np.float64)

    def score(self, X: Any, y: Any = None) -> float:
        """The mean log-likelihood per row of ``X`` (nats; ``y`` is ignored): the mean of
        :meth:`score_samples`, so that model selection (``GridSearchCV``) maximizes it."""
        return float(np.mean(self.score_samples(X)))

    # -- sampling -----------------------------------------------------------------------------
    def sample(self, n_samples: int = 1, random_state: Any = None, context: Any = None) -> Any:
        """``n_samples`` rows drawn from the model, of the kind ``fit`` saw: a DataFrame (same
        column names; labels, with a ``category`` dtype where the input had one; discrete
        columns as integers, ``bool`` columns as bool; real columns as floats) or an array
        (float64, integer values in discrete columns; ``object`` with labels where ``X`` had
        text labels). ``random_state``: an int, a ``numpy.random.RandomState``, or None (a
        seed drawn from NumPy's global generator, so that calls differ).

        Conditional models (``context_columns``): ``context`` is required, a DataFrame (with the
        context columns, by name) or an array (the context columns in order, or all columns of
        X) of context rows, or one row (a list or 1-D array): one sample per row (``n_samples``
        must then be the number of rows), or ``n_samples`` samples of a single row. The
        returned rows include the context columns, in X's layout."""
        self._check_fitted()
        if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral) or n_samples < 0:
            raise ValueError(f"n_samples: expected a non-negative integer; got {n_samples!r}")
        n_samples = int(n_samples)
        context, raw = self._sample_context(context, n_samples)
        seed = _seed(random_state, none=None)
        ref = next(self.model_.parameters())
        generator = torch.Generator(device=ref.device).manual_seed(seed)
        label_cols = [(j, len(c.labels)) for j, c in enumerate(self._infos) if c.labels is not None]
        if context is not None:
            x = np.zeros((n_samples, len(self._infos)))
            pending = np.arange(n_samples)
            for _ in range(_MAX_SAMPLE_ROUNDS):
                if not len(pending):
                    break
                got = self.model_.sample(len(pending), generator=generator, context=context[pending])
                got = got.cpu().double().numpy()
                ok = np.ones(len(got), dtype=bool)
                for j, n_labels in label_cols:  # unlabelled codes: redrawn, as below
                    ok &= got[:, j] < n_labels
                x[pending[ok]] = got[ok]
                pending = pending[~ok]
            if len(pending):
                raise RuntimeError(
                    f"sample: could not draw {n_samples} rows with known labels in {_MAX_SAMPLE_ROUNDS} tries"
                )
            return self._decode(x, raw)
        parts, have = [], 0
        for _ in range(_MAX_SAMPLE_ROUNDS):
            if have >= n_samples:
                break
            need = n_samples - have
            x = self.model_.sample(max(need, 1), generator=generator).cpu().double().numpy()
            # a categorical column of L < K labels: codes L..K-1 have no label; such rows are
            # redrawn, which samples the model conditioned on every label being a known one
            ok = np.ones(len(x), dtype=bool)
            for j, n_labels in label_cols:
                ok &= x[:, j] < n_labels
            parts.append(x[ok][:need])
            have += len(parts[-1])
        if have < n_samples:
            raise RuntimeError(
                f"sample: could not draw {n_samples} rows with known labels in {_MAX_SAMPLE_ROUNDS} tries"
            )
        x = np.concatenate(parts) if parts else np.zeros((0, len(self._infos)))
        x = x[:n_samples]
        return self._decode(x)

    def _sample_context(self, context: Any, n_samples: int) -> tuple[np.ndarray | None, list[list] | None]:
        """The encoded context of ``n_samples`` samples and its raw values per context column."""
        idx = self._context_index_
        if not idx:
            if context is not None:
                raise ValueError("context: this estimator was fitted without context_columns; it takes no context")
            return None, None
        enc = self.context_encoding_
        if context is None:
            raise ValueError(
                f"context: this estimator models p(x | c) given {enc.names}; pass context= (context rows, or one row)"
            )
        if not _is_frame(context):
            arr = np.asarray(context, dtype=object) if not isinstance(context, np.ndarray) else context
            if arr.ndim == 1:
                context = arr.reshape(1, -1)
        cols, kinds, _, frame_columns, k = _read(context, "context")
        if frame_columns is not None:
            fitted = list(self._frame_columns) if self._frame_columns is not None else None
            wanted = [fitted[j] for j in idx] if fitted is not None else list(range(len(idx)))
            have = list(frame_columns)
            absent = [w for w in wanted if w not in have]
            if absent:
                raise ValueError(f"context: no context column {absent[0]!r}; the columns are {have}")
            take = [have.index(w) for w in wanted]
        elif len(cols) == len(idx):
            take = list(range(len(idx)))
        elif len(cols) == self.n_features_in_:
            take = list(idx)
        else:
            raise ValueError(
                f"context: {len(cols)} columns; expected the {len(idx)} context columns {enc.names}"
                f" (or all {self.n_features_in_} columns of X)"
            )
        if k != 1 and k != n_samples:
            raise ValueError(
                f"n_samples: {n_samples} for {k} context rows;"
                f" pass n_samples={k} (one sample per row) or one context row"
            )
        names = [frame_columns[t] if frame_columns is not None else None for t in take]
        raw = [_raw_context(cols[t], kinds[t], t, name, "context") for t, name in zip(take, names)]
        encoded = enc.encode(raw, where="context", cell=lambda r, c, name: _where(r, take[c], name))
        if k == 1:
            encoded = np.repeat(encoded, n_samples, axis=0)
            raw = [v * n_samples for v in raw]
        return encoded, raw

    def _decode(self, x: np.ndarray, context: list[list] | None = None) -> Any:
        discrete = np.array([not c.spec.startswith("real") for c in self._infos])
        x = x.copy()
        x[:, discrete] = np.rint(x[:, discrete])
        if self._frame_columns is not None:
            return self._decode_frame(x, context)
        width = self.n_features_in_ if context is not None else x.shape[1]
        xi = self._x_index if context is not None else list(range(x.shape[1]))
        if not self._object_output:
            out = np.empty((len(x), width))
            out[:, xi] = x
            for j, values in zip(self._context_index_, context or []):
                out[:, j] = np.asarray(values, dtype=np.float64)
            return out
        out = np.empty((len(x), width), dtype=object)
        for k, info in enumerate(self._infos):
            if info.labels is not None:
                out[:, xi[k]] = [info.labels[int(c)] for c in x[:, k]]
            elif info.out == "float":
                out[:, xi[k]] = x[:, k].tolist()
            else:
                out[:, xi[k]] = x[:, k].astype(np.int64).tolist()
        for j, values in zip(self._context_index_, context or []):
            out[:, j] = list(values)
        return out

    def _decode_frame(self, x: np.ndarray, context: list[list] | None = None) -> Any:
        import pandas as pd

        data = {}
        for k, info in enumerate(self._infos):
            j = self._x_index[k]
            v = x[:, k]
            if info.labels is not None:
                codes = v.astype(np.int64)
                if isinstance(info.dtype, pd.CategoricalDtype):
                    col = pd.Series(pd.Categorical.from_codes(codes, dtype=info.dtype))
                else:
                    col = pd.Series(np.asarray(info.labels, dtype=object)[codes], dtype=object)
                    col = _astype(col, info.dtype)
            elif info.out == "float":
                col = _astype(pd.Series(v), info.dtype, floating=True)
            elif info.out == "bool":
                col = _astype(pd.Series(v.astype(bool)), info.dtype)
            else:
                col = _astype(pd.Series(v.astype(np.int64)), info.dtype, integer=True)
            data[j] = col
        if context is not None:
            for j, dt, values in zip(self._context_index_, self._context_dtypes, context):
                if isinstance(dt, pd.CategoricalDtype):
                    data[j] = pd.Series(pd.Categorical(values, dtype=dt))
                else:
                    data[j] = _astype(pd.Series(list(values)), dt)
            order = list(range(self.n_features_in_))
        else:
            order = list(self._x_index)
        frame = pd.DataFrame({j: data[j] for j in order})
        frame.columns = [self._frame_columns[j] for j in order]
        return frame


def _astype(col: Any, dtype: Any, floating: bool = False, integer: bool = False) -> Any:
    """``col`` in the input column's dtype where that keeps its values' kind (a float column
    stays float, an int column int), else as it is."""
    import pandas as pd

    if floating and not pd.api.types.is_float_dtype(dtype):
        return col
    if integer and not pd.api.types.is_integer_dtype(dtype):
        return col
    try:
        return col.astype(dtype)
    except (TypeError, ValueError):
        return col


def _encode_labels(values: np.ndarray, info: _Column, j: int, what: str, name: Any = None) -> np.ndarray:
    """The codes of a column of labels; a missing value or an unseen label is an error."""
    name = info.name if name is None else name
    lookup = {}
    for k, label in enumerate(info.labels):
        lookup.setdefault(label, k)
    out = np.empty(len(values))
    for r, v in enumerate(values):
        try:
            out[r] = lookup[v]
        except (KeyError, TypeError):
            if _is_missing(v):
                raise ValueError(
                    f"{what}: missing value at {_where(r, j, name)}; missing values are not supported"
                ) from None
            shown = ", ".join(repr(s) for s in info.labels[:10]) + (", ..." if len(info.labels) > 10 else "")
            raise ValueError(
                f"{what}: unseen label {v!r} at {_where(r, j, name)}; the labels seen in fit are {shown}"
            ) from None
    return out


def _raw_context(values: np.ndarray, kind: str, j: int, name: Any, what: str) -> list:
    """A context column's raw values: text labels (and ``category`` values) as they are, numbers
    as floats; text among numbers, a missing value, an infinity: errors naming the cell."""
    if kind in ("category", "object"):
        text, num = _split_cells(values, j, name, what)
        if text.any() and num.any():
            r = int(np.argmax(text)) if text.sum() <= num.sum() else int(np.argmax(num))
            raise ValueError(f"{what}: a context column mixing text and numbers at {_where(r, j, name)}")
        return [v if isinstance(v, str) else float(v) for v in values]
    return _numbers(values, kind, j, name, what).tolist()


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name}: expected a positive integer; got {value!r}")
    return operator.index(value)


def _seed(random_state: Any, none: int | None) -> int:
    """An int seed in ``0..2**32-1`` from ``random_state``: an int, a ``RandomState`` or
    ``Generator`` (an int is drawn), None (``none``, or a draw from NumPy's global generator)."""
    if random_state is None:
        if none is not None:
            return none
        return int(np.random.randint(0, 2**31 - 1))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**31 - 1))
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool) and 0 <= random_state < 2**32:
        return int(random_state)
    raise ValueError(f"random_state: expected an int in 0..2**32-1, a numpy RandomState or None; got {random_state!r}")
