"""Envelope minting and verification: the reference's Appendix B, rules of §1.3–§1.5."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ario_mlflow.errors import EnvelopeParseError, LoneSurrogateError
from ario_mlflow.proof.canonical import canonical_json
from ario_mlflow.proof.commitment import verify_commitment
from ario_mlflow.proof.ed25519 import PreparedKey, sign, signing_key_from_seed
from ario_mlflow.proof.envelope import (
    MLFLOW_ENVELOPE_KEYS,
    build_mlflow_envelope,
    build_mlflow_envelope_json,
    parse_json_object,
    random_uuid,
    sign_envelope,
    signing_message,
    verify_envelope,
    verify_envelope_bytes,
)
from ario_mlflow.proof.hashing import sha256_hex
from ario_mlflow.proof.spec import spec_major, spec_version_supported

SEED = bytes(range(32))
KEY = signing_key_from_seed(SEED)
APPENDIX_B2_PAYLOAD = (
    b'{"artifact_checksums":{"MLmodel":"' + b"a" * 64 + b'","model.pkl":"' + b"b" * 64 + b'"},'
    b'"dataset_inputs":[],"event_type":"training_complete","git_commit":"",'
    b'"metrics":{"accuracy":0.966667},"params":{"max_iter":"200"},'
    b'"run_id":"0123456789abcdef0123456789abcdef","source_name":"train.py"}'
)


def _appendix_b2() -> dict[str, Any]:
    return build_mlflow_envelope(
        event_type="training_complete",
        subject={"type": "mlflow_run", "run_id": "0123456789abcdef0123456789abcdef"},
        payload_bytes=APPENDIX_B2_PAYLOAD,
        previous_hash="GENESIS",
        key=KEY,
        event_id="11111111-2222-4333-8444-555555555555",
        signed_at="2026-06-15T12:00:00.000000+00:00",
    )


def test_appendix_b2_envelope_reproduced() -> None:
    envelope = _appendix_b2()
    assert (
        envelope["public_key"] == "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
    )
    assert (
        envelope["payload_hash"]
        == "6943b44f82871dd5b48f67403d0010b100df51214440e6eddc46a9cf96357e1b"
    )
    assert envelope["signature"] == (
        "32fcccc2f2fb8a7fa2dac381513c71f87253fcb689ca09531e3a455655073d45"
        "b89d4db3a7f9620eede266975604b72f1483955d247e58558bf22f2333b78608"
    )
    assert signing_message(envelope) == (
        b'{"event_id":"11111111-2222-4333-8444-555555555555","event_type":"training_complete",'
        b'"payload_hash":"6943b44f82871dd5b48f67403d0010b100df51214440e6eddc46a9cf96357e1b",'
        b'"previous_hash":"GENESIS",'
        b'"public_key":"03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8",'
        b'"signed_at":"2026-06-15T12:00:00.000000+00:00","spec_version":"ario.mlflow/v1",'
        b'"subject":{"run_id":"0123456789abcdef0123456789abcdef","type":"mlflow_run"}}'
    )
    assert len(canonical_json(envelope)) == 570
    assert set(envelope) == set(MLFLOW_ENVELOPE_KEYS)


def test_minted_envelopes_are_small() -> None:
    # 400-700 bytes as the reference pins; a prediction that carries a trace id is 714 bytes,
    # exactly as the reference's own prediction records (original-0.3.0/prediction-*).
    for event_type, subject, limit in [
        ("training_complete", {"type": "mlflow_run", "run_id": "f" * 32}, 700),
        (
            "model_registered",
            {"type": "mlflow_model_version", "name": "credit-scorer", "version": "12"},
            700,
        ),
        (
            "prediction",
            {
                "type": "mlflow_prediction",
                "decision_id": "3abf039b-43bc-4a25-a0d5-358ad8d4e604",
                "model_run_id": "e" * 32,
                "trace_id": "tr-3a1676ba8830fba76fea4c00a573cf7c",
            },
            715,
        ),
        ("dataset", {"type": "mlflow_dataset", "name": "iris_train", "digest": "a4c8e076"}, 700),
    ]:
        envelope = build_mlflow_envelope(
            event_type=event_type,
            subject=subject,
            payload_bytes=b"{}",
            previous_hash="COumX_fVYkIOll3zUORFsrIrT4jfUJt4EOyYmoL4Hkk",
            key=KEY,
        )
        assert 400 < len(canonical_json(envelope)) < limit


def test_default_event_id_and_signed_at_have_the_reference_shapes() -> None:
    import re
    import uuid

    envelope = build_mlflow_envelope(
        event_type="dataset", subject={}, payload_bytes=b"x", previous_hash="GENESIS", key=KEY
    )
    assert str(uuid.UUID(envelope["event_id"], version=4)) == envelope["event_id"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00", envelope["signed_at"])


def test_random_uuid_is_a_version_4_uuid_spelled_as_uuid_spells_it() -> None:
    import uuid

    seen = {random_uuid() for _ in range(2000)}
    assert len(seen) == 2000
    for value in seen:
        parsed = uuid.UUID(value)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, value)


@settings(max_examples=300)
@given(
    st.integers(min_value=0, max_value=4_102_444_800 * 10**6),
    st.sampled_from([0, 1, 999_999, None]),
)
def test_signed_at_is_spelled_as_datetime_isoformat_spells_it(
    micros: int, fraction: int | None
) -> None:
    from datetime import datetime, timezone

    from ario_mlflow.proof.envelope import _iso_utc

    if fraction is not None:
        micros = micros // 10**6 * 10**6 + fraction
    for value in (micros, micros + 1, micros):  # the per-second cache, hit and missed
        expected = datetime.fromtimestamp(value // 10**6, timezone.utc).replace(
            microsecond=value % 10**6
        )
        assert _iso_utc(value) == expected.isoformat()


def test_utc_now_iso_is_now() -> None:
    from datetime import datetime, timezone

    from ario_mlflow.proof.envelope import utc_now_iso

    before = datetime.now(timezone.utc)
    stamp = datetime.fromisoformat(utc_now_iso())
    assert before <= stamp <= datetime.now(timezone.utc)


def test_a_forked_child_never_repeats_its_parents_uuids() -> None:
    import os

    random_uuid()  # the parent holds a block of randomness now
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write_end, "\n".join(random_uuid() for _ in range(50)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end, "rb") as pipe:
        child = set(pipe.read().decode().split("\n"))
    parent = {random_uuid() for _ in range(50)}
    assert len(child) == 50
    assert not child & parent


def test_prepared_key_signs_exactly_as_pynacl() -> None:
    prepared = PreparedKey(SEED)
    assert prepared.seed == SEED
    assert prepared.public_key_hex == bytes(KEY.verify_key).hex()
    for message in (b"", b"x", bytes(range(256)) * 3):
        assert prepared.sign(message).hex() == sign(message, KEY)
    with pytest.raises(ValueError, match="32 bytes"):
        PreparedKey(SEED[:31])


@pytest.mark.parametrize("previous_hash", [None, 7, "é\u2028\n\x00"])
def test_envelope_bytes_are_the_canonical_json_of_odd_fields_too(
    previous_hash: Any,
) -> None:
    envelope, data = build_mlflow_envelope_json(
        event_type="prediction",
        subject={"b": "é", "a": 1},
        payload_bytes=b"{}",
        previous_hash=previous_hash,
        key=PreparedKey(SEED),
    )
    assert data == canonical_json(envelope)
    assert tuple(envelope) == MLFLOW_ENVELOPE_KEYS
    assert verify_envelope_bytes(data, payload_bytes=b"{}").ok


@pytest.mark.parametrize("field", ["event_type", "previous_hash"])
def test_lone_surrogate_in_an_envelope_field_is_a_typed_error(field: str) -> None:
    arguments: dict[str, Any] = {"event_type": "prediction", "previous_hash": "GENESIS"}
    arguments[field] = "\ud800"
    with pytest.raises(LoneSurrogateError):
        build_mlflow_envelope_json(
            subject={}, payload_bytes=b"{}", key=PreparedKey(SEED), **arguments
        )


def test_underscore_annotations_do_not_break_mlflow_envelopes() -> None:
    envelope = {**_appendix_b2(), "_tx_id": "X"}
    assert verify_envelope(envelope, payload_bytes=APPENDIX_B2_PAYLOAD).ok
    assert verify_commitment(envelope)["overall"] is True


def test_legacy_envelope_without_spec_version() -> None:
    unsigned = {"event_id": "e", "event_type": "prediction", "subject": {}, "payload_hash": "00"}
    envelope = sign_envelope(unsigned, KEY)
    assert not verify_envelope(envelope).ok
    assert verify_envelope(envelope).reason == "legacy_envelope_not_allowed"
    # Underscore keys are annotations for legacy envelopes too.
    result = verify_commitment({**envelope, "_tx_id": "abc"})
    assert result["spec_version_status"] == "legacy"
    assert result["legacy_envelope"] is True
    assert result["overall"] is True
    assert "reason" not in result
    null_version = sign_envelope({**unsigned, "spec_version": None}, KEY)
    assert verify_commitment(null_version)["spec_version_status"] == "legacy"


@pytest.mark.parametrize(
    "version", ["ario.mlflow/v10", "ario.mlflow/v1.x", "ario.mlflow/v1.", "ario.other/v1", "v1", 1]
)
def test_unsupported_spec_version_fails_despite_valid_signature(version: object) -> None:
    envelope = sign_envelope({"payload_hash": "00", "spec_version": version}, KEY)
    result = verify_commitment(envelope)
    assert result["signature_valid"] is True
    assert result["overall"] is False
    assert result["spec_version_status"] == "unsupported"
    assert result["reason"] == "unsupported_spec_version"


def test_spec_version_grammar() -> None:
    assert spec_version_supported("ario.mlflow/v1.3")
    assert spec_version_supported("ario.events/v1")
    assert spec_major("ario.mlflow/v1.3") == "ario.mlflow/v1"
    assert spec_major("ario.mlflow/v10") == "ario.mlflow/v10"
    assert not spec_version_supported("ario.mlflow/v10")
    assert spec_major(" ario.mlflow/v1") is None


@pytest.mark.parametrize("value", [None, [], "envelope", 3, True, 1.5])
def test_non_objects_are_unsupported_never_an_exception(value: object) -> None:
    result = verify_commitment(value, b"{}")
    assert result["overall"] is False
    assert result["spec_version_status"] == "unsupported"
    assert result["reason"] == "envelope_not_a_json_object"
    assert result["stored_payload_hash"] is None


def test_missing_payload_hash_fails() -> None:
    envelope = sign_envelope({"spec_version": "ario.agent/v1", "payload_hash": "00"}, KEY)
    del envelope["payload_hash"]
    result = verify_envelope(envelope)
    assert not result.ok
    assert result.reason == "missing_payload_hash"


def test_payload_bytes_binding() -> None:
    envelope = _appendix_b2()
    result = verify_commitment(envelope, APPENDIX_B2_PAYLOAD + b" ")
    assert result["payload_hash_valid"] is False
    assert result["overall"] is False
    assert verify_commitment(envelope)["payload_hash_valid"] is None
    assert verify_commitment(envelope)["overall"] is True


def test_inline_payload_is_rehashed() -> None:
    envelope = sign_envelope({"spec_version": "ario.agent/v1", "payload": {"a": 1}}, KEY)
    assert verify_envelope(envelope).ok
    forged = {**envelope, "payload": {"a": 2}}
    assert verify_envelope(forged).reason == "payload_hash_mismatch"


def test_swapped_public_key_fails() -> None:
    other = signing_key_from_seed(bytes(32))
    envelope = _appendix_b2()
    envelope["public_key"] = bytes(other.verify_key).hex()
    assert verify_envelope(envelope).reason == "signature_invalid"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("signature", "zz" * 64),
        ("signature", "00" * 63),
        ("signature", 12),
        ("signature", None),
        ("public_key", "00" * 31),
        ("public_key", "not hex"),
        ("public_key", ["list"]),
    ],
)
def test_malformed_signature_or_key_is_invalid_not_an_exception(field: str, value: object) -> None:
    envelope = {**_appendix_b2(), field: value}
    result = verify_commitment(envelope)
    assert result["signature_valid"] is False
    assert result["overall"] is False


def test_uppercase_hex_signature_is_rejected() -> None:
    envelope = _appendix_b2()
    envelope["signature"] = envelope["signature"].upper()
    assert not verify_envelope(envelope).ok


def test_sign_refuses_resigning_and_foreign_public_key() -> None:
    envelope = _appendix_b2()
    with pytest.raises(ValueError, match="already signed"):
        sign_envelope(envelope, KEY)
    with pytest.raises(ValueError, match="payload_hash"):
        sign_envelope({"event_id": "x"}, KEY)
    with pytest.raises(ValueError, match="public_key"):
        sign_envelope({"payload_hash": "00", "public_key": "00" * 32}, KEY)


def test_sign_does_not_mutate_its_input() -> None:
    unsigned = {"payload_hash": "00", "subject": {"a": 1}}
    before = copy.deepcopy(unsigned)
    sign_envelope(unsigned, KEY)
    assert unsigned == before


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"a":1,"a":2}', "duplicate_key"),
        (b'{"a":NaN}', "invalid_json"),
        (b"[1]", "envelope_not_a_json_object"),
        (b"\xff", "invalid_json"),
        (b'{"a":"\\ud800"}', "lone_surrogate"),
        (b"{", "invalid_json"),
        (b"[" * 100000, "invalid_json"),
    ],
)
def test_strict_parsing(data: bytes, reason: str) -> None:
    with pytest.raises(EnvelopeParseError) as info:
        parse_json_object(data)
    assert info.value.reason == reason
    assert verify_envelope_bytes(data).reason == reason


# --- properties -------------------------------------------------------------------------

text = st.text(max_size=40)
subjects = st.dictionaries(st.sampled_from(["type", "run_id", "name", "version"]), text, max_size=4)


@settings(max_examples=60)
@given(event_type=text, subject=subjects, payload=st.binary(max_size=200), previous=text)
def test_sign_then_verify_holds(
    event_type: str, subject: dict[str, str], payload: bytes, previous: str
) -> None:
    envelope = build_mlflow_envelope(
        event_type=event_type,
        subject=subject,
        payload_bytes=payload,
        previous_hash=previous,
        key=KEY,
    )
    assert verify_envelope(envelope, payload_bytes=payload).ok
    assert verify_envelope_bytes(canonical_json(envelope), payload_bytes=payload).ok
    # The bytes returned with the envelope are its canonical JSON, whatever its fields.
    again, data = build_mlflow_envelope_json(
        event_type=event_type,
        subject=subject,
        payload_bytes=payload,
        previous_hash=previous,
        key=PreparedKey(SEED),
        event_id=envelope["event_id"],
        signed_at=envelope["signed_at"],
    )
    assert again == envelope
    assert data == canonical_json(envelope)


SIGNED_FIELDS = [
    "event_id",
    "event_type",
    "subject",
    "payload_hash",
    "previous_hash",
    "signed_at",
    "spec_version",
    "public_key",
    "signature",
]


@settings(max_examples=150)
@given(
    field=st.sampled_from(SIGNED_FIELDS),
    replacement=st.one_of(text, st.integers(), st.none(), st.dictionaries(text, text, max_size=2)),
)
def test_any_change_to_a_signed_field_fails(field: str, replacement: object) -> None:
    envelope = _appendix_b2()
    if envelope[field] == replacement:
        return
    tampered = {**envelope, field: replacement}
    assert not verify_envelope(tampered, payload_bytes=APPENDIX_B2_PAYLOAD).ok


def test_hash_of_appendix_payload() -> None:
    assert (
        sha256_hex(APPENDIX_B2_PAYLOAD)
        == "6943b44f82871dd5b48f67403d0010b100df51214440e6eddc46a9cf96357e1b"
    )
    assert sha256_hex(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
