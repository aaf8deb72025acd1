"""The reference's result shape for verifying one commitment (``verify_commitment``)."""

from __future__ import annotations

from typing import Any

from ario_mlflow.proof.envelope import verify_envelope
from ario_mlflow.proof.hashing import sha256_hex
from ario_mlflow.proof.spec import spec_version_supported


def spec_version_status(envelope: Any) -> str:
    """``supported`` / ``legacy`` (no or null ``spec_version``) / ``unsupported``."""
    if not isinstance(envelope, dict):
        return "unsupported"
    version = envelope.get("spec_version")
    if version is None:
        return "legacy"
    return "supported" if spec_version_supported(version) else "unsupported"


def verify_commitment(envelope: Any, payload_bytes: bytes | None = None) -> dict[str, Any]:
    """Verify an envelope (legacy allowed) and, if given, the payload bytes it commits to.

    Returns the dict of ar-io-mlflow 0.3.0: ``signature_valid``, ``payload_hash_valid``
    (``None`` without bytes), ``computed_payload_hash``, ``stored_payload_hash``,
    ``spec_version_status``, ``legacy_envelope``, ``overall`` and, only for unsupported
    input, ``reason``.
    """
    result = verify_envelope(envelope, payload_bytes=payload_bytes, allow_legacy=True)
    status = spec_version_status(envelope)
    out: dict[str, Any] = {
        "signature_valid": result.signature_ok,
        "payload_hash_valid": result.payload_hash_ok,
        "computed_payload_hash": sha256_hex(payload_bytes) if payload_bytes is not None else None,
        "stored_payload_hash": envelope.get("payload_hash") if isinstance(envelope, dict) else None,
        "spec_version_status": status,
        "legacy_envelope": result.legacy_envelope,
        "overall": result.ok and status != "unsupported",
    }
    if status == "unsupported":
        out["reason"] = (
            "envelope_not_a_json_object"
            if not isinstance(envelope, dict)
            else "unsupported_spec_version"
        )
    return out
