"""Prediction input/output fingerprints: reference vectors, canonical forms, typed errors."""

from __future__ import annotations

import collections
import copy
import datetime as dt
import decimal
import enum
import json
import math
import subprocess
import sys
import types
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ario_mlflow.errors import CanonicalizationError, LoneSurrogateError
from ario_mlflow.proof import fingerprint as fp
from ario_mlflow.proof.canonical import canonical_json
from ario_mlflow.proof.fingerprint import (
    FingerprintError,
    fingerprint_bytes,
    fingerprint_document,
    input_fingerprint,
    model_input,
    output_fingerprint,
    to_canonical,
)
from ario_mlflow.proof.hashing import sha256_hex

REFERENCE_INPUT = [78000, 0.18, 0.22, 72, 745]
REFERENCE_INPUT_HASH = "f985913dd680572d6ba3c6c34df1b35fe0f407900e64d2ee320f858d38d6c523"
REFERENCE_OUTPUT_HASH = "1eee05979bc26e5bc80028d7b598a5ed9e69af39e95bca31376655e31f6d8d1f"


def _reference_input_bytes(value: Any) -> bytes:
    """What the reference hashed: the dict itself, else ``{"features": list(x)}``."""
    if isinstance(value, dict):
        return canonical_json(value)
    if hasattr(value, "__iter__"):
        return canonical_json({"features": list(value)})
    return canonical_json({"features": value})


def _reference_output_bytes(value: Any) -> bytes:
    tolist = getattr(value, "tolist", None)
    return canonical_json({"prediction": tolist() if callable(tolist) else value})


# --- reference compatibility -----------------------------------------------------------


def test_reference_input_vector() -> None:
    assert fingerprint_bytes(REFERENCE_INPUT, "input") == b'{"features":[78000,0.18,0.22,72,745]}'
    assert input_fingerprint(REFERENCE_INPUT) == REFERENCE_INPUT_HASH
    assert input_fingerprint(tuple(REFERENCE_INPUT)) == REFERENCE_INPUT_HASH


def test_reference_dict_vector_hashes_the_dict_itself() -> None:
    assert fingerprint_bytes({"f1": 1.0, "f2": 2.0}, "input") == b'{"f1":1,"f2":2}'
    assert input_fingerprint({"f1": 1.0, "f2": 2.0}) == sha256_hex(b'{"f1":1,"f2":2}')


def test_reference_output_vector_for_list_and_numpy() -> None:
    assert output_fingerprint([1]) == REFERENCE_OUTPUT_HASH
    assert output_fingerprint(np.array([1])) == REFERENCE_OUTPUT_HASH
    assert output_fingerprint(np.array([1], dtype=np.int8)) == REFERENCE_OUTPUT_HASH
    assert output_fingerprint(np.array([1.0])) == REFERENCE_OUTPUT_HASH
    assert output_fingerprint(pd.Series([1])) == REFERENCE_OUTPUT_HASH


def test_float64_array_input_matches_the_reference() -> None:
    # list(float64 array) gave numpy.float64 items, a float subclass the reference hashed.
    array = np.array(REFERENCE_INPUT, dtype=np.float64)
    assert input_fingerprint(array) == REFERENCE_INPUT_HASH
    assert _reference_input_bytes(array) == fingerprint_bytes(array, "input")


def test_series_input_and_output_match_the_reference() -> None:
    series = pd.Series([0.5, 2.0, 3.25], name="score")
    assert fingerprint_bytes(series, "input") == _reference_input_bytes(series)
    assert fingerprint_bytes(series, "output") == _reference_output_bytes(series)
    assert input_fingerprint(series) == input_fingerprint([0.5, 2.0, 3.25])


