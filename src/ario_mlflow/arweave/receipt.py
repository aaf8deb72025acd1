"""Turbo upload receipts: sign (local gateway) and verify offline (uploader).

A receipt is the upload service's signed promise that it holds a data item and will
settle it on Arweave before ``deadlineHeight``. The service signs, with its Arweave RSA
wallet, the 48-byte deep hash of ``["Bundlr", version, id, deadlineHeight, timestamp]``
(each element as UTF-8 text) using RSA-PSS with SHA-256, MGF1-SHA-256 and salt length 0.
``public`` is the wallet modulus (base64url), so anyone can check a receipt offline.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ario_mlflow.arweave.deephash import deep_hash
from ario_mlflow.arweave.encoding import b64url_decode, b64url_encode
from ario_mlflow.errors import ReceiptError

#: Receipt format version the Turbo service currently issues.
RECEIPT_VERSION = "0.2.0"
_PUBLIC_EXPONENT = 65537
_MIN_MODULUS_BITS = 1024
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=0)


def receipt_message(
    *, version: str, data_item_id: str, deadline_height: int, timestamp_ms: int
) -> bytes:
    """The 48-byte deep hash a receipt signature covers."""
    return deep_hash(
        [
            b"Bundlr",
            version.encode("utf-8"),
            data_item_id.encode("utf-8"),
            str(deadline_height).encode("utf-8"),
            str(timestamp_ms).encode("utf-8"),
        ]
    )


def _modulus_b64url(key: rsa.RSAPublicKey) -> str:
    n = key.public_numbers().n
    return b64url_encode(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def sign_receipt(
    *,
    data_item_id: str,
    owner_address: str,
    key: rsa.RSAPrivateKey,
    timestamp_ms: int,
    deadline_height: int,
    version: str = RECEIPT_VERSION,
    winc: str = "0",
    data_caches: Iterable[str] = ("arweave.net",),
    fast_finality_indexes: Iterable[str] = ("arweave.net",),
) -> dict[str, Any]:
    """A Turbo-shaped receipt for ``data_item_id``, signed as the Turbo service signs."""
    message = receipt_message(
        version=version,
        data_item_id=data_item_id,
        deadline_height=deadline_height,
        timestamp_ms=timestamp_ms,
    )
    signature = key.sign(message, _PSS, hashes.SHA256())
    return {
        "id": data_item_id,
        "timestamp": timestamp_ms,
        "winc": winc,
        "version": version,
        "deadlineHeight": deadline_height,
        "dataCaches": list(data_caches),
        "fastFinalityIndexes": list(fast_finality_indexes),
        "public": _modulus_b64url(key.public_key()),
        "signature": b64url_encode(signature),
        "owner": owner_address,
    }


def verify_receipt(receipt: Any, *, expected_id: str | None = None) -> bool | None:
    """Check a receipt's signature offline; never raises.

    ``None`` when the receipt carries no signature or no public key (nothing to check);
    ``False`` for anything malformed, a signature that does not verify, or an ``id``
    other than ``expected_id``; ``True`` otherwise.
    """
    if not isinstance(receipt, dict):
        return False
    signature_text = receipt.get("signature")
    public_text = receipt.get("public")
    if signature_text in (None, "") or public_text in (None, ""):
        return None
    data_item_id = receipt.get("id")
    version = receipt.get("version")
    deadline_height = receipt.get("deadlineHeight")
    timestamp = receipt.get("timestamp")
    if not (
        isinstance(data_item_id, str)
        and data_item_id
        and isinstance(version, str)
        and isinstance(deadline_height, int)
        and isinstance(timestamp, int)
        and not isinstance(deadline_height, bool)
        and not isinstance(timestamp, bool)
        and isinstance(signature_text, str)
        and isinstance(public_text, str)
    ):
        return False
    if expected_id is not None and data_item_id != expected_id:
        return False
    try:
        modulus = int.from_bytes(b64url_decode(public_text), "big")
        if modulus.bit_length() < _MIN_MODULUS_BITS:
            return False
        public_key = rsa.RSAPublicNumbers(_PUBLIC_EXPONENT, modulus).public_key()
        message = receipt_message(
            version=version,
            data_item_id=data_item_id,
            deadline_height=deadline_height,
            timestamp_ms=timestamp,
        )
        public_key.verify(b64url_decode(signature_text), message, _PSS, hashes.SHA256())
    except (InvalidSignature, ValueError, TypeError, OverflowError):
        return False
    return True


def parse_receipt(body: bytes) -> dict[str, Any]:
    """Decode an upload response body into a receipt dict.

    Raises :class:`~ario_mlflow.errors.ReceiptError` when the body is not a JSON object
    with a non-empty string ``id``. The signature is not checked here (see
    :func:`verify_receipt`).
    """
    try:
        value = json.loads(body)
    except (ValueError, TypeError, RecursionError) as exc:
        raise ReceiptError(f"upload receipt is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ReceiptError(f"upload receipt is a JSON {type(value).__name__}, not an object")
    data_item_id = value.get("id")
    if not isinstance(data_item_id, str) or not data_item_id:
        raise ReceiptError("upload receipt has no data item id")
    return value
