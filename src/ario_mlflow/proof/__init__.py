"""The pure proof kernel: canonical JSON, hashing, Ed25519, envelopes, Merkle trees.

Nothing in this package does I/O or imports MLflow. ``ProofEngine`` (which owns a signing
key, and so touches key files) lives in :mod:`ario_mlflow.engine`; it is importable from
here, lazily, because ``ario_mlflow.proof.ProofEngine`` is the documented import path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ario_mlflow.proof.canonical import canonical_json, normalize_floats
from ario_mlflow.proof.commitment import spec_version_status, verify_commitment
from ario_mlflow.proof.ed25519 import key_fingerprint, verify_signature
from ario_mlflow.proof.envelope import (
    VerificationResult,
    envelope_for_signature,
    parse_json_object,
    sign_envelope,
    verify_envelope,
    verify_envelope_bytes,
)
from ario_mlflow.proof.hashing import sha256_hex
from ario_mlflow.proof.spec import ACCEPTED_SPEC_VERSIONS, SPEC_VERSION, spec_version_supported

if TYPE_CHECKING:
    from ario_mlflow.engine import ProofEngine

#: Name kept from ar-io-mlflow 0.3.0.
hash_data = sha256_hex

__all__ = [
    "ACCEPTED_SPEC_VERSIONS",
    "SPEC_VERSION",
    "ProofEngine",
    "VerificationResult",
    "canonical_json",
    "envelope_for_signature",
    "hash_data",
    "key_fingerprint",
    "normalize_floats",
    "parse_json_object",
    "sha256_hex",
    "sign_envelope",
    "spec_version_status",
    "spec_version_supported",
    "verify_commitment",
    "verify_envelope",
    "verify_envelope_bytes",
    "verify_signature",
]


def __getattr__(name: str) -> Any:
    if name == "ProofEngine":
        from ario_mlflow.engine import ProofEngine

        return ProofEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