def test_scalars_and_strings_match_the_reference() -> None:
    for value in (None, 3, 2.5, True, np.float64(0.25)):
        assert fingerprint_bytes(value, "input") == _reference_input_bytes(value)
    # The reference did list(input): a str is its characters, bytes its byte values.
    assert fingerprint_bytes("ab", "input") == b'{"features":["a","b"]}'
    assert fingerprint_bytes(b"ab", "input") == b'{"features":[97,98]}'
    assert fingerprint_bytes("ab", "output") == b'{"prediction":"ab"}'


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_keys = st.text(max_size=8).filter(lambda key: not key.startswith(fp.TAG_PREFIX))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(json_keys, inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_plain_json_values_hash_exactly_as_the_reference(value: Any) -> None:
    assert fingerprint_bytes(value, "input") == _reference_input_bytes(value)
    assert fingerprint_bytes(value, "output") == _reference_output_bytes(value)


def test_fingerprints_are_sha256_of_the_published_bytes() -> None:
    value = {"b": [1, 2.5], "a": "x"}
    assert fingerprint_document(value, "input") == {"a": "x", "b": [1, 2.5]}
    assert input_fingerprint(value) == sha256_hex(fingerprint_bytes(value, "input"))
    assert output_fingerprint(value) == sha256_hex(fingerprint_bytes(value, "output"))
    assert fingerprint_bytes(value, "output") == b'{"prediction":{"a":"x","b":[1,2.5]}}'


def test_unknown_role_is_rejected() -> None:
    with pytest.raises(ValueError, match="role"):
        fingerprint_bytes([1], "decision")  # type: ignore[arg-type]


# --- dicts -----------------------------------------------------------------------------


def test_dict_key_order_does_not_matter() -> None:
    assert input_fingerprint({"a": 1, "b": {"x": 1, "y": 2}}) == input_fingerprint(
        {"b": {"y": 2, "x": 1}, "a": 1}
    )


@given(st.dictionaries(json_keys, json_values, max_size=6), st.randoms())
def test_equal_data_built_in_different_key_orders_hash_equal(
    value: dict[str, Any], rnd: Any
) -> None:
    def shuffled(obj: Any) -> Any:
        if isinstance(obj, dict):
            items = list(obj.items())
            rnd.shuffle(items)
            return {key: shuffled(item) for key, item in items}
        if isinstance(obj, list):
            return [shuffled(item) for item in obj]
        return obj

    other = shuffled(value)
    assert input_fingerprint(other) == input_fingerprint(value)
    assert output_fingerprint(other) == output_fingerprint(value)


def test_dict_subclasses_and_str_subclass_keys_are_plain_dicts() -> None:
    class Key(str, enum.Enum):
        A = "a"

    assert fingerprint_bytes({Key.A: 1}, "input") == b'{"a":1}'
    assert input_fingerprint(collections.OrderedDict(b=2, a=1)) == input_fingerprint(
        {"a": 1, "b": 2}
    )


def test_reserved_tag_keys_in_user_data_are_rejected() -> None:
    with pytest.raises(FingerprintError) as caught:
        to_canonical({"x": [{"$ario:float": "NaN"}]})
    assert caught.value.path == '$.x[0]["$ario:float"]'
    with pytest.raises(FingerprintError):
        input_fingerprint({"$ario:bytes": "AA=="})


def test_non_string_keys_are_rejected_naming_the_path() -> None:
    with pytest.raises(FingerprintError, match="not a string") as caught:
        to_canonical({"outer": {1: "x"}})
    assert caught.value.path == "$.outer"


# --- non-finite floats, bool vs int, bytes, scalars ------------------------------------


def test_non_finite_numbers_fingerprint_and_differ() -> None:
    values = [float("nan"), float("inf"), float("-inf")]
    hashes = {input_fingerprint([value]) for value in values}
    hashes |= {input_fingerprint([None]), input_fingerprint(["NaN"]), input_fingerprint([0])}
    assert len(hashes) == 6
    assert fingerprint_bytes([1.5, float("nan"), -math.inf], "input") == (
        b'{"features":[1.5,{"$ario:float":"NaN"},{"$ario:float":"-Infinity"}]}'
    )
    assert fingerprint_bytes(float("inf"), "output") == b'{"prediction":{"$ario:float":"Infinity"}}'


def test_non_finite_numpy_values_match_python_floats() -> None:
    python = [1.0, float("nan"), float("inf")]
    assert input_fingerprint(np.array(python)) == input_fingerprint(python)
    assert input_fingerprint(np.array(python, dtype=np.float32)) == input_fingerprint(python)
    assert output_fingerprint(np.array([[np.nan]])) == output_fingerprint([[float("nan")]])
    assert to_canonical(np.float32("nan")) == {"$ario:float": "NaN"}
    assert to_canonical(np.array(np.inf)) == {"$ario:float": "Infinity"}


def test_bool_and_int_stay_distinct() -> None:
    assert input_fingerprint([True]) != input_fingerprint([1])
    assert input_fingerprint(np.array([True])) != input_fingerprint(np.array([1]))
    assert to_canonical(np.bool_(False)) is False
    assert fingerprint_bytes([True, 1, np.bool_(True)], "input") == b'{"features":[true,1,true]}'


def test_int_and_integral_float_are_equal_in_lists_as_in_the_reference() -> None:
    # JCS renders 1.0 as 1; the reference hashed [1.0] and [1] alike, so do we.
    assert input_fingerprint([1.0]) == input_fingerprint([1])
    assert input_fingerprint(np.array([1.0])) == input_fingerprint(np.array([1]))


def test_bytes_are_base64_tagged_inside_values() -> None:
    assert to_canonical(b"\x00\xff") == {"$ario:bytes": "AP8="}
    assert to_canonical(bytearray(b"hi")) == {"$ario:bytes": "aGk="}
    assert to_canonical(np.bytes_(b"hi")) == {"$ario:bytes": "aGk="}
    assert fingerprint_bytes({"blob": b"\x01"}, "input") == b'{"blob":{"$ario:bytes":"AQ=="}}'
    assert fingerprint_bytes(b"\x01", "output") == b'{"prediction":{"$ario:bytes":"AQ=="}}'


def test_python_and_numpy_scalars() -> None:
    class Level(enum.IntEnum):
        HIGH = 3

    assert to_canonical(np.int64(-7)) == -7
    assert type(to_canonical(np.int64(-7))) is int
    assert to_canonical(np.uint64(2**64 - 1)) == 2**64 - 1
    assert to_canonical(np.float16(0.5)) == 0.5
    assert to_canonical(np.float32(0.1)) == float(np.float32(0.1))
    assert to_canonical(np.str_("ä")) == "ä"
    assert type(to_canonical(np.str_("ä"))) is str
    assert to_canonical(Level.HIGH) == 3
    assert type(to_canonical(Level.HIGH)) is int
    assert to_canonical((1, (2, 3))) == [1, [2, 3]]
    assert to_canonical(pd.NA) is None
    assert to_canonical(-0.0) == 0


# --- numpy arrays ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.array([1, -2], dtype=np.int8), b"[1,-2]"),
        (np.array([2**64 - 1], dtype=np.uint64), b"[18446744073709551615]"),
        (np.array([0.5, 1.0], dtype=np.float16), b"[0.5,1]"),
        (np.array([0.1], dtype=np.float32), b"[0.10000000149011612]"),
        (np.array([0.1]), b"[0.1]"),
        (np.array([True, False]), b"[true,false]"),
        (np.array(["a", "bc"]), b'["a","bc"]'),
        (np.array([b"a"]), b'[{"$ario:bytes":"YQ=="}]'),
        (np.array([1, "x", None], dtype=object), b'[1,"x",null]'),
        (np.array([[1, 2], [3, 4]]), b"[[1,2],[3,4]]"),
        (np.zeros((2, 1, 2)), b"[[[0,0]],[[0,0]]]"),
        (np.zeros((0, 3)), b"[]"),
        (np.array(7), b"7"),
        (np.array(["2024-01-02", "NaT"], dtype="datetime64[D]"), b'["2024-01-02T00:00:00",null]'),
        (
            np.array(["2024-01-02T03:04:05.120"], dtype="datetime64[ms]"),
            b'["2024-01-02T03:04:05.12"]',
        ),
        (np.array(["2024-01-02T03:04:05"], dtype="datetime64[ns]"), b'["2024-01-02T03:04:05"]'),
        (np.array(["2024-01-02T03"], dtype="datetime64[h]"), b'["2024-01-02T03:00:00"]'),
    ],
)
def test_numpy_arrays_are_plain_nested_lists(array: Any, expected: bytes) -> None:
    assert canonical_json(to_canonical(array)) == expected


