"""RFC 8785 canonical JSON: bytes, number formatting, key order, typed errors."""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from ario_mlflow.errors import (
    CanonicalDepthError,
    CanonicalizationError,
    LoneSurrogateError,
    NonFiniteNumberError,
    UnsupportedTypeError,
)
from ario_mlflow.proof.canonical import MAX_DEPTH, canonical_json, format_number, normalize_floats


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (333333333.33333329, "333333333.3333333"),
        (1e30, "1e+30"),
        (4.50, "4.5"),
        (2e-3, "0.002"),
        (5.0, "5"),
        (-0.0, "0"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-6, "0.000001"),
        (1e-7, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (123456789012345680000.0, "123456789012345680000"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (-1.25, "-1.25"),
        (0.1, "0.1"),
        (100.0, "100"),
    ],
)
def test_numbers_follow_ecma262(value: float, expected: str) -> None:
    assert format_number(value) == expected
    assert canonical_json(value) == expected.encode()


# RFC 8785 Appendix B: IEEE-754 bit patterns and their canonical text.
@pytest.mark.parametrize(
    ("bits", "expected"),
    [
        ("0000000000000000", "0"),
        ("8000000000000000", "0"),
        ("0000000000000001", "5e-324"),
        ("8000000000000001", "-5e-324"),
        ("7fefffffffffffff", "1.7976931348623157e+308"),
        ("ffefffffffffffff", "-1.7976931348623157e+308"),
        ("4340000000000000", "9007199254740992"),
        ("c340000000000000", "-9007199254740992"),
        ("4430000000000000", "295147905179352830000"),
        ("44b52d02c7e14af5", "9.999999999999997e+22"),
        ("44b52d02c7e14af6", "1e+23"),
        ("44b52d02c7e14af7", "1.0000000000000001e+23"),
        ("444b1ae4d6e2ef4e", "999999999999999700000"),
        ("444b1ae4d6e2ef4f", "999999999999999900000"),
        ("444b1ae4d6e2ef50", "1e+21"),
        ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
        ("3eb0c6f7a0b5ed8d", "0.000001"),
        ("41b3de4355555553", "333333333.3333332"),
        ("41b3de4355555554", "333333333.33333325"),
        ("41b3de4355555555", "333333333.3333333"),
        ("41b3de4355555556", "333333333.3333334"),
        ("41b3de4355555557", "333333333.33333343"),
        ("becbf647612f3696", "-0.0000033333333333333333"),
        ("43143ff3c1cb0959", "1424953923781206.2"),
    ],
)
def test_rfc8785_appendix_b_numbers(bits: str, expected: str) -> None:
    value = float(np.frombuffer(bytes.fromhex(bits)[::-1], dtype="<f8")[0])
    assert format_number(value) == expected


def test_rfc8785_structure_example() -> None:
    value = {
        "numbers": [333333333.33333329, 1e30, 4.50, 2e-3, 0.000000000000000000000000001],
        "string": '€$\u000f\nA\'B"\\\\"/',
        "literals": [None, True, False],
    }
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical_json(value) == expected.encode("utf-8")


def test_keys_sort_by_utf16_code_units() -> None:
    # RFC 8785 §3.2.3 sorting example: code-point order would put U+1F600 last.
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    keys = list(value)
    out = canonical_json(value).decode("utf-8")
    positions = [out.index('"' + k.replace("\r", "\\r") + '"') for k in keys]
    order = [k for _, k in sorted(zip(positions, keys, strict=True))]
    assert order == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_non_ascii_is_raw_utf8_and_controls_are_escaped() -> None:
    assert canonical_json({"k": "é\u0001\u001f\u007f"}) == '{"k":"é\\u0001\\u001f\u007f"}'.encode()


def test_ints_are_exact_and_bools_are_not_ints() -> None:
    assert canonical_json([2**64, -(2**70), True, False, 0]) == (
        b"[18446744073709551616,-1180591620717411303424,true,false,0]"
    )


def test_subclasses_of_json_types_are_accepted() -> None:
    value = OrderedDict([("b", np.float64(0.5)), ("a", np.int64(3))])
    assert canonical_json(value) == b'{"a":3,"b":0.5}'
    assert canonical_json((1, 2)) == b"[1,2]"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_name_their_path(bad: float) -> None:
    with pytest.raises(NonFiniteNumberError) as info:
        canonical_json({"metrics": {"loss": bad}})
    assert info.value.path == "$.metrics.loss"
    assert "$.metrics.loss" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_lone_surrogate_in_value_and_key() -> None:
    with pytest.raises(LoneSurrogateError) as info:
        canonical_json({"a": ["ok", "x\ud800"]})
    assert info.value.path == "$.a[1]"
    with pytest.raises(LoneSurrogateError) as info:
        canonical_json({"bad\udfff": 1})
    assert "bad" in info.value.path


def test_depth_bound() -> None:
    ok: object = []
    for _ in range(MAX_DEPTH - 1):
        ok = [ok]
    canonical_json(ok)  # exactly MAX_DEPTH containers
    with pytest.raises(CanonicalDepthError) as info:
        canonical_json([ok])
    assert info.value.path.startswith("$[0][0]")


def test_very_deep_input_is_a_typed_error_not_a_recursion_crash() -> None:
    deep: object = {}
    for _ in range(5000):
        deep = {"k": deep}
    with pytest.raises(CanonicalDepthError):
        canonical_json(deep)


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({1: "int key"}, "$"),
        ({"a": {1, 2}}, "$.a"),
        ({"a": [b"bytes"]}, "$.a[0]"),
        ({"weird key": object()}, '$["weird key"]'),
    ],
)
def test_unsupported_types_name_their_path(value: object, path: str) -> None:
    with pytest.raises(UnsupportedTypeError) as info:
        canonical_json(value)
    assert info.value.path == path
    assert isinstance(info.value, CanonicalizationError)


def test_normalize_floats() -> None:
    value = {"a": 0.1234567, "b": [1.0000004, (2.5, "x")], "c": 7, "d": True, "e": None}
    assert normalize_floats(value) == {
        "a": 0.123457,
        "b": [1.0, [2.5, "x"]],
        "c": 7,
        "d": True,
        "e": None,
    }
    assert normalize_floats({"x": 0.123456789}, precision=2) == {"x": 0.12}
    # The canonicalizer itself never rounds.
    assert canonical_json(0.1234567) == b"0.1234567"


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=30,
)


@given(json_values)
def test_matches_independent_rfc8785_implementation(value: object) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


@given(json_values)
def test_round_trips_through_a_json_parser(value: object) -> None:
    import json

    once = canonical_json(value)
    assert canonical_json(json.loads(once)) == once


@given(st.dictionaries(st.text(), json_scalars, max_size=8), st.randoms())
def test_key_insertion_order_does_not_matter(value: dict[str, object], rnd: object) -> None:
    items = list(value.items())
    rnd.shuffle(items)  # type: ignore[attr-defined]
    assert canonical_json(dict(items)) == canonical_json(value)
