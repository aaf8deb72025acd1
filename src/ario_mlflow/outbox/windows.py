"""Closing windows of batched decisions: one signed, journaled record per window.

A stream's open decisions become a window when there are ``size`` of them, when the
oldest has waited ``seconds``, when a caller asked (``wait_for_anchor``), when the
process that wrote them is gone, or when ``sync`` says so. The window's record is
signed with the stream's key (a closer holding another key leaves the stream alone),
journaled with the write-backs the stream's header names, and uploaded like any other
record. Two closers never close the same decisions twice: the stream's window count is
checked in the transaction that journals the window.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from ario_mlflow._process import local_process_gone
from ario_mlflow.outbox.journal import Journal, insert_record
from ario_mlflow.outbox.leaves import (
    Stream,
    get_stream,
    open_streams,
    pending,
    seal_window,
    unwindowed,
)
from ario_mlflow.outbox.spool_reader import Signer, record_from_entry
from ario_mlflow.proof import chain
from ario_mlflow.proof.canonical import canonical_json
from ario_mlflow.proof.hashing import sha256_hex
from ario_mlflow.proof.payloads import PREDICTION_BATCH
from ario_mlflow.proof.windows import window_manifest, window_subject

logger = logging.getLogger(__name__)

#: Why a window was closed (the manifest's ``closed_by``).
BY_SIZE, BY_TIME, BY_REQUEST, BY_WRITER_GONE, BY_SYNC = (
    "size",
    "time",
    "request",
    "writer_gone",
    "sync",
)

#: How long a missing sequence number is waited for before a window closes over it.
GAP_PATIENCE = 2.0

#: ``sign(event_type, subject, payload bytes, previous hash) -> envelope``.
EnvelopeSigner = Callable[[str, dict[str, Any], bytes, str], dict[str, Any]]


def window_key(stream_id: str, first_seq: int) -> str:
    """The journal context key of a window's record."""
    return f"window:{stream_id}:{first_seq}"


def _writer_gone(writer: str) -> bool:
    host, _, pid = writer.partition("~")
    return local_process_gone(host, pid)