def test_array_shape_is_kept_by_nesting() -> None:
    flat = np.arange(4)
    assert input_fingerprint(flat) != input_fingerprint(flat.reshape(2, 2))
    assert input_fingerprint(flat.reshape(2, 2)) != input_fingerprint(flat.reshape(4, 1))
    # Documented equality: an array and the equal nested list share a fingerprint.
    assert input_fingerprint(flat.reshape(2, 2)) == input_fingerprint([[0, 1], [2, 3]])


def test_two_dimensional_input_array_no_longer_fails() -> None:
    # The reference did list(array) -> a list of arrays, which JCS rejected.
    array = np.array([[1, 2, 3]], dtype=np.int64)
    assert fingerprint_bytes(array, "input") == b'{"features":[[1,2,3]]}'


@settings(max_examples=150)
@given(
    hnp.arrays(
        dtype=st.sampled_from(["int8", "int64", "uint32", "float16", "float32", "float64", "bool"]),
        shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4),
    )
)
def test_array_encoding_equals_its_rows_and_its_tolist(array: Any) -> None:
    # One rule for arrays: C(a) == [C(row) for row in a] == C(a.tolist()).
    assert to_canonical(array) == to_canonical(list(array))
    assert canonical_json(to_canonical(array)) == canonical_json(to_canonical(array.tolist()))
    assert input_fingerprint(array) == input_fingerprint(array.tolist())
    assert output_fingerprint(array) == output_fingerprint(array.tolist())


@given(
    st.lists(st.datetimes() | st.none(), min_size=1, max_size=4),
    st.sampled_from(["D", "s", "ms", "us", "ns"]),
)
def test_datetime_arrays_equal_their_rows_in_every_unit(
    moments: list[dt.datetime | None], unit: str
) -> None:
    array = np.array([np.datetime64("NaT") if m is None else m for m in moments]).astype(
        f"datetime64[{unit}]"
    )
    if unit == "ns" and any(m is not None and not 1678 <= m.year <= 2261 for m in moments):
        return  # outside the nanosecond range numpy can hold
    whole = to_canonical(array)
    assert whole == [to_canonical(item) for item in array]
    assert whole == [to_canonical(pd.Timestamp(item)) for item in array]
    assert input_fingerprint(array) == input_fingerprint(list(array))


@pytest.mark.parametrize(
    ("array", "dtype_text"),
    [
        (np.array([1 + 2j]), "complex128"),
        (np.array([1], dtype="timedelta64[s]"), "timedelta64"),
        (np.array([1], dtype=np.longdouble), "float128"),
    ],
)
def test_unsupported_array_dtypes_are_named(array: Any, dtype_text: str) -> None:
    if array.dtype.itemsize <= 8 and array.dtype.kind == "f":
        pytest.skip("longdouble is float64 on this platform")
    with pytest.raises(FingerprintError, match=dtype_text) as caught:
        to_canonical({"x": array})
    assert caught.value.path == "$.x"


# --- datetimes -------------------------------------------------------------------------


def test_datetimes_are_iso_strings_independent_of_type_and_unit() -> None:
    expected = "2024-01-02T03:04:05.5"
    assert to_canonical(dt.datetime(2024, 1, 2, 3, 4, 5, 500000)) == expected
    assert to_canonical(pd.Timestamp("2024-01-02T03:04:05.5")) == expected
    for unit in ("ms", "us", "ns"):
        assert to_canonical(np.datetime64("2024-01-02T03:04:05.500", unit)) == expected
    assert to_canonical(pd.Timestamp("2024-01-02T03:04:05.000000001")) == (
        "2024-01-02T03:04:05.000000001"
    )
    assert to_canonical(dt.datetime(2024, 1, 2)) == "2024-01-02T00:00:00"
    assert to_canonical(np.datetime64("2024-01-02")) == "2024-01-02T00:00:00"
    assert to_canonical(dt.date(2024, 1, 2)) == "2024-01-02"


