"""Finding and checking the signed training record behind a run.

Registration and ``VerifiedModel`` compare model artifacts against the artifact hashes
of the *signed, anchored* training payload, never against a mutable tag. This module
locates that payload (run tag → TX id → envelope from a gateway, or from the local journal
while the upload is still queued → payload witness in the run) and checks every link:
signature, pinned issuer keys, subject binding, payload hash. It distinguishes "there is
no proof" (``None``) from "there is a proof and it does not check out" (raises).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ario_mlflow import tags as T
from ario_mlflow.errors import (
    EnvelopeParseError,
    GatewayError,
    IntegrityError,
    ProofUnavailableError,
)
from ario_mlflow.lifecycle.witness import event_dir
from ario_mlflow.proof.envelope import parse_json_object, verify_envelope
from ario_mlflow.proof.hashing import sha256_hex

TRAINING = "training_complete"


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


EnvelopeCheck = Callable[[dict[str, Any]], "str | None"]


def fetch_checked_envelope(tx_id: str, arweave: Any, check: EnvelopeCheck) -> dict[str, Any]:
    """The record at ``tx_id`` that passes ``check``, from this installation's journal
    (signed here, maybe not uploaded yet) or else from any gateway.

    Every source is tried after any bad answer (wrong bytes, parse error, bad signature,
    another subject), so one hostile gateway cannot hide a genuine record. Raises
    ``IntegrityError`` when records were found and none passes (naming who said what),
    ``ProofUnavailableError`` when none could be read at all.
    """
    trail: list[str] = []
    journal = getattr(arweave, "journal", None)
    record = journal.by_tx(tx_id) if journal is not None else None
    if record is not None:
        try:
            envelope = parse_json_object(bytes(record.envelope))
        except EnvelopeParseError as exc:
            trail.append(f"journal: not a JSON object ({exc.reason})")
        else:
            problem = check(envelope)
            if problem is None:
                return envelope
            trail.append(f"journal: {problem}")
    fetcher = getattr(arweave, "fetch_envelope", None)
    if fetcher is None:  # a minimal anchor double: bytes only, then the same check
        data = arweave.fetch_envelope_bytes(tx_id)
        if data is None:
            why = arweave.last_error
            raise ProofUnavailableError(f"record {tx_id} could not be fetched: {why}")
        try:
            envelope = parse_json_object(bytes(data))
        except EnvelopeParseError as exc:
            raise IntegrityError(f"record {tx_id} is not a valid envelope: {exc}") from None
        problem = check(envelope)
        if problem is not None:
            raise IntegrityError(f"record {tx_id}: {problem}")
        return envelope
    try:
        fetched = fetcher(tx_id, check=check)
    except (GatewayError, ValueError) as exc:
        if trail:
            raise IntegrityError(f"record {tx_id}: {' | '.join(trail)}; {exc}") from None
        raise ProofUnavailableError(f"record {tx_id} could not be fetched: {exc}") from None
    if fetched.accepted:
        return dict(fetched.value)
    said = " | ".join([*trail, *fetched.trail])
    raise IntegrityError(f"record {tx_id} does not check out: {said}")


def witness_bytes(client: Any, run_id: str, event_id: str) -> bytes:
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


def record_problem(
    envelope: dict[str, Any],
    *,
    event_type: str,
    subject: Mapping[str, str],
    trusted_keys: Sequence[str],
) -> str | None:
    """Why ``envelope`` is not a valid ``event_type`` record about ``subject`` signed by a
    pinned key (any key when none is pinned), or ``None`` when it is."""
    result = verify_envelope(envelope, allow_legacy=True)
    if not result.ok:
        return f"record does not verify: {result.reason}"
    if envelope.get("event_type") != event_type:
        return f"record is a {envelope.get('event_type')!r} event, not {event_type}"
    actual = envelope.get("subject")
    if not isinstance(actual, dict) or any(actual.get(k) != v for k, v in subject.items()):
        return f"record is about {actual!r}, not {dict(subject)!r}"
    signer = str(envelope.get("public_key", "")).lower()
    if trusted_keys and signer not in trusted_keys:
        return (
            f"record is signed by {envelope.get('public_key')}, which is not a trusted key "
            "(ARIO_MLFLOW_TRUSTED_KEYS)"
        )
    return None


def check_training_envelope(
    envelope: dict[str, Any], run_id: str, trusted_keys: Sequence[str]
) -> None:
    """Raise ``IntegrityError`` unless ``envelope`` is a valid training record of ``run_id``."""
    problem = record_problem(
        envelope,
        event_type=TRAINING,
        subject={"type": "mlflow_run", "run_id": run_id},
        trusted_keys=trusted_keys,
    )
    if problem is not None:
        raise IntegrityError(f"training {problem}")


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
    return training_proof_at(client, run_id, tx_id, arweave=arweave, trusted_keys=trusted_keys)


def training_proof_at(
    client: Any, run_id: str, tx_id: str, *, arweave: Any, trusted_keys: Sequence[str] = ()
) -> TrainingProof:
    """The checked training proof of ``run_id`` stored at ``tx_id`` (raises like
    :func:`load_training_proof`)."""
    subject = {"type": "mlflow_run", "run_id": run_id}

    def check(envelope: dict[str, Any]) -> str | None:
        return record_problem(
            envelope, event_type=TRAINING, subject=subject, trusted_keys=trusted_keys
        )

    envelope = fetch_checked_envelope(tx_id, arweave, check)
    payload_bytes = witness_bytes(client, run_id, str(envelope.get("event_id")))
    if sha256_hex(payload_bytes) != envelope.get("payload_hash"):
        raise IntegrityError(
            f"payload witness of run {run_id} does not match the anchored payload_hash"
        )
    try:
        payload = parse_json_object(payload_bytes)
    except EnvelopeParseError as exc:
        raise IntegrityError(f"payload witness of run {run_id} is not JSON: {exc}") from None
    return TrainingProof(tx_id, envelope, payload, payload_bytes)
