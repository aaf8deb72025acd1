"""Arweave's deep hash (SHA-384): what ANS-104 items and Turbo receipts sign."""

from __future__ import annotations

import hashlib
from typing import TypeAlias

DeepHashable: TypeAlias = "bytes | list[DeepHashable]"


def _sha384(data: bytes) -> bytes:
    return hashlib.sha384(data).digest()


def deep_hash(value: DeepHashable) -> bytes:
    """Deep hash of a blob or a (nested) list of blobs, as arweave-js computes it.

    blob: ``sha384(sha384("blob" + len) ‖ sha384(bytes))``;
    list: ``acc = sha384("list" + count)`` then ``acc = sha384(acc ‖ deep_hash(item))``.
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        blob = bytes(value)
        return _sha384(_sha384(b"blob" + str(len(blob)).encode()) + _sha384(blob))
    accumulator = _sha384(b"list" + str(len(value)).encode())
    for item in value:
        accumulator = _sha384(accumulator + deep_hash(item))
    return accumulator