def test_aware_datetimes_keep_their_offset() -> None:
    india = dt.timezone(dt.timedelta(hours=5, minutes=30))
    assert to_canonical(dt.datetime(2024, 1, 2, tzinfo=india)) == "2024-01-02T00:00:00+05:30"
    newfoundland = dt.timezone(-dt.timedelta(hours=3, minutes=30))
    assert to_canonical(dt.datetime(2024, 1, 2, tzinfo=newfoundland)) == (
        "2024-01-02T00:00:00-03:30"
    )
    assert to_canonical(pd.Timestamp("2024-01-02", tz="UTC")) == "2024-01-02T00:00:00+00:00"
    assert to_canonical(pd.Timestamp("2024-07-01", tz="Europe/Paris")) == (
        "2024-07-01T00:00:00+02:00"
    )


def test_nanoseconds_before_1970_and_sub_nanosecond_units() -> None:
    before = np.array(["1969-12-31T23:59:59.999999999", "NaT"], dtype="datetime64[ns]")
    assert to_canonical(before) == ["1969-12-31T23:59:59.999999999", None]
    assert to_canonical(pd.Timestamp("1969-12-31T23:59:59.999999999")) == (
        "1969-12-31T23:59:59.999999999"
    )
    pico = np.array(["1970-01-01T00:00:01.000000000250", "NaT"], dtype="datetime64[ps]")
    assert to_canonical(pico) == ["1970-01-01T00:00:01.00000000025", None]
    assert to_canonical(pico.reshape(2, 1)) == [["1970-01-01T00:00:01.00000000025"], [None]]
    assert to_canonical(np.zeros((0, 2), dtype="datetime64[s]")) == []


def test_missing_datetimes_are_null() -> None:
    assert to_canonical(pd.NaT) is None
    assert to_canonical(np.datetime64("NaT")) is None
    assert to_canonical(np.datetime64("NaT", "ns")) is None


def test_datetime64_outside_python_years_is_rejected() -> None:
    with pytest.raises(FingerprintError, match=r"1\.\.9999") as caught:
        to_canonical([np.datetime64("10000-01-01", "s")])
    assert caught.value.path == "$[0]"


# --- pandas DataFrame ------------------------------------------------------------------


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "income": [78000.0, 52000.0],
            "age": [72, 31],
            "city": ["Oslo", "Lima"],
            "member": [True, False],
            "since": pd.to_datetime(["2020-05-01T00:00", "2021-06-02T12:00"]),
        }
    )


def test_dataframe_golden_bytes() -> None:
    # Pinned: auditors re-implementing the rules can test against these exact bytes.
    assert fingerprint_bytes(_frame(), "input") == (
        b'{"features":{"$ario:dataframe":{"columns":["income","age","city","member","since"],'
        b'"data":[[78000,72,"Oslo",true,"2020-05-01T00:00:00"],'
        b'[52000,31,"Lima",false,"2021-06-02T12:00:00"]],'
        b'"index":[0,1],"kinds":["float","int","object","bool","datetime"]}}}'
    )
    assert fingerprint_bytes(_frame(), "output") == fingerprint_bytes(_frame(), "input").replace(
        b'{"features":', b'{"prediction":', 1
    )


def test_dataframes_differing_only_in_a_value_hash_differently() -> None:
    # The reference hashed list(df), the column names only: these two collided.
    first = _frame()
    second = _frame()
    second.loc[1, "income"] = 52001.0
    assert input_fingerprint(first) != input_fingerprint(second)
    assert input_fingerprint(first) != sha256_hex(_reference_input_bytes(first))


def test_dataframe_column_order_index_and_names_matter() -> None:
    frame = _frame()
    reordered = frame[["age", "income", "city", "member", "since"]]
    renamed = frame.rename(columns={"age": "years"})
    reindexed = frame.set_axis([10, 11], axis=0)
    hashes = {input_fingerprint(item) for item in (frame, reordered, renamed, reindexed)}
    assert len(hashes) == 4


def test_dataframe_kinds_separate_int_from_float_and_datetime_from_text() -> None:
    assert input_fingerprint(pd.DataFrame({"a": [1]})) != input_fingerprint(
        pd.DataFrame({"a": [1.0]})
    )
    when = pd.DataFrame({"t": pd.to_datetime(["2024-01-02"])})
    text = pd.DataFrame({"t": ["2024-01-02T00:00:00"]})
    assert input_fingerprint(when) != input_fingerprint(text)


def test_dataframe_kinds_are_stable_across_storage_dtypes() -> None:
    # Same data, different pandas storage: the fingerprint must not change.
    as_object = pd.DataFrame({"s": pd.Series(["x", "y"], dtype=object)})
    as_str = pd.DataFrame({"s": pd.Series(["x", "y"], dtype="string")})
    assert input_fingerprint(as_object) == input_fingerprint(as_str)
    plain = pd.DataFrame({"n": np.array([1, 2], dtype=np.int32)})
    nullable = pd.DataFrame({"n": pd.array([1, 2], dtype="Int64")})
    assert input_fingerprint(plain) == input_fingerprint(nullable)
    seconds = pd.DataFrame({"t": np.array(["2024-01-02T03:04:05"], dtype="datetime64[s]")})
    nanos = pd.DataFrame({"t": np.array(["2024-01-02T03:04:05"], dtype="datetime64[ns]")})
    assert input_fingerprint(seconds) == input_fingerprint(nanos)


