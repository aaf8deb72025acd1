"""A served model's decision records, prepared once per model and signed per decision.

Every ``prediction`` record of a loaded model shares all but a few fields: the payload
differs in the decision id, the two hashes, the latency and the sequence number; the
envelope in its event id, payload hash, signing time, subject's decision id and the
signature. So the JCS text of both is written once, with holes, and each decision fills
them in — the predict hot path then runs no generic serializer at all. The bytes are
exactly those of :func:`~ario_mlflow.proof.payloads.prediction_payload` +
:func:`~ario_mlflow.proof.canonical.canonical_json` and
:func:`~ario_mlflow.proof.envelope.build_mlflow_envelope_json` (property tests hold them
equal). The template also spells the decision's own MLflow trace id (every traced decision
has one); a decision with anything more (a caller's trace, OpenTelemetry ids, caller
metadata) or a field the template cannot spell is built by those generic functions.

A *batched* decision (:class:`DecisionLeaves`) is not signed at all: its payload — the same
fields plus ``decided_at`` — is a leaf of its window's Merkle tree, and the window's one
signed record commits to every leaf (:mod:`ario_mlflow.proof.windows`).
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from typing import Any

from ario_mlflow.proof.canonical import canonical_json, encode_string, format_number
from ario_mlflow.proof.ed25519 import PreparedKey
from ario_mlflow.proof.envelope import build_mlflow_envelope_json, random_uuid, utc_now_iso
from ario_mlflow.proof.merkle import leaf_hash
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


def _fixed_fields(
    model_name: str, model_version: str, run_id: str, model_uri: str, stream_id: str
) -> dict[str, Any]:
    return {
        "model_name": model_name,
        "model_version": model_version,
        "run_id": run_id,
        "model_uri": model_uri,
        "stream_id": stream_id,
    }


def _encoded(fixed: dict[str, Any]) -> dict[str, str]:
    """The JCS strings of ``fixed``; ``TypeError`` / ``UnicodeEncodeError`` when a value
    is not a string the template can spell."""
    enc: dict[str, str] = {}
    for name, value in fixed.items():
        if type(value) is not str:
            raise TypeError(name)
        enc[name] = encode_string(value)
        enc[name].encode("utf-8")  # a lone surrogate raises here
    return enc


class _PayloadTemplate:
    """The JCS text of a model's decision payloads around their holes (``decided_at``
    first when ``batched``: JCS sorts it before ``decision_id``)."""

    def __init__(self, fixed: dict[str, Any], verified: bool | None, *, batched: bool) -> None:
        enc = _encoded(fixed)
        flag = "true" if verified else "null"
        head = f'{{"artifact_verified":{flag},'
        self.batched = batched
        self.segments = (
            f'{head}"decided_at":' if batched else head,
            ',"decision_id":' if batched else '"decision_id":',
            f',"event_type":"{PREDICTION}","input_hash":',
            ',"latency_ms":',
            f',"model_name":{enc["model_name"]},"model_uri":{enc["model_uri"]},'
            f'"model_version":{enc["model_version"]},"output_hash":',
            f',"run_id":{enc["run_id"]},"sequence":',
            f',"stream_id":{enc["stream_id"]}}}',
        )

    def text(  # noqa: PLR0917 - called per decision: positional is cheaper
        self,
        decision: str,
        input_hash: str,
        latency: float,
        output_hash: str,
        sequence: int,
        decided_at: str = "",
        traced: str = "",
    ) -> bytes:
        """The payload's bytes (``decision``, ``decided_at``: already JCS strings;
        ``traced``: the ``,"mlflow_trace_id":…`` member, which JCS sorts right after
        ``latency_ms``, or nothing)."""
        s = self.segments
        return (
            f"{s[0]}{decided_at}{s[1]}{decision}{s[2]}{encode_string(input_hash)}{s[3]}"
            f"{format_number(latency)}{traced}{s[4]}{encode_string(output_hash)}"
            f"{s[5]}{sequence}{s[6]}"
        ).encode()


def _plain(
    decision_id: Any,
    input_hash: Any,
    output_hash: Any,
    latency_ms: Any,
    sequence: Any,
    *texts: Any,
) -> bool:
    """Whether the template can spell this decision (else the generic functions do)."""
    return (
        type(latency_ms) is float
        and latency_ms - latency_ms == 0.0
        and type(sequence) is int
        and type(decision_id) is str
        and type(input_hash) is str
        and type(output_hash) is str
        and (decision_id + input_hash + output_hash).isascii()
        and all(t is None or (type(t) is str and t.isascii()) for t in texts)
    )


def _generic_payload(
    fixed: dict[str, Any],
    verified: bool | None,
    *,
    decision_id: str,
    input_hash: str,
    output_hash: str,
    latency_ms: float,
    sequence: int,
    more: dict[str, Any],
) -> dict[str, Any]:
    """A decision's payload by :func:`prediction_payload` (anything the template cannot
    spell); ``more``: the fields after the stream's (decision time, trace ids, metadata)."""
    return prediction_payload(
        decision_id=decision_id,
        model_name=fixed["model_name"],
        model_version=fixed["model_version"],
        run_id=fixed["run_id"],
        model_uri=fixed["model_uri"],
        input_hash=input_hash,
        output_hash=output_hash,
        latency_ms=latency_ms,
        artifact_verified=verified,
        snapshot={"sequence": sequence, "stream_id": fixed["stream_id"], **more},
    )


