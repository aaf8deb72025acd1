"""Putting the checks together: ``full_verify``, ``verify_record``, ``verify_proof_by_tx``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ario_mlflow.config import trusted_keys_from_env
from ario_mlflow.errors import EnvelopeParseError
from ario_mlflow.proof.envelope import parse_json_object
from ario_mlflow.proof.hashing import sha256_hex
from ario_mlflow.proof.windows import RECEIPT_FORMAT, Receipt
from ario_mlflow.verify.checks import (
    DEFAULT_MIN_ATTESTATION_LEVEL,
    check_chain,
    check_issuer,
    check_subject,
    verify_anchored_bytes,
    verify_ario_attestation,
    verify_signature,
    verify_source_of_truth,
)

#: Event types whose records commit to MLflow state: checks 1–3 must all run and pass.
_MLFLOW_BOUND = frozenset({"training_complete", "model_registered", "prediction"})
_CORE = ("signature", "anchored_bytes", "source_of_truth", "ario_attestation")
_EXTRA = ("subject", "chain", "issuer")


def overall_ok(checks: dict[str, dict[str, Any]], event_type: Any) -> bool | None:
    """The reference's overall rule, with our extra checks able to fail it.

    Any ``False`` fails; for MLflow-bound event types a check 1–3 that did not run fails
    too; otherwise any ``True`` passes; nothing ran → ``None``.
    """
    oks = [checks[name].get("ok") for name in (*_CORE, *_EXTRA) if name in checks]
    if any(ok is False for ok in oks):
        return False
    if event_type in _MLFLOW_BOUND and any(
        checks[name].get("ok") is None for name in _CORE[:3] if name in checks
    ):
        return False
    if any(ok is True for ok in oks):
        return True
    return None


def _trusted(trusted_keys: Sequence[str] | None) -> tuple[str, ...]:
    return tuple(trusted_keys) if trusted_keys is not None else trusted_keys_from_env()


def full_verify(
    envelope: Any,
    *,
    proof_engine: Any = None,
    mlflow_client: Any = None,
    ario_client: Any = None,
    min_attestation_level: int = DEFAULT_MIN_ATTESTATION_LEVEL,
    tx_id: str | None = None,
    trusted_keys: Sequence[str] | None = None,
    expected_subject: dict[str, str] | None = None,
    expected_previous: str | None = None,
    anchor: Any = None,
) -> dict[str, Any]:
    """Every check of one envelope; checks never short-circuit each other."""
    result: dict[str, Any] = {"signature": verify_signature(envelope, proof_engine)}
    result["anchored_bytes"] = verify_anchored_bytes(envelope, mlflow_client)
    payload_bytes = result["anchored_bytes"].get("payload_bytes")
    if mlflow_client is not None and payload_bytes:
        result["source_of_truth"] = verify_source_of_truth(
            envelope, payload_bytes, mlflow_client, anchor=anchor
        )
    else:
        result["source_of_truth"] = {
            "ok": None,
            "reason": result["anchored_bytes"].get("reason") or "no_payload_to_compare",
        }
    if ario_client is None:
        result["ario_attestation"] = {"ok": None, "reason": "no_ario_client"}
    else:
        result["ario_attestation"] = verify_ario_attestation(
            envelope, ario_client, min_attestation_level=min_attestation_level, tx_id=tx_id
        )
    result["subject"] = check_subject(envelope, expected_subject)
    result["chain"] = check_chain(envelope, expected_previous)
    result["issuer"] = check_issuer(envelope, _trusted(trusted_keys))
    event_type = envelope.get("event_type") if isinstance(envelope, dict) else None
    result["overall"] = overall_ok(result, event_type)
    return result


def verify_record(
    envelope: Any,
    canonical_bytes: bytes | None,
    *,
    proof_engine: Any = None,
    ario_client: Any = None,
    min_attestation_level: int = DEFAULT_MIN_ATTESTATION_LEVEL,
    tx_id: str | None = None,
    trusted_keys: Sequence[str] | None = None,
    expected_subject: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An auditor's check without MLflow: the envelope and the exact payload bytes — or,
    for a batched decision, its inclusion receipt alone (a ``Receipt`` or its JSON form;
    ``canonical_bytes`` is then unused)."""
    receipt = _as_receipt(envelope)
    if receipt is not None:
        from ario_mlflow.verify.receipts import verify_receipt_offline

        return verify_receipt_offline(receipt, trusted_keys=_trusted(trusted_keys))
    stored = envelope.get("payload_hash") if isinstance(envelope, dict) else None
    if not canonical_bytes:
        anchored = {
            "ok": False,
            "reason": "no_canonical_bytes_provided",
            "computed_hash": None,
            "stored_hash": stored,
        }
    else:
        computed = sha256_hex(canonical_bytes)
        anchored = {"ok": computed == stored, "computed_hash": computed, "stored_hash": stored}
        if not anchored["ok"]:
            anchored["reason"] = "payload_hash_mismatch"
    result: dict[str, Any] = {
        "signature": verify_signature(envelope, proof_engine),
        "anchored_bytes": anchored,
        "ario_attestation": (
            {"ok": None, "reason": "no_ario_client"}
            if ario_client is None
            else verify_ario_attestation(
                envelope, ario_client, min_attestation_level=min_attestation_level, tx_id=tx_id
            )
        ),
        "subject": check_subject(envelope, expected_subject),
        "issuer": check_issuer(envelope, _trusted(trusted_keys)),
    }
    oks = [check["ok"] for check in result.values()]
    if any(ok is False for ok in oks):
        result["overall"] = False
    elif result["signature"]["ok"] and anchored["ok"]:
        result["overall"] = True
    else:
        result["overall"] = None
    return result


