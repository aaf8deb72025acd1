"""Verifying anchored records: the four checks of ar-io-mlflow 0.3.0 plus subject binding,
chain links and issuer pinning; ``full_verify``, ``verify_record``, ``verify_proof_by_tx``."""

from __future__ import annotations

from ario_mlflow.errors import LiveRefetchError
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
from ario_mlflow.verify.core import full_verify, overall_ok, verify_proof_by_tx, verify_record
from ario_mlflow.verify.receipts import verify_receipt

__all__ = [
    "DEFAULT_MIN_ATTESTATION_LEVEL",
    "LiveRefetchError",
    "check_chain",
    "check_issuer",
    "check_subject",
    "full_verify",
    "overall_ok",
    "verify_anchored_bytes",
    "verify_ario_attestation",
    "verify_proof_by_tx",
    "verify_receipt",
    "verify_record",
    "verify_signature",
    "verify_source_of_truth",
]