def test_dataframe_missing_values_categoricals_and_aware_datetimes() -> None:
    frame = pd.DataFrame(
        {
            "f": [np.nan, 1.5],
            "n": pd.array([None, 2], dtype="Int64"),
            "c": pd.Categorical(["lo", "hi"]),
            "t": pd.to_datetime(["2024-01-02", None]).tz_localize("UTC"),
        }
    )
    body = to_canonical(frame)["$ario:dataframe"]
    assert body["kinds"] == ["float", "int", "object", "datetime"]
    assert body["data"] == [
        [{"$ario:float": "NaN"}, None, "lo", "2024-01-02T00:00:00+00:00"],
        [1.5, 2, "hi", None],
    ]


def test_dataframe_labels_of_other_types() -> None:
    frame = pd.DataFrame([[1, 2]], columns=[10, 20], index=pd.to_datetime(["2024-01-02"]))
    body = to_canonical(frame)["$ario:dataframe"]
    assert body["columns"] == [10, 20]
    assert body["index"] == ["2024-01-02T00:00:00"]
    multi = pd.DataFrame([[1, 2]], columns=pd.MultiIndex.from_tuples([("a", 1), ("a", 2)]))
    assert to_canonical(multi)["$ario:dataframe"]["columns"] == [["a", 1], ["a", 2]]


def test_empty_dataframes() -> None:
    assert to_canonical(pd.DataFrame())["$ario:dataframe"] == {
        "columns": [],
        "kinds": [],
        "index": [],
        "data": [],
    }
    no_rows = to_canonical(pd.DataFrame({"a": pd.Series([], dtype=float)}))["$ario:dataframe"]
    assert no_rows["data"] == []
    assert no_rows["kinds"] == ["float"]
    no_columns = pd.DataFrame(index=[0, 1])
    assert to_canonical(no_columns)["$ario:dataframe"]["data"] == [[], []]


def _mixed_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "a": [1.0, np.inf],
            "b": [2, 3],
            "c": ["x", None],
            "d": [True, False],
            "e": pd.to_datetime(
                ["2024-01-01T00:00:00", "2024-01-02T00:00:00.25"], format="ISO8601"
            ),
            "f": pd.array([1, None], dtype="Int64"),
        }
    )


