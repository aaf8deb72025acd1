"""Finding and checking the signed training record behind a run.

Registration and ``VerifiedModel`` compare model artifacts against the artifact hashes
of the *signed, anchored* training payload, never against a mutable tag. This module
locates that payload (run tag → TX id → envelope from a gateway, or from the local journal
while the upload is still queued → payload witness in the run) and checks every link:
signature, pinned issuer keys, subject binding, payload hash. It distinguishes "there is
no proof" (``None``) from "there is a proof and it does not check out" (raises).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ario_mlflow import tags as T
from ario_mlflow.errors import EnvelopeParseError, IntegrityError, ProofUnavailableError
from ario_mlflow.proof.envelope import parse_json_object, verify_envelope
from ario_mlflow.proof.hashing import sha256_hex
from ario_mlflow.witness import event_dir


@dataclass(frozen=True)
class TrainingProof:
    """A training record whose envelope, signature and payload bytes all checked out."""

    tx_id: str
    envelope: dict[str, Any]
    payload: dict[str, Any]
    payload_bytes: bytes

    @property
    def artifact_checksums(self) -> dict[str, str]:
        """Per-file SHA-256 of the model as anchored."""
        checksums = self.payload.get("artifact_checksums")
        return dict(checksums) if isinstance(checksums, dict) else {}

    @property
    def artifact_path(self) -> str | None:
        """The model directory hashed at anchor time (``None`` for 0.3.0 records)."""
        value = self.payload.get("artifact_path")
        return value if isinstance(value, str) else None

    @property
    def signer(self) -> str:
        """Hex public key that signed the record."""
        return str(self.envelope.get("public_key", ""))


def training_tx_of(run_tags: dict[str, str]) -> str | None:
    """The run's training TX (uploaded, or signed and still queued)."""
    return run_tags.get(T.TRAINING_TX) or run_tags.get(T.QUEUED_TX)


def _envelope_bytes(tx_id: str, arweave: Any) -> bytes:
    data = arweave.fetch_envelope_bytes(tx_id)
    if data is not None:
        return bytes(data)
    journal = getattr(arweave, "journal", None)
    record = journal.by_tx(tx_id) if journal is not None else None
    if record is not None:
        return bytes(record.envelope)  # signed here and not uploaded yet
    raise ProofUnavailableError(
        f"training record {tx_id} could not be fetched: {arweave.last_error}"
    )


def _witness_bytes(client: Any, run_id: str, event_id: str) -> bytes:
    import tempfile

    from mlflow.exceptions import MlflowException

    candidates = (f"ario/{event_dir(event_id)}/payload.json", "ario/payload.json")
    problems = []
    for path in candidates:
        with tempfile.TemporaryDirectory(prefix="ario-witness-") as scratch:
            try:
                local = client.download_artifacts(run_id, path, scratch)
                return Path(local).read_bytes()
            except (MlflowException, OSError) as exc:
                problems.append(f"{path}: {exc}")
    raise ProofUnavailableError(
        f"payload witness of run {run_id} is missing: " + "; ".join(problems)
    )


def check_training_envelope(
    envelope: dict[str, Any], run_id: str, trusted_keys: Sequence[str]
) -> None:
    """Raise ``IntegrityError`` unless ``envelope`` is a valid training record of ``run_id``."""
    result = verify_envelope(envelope, allow_legacy=True)
    if not result.ok:
        raise IntegrityError(f"training record does not verify: {result.reason}")
    if envelope.get("event_type") != "training_complete":
        raise IntegrityError(
            f"record is a {envelope.get('event_type')!r} event, not training_complete"
        )
    subject = envelope.get("subject") or {}
    if subject.get("type") != "mlflow_run" or subject.get("run_id") != run_id:
        raise IntegrityError(f"training record is about {subject!r}, not run {run_id}")
    if trusted_keys and envelope.get("public_key") not in trusted_keys:
        raise IntegrityError(
            f"training record is signed by {envelope.get('public_key')}, which is not a "
            "trusted key (ARIO_MLFLOW_TRUSTED_KEYS)"
        )


def load_training_proof(
    client: Any, run_id: str, *, arweave: Any, trusted_keys: Sequence[str] = ()
) -> TrainingProof | None:
    """The checked training proof of ``run_id``; ``None`` if the run has none at all.

    Raises ``IntegrityError`` when a proof exists but is wrong (bad signature, another
    run's record, unpinned signer, witness edited) and ``ProofUnavailableError`` when it
    exists but cannot be read now.
    """
    run_tags = client.get_run(run_id).data.tags
    tx_id = training_tx_of(run_tags)
    if not tx_id:
        return None
    try:
        envelope = parse_json_object(_envelope_bytes(tx_id, arweave))
    except EnvelopeParseError as exc:
        raise IntegrityError(f"training record {tx_id} is not a valid envelope: {exc}") from None
    check_training_envelope(envelope, run_id, trusted_keys)
    payload_bytes = _witness_bytes(client, run_id, str(envelope.get("event_id")))
    if sha256_hex(payload_bytes) != envelope.get("payload_hash"):
        raise IntegrityError(
            f"payload witness of run {run_id} does not match the anchored payload_hash"
        )
    try:
        payload = parse_json_object(payload_bytes)
    except EnvelopeParseError as exc:
        raise IntegrityError(f"payload witness of run {run_id} is not JSON: {exc}") from None
    return TrainingProof(tx_id, envelope, payload, payload_bytes)
