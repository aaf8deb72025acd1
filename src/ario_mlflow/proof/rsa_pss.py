"""RSA-PSS-SHA-256 over canonical JSON: ar.io Verify operator attestations.

An operator attestation is a JSON payload signed with the gateway operator's Arweave RSA
key: RSA-PSS, SHA-256, MGF1-SHA-256, salt length 32, signature hex-encoded. The key is a
JWK ``{"kty": "RSA", "n", "e"}`` whose exponent must be 65537, and the operator address is
base64url(SHA-256(modulus octets)). Verification never raises.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ATTESTATION_SALT_LENGTH = 32
_EXPONENT = 65537


def _b64url_to_int(text: str) -> int:
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    return int.from_bytes(raw, "big")


def _int_to_b64url(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def public_jwk(key: rsa.RSAPublicKey) -> dict[str, str]:
    """The ``{"kty", "n", "e"}`` JWK of an RSA public key."""
    numbers = key.public_numbers()
    return {"kty": "RSA", "n": _int_to_b64url(numbers.n), "e": _int_to_b64url(numbers.e)}


def derive_operator_address(n_b64url: str) -> str:
    """Arweave address of a modulus: base64url-nopad(SHA-256(raw modulus octets))."""
    raw = base64.urlsafe_b64decode(n_b64url + "=" * (-len(n_b64url) % 4))
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest()).rstrip(b"=").decode("ascii")


def sign_rsa_pss_sha256(message: bytes, key: rsa.RSAPrivateKey) -> str:
    """Hex RSA-PSS-SHA-256 signature (salt 32) of ``message``."""
    signature = key.sign(
        message,
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=ATTESTATION_SALT_LENGTH),
        hashes.SHA256(),
    )
    return signature.hex()


def verify_rsa_pss_sha256(message: bytes, signature_hex: Any, jwk: Any) -> bool:
    """True iff ``signature_hex`` is a valid attestation signature of ``message``.

    False for any malformed input: a key that is not an RSA JWK, an exponent other than
    65537, a signature that is not hex, or a signature that does not verify.
    """
    try:
        if not isinstance(jwk, dict) or jwk.get("kty") != "RSA":
            return False
        if _b64url_to_int(jwk["e"]) != _EXPONENT:
            return False
        public = rsa.RSAPublicNumbers(_EXPONENT, _b64url_to_int(jwk["n"])).public_key()
        public.verify(
            bytes.fromhex(signature_hex),
            message,
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=ATTESTATION_SALT_LENGTH),
            hashes.SHA256(),
        )
    except (InvalidSignature, KeyError, TypeError, ValueError, binascii.Error):
        return False
    return True