@pytest.mark.parametrize(
    ("frame", "direct_text"),
    [
        pytest.param(_mixed_frame(), False, id="mixed"),
        pytest.param(
            pd.DataFrame(np.arange(6, dtype=np.float32).reshape(2, 3), columns=["x", "y", "z"]),
            True,
            id="float32",
        ),
        pytest.param(pd.DataFrame({"i": [1, 2], "j": [3, 4]}), True, id="int64"),
        pytest.param(pd.DataFrame({"f": [1.5, np.nan], "g": [np.inf, 0.0]}), False, id="nan"),
        pytest.param(
            pd.DataFrame(
                np.array([[0.1, -0.0, 1e300], [5e-324, -2.5, 1e21]]),
                columns=['é"\\', "\n\u2028", "😀"],
                index=pd.RangeIndex(7, 1, -3),
            ),
            True,
            id="float64-tricky-labels",
        ),
        pytest.param(
            pd.DataFrame(
                np.array([[0, 2**64 - 1]], dtype=np.uint64),
                columns=pd.Index(["u", "v"], dtype=object),
                index=pd.Index([-(2**63)]),
            ),
            True,
            id="uint64-object-labels",
        ),
        pytest.param(
            pd.DataFrame(np.array([[65504, 2**-24]], dtype=np.float16), columns=["h", "t"]),
            True,
            id="float16",
        ),
    ],
)
def test_dataframe_fast_paths_agree_with_the_public_api(
    frame: pd.DataFrame, direct_text: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pin which frames take the directly written text, so the comparisons below compare
    # that text (not the generic walk with itself) where it applies.
    assert (fp._frame_text(frame) is not None) is direct_text
    fast = fingerprint_bytes(frame, "input")
    monkeypatch.setattr(fp, "_frame_text", lambda _frame: None)
    walked = fingerprint_bytes(frame, "input")
    monkeypatch.setattr(fp, "_arrow_strings", lambda _index: None)
    public_labels = fingerprint_bytes(frame, "input")
    monkeypatch.setattr(fp, "_uniform_dtype", lambda _frame: None)
    per_column = fingerprint_bytes(frame, "input")
    monkeypatch.setattr(fp, "_column_arrays", fp._public_column_arrays)
    public = fingerprint_bytes(frame, "input")
    assert fast == walked == public_labels == per_column == public


# --- the DataFrame hot path: JCS text written directly ---------------------------------

_HOT_DTYPES = [
    np.dtype(name)
    for name in (
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
    )
]
_LABEL_CHARACTERS = st.characters(codec="utf-8") | st.sampled_from(
    ['"', "\\", "\x00", "\n", "\x1f", "\x7f", "\u2028", "é", "😀", "/", "<"]
)


def _extreme_values(dtype: np.dtype[Any], finite: bool) -> list[Any]:
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return [int(info.min), int(info.max), 0, 1]
    limits = np.finfo(dtype)
    extremes = [
        0.0,
        -0.0,
        float(limits.max),
        -float(limits.max),
        float(limits.tiny),
        -float(limits.smallest_subnormal),
        float(limits.eps),
    ]
    return extremes if finite else [*extremes, math.nan, math.inf, -math.inf]


@st.composite
def _numeric_frames(draw: st.DrawFn) -> tuple[pd.DataFrame, bool]:
    """A frame with one numeric numpy dtype, and whether ``_frame_text`` must take it."""
    dtype = draw(st.sampled_from(_HOT_DTYPES))
    rows = draw(st.integers(min_value=0, max_value=4))
    width = draw(st.integers(min_value=1, max_value=4))
    finite = draw(st.booleans())
    elements = hnp.from_dtype(
        dtype, allow_nan=not finite, allow_infinity=not finite
    ) | st.sampled_from(_extreme_values(dtype, finite))
    values = draw(hnp.arrays(dtype, (rows, width), elements=elements))
    labels = draw(
        st.lists(
            st.text(_LABEL_CHARACTERS, max_size=6), min_size=width, max_size=width, unique=True
        )
    )
    columns = pd.Index(labels, dtype=draw(st.sampled_from([None, object])))
    index_kind = draw(st.sampled_from(["range", "int", "uint", "str", "float"]))
    index: pd.Index
    if index_kind == "range":
        start = draw(st.integers(min_value=-1000, max_value=1000))
        step = draw(st.integers(min_value=-5, max_value=5).filter(bool))
        index = pd.RangeIndex(start, start + step * rows, step)
    elif index_kind == "int":
        labels_int = st.integers(min_value=-(2**63), max_value=2**63 - 1)
        index = pd.Index(draw(st.lists(labels_int, min_size=rows, max_size=rows)), dtype="int64")
    elif index_kind == "uint":
        labels_uint = st.integers(min_value=0, max_value=2**64 - 1)
        index = pd.Index(draw(st.lists(labels_uint, min_size=rows, max_size=rows)), dtype="uint64")
    elif index_kind == "str":
        index = pd.Index(draw(st.lists(st.text(max_size=3), min_size=rows, max_size=rows)))
    else:
        index = pd.Index(draw(st.lists(st.floats(), min_size=rows, max_size=rows)), dtype=float)
    frame = pd.DataFrame(values, columns=columns, index=index)
    eligible = index_kind in ("range", "int", "uint") and (
        dtype.kind in "iu" or bool(np.isfinite(values).all())
    )
    return frame, eligible


@settings(max_examples=300, deadline=None)
@given(_numeric_frames())
def test_direct_dataframe_text_equals_the_generic_walk(case: tuple[pd.DataFrame, bool]) -> None:
    frame, eligible = case
    fast = fingerprint_bytes(frame, "input")
    assert fast == canonical_json(fingerprint_document(frame, "input"))
    text = fp._frame_text(frame)
    assert (text is not None) is eligible
    if text is not None:  # the bytes hashed are the direct text, not a fallback
        assert fast == b'{"features":{"$ario:dataframe":' + text.encode() + b"}}"
    body = json.loads(fast)["features"]["$ario:dataframe"]
    assert body["columns"] == list(frame.columns)
    assert len(body["data"]) == len(body["index"]) == len(frame)


def test_a_finite_float64_frame_with_string_labels_takes_the_direct_text() -> None:
    frame = pd.DataFrame({"income": [78000.0, 0.1], "ratio": [-0.0, 1e-7]})
    text = fp._frame_text(frame)
    assert text == (
        '{"columns":["income","ratio"],"data":[[78000,0],[0.1,1e-7]],'
        '"index":[0,1],"kinds":["float","float"]}'
    )
    assert fingerprint_bytes(frame, "input") == b'{"features":{"$ario:dataframe":%b}}' % (
        text.encode()
    )


@pytest.mark.parametrize("dtype", ["float64", "int64"])
def test_a_lone_surrogate_label_on_the_direct_path_is_a_typed_error(dtype: str) -> None:
    frame = pd.DataFrame(
        np.zeros((1, 2), dtype=dtype), columns=pd.Index(["ok", "bad\ud800"], dtype=object)
    )
    assert fp._frame_text(frame) is not None  # the direct path is taken, then abandoned
    with pytest.raises(LoneSurrogateError) as generic:
        canonical_json(fingerprint_document(frame, "input"))
    with pytest.raises(LoneSurrogateError) as direct:
        fingerprint_bytes(frame, "input")
    assert direct.value.path == generic.value.path == '$.features["$ario:dataframe"].columns[1]'
    with pytest.raises(LoneSurrogateError):
        input_fingerprint(frame)


@pytest.mark.parametrize("rows", [0, 2])
def test_default_integer_column_labels_hash_like_the_generic_walk(rows: int) -> None:
    frame = pd.DataFrame(np.zeros((rows, 2)))  # columns: RangeIndex(0, 2)
    expected = canonical_json(fingerprint_document(frame, "input"))
    assert fp._frame_text(frame) is not None  # the direct text handles integer labels
    assert fingerprint_bytes(frame, "input") == expected


@pytest.mark.parametrize("dtype", ["Int64", "int64[pyarrow]"])
def test_a_nullable_integer_row_index_hashes_like_the_generic_walk(dtype: str) -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0]}, index=pd.Index([1, None], dtype=dtype))
    expected = canonical_json(fingerprint_document(frame, "input"))
    assert fingerprint_bytes(frame, "input") == expected


@settings(max_examples=60)
@given(
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=2, max_size=6),
    st.integers(min_value=0, max_value=5),
)
def test_changing_any_cell_changes_the_dataframe_fingerprint(
    values: list[float], position: int
) -> None:
    frame = pd.DataFrame({"a": values, "b": list(range(len(values)))})
    position %= len(values)
    changed = frame.copy()
    old = changed.loc[position, "a"]
    changed.loc[position, "a"] = 0.5 if old != 0.5 else 0.25
    assert input_fingerprint(frame) != input_fingerprint(changed)
    assert input_fingerprint(frame) == input_fingerprint(frame.copy())


