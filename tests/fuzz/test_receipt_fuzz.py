"""Fuzzing Turbo receipts: parsing raises only ``ReceiptError``, verifying never raises,
and a receipt whose signed fields, signature or key differ never verifies.

The receipt signature covers ``id``, ``version``, ``deadlineHeight`` and ``timestamp``;
``winc``, ``owner``, ``dataCaches`` and ``fastFinalityIndexes`` are unsigned by the
service's design, so editing only those may still verify.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import example, given
from hypothesis import strategies as st

from ario_mlflow.arweave.encoding import b64url_decode
from ario_mlflow.arweave.receipt import parse_receipt, sign_receipt, verify_receipt
from ario_mlflow.errors import ReceiptError
from tests.fuzz.strategies import (
    fuzz_settings,
    json_values,
    mutated_bytes,
    mutated_object,
    non_json,
    outcome_of,
    plain_json,
)

ITEM_ID = "K8Yt1IBcl9SFpsLVmZW_3u2XCoheUnNE3kxgmzcozsE"
_SIGNED_FIELDS = ("id", "version", "deadlineHeight", "timestamp")
_RECEIPT_KEYS = (
    *_SIGNED_FIELDS,
    "signature",
    "public",
    "winc",
    "owner",
    "dataCaches",
    "fastFinalityIndexes",
)


@lru_cache(maxsize=1)
def _receipt() -> dict[str, Any]:
    """A valid receipt, signed the way the Turbo service (and our local gateway) signs."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return sign_receipt(
        data_item_id=ITEM_ID,
        owner_address="owner-address",
        key=key,
        timestamp_ms=1_700_000_000_123,
        deadline_height=1_500_200,
    )


def _decoded(text: Any) -> bytes | None:
    try:
        return b64url_decode(text)
    except ValueError:
        return None


def _is_the_signed_receipt(candidate: Any) -> bool:
    """Same signed fields (and JSON types), same signature bytes, same RSA modulus."""
    original = _receipt()
    if not isinstance(candidate, dict):
        return False
    for name in _SIGNED_FIELDS:
        if type(candidate.get(name)) is not type(original[name]):
            return False
        if candidate.get(name) != original[name]:
            return False
    modulus = _decoded(candidate.get("public"))
    return _decoded(candidate.get("signature")) == _decoded(original["signature"]) and (
        modulus is not None
        and int.from_bytes(modulus, "big")
        == int.from_bytes(_decoded(original["public"]) or b"", "big")
    )


def _verdicts(receipt: Any) -> list[bool | None]:
    verdicts = [
        verify_receipt(receipt),
        verify_receipt(receipt, expected_id=ITEM_ID),
        verify_receipt(receipt, expected_id="another-id"),
    ]
    assert all(v in (True, False, None) for v in verdicts), verdicts
    assert verdicts[2] is not True, "a receipt for another item must not verify"
    return verdicts


def test_the_seed_receipt_verifies() -> None:
    """The oracle is not vacuous: the unmutated receipt passes."""
    assert _verdicts(_receipt())[:2] == [True, True]


@fuzz_settings(250)
@given(
    st.binary(max_size=300)
    | plain_json.map(lambda v: json.dumps(v).encode())
    | st.integers(1, 5000).map(lambda n: b"[" * n + b"]" * n)
)
@example(b'{"id": "x", "timestamp": NaN}')
@example(b"\xff\xfe\x00\x00")
@example(b"[" * 100_000)
def test_parse_receipt_raises_only_receipt_error(body: bytes) -> None:
    """Any upload response body is a receipt dict with an id, or ``ReceiptError``."""
    receipt, error = outcome_of(lambda: parse_receipt(body), ReceiptError)
    if receipt is None:
        assert str(error), "a ReceiptError must say what is wrong"
        return
    assert isinstance(receipt, dict)
    assert isinstance(receipt["id"], str)
    assert receipt["id"]
    assert verify_receipt(receipt) is not True


@fuzz_settings(150)
@given(
    json_values | non_json | st.dictionaries(st.sampled_from(_RECEIPT_KEYS), json_values | non_json)
)
@example(
    {
        "signature": "AA",
        "public": "A" * 400,
        "id": "x",
        "version": "0.2.0",
        "deadlineHeight": 1,
        "timestamp": 10**5000,
    }
)
@example({"signature": ["x"], "public": {"n": 1}})
def test_arbitrary_receipts_never_raise_and_never_verify(receipt: Any) -> None:
    """``verify_receipt`` answers every object with True/False/None, and never True."""
    assert True not in _verdicts(receipt)


@fuzz_settings(250)
@given(st.deferred(lambda: mutated_object(_receipt(), _RECEIPT_KEYS)))
def test_mutated_receipts_never_verify(mutated: dict[str, Any]) -> None:
    """Fields replaced by any type, deleted, added, renamed or with a character changed:
    only edits of unsigned fields may still verify."""
    if True in _verdicts(mutated):
        assert _is_the_signed_receipt(mutated), mutated


@fuzz_settings(200)
@given(st.deferred(lambda: mutated_bytes(json.dumps(_receipt()).encode())))
def test_mutated_receipt_bodies_never_verify(body: bytes) -> None:
    """A flipped, cut or extended response body: ``ReceiptError`` or a receipt that only
    verifies if its signed content survived the edit."""
    try:
        receipt = parse_receipt(body)
    except ReceiptError:
        return
    if True in _verdicts(receipt):
        assert _is_the_signed_receipt(receipt), body
