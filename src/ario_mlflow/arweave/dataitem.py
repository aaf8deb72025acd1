"""ANS-104 data items: build, serialize, parse and verify.

Layout (integers little-endian): u16 signature type ‖ signature ‖ owner ‖ target
presence byte (+32) ‖ anchor presence byte (+32) ‖ u64 tag count ‖ u64 tag byte length ‖
Avro-encoded tags ‖ data. The signature covers the deep hash of
``["dataitem", "1", type, owner, target, anchor, raw tags, data]`` — the form arbundles
and Turbo implement (the spec's prose omits the type). The item id is
base64url(SHA-256(signature)).

Creation enforces the spec's tag limits. Parsing accepts what arbundles' verifier
accepts, except that it is stricter where an honest encoder never differs: presence
bytes must be 0 or 1, tag bytes must decode completely as UTF-8 Avro, and every
malformation is a :class:`~ario_mlflow.errors.DataItemError`, never a stray exception.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeAlias

from ario_mlflow.arweave.deephash import deep_hash
from ario_mlflow.arweave.encoding import b64url_encode
from ario_mlflow.arweave.signers import SIGNATURE_LAYOUTS, Signer, verify_item_signature
from ario_mlflow.errors import DataItemError

MIN_ITEM_BYTES = 80
MAX_TAG_BYTES = 4096
MAX_TAGS = 128
MAX_TAG_NAME_BYTES = 1024
MAX_TAG_VALUE_BYTES = 3072
TARGET_BYTES = 32
ANCHOR_BYTES = 32

_U16 = struct.Struct("<H")
_U64_PAIR = struct.Struct("<QQ")
_MAX_VARINT_BYTES = 10  # a 64-bit Avro long


@dataclass(frozen=True)
class Tag:
    """One ANS-104 tag; both strings travel as UTF-8 bytes."""

    name: str
    value: str


@dataclass(frozen=True)
class DataItem:
    """A signed ANS-104 data item: its fields and the exact bytes they came from."""

    signature_type: int
    signature: bytes
    owner: bytes
    target: bytes | None
    anchor: bytes | None
    tags: tuple[Tag, ...]
    data: bytes
    raw: bytes

    @property
    def id(self) -> str:
        """The item id: base64url (no padding) of SHA-256 of the signature, 43 chars."""
        return b64url_encode(hashlib.sha256(self.signature).digest())

    def raw_tags(self) -> bytes:
        """The Avro tag bytes exactly as serialized (and signed) in :attr:`raw`."""
        start = (
            2
            + len(self.signature)
            + len(self.owner)
            + (1 + TARGET_BYTES if self.target is not None else 1)
            + (1 + ANCHOR_BYTES if self.anchor is not None else 1)
        )
        try:
            _count, length = _U64_PAIR.unpack_from(self.raw, start)
        except struct.error:
            raise DataItemError("raw bytes do not match the item's fields") from None
        return self.raw[start + 16 : start + 16 + length]

    def signing_message(self) -> bytes:
        """The 48-byte deep hash the signature is over."""
        return _signing_message(
            self.signature_type,
            self.owner,
            target=self.target,
            anchor=self.anchor,
            raw_tags=self.raw_tags(),
            data=self.data,
        )


# --- signing message -------------------------------------------------------------------


@lru_cache(maxsize=32)
def _message_prefix(signature_type: int, owner: bytes) -> bytes:
    """Deep-hash accumulator after the four leading elements, constant per signer.

    The deep hash of a list folds its elements left to right, so the part that depends
    only on the signer is computed once rather than for every item.
    """
    accumulator = hashlib.sha384(b"list8").digest()
    for element in (b"dataitem", b"1", str(signature_type).encode(), owner):
        accumulator = hashlib.sha384(accumulator + deep_hash(element)).digest()
    return accumulator


def _signing_message(
    signature_type: int,
    owner: bytes,
    *,
    target: bytes | None,
    anchor: bytes | None,
    raw_tags: bytes,
    data: bytes,
) -> bytes:
    accumulator = _message_prefix(signature_type, owner)
    for element in (target or b"", anchor or b"", raw_tags, data):
        accumulator = hashlib.sha384(accumulator + deep_hash(element)).digest()
    return accumulator


# --- Avro tags -------------------------------------------------------------------------


def _write_long(value: int, out: bytearray) -> None:
    """Append an Avro long (zigzag, then little-endian base-128 varint)."""
    zigzag = (value << 1) ^ (value >> 63)
    while zigzag > 0x7F:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)


def _encode_tags(encoded: list[tuple[bytes, bytes]]) -> bytes:
    """Avro ``array<record{name: bytes, value: bytes}>`` in one block; empty for no tags."""
    if not encoded:
        return b""  # what arbundles writes for an item without tags
    out = bytearray()
    _write_long(len(encoded), out)
    for name, value in encoded:
        _write_long(len(name), out)
        out += name
        _write_long(len(value), out)
        out += value
    out.append(0)
    return bytes(out)


def _read_long(buffer: bytes, position: int) -> tuple[int, int]:
    """Read an Avro long at ``position``; return (value, next position)."""
    result = 0
    for index in range(_MAX_VARINT_BYTES):
        if position + index >= len(buffer):
            raise DataItemError("tag bytes end inside a varint")
        byte = buffer[position + index]
        result |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            if result >> 64:
                raise DataItemError("tag varint overflows 64 bits")
            return (result >> 1) ^ -(result & 1), position + index + 1
    raise DataItemError("tag varint is longer than 10 bytes")


def _read_text(buffer: bytes, position: int, what: str) -> tuple[str, int]:
    length, position = _read_long(buffer, position)
    if length < 0:
        raise DataItemError(f"tag {what} has a negative length")
    end = position + length
    if end > len(buffer):
        raise DataItemError(f"tag {what} runs past the end of the tag bytes")
    try:
        return buffer[position:end].decode("utf-8"), end
    except UnicodeDecodeError:
        raise DataItemError(f"tag {what} is not valid UTF-8") from None


def _decode_tags(buffer: bytes) -> tuple[Tag, ...]:
    """Decode Avro tag bytes: any number of blocks, negative counts with a byte size."""
    if not buffer:
        return ()
    tags: list[Tag] = []
    position = 0
    while True:
        count, position = _read_long(buffer, position)
        if count == 0:
            break
        block_size = None
        if count < 0:
            count = -count
            block_size, position = _read_long(buffer, position)
            if block_size < 0:
                raise DataItemError("tag block has a negative byte size")
        # Each tag takes at least two bytes; a larger count cannot be honest.
        if count > (len(buffer) - position) // 2:
            raise DataItemError("tag block count exceeds the tag bytes")
        block_start = position
        for _ in range(count):
            name, position = _read_text(buffer, position, f"{len(tags)} name")
            value, position = _read_text(buffer, position, f"{len(tags)} value")
            tags.append(Tag(name, value))
        if block_size is not None and position - block_start != block_size:
            raise DataItemError("tag block byte size does not match its contents")
    if position != len(buffer):
        raise DataItemError("tag bytes continue after the end of the tag array")
    return tuple(tags)


# --- creation --------------------------------------------------------------------------

TagLike: TypeAlias = "Tag | tuple[str, str] | Mapping[str, str]"


def _tag_label(index: int, name: object) -> str:
    if isinstance(name, str):
        shown = name if len(name) <= 40 else name[:40] + "…"
        return f"tag {index} ({shown!r})"
    return f"tag {index}"


def _as_pair(index: int, tag: object) -> tuple[str, str]:
    if isinstance(tag, Tag):
        name, value = tag.name, tag.value
    elif isinstance(tag, Mapping):
        if set(tag) != {"name", "value"}:
            raise DataItemError(f"tag {index} must have exactly the keys 'name' and 'value'")
        name, value = tag["name"], tag["value"]
    elif isinstance(tag, tuple) and len(tag) == 2:
        name, value = tag
    else:
        raise DataItemError(f"tag {index} is not a Tag, a (name, value) pair or a name/value dict")
    for what, text in (("name", name), ("value", value)):
        if not isinstance(text, str):
            raise DataItemError(
                f"{_tag_label(index, name)}: {what} must be a string, not {type(text).__name__}"
            )
    return name, value


def _encode_text(label: str, what: str, text: str, limit: int) -> bytes:
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:
        raise DataItemError(f"{label}: {what} is not valid Unicode (lone surrogate)") from None
    if not 1 <= len(raw) <= limit:
        raise DataItemError(
            f"{label}: {what} is {len(raw)} bytes; ANS-104 allows 1 to {limit} bytes"
        )
    return raw


def _varint_size(value: int) -> int:
    return max(1, ((value << 1).bit_length() + 6) // 7)


def _validated_tags(tags: Iterable[TagLike]) -> tuple[tuple[Tag, ...], bytes]:
    """Check the spec's creation limits; return the tags and their Avro bytes."""
    checked: list[Tag] = []
    encoded: list[tuple[bytes, bytes]] = []
    for index, tag in enumerate(tags):
        if index >= MAX_TAGS:
            raise DataItemError(f"tag {index}: more than {MAX_TAGS} tags")
        name, value = _as_pair(index, tag)
        label = _tag_label(index, name)
        raw_name = _encode_text(label, "name", name, MAX_TAG_NAME_BYTES)
        raw_value = _encode_text(label, "value", value, MAX_TAG_VALUE_BYTES)
        checked.append(tag if isinstance(tag, Tag) else Tag(name, value))
        encoded.append((raw_name, raw_value))
    raw_tags = _encode_tags(encoded)
    if len(raw_tags) > MAX_TAG_BYTES:
        index = _first_overflowing_tag(encoded)
        raise DataItemError(
            f"{_tag_label(index, checked[index].name)}: tags encode to {len(raw_tags)} bytes; "
            f"ANS-104 allows at most {MAX_TAG_BYTES} in all"
        )
    return tuple(checked), raw_tags


