"""Canonical fingerprints of prediction inputs and outputs.

Every prediction record commits to ``input_hash`` and ``output_hash``. This module is the
public definition of those two hashes, written so that an auditor can re-implement it::

    input_hash  = hex(SHA-256(JCS(input_document(x))))
    output_hash = hex(SHA-256(JCS(output_document(y))))

where JCS is RFC 8785 (:func:`ario_mlflow.proof.canonical.canonical_json`).

Backward compatibility comes first: for every input the reference plugin (ar-io-mlflow
0.3.0) could hash, the hash is unchanged, so its records re-verify. The richer encodings
below apply only where the reference's hash was wrong (a DataFrame was hashed by its
column names alone) or impossible (the reference raised: NaN, numpy integers, 2-D arrays,
datetimes, bytes inside containers ...).

Documents (what is hashed)
--------------------------

======================  ===============================================================
value given             document
======================  ===============================================================
input ``dict``          ``C(x)`` — the dict itself (keys sorted by JCS)
input DataFrame         ``{"features": C(x)}`` (tagged frame, see below)
input numpy array       ``{"features": C(x)}`` (plain nested lists; equals the rule below)
input other iterable    ``{"features": [C(item) for item in x]}`` — ``list``, ``tuple``,
                        Series (its values), ``str`` (its characters), ``bytes`` (its
                        byte values as integers), any other re-iterable container
input anything else     ``{"features": C(x)}`` (scalars, ``None``, datetimes, 0-d arrays)
output                  ``{"prediction": C(p)}`` with ``p = y.tolist()`` when ``y`` has a
                        callable ``tolist`` (numpy arrays and scalars, Series), else ``y``
======================  ===============================================================

Input rejected (``FingerprintError``): mappings that are not ``dict`` (the reference hashed
their keys only), ``set``/``frozenset`` (no canonical order), one-shot iterators and
generators (hashing would consume the model's input).

Values: ``C(v)``
----------------

=============================  ==========================================================
value                          canonical JSON value
=============================  ==========================================================
``None``, ``pd.NA``, ``NaT``   ``null``
``bool``, ``numpy.bool_``      ``true`` / ``false`` (never ``1`` / ``0``)
``int`` (and subclasses),      JSON integer, exact digits
numpy integers
finite ``float``, numpy        JSON number per JCS (so ``1.0`` renders as ``1``, equal to
float16/32/64                  the integer ``1``; float32 values are widened exactly)
NaN, +Inf, -Inf                ``{"$ario:float": "NaN" | "Infinity" | "-Infinity"}``
``str`` (and subclasses)       JSON string
``bytes``, ``bytearray``,      ``{"$ario:bytes": "<base64, RFC 4648 §4, padded>"}``
``numpy.bytes_``
``list``, ``tuple``            JSON array of ``C(item)``
``dict``                       JSON object of ``C(value)``; keys must be ``str`` and must
                               not start with ``$ario:`` (reserved for the tags here, so a
                               tag can never collide with user data)
``datetime.datetime``,         ISO-8601 string ``YYYY-MM-DDTHH:MM:SS[.f]``: ``.f`` is the
``pd.Timestamp``,              stored sub-second digits (up to 9 for pandas, more for numpy
``numpy.datetime64`` (any      ps/fs/as units) with trailing zeros removed, omitted when
unit)                          zero; an aware value gets ``±HH:MM`` (``+00:00`` for UTC).
                               Coarse units (``D``, ``h`` ...) are instants: ``T00:00:00``.
                               Years 1..9999 only. The unit never changes the string.
``datetime.date``              ``YYYY-MM-DD``
numpy array                    nested JSON arrays of ``C(element)`` (shape by nesting,
                               dtype not recorded: identical to ``C(a.tolist())`` except
                               that datetime64 elements become ISO strings in every unit)
``pd.DataFrame``               ``{"$ario:dataframe": {"columns": [C(label)...],
                               "kinds": [kind...], "index": [C(label)...],
                               "data": [[C(cell) per column] per row]}}``
``pd.Series`` (nested, or via  ``{"$ario:series": {"name": C(name), "kind": kind,
:func:`to_canonical`)          "index": [C(label)...], "data": [C(value)...]}}``
anything else                  ``FingerprintError`` naming the path and the type
                               (complex, timedelta, ``Decimal``, ``set``, objects ...)
=============================  ==========================================================

Why numpy arrays are plain nested lists, without dtype or shape tags: the reference's
output hash is ``C(y.tolist())`` and its hash of a 1-D float64 input equals that of the
list of its values; both must stay. A tagged array form could therefore only be used for
the remaining arrays, and whether an array's fingerprint records its dtype would depend
on its dtype and rank. Instead arrays follow one rule everywhere. Nothing about the values
is lost: floats are exact (float32 is widened exactly), bool stays distinct from int,
datetimes become ISO strings, the shape is the nesting (empty dimensions excepted). What is
not recorded is only what JCS already erases for lists: integral float vs int, and width.

Outputs are converted by the object's own ``tolist()`` first, exactly as the reference did;
so a datetime64[ns] output array hashes as numpy's integer nanoseconds, coarser units as
ISO strings. Column and index labels of a DataFrame or Series are ``C`` of their
``to_numpy()`` values (a MultiIndex label is the list of its levels).

``kind`` is the column's dtype reduced to a vocabulary that is stable across numpy and
pandas versions: ``bool``, ``int`` (signed or unsigned, numpy or nullable), ``float``,
``datetime`` (any unit, naive or aware), ``object`` (everything else: strings — pandas 2
calls them ``object``, pandas 3 ``str`` — categoricals, Python objects). Exact dtype
names are deliberately not hashed: the same data read by two pandas versions must keep
its fingerprint. Kinds still separate an integer column from an integral float column and
a datetime column from a column of ISO strings.

Known equalities (inherited from the reference, kept for compatibility)
-----------------------------------------------------------------------

* A dict input ``{"features": X}`` and a non-dict input ``X`` share a document.
* ``[1.0]`` and ``[1]`` (and a float array and an int array of integral values) hash
  equal: JCS renders both as ``1``. A list, a tuple and a numpy array of the same values
  hash equal; a top-level Series input or output hashes as the list of its values.
* A top-level ``str`` input hashes as the list of its characters and top-level ``bytes``
  as the list of its byte values, because the reference did ``list(input)``.
* Dicts are hashed by key (JCS sorts keys) but :func:`model_input` feeds the model their
  values in **insertion order**, so ``{"a": 1, "b": 2}`` and ``{"b": 2, "a": 1}`` hash
  equal although the model receives ``[[1, 2]]`` and ``[[2, 1]]``. The order is kept
  because changing it would change model behaviour for existing users.

Errors: an unsupported value raises :class:`FingerprintError` (a
:class:`~ario_mlflow.errors.CanonicalizationError`, hence a ``ValueError``) whose ``path``
locates it inside the value given. A string holding a lone surrogate, or nesting deeper
than the JCS bound, raises the corresponding ``CanonicalizationError`` from JCS itself.

This module is pure: no I/O, and numpy / pandas are never imported here (they are found
through ``sys.modules`` only when a value could be one of their types), so the proof kernel
imports without them.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import math
import sys
from collections.abc import Iterator, Mapping
from typing import Any, Literal

from ario_mlflow.errors import FingerprintError
from ario_mlflow.proof.canonical import canonical_json, encode_string, format_number
from ario_mlflow.proof.hashing import sha256_hex

__all__ = [
    "TAG_PREFIX",
    "FingerprintError",
    "Role",
    "fingerprint_bytes",
    "fingerprint_document",
    "input_fingerprint",
    "model_input",
    "output_fingerprint",
    "to_canonical",
]

#: Object keys starting with this prefix are reserved for the tagged encodings.
TAG_PREFIX = "$ario:"
_FLOAT_TAG = "$ario:float"
_BYTES_TAG = "$ario:bytes"
_FRAME_TAG = "$ario:dataframe"
_SERIES_TAG = "$ario:series"

Role = Literal["input", "output"]

#: Up to this many floats, finiteness is checked in Python (a numpy call costs ~1.5 µs).
_SMALL = 32

_KINDS = {"b": "bool", "i": "int", "u": "int", "f": "float", "M": "datetime"}


class _Fail(Exception):
    """Internal: carries the reason and the path segments (innermost first) outward."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.segments: list[str] = []


