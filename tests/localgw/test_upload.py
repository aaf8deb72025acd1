"""Turbo upload routes: every item is verified, receipts are real, duplicates are 202."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ario_mlflow.arweave.encoding import b64url_encode
from ario_mlflow.arweave.receipt import verify_receipt
from ario_mlflow.arweave.signers import ArweaveSigner, Ed25519Signer
from ario_mlflow.localgw import LocalGateway
from tests.localgw._support import OCTET, make_item, upload


def _normalized(owner: bytes) -> str:
    return b64url_encode(hashlib.sha256(owner).digest())


@pytest.mark.parametrize("prefix", ["/v1", ""])
def test_ed25519_item_gets_a_verifiable_receipt(
    gateway: LocalGateway, http: requests.Session, signer: Ed25519Signer, prefix: str
) -> None:
    item = make_item(signer)
    response = upload(http, gateway.url, item, "solana", prefix=prefix)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    receipt = response.json()
    assert receipt["id"] == item.id
    assert receipt["owner"] == _normalized(signer.owner)
    assert receipt["winc"] == "0"
    assert verify_receipt(receipt, expected_id=item.id) is True
    n = gateway.public_key.public_numbers().n
    assert receipt["public"] == b64url_encode(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def test_arweave_item_gets_a_verifiable_receipt(
    gateway: LocalGateway, http: requests.Session, arweave_signer: ArweaveSigner
) -> None:
    item = make_item(arweave_signer)
    response = upload(http, gateway.url, item, "arweave")
    assert response.status_code == 200, response.text
    receipt = response.json()
    assert receipt["owner"] == arweave_signer.address
    assert verify_receipt(receipt, expected_id=item.id) is True


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "x" * 43),
        ("timestamp", 1),
        ("deadlineHeight", 2),
        ("version", "9"),
        ("signature", "AA"),
    ],
)
def test_tampered_receipt_fails(
    gateway: LocalGateway, http: requests.Session, signer: Ed25519Signer, field: str, value: Any
) -> None:
    receipt = upload(http, gateway.url, make_item(signer)).json()
    receipt[field] = value
    assert verify_receipt(receipt) is False


def test_untokened_route_accepts_any_supported_type(
    gateway: LocalGateway,
    http: requests.Session,
    signer: Ed25519Signer,
    arweave_signer: ArweaveSigner,
) -> None:
    assert upload(http, gateway.url, make_item(signer), None).status_code == 200
    assert upload(http, gateway.url, make_item(arweave_signer), None, prefix="").status_code == 200


def test_duplicate_is_202_without_body(
    gateway: LocalGateway, http: requests.Session, signer: Ed25519Signer
) -> None:
    item = make_item(signer)
    assert upload(http, gateway.url, item).status_code == 200
    again = upload(http, gateway.url, item)
    assert again.status_code == 202
    assert again.content == b""
    assert gateway.store.count() == 1


def test_content_type_must_be_octet_stream(
    gateway: LocalGateway, http: requests.Session, signer: Ed25519Signer
) -> None:
    item = make_item(signer)
    for headers in ({"Content-Type": "application/json"}, {"Content-Type": "text/plain"}):
        response = upload(http, gateway.url, item, headers=headers)
        assert response.status_code == 400
        assert response.text == "Invalid Content Type"
    response = http.post(f"{gateway.url}/v1/tx/solana", data=item.raw, timeout=10)
    assert response.status_code == 400  # no Content-Type at all
    ok = upload(http, gateway.url, item, headers={"Content-Type": "application/octet-stream; x=1"})
    assert ok.status_code == 200


@pytest.mark.parametrize(
    "body",
    [b"", b"garbage", b"\x02\x00" + b"\x00" * 100, b"\xff" * 2000],
    ids=["empty", "text", "zeros", "ff"],
)
def test_garbage_is_rejected(gateway: LocalGateway, http: requests.Session, body: bytes) -> None:
    response = upload(http, gateway.url, body)
    assert response.status_code == 400
    assert response.text == "Invalid Data Item!"


@pytest.mark.parametrize("where", ["signature", "owner", "tags", "data"])
def test_flipped_byte_is_rejected(
    gateway: LocalGateway, http: requests.Session, signer: Ed25519Signer, where: str
) -> None:
    item = make_item(signer, b'{"record": 1}', (("Content-Type", "application/json"),))
    raw = bytearray(item.raw)
    position = {"signature": 10, "owner": 2 + 64 + 5, "tags": len(raw) - 20, "data": len(raw) - 1}
    raw[position[where]] ^= 0x01
    response = upload(http, gateway.url, bytes(raw))
    assert response.status_code == 400
    assert gateway.store.count() == 0


def test_token_must_match_signature_type(
    gateway: LocalGateway,
    http: requests.Session,
    signer: Ed25519Signer,
    arweave_signer: ArweaveSigner,
) -> None:
    assert upload(http, gateway.url, make_item(signer), "arweave").status_code == 400
    assert upload(http, gateway.url, make_item(arweave_signer), "solana").status_code == 400
    assert upload(http, gateway.url, make_item(signer), "dogecoin").status_code == 400
    assert upload(http, gateway.url, make_item(signer), "ed25519").status_code == 200
    assert gateway.store.count() == 1


def test_oversized_body_is_413(
    data_dir: Any, http: requests.Session, signer: Ed25519Signer
) -> None:
    with LocalGateway(data_dir, key_bits=2048, max_item_bytes=1000) as gateway:
        response = upload(http, gateway.url, make_item(signer, b"x" * 2000))
        assert response.status_code == 413
        assert upload(http, gateway.url, make_item(signer, b"small")).status_code == 200


def test_wrong_method_and_unknown_paths(gateway: LocalGateway, http: requests.Session) -> None:
    assert http.get(f"{gateway.url}/v1/tx/solana", timeout=5).status_code == 405
    assert http.put(f"{gateway.url}/graphql", timeout=5).status_code == 405
    assert http.get(f"{gateway.url}/no/such/route", timeout=5).status_code == 404
    assert (
        http.post(f"{gateway.url}/v1/tx/a/b", data=b"", headers=OCTET, timeout=5).status_code == 404
    )


def test_info_names_the_wallet(gateway: LocalGateway, http: requests.Session) -> None:
    for path in ("/", "/info"):
        info = http.get(f"{gateway.url}{path}", timeout=5).json()
        assert info["addresses"]["arweave"] == gateway.operator_address
        assert info["freeUploadLimitBytes"] == 505 * 1024


def test_server_survives_a_malformed_request_line(gateway: LocalGateway) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as connection:
        connection.sendall(b"GET / HTTP/1.1 extra words\r\n\r\n")
        assert b"400" in connection.recv(200)
    assert requests.get(f"{gateway.url}/health", timeout=5).status_code == 200


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(junk=st.binary(max_size=400), position=st.integers(min_value=0), bit=st.integers(0, 7))
def test_fuzzed_uploads_are_400_never_500(
    *,
    gateway: LocalGateway,
    http: requests.Session,
    signer: Ed25519Signer,
    junk: bytes,
    position: int,
    bit: int,
) -> None:
    assert upload(http, gateway.url, junk).status_code == 400
    raw = bytearray(make_item(signer, b'{"fuzz": true}').raw)
    raw[position % len(raw)] ^= 1 << bit
    assert upload(http, gateway.url, bytes(raw)).status_code == 400
