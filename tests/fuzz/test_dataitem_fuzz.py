"""Fuzzing ANS-104 parsing: junk is a ``DataItemError`` (never another exception), and a
data item whose bytes or fields differ from what was signed never verifies."""

from __future__ import annotations

import dataclasses
import struct
from functools import lru_cache
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from ario_mlflow.arweave.dataitem import (
    DataItem,
    Tag,
    create_data_item,
    parse_data_item,
    verify_data_item,
)
from ario_mlflow.arweave.signers import ArweaveSigner, Ed25519Signer, Signer
from ario_mlflow.arweave.wallet import generate_arweave_jwk
from ario_mlflow.errors import DataItemError
from tests.fuzz.strategies import fuzz_settings, mutated_bytes, outcome_of

_ED25519 = Ed25519Signer(bytes(range(32)))


@lru_cache(maxsize=1)
def _rsa_signer() -> ArweaveSigner:
    """One RSA-4096 signer for the module (key generation takes about a second)."""
    return ArweaveSigner(generate_arweave_jwk())


def _parse_or_error(raw: Any) -> DataItem | None:
    """Parse; ``DataItemError`` is the only exception allowed to come out."""
    item, error = outcome_of(lambda: parse_data_item(raw), DataItemError)
    if item is None:
        assert str(error), "a DataItemError must say what is wrong"
        return None
    assert item.raw == bytes(raw)
    assert (len(item.signature), len(item.owner)) in ((64, 32), (512, 512))
    return item


@st.composite
def _signed_items(draw: st.DrawFn, rsa: bool = False) -> DataItem:
    signer: Signer = _rsa_signer() if rsa else _ED25519
    tags = draw(
        st.lists(
            st.tuples(
                st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12),
                st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12),
            ),
            max_size=5,
        )
    )
    return create_data_item(
        draw(st.binary(max_size=120)),
        signer,
        tags,
        target=draw(st.none() | st.binary(min_size=32, max_size=32)),
        anchor=draw(st.binary(min_size=32, max_size=32)),
    )


# --- arbitrary bytes ------------------------------------------------------------------------


def _header(signature_type: int) -> st.SearchStrategy[bytes]:
    """Bytes that start like an item of ``signature_type``, so parsing gets past the type."""
    return st.binary(max_size=1200).map(lambda rest: struct.pack("<H", signature_type) + rest)


@fuzz_settings(600)
@given(st.binary(max_size=1500) | _header(1) | _header(2) | _header(3))
@example(b"\x02\x00" + b"\x00" * 96 + b"\x00\x00" + struct.pack("<QQ", 0, 2**64 - 1))
@example(b"\x02\x00" + b"\x00" * 96 + b"\x02")
@example(b"\x02\x00" + b"\x00" * 96 + b"\x00\x00" + struct.pack("<QQ", 1, 11) + b"\xff" * 11)
def test_arbitrary_bytes_are_a_typed_error_or_an_unsigned_item(raw: bytes) -> None:
    """Random bytes either parse (structure only) or raise ``DataItemError``; never verify."""
    _parse_or_error(raw)
    assert verify_data_item(raw) is False


@fuzz_settings(100)
@given(
    st.none()
    | st.integers()
    | st.text(max_size=100)
    | st.lists(st.integers(0, 255), max_size=100)
    | st.binary(max_size=100).map(bytearray)
    | st.binary(max_size=100).map(memoryview)
)
def test_non_bytes_are_a_typed_error(raw: Any) -> None:
    """Whatever a caller passes, parsing answers with ``DataItemError`` or an item."""
    item = _parse_or_error(raw) if isinstance(raw, (bytearray, memoryview)) else None
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        try:
            parse_data_item(raw)
        except DataItemError:
            pass
        else:
            raise AssertionError(f"{type(raw).__name__} parsed as a data item")
    assert item is None or verify_data_item(item) is False
    assert verify_data_item(raw) is False


# --- mutated valid items ----------------------------------------------------------------------


@fuzz_settings(250)
@given(_signed_items(), st.data())
def test_mutated_ed25519_items_never_verify(item: DataItem, data: st.DataObject) -> None:
    """Truncated, extended, bit-flipped items: a typed error or a parse, and a pass only
    for the exact signed bytes."""
    assert verify_data_item(item.raw)
    mutated = data.draw(mutated_bytes(item.raw, max_steps=3))
    _parse_or_error(mutated)
    assert verify_data_item(mutated) is (mutated == item.raw)


@fuzz_settings(60)
@given(_signed_items(rsa=True), st.data())
def test_mutated_rsa_items_never_verify(item: DataItem, data: st.DataObject) -> None:
    """The same for Arweave RSA-4096 (type 1) items, where a flip lands in 1 KiB of key."""
    assert verify_data_item(item.raw)
    mutated = data.draw(mutated_bytes(item.raw, max_steps=2))
    _parse_or_error(mutated)
    assert verify_data_item(mutated) is (mutated == item.raw)


_FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "signature_type": st.integers(-1, 8),
    "signature": st.binary(max_size=80),
    "owner": st.binary(max_size=40),
    "target": st.none() | st.binary(max_size=40),
    "anchor": st.none() | st.binary(max_size=40),
    "tags": st.lists(st.builds(Tag, st.text(max_size=6), st.text(max_size=6)), max_size=3).map(
        tuple
    ),
    "data": st.binary(max_size=60),
    "raw": st.binary(max_size=200),
}


@fuzz_settings(150)
@given(_signed_items(), st.sampled_from(sorted(_FIELD_VALUES)), st.data())
def test_items_with_a_replaced_field_never_verify(
    item: DataItem, name: str, data: st.DataObject
) -> None:
    """A ``DataItem`` whose fields were edited after signing does not verify (its fields
    must be what its raw bytes encode, and those must carry a valid signature)."""
    replacement = data.draw(_FIELD_VALUES[name])
    edited = dataclasses.replace(item, **{name: replacement})
    assert verify_data_item(edited) is (edited == item)
