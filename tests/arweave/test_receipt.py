"""Turbo receipts: sign like the service, verify offline, never raise on junk."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from ario_mlflow.arweave.deephash import deep_hash
from ario_mlflow.arweave.encoding import b64url_encode
from ario_mlflow.arweave.receipt import (
    RECEIPT_VERSION,
    parse_receipt,
    receipt_message,
    sign_receipt,
    verify_receipt,
)
from ario_mlflow.errors import ReceiptError

ITEM_ID = "K8Yt1IBcl9SFpsLVmZW_3u2XCoheUnNE3kxgmzcozsE"
INTEROP = Path(__file__).parent / "receipt_interop.js"
ARWEAVE_JS = Path(__file__).parent / "interop" / "node_modules" / "arweave"


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def receipt(key: rsa.RSAPrivateKey) -> dict[str, Any]:
    return sign_receipt(
        data_item_id=ITEM_ID,
        owner_address="owner-address",
        key=key,
        timestamp_ms=1_700_000_000_123,
        deadline_height=1_500_200,
    )


def test_shape_matches_turbo(receipt: dict[str, Any], key: rsa.RSAPrivateKey) -> None:
    assert set(receipt) == {
        "id",
        "timestamp",
        "winc",
        "version",
        "deadlineHeight",
        "dataCaches",
        "fastFinalityIndexes",
        "public",
        "signature",
        "owner",
    }
    assert receipt["version"] == RECEIPT_VERSION == "0.2.0"
    assert receipt["winc"] == "0"
    assert receipt["dataCaches"] == ["arweave.net"]
    n = key.public_key().public_numbers().n
    assert receipt["public"] == b64url_encode(n.to_bytes(256, "big"))
    assert len(base64.urlsafe_b64decode(receipt["signature"] + "==")) == 256


def test_message_is_the_bundlr_deep_hash() -> None:
    expected = deep_hash([b"Bundlr", b"0.2.0", ITEM_ID.encode(), b"12", b"34"])
    message = receipt_message(
        version="0.2.0", data_item_id=ITEM_ID, deadline_height=12, timestamp_ms=34
    )
    assert message == expected
    assert len(message) == 48


def test_valid_receipt_verifies(receipt: dict[str, Any]) -> None:
    assert verify_receipt(receipt) is True
    assert verify_receipt(receipt, expected_id=ITEM_ID) is True


def test_signature_is_salt_zero_pss(receipt: dict[str, Any], key: rsa.RSAPrivateKey) -> None:
    # Salt 0 makes PSS deterministic: signing twice gives the same bytes.
    again = sign_receipt(
        data_item_id=ITEM_ID,
        owner_address="x",
        key=key,
        timestamp_ms=1_700_000_000_123,
        deadline_height=1_500_200,
    )
    assert again["signature"] == receipt["signature"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "L8Yt1IBcl9SFpsLVmZW_3u2XCoheUnNE3kxgmzcozsE"),
        ("version", "0.2.1"),
        ("deadlineHeight", 1_500_201),
        ("timestamp", 1_700_000_000_124),
    ],
)
def test_tampering_a_signed_field_fails(receipt: dict[str, Any], field: str, value: Any) -> None:
    receipt[field] = value
    assert verify_receipt(receipt) is False


def test_tampering_the_signature_or_key_fails(
    receipt: dict[str, Any], key: rsa.RSAPrivateKey
) -> None:
    signature = bytearray(base64.urlsafe_b64decode(receipt["signature"] + "=="))
    signature[10] ^= 1
    assert verify_receipt({**receipt, "signature": b64url_encode(bytes(signature))}) is False
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    n = other.public_key().public_numbers().n
    assert verify_receipt({**receipt, "public": b64url_encode(n.to_bytes(256, "big"))}) is False


def test_unsigned_fields_are_not_covered(receipt: dict[str, Any]) -> None:
    # As on Turbo: winc, owner and the cache lists are outside the signature.
    receipt.update(winc="5", owner="someone", dataCaches=[], fastFinalityIndexes=["x"])
    assert verify_receipt(receipt) is True


def test_expected_id_mismatch_fails(receipt: dict[str, Any]) -> None:
    assert verify_receipt(receipt, expected_id="other") is False


@pytest.mark.parametrize("missing", ["signature", "public"])
@pytest.mark.parametrize("how", ["absent", None, ""])
def test_unsigned_receipt_is_undetermined(receipt: dict[str, Any], missing: str, how: Any) -> None:
    if how == "absent":
        del receipt[missing]
    else:
        receipt[missing] = how
    assert verify_receipt(receipt) is None


@pytest.mark.parametrize(
    "change",
    [
        {"timestamp": "1700000000123"},
        {"timestamp": True},
        {"deadlineHeight": 1.5},
        {"id": 7},
        {"id": ""},
        {"version": None},
        {"signature": "not base64!"},
        {"signature": 12},
        {"public": "AQAB"},
        {"public": "!!"},
    ],
)
def test_malformed_receipts_fail(receipt: dict[str, Any], change: dict[str, Any]) -> None:
    assert verify_receipt({**receipt, **change}) is False


@pytest.mark.parametrize("value", [None, [], "receipt", 3, b"{}"])
def test_non_objects_fail(value: Any) -> None:
    assert verify_receipt(value) is False


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["id", "version", "deadlineHeight", "timestamp", "signature", "public"]),
        _JSON,
    )
)
def test_verify_never_raises(value: dict[str, Any]) -> None:
    assert verify_receipt(value) in (True, False, None)


def test_parse_receipt(receipt: dict[str, Any]) -> None:
    assert parse_receipt(json.dumps(receipt).encode()) == receipt


@pytest.mark.parametrize(
    "body", [b"", b"not json", b"[1]", b'"x"', b"{}", b'{"id": ""}', b'{"id": 3}', b"\xff\xfe"]
)
def test_parse_receipt_rejects(body: bytes) -> None:
    with pytest.raises(ReceiptError):
        parse_receipt(body)


# --- cross-check with arweave-js (what the Turbo service signs receipts with) -------------


def _node() -> str:
    node = shutil.which("node")
    if node is None or not ARWEAVE_JS.is_dir():
        pytest.skip("node or tests/arweave/interop/node_modules/arweave not available")
    return node


def _jwk(key: rsa.RSAPrivateKey) -> dict[str, str]:
    numbers = key.private_numbers()
    public = numbers.public_numbers

    def enc(value: int) -> str:
        return b64url_encode(value.to_bytes((value.bit_length() + 7) // 8, "big"))

    return {
        "kty": "RSA",
        "n": enc(public.n),
        "e": enc(public.e),
        "d": enc(numbers.d),
        "p": enc(numbers.p),
        "q": enc(numbers.q),
        "dp": enc(numbers.dmp1),
        "dq": enc(numbers.dmq1),
        "qi": enc(numbers.iqmp),
    }


def _interop(node: str, mode: str, payload: dict[str, Any]) -> Any:
    completed = subprocess.run(
        [node, str(INTEROP), mode],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(completed.stdout)


def test_arweave_js_verifies_our_receipt(receipt: dict[str, Any]) -> None:
    node = _node()
    assert _interop(node, "verify", {"receipt": receipt}) is True
    assert _interop(node, "verify", {"receipt": {**receipt, "timestamp": 1}}) is False


def test_we_verify_a_receipt_signed_as_turbo_signs(
    receipt: dict[str, Any], key: rsa.RSAPrivateKey
) -> None:
    node = _node()
    fields = {"id": ITEM_ID, "version": "0.2.0", "deadlineHeight": 1_600_000, "timestamp": 17}
    signed = _interop(node, "sign", {"jwk": _jwk(key), **fields})
    turbo_receipt = {**fields, **signed, "winc": "0", "owner": "o"}
    assert verify_receipt(turbo_receipt, expected_id=ITEM_ID) is True
    assert verify_receipt({**turbo_receipt, "deadlineHeight": 1_600_001}) is False