def _first_overflowing_tag(encoded: list[tuple[bytes, bytes]]) -> int:
    """Index of the first tag that no longer fits in the Avro byte budget."""
    size = _varint_size(len(encoded)) + 1  # block count and terminator
    for index, (raw_name, raw_value) in enumerate(encoded):
        size += _varint_size(len(raw_name)) + len(raw_name)
        size += _varint_size(len(raw_value)) + len(raw_value)
        if size > MAX_TAG_BYTES:
            return index
    return len(encoded) - 1


def _check_32(what: str, value: object) -> bytes:
    raw = _as_bytes(value, what)
    if len(raw) != 32:
        raise DataItemError(f"{what} must be exactly 32 bytes, not {len(raw)}")
    return raw


def _as_bytes(value: object, what: str) -> bytes:
    """``value`` as bytes, copying only when it is another bytes-like type."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise DataItemError(f"{what} must be bytes, not {type(value).__name__}")


def create_data_item(
    data: bytes | bytearray | memoryview,
    signer: Signer,
    tags: Iterable[TagLike] = (),
    *,
    target: bytes | None = None,
    anchor: bytes | None = None,
) -> DataItem:
    """Build and sign a data item.

    ``anchor`` defaults to 32 random bytes so that two uploads of the same record are
    distinct items (Turbo answers a duplicate with 202 and no receipt). Tags may be
    :class:`Tag`, ``(name, value)`` pairs or ``{"name", "value"}`` dicts.
    """
    data = _as_bytes(data, "data")
    checked_tags, raw_tags = _validated_tags(tags)
    if target is not None:
        target = _check_32("target", target)
    anchor = os.urandom(ANCHOR_BYTES) if anchor is None else _check_32("anchor", anchor)

    signature_type = signer.signature_type
    owner = signer.owner
    layout = SIGNATURE_LAYOUTS.get(signature_type)
    if layout is None or layout != (signer.signature_length, len(owner)):
        raise DataItemError(f"signer has an unsupported layout (type {signature_type})")

    message = _signing_message(
        signature_type, owner, target=target, anchor=anchor, raw_tags=raw_tags, data=data
    )
    signature = signer.sign(message)
    if len(signature) != layout[0]:
        raise DataItemError(f"signer returned a {len(signature)}-byte signature")

    raw = b"".join(
        (
            _U16.pack(signature_type),
            signature,
            owner,
            b"\x00" if target is None else b"\x01" + target,
            b"\x01" + anchor,
            _U64_PAIR.pack(len(checked_tags), len(raw_tags)),
            raw_tags,
            data,
        )
    )
    return DataItem(signature_type, signature, owner, target, anchor, checked_tags, data, raw)


# --- parsing and verification ----------------------------------------------------------


def _optional_32(raw: bytes, position: int, what: str) -> tuple[bytes | None, int]:
    presence = raw[position]
    if presence == 0:
        return None, position + 1
    if presence != 1:
        raise DataItemError(f"{what} presence byte is {presence}, not 0 or 1")
    end = position + 1 + 32
    if end > len(raw):
        raise DataItemError(f"item is truncated inside the {what}")
    return raw[position + 1 : end], end


def parse_data_item(raw: bytes | bytearray | memoryview) -> DataItem:
    """Parse serialized item bytes; :class:`DataItemError` for anything malformed.

    Structure only: the signature is not checked here (see :func:`verify_data_item`).
    """
    raw = _as_bytes(raw, "a data item")
    if len(raw) < MIN_ITEM_BYTES:
        raise DataItemError(f"item is {len(raw)} bytes; ANS-104 items are at least 80")
    (signature_type,) = _U16.unpack_from(raw, 0)
    layout = SIGNATURE_LAYOUTS.get(signature_type)
    if layout is None:
        raise DataItemError(f"unsupported signature type {signature_type}")
    signature_length, owner_length = layout
    position = 2 + signature_length + owner_length
    # +2: the two presence bytes must exist before we look at them.
    if position + 2 > len(raw):
        raise DataItemError("item is truncated inside the signature or owner")
    signature = raw[2 : 2 + signature_length]
    owner = raw[2 + signature_length : position]
    target, position = _optional_32(raw, position, "target")
    if position >= len(raw):
        raise DataItemError("item is truncated before the anchor")
    anchor, position = _optional_32(raw, position, "anchor")
    if position + 16 > len(raw):
        raise DataItemError("item is truncated inside the tag header")
    tag_count, tag_bytes_length = _U64_PAIR.unpack_from(raw, position)
    position += 16
    if tag_bytes_length > MAX_TAG_BYTES:
        raise DataItemError(
            f"tag bytes length is {tag_bytes_length}; ANS-104 allows at most {MAX_TAG_BYTES}"
        )
    if position + tag_bytes_length > len(raw):
        raise DataItemError("item is truncated inside the tags")
    tags = _decode_tags(raw[position : position + tag_bytes_length])
    if len(tags) != tag_count:
        raise DataItemError(f"header announces {tag_count} tags but {len(tags)} are encoded")
    data = raw[position + tag_bytes_length :]
    return DataItem(signature_type, signature, owner, target, anchor, tags, data, raw)


def verify_data_item(item: DataItem | bytes) -> bool:
    """True iff the item is well formed and its signature verifies. Never raises.

    A :class:`DataItem` is judged by its :attr:`~DataItem.raw` bytes (what is uploaded),
    and its fields must be the ones those bytes encode.
    """
    try:
        if isinstance(item, DataItem):
            parsed = parse_data_item(item.raw)
            if parsed != item:
                return False
        else:
            parsed = parse_data_item(item)
        message = parsed.signing_message()
    except DataItemError:
        return False
    return verify_item_signature(parsed.signature_type, parsed.owner, message, parsed.signature)
