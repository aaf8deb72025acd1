"""The record pipeline every lifecycle event goes through, in this order:

1. **sign** the payload into an ``ario.mlflow/v1`` envelope;
2. **journal** it, with its MLflow write-backs, before any network call — the write-backs
   that follow the upload are *held* so that the caller's own tags are written first;
3. **witness**: store the exact payload bytes in the run's artifacts now (itself a
   journaled write-back, retried later if MLflow refuses);
4. **settle**: wait for the upload until the caller's deadline, and if it came, run the
   record's write-backs here, still within that deadline;
5. **release** the held write-backs once the caller wrote what it knows now.

Training (:mod:`~ario_mlflow.lifecycle.training`), the registry
(:mod:`~ario_mlflow.lifecycle.registry`) and serving use it instead of reaching into each
other; it also names the journal keys by which their records are found again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ario_mlflow.lifecycle.witness import log_witness_files, witness_files
from ario_mlflow.lifecycle.writebacks import witness_writeback
from ario_mlflow.outbox.journal import Record, Writeback
from ario_mlflow.outbox.workers import run_writebacks_for
from ario_mlflow.proof.canonical import canonical_json

logger = logging.getLogger(__name__)

#: How long write-backs of a fresh record are held while the caller writes its own tags
#: (if the caller dies first, the workers perform them after this).
WRITEBACK_HOLD_SECONDS = 120.0
#: Pause between two looks at a record's write-backs while settling.
_SETTLE_POLL_SECONDS = 0.05

# --- journal keys: how a lifecycle event's record is found again -------------------------

REGISTRY_REGISTRATION = "registration"
REGISTRY_PROMOTION = "promotion"
REGISTRY_ALIAS = "alias"
REGISTRY_EVENTS = (REGISTRY_REGISTRATION, REGISTRY_PROMOTION, REGISTRY_ALIAS)


def training_key(run_id: str) -> str:
    """Journal key of a run's training record."""
    return f"training:{run_id}"


def registry_key(event: str, name: str, version: str | int) -> str:
    """Journal key of a registry event (one per event kind, model and version; for
    alias events ``version`` is the alias)."""
    return f"{event}:{name}:{version}"


def decision_key(decision_id: str) -> str:
    """Journal key of a decision record."""
    return f"prediction:{decision_id}"


# --- the pieces ----------------------------------------------------------------------------


class Deadline:
    """A point in time a call must return by; every wait inside the call takes from it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = max(0.0, seconds)
        self.end = time.monotonic() + self.seconds

    def remaining(self) -> float:
        """Seconds left (never negative)."""
        return max(0.0, self.end - time.monotonic())

    def passed(self) -> bool:
        """Is the deadline over?"""
        return time.monotonic() >= self.end


def default_components(proof_engine: Any, anchor: Any) -> tuple[Any, Any]:
    """``ProofEngine()`` and ``ArweaveAnchor()`` unless given (wallet errors raise here),
    with this process's MLflow write-back handlers installed."""
    from ario_mlflow.lifecycle.handlers import install

    install()
    if proof_engine is None:
        from ario_mlflow.engine import ProofEngine

        proof_engine = ProofEngine()
    if anchor is None:
        from ario_mlflow.outbox.anchor import ArweaveAnchor

        anchor = ArweaveAnchor()
    return proof_engine, anchor


@dataclass
class Event:
    """A lifecycle event ready to sign: what, about whom, following which record, and
    what MLflow must be told about it."""

    event_type: str
    subject: dict[str, Any]
    payload: dict[str, Any]
    previous_hash: str
    #: The run whose artifacts hold the witness (``None``: no witness, e.g. a dataset
    #: anchored outside a run).
    witness_run: str | None = None
    tracking_uri: str | None = None
    #: Write-backs to perform once the record is uploaded (tags with ``{tx_id}``).
    after_upload: list[Writeback] = field(default_factory=list)
    context_key: str | None = None
    context: dict[str, Any] | None = None
    event_id: str | None = None
    #: Hold ``after_upload`` until :meth:`Recorder.release` (the caller writes its own
    #: tags first, so a late write-back cannot be overwritten by an early one).
    hold: bool = True


@dataclass
class Recorded:
    """One signed, journaled record, and its upload if it came in time."""

    envelope: dict[str, Any]
    payload: dict[str, Any]
    payload_bytes: bytes
    record: Record | None = None
    anchor_result: dict[str, Any] | None = None

    @property
    def tx_id(self) -> str | None:
        """The record's TX id (known at signing; the upload may still be pending)."""
        if self.record is not None:
            return self.record.tx_id
        return None if self.anchor_result is None else str(self.anchor_result.get("tx_id"))

    @property
    def uploaded(self) -> bool:
        """Did the upload service confirm it before the deadline?"""
        return self.anchor_result is not None


