"""Strict Ed25519 (RFC 8032 with libsodium's checks), hex in and out.

Verification never raises: malformed hex, wrong lengths, small-order keys or a
non-canonical signature are simply "invalid", so a verifier cannot be crashed by the
record it is checking.
"""

from __future__ import annotations

import hashlib

from nacl.bindings import crypto_sign, crypto_sign_seed_keypair
from nacl.exceptions import CryptoError
from nacl.signing import SigningKey, VerifyKey

SEED_BYTES = 32
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64


def signing_key_from_seed(seed: bytes) -> SigningKey:
    """Build a signing key from a 32-byte seed (``ValueError`` otherwise)."""
    if not isinstance(seed, bytes) or len(seed) != SEED_BYTES:
        raise ValueError(f"an Ed25519 seed is {SEED_BYTES} bytes")
    return SigningKey(seed)


def generate_signing_key() -> SigningKey:
    """A fresh random signing key."""
    return SigningKey.generate()


def public_key_hex(key: SigningKey | PreparedKey) -> str:
    """Lowercase hex of the 32-byte verify key."""
    if isinstance(key, PreparedKey):
        return key.public_key_hex
    return bytes(key.verify_key).hex()


def sign(message: bytes, key: SigningKey | PreparedKey) -> str:
    """Lowercase hex of the 64-byte detached signature of ``message``."""
    if isinstance(key, PreparedKey):
        return key.sign(message).hex()
    return bytes(key.sign(message).signature).hex()


class PreparedKey:
    """An Ed25519 key ready for repeated signing.

    libsodium's expanded secret key is derived once (a scalar multiplication), and each
    signature is one ``crypto_sign`` call with no wrapper objects: the predict hot path
    signs every decision with it.
    """

    __slots__ = ("_secret", "public_key", "public_key_hex")

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, bytes) or len(seed) != SEED_BYTES:
            raise ValueError(f"an Ed25519 seed is {SEED_BYTES} bytes")
        public, secret = crypto_sign_seed_keypair(seed)
        self._secret: bytes = secret
        self.public_key: bytes = public
        self.public_key_hex: str = public.hex()

    @classmethod
    def of(cls, key: SigningKey) -> PreparedKey:
        """The prepared form of a PyNaCl signing key."""
        return cls(bytes(key))

    @property
    def seed(self) -> bytes:
        """The 32-byte seed."""
        return self._secret[:SEED_BYTES]

    def sign(self, message: bytes) -> bytes:
        """The 64-byte detached signature of ``message``."""
        # crypto_sign returns signature ‖ message; the detached signature is its head.
        signed: bytes = crypto_sign(message, self._secret)
        return signed[:SIGNATURE_BYTES]

    def __repr__(self) -> str:
        return f"PreparedKey(public_key_hex={self.public_key_hex!r})"


def _strict_hex(value: object, size: int) -> bytes | None:
    if not isinstance(value, str) or len(value) != 2 * size:
        return None
    if value != value.lower():
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None


def verify_signature(message: bytes, signature_hex: object, public_key_hex: object) -> bool:
    """True iff ``signature_hex`` is a valid signature of ``message`` by the key."""
    signature = _strict_hex(signature_hex, SIGNATURE_BYTES)
    key = _strict_hex(public_key_hex, PUBLIC_KEY_BYTES)
    if signature is None or key is None or not isinstance(message, bytes):
        return False
    try:
        VerifyKey(key).verify(message, signature)
    except (CryptoError, ValueError, TypeError):
        return False
    return True


def key_fingerprint(public_key_hex: str) -> str:
    """A short, stable label for a public key: ``ed25519:`` + 16 hex of its SHA-256.

    Derived from the key bytes so that two keys never share a label by chance of a
    common prefix; the full key is always shown next to it where it matters.
    """
    try:
        raw = bytes.fromhex(public_key_hex)
    except ValueError:
        raw = public_key_hex.encode("utf-8", "replace")
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]