class WindowCloser:
    """Closes the due windows of the streams signed with ``public_key``."""

    def __init__(
        self,
        journal: Journal,
        *,
        public_key: str,
        sign_envelope: EnvelopeSigner,
        sign_item: Signer,
        size: int,
        seconds: float,
    ) -> None:
        self.journal = journal
        self.public_key = public_key
        self._sign_envelope = sign_envelope
        self._sign_item = sign_item
        self.size = size
        self.seconds = seconds

    def close_due(self, *, force: bool = False, streams: set[str] | None = None) -> int:
        """Close every window that is due (all open decisions with ``force``), of the
        ``streams`` named or of all; how many windows were closed."""
        closed = 0
        for stream in open_streams(self.journal):
            if stream.public_key != self.public_key:
                continue
            if streams is not None and stream.stream_id not in streams:
                continue
            closed += self._close_stream(stream, force)
        return closed

    def _due(self, stream: Stream, force: bool) -> str | None:
        waiting = pending(self.journal, stream.stream_id)
        if waiting.count == 0:
            return None
        if waiting.count >= self.size:
            return BY_SIZE
        if stream.close_through >= stream.next_seq:
            return BY_REQUEST
        if time.time() - waiting.oldest >= self.seconds:
            return BY_TIME
        if _writer_gone(stream.writer):
            return BY_WRITER_GONE
        return BY_SYNC if force else None

    def _close_stream(self, stream: Stream, force: bool) -> int:
        closed = 0
        current: Stream | None = stream
        while current is not None:
            reason = self._due(current, force)
            if reason is None:
                break
            if not self._close_one(current, reason):
                break  # another closer took it, or its next decision is still on its way
            closed += 1
            current = get_stream(self.journal, stream.stream_id)
        return closed

    def _settled(
        self, stream: Stream, leaves: list[tuple[int, bytes, str]]
    ) -> list[tuple[int, bytes, str]]:
        """The decisions a window may take now: those that follow the stream's last
        window with no number missing. A missing number is usually a decision another
        thread of the writer has numbered but not spooled yet (microseconds): the window
        stops before it. Once it has been missing for ``GAP_PATIENCE`` seconds, or its
        writer is gone, it is lost, and the window is closed over the gap (which the
        audit then names), so the decisions after it are anchored all the same."""
        run: list[tuple[int, bytes, str]] = []
        for leaf in leaves:
            if leaf[0] != stream.next_seq + len(run):
                break
            run.append(leaf)
        if len(run) == len(leaves):
            return leaves
        waited = time.time() - pending(self.journal, stream.stream_id).oldest
        if waited >= GAP_PATIENCE or _writer_gone(stream.writer):
            return leaves
        return run

    def _close_one(self, stream: Stream, reason: str) -> bool:
        leaves = self._settled(stream, unwindowed(self.journal, stream.stream_id, self.size))
        if not leaves:
            return False  # the next decision is still on its way
        header = stream.header
        manifest = window_manifest(
            stream=header,
            leaves=[(seq, payload) for seq, payload, _ in leaves],
            first_decided_at=leaves[0][2],
            last_decided_at=leaves[-1][2],
            previous_window_hash=stream.last_window_hash,
            closed_by=reason,
        )
        manifest_bytes = canonical_json(manifest)
        previous = chain.expected_previous(
            PREDICTION_BATCH, previous_window_tx=stream.last_window_tx
        )
        assert previous is not None
        envelope = self._sign_envelope(
            PREDICTION_BATCH,
            window_subject(header["model_name"], header["model_version"], stream.stream_id),
            manifest_bytes,
            previous,
        )
        seqs = [seq for seq, _, _ in leaves]
        window = {"stream_id": stream.stream_id, "first_seq": seqs[0], "last_seq": seqs[-1]}
        record = record_from_entry(
            {
                "envelope": envelope,
                "upload_url": header["upload_url"],
                "gateway_base": header["gateway_base"],
                "context_key": window_key(stream.stream_id, seqs[0]),
                "writebacks": [
                    [kind, {**spec, **window}, after]
                    for kind, spec, after in header.get("writebacks", [])
                ],
            },
            self._sign_item,
        )
        tx_id = record.tx_id
        digest = sha256_hex(manifest_bytes)
        try:
            with self.journal.transaction() as db:
                if not seal_window(
                    db,
                    stream,
                    seqs,
                    tx_id=tx_id,
                    manifest_bytes=manifest_bytes,
                    manifest_hash=digest,
                ):
                    raise _TakenByAnother
                insert_record(db, record, time.time())
        except _TakenByAnother:
            return False
        return True


class _TakenByAnother(Exception):
    """Another closer sealed the window first (its transaction was rolled back)."""


def closer_for_engine(
    journal: Journal, engine: Any, sign_item: Signer, *, size: int, seconds: float
) -> WindowCloser:
    """A closer signing with ``engine`` (a ``ProofEngine``)."""

    def sign_envelope(
        event_type: str, subject: dict[str, Any], payload: bytes, previous: str
    ) -> dict[str, Any]:
        return dict(
            engine.create_commitment(
                event_type=event_type,
                subject=subject,
                payload_bytes=payload,
                previous_hash=previous,
            )
        )

    return WindowCloser(
        journal,
        public_key=engine.public_key_hex,
        sign_envelope=sign_envelope,
        sign_item=sign_item,
        size=size,
        seconds=seconds,
    )


class InstallationCloser:
    """The window closer of a process that holds the installation's signing key (the
    companion, ``sync``): made on first need, so that a process with no batched decision
    to close never loads (or creates) a signing key."""

    def __init__(self, journal: Journal, sign_item: Signer) -> None:
        self.journal = journal
        self._sign_item = sign_item
        self._closer: WindowCloser | None = None

    def close_due(self, *, force: bool = False) -> int:
        """Close the due windows (every open one with ``force``); how many."""
        if not open_streams(self.journal):
            return 0
        if self._closer is None:
            from ario_mlflow.config import load_settings
            from ario_mlflow.engine import ProofEngine

            settings = load_settings()
            self._closer = closer_for_engine(
                self.journal,
                ProofEngine(),
                self._sign_item,
                size=settings.window_size,
                seconds=settings.window_seconds,
            )
        return self._closer.close_due(force=force)
