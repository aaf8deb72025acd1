"""Gateway reads: ``/raw/{id}`` and ``/{id}`` bytes and headers, Turbo status."""

from __future__ import annotations

import base64
import hashlib
import time

import pytest
import requests

from ario_mlflow.arweave.encoding import b64url_encode
from ario_mlflow.arweave.signers import Ed25519Signer
from ario_mlflow.localgw import LocalGateway
from tests.localgw._support import make_item, upload

DATA = b'{"spec_version":"ario.mlflow/v1","x":1}'


@pytest.mark.parametrize("path", ["/raw/{id}", "/{id}"])
def test_get_returns_exact_bytes_and_digests(
    gateway: LocalGateway, http: requests.Session, signer: Ed25519Signer, path: str
) -> None:
    item = make_item(signer, DATA, (("Content-Type", "application/json"), ("App-Name", "t")))
    upload(http, gateway.url, item)
    response = http.get(gateway.url + path.format(id=item.id), timeout=5)
    assert response.status_code == 200
    assert response.content == DATA
    digest = hashlib.sha256(DATA).digest()
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Content-Length"] == str(len(DATA))
    assert response.headers["X-AR-IO-Digest"] == b64url_encode(digest)
    assert response.headers["Content-Digest"] == f"sha-256=:{base64.b64encode(digest).decode()}:"
    assert response.headers["ETag"] == f'"{b64url_encode(digest)}"'
    assert response.headers["X-AR-IO-Data-Id"] == item.id


def test_head_has_headers_and_no_body(
    gateway: LocalGateway, http: requests.Session, signer: Ed25519Signer
) -> None:
    item = make_item(signer, DATA)
    upload(http, gateway.url, item)
    response = http.head(f"{gateway.url}/raw/{item.id}", timeout=5)
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["Content-Length"] == str(len(DATA))
    assert response.headers["X-AR-IO-Digest"] == b64url_encode(hashlib.sha256(DATA).digest())
    # The connection stays usable after a HEAD (no stray body bytes on the wire).
    assert http.get(f"{gateway.url}/raw/{item.id}", timeout=5).content == DATA


def test_content_type_defaults_to_octet_stream(
    gateway: LocalGateway, http: requests.Session, signer: Ed25519Signer
) -> None:
    item = make_item(signer, b"\x00\x01binary", (("App-Name", "t"),))
    upload(http, gateway.url, item)
    response = http.get(f"{gateway.url}/raw/{item.id}", timeout=5)
    assert response.headers["Content-Type"] == "application/octet-stream"


def test_unknown_and_invalid_ids(gateway: LocalGateway, http: requests.Session) -> None:
    unknown = "A" * 43
    assert http.get(f"{gateway.url}/raw/{unknown}", timeout=5).status_code == 404
    assert http.head(f"{gateway.url}/{unknown}", timeout=5).status_code == 404
    for bad in ("short", "A" * 44, "A" * 42 + "!", "A" * 42 + "="):
        assert http.get(f"{gateway.url}/raw/{bad}", timeout=5).status_code == 400, bad
        assert http.get(f"{gateway.url}/{bad}", timeout=5).status_code == 400, bad


def test_status_goes_from_confirmed_to_finalized(
    gateway: LocalGateway, http: requests.Session, signer: Ed25519Signer
) -> None:
    item = make_item(signer)
    upload(http, gateway.url, item)
    first = http.get(f"{gateway.url}/v1/tx/{item.id}/status", timeout=5)
    assert first.status_code == 200
    body = first.json()
    assert body["status"] == "CONFIRMED"
    assert body["info"] == "new"
    assert body["winc"] == "0"
    assert isinstance(body["bundleId"], str)
    assert len(body["bundleId"]) == 43
    time.sleep(0.35)
    later = http.get(f"{gateway.url}/tx/{item.id}/status", timeout=5).json()
    assert later == {**body, "status": "FINALIZED", "info": "permanent"}
    raw = http.get(f"{gateway.url}/raw/{item.id}", timeout=5)
    assert raw.headers["X-AR-IO-Stable"] == "true"


def test_status_of_unknown_item_is_404(gateway: LocalGateway, http: requests.Session) -> None:
    for tx_id in ("B" * 43, "nonsense"):
        response = http.get(f"{gateway.url}/v1/tx/{tx_id}/status", timeout=5)
        assert response.status_code == 404
        assert response.text == "TX doesn't exist"