def _key_segment(key: Any) -> str:
    if isinstance(key, str):
        return f".{key}" if key.isidentifier() else f"[{json.dumps(key)}]"
    return f"[{key!r}]"


def _unsupported(value: Any) -> _Fail:
    kind = type(value)
    name = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"
    return _Fail(f"{name} has no canonical fingerprint form")


# --- the walker ------------------------------------------------------------------------


def _conv(value: Any) -> Any:
    """``C(value)``. Plain types are tested by exact type first: this is the hot path."""
    kind = type(value)
    if kind is float:
        return value if value - value == 0.0 else _non_finite(value)
    if kind is int or kind is str or kind is bool or value is None:
        return value
    if kind is list or kind is tuple:
        return _conv_seq(value)
    if kind is dict:
        return _conv_dict(value)
    return _conv_other(value)


def _non_finite(value: float) -> dict[str, str]:
    if math.isnan(value):
        return {_FLOAT_TAG: "NaN"}
    return {_FLOAT_TAG: "Infinity" if value > 0 else "-Infinity"}


def _conv_seq(items: Any) -> list[Any]:
    try:
        return [_conv(item) for item in items]
    except _Fail:
        for index, item in enumerate(items):  # error path only: find the index
            try:
                _conv(item)
            except _Fail as fail:
                fail.segments.append(f"[{index}]")
                raise fail from None
        raise