def test_dataframe_cell_errors_name_column_and_row() -> None:
    frame = pd.DataFrame({"x y": [1, 2], "z": [pd.Timedelta(1), pd.Timedelta(2)]})
    with pytest.raises(FingerprintError, match="Timedelta") as caught:
        input_fingerprint(frame)
    assert caught.value.path == "$.z[0]"
    with pytest.raises(FingerprintError) as caught:
        to_canonical(pd.DataFrame({"ok": [1], "bad stuff": [object()]}))
    assert caught.value.path == '$["bad stuff"][0]'
    periods = pd.DataFrame([[1]], columns=pd.PeriodIndex(["2024-01"], freq="M"))
    with pytest.raises(FingerprintError, match="Period") as caught:
        to_canonical(periods)
    assert caught.value.path == "$.columns[0]"


# --- pandas Series ---------------------------------------------------------------------


def test_series_tagged_form() -> None:
    series = pd.Series([1.5, None], name="score", index=["a", "b"])
    assert to_canonical(series) == {
        "$ario:series": {
            "name": "score",
            "kind": "float",
            "index": ["a", "b"],
            "data": [1.5, {"$ario:float": "NaN"}],
        }
    }


def test_nested_series_name_index_and_values_matter() -> None:
    base = pd.Series([1, 2], name="s")
    variants = [base, base.rename("t"), base.set_axis([5, 6]), pd.Series([1, 3], name="s")]
    assert len({input_fingerprint({"col": item}) for item in variants}) == 4


def test_series_of_datetimes_and_strings() -> None:
    series = pd.Series(pd.to_datetime(["2024-01-02", None]), name=None)
    assert to_canonical(series)["$ario:series"]["data"] == ["2024-01-02T00:00:00", None]
    assert to_canonical(series)["$ario:series"]["kind"] == "datetime"
    words = pd.Series(["x", "y"], dtype="string")
    assert to_canonical(words)["$ario:series"]["kind"] == "object"
    # A top-level Series input is its values, as list(series) was for the reference.
    assert fingerprint_bytes(series, "input") == b'{"features":["2024-01-02T00:00:00",null]}'


# --- unsupported values ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "path", "type_name"),
    [
        ({"a": [1, {"b c": 1 + 2j}]}, '$.a[1]["b c"]', "complex"),
        ([decimal.Decimal("1.5")], "$[0]", "decimal.Decimal"),
        ({"s": {1, 2}}, "$.s", "set"),
        ([dt.timedelta(seconds=1)], "$[0]", "datetime.timedelta"),
        ([[object()]], "$[0][0]", "object"),
        ({"t": dt.time(1, 2)}, "$.t", "datetime.time"),
        ([np.timedelta64(1, "s")], "$[0]", "numpy.timedelta64"),
        ({"g": (x for x in [1])}, "$.g", "generator"),
    ],
)
def test_unsupported_values_raise_naming_path_and_type(
    value: Any, path: str, type_name: str
) -> None:
    with pytest.raises(FingerprintError, match=type_name) as caught:
        to_canonical(value)
    assert caught.value.path == path
    assert isinstance(caught.value, CanonicalizationError)
    assert isinstance(caught.value, ValueError)
    with pytest.raises(FingerprintError):
        output_fingerprint(value)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({1, 2}, "no canonical order"),
        (frozenset({1}), "no canonical order"),
        (types.MappingProxyType({"a": 1}), "not a dict"),
        ((x for x in [1, 2]), "one-shot iterator"),
        (iter([1, 2]), "one-shot iterator"),
    ],
)
def test_ambiguous_top_level_inputs_are_rejected(value: Any, reason: str) -> None:
    with pytest.raises(FingerprintError, match=reason) as caught:
        input_fingerprint(value)
    assert caught.value.path == "$"


def test_other_re_iterable_inputs_are_hashed_as_lists() -> None:
    assert input_fingerprint(range(3)) == input_fingerprint([0, 1, 2])
    assert input_fingerprint(pd.Index([1.5, 2.5])) == input_fingerprint([1.5, 2.5])


def test_long_double_scalars_are_rejected() -> None:
    if np.dtype(np.longdouble).itemsize <= 8:
        pytest.skip("longdouble is float64 on this platform")
    with pytest.raises(FingerprintError, match="longdouble") as caught:
        to_canonical([np.longdouble(1)])
    assert caught.value.path == "$[0]"


def test_cyclic_values_raise_instead_of_recursing_forever() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(FingerprintError, match="cyclic"):
        input_fingerprint(cyclic)


def test_lone_surrogates_are_a_canonicalization_error() -> None:
    with pytest.raises(CanonicalizationError):
        input_fingerprint(["\ud800"])


# --- hypothesis: any supported value -----------------------------------------------------


rich_scalars = (
    json_scalars
    | st.floats()
    | st.binary(max_size=6)
    | st.datetimes(timezones=st.none() | st.just(dt.timezone.utc))
    | st.dates()
    | st.integers(-(2**63), 2**63 - 1).map(np.int64)
    | st.floats(width=32).map(np.float32)
    | st.booleans().map(np.bool_)
)
rich_values = st.recursive(
    rich_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(json_keys, inner, max_size=4)
    ),
    max_leaves=20,
)


