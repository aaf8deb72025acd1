"""A served model's decision records, prepared once per model and signed per decision.

Every ``prediction`` record of a loaded model shares all but a few fields: the payload
differs in the decision id, the two hashes, the latency and the sequence number; the
envelope in its event id, payload hash, signing time, subject's decision id and the
signature. So the JCS text of both is written once, with holes, and each decision fills
them in — the predict hot path then runs no generic serializer at all. The bytes are
exactly those of :func:`~ario_mlflow.proof.payloads.prediction_payload` +
:func:`~ario_mlflow.proof.canonical.canonical_json` and
:func:`~ario_mlflow.proof.envelope.build_mlflow_envelope_json` (property tests hold them
equal); a decision with anything more (a trace id, OpenTelemetry ids, caller metadata) or
a field the template cannot spell is built by those generic functions.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from typing import Any

from ario_mlflow.proof.canonical import canonical_json, encode_string, format_number
from ario_mlflow.proof.ed25519 import PreparedKey
from ario_mlflow.proof.envelope import build_mlflow_envelope_json, random_uuid, utc_now_iso
from ario_mlflow.proof.payloads import (
    LATENCY_PRECISION,
    PREDICTION,
    prediction_payload,
    prediction_subject,
)
from ario_mlflow.proof.spec import SPEC_VERSION


@dataclass(frozen=True)
class SignedDecision:
    """One decision's payload and signed envelope, each with its canonical bytes."""

    payload: dict[str, Any]
    payload_bytes: bytes
    envelope: dict[str, Any]
    envelope_json: bytes


