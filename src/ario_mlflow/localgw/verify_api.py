"""The ar.io Verify stand-in: levels computed from the gateway's own checks, then attested.

Levels are cumulative and re-checked on every request against what is stored now:
1 = the gateway holds the item; 2 = SHA-256 of the stored data equals the digest recorded
when the item was accepted; 3 = the stored data item's signature re-verifies (and its id
is still the requested id). Corrupting stored bytes therefore lowers the level, as it
should. The operator attestation is RSA-PSS-SHA-256 (salt 32) over the JCS bytes of the
payload, made with the gateway wallet, in the shape ``ario_mlflow`` verifiers read.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timezone
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from ario_mlflow.arweave.dataitem import parse_data_item, verify_data_item
from ario_mlflow.arweave.encoding import b64url_encode
from ario_mlflow.errors import DataItemError
from ario_mlflow.localgw.chain import SyntheticChain
from ario_mlflow.localgw.store import StoredItem
from ario_mlflow.proof.canonical import canonical_json
from ario_mlflow.proof.hashing import sha256_hex
from ario_mlflow.proof.rsa_pss import derive_operator_address, public_jwk, sign_rsa_pss_sha256

ATTESTATION_VERSION = "1"


def iso_utc(timestamp: float) -> str:
    """``2024-05-01T12:00:00.123Z`` (the JavaScript ``toISOString`` form)."""
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def signature_reverifies(item: StoredItem) -> bool:
    """True iff the stored bytes still parse as a data item with a valid signature and id."""
    try:
        parsed = parse_data_item(item.raw)
    except DataItemError:
        return False
    return parsed.id == item.id and verify_data_item(parsed)


def attestation(
    *,
    item: StoredItem,
    data_hash: str,
    signature_verified: bool,
    level: int,
    block: dict[str, Any] | None,
    key: rsa.RSAPrivateKey,
    gateway: str,
    attested_at: str,
) -> dict[str, Any]:
    """A signed operator attestation of what the gateway found for ``item``."""
    jwk = public_jwk(key.public_key())
    operator = derive_operator_address(jwk["n"])
    payload = {
        "attested_at": attested_at,
        "tx_id": item.id,
        "data_hash": data_hash,
        "data_size": len(item.data),
        "block_height": None if block is None else block["height"],
        "block_timestamp": None if block is None else block["timestamp"],
        "operator": operator,
        "owner_address": item.owner_address,
        "gateway": gateway,
        "signature_verified": signature_verified,
        "level": level,
        "attestation_version": ATTESTATION_VERSION,
    }
    message = canonical_json(payload)
    return {
        "operator": operator,
        "gateway": gateway,
        "attestedAt": attested_at,
        "payload": payload,
        "payloadHash": sha256_hex(message),
        "signature": sign_rsa_pss_sha256(message, key),
        "operatorPublicKey": jwk,
    }


def verification_result(
    tx_id: str,
    item: StoredItem | None,
    *,
    key: rsa.RSAPrivateKey,
    gateway: str,
    chain: SyntheticChain,
    now: float,
) -> dict[str, Any]:
    """The ar.io Verify ``VerificationResult`` for ``tx_id``."""
    verification_id = str(uuid.uuid4())
    stamp = iso_utc(now)
    links = {
        "dashboard": f"/verify/{verification_id}",
        "pdf": f"/api/v1/verify/{verification_id}/pdf",
        "rawData": f"/raw/{tx_id}" if item is not None else None,
    }
    if item is None:
        return {
            "verificationId": verification_id,
            "timestamp": stamp,
            "txId": tx_id,
            "level": None,
            "existence": {
                "status": "not_found",
                "blockHeight": None,
                "blockTimestamp": None,
                "blockId": None,
            },
            "authenticity": {
                "status": "unverified",
                "signatureValid": None,
                "signatureSkipReason": "transaction not found",
                "dataHash": None,
                "gatewayHash": None,
                "hashMatch": None,
            },
            "owner": {"address": None, "publicKey": None, "addressVerified": None},
            "metadata": {"dataSize": None, "contentType": None, "tags": []},
            "bundle": {"isBundled": False, "rootTransactionId": None},
            "gatewayAssessment": {"verified": False, "stable": False, "trusted": True, "hops": 0},
            "attestation": None,
            "links": links,
        }
    data_hash = sha256_hex(item.data)
    hash_ok = data_hash == item.digest
    signature_ok = signature_reverifies(item)
    level = 3 if hash_ok and signature_ok else 2 if hash_ok else 1
    block = chain.block(item, now)
    address_ok = b64url_encode(hashlib.sha256(item.owner).digest()) == item.owner_address
    return {
        "verificationId": verification_id,
        "timestamp": stamp,
        "txId": tx_id,
        "level": level,
        "existence": {
            "status": "confirmed",
            "blockHeight": None if block is None else block["height"],
            "blockTimestamp": None if block is None else block["timestamp"],
            "blockId": None if block is None else block["id"],
        },
        "authenticity": {
            "status": {3: "signature_verified", 2: "hash_verified"}.get(level, "unverified"),
            "signatureValid": signature_ok,
            "signatureSkipReason": None,
            "dataHash": data_hash,
            "gatewayHash": item.digest,
            "hashMatch": hash_ok,
        },
        "owner": {
            "address": item.owner_address,
            "publicKey": b64url_encode(item.owner),
            "addressVerified": address_ok,
        },
        "metadata": {
            "dataSize": len(item.data),
            "contentType": item.content_type,
            "tags": [{"name": name, "value": value} for name, value in item.tags],
        },
        "bundle": {"isBundled": False, "rootTransactionId": None},
        "gatewayAssessment": {
            "verified": hash_ok,
            "stable": chain.is_final(item, now),
            "trusted": True,
            "hops": 0,
        },
        "attestation": attestation(
            item=item,
            data_hash=data_hash,
            signature_verified=signature_ok,
            level=level,
            block=block,
            key=key,
            gateway=gateway,
            attested_at=stamp,
        ),
        "links": links,
    }