def _as_receipt(value: Any) -> Receipt | None:
    if isinstance(value, Receipt):
        return value
    if isinstance(value, dict) and value.get("format") == RECEIPT_FORMAT:
        return Receipt.from_json(value)
    return None


_NOT_FOUND = {"ok": None, "reason": "no_envelope"}


def verify_proof_by_tx(
    tx_id: str,
    *,
    anchor: Any = None,
    proof_engine: Any = None,
    mlflow_client: Any = None,
    ario_client: Any = None,
    min_attestation_level: int = DEFAULT_MIN_ATTESTATION_LEVEL,
    trusted_keys: Sequence[str] | None = None,
    expected_subject: dict[str, str] | None = None,
    expected_previous: str | None = None,
) -> dict[str, Any]:
    """Fetch the record at ``tx_id`` from the gateways and ``full_verify`` it."""
    if anchor is None:
        from ario_mlflow.outbox.anchor import ArweaveAnchor

        anchor = ArweaveAnchor()
    data = anchor.fetch_envelope_bytes(tx_id)
    envelope: Any = None
    parse_error = None
    if data is not None:
        try:
            envelope = parse_json_object(data)
        except EnvelopeParseError as exc:
            parse_error = exc
    if envelope is None:
        reason = f"no_envelope: {parse_error}" if parse_error else "no_envelope"
        checks = {name: dict(_NOT_FOUND, reason=reason) for name in (*_CORE, *_EXTRA)}
        return {
            "proof_found": False,
            "tx_id": tx_id,
            **checks,
            "overall": None,
            "fetch_error": getattr(anchor, "last_error", None),
        }
    result = full_verify(
        envelope,
        proof_engine=proof_engine,
        mlflow_client=mlflow_client,
        ario_client=ario_client,
        min_attestation_level=min_attestation_level,
        tx_id=tx_id,
        trusted_keys=trusted_keys,
        expected_subject=expected_subject,
        expected_previous=expected_previous,
        anchor=anchor,
    )
    return {"proof_found": True, "tx_id": tx_id, "envelope": envelope, **result}
