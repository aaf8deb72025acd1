"""RFC 8785 (JCS) canonical JSON, written for speed and for precise errors.

The serializer is a single recursive pass. It does not track where it is (that would cost
on every call); when it meets a value it cannot encode it stops, and a second, slow walk
finds the offending value and raises a typed error naming its path (``$.metrics.loss``).

Rules (RFC 8785 / ECMA-262): UTF-8 output with non-ASCII characters raw; object keys
sorted by UTF-16 code units; no whitespace; strings escaped exactly as JSON requires
(short escapes where defined, ``\\u00xx`` for other control characters); numbers as
ECMA-262 ``Number.prototype.toString``; Python ints as exact decimal digits (as the
reference's canonicalizer does); NaN, Infinity and unpaired surrogates rejected.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable
from typing import Any, cast

from ario_mlflow.errors import (
    CanonicalDepthError,
    CanonicalizationError,
    LoneSurrogateError,
    NonFiniteNumberError,
    UnsupportedTypeError,
)

#: Containers may nest this deep (the root container is depth 1).
MAX_DEPTH = 128

#: JSON string literal of a ``str``, escaped as JCS requires (non-ASCII kept raw).
encode_string = cast(
    Callable[[str], str],
    getattr(json.encoder, "c_encode_basestring", None) or json.encoder.py_encode_basestring,
)


class _Stop(Exception):
    """Internal: the fast serializer met a value it cannot encode."""


def format_number(value: float) -> str:
    """Format a finite float as ECMA-262 ``Number.prototype.toString`` does."""
    if value == 0:
        return "0"
    text = repr(value)
    if "e" not in text:  # positional: the same shortest digits as ECMAScript, "1.0" → "1"
        return text[:-2] if text.endswith(".0") else text
    if value < 0:
        return "-" + format_number(-value)
    mantissa, _, exponent = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    point = len(whole) + (int(exponent) if exponent else 0)
    stripped = digits.lstrip("0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip("0")
    count = len(digits)
    if count <= point <= 21:
        return digits + "0" * (point - count)
    if 0 < point <= 21:
        return f"{digits[:point]}.{digits[point:]}"
    if -6 < point <= 0:
        return "0." + "0" * -point + digits
    power = point - 1
    sign = "+" if power >= 0 else "-"
    head = digits if count == 1 else f"{digits[0]}.{digits[1:]}"
    return f"{head}e{sign}{abs(power)}"


def _utf16_order(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _sorted_keys(obj: dict[Any, Any]) -> list[Any]:
    for key in obj:
        if type(key) is not str:
            raise _Stop
    keys = sorted(obj)
    # Code-point order equals UTF-16 order unless a key holds a character beyond U+FFFF.
    if not all(key.isascii() for key in keys):
        keys.sort(key=_utf16_order)
    return keys


def _serialize(value: Any, out: list[str], depth: int) -> None:
    kind = type(value)
    if kind is str:
        out.append(encode_string(value))
    elif kind is dict:
        if depth >= MAX_DEPTH:
            raise _Stop
        out.append("{")
        first = True
        for key in _sorted_keys(value):
            if not first:
                out.append(",")
            first = False
            out.append(encode_string(key))
            out.append(":")
            _serialize(value[key], out, depth + 1)
        out.append("}")
    elif kind is list or kind is tuple:
        if depth >= MAX_DEPTH:
            raise _Stop
        out.append("[")
        first = True
        for item in value:
            if not first:
                out.append(",")
            first = False
            _serialize(item, out, depth + 1)
        out.append("]")
    elif kind is bool:
        out.append("true" if value else "false")
    elif kind is int:
        out.append(str(value))
    elif kind is float:
        if not math.isfinite(value):
            raise _Stop
        out.append(format_number(value))
    elif value is None:
        out.append("null")
    else:
        _serialize(_as_plain(value), out, depth)


_PLAIN_TYPES: tuple[Any, ...] = (str, int, float, dict, list, tuple)


def _as_plain(value: Any) -> Any:
    """The plain JSON value behind a subclass or scalar (``numpy.int64``, ``OrderedDict``)."""
    if isinstance(value, bool):
        return bool(value)
    for plain in _PLAIN_TYPES:
        if isinstance(value, plain):
            return plain(value)
    if isinstance(value, numbers.Integral):  # numpy.int64 and friends
        return int(value)
    if isinstance(value, numbers.Real):  # numpy.float32 and friends
        return float(value)
    raise _Stop


def _locate_problem(value: Any, path: str, depth: int) -> None:
    """Slow walk that raises the typed error for the first unencodable value."""
    try:
        value = value if value is None else _as_plain(value)
    except _Stop:
        raise UnsupportedTypeError(
            f"{type(value).__name__} is not a JSON type", path=path
        ) from None
    kind = type(value)
    if kind is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise LoneSurrogateError(
                "string holds an unpaired UTF-16 surrogate", path=path
            ) from None
        return
    if kind is dict or kind is list or kind is tuple:
        if depth >= MAX_DEPTH:
            raise CanonicalDepthError(f"containers nest deeper than {MAX_DEPTH} levels", path=path)
        if kind is dict:
            for key, item in value.items():
                if type(key) is not str:
                    raise UnsupportedTypeError(
                        f"object key {key!r} is a {type(key).__name__}, not a string", path=path
                    )
                key_path = f"{path}.{key}" if key.isidentifier() else f"{path}[{json.dumps(key)}]"
                try:
                    key.encode("utf-8")
                except UnicodeEncodeError:
                    raise LoneSurrogateError(
                        "object key holds an unpaired UTF-16 surrogate", path=key_path
                    ) from None
                _locate_problem(item, key_path, depth + 1)
        else:
            for index, item in enumerate(value):
                _locate_problem(item, f"{path}[{index}]", depth + 1)
        return
    if kind is float and not math.isfinite(value):
        raise NonFiniteNumberError(f"{value!r} has no JSON representation", path=path)
    if kind is int:
        try:
            str(value)
        except ValueError as exc:
            raise UnsupportedTypeError(f"integer too large to print: {exc}", path=path) from None
        return


def canonical_json(value: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of ``value``.

    Raises a :class:`~ario_mlflow.errors.CanonicalizationError` subclass naming the path
    of the first value that has no canonical form.
    """
    out: list[str] = []
    try:
        _serialize(value, out, 0)
        return "".join(out).encode("utf-8")
    except (_Stop, UnicodeEncodeError, RecursionError, ValueError):
        _locate_problem(value, "$", 0)
        raise CanonicalizationError("value cannot be canonicalized") from None


def normalize_floats(value: Any, precision: int = 6) -> Any:
    """Round every float in ``value`` to ``precision`` digits (tuples become lists).

    Producers apply this to training metrics only; verifiers never apply it.
    """
    kind = type(value)
    if kind is float:
        return round(value, precision)
    if kind is dict:
        return {key: normalize_floats(item, precision) for key, item in value.items()}
    if kind is list or kind is tuple:
        return [normalize_floats(item, precision) for item in value]
    return value