def _same_json(left: Any, right: Any) -> bool:
    """Structural equality; numbers compare by value (JCS writes 1.0 as 1), bools by identity."""
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(_same_json(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(map(_same_json, left, right))
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    if isinstance(left, float) or isinstance(right, float):
        return float(left) == float(right)  # JCS may print a large float as integer digits
    return bool(left == right)


@given(rich_values)
def test_canonical_values_round_trip_through_jcs(value: Any) -> None:
    canonical = to_canonical(value)
    encoded = canonical_json(canonical)
    decoded = json.loads(encoded)
    assert _same_json(canonical, decoded)
    assert canonical_json(decoded) == encoded


@given(rich_values)
def test_fingerprints_are_deterministic(value: Any) -> None:
    assert input_fingerprint(value) == input_fingerprint(copy.deepcopy(value))
    assert output_fingerprint(value) == output_fingerprint(copy.deepcopy(value))
    assert to_canonical(value) == to_canonical(copy.deepcopy(value))


# --- model input shaping and purity ----------------------------------------------------


def test_model_input_shapes_like_the_reference() -> None:
    shaped = model_input({"b": 2.0, "a": 1.0})
    assert isinstance(shaped, np.ndarray)
    assert shaped.tolist() == [[2.0, 1.0]]  # insertion order, not key order
    assert model_input({"a": 1.0, "b": 2.0}).tolist() == [[1.0, 2.0]]
    # ... while the fingerprint ignores the insertion order (documented).
    assert input_fingerprint({"b": 2.0, "a": 1.0}) == input_fingerprint({"a": 1.0, "b": 2.0})
    assert model_input([1, 2]).tolist() == [[1, 2]]
    assert model_input((1.5, 2.5)).tolist() == [[1.5, 2.5]]
    frame = _frame()
    array = np.zeros(3)
    assert model_input(frame) is frame
    assert model_input(array) is array
    assert model_input("text") == "text"


def test_module_imports_and_works_without_numpy_or_pandas() -> None:
    code = (
        "import sys\n"
        "sys.modules['numpy'] = None\n"
        "sys.modules['pandas'] = None\n"
        "from ario_mlflow.proof.fingerprint import input_fingerprint, output_fingerprint\n"
        f"assert input_fingerprint({REFERENCE_INPUT!r}) == {REFERENCE_INPUT_HASH!r}\n"
        f"assert output_fingerprint([1]) == {REFERENCE_OUTPUT_HASH!r}\n"
        "print(input_fingerprint({'when': __import__('datetime').date(2024, 1, 2)}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_importing_the_module_does_not_import_numpy_or_pandas() -> None:
    code = (
        "import sys\n"
        "import ario_mlflow.proof.fingerprint\n"
        "assert 'numpy' not in sys.modules and 'pandas' not in sys.modules, sorted(sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_dataframe_fast_paths_are_in_use_on_this_pandas() -> None:
    # If pandas drops these private accessors the results stay identical (see above) but
    # 1-row frames get ~10x slower on the prediction hot path; this makes that visible.
    frame = pd.DataFrame({"i": [1.0], "j": [2.0]})
    uniform = fp._uniform_dtype(frame)
    assert uniform is not None  # (np.dtype("float64") == None is True: test identity)
    assert uniform.name == "float64"
    assert fp._uniform_dtype(_mixed_frame()) is None
    assert fp._column_arrays(_mixed_frame())[0] is not None
    assert hasattr(frame, "_iter_column_arrays")


def test_arrow_string_labels_are_read_through_the_fast_accessor() -> None:
    # pandas 3 stores string column labels in Arrow; the accessor must keep working (a
    # None here means every DataFrame hash takes the ~10x slower Index.tolist path).
    frame = pd.DataFrame({"income": [1.0], "âge ✓": [2.0], 'q"\\': [3.0], "": [4.0]})
    labels = fp._arrow_strings(frame.columns)
    if int(pd.__version__.split(".")[0]) < 3:  # pandas 2: object labels, no Arrow array
        assert labels is None
    else:
        assert labels is not None
        assert labels == frame.columns.tolist() == ["income", "âge ✓", 'q"\\', ""]
        assert all(type(label) is str for label in labels)
    arrow = pd.Index(["a", "é"], dtype=pd.ArrowDtype(pa.string()))
    assert fp._arrow_strings(arrow) == ["a", "é"]  # any pandas with Arrow-backed labels
    assert fp._arrow_strings(pd.RangeIndex(3)) is None
    assert fp._arrow_strings(pd.Index([1, 2, 3])) is None
    assert fp._arrow_strings(frame.index) is None
    assert fp._arrow_strings(pd.Index(["a", "b"], dtype=object)) is None  # no Arrow array


_vector_dtypes = st.sampled_from(
    ["int8", "int64", "uint64", "float16", "float32", "float64", "bool", "longdouble"]
)


@settings(max_examples=200)
@given(
    _vector_dtypes.flatmap(
        lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=2, max_side=4))
    )
)
def test_direct_output_text_equals_the_generic_walk(array: np.ndarray) -> None:
    try:
        expected = canonical_json(fingerprint_document(array, "output"))
    except FingerprintError:
        with pytest.raises(FingerprintError):
            fingerprint_bytes(array, "output")
        return
    assert fingerprint_bytes(array, "output") == expected
    eligible = (
        array.ndim == 1
        and array.dtype.kind in "iuf"
        and array.dtype.itemsize <= 8
        and bool(np.isfinite(array).all())
    )
    assert (fp._vector_text(array) is not None) == eligible


def test_a_class_label_output_takes_the_direct_text() -> None:
    assert fp._vector_text(np.array([0, 1, 1])) == "[0,1,1]"
    assert fingerprint_bytes(np.array([1.0, 0.5]), "output") == b'{"prediction":[1,0.5]}'
