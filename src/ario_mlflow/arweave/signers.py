"""Signers for ANS-104 data items: Ed25519 (Solana wallets) and Arweave RSA-4096.

A signer is what pays Turbo for, and signs, the data item that carries a record. It is
unrelated to the Ed25519 key that signs the envelope itself: verifying a record never
depends on which wallet uploaded it.

Only the two signature types Turbo accepts from our wallets are implemented. The key
material lives in the signer object; nothing here reads or writes files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from nacl.exceptions import CryptoError
from nacl.signing import VerifyKey

from ario_mlflow.arweave.encoding import b58encode, b64url_decode, b64url_encode
from ario_mlflow.proof.ed25519 import PreparedKey

#: ANS-104 signature type of Arweave RSA-4096 PSS keys.
ARWEAVE_SIGNATURE_TYPE = 1
#: ANS-104 signature type of Ed25519 keys (Solana wallets use it too).
ED25519_SIGNATURE_TYPE = 2

#: ``signature type -> (signature length, owner length)`` in bytes, for the types we can
#: verify. The lengths are fixed by the type (arbundles ``SIG_CONFIG``).
SIGNATURE_LAYOUTS: Mapping[int, tuple[int, int]] = {
    ARWEAVE_SIGNATURE_TYPE: (512, 512),
    ED25519_SIGNATURE_TYPE: (64, 32),
}

#: Arweave verifiers rebuild the public key from the owner (the modulus) alone, with
#: this exponent; a key with any other exponent signs items nobody can verify.
ARWEAVE_EXPONENT = 65537
ARWEAVE_MODULUS_BITS = 4096
_MODULUS_BYTES = ARWEAVE_MODULUS_BITS // 8

_JWK_PRIVATE_FIELDS = ("n", "e", "d", "p", "q", "dp", "dq", "qi")
_PSS_HASH = hashes.SHA256()


@runtime_checkable
class Signer(Protocol):
    """What :func:`~ario_mlflow.arweave.dataitem.create_data_item` needs from a wallet."""

    @property
    def signature_type(self) -> int:
        """ANS-104 signature type (1 Arweave, 2 Ed25519)."""

    @property
    def signature_length(self) -> int:
        """Length in bytes of every signature this signer produces."""

    @property
    def owner(self) -> bytes:
        """Raw owner bytes written into the item (public key or RSA modulus)."""

    @property
    def address(self) -> str:
        """The wallet's address on its chain (base58 for Solana, base64url for Arweave)."""

    @property
    def token(self) -> str:
        """Turbo upload token naming the chain that pays: ``"solana"`` or ``"arweave"``."""

    def sign(self, message: bytes) -> bytes:
        """Signature of ``message`` (the 48-byte deep hash of the item)."""


class Ed25519Signer:
    """ANS-104 type 2: raw Ed25519 over the deep hash; a Solana wallet's keypair."""

    signature_type = ED25519_SIGNATURE_TYPE
    signature_length = 64
    token = "solana"

    __slots__ = ("_key", "address", "owner")

    def __init__(self, seed: bytes) -> None:
        self._key = PreparedKey(seed)
        self.owner: bytes = self._key.public_key
        self.address: str = b58encode(self.owner)

    @property
    def seed(self) -> bytes:
        """The 32-byte seed (Solana ``id.json`` holds seed ‖ public key)."""
        return self._key.seed

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"Ed25519Signer(address={self.address!r})"


def _jwk_int(jwk: Mapping[str, Any], name: str) -> int:
    value = jwk.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"JWK field {name!r} is not a base64url string")
    try:
        return int.from_bytes(b64url_decode(value), "big")
    except ValueError:
        raise ValueError(f"JWK field {name!r} is not a base64url string") from None


class ArweaveSigner:
    """ANS-104 type 1: RSA-4096 PSS (SHA-256, MGF1-SHA-256, maximal salt), an Arweave wallet.

    Built from a private JWK. The key material is checked by constructing the key (which
    rejects ``p*q != n`` and inconsistent CRT values), so a corrupt wallet fails here
    instead of producing items that never verify.
    """

    signature_type = ARWEAVE_SIGNATURE_TYPE
    signature_length = _MODULUS_BYTES
    token = "arweave"

    __slots__ = ("_key", "address", "owner")

    def __init__(self, jwk: Mapping[str, Any]) -> None:
        if not isinstance(jwk, Mapping):
            raise ValueError("an Arweave wallet is a JWK object")
        if jwk.get("kty", "RSA") != "RSA":
            raise ValueError(f"JWK key type {jwk.get('kty')!r} is not RSA")
        n, e, d, p, q, dp, dq, qi = (_jwk_int(jwk, name) for name in _JWK_PRIVATE_FIELDS)
        if n.bit_length() != ARWEAVE_MODULUS_BITS:
            raise ValueError(
                f"modulus is {n.bit_length()} bits; Arweave data items need RSA-"
                f"{ARWEAVE_MODULUS_BITS}"
            )
        if e != ARWEAVE_EXPONENT:
            raise ValueError(f"public exponent is {e}; Arweave verifiers assume 65537")
        public_numbers = rsa.RSAPublicNumbers(e, n)
        try:
            key = rsa.RSAPrivateNumbers(p, q, d, dp, dq, qi, public_numbers).private_key()
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise ValueError(f"inconsistent RSA key material ({exc})") from None
        if key.public_key().public_numbers() != public_numbers:
            raise ValueError("private key does not match the modulus n and exponent e")
        self._key: rsa.RSAPrivateKey = key
        self.owner: bytes = n.to_bytes(_MODULUS_BYTES, "big")
        self.address: str = b64url_encode(hashlib.sha256(self.owner).digest())

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(
            message,
            padding.PSS(mgf=padding.MGF1(_PSS_HASH), salt_length=padding.PSS.MAX_LENGTH),
            _PSS_HASH,
        )

    def __repr__(self) -> str:
        return f"ArweaveSigner(address={self.address!r})"


@lru_cache(maxsize=64)
def _arweave_public_key(owner: bytes) -> rsa.RSAPublicKey:
    return rsa.RSAPublicNumbers(ARWEAVE_EXPONENT, int.from_bytes(owner, "big")).public_key()


def _verify_arweave(owner: bytes, message: bytes, signature: bytes) -> bool:
    try:
        key = _arweave_public_key(owner)
        # AUTO: Arweave implementations differ in salt length (max, 32, 0); any PSS
        # salt is as sound as another, and arbundles' verifier accepts them all.
        key.verify(
            signature,
            message,
            padding.PSS(mgf=padding.MGF1(_PSS_HASH), salt_length=padding.PSS.AUTO),
            _PSS_HASH,
        )
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _verify_ed25519(owner: bytes, message: bytes, signature: bytes) -> bool:
    try:
        VerifyKey(owner).verify(message, signature)
    except (CryptoError, ValueError, TypeError):
        return False
    return True


def verify_item_signature(
    signature_type: int, owner: bytes, message: bytes, signature: bytes
) -> bool:
    """True iff ``signature`` over ``message`` is valid for ``owner`` under the type.

    Never raises: an unknown type, wrong lengths or a non-bytes argument are "invalid".
    """
    if not all(isinstance(value, bytes) for value in (owner, message, signature)):
        return False
    layout = SIGNATURE_LAYOUTS.get(signature_type) if isinstance(signature_type, int) else None
    if layout is None or (len(signature), len(owner)) != layout:
        return False
    if signature_type == ED25519_SIGNATURE_TYPE:
        return _verify_ed25519(owner, message, signature)
    return _verify_arweave(owner, message, signature)
