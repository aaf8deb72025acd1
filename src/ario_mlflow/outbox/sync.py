"""``ar-io-mlflow sync``: one attempt at everything outstanding, now.

Spooled decisions are journaled first and every open window of batched decisions is
closed (signed with the installation's key); then every outstanding record gets one upload
attempt (to the configured service, whatever it was journaled for), then every pending
write-back one attempt. A write-back whose kind has no handler installed in this process
is counted as such (:attr:`SyncReport.unhandled`), never silently left pending.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ario_mlflow.arweave.turbo import UploadOutcome
from ario_mlflow.outbox import handlers
from ario_mlflow.outbox.journal import OUTSTANDING, Journal, Record
from ario_mlflow.outbox.spool_reader import WalletSigner, ingest_spool
from ario_mlflow.outbox.windows import InstallationCloser
from ario_mlflow.outbox.workers import (
    LEASE_SECONDS,
    UploadTarget,
    attempt_upload,
    lease_owner,
    reclaim_dead_leases,
    run_writeback,
    run_writebacks,
)


@dataclass(frozen=True)
class SyncReport:
    """What ``sync`` achieved."""

    uploaded: int
    failed_attempts: int
    writebacks_done: int
    writebacks_failed: int
    remaining: dict[str, int]
    #: Pending write-backs per kind that no handler installed in this process performs.
    unhandled: dict[str, int] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Nothing left to upload, confirm or write back."""
        return not (
            any(self.remaining.get(state) for state in OUTSTANDING)
            or self.remaining.get("writebacks_pending")
            or self.remaining.get("decisions_unwindowed")
        )


def _sync_records(
    journal: Journal,
    owner: str,
    target: UploadTarget,
    *,
    progress: Callable[[Record, UploadOutcome], None] | None,
    give_up_after: int,
) -> tuple[int, int]:
    """One attempt at every outstanding record; ``(uploaded, failed)``."""
    uploaded = failed = 0
    streaks: dict[str, int] = {}
    todo = journal.outstanding_ids()
    # Records leased by a live worker (mid-attempt) are retried until that attempt must
    # have ended: one connect plus one read timeout, and a little slack.
    patience_until = time.monotonic() + sum(target.timeout) + 2.0
    while todo:
        busy: list[int] = []
        for record_id in todo:
            candidate = journal.get(record_id)
            if candidate is None or candidate.state not in OUTSTANDING:
                continue
            if streaks.get(target.upload_url, 0) >= give_up_after:
                continue
            record = journal.claim_record(record_id, owner, LEASE_SECONDS)
            if record is None:
                busy.append(record_id)
                continue
            outcome = attempt_upload(journal, record, target)
            if outcome.confirmed:
                uploaded += 1
                streaks[target.upload_url] = 0
            else:
                failed += 1
                streaks[target.upload_url] = streaks.get(target.upload_url, 0) + 1
            if progress:
                progress(record, outcome)
        if not busy or time.monotonic() > patience_until:
            break
        todo = busy
        time.sleep(0.2)
    return uploaded, failed


def _sync_writebacks(journal: Journal, owner: str, patience: float) -> tuple[int, int]:
    """One attempt at every pending write-back (in record order); ``(done, failed)``."""
    done = failed = 0
    unreachable: set[str] = set()
    attempted: set[int] = set()
    patience_until = time.monotonic() + patience
    while True:
        claimed = []
        for writeback in journal.claim_due_writebacks(
            owner, 100_000, LEASE_SECONDS, kinds=handlers.installed_kinds(), ignore_schedule=True
        ):
            if writeback.id in attempted:  # one attempt each per sync
                journal.release_writeback(writeback.id)
            else:
                claimed.append(writeback)
        batched = [w for w in claimed if handlers.is_batch(w.kind)]
        for start in range(0, len(batched), 256):
            chunk = batched[start : start + 256]
            attempted.update(w.id for w in chunk)
            outcomes = run_writebacks(journal, chunk)
            done += sum(outcomes)
            failed += len(outcomes) - sum(outcomes)
        for writeback in claimed:
            if handlers.is_batch(writeback.kind):
                continue
            attempted.add(writeback.id)
            destination = f"{writeback.kind}:{writeback.spec.get('tracking_uri')}"
            if destination in unreachable:  # one failure per destination is enough to know
                journal.release_writeback(writeback.id)
                continue
            if run_writeback(journal, writeback):
                done += 1
            else:
                failed += 1
                unreachable.add(destination)
        if claimed:
            continue  # finishing some may have unblocked the next in a record's order
        # Write-backs a live worker holds right now finish soon: wait for them, bounded.
        if not journal.live_writeback_leases() or time.monotonic() > patience_until:
            return done, failed
        time.sleep(0.2)


def sync_journal(
    journal: Journal,
    *,
    target: UploadTarget | None = None,
    progress: Callable[[Record, UploadOutcome], None] | None = None,
    give_up_after: int = 3,
) -> SyncReport:
    """One attempt at every outstanding record now, then every pending write-back.

    Records go to ``target`` (default: the configured upload service), whatever service
    they were journaled for. After ``give_up_after`` consecutive failures the other
    records are left for later instead of waiting out a timeout each.
    """
    target = target or UploadTarget.configured()
    owner = lease_owner()
    reclaim_dead_leases(journal)
    home = journal.path.parent
    sign = WalletSigner(home)
    ingest_spool(journal, home, sign)  # decisions not journaled yet
    InstallationCloser(journal, sign).close_due(force=True)  # every open window, now
    uploaded, failed = _sync_records(
        journal, owner, target, progress=progress, give_up_after=give_up_after
    )
    done, wb_failed = _sync_writebacks(journal, owner, sum(target.timeout) + 2.0)
    installed = set(handlers.installed_kinds())
    unhandled = {
        kind: count
        for kind, count in journal.pending_writeback_kinds().items()
        if kind not in installed
    }
    return SyncReport(uploaded, failed, done, wb_failed, journal.counts(), unhandled)
