"""ANS-104 data items: layout, ids, tag limits, strict parsing and real verification."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ario_mlflow.arweave.dataitem import (
    DataItem,
    Tag,
    create_data_item,
    parse_data_item,
    verify_data_item,
)
from ario_mlflow.arweave.deephash import deep_hash
from ario_mlflow.arweave.encoding import b64url_encode
from ario_mlflow.arweave.signers import ArweaveSigner, Ed25519Signer
from ario_mlflow.errors import DataItemError

SEED = bytes(range(32))
ANCHOR = bytes(range(32, 64))
TARGET = bytes(range(64, 96))
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")

# Produced by @dha-team/arbundles 1.0.4 (tests/arweave/interop/interop.js create) from
# seed 00..1f, target 40..5f, anchor 20..3f, two tags and data b'{"k":"v"}'.
ARBUNDLES_GOLDEN = bytes.fromhex(
    "020093cee9457a11678539e0302f69efc0ea6cd1f4a3986e4f52fea29b468858ef1b208f709b048e40aa8d9f"
    "dede5d9f34ba6ed2661dd1369543ea0d82ad1020510203a107bff3ce10be1d70dd18e74bc09967e4d6309ba5"
    "0d5f1ddc8664125531b801404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f01"
    "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f020000000000000036000000"
    "000000000418436f6e74656e742d54797065206170706c69636174696f6e2f6a736f6e104170702d4e616d65"
    "1861722d696f2d6d6c666c6f77007b226b223a2276227d"
)
ARBUNDLES_GOLDEN_ID = "cInPN-4zijMAEO9U6_wB6gtwh_PGdNWmeeG4oWpY7pA"


@pytest.fixture(scope="module")
def signer() -> Ed25519Signer:
    return Ed25519Signer(SEED)


@pytest.fixture(scope="module")
def rsa_signer(arweave_jwk: dict[str, str]) -> ArweaveSigner:
    return ArweaveSigner(arweave_jwk)


def _zigzag(value: int) -> bytes:
    number = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        if number > 0x7F:
            out.append((number & 0x7F) | 0x80)
            number >>= 7
        else:
            out.append(number)
            return bytes(out)


def _avro_text(text: str) -> bytes:
    raw = text.encode()
    return _zigzag(len(raw)) + raw


def _signed_item(
    signer: Ed25519Signer,
    raw_tags: bytes,
    tag_count: int,
    data: bytes = b"payload",
    *,
    target: bytes | None = None,
    anchor: bytes | None = ANCHOR,
) -> bytes:
    """Assemble and sign an item by hand, with arbitrary raw tag bytes."""
    message = deep_hash(
        [
            b"dataitem",
            b"1",
            b"2",
            signer.owner,
            target or b"",
            anchor or b"",
            raw_tags,
            data,
        ]
    )
    return b"".join(
        [
            struct.pack("<H", 2),
            signer.sign(message),
            signer.owner,
            b"\x00" if target is None else b"\x01" + target,
            b"\x00" if anchor is None else b"\x01" + anchor,
            struct.pack("<QQ", tag_count, len(raw_tags)),
            raw_tags,
            data,
        ]
    )


# --- creation, layout, ids -------------------------------------------------------------


def test_matches_arbundles_byte_for_byte(signer):
    item = create_data_item(
        b'{"k":"v"}',
        signer,
        [Tag("Content-Type", "application/json"), Tag("App-Name", "ar-io-mlflow")],
        target=TARGET,
        anchor=ANCHOR,
    )
    assert item.raw == ARBUNDLES_GOLDEN
    assert item.id == ARBUNDLES_GOLDEN_ID
    assert parse_data_item(ARBUNDLES_GOLDEN) == item


@pytest.mark.parametrize(
    ("data", "tags", "target"),
    [
        (b'{"event":"x"}', [Tag("Content-Type", "application/json")], None),
        (b"", [], None),
        (bytes(range(256)) * 3, [Tag("a", "b"), Tag("c", "d")], TARGET),
        (b"\x00", [Tag("名前", "値 ✓ 😀"), Tag("Ünïcödé", "\u0000nul inside")], None),
    ],
)
def test_round_trip(signer, data, tags, target):
    item = create_data_item(data, signer, tags, target=target)
    parsed = parse_data_item(item.raw)
    assert parsed == item
    assert parsed.data == data
    assert parsed.tags == tuple(tags)
    assert parsed.target == target
    assert len(parsed.anchor) == 32
    assert verify_data_item(item)
    assert verify_data_item(item.raw)


def test_layout(signer):
    item = create_data_item(b"DATA", signer, [("n", "v")], anchor=ANCHOR)
    raw = item.raw
    assert raw[:2] == b"\x02\x00"
    assert raw[2:66] == item.signature
    assert raw[66:98] == signer.owner
    assert raw[98] == 0  # no target
    assert raw[99] == 1
    assert raw[100:132] == ANCHOR
    assert struct.unpack_from("<QQ", raw, 132) == (1, 6)
    assert raw[148:154] == b"\x02\x02n\x02v\x00"
    assert raw[154:] == b"DATA"
    assert item.raw_tags() == b"\x02\x02n\x02v\x00"


def test_no_tags_encode_as_zero_bytes(signer):
    item = create_data_item(b"x", signer, anchor=ANCHOR)
    assert struct.unpack_from("<QQ", item.raw, 132) == (0, 0)
    assert item.raw[148:] == b"x"


def test_id_is_b64url_sha256_of_signature(signer):
    item = create_data_item(b"abc", signer)
    assert ID_PATTERN.fullmatch(item.id)
    assert item.id == b64url_encode(hashlib.sha256(item.signature).digest())


def test_signing_message_is_the_implemented_deep_hash(signer):
    item = create_data_item(b"abc", signer, [("a", "b")], target=TARGET, anchor=ANCHOR)
    expected = deep_hash(
        [b"dataitem", b"1", b"2", item.owner, TARGET, ANCHOR, b"\x02\x02a\x02b\x00", b"abc"]
    )
    assert item.signing_message() == expected
    assert len(expected) == 48
    assert signer.sign(expected) == item.signature


def test_default_anchor_is_random(signer):
    first = create_data_item(b"same", signer)
    second = create_data_item(b"same", signer)
    assert len(first.anchor) == len(second.anchor) == 32
    assert first.anchor != second.anchor
    assert first.id != second.id


def test_ed25519_items_are_deterministic_given_the_anchor(signer):
    one = create_data_item(b"same", signer, [("a", "b")], anchor=ANCHOR)
    two = create_data_item(b"same", signer, [("a", "b")], anchor=ANCHOR)
    assert one == two


def test_tag_forms_are_equivalent(signer):
    forms = [
        [Tag("a", "1"), Tag("b", "2")],
        [("a", "1"), ("b", "2")],
        [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}],
        (tag for tag in [Tag("a", "1"), Tag("b", "2")]),
    ]
    items = [create_data_item(b"d", signer, form, anchor=ANCHOR) for form in forms]
    assert all(item == items[0] for item in items)
    assert items[0].tags == (Tag("a", "1"), Tag("b", "2"))


def test_bytes_like_data_is_accepted(signer):
    expected = create_data_item(b"abc", signer, anchor=ANCHOR)
    assert create_data_item(bytearray(b"abc"), signer, anchor=ANCHOR) == expected
    assert create_data_item(memoryview(b"abc"), signer, anchor=ANCHOR) == expected
    with pytest.raises(DataItemError, match="data must be bytes"):
        create_data_item("abc", signer)  # type: ignore[arg-type]


def test_arweave_signed_item(rsa_signer):
    item = create_data_item(b"rsa data", rsa_signer, [("Content-Type", "text/plain")])
    assert item.raw[:2] == b"\x01\x00"
    assert len(item.signature) == 512
    assert item.owner == rsa_signer.owner
    assert parse_data_item(item.raw) == item
    assert verify_data_item(item)
    tampered = bytearray(item.raw)
    tampered[-1] ^= 1
    assert not verify_data_item(bytes(tampered))
    bad_signature = bytearray(item.raw)
    bad_signature[10] ^= 1
    assert not verify_data_item(bytes(bad_signature))


# --- creation limits -------------------------------------------------------------------


def test_tag_count_limit(signer):
    create_data_item(b"", signer, [(f"n{i}", "v") for i in range(128)])
    with pytest.raises(DataItemError, match=r"tag 128: more than 128 tags"):
        create_data_item(b"", signer, [(f"n{i}", "v") for i in range(129)])


def test_tag_name_limits(signer):
    create_data_item(b"", signer, [("n" * 1024, "v")])
    with pytest.raises(DataItemError, match=r"tag 1 \('x{40}…'\): name is 1025 bytes"):
        create_data_item(b"", signer, [("ok", "v"), ("x" * 1025, "v")])
    with pytest.raises(DataItemError, match=r"tag 0 \(''\): name is 0 bytes"):
        create_data_item(b"", signer, [("", "v")])
    # The limit is in UTF-8 bytes, not characters.
    with pytest.raises(DataItemError, match="name is 1026 bytes"):
        create_data_item(b"", signer, [("é" * 513, "v")])


def test_tag_value_limits(signer):
    create_data_item(b"", signer, [("n", "v" * 3072)])
    with pytest.raises(DataItemError, match=r"tag 0 \('big'\): value is 3073 bytes"):
        create_data_item(b"", signer, [("big", "v" * 3073)])
    with pytest.raises(DataItemError, match=r"tag 2 \('empty'\): value is 0 bytes"):
        create_data_item(b"", signer, [("a", "1"), ("b", "2"), ("empty", "")])


def test_total_tag_bytes_limit(signer):
    # Two tags of 2047 bytes each fit (4 count/terminator bytes + 2 x (2+1+2+2000)).
    create_data_item(b"", signer, [("a", "v" * 2000), ("b", "v" * 2000)])
    with pytest.raises(DataItemError, match=r"tag 1 \('second'\): tags encode to \d+ bytes"):
        create_data_item(b"", signer, [("first", "v" * 3000), ("second", "v" * 3000)])


def test_tag_types_and_unicode(signer):
    with pytest.raises(DataItemError, match=r"tag 0 \('n'\): value must be a string, not int"):
        create_data_item(b"", signer, [("n", 5)])  # type: ignore[list-item]
    with pytest.raises(DataItemError, match="lone surrogate"):
        create_data_item(b"", signer, [("n", "\ud800")])
    with pytest.raises(DataItemError, match="exactly the keys"):
        create_data_item(b"", signer, [{"name": "n", "value": "v", "extra": "x"}])
    with pytest.raises(DataItemError, match="not a Tag"):
        create_data_item(b"", signer, ["n=v"])  # type: ignore[list-item]


@pytest.mark.parametrize("field", ["target", "anchor"])
@pytest.mark.parametrize("value", [b"", b"\x01" * 31, b"\x01" * 33])
def test_target_and_anchor_must_be_32_bytes(signer, field, value):
    with pytest.raises(DataItemError, match=f"{field} must be exactly 32 bytes"):
        create_data_item(b"", signer, **{field: value})


# --- verification ----------------------------------------------------------------------


def _small_item(signer: Ed25519Signer, data: bytes = b"hi") -> DataItem:
    return create_data_item(data, signer, [("k", "v")], anchor=ANCHOR)


@pytest.mark.parametrize("mask", [0x01, 0x80, 0xFF])
def test_every_single_byte_flip_is_rejected(signer, mask):
    item = _small_item(signer)
    assert verify_data_item(item.raw)
    parse_errors = 0
    for position in range(len(item.raw)):
        flipped = bytearray(item.raw)
        flipped[position] ^= mask
        flipped_bytes = bytes(flipped)
        assert not verify_data_item(flipped_bytes), position
        try:
            parse_data_item(flipped_bytes)
        except DataItemError:
            parse_errors += 1
    # Header flips must be caught by the parser, not only by the signature.
    assert parse_errors > 0


def test_truncation_at_every_length(signer):
    empty = create_data_item(b"", signer, [("k", "v")], anchor=ANCHOR)
    for length in range(len(empty.raw)):
        with pytest.raises(DataItemError):
            parse_data_item(empty.raw[:length])
        assert not verify_data_item(empty.raw[:length])
    item = _small_item(signer, b"some data")
    data_start = len(item.raw) - len(item.data)
    for length in range(len(item.raw)):
        if length < data_start:
            with pytest.raises(DataItemError):
                parse_data_item(item.raw[:length])
        assert not verify_data_item(item.raw[:length])


def test_appended_bytes_are_rejected(signer):
    item = _small_item(signer)
    assert not verify_data_item(item.raw + b"\x00")


def test_fields_must_match_raw(signer):
    item = _small_item(signer)
    assert not verify_data_item(dataclasses.replace(item, data=b"other"))
    assert not verify_data_item(dataclasses.replace(item, tags=(Tag("k", "w"),)))
    assert not verify_data_item(dataclasses.replace(item, raw=item.raw[:-1]))


def test_verify_never_raises_on_junk():
    for junk in (None, 5, "text", b"", [b"x"], object()):
        assert verify_data_item(junk) is False  # type: ignore[arg-type]


def test_wrong_signer_owner_is_rejected(signer):
    item = _small_item(signer)
    other = Ed25519Signer(bytes(32))
    swapped = item.raw[:66] + other.owner + item.raw[98:]
    assert parse_data_item(swapped).owner == other.owner
    assert not verify_data_item(swapped)


# --- parsing ---------------------------------------------------------------------------


def test_parse_accepts_bytes_like(signer):
    item = _small_item(signer)
    assert parse_data_item(bytearray(item.raw)) == item
    assert parse_data_item(memoryview(item.raw)) == item
    with pytest.raises(DataItemError, match="must be bytes"):
        parse_data_item("text")  # type: ignore[arg-type]


def test_parse_minimum_size():
    with pytest.raises(DataItemError, match="at least 80"):
        parse_data_item(b"\x02\x00" + bytes(77))


@pytest.mark.parametrize("signature_type", [0, 3, 4, 7, 101, 65535])
def test_unsupported_signature_types(signer, signature_type):
    raw = struct.pack("<H", signature_type) + _small_item(signer).raw[2:]
    with pytest.raises(DataItemError, match=f"unsupported signature type {signature_type}$"):
        parse_data_item(raw)
    assert not verify_data_item(raw)


@pytest.mark.parametrize("offset", [98, 99])
@pytest.mark.parametrize("value", [2, 0x80, 0xFF])
def test_presence_bytes_must_be_0_or_1(signer, offset, value):
    raw = bytearray(create_data_item(b"x" * 64, signer, anchor=ANCHOR).raw)
    if offset == 99:
        raw[98] = 0  # keep the target absent so the anchor byte stays at 99
    raw[offset] = value
    what = "target" if offset == 98 else "anchor"
    with pytest.raises(DataItemError, match=f"{what} presence byte is {value}"):
        parse_data_item(bytes(raw))


def test_tag_bytes_limit(signer):
    at_limit = _zigzag(1) + _avro_text("n") + _avro_text("v" * 4090) + b"\x00"
    assert len(at_limit) == 4096
    assert verify_data_item(_signed_item(signer, at_limit, 1))
    raw_tags = _zigzag(1) + _avro_text("n") + _avro_text("v" * 4091) + b"\x00"
    assert len(raw_tags) == 4097
    raw = _signed_item(signer, raw_tags, 1)
    with pytest.raises(DataItemError, match="at most 4096"):
        parse_data_item(raw)
    assert not verify_data_item(raw)


def test_tag_count_must_match_header(signer):
    raw_tags = _zigzag(1) + _avro_text("n") + _avro_text("v") + b"\x00"
    for announced in (0, 2, 2**64 - 1):
        raw = _signed_item(signer, raw_tags, announced)
        with pytest.raises(DataItemError, match=f"announces {announced} tags but 1"):
            parse_data_item(raw)
        assert not verify_data_item(raw)


def test_multi_block_and_negative_count_tags_parse_and_verify(signer):
    block_two = _avro_text("b") + _avro_text("2") + _avro_text("c") + _avro_text("3")
    raw_tags = (
        _zigzag(1)
        + _avro_text("a")
        + _avro_text("1")
        + _zigzag(-2)
        + _zigzag(len(block_two))
        + block_two
        + _zigzag(1)
        + _avro_text("d")
        + _avro_text("4")
        + b"\x00"
    )
    raw = _signed_item(signer, raw_tags, 4)
    item = parse_data_item(raw)
    assert item.tags == (Tag("a", "1"), Tag("b", "2"), Tag("c", "3"), Tag("d", "4"))
    assert item.raw_tags() == raw_tags
    assert verify_data_item(raw)


def test_negative_block_size_must_match(signer):
    block = _avro_text("b") + _avro_text("2")
    raw_tags = _zigzag(-1) + _zigzag(len(block) + 1) + block + b"\x00"
    with pytest.raises(DataItemError, match="byte size does not match"):
        parse_data_item(_signed_item(signer, raw_tags, 1))


def test_count_zero_with_empty_array_bytes(signer):
    # A lone terminator is an empty Avro array: zero tags, consistent with the header.
    raw = _signed_item(signer, b"\x00", 0)
    assert parse_data_item(raw).tags == ()
    assert verify_data_item(raw)


@pytest.mark.parametrize(
    ("raw_tags", "message"),
    [
        (_zigzag(1) + _avro_text("n") + _avro_text("v"), "end inside a varint"),
        (_zigzag(1) + _avro_text("n") + _avro_text("v") + b"\x00\x00", "continue after"),
        (_zigzag(1) + _avro_text("n") + _zigzag(5) + b"ab" + b"\x00", "runs past the end"),
        (_zigzag(1) + _avro_text("n") + _zigzag(-3) + b"abc\x00", "negative length"),
        (_zigzag(1) + _zigzag(2) + b"\xff\xfe" + _avro_text("v") + b"\x00", "not valid UTF-8"),
        (b"\xff" * 11, "longer than 10 bytes"),
        (b"\xff" * 9 + b"\x7f", "overflows 64 bits"),
        (_zigzag(1000) + _avro_text("n") + _avro_text("v") + b"\x00", "count exceeds"),
        (_zigzag(-1) + _zigzag(-5) + _avro_text("n") + _avro_text("v"), "negative byte size"),
    ],
)
def test_malformed_tags(signer, raw_tags, message):
    raw = _signed_item(signer, raw_tags, 1)
    with pytest.raises(DataItemError, match=message):
        parse_data_item(raw)
    assert not verify_data_item(raw)


def test_items_without_anchor_and_with_target_parse(signer):
    raw = _signed_item(signer, b"", 0, b"d", target=TARGET, anchor=None)
    item = parse_data_item(raw)
    assert (item.target, item.anchor, item.data) == (TARGET, None, b"d")
    assert verify_data_item(raw)
    assert item.signing_message() == deep_hash(
        [b"dataitem", b"1", b"2", signer.owner, TARGET, b"", b"", b"d"]
    )


# --- fuzzing ---------------------------------------------------------------------------

_FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(st.binary(max_size=2000))
def test_fuzz_arbitrary_bytes(raw):
    try:
        parsed = parse_data_item(raw)
    except DataItemError:
        pass  # the only exception allowed
    else:
        assert parsed.raw == raw
        assert len(parsed.signature) + len(parsed.owner) in (96, 1024)
    assert verify_data_item(raw) is False


@st.composite
def _mutated_items(draw):
    signer = Ed25519Signer(SEED)
    tags = draw(
        st.lists(
            st.tuples(st.text(min_size=1, max_size=8), st.text(min_size=1, max_size=8)),
            max_size=4,
        )
    )
    item = create_data_item(draw(st.binary(max_size=40)), signer, tags, anchor=ANCHOR)
    raw = bytearray(item.raw)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["set", "insert", "delete", "truncate"]))
        position = draw(st.integers(0, max(len(raw) - 1, 0)))
        if kind == "set" and raw:
            raw[position] = draw(st.integers(0, 255))
        elif kind == "insert":
            raw[position:position] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "delete" and raw:
            del raw[position]
        elif kind == "truncate":
            del raw[position:]
    return item.raw, bytes(raw)


@_FUZZ
@given(_mutated_items())
def test_fuzz_mutated_items(pair):
    original, mutated = pair
    try:
        parsed = parse_data_item(mutated)
    except DataItemError:
        pass  # the only exception allowed
    else:
        assert parsed.raw == mutated
        assert len(parsed.signature) + len(parsed.owner) in (96, 1024)
    assert verify_data_item(mutated) is (mutated == original)