class Recorder:
    """Signs, journals, witnesses and settles records with one engine and one anchor."""

    def __init__(self, proof_engine: Any = None, anchor: Any = None) -> None:
        self.engine, self.anchor = default_components(proof_engine, anchor)

    @property
    def journaled(self) -> bool:
        """Records go through the journal (a 0.3.0-style duck-typed anchor uploads
        directly, and a disabled one not at all)."""
        return getattr(self.anchor, "enabled", True) and hasattr(self.anchor, "journal_proof")

    def journal(self, event: Event) -> Recorded:
        """Steps 1–3: sign, journal (write-backs held), and store the witness now."""
        payload_bytes = canonical_json(event.payload)
        envelope = self.engine.create_commitment(
            event_type=event.event_type,
            subject=event.subject,
            payload_bytes=payload_bytes,
            previous_hash=event.previous_hash,
            event_id=event.event_id,
        )
        recorded = Recorded(envelope, event.payload, payload_bytes)
        if not getattr(self.anchor, "enabled", True):
            return recorded
        writebacks = list(event.after_upload)
        if event.witness_run:
            files = witness_files(envelope, payload_bytes)
            writebacks.insert(
                0, witness_writeback(event.witness_run, files, tracking_uri=event.tracking_uri)
            )
        if not self.journaled:
            recorded.anchor_result = self._upload_directly(envelope)
            return recorded
        recorded.record = self.anchor.journal_proof(
            envelope,
            writebacks=writebacks,
            context_key=event.context_key,
            context=event.context,
            writeback_delay=WRITEBACK_HOLD_SECONDS if event.hold else 0.0,
        )
        self._witness_now(recorded.record)
        return recorded

    def settle(self, recorded: Recorded, deadline: Deadline) -> None:
        """Step 4: wait for the upload until ``deadline``; if it came, run the record's
        write-backs here (the rest stays journaled for the workers)."""
        record = recorded.record
        if record is None or recorded.anchor_result is not None:
            return
        result: dict[str, Any] | None = self.anchor.wait(record, deadline.remaining())
        recorded.anchor_result = result
        if result is None:
            return
        journal = self.anchor.journal
        journal.release_writebacks(record.id)  # uploaded: nothing to hold back any more
        while not deadline.passed():
            run_writebacks_for(journal, record.id)
            if not journal.pending_writebacks_for(record.id):
                return
            time.sleep(min(_SETTLE_POLL_SECONDS, deadline.remaining()))

    def record(self, event: Event, deadline: Deadline) -> Recorded:
        """Steps 1–4 for one event."""
        recorded = self.journal(event)
        self.settle(recorded, deadline)
        return recorded

    def release(self, recorded: Recorded) -> None:
        """Step 5: let the workers perform the held write-backs of a record that was not
        uploaded in time (an uploaded one had them released, or done, while settling)."""
        if recorded.record is not None and not recorded.uploaded:
            self.anchor.journal.release_writebacks(recorded.record.id)

    def write_report(
        self, client: Any, run_id: str, prefix: str, recorded: Recorded, **details: Any
    ) -> None:
        """Best effort: ``ario/<prefix>verification.html`` and, if uploaded, the receipt.

        Neither is evidence (the journal keeps the receipt, and the report is a rendering),
        so failing to write them only logs a warning.
        """
        from ario_mlflow.report import generate_verification_html

        result = recorded.anchor_result
        files = {
            f"{prefix}verification.html": generate_verification_html(
                dict(recorded.envelope), dict(result) if result else None, **details
            ).encode("utf-8")
        }
        if result and result.get("receipt"):
            files[f"{prefix}receipt.json"] = json.dumps(result["receipt"], indent=2).encode()
        try:
            log_witness_files(client, run_id, files)
        except Exception as exc:
            logger.warning("could not store the verification report of run %s: %s", run_id, exc)

    def _witness_now(self, record: Record) -> None:
        """Run a record's immediate write-backs (the witness) in this thread, best effort."""
        _, failed = run_writebacks_for(self.anchor.journal, record.id)
        if failed:
            logger.warning(
                "witness for %s not stored yet; it stays journaled and will be retried",
                record.tx_id,
            )

    def _upload_directly(self, envelope: Mapping[str, Any]) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] | None = self.anchor.upload_proof(dict(envelope))
        except Exception as exc:  # a custom anchor must not break the user's run
            logger.warning("upload failed (%s); record stays signed only", exc)
            return None
        return result
