"""A served model's templated decision records are exactly the generic ones, and verify."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ario_mlflow.errors import LoneSurrogateError
from ario_mlflow.proof import payloads
from ario_mlflow.proof.canonical import canonical_json
from ario_mlflow.proof.decisions import DecisionSigner
from ario_mlflow.proof.ed25519 import PreparedKey
from ario_mlflow.proof.envelope import build_mlflow_envelope_json, verify_envelope_bytes

KEY = PreparedKey(bytes(range(32)))
_text = st.text(max_size=30)
_ascii = st.text(alphabet=st.characters(max_codepoint=127), max_size=40)


def _signer(**fixed: Any) -> DecisionSigner:
    defaults: dict[str, Any] = {
        "model_name": "credit",
        "model_version": "3",
        "run_id": "r" * 32,
        "model_uri": "models:/credit@champion",
        "artifact_verified": True,
        "stream_id": "s" * 32,
        "previous_hash": "GENESIS",
    }
    return DecisionSigner(key=KEY, **{**defaults, **fixed})


def _generic(fixed: dict[str, Any], **decision: Any) -> tuple[dict[str, Any], bytes, Any]:
    payload = payloads.prediction_payload(
        decision_id=decision["decision_id"],
        model_name=fixed["model_name"],
        model_version=fixed["model_version"],
        run_id=fixed["run_id"],
        model_uri=fixed["model_uri"],
        input_hash=decision["input_hash"],
        output_hash=decision["output_hash"],
        latency_ms=decision["latency_ms"],
        artifact_verified=fixed["artifact_verified"],
        snapshot={
            "sequence": decision["sequence"],
            "stream_id": fixed["stream_id"],
            **(decision.get("extra") or {}),
        },
    )
    payload_bytes = canonical_json(payload)
    envelope = build_mlflow_envelope_json(
        event_type=payloads.PREDICTION,
        subject=payloads.prediction_subject(
            decision["decision_id"], fixed["run_id"], decision.get("trace_id")
        ),
        payload_bytes=payload_bytes,
        previous_hash=fixed["previous_hash"],
        key=KEY,
        event_id=decision["event_id"],
        signed_at=decision["signed_at"],
    )
    return payload, payload_bytes, envelope


@settings(max_examples=200)
@given(
    fixed=st.fixed_dictionaries(
        {
            "model_name": _text,
            "model_version": _text,
            "run_id": _text,
            "model_uri": _text,
            "artifact_verified": st.sampled_from([True, None]),
            "stream_id": _text,
            "previous_hash": _text,
        }
    ),
    decision=st.fixed_dictionaries(
        {
            "decision_id": st.one_of(_ascii, _text),
            "input_hash": _ascii,
            "output_hash": _ascii,
            "latency_ms": st.floats(min_value=0, max_value=1e300),
            "sequence": st.integers(min_value=0, max_value=2**70),
            # (empty means "a new one": never equal between two builds)
            "event_id": st.one_of(_ascii, _text).filter(bool),
            "signed_at": _ascii.filter(bool),
            "extra": st.one_of(st.none(), st.dictionaries(_text, st.integers(), max_size=2)),
            "trace_id": st.one_of(st.none(), _ascii),
        }
    ),
)
def test_templated_decisions_are_the_generic_records(
    fixed: dict[str, Any], decision: dict[str, Any]
) -> None:
    signed = DecisionSigner(key=KEY, **fixed).sign(**decision)
    payload, payload_bytes, (envelope, envelope_json) = _generic(fixed, **decision)
    assert signed.payload == payload
    assert signed.payload_bytes == payload_bytes
    assert signed.envelope == envelope
    assert list(signed.envelope) == list(envelope)  # the reference's key order too
    assert signed.envelope_json == envelope_json
    assert verify_envelope_bytes(signed.envelope_json, payload_bytes=signed.payload_bytes).ok


def test_the_usual_decision_takes_the_template_and_verifies() -> None:
    signer = _signer()
    signed = signer.sign(
        decision_id="d-1", input_hash="a" * 64, output_hash="b" * 64, latency_ms=1.5, sequence=7
    )
    assert signer._payload is not None  # the template is in use
    assert signed.payload["latency_ms"] == 1.5
    assert signed.envelope["subject"] == {
        "type": "mlflow_prediction",
        "decision_id": "d-1",
        "model_run_id": "r" * 32,
    }
    assert verify_envelope_bytes(signed.envelope_json, payload_bytes=signed.payload_bytes).ok
    again = signer.sign(
        decision_id="d-2", input_hash="a" * 64, output_hash="b" * 64, latency_ms=1.5, sequence=8
    )
    assert again.envelope["event_id"] != signed.envelope["event_id"]


def test_a_lone_surrogate_in_a_fixed_field_is_a_typed_error_not_a_crash() -> None:
    signer = _signer(model_name="\ud800")
    with pytest.raises(LoneSurrogateError):
        signer.sign(decision_id="d", input_hash="a", output_hash="b", latency_ms=1.0, sequence=1)


@settings(max_examples=200)
@given(
    trace_id=st.one_of(_ascii, _text).filter(bool),
    latency_ms=st.floats(min_value=0, max_value=1e300),
    extra=st.one_of(st.none(), st.dictionaries(_text, st.integers(), max_size=2)),
)
def test_a_decision_naming_its_own_trace_is_the_generic_record(
    trace_id: str, latency_ms: float, extra: dict[str, Any] | None
) -> None:
    """``mlflow_trace_id=`` is the payload field plus the subject's ``trace_id``, spelled by
    the template when it can (a served model's traced decisions cost no generic build)."""
    decision: dict[str, Any] = {
        "decision_id": "d-1",
        "input_hash": "a" * 64,
        "output_hash": "b" * 64,
        "latency_ms": latency_ms,
        "sequence": 3,
        "event_id": "e-1",
        "signed_at": "2026-12-05T00:00:00+00:00",
    }
    signer = _signer()
    named = signer.sign(**decision, extra=extra, mlflow_trace_id=trace_id)
    generic = signer._sign_generic(
        {**decision, "extra": {"mlflow_trace_id": trace_id, **(extra or {})}, "trace_id": trace_id}
    )
    assert named == generic
    assert named.payload["mlflow_trace_id"] == trace_id
    assert named.envelope["subject"]["trace_id"] == trace_id
    assert verify_envelope_bytes(named.envelope_json, payload_bytes=named.payload_bytes).ok


def test_a_decision_naming_its_own_trace_takes_the_template(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    signer = _signer()

    def generic(arguments: dict[str, Any]) -> None:
        raise AssertionError(f"built generically: {arguments}")

    monkeypatch.setattr(signer, "_sign_generic", generic)
    signed = signer.sign(
        decision_id="d-1",
        input_hash="a" * 64,
        output_hash="b" * 64,
        latency_ms=1.5,
        sequence=7,
        mlflow_trace_id="tr-" + "c" * 32,
    )
    assert signed.payload_bytes.index(b'"latency_ms"') < signed.payload_bytes.index(
        b'"mlflow_trace_id":"tr-' + b"c" * 32 + b'"'
    )
    assert signed.envelope["subject"]["trace_id"] == "tr-" + "c" * 32
