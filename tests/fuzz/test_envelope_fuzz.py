"""Fuzzing envelope verification: junk never crashes a verifier, and nothing that differs
from what was signed ever verifies.

Oracle for "verifies": a mutated record may only pass when its signed scope (the JCS bytes
the signature covers), its signature and its key are exactly the original's — i.e. only
unsigned annotations (``_*`` keys of ``ario.mlflow/v1`` and legacy envelopes,
``co_signatures``) or the JSON spelling changed. Anything else passing is a forgery.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from ario_mlflow.errors import EnvelopeParseError
from ario_mlflow.proof import verify_commitment
from ario_mlflow.proof.canonical import canonical_json
from ario_mlflow.proof.envelope import (
    MLFLOW_ENVELOPE_KEYS,
    parse_json_object,
    verify_envelope,
    verify_envelope_bytes,
)
from ario_mlflow.verify import full_verify, verify_proof_by_tx, verify_record
from ario_mlflow.verify.checks import check_chain, check_issuer, check_subject
from tests.fuzz.seeds import Record, is_the_signed_record, records
from tests.fuzz.strategies import (
    any_text,
    fuzz_settings,
    hex_of,
    json_values,
    mutated_bytes,
    mutated_object,
    non_json,
    outcome_of,
    plain_json,
)

#: Keys a mutation may add: the envelope's own, unsigned ones, and near misses.
_ENVELOPE_KEYS = (
    *MLFLOW_ENVELOPE_KEYS,
    "payload",
    "co_signatures",
    "_tx_id",
    "_note",
    "arweave_tx_id",
    "Signature",
)


def _all_verdicts(envelope: Any, payload: bytes | None) -> dict[str, bool]:
    """Every public verdict on ``envelope`` (+ payload bytes) that could call it valid."""
    strict = verify_envelope(envelope, payload_bytes=payload)
    lenient = verify_envelope(envelope, payload_bytes=payload, allow_legacy=True)
    commitment = verify_commitment(envelope, payload)
    record = verify_record(envelope, payload, trusted_keys=())
    full = full_verify(envelope, trusted_keys=())
    for result in (record, full):
        assert result["overall"] in (True, False, None)
        for name, check in result.items():
            if name != "overall":
                assert check["ok"] in (True, False, None), name
                assert check["ok"] is True or isinstance(check.get("reason"), str), name
    return {
        "verify_envelope": strict.ok,
        "verify_envelope(legacy)": lenient.ok,
        "verify_commitment": bool(commitment["overall"]),
        "verify_record": record["overall"] is True,
        "verify_record.signature": record["signature"]["ok"] is True,
        "full_verify.signature": full["signature"]["ok"] is True,
    }


def test_every_seed_record_verifies() -> None:
    """The oracle is not vacuous: each unmutated seed passes every verifier."""
    for name, envelope, payload in records():
        verdicts = _all_verdicts(envelope, payload)
        lenient = {k: v for k, v in verdicts.items() if k != "verify_envelope"}
        assert all(lenient.values()), (name, verdicts)


# --- arbitrary input ----------------------------------------------------------------------


@fuzz_settings(200)
@given(
    envelope=json_values | non_json | st.dictionaries(st.sampled_from(_ENVELOPE_KEYS), json_values),
    payload=st.none() | st.binary(max_size=64),
)
@example(envelope={"spec_version": "ario.mlflow/v1", "public_key": "\ud800"}, payload=None)
@example(envelope={"subject": {"type": ["unhashable"]}, "payload_hash": 1}, payload=b"x")
@example(envelope={"public_key": "zz" * 32, "signature": "00" * 64}, payload=b"")
def test_arbitrary_values_never_raise_and_never_verify(
    envelope: Any, payload: bytes | None
) -> None:
    """Any object at all gets a verdict, never an exception, and the verdict is "no"."""
    verdicts = _all_verdicts(envelope, payload)
    assert not any(verdicts.values()), verdicts


@fuzz_settings(150)
@given(
    envelope=json_values | st.dictionaries(st.sampled_from(_ENVELOPE_KEYS), json_values),
    expected=st.none() | st.dictionaries(any_text, any_text, max_size=3),
    previous=st.none() | any_text,
    trusted=st.lists(hex_of(32) | any_text, max_size=3),
)
def test_extra_checks_never_raise(
    envelope: Any, expected: dict[str, str] | None, previous: str | None, trusted: list[str]
) -> None:
    """Subject, chain and issuer checks answer every input with a tri-state verdict."""
    for check in (
        check_subject(envelope, expected),
        check_chain(envelope, previous),
        check_issuer(envelope, trusted),
    ):
        assert check["ok"] in (True, False, None)
        assert check["ok"] is True or isinstance(check["reason"], str)


# --- mutated records ---------------------------------------------------------------------


@st.composite
def _mutated_records(draw: st.DrawFn) -> tuple[Record, dict[str, Any]]:
    record = draw(st.sampled_from(records()))
    return record, draw(mutated_object(record[1], _ENVELOPE_KEYS))


@fuzz_settings(300)
@given(_mutated_records())
def test_mutated_envelopes_never_verify(case: tuple[Record, dict[str, Any]]) -> None:
    """Fields replaced by any JSON type, keys deleted/added/renamed: only a change outside
    the signed scope may still verify."""
    (name, original, payload), mutated = case
    verdicts = _all_verdicts(mutated, payload)
    if any(verdicts.values()):
        assert is_the_signed_record(original, mutated), (name, verdicts, mutated)


@fuzz_settings(300)
@given(st.sampled_from(records()), st.data())
def test_flipped_canonical_bytes_never_verify(record: Record, data: st.DataObject) -> None:
    """Bytes of the anchored JCS form flipped, cut, extended: the strict parser raises only
    ``EnvelopeParseError`` and nothing but the signed content verifies."""
    name, original, payload = record
    mutated = data.draw(mutated_bytes(canonical_json(original)))
    parsed, error = outcome_of(lambda: parse_json_object(mutated), EnvelopeParseError)
    if error is not None:
        assert error.reason in {
            "invalid_json",
            "duplicate_key",
            "lone_surrogate",
            "non_finite_number",
            "not_canonicalizable",
            "envelope_not_a_json_object",
        }
    for allow_legacy in (False, True):
        result = verify_envelope_bytes(mutated, payload_bytes=payload, allow_legacy=allow_legacy)
        if result.ok:
            assert is_the_signed_record(original, parsed), (name, mutated)
        else:
            assert result.reason


class _Gateway:
    """An anchor that serves fixed bytes: the transport, not the verifier under test."""

    last_error = None

    def __init__(self, data: bytes | None) -> None:
        self.data = data

    def fetch_envelope_bytes(self, tx_id: str) -> bytes | None:
        return self.data


@fuzz_settings(200)
@given(st.sampled_from(records()), st.data())
def test_mutated_bytes_from_a_gateway_never_verify(record: Record, data: st.DataObject) -> None:
    """``verify_proof_by_tx`` on whatever a gateway returns: a verdict, never a pass for
    bytes other than the signed record."""
    name, original, _ = record
    mutated = data.draw(mutated_bytes(canonical_json(original)) | st.binary(max_size=200))
    result = verify_proof_by_tx("t" * 43, anchor=_Gateway(mutated), trusted_keys=())
    assert result["overall"] in (True, False, None)
    if result["overall"] is True or result.get("signature", {}).get("ok") is True:
        assert is_the_signed_record(original, result.get("envelope")), (name, mutated)


@fuzz_settings(250)
@given(st.sampled_from(records()), st.data())
def test_mutated_payloads_never_verify(record: Record, data: st.DataObject) -> None:
    """The exact committed payload bytes, and no others, pass ``anchored_bytes``."""
    name, envelope, payload = record
    assert payload is not None
    mutated = data.draw(mutated_bytes(payload) | st.binary(max_size=100))
    result = verify_record(envelope, mutated, trusted_keys=())
    assert (result["anchored_bytes"]["ok"] is True) is (mutated == payload), name
    assert (result["overall"] is True) is (mutated == payload), name
    if "payload" not in envelope:  # an inline payload is checked against payload_hash too
        outcome = verify_envelope(envelope, payload_bytes=mutated, allow_legacy=True)
        assert outcome.ok is (mutated == payload), name


# --- strict parsing --------------------------------------------------------------------------


@fuzz_settings(250)
@given(
    st.binary(max_size=300)
    | plain_json.map(lambda v: json.dumps(v).encode())
    | st.integers(1, 5000).map(lambda n: b"[" * n + b"]" * n)
    | st.integers(1, 5000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n)
)
@example(b'{"a":1,"a":2}')
@example(b'{"a":"\\ud800"}')
@example(b'{"a":NaN}')
@example(b"\xff\xfe{}")
def test_parse_json_object_raises_only_its_typed_error(data: bytes) -> None:
    """Anything that is not one JSON object with a canonical form is ``EnvelopeParseError``."""
    value, error = outcome_of(lambda: parse_json_object(data), EnvelopeParseError)
    if error is not None:
        assert error.reason
        assert not verify_envelope_bytes(data, allow_legacy=True).ok
        return
    assert isinstance(value, dict)
    assert isinstance(canonical_json(value), bytes)
