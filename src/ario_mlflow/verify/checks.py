"""The individual checks of a record. Each returns a dict with a tri-state ``ok``:
``True`` (ran, passed), ``False`` (ran, failed), ``None`` (not run / not applicable),
and a ``reason`` string whenever ``ok`` is not ``True``.

Checks 1–4 keep the names and result keys of ar-io-mlflow 0.3.0; ``check_subject``,
``check_chain`` and ``check_issuer`` are ours (reference §10.1 items 2 and 3).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ario_mlflow.errors import CanonicalizationError, LiveRefetchError
from ario_mlflow.lifecycle.model_location import version_run_id
from ario_mlflow.lifecycle.witness import payload_paths, read_artifact
from ario_mlflow.proof.canonical import canonical_json
from ario_mlflow.proof.checks import describe_mismatch, issuer_pinned, subject_mismatch
from ario_mlflow.proof.commitment import verify_commitment
from ario_mlflow.proof.ed25519 import key_fingerprint
from ario_mlflow.proof.envelope import envelope_for_signature
from ario_mlflow.proof.hashing import sha256_hex

DEFAULT_MIN_ATTESTATION_LEVEL = 2


# --- check 1: signature ---------------------------------------------------------------------


def verify_signature(envelope: Any, proof_engine: Any = None) -> dict[str, Any]:
    """Ed25519 signature, accepted spec version, and a ``payload_hash`` to bind to."""
    del proof_engine  # kept for the 0.3.0 signature; verifying needs no key
    result = verify_commitment(envelope)
    out: dict[str, Any] = {
        "ok": bool(result["overall"]),
        "signature_valid": result["signature_valid"],
        "spec_version_status": result["spec_version_status"],
        "legacy_envelope": result["legacy_envelope"],
    }
    if "reason" in result:
        out["reason"] = result["reason"]
    elif not result["signature_valid"]:
        out["reason"] = "signature_invalid"
    elif not out["ok"]:
        out["reason"] = "missing_payload_hash"
    return out


# --- check 2: the committed bytes -----------------------------------------------------------


def witness_candidates(envelope: dict[str, Any], client: Any) -> tuple[str | None, list[str]]:
    """``(run id, artifact paths to try in order)`` of an envelope's payload witness.

    The paths are the witness layout's (:func:`~ario_mlflow.lifecycle.witness.payload_paths`);
    the run is the one the subject names, for a model version the version's run.
    """
    subject = envelope.get("subject") or {}
    kind = subject.get("type")
    if kind == "mlflow_run":
        run_id = subject.get("run_id")
    elif kind == "mlflow_model_version":
        name, version = subject.get("name"), subject.get("version")
        if not name or not version:
            raise LookupError("subject_missing_name_or_version")
        try:
            run_id = version_run_id(client, client.get_model_version(name, str(version)))
        except Exception as exc:
            raise LookupError(f"could_not_resolve_model_version: {exc}") from None
    elif kind == "mlflow_prediction":
        if not subject.get("decision_id") or not subject.get("model_run_id"):
            raise LookupError("subject_missing_decision_id_or_run_id")
        run_id = subject.get("model_run_id")
    else:
        raise LookupError(f"unknown_subject_type: {kind!r}")
    return run_id, payload_paths(envelope)


_NOT_EXPECTED = {
    "mlflow_trace": "legacy_subject_type_no_artifact",
    "mlflow_decision": "legacy_subject_type_no_artifact",
    "mlflow_dataset": "mlflow_check_deferred_for_subject",
}


def verify_anchored_bytes(envelope: Any, mlflow_client: Any) -> dict[str, Any]:
    """Find the payload witness in MLflow and compare its hash with ``payload_hash``."""
    stored = envelope.get("payload_hash") if isinstance(envelope, dict) else None
    base: dict[str, Any] = {"computed_hash": None, "stored_hash": stored, "payload_bytes": None}
    if mlflow_client is None:
        return {"ok": None, "reason": "no_mlflow_client", **base, "artifact_expected": False}
    kind = (envelope.get("subject") or {}).get("type") if isinstance(envelope, dict) else None
    if kind in _NOT_EXPECTED:
        return {"ok": None, "reason": _NOT_EXPECTED[kind], **base, "artifact_expected": False}
    try:
        run_id, paths = witness_candidates(envelope, mlflow_client)
    except LookupError as exc:
        expected = not str(exc).startswith("unknown_subject_type")
        return {
            "ok": False if expected else None,
            "reason": str(exc),
            **base,
            "artifact_expected": expected,
        }
    if not run_id:
        return {"ok": False, "reason": "subject_missing_run_id", **base, "artifact_expected": True}
    problems = []
    for path in paths:
        try:
            data = read_artifact(mlflow_client, run_id, path)
        except Exception as exc:
            problems.append(f"{path}: {exc}")
            continue
        computed = sha256_hex(data)
        result = {
            "ok": computed == stored,
            "computed_hash": computed,
            "stored_hash": stored,
            "payload_bytes": data,
            "artifact_expected": True,
            "path": path,
        }
        if not result["ok"]:
            result["reason"] = "payload_hash_mismatch"
        return result
    return {
        "ok": False,
        "reason": "download_failed: " + "; ".join(problems)[:500],
        **base,
        "artifact_expected": True,
    }


# --- check 3: live MLflow state -------------------------------------------------------------


def verify_source_of_truth(
    envelope: Any, payload_bytes: bytes | None, mlflow_client: Any, *, anchor: Any = None
) -> dict[str, Any]:
    """Rebuild the payload from live MLflow state and compare the exact bytes."""
    from ario_mlflow.verify.refetch import REFETCHERS

    if not payload_bytes:
        return {"ok": None, "reason": "no_payload_to_compare"}
    event_type = envelope.get("event_type") if isinstance(envelope, dict) else None
    refetch = REFETCHERS.get(str(event_type))
    if refetch is None:
        return {
            "ok": None,
            "reason": "no_live_fields_for_event_type",
            "event_type": event_type,
            "note": "nothing in MLflow can be re-read for this event type",
        }
    try:
        original = json.loads(payload_bytes)
        if not isinstance(original, dict):
            raise ValueError("payload is not a JSON object")
    except ValueError as exc:
        return {"ok": False, "reason": f"payload_parse_failed: {exc}"}
    try:
        fresh = refetch(original, mlflow_client, anchor)
    except LiveRefetchError as exc:
        return {"ok": False, "reason": "live_refetch_incomplete", "detail": str(exc)}
    except Exception as exc:
        return {"ok": False, "reason": f"live_refetch_failed: {type(exc).__name__}: {exc}"}
    rebuilt = {**original, **fresh}
    try:
        rebuilt_bytes = canonical_json(rebuilt)
    except CanonicalizationError as exc:
        return {"ok": False, "reason": f"live_refetch_failed: {exc}"}
    ok = rebuilt_bytes == payload_bytes
    result: dict[str, Any] = {
        "ok": ok,
        "rebuilt_bytes": rebuilt_bytes,
        "live_fields_refetched": sorted(fresh),
    }
    if not ok:
        changed = sorted(k for k in fresh if original.get(k) != fresh[k])
        result["reason"] = "live_mlflow_mismatch: " + ", ".join(changed or ["(byte-level)"])
        result["mismatched_fields"] = changed
    return result


# --- check 4: ar.io attestation -------------------------------------------------------------


def anchored_bytes_hash(envelope: dict[str, Any]) -> str:
    """SHA-256 of the exact bytes that were uploaded: the JCS envelope without annotations."""
    signed_scope = envelope_for_signature(envelope)
    uploaded = {k: v for k, v in envelope.items() if k in signed_scope or k == "signature"}
    return sha256_hex(canonical_json(uploaded))


def verify_ario_attestation(
    envelope: Any,
    ario_client: Any,
    *,
    min_attestation_level: int = DEFAULT_MIN_ATTESTATION_LEVEL,
    tx_id: str | None = None,
) -> dict[str, Any]:
    """Ask ar.io Verify about the TX; the attested data must be the anchored envelope."""
    if ario_client is None or not getattr(ario_client, "enabled", False):
        return {"ok": None, "reason": "ario_verify_not_enabled"}
    if isinstance(envelope, dict):
        tx_id = tx_id or envelope.get("_tx_id") or envelope.get("arweave_tx_id")
    if not tx_id:
        return {"ok": None, "reason": "no_tx_id_provided"}
    expected = anchored_bytes_hash(envelope) if isinstance(envelope, dict) else None
    try:
        answer = ario_client.submit_verification(tx_id, expected_data_hash=expected)
    except TypeError:  # a 0.3.0-style client without expected_data_hash
        answer = ario_client.submit_verification(tx_id)
    if answer is None:
        return {"ok": False, "reason": "ario_verify_returned_no_result"}
    level = answer.get("attestation_level") or 0
    result: dict[str, Any] = {
        "ok": level >= min_attestation_level,
        "attestation_level": level,
        "attested_by": answer.get("attested_by"),
        "attested_at": answer.get("attested_at"),
        "report_url": answer.get("report_url"),
        "pdf_url": answer.get("pdf_url"),
        "min_attestation_level": min_attestation_level,
        "data_hash_matches": answer.get("data_hash_matches"),
        "attestation_signature_valid": answer.get("attestation_signature_valid"),
    }
    if answer.get("data_hash_matches") is False:
        result["ok"] = False
        result["reason"] = "attested_hash_mismatch"
    elif not result["ok"]:
        result["reason"] = "attestation_level_below_threshold"
    return result


# --- new checks: subject, chain, issuer -------------------------------------------------------


def check_subject(envelope: Any, expected: dict[str, str] | None) -> dict[str, Any]:
    """The envelope must be about what is being verified (every expected key must match)."""
    if not expected:
        return {"ok": None, "reason": "no_expected_subject"}
    subject = envelope.get("subject") if isinstance(envelope, dict) else None
    if not isinstance(subject, dict):
        return {"ok": False, "reason": "subject_missing", "expected": expected}
    wrong = subject_mismatch(envelope, expected)
    if wrong:
        return {
            "ok": False,
            "expected": expected,
            "actual": subject,
            "reason": "subject_mismatch: " + describe_mismatch(wrong, expected),
        }
    return {"ok": True, "expected": expected}


def check_chain(envelope: Any, expected_previous: str | None) -> dict[str, Any]:
    """``previous_hash`` must link to the record it claims to follow."""
    actual = envelope.get("previous_hash") if isinstance(envelope, dict) else None
    if expected_previous is None:
        return {"ok": None, "reason": "chain_link_unknown", "previous_hash": actual}
    if actual != expected_previous:
        return {
            "ok": False,
            "previous_hash": actual,
            "expected": expected_previous,
            "reason": f"chain_link_broken: previous_hash is {actual!r}, "
            f"expected {expected_previous!r}",
        }
    return {"ok": True, "previous_hash": actual}


def check_issuer(envelope: Any, trusted_keys: Sequence[str]) -> dict[str, Any]:
    """Was the record signed by a pinned key? Unpinned is reported, never silently ok."""
    key = envelope.get("public_key") if isinstance(envelope, dict) else None
    if not isinstance(key, str):
        return {"ok": False, "reason": "no_public_key", "pinned": bool(trusted_keys)}
    fingerprint = key_fingerprint(key)
    base = {"public_key": key, "fingerprint": fingerprint, "pinned": bool(trusted_keys)}
    if not trusted_keys:
        return {
            "ok": None,
            **base,
            "reason": f"issuer_not_pinned: signed by an unpinned key {fingerprint}",
        }
    if issuer_pinned(key, trusted_keys):
        return {"ok": True, **base}
    return {
        "ok": False,
        **base,
        "reason": f"untrusted_issuer: signed by an unpinned key {fingerprint}",
    }