def _plain_payload(  # noqa: PLR0917 - called per decision: positional is cheaper
    fixed: dict[str, Any],
    verified: bool | None,
    decision_id: str,
    input_hash: str,
    output_hash: str,
    latency: float,
    sequence: int,
) -> dict[str, Any]:
    """The payload the template spells: :func:`prediction_payload`'s fields, in its
    order, built without its generic merge (the hot path)."""
    return {
        "event_type": PREDICTION,
        "decision_id": decision_id,
        "model_name": fixed["model_name"],
        "model_version": fixed["model_version"],
        "run_id": fixed["run_id"],
        "model_uri": fixed["model_uri"],
        "input_hash": input_hash,
        "output_hash": output_hash,
        "latency_ms": latency,
        "artifact_verified": verified,
        "sequence": sequence,
        "stream_id": fixed["stream_id"],
    }


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
        self._fixed = {
            **_fixed_fields(model_name, model_version, run_id, model_uri, stream_id),
            "previous_hash": previous_hash,
        }
        self._verified = True if artifact_verified else None
        self._payload: _PayloadTemplate | None = None
        self._envelope_text: tuple[str, ...] = ()
        # A fixed field the template cannot spell: every decision goes the generic way.
        with contextlib.suppress(TypeError, UnicodeEncodeError):
            self._payload = _PayloadTemplate(self._fixed, self._verified, batched=False)
            self._envelope_text = self._envelope_template()

    def _envelope_template(self) -> tuple[str, ...]:
        """The JCS text around the envelope's holes (split where ``signature`` goes)."""
        enc = _encoded(self._fixed)
        return (
            '{"event_id":',
            f',"event_type":"{PREDICTION}","payload_hash":"',
            f'","previous_hash":{enc["previous_hash"]},"public_key":"{self._key.public_key_hex}"',
            ',"signed_at":',
            f',"spec_version":"{SPEC_VERSION}","subject":{{"decision_id":',
            f',"model_run_id":{enc["run_id"]}',
            ',"type":"mlflow_prediction"}}',  # the subject's trace_id goes before this
        )

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
        mlflow_trace_id: str | None = None,
        event_id: str | None = None,
        signed_at: str | None = None,
    ) -> SignedDecision:
        """The signed record of one decision (``extra``: snapshot fields such as the
        trace and OpenTelemetry ids and caller metadata; ``trace_id``: the subject's;
        ``mlflow_trace_id``: the decision's own MLflow trace, both the payload field and
        the subject's ``trace_id``, which the template spells so that a traced decision
        costs no more than an untraced one; ``event_id`` / ``signed_at`` default to a
        new UUID and now)."""
        fixed, template = self._fixed, self._payload
        if (
            template is None
            or extra
            or trace_id
            or not _plain(
                decision_id,
                input_hash,
                output_hash,
                latency_ms,
                sequence,
                event_id,
                signed_at,
                mlflow_trace_id,
            )
        ):
            if mlflow_trace_id:
                extra = {"mlflow_trace_id": mlflow_trace_id, **(extra or {})}
            return self._sign_generic(
                {
                    "decision_id": decision_id,
                    "input_hash": input_hash,
                    "output_hash": output_hash,
                    "latency_ms": latency_ms,
                    "sequence": sequence,
                    "extra": extra,
                    "trace_id": trace_id or mlflow_trace_id,
                    "event_id": event_id,
                    "signed_at": signed_at,
                }
            )
        latency = round(latency_ms, LATENCY_PRECISION)
        payload = _plain_payload(
            fixed, self._verified, decision_id, input_hash, output_hash, latency, sequence
        )
        subject = {
            "type": "mlflow_prediction",
            "decision_id": decision_id,
            "model_run_id": fixed["run_id"],
        }
        enc = encode_string
        decision = enc(decision_id)
        traced = subject_trace = ""
        if mlflow_trace_id:
            payload["mlflow_trace_id"] = subject["trace_id"] = mlflow_trace_id
            trace = enc(mlflow_trace_id)
            traced, subject_trace = f',"mlflow_trace_id":{trace}', f',"trace_id":{trace}'
        payload_bytes = template.text(
            decision, input_hash, latency, output_hash, sequence, "", traced
        )
        payload_hash = hashlib.sha256(payload_bytes).hexdigest()
        event_id = event_id or random_uuid()
        signed_at = signed_at or utc_now_iso()
        parts = self._envelope_text
        head = f"{parts[0]}{enc(event_id)}{parts[1]}{payload_hash}{parts[2]}"
        tail = f"{parts[3]}{enc(signed_at)}{parts[4]}{decision}{parts[5]}{subject_trace}{parts[6]}"
        signature = self._key.sign(f"{head}{tail}".encode()).hex()
        envelope = {
            "event_id": event_id,
            "event_type": PREDICTION,
            "subject": subject,
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
        payload = _generic_payload(
            fixed,
            self._verified,
            decision_id=decision_id,
            input_hash=arguments["input_hash"],
            output_hash=arguments["output_hash"],
            latency_ms=arguments["latency_ms"],
            sequence=arguments["sequence"],
            more=arguments["extra"] or {},
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


@dataclass(frozen=True)
class Leaf:
    """One batched decision: its payload, the payload's exact bytes and their RFC 9162
    leaf hash."""

    payload: dict[str, Any]
    payload_bytes: bytes
    leaf_hash: bytes


class DecisionLeaves:
    """The payloads of one served model's batched decisions (one stream): prepared once,
    filled in per decision. Nothing is signed here (see the module docstring)."""

    def __init__(
        self,
        *,
        model_name: str,
        model_version: str,
        run_id: str,
        model_uri: str,
        artifact_verified: bool | None,
        stream_id: str,
    ) -> None:
        self._fixed = _fixed_fields(model_name, model_version, run_id, model_uri, stream_id)
        self._verified = True if artifact_verified else None
        self._template: _PayloadTemplate | None = None
        with contextlib.suppress(TypeError, UnicodeEncodeError):
            self._template = _PayloadTemplate(self._fixed, self._verified, batched=True)

    def leaf(
        self,
        *,
        decision_id: str,
        input_hash: str,
        output_hash: str,
        latency_ms: float,
        sequence: int,
        decided_at: str,
        extra: dict[str, Any] | None = None,
    ) -> Leaf:
        """The leaf of one decision (``extra``: trace / OpenTelemetry ids, metadata)."""
        fixed, template = self._fixed, self._template
        if (
            template is None
            or extra
            or not _plain(decision_id, input_hash, output_hash, latency_ms, sequence, decided_at)
        ):
            payload = _generic_payload(
                fixed,
                self._verified,
                decision_id=decision_id,
                input_hash=input_hash,
                output_hash=output_hash,
                latency_ms=latency_ms,
                sequence=sequence,
                more={"decided_at": decided_at, **(extra or {})},
            )
            data = canonical_json(payload)
            return Leaf(payload, data, leaf_hash(data))
        latency = round(latency_ms, LATENCY_PRECISION)
        payload = _plain_payload(
            fixed, self._verified, decision_id, input_hash, output_hash, latency, sequence
        )
        payload["decided_at"] = decided_at
        data = template.text(
            encode_string(decision_id),
            input_hash,
            latency,
            output_hash,
            sequence,
            encode_string(decided_at),
        )
        return Leaf(payload, data, leaf_hash(data))
