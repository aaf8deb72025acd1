"""Shared Hypothesis settings and strategies of the fuzz suite.

Every fuzz test is derandomized (the same examples on every run, so CI is reproducible)
and has no deadline (a slow CI machine must not turn into a flaky failure). Set
``ARIO_MLFLOW_FUZZ_SCALE`` (e.g. ``10``) to multiply every example budget for a longer,
still deterministic, local run; ``ARIO_MLFLOW_FUZZ_RANDOM=1`` draws fresh examples.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

_SCALE = max(1.0, float(os.environ.get("ARIO_MLFLOW_FUZZ_SCALE", "1") or 1))
_RANDOM = os.environ.get("ARIO_MLFLOW_FUZZ_RANDOM", "") not in ("", "0")


def fuzz_settings(max_examples: int, *, fixtures_are_per_test: bool = False) -> settings:
    """Settings of one fuzz test: ``max_examples`` (times the scale), deterministic.

    ``fixtures_are_per_test``: the test uses function-scoped fixtures (``monkeypatch``)
    only for set-up that every example may share, so Hypothesis need not warn.
    """
    suppressed = [HealthCheck.too_slow, HealthCheck.data_too_large]
    if fixtures_are_per_test:
        suppressed.append(HealthCheck.function_scoped_fixture)
    return settings(
        max_examples=int(max_examples * _SCALE),
        deadline=None,
        derandomize=not _RANDOM,
        database=None,
        suppress_health_check=suppressed,
    )


T = TypeVar("T")
E = TypeVar("E", bound=BaseException)


def outcome_of(call: Callable[[], T], allowed: type[E]) -> tuple[T | None, E | None]:
    """``(value, None)``, or ``(None, error)`` if ``call`` raised the ``allowed`` type.

    Any other exception propagates and fails the test: that is the property under test.
    """
    try:
        return call(), None
    except allowed as error:
        return None, error


# --- JSON values ------------------------------------------------------------------------

#: Any string, including lone surrogates and control characters.
any_text = st.text(max_size=24)
#: Finite and non-finite floats, huge and small ints, bools, None.
json_scalars: st.SearchStrategy[Any] = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | any_text
)


#: Nested JSON-ish values (lists, dicts with string keys, tuples) of bounded size. Built
#: once: a recursive strategy is validated on first use, which is slow to repeat per draw.
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=12,
)


#: Strictly JSON-serializable values (what ``json.dumps`` can write back to a file).
plain_json: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"]), max_size=24),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(st.characters(exclude_categories=["Cs"]), max_size=8), children)
    ),
    max_leaves=10,
)

#: Python values that are not JSON at all (sets, bytes, objects, non-string keys).
#: Built afresh per draw: a mutation must never edit an object shared between examples.
non_json = st.sampled_from(
    [
        lambda: b"bytes",
        lambda: {1, 2},
        object,
        lambda: {1: "int key"},
        lambda: {("t",): 1},
        lambda: 1j,
        frozenset,
        lambda: Ellipsis,
    ]
).map(lambda make: make())


#: A lowercase hex string of a given byte length (keys, signatures, hashes).
def hex_of(size: int) -> st.SearchStrategy[str]:
    """Lowercase hex of exactly ``size`` random bytes."""
    return st.binary(min_size=size, max_size=size).map(bytes.hex)


# --- byte mutations -----------------------------------------------------------------------


@st.composite
def mutated_bytes(draw: st.DrawFn, original: bytes, max_steps: int = 4) -> bytes:
    """``original`` after 1..``max_steps`` edits: bit flips, byte sets, inserts, deletes,
    truncation and extension. May (rarely) equal ``original``; callers must allow that."""
    raw = bytearray(original)
    for _ in range(draw(st.integers(1, max_steps))):
        kind = draw(
            st.sampled_from(["flip", "set", "insert", "delete", "truncate", "extend", "swap"])
        )
        position = draw(st.integers(0, max(len(raw) - 1, 0)))
        if kind == "flip" and raw:
            raw[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and raw:
            raw[position] = draw(st.integers(0, 255))
        elif kind == "insert":
            raw[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and raw:
            del raw[position : position + draw(st.integers(1, 8))]
        elif kind == "truncate":
            del raw[position:]
        elif kind == "extend":
            raw += draw(st.binary(min_size=1, max_size=64))
        elif kind == "swap" and len(raw) > 1:
            other = draw(st.integers(0, len(raw) - 1))
            raw[position], raw[other] = raw[other], raw[position]
    return bytes(raw)


# --- structural mutations of JSON objects ----------------------------------------------------


@st.composite
def mutated_object(
    draw: st.DrawFn,
    original: dict[str, Any],
    extra_keys: tuple[str, ...] = (),
    max_steps: int = 3,
) -> dict[str, Any]:
    """A copy of ``original`` with 1..``max_steps`` structural edits: a field replaced by
    a random value (of any type), a key deleted, a key added, a nested field replaced, a
    string field with one character changed, or keys renamed by case."""
    value: dict[str, Any] = _deep_copy(original)
    for _ in range(draw(st.integers(1, max_steps))):
        keys = sorted(value)
        kind = draw(st.sampled_from(["replace", "delete", "add", "nested", "tweak", "case"]))
        if kind == "replace" and keys:
            value[draw(st.sampled_from(keys))] = draw(json_values | non_json)
        elif kind == "delete" and keys:
            del value[draw(st.sampled_from(keys))]
        elif kind == "add":
            name = draw(st.sampled_from(extra_keys) | any_text) if extra_keys else draw(any_text)
            value[name] = draw(json_values)
        elif kind == "nested":
            nested = [
                k
                for k in keys
                if isinstance(value[k], dict) and value[k] and all(type(n) is str for n in value[k])
            ]
            if nested:
                inner = value[draw(st.sampled_from(nested))]
                inner[draw(st.sampled_from(sorted(inner)) | any_text)] = draw(json_values)
        elif kind == "tweak":
            texts = [k for k in keys if isinstance(value[k], str) and value[k]]
            if texts:
                key = draw(st.sampled_from(texts))
                text = value[key]
                index = draw(st.integers(0, len(text) - 1))
                value[key] = text[:index] + draw(st.characters()) + text[index + 1 :]
        elif kind == "case" and keys:
            key = draw(st.sampled_from(keys))
            value[key.upper() if key != key.upper() else key + "_"] = value.pop(key)
    return value


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value
