"""SHA-256 helpers: the one hash every commitment uses."""

from __future__ import annotations

import hashlib

#: SHA-256 of the empty string, handy in tests and for empty Merkle trees.
EMPTY_SHA256_HEX = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def sha256_hex(data: bytes) -> str:
    """Lowercase hex SHA-256 of ``data`` (64 characters, no prefix)."""
    return hashlib.sha256(data).hexdigest()


def is_sha256_hex(value: object) -> bool:
    """True for a 64-character lowercase hex string."""
    return (
        isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)
    )
