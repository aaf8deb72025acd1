"""The ar.io Verify stand-in: levels from real checks, and a signed operator attestation."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from typing import Any

import pytest
import requests

from ario_mlflow.arweave.signers import ArweaveSigner, Ed25519Signer
from ario_mlflow.localgw import LocalGateway
from ario_mlflow.proof.canonical import canonical_json
from ario_mlflow.proof.hashing import sha256_hex
from ario_mlflow.proof.rsa_pss import derive_operator_address, public_jwk, verify_rsa_pss_sha256
from tests.localgw._support import make_item, upload

DATA = b'{"record": "verify me"}'


def _verify(http: requests.Session, gateway: LocalGateway, tx_id: str) -> dict[str, Any]:
    response = http.post(f"{gateway.url}/api/v1/verify", json={"txId": tx_id}, timeout=10)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _corrupt(gateway: LocalGateway, tx_id: str, column: str, position: int) -> None:
    with sqlite3.connect(gateway.db_path) as db:
        (value,) = db.execute(f"SELECT {column} FROM items WHERE id = ?", (tx_id,)).fetchone()
        changed = bytearray(value)
        changed[position] ^= 0x01
        db.execute(f"UPDATE items SET {column} = ? WHERE id = ?", (bytes(changed), tx_id))
    db.close()


def test_health(gateway: LocalGateway, http: requests.Session) -> None:
    response = http.get(f"{gateway.url}/health", timeout=5)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.parametrize("kind", ["ed25519", "arweave"])
def test_intact_item_reaches_level_3(
    gateway: LocalGateway,
    http: requests.Session,
    signer: Ed25519Signer,
    arweave_signer: ArweaveSigner,
    kind: str,
) -> None:
    chosen = signer if kind == "ed25519" else arweave_signer
    item = make_item(chosen, DATA)
    upload(http, gateway.url, item, chosen.token)
    result = _verify(http, gateway, item.id)
    assert result["txId"] == item.id
    assert result["level"] == 3
    assert result["existence"]["status"] == "confirmed"
    authenticity = result["authenticity"]
    assert authenticity["status"] == "signature_verified"
    assert authenticity["signatureValid"] is True
    assert authenticity["dataHash"] == hashlib.sha256(DATA).hexdigest()
    assert authenticity["hashMatch"] is True
    assert result["owner"]["addressVerified"] is True
    assert result["metadata"]["dataSize"] == len(DATA)
    assert result["links"]["dashboard"] == f"/verify/{result['verificationId']}"
    assert result["links"]["pdf"].startswith("/")


def test_attestation_is_signed_by_the_gateway(
    gateway: LocalGateway, http: requests.Session, signer: Ed25519Signer
) -> None:
    item = make_item(signer, DATA)
    upload(http, gateway.url, item)
    time.sleep(0.35)  # final: block fields are filled in
    result = _verify(http, gateway, item.id)
    attestation = result["attestation"]
    jwk = public_jwk(gateway.public_key)
    assert attestation["operatorPublicKey"] == jwk
    assert attestation["operator"] == derive_operator_address(jwk["n"]) == gateway.operator_address
    assert attestation["gateway"] == f"127.0.0.1:{gateway.port}"
    payload = attestation["payload"]
    assert set(payload) == {
        "attested_at",
        "tx_id",
        "data_hash",
        "data_size",
        "block_height",
        "block_timestamp",
        "operator",
        "owner_address",
        "gateway",
        "signature_verified",
        "level",
        "attestation_version",
    }
    assert payload["tx_id"] == item.id
    assert payload["data_hash"] == sha256_hex(DATA)
    assert payload["level"] == 3
    assert payload["signature_verified"] is True
    assert payload["attestation_version"] == "1"
    assert payload["block_height"] == result["existence"]["blockHeight"] is not None
    assert payload["attested_at"] == attestation["attestedAt"]
    assert attestation["attestedAt"].endswith("Z")
    message = canonical_json(payload)
    assert attestation["payloadHash"] == sha256_hex(message)
    assert verify_rsa_pss_sha256(message, attestation["signature"], jwk) is True
    tampered = canonical_json({**payload, "level": 2})
    assert verify_rsa_pss_sha256(tampered, attestation["signature"], jwk) is False


def test_corrupted_data_drops_to_level_1(
    gateway: LocalGateway, http: requests.Session, signer: Ed25519Signer
) -> None:
    item = make_item(signer, DATA)
    upload(http, gateway.url, item)
    _corrupt(gateway, item.id, "data", 3)
    result = _verify(http, gateway, item.id)
    assert result["level"] == 1
    assert result["authenticity"]["hashMatch"] is False
    assert result["authenticity"]["signatureValid"] is False
    assert result["authenticity"]["status"] == "unverified"
    assert result["authenticity"]["dataHash"] != result["authenticity"]["gatewayHash"]
    payload = result["attestation"]["payload"]
    assert payload["level"] == 1
    assert payload["data_hash"] != sha256_hex(DATA)  # it attests what it really holds


def test_corrupted_signature_is_level_2(
    gateway: LocalGateway, http: requests.Session, signer: Ed25519Signer
) -> None:
    item = make_item(signer, DATA)
    upload(http, gateway.url, item)
    _corrupt(gateway, item.id, "header", 20)  # inside the signature
    result = _verify(http, gateway, item.id)
    assert result["level"] == 2
    assert result["authenticity"]["status"] == "hash_verified"
    assert result["authenticity"]["signatureValid"] is False


def test_unknown_tx_has_no_level(gateway: LocalGateway, http: requests.Session) -> None:
    result = _verify(http, gateway, "C" * 43)
    assert result["level"] is None
    assert result["existence"]["status"] == "not_found"
    assert result["attestation"] is None


@pytest.mark.parametrize("body", [{}, {"txId": "short"}, {"txId": 5}, [], "x"])
def test_bad_requests_are_400(gateway: LocalGateway, http: requests.Session, body: Any) -> None:
    response = http.post(f"{gateway.url}/api/v1/verify", json=body, timeout=5)
    assert response.status_code == 400


def test_results_can_be_fetched_again(
    gateway: LocalGateway, http: requests.Session, signer: Ed25519Signer
) -> None:
    item = make_item(signer, DATA)
    upload(http, gateway.url, item)
    result = _verify(http, gateway, item.id)
    again = http.get(f"{gateway.url}/api/v1/verify/{result['verificationId']}", timeout=5)
    assert again.json() == result
    page = http.get(gateway.url + result["links"]["dashboard"], timeout=5)
    assert page.status_code == 200
    assert item.id in page.text
    assert http.get(f"{gateway.url}/api/v1/verify/nope", timeout=5).status_code == 404


def test_project_verify_client_accepts_the_attestation(
    gateway: LocalGateway, http: requests.Session, signer: Ed25519Signer
) -> None:
    from ario_mlflow.arweave.ario_verify import ArioVerifyClient

    item = make_item(signer, DATA)
    upload(http, gateway.url, item)
    client = ArioVerifyClient(gateway.url, max_retries=0)
    assert client.enabled
    result = client.submit_verification(item.id, expected_data_hash=sha256_hex(DATA))
    assert result is not None
    assert result["attestation_level"] == 3
    assert result["attestation_signature_valid"] is True
    assert result["data_hash_matches"] is True
    assert result["report_url"].startswith(gateway.url)