def _conv_dict(obj: Mapping[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for raw_key, item in obj.items():
        key = raw_key
        if type(key) is not str:
            if not isinstance(key, str):
                raise _Fail(f"object key {key!r} is a {type(key).__name__}, not a string")
            key = str.__str__(key)
        if key.startswith(TAG_PREFIX):
            fail = _Fail(f"object key {key!r} uses the reserved prefix {TAG_PREFIX!r}")
            fail.segments.append(_key_segment(key))
            raise fail
        try:
            out[key] = _conv(item)
        except _Fail as fail:
            fail.segments.append(_key_segment(key))
            raise
    return out


def _conv_other(value: Any) -> Any:
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(value, np.ndarray):
            return _conv_ndarray(value)
        if isinstance(value, np.generic):
            return _conv_numpy_scalar(value, np)
    pd = sys.modules.get("pandas")
    if pd is not None:
        if value is pd.NA or value is pd.NaT:
            return None
        if isinstance(value, pd.DataFrame):
            return {_FRAME_TAG: _frame_body(value)}
        if isinstance(value, pd.Series):
            return {_SERIES_TAG: _series_body(value)}
    if isinstance(value, int):  # int subclasses such as IntEnum (bool is final)
        return int(value)
    if isinstance(value, float):
        return _conv(float(value))
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, (bytes, bytearray)):
        return {_BYTES_TAG: base64.b64encode(value).decode("ascii")}
    if isinstance(value, dict):
        return _conv_dict(value)
    if isinstance(value, (list, tuple)):
        return _conv_seq(value)
    if isinstance(value, _dt.datetime):
        return _iso_datetime(value)
    if isinstance(value, _dt.date):
        return value.isoformat()
    raise _unsupported(value)


def _conv_numpy_scalar(value: Any, np: Any) -> Any:
    if isinstance(value, np.timedelta64):  # a numpy "signedinteger"; not a number here
        raise _unsupported(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating) and value.dtype.itemsize <= 8:
        return _conv(float(value))
    if isinstance(value, np.str_):
        return str.__str__(value)
    if isinstance(value, np.bytes_):
        return {_BYTES_TAG: base64.b64encode(value).decode("ascii")}
    if isinstance(value, np.datetime64):
        return _datetime64_strings(np.asarray(value), np)
    raise _unsupported(value)


def _conv_ndarray(array: Any) -> Any:
    np = sys.modules["numpy"]
    kind = array.dtype.kind
    if kind in "biu":
        return array.tolist()
    if kind == "f" and array.dtype.itemsize <= 8:
        values = array.tolist()
        if array.size <= _SMALL and array.ndim <= 2:  # cheaper than a numpy ufunc call
            rows = values if array.ndim == 2 else [values] if array.ndim == 1 else [[values]]
            finite = all(item - item == 0.0 for row in rows for item in row)
        else:
            finite = bool(np.isfinite(array).all())
        return values if finite else _conv(values)
    if kind == "M":
        return _datetime64_strings(array, np)
    if kind in "OUST":
        return _conv(array.tolist())
    raise _Fail(f"numpy array of dtype {array.dtype} has no canonical fingerprint form")


# --- datetimes -------------------------------------------------------------------------


def _format_offset(offset: _dt.timedelta) -> str:
    if offset.microseconds:
        raise _Fail(f"UTC offset {offset} has a sub-second part")
    seconds = offset.days * 86400 + offset.seconds
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{sign}{hours:02d}:{minutes:02d}"
    return f"{text}:{seconds:02d}" if seconds else text


def _iso_datetime(value: _dt.datetime, extra_nanos: int = 0) -> str:
    nanos = value.microsecond * 1000 + int(getattr(value, "nanosecond", 0)) + extra_nanos
    text = (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
        f"T{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    )
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    offset = value.utcoffset()
    return text if offset is None else text + _format_offset(offset)


def _datetime64_strings(array: Any, np: Any) -> Any:
    """ISO strings for a datetime64 array (or 0-d array) of any unit; NaT becomes None.

    Units down to nanoseconds go through Python ``datetime`` objects (a handful of numpy
    calls, whatever the size); finer units through numpy's own ISO formatter.
    """
    unit = np.datetime_data(array.dtype)[0]
    if unit in ("Y", "M", "W", "D", "h", "m", "generic"):
        array = array.astype("datetime64[s]")
        unit = "s"
    if unit not in ("s", "ms", "us", "ns"):
        return _fine_datetime64_strings(array, np)
    if unit == "ns":  # always within the years 1677..2262
        moments = array.astype("datetime64[us]").astype(object).reshape(-1).tolist()
        extras = (array.view("i8") % 1000).reshape(-1).tolist()
    else:
        moments = array.astype(object).reshape(-1).tolist()
        extras = [0] * len(moments)
    out: list[Any] = []
    for moment, extra in zip(moments, extras, strict=True):
        if moment is None:
            out.append(None)
        elif isinstance(moment, _dt.datetime):
            out.append(_iso_datetime(moment, extra))
        else:  # numpy returns an int for a moment Python's datetime cannot hold
            raise _Fail("datetime64 value outside the years 1..9999")
    return _reshape(out, array.shape, np)


def _fine_datetime64_strings(array: Any, np: Any) -> Any:
    """Picosecond and finer units: numpy's ISO text with trailing zeros trimmed."""
    missing = np.isnat(array).reshape(-1).tolist()
    out: list[Any] = []
    for text, is_missing in zip(
        np.datetime_as_string(array).reshape(-1).tolist(), missing, strict=True
    ):
        head, _, fraction = text.partition(".")
        fraction = fraction.rstrip("0")
        out.append(None if is_missing else f"{head}.{fraction}" if fraction else head)
    return _reshape(out, array.shape, np)


def _reshape(flat: list[Any], shape: tuple[int, ...], np: Any) -> Any:
    if len(shape) == 1:
        return flat
    holder = np.empty(len(flat), dtype=object)
    holder[:] = flat
    return holder.reshape(shape).tolist()


# --- pandas ----------------------------------------------------------------------------


def _kind(dtype: Any) -> str:
    return _KINDS.get(getattr(dtype, "kind", "O"), "object")


def _conv_column(values: Any) -> list[Any]:
    """One column's values (numpy array or pandas extension array) as a canonical list."""
    np = sys.modules["numpy"]
    if not isinstance(values, np.ndarray):
        dtype = values.dtype
        if getattr(dtype, "kind", "") == "M" and getattr(dtype, "tz", None) is None:
            values = values.to_numpy()  # naive datetimes: datetime64, no Timestamp boxing
        else:
            values = np.asarray(values, dtype=object)
    column: list[Any] = _conv_ndarray(values)
    return column


def _uniform_dtype(frame: Any) -> Any:
    """The one numpy dtype shared by every column, else None (private accessor, guarded)."""
    np = sys.modules["numpy"]
    manager = getattr(frame, "_mgr", None)
    blocks = getattr(manager, "blocks", None)
    if type(blocks) is tuple and len(blocks) == 1:  # one block holds every column: one dtype
        dtype = getattr(blocks[0], "dtype", None)
        if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
            return dtype
    get_dtypes = getattr(manager, "get_dtypes", None)
    if get_dtypes is None:
        return None  # pandas without the accessor: per-column path
    try:
        dtypes = list(get_dtypes())
    except Exception:  # changed private API: per-column path
        return None
    if len(dtypes) != frame.shape[1] or not dtypes:
        return None
    first = dtypes[0]
    if not isinstance(first, np.dtype) or first.kind not in "biuf":
        return None
    return first if all(dtype == first for dtype in dtypes) else None


def _column_arrays(frame: Any) -> list[Any]:
    # Private but long-standing pandas accessor: ~1 µs per column instead of ~30 µs for
    # ``frame.iloc[:, i]`` (pandas 3). Both give the same values, so the fallback (and a
    # future pandas without it) produces identical fingerprints; a test pins this.
    column_arrays = getattr(frame, "_iter_column_arrays", None)
    if column_arrays is not None:
        try:
            arrays = list(column_arrays())
        except Exception:  # changed private API: use the public path
            arrays = []
        if len(arrays) == frame.shape[1]:
            return arrays
    return _public_column_arrays(frame)


def _public_column_arrays(frame: Any) -> list[Any]:
    return [frame.iloc[:, position].array for position in range(frame.shape[1])]


def _labels(index: Any, name: str) -> list[Any]:
    """Index or column labels: ``to_numpy`` keeps datetimes as datetime64 (ISO strings)."""
    fast = _plain_labels(index)
    if fast is not None:
        return fast
    try:
        labels: list[Any] = _conv_ndarray(index.to_numpy())
    except _Fail as fail:
        fail.segments.append(f".{name}")
        raise
    return labels


def _plain_labels(index: Any) -> list[Any] | None:
    """The labels of a range index or an index of strings, without the numpy round trip
    (the usual case: ``RangeIndex`` rows, string columns); ``None`` for anything else."""
    pd = sys.modules["pandas"]
    if type(index) is pd.RangeIndex:
        return list(index)
    labels = _arrow_strings(index)  # pandas 3's usual column labels: no dtype checks
    if labels is None:
        if getattr(index.dtype, "kind", None) not in ("O", "U", "T") and not isinstance(
            index.dtype, pd.StringDtype
        ):
            return None
        labels = index.tolist()
    return labels if all(type(label) is str for label in labels) else None


def _arrow_strings(index: Any) -> list[Any] | None:
    """The labels of an Arrow-backed string index (pandas 3's default for column names),
    read from the Arrow array: ~1 µs instead of ~10 µs for ``Index.tolist``. Private
    accessor, guarded; ``None`` sends the caller to the public path (same labels)."""
    arrow = getattr(getattr(index, "_values", None), "_pa_array", None)
    to_pylist = getattr(arrow, "to_pylist", None)
    if to_pylist is None:
        return None
    try:
        labels = to_pylist()
    except Exception:  # changed private API: public path
        return None
    return labels if isinstance(labels, list) and len(labels) == len(index) else None


def _vector_text(value: Any) -> str | None:
    """JCS text of ``C(y.tolist())`` for a 1-D int or finite float numpy array (a model's
    usual output), written directly; else ``None``."""
    np = sys.modules.get("numpy")
    if np is None or type(value) is not np.ndarray or value.ndim != 1:
        return None
    kind, items = value.dtype.kind, value.tolist()
    if kind in "iu":
        return "[" + ",".join([str(item) for item in items]) + "]"
    if kind != "f" or value.dtype.itemsize > 8 or not all(x - x == 0.0 for x in items):
        return None
    return "[" + ",".join([format_number(item) for item in items]) + "]"


def _frame_text(frame: Any) -> str | None:
    """JCS text of ``C(frame)`` for the common input, written directly; else ``None``.

    The common input is a frame whose columns all share one int or float numpy dtype,
    with string column labels, a range or integer row index and finite values. This is
    the prediction hot path's usual input; the generic walk produces the same bytes (a
    test compares them) at several times the cost.
    """
    pd = sys.modules["pandas"]
    dtype = _uniform_dtype(frame)
    if dtype is None or dtype.kind not in "iuf" or dtype.itemsize > 8:
        return None
    np = sys.modules["numpy"]
    labels = _plain_labels(frame.columns)  # strings, or the ints of a RangeIndex
    index = frame.index
    if labels is None or not (
        type(index) is pd.RangeIndex
        or (isinstance(index.dtype, np.dtype) and index.dtype.kind in "iu")  # no NA
    ):
        return None
    rows = frame.values  # one numeric dtype: the rows as they are, nothing converted
    if rows.dtype != dtype:
        return None
    values = rows.tolist()
    if dtype.kind == "f":
        cells = [[format_number(x) if x - x == 0.0 else "" for x in row] for row in values]
        if any("" in row for row in cells):
            return None  # NaN or an infinity: tagged values, the generic walk spells them
    else:
        cells = [[str(x) for x in row] for row in values]
    columns = ",".join([encode_string(x) if type(x) is str else str(x) for x in labels])
    data = ",".join(["[" + ",".join(row) + "]" for row in cells])
    rows_index = ",".join([str(label) for label in index.tolist()])
    kind = encode_string(_kind(dtype))
    kinds = ",".join([kind] * len(labels))
    return f'{{"columns":[{columns}],"data":[{data}],"index":[{rows_index}],"kinds":[{kinds}]}}'


def _frame_body(frame: Any) -> dict[str, Any]:
    labels = _labels(frame.columns, "columns")
    index = _labels(frame.index, "index")
    dtype = _uniform_dtype(frame)
    if dtype is not None:
        # Every column has the same numeric numpy dtype, so ``to_numpy`` does not convert
        # anything and already holds the rows.
        matrix = frame.to_numpy()
        if matrix.dtype == dtype:
            return {
                "columns": labels,
                "kinds": [_kind(dtype)] * len(labels),
                "index": index,
                "data": _conv_ndarray(matrix),
            }
    arrays = _column_arrays(frame)
    data_columns = []
    for label, values in zip(labels, arrays, strict=True):
        try:
            data_columns.append(_conv_column(values))
        except _Fail as fail:
            fail.segments.append(_key_segment(label))
            raise
    rows = [list(row) for row in zip(*data_columns, strict=True)]
    if not data_columns:
        rows = [[] for _ in index]
    return {
        "columns": labels,
        "kinds": [_kind(values.dtype) for values in arrays],
        "index": index,
        "data": rows,
    }


def _series_body(series: Any) -> dict[str, Any]:
    try:
        name = _conv(series.name)
    except _Fail as fail:
        fail.segments.append(".name")
        raise
    return {
        "name": name,
        "kind": _kind(series.dtype),
        "index": _labels(series.index, "index"),
        "data": _conv_column(series.array),
    }


# --- public API ------------------------------------------------------------------------


def _run(function: Any, value: Any) -> Any:
    try:
        return function(value)
    except _Fail as fail:
        path = "$" + "".join(reversed(fail.segments))
        raise FingerprintError(fail.reason, path=path) from None
    except RecursionError:
        raise FingerprintError("value is nested too deeply or is cyclic") from None


def to_canonical(value: Any) -> Any:
    """``C(value)``: ``value`` as plain JSON types, by the rules of the module docstring.

    The result always canonicalizes with :func:`canonical_json` (strings permitting).
    Raises :class:`FingerprintError` naming the path and type of an unsupported value.
    """
    return _run(_conv, value)


def _is_dataframe(value: Any) -> bool:
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(value, pd.DataFrame)


def _input_document(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return _conv_dict(value)
    kind = type(value)
    if kind is list or kind is tuple:
        return {"features": _conv_seq(value)}
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.ndarray):
        # C(array) == [C(row) for row in array] for ndim >= 1, and C(scalar) for 0-d
        # (the reference raised on 0-d arrays).
        return {"features": _conv_ndarray(value)}
    if _is_dataframe(value):
        return {"features": _conv_other(value)}
    if isinstance(value, Mapping):
        raise _Fail(f"{type(value).__name__} is a mapping but not a dict")
    if isinstance(value, (set, frozenset)):
        raise _Fail(f"{type(value).__name__} has no canonical order")
    if isinstance(value, Iterator):
        raise _Fail(f"{type(value).__name__} is a one-shot iterator; pass a list or array")
    if hasattr(type(value), "__iter__"):
        return {"features": _conv_seq(value)}
    return {"features": _conv(value)}


def _output_document(value: Any) -> dict[str, Any]:
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        value = tolist()
    return {"prediction": _conv(value)}


def fingerprint_document(value: Any, role: Role) -> dict[str, Any]:
    """The JSON-able document whose JCS bytes are hashed for ``value`` in ``role``."""
    if role == "input":
        document: dict[str, Any] = _run(_input_document, value)
    elif role == "output":
        document = _run(_output_document, value)
    else:
        raise ValueError(f"role must be 'input' or 'output', not {role!r}")
    return document


def fingerprint_bytes(value: Any, role: Role) -> bytes:
    """The exact canonical bytes that are hashed (for auditors and tests).

    Raises :class:`FingerprintError` for unsupported values; other
    :class:`~ario_mlflow.errors.CanonicalizationError` subclasses (lone surrogates,
    nesting deeper than the JCS bound) come from :func:`canonical_json` and name the path
    inside the document.
    """
    if role == "output":
        text = _vector_text(value)
        if text is not None:
            return f'{{"prediction":{text}}}'.encode()
    elif role == "input" and _is_dataframe(value):
        text = _frame_text(value)
        if text is not None:
            try:
                return f'{{"features":{{"{_FRAME_TAG}":{text}}}}}'.encode()
            except UnicodeEncodeError:
                pass  # a lone surrogate in a label: the generic path names it
    return canonical_json(fingerprint_document(value, role))


def input_fingerprint(value: Any) -> str:
    """``input_hash`` of a prediction: hex SHA-256 of the canonical input document."""
    return sha256_hex(fingerprint_bytes(value, "input"))


def output_fingerprint(value: Any) -> str:
    """``output_hash`` of a prediction: hex SHA-256 of the canonical output document."""
    return sha256_hex(fingerprint_bytes(value, "output"))


def model_input(value: Any) -> Any:
    """Shape a prediction input the way the reference did before calling the model.

    A dict becomes a 2-D numpy array of its values in **insertion order**
    (``[[v1, v2, ...]]``); a list or tuple becomes ``np.array([value])``; anything else is
    passed unchanged. Note that the fingerprint of a dict does not depend on its key order
    while the model does; the insertion order is kept because changing it would change
    the behaviour of existing models.
    """
    if isinstance(value, dict):
        import numpy as np

        return np.array([list(value.values())])
    if isinstance(value, (list, tuple)):
        import numpy as np

        return np.array([value])
    return value