class DecisionSigner:
    """Signs the ``prediction`` records of one served model (see the module docstring)."""

    def __init__(
        self,
        *,
        key: PreparedKey,
        model_name: str,
        model_version: str,
        run_id: str,
        model_uri: str,
        artifact_verified: bool | None,
        stream_id: str,
        previous_hash: str,
    ) -> None:
        self._key = key
        self._fixed: dict[str, Any] = {
            "model_name": model_name,
            "model_version": model_version,
            "run_id": run_id,
            "model_uri": model_uri,
            "stream_id": stream_id,
            "previous_hash": previous_hash,
        }
        self._verified = True if artifact_verified else None
        self._payload_text: tuple[str, ...] | None = None
        self._envelope_text: tuple[str, ...] = ()
        # A fixed field the template cannot spell: every decision goes the generic way.
        with contextlib.suppress(TypeError, UnicodeEncodeError):
            self._payload_text, self._envelope_text = self._templates()

    def _templates(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The JCS text around the holes of the payload and of the envelope (keys in JCS
        order; the envelope's split where ``signature`` goes in its full form)."""
        enc: dict[str, str] = {}
        for name, value in self._fixed.items():
            if type(value) is not str:
                raise TypeError(name)
            enc[name] = encode_string(value)
            enc[name].encode("utf-8")  # a lone surrogate raises here
        verified = "true" if self._verified else "null"
        payload = (
            f'{{"artifact_verified":{verified},"decision_id":',
            f',"event_type":"{PREDICTION}","input_hash":',
            ',"latency_ms":',
            f',"model_name":{enc["model_name"]},"model_uri":{enc["model_uri"]},'
            f'"model_version":{enc["model_version"]},"output_hash":',
            f',"run_id":{enc["run_id"]},"sequence":',
            f',"stream_id":{enc["stream_id"]}}}',
        )
        envelope = (
            '{"event_id":',
            f',"event_type":"{PREDICTION}","payload_hash":"',
            f'","previous_hash":{enc["previous_hash"]},"public_key":"{self._key.public_key_hex}"',
            ',"signed_at":',
            f',"spec_version":"{SPEC_VERSION}","subject":{{"decision_id":',
            f',"model_run_id":{enc["run_id"]},"type":"mlflow_prediction"}}}}',
        )
        return payload, envelope

    def sign(
        self,
        *,
        decision_id: str,
        input_hash: str,
        output_hash: str,
        latency_ms: float,
        sequence: int,
        extra: dict[str, Any] | None = None,
        trace_id: str | None = None,
        event_id: str | None = None,
        signed_at: str | None = None,
    ) -> SignedDecision:
        """The signed record of one decision (``extra``: snapshot fields such as the
        trace and OpenTelemetry ids and caller metadata; ``event_id`` / ``signed_at``
        default to a new UUID and now)."""
        fixed, segments = self._fixed, self._payload_text
        if (
            segments is None
            or extra
            or trace_id
            or type(latency_ms) is not float
            or latency_ms - latency_ms != 0.0
            or type(sequence) is not int
            or type(decision_id) is not str
            or type(input_hash) is not str
            or type(output_hash) is not str
            or not (decision_id + input_hash + output_hash).isascii()
            or (event_id is not None and (type(event_id) is not str or not event_id.isascii()))
            or (signed_at is not None and (type(signed_at) is not str or not signed_at.isascii()))
        ):
            return self._sign_generic(
                {
                    "decision_id": decision_id,
                    "input_hash": input_hash,
                    "output_hash": output_hash,
                    "latency_ms": latency_ms,
                    "sequence": sequence,
                    "extra": extra,
                    "trace_id": trace_id,
                    "event_id": event_id,
                    "signed_at": signed_at,
                }
            )
        latency = round(latency_ms, LATENCY_PRECISION)
        payload = {  # prediction_payload's fields, in its order
            "event_type": PREDICTION,
            "decision_id": decision_id,
            "model_name": fixed["model_name"],
            "model_version": fixed["model_version"],
            "run_id": fixed["run_id"],
            "model_uri": fixed["model_uri"],
            "input_hash": input_hash,
            "output_hash": output_hash,
            "latency_ms": latency,
            "artifact_verified": self._verified,
            "sequence": sequence,
            "stream_id": fixed["stream_id"],
        }
        enc = encode_string
        decision = enc(decision_id)
        payload_bytes = (
            f"{segments[0]}{decision}{segments[1]}{enc(input_hash)}{segments[2]}"
            f"{format_number(latency)}{segments[3]}{enc(output_hash)}"
            f"{segments[4]}{sequence}{segments[5]}"
        ).encode()
        payload_hash = hashlib.sha256(payload_bytes).hexdigest()
        event_id = event_id or random_uuid()
        signed_at = signed_at or utc_now_iso()
        parts = self._envelope_text
        head = f"{parts[0]}{enc(event_id)}{parts[1]}{payload_hash}{parts[2]}"
        tail = f"{parts[3]}{enc(signed_at)}{parts[4]}{decision}{parts[5]}"
        signature = self._key.sign(f"{head}{tail}".encode()).hex()
        envelope = {
            "event_id": event_id,
            "event_type": PREDICTION,
            "subject": {
                "type": "mlflow_prediction",
                "decision_id": decision_id,
                "model_run_id": fixed["run_id"],
            },
            "payload_hash": payload_hash,
            "previous_hash": fixed["previous_hash"],
            "signed_at": signed_at,
            "spec_version": SPEC_VERSION,
            "public_key": self._key.public_key_hex,
            "signature": signature,
        }
        envelope_json = f'{head},"signature":"{signature}"{tail}'.encode()
        return SignedDecision(payload, payload_bytes, envelope, envelope_json)

    def _sign_generic(self, arguments: dict[str, Any]) -> SignedDecision:
        fixed = self._fixed
        decision_id = arguments["decision_id"]
        payload = prediction_payload(
            decision_id=decision_id,
            model_name=fixed["model_name"],
            model_version=fixed["model_version"],
            run_id=fixed["run_id"],
            model_uri=fixed["model_uri"],
            input_hash=arguments["input_hash"],
            output_hash=arguments["output_hash"],
            latency_ms=arguments["latency_ms"],
            artifact_verified=self._verified,
            snapshot={
                "sequence": arguments["sequence"],
                "stream_id": fixed["stream_id"],
                **(arguments["extra"] or {}),
            },
        )
        payload_bytes = canonical_json(payload)
        envelope, envelope_json = build_mlflow_envelope_json(
            event_type=PREDICTION,
            subject=prediction_subject(decision_id, fixed["run_id"], arguments["trace_id"]),
            payload_bytes=payload_bytes,
            previous_hash=fixed["previous_hash"],
            key=self._key,
            event_id=arguments["event_id"],
            signed_at=arguments["signed_at"],
        )
        return SignedDecision(payload, payload_bytes, envelope, envelope_json)
