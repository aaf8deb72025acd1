"""Draining the journal: one upload attempt, write-backs, and bounded worker pools.

Each process has at most one small pool of worker threads per journal. Workers lease due
records, post them, and record the outcome; then run the write-backs of uploaded records
whose kind has a handler installed in this process (:mod:`ario_mlflow.outbox.handlers`;
another process may hold the rest). Nothing here blocks a caller for longer than the
caller asks: waiting is always with a timeout, and whatever is not done stays journaled
for the next worker, the next process, or ``ar-io-mlflow sync``.
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from ario_mlflow._process import local_process_gone
from ario_mlflow.arweave.gateway_reader import GatewayReader
from ario_mlflow.arweave.transport import Transport, default_transport
from ario_mlflow.arweave.turbo import HELD_STATUSES, UploadOutcome, fetch_status, post_item
from ario_mlflow.errors import GatewayError
from ario_mlflow.outbox import handlers
from ario_mlflow.outbox.handlers import AbandonTask
from ario_mlflow.outbox.journal import (
    OUTSTANDING,
    PENDING,
    UNCONFIRMED,
    UPLOADED,
    Journal,
    PendingWriteback,
    Record,
)
from ario_mlflow.outbox.spool_reader import spooled_entries

logger = logging.getLogger(__name__)

#: Write-backs a worker leases at once (a batch handler gets all of its kind).
WRITEBACK_CLAIM = 64

#: Longest wait between two attempts at the same record or write-back.
MAX_BACKOFF_SECONDS = 300.0
#: Upload outcomes kept in memory for waiters (the journal keeps the rest).
MAX_REMEMBERED_OUTCOMES = 10_000
#: "Never again automatically" (100 years): a parked record waits for ``sync``.
PARKED_SECONDS = 100 * 365 * 24 * 3600.0
#: Lease on a claimed entry; longer than any single attempt can take.
LEASE_SECONDS = 120.0
#: How often a waiter looks at the journal for an upload made by another process.
JOURNAL_POLL_SECONDS = 0.25


def backoff_seconds(attempts: int, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter (0.5 s, 1 s, 2 s … capped), at least ``Retry-After``."""
    base = min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** min(attempts, 20))
    delay: float = base * random.uniform(0.8, 1.2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_BACKOFF_SECONDS))
    return delay


def lease_owner() -> str:
    """``host:pid:thread`` — lets a later process tell a dead owner from a live one."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def _owner_is_dead(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    return local_process_gone(host, rest.partition(":")[0])


def reclaim_dead_leases(journal: Journal) -> int:
    """Free entries leased by processes of this host that no longer exist."""
    return journal.release_leases_where(_owner_is_dead)


@dataclass(frozen=True)
class UploadTarget:
    """Where this process uploads, and where it looks to confirm an unproven upload.

    The target belongs to the uploader, not to the record: a record journaled while the
    settings named a dead or mistyped service goes to the service configured now.
    """

    upload_url: str
    gateways: tuple[str, ...] = ()
    timeout: tuple[float, float] = (5.0, 30.0)
    transport: Transport = field(default_factory=default_transport)

    @classmethod
    def configured(
        cls, *, upload_url: str | None = None, transport: Transport | None = None
    ) -> UploadTarget:
        """The target the ``ARIO_MLFLOW_*`` settings name (``upload_url`` overrides)."""
        from ario_mlflow.config import load_settings

        settings = load_settings()
        return cls(
            upload_url=(upload_url or settings.upload_url).rstrip("/"),
            gateways=settings.gateways,
            timeout=(settings.connect_timeout, settings.read_timeout),
            transport=transport or default_transport(),
        )


def confirm_upload(target: UploadTarget, record: Record) -> str | None:
    """How an upload the service did not prove is confirmed now, or ``None``.

    The upload service's status says it holds the item, or a read gateway serves its
    exact bytes.
    """
    status = fetch_status(target.transport, target.upload_url, record.tx_id, timeout=target.timeout)
    if status.get("status") in HELD_STATUSES:
        return f"upload status {status['status']} at {target.upload_url}"
    if not target.gateways:
        return None
    reader = GatewayReader(target.gateways, transport=target.transport, timeout=target.timeout)
    try:
        fetched = reader.fetch_raw(record.tx_id, expected=record.envelope)
    except GatewayError:
        return None
    return f"gateway {fetched.gateway} serves the exact bytes"


def attempt_upload(
    journal: Journal,
    record: Record,
    target: UploadTarget,
    *,
    max_attempts: int | None = None,
) -> UploadOutcome:
    """Post one leased record to ``target`` and write the outcome to the journal.

    A valid receipt makes it ``uploaded``; an acceptance without one is confirmed (upload
    status, or a gateway read) before it counts, else the record is ``unconfirmed`` and
    tried again. After ``max_attempts`` failed attempts the record is parked: it stays
    journaled, listed by ``ar-io-mlflow outbox``, and only ``sync`` tries it again.
    """
    if record.upload_url.rstrip("/") != target.upload_url:
        logger.warning(
            "record %s was journaled for %s; uploading it to %s (the configured upload service)",
            record.tx_id,
            record.upload_url,
            target.upload_url,
        )
        journal.retarget(record.id, target.upload_url)
    outcome = post_item(
        target.transport,
        target.upload_url,
        record.token,
        record.item,
        record.tx_id,
        timeout=target.timeout,
    )
    if outcome.confirmed:
        journal.mark_uploaded(record.id, outcome.receipt)
        return outcome
    if outcome.accepted:
        how = confirm_upload(target, record)
        if how is not None:
            logger.info("upload of %s confirmed: %s", record.tx_id, how)
            journal.mark_uploaded(record.id, outcome.receipt)
            return replace(outcome, confirmed=True, error=None)
    error = outcome.error or "upload failed"
    retry_in = backoff_seconds(record.attempts, outcome.retry_after)
    if max_attempts is not None and record.attempts + 1 >= max_attempts:
        retry_in = PARKED_SECONDS
        error = f"{error} [retry budget of {max_attempts} attempts used; run ar-io-mlflow sync]"
        logger.warning(
            "upload of %s parked after %d attempts: %s", record.tx_id, max_attempts, outcome.error
        )
    if outcome.accepted:
        journal.mark_unconfirmed(record.id, error, retry_in, outcome.receipt)
    else:
        journal.mark_failed_attempt(record.id, error, retry_in, rejected=not outcome.retryable)
    return outcome


def run_writeback(journal: Journal, writeback: PendingWriteback) -> bool:
    """Perform one leased write-back; True if it succeeded."""
    return run_writebacks(journal, [writeback])[0]


def run_writebacks(journal: Journal, claimed: list[PendingWriteback]) -> list[bool]:
    """Perform leased write-backs (batch kinds in one call per kind); success of each."""
    errors = dict(zip((w.id for w in claimed), handlers.perform(claimed, journal), strict=True))
    journal.mark_writebacks_done([w.id for w in claimed if errors[w.id] is None])
    for writeback in claimed:
        error = errors[writeback.id]
        if isinstance(error, AbandonTask):
            journal.mark_writeback_abandoned(writeback.id, str(error))
            logger.warning("task %s abandoned: %s", writeback.kind, error)
        elif error is not None:
            journal.mark_writeback_failed(
                writeback.id,
                f"{type(error).__name__}: {error}",
                backoff_seconds(writeback.attempts),
            )
            logger.info("write-back %s #%d failed: %s", writeback.kind, writeback.id, error)
    return [errors[w.id] is None for w in claimed]


def run_task_now(journal: Journal, task_id: int) -> bool:
    """Run one journaled task in the caller's thread if nobody else holds it."""
    task = journal.claim_task(task_id, lease_owner(), LEASE_SECONDS)
    return run_writeback(journal, task) if task is not None else False


def run_writebacks_for(journal: Journal, record_id: int) -> tuple[int, int]:
    """Perform a just-uploaded record's write-backs in the caller's thread.

    Returns ``(done, failed)``; failed ones stay journaled for the workers.
    """
    done = failed = 0
    claimed = journal.claim_writebacks_for(record_id, lease_owner(), LEASE_SECONDS)
    for index, writeback in enumerate(claimed):
        if run_writeback(journal, writeback):
            done += 1
            continue
        failed += 1
        for later in claimed[index + 1 :]:  # order matters: leave the rest for later
            journal.release_writeback(later.id)
        break
    return done, failed


class UploadWorkers:
    """A bounded pool of daemon threads draining one journal."""

    def __init__(
        self,
        journal: Journal,
        *,
        target: UploadTarget | None = None,
        threads: int = 2,
        idle_poll: float = 2.0,
        max_attempts: int | None = None,
    ) -> None:
        self.journal = journal
        self.target = target or UploadTarget.configured()
        self.max_attempts = max_attempts
        self.threads = threads
        self.idle_poll = idle_poll
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._outcomes: dict[int, UploadOutcome] = {}
        self._mine: set[int] = set()
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the threads (idempotent)."""
        with self._lock:
            if self._workers:
                return
            reclaim_dead_leases(self.journal)
            # This generation's stop flag: a thread still finishing an attempt after a
            # stop keeps seeing it set, whatever a later start does.
            self._stop = threading.Event()
            # Half the threads favour uploads (proofs reach the chain first), half favour
            # MLflow write-backs (so they never starve under sustained load).
            for index in range(self.threads):
                thread = threading.Thread(
                    target=self._run,
                    args=(index % 2 == 0, self._stop),
                    name=f"ario-upload-{index}",
                    daemon=True,
                )
                thread.start()
                self._workers.append(thread)

    def track(self, record_id: int) -> None:
        """Remember a record this process journaled, so the exit flush waits for it."""
        with self._changed:
            self._mine.add(record_id)
        self._wake.set()

    def wake(self) -> None:
        """Ask idle workers to look at the journal now."""
        self._wake.set()

    def _run(self, uploads_first: bool, stop: threading.Event) -> None:
        owner = lease_owner()
        while not stop.is_set():
            try:
                if uploads_first:
                    busy = self._uploads(owner) or self._writebacks(owner)
                else:
                    busy = self._writebacks(owner) or self._uploads(owner)
            except Exception:  # never let a worker die; the journal keeps the work
                logger.exception("upload worker error; retrying shortly")
                busy = False
                stop.wait(1.0)
            if not busy:
                self._wake.wait(self.idle_poll)
                self._wake.clear()

    def _uploads(self, owner: str) -> bool:
        records = self.journal.claim_due_records(owner, 16, LEASE_SECONDS)
        for record in records:
            outcome = attempt_upload(
                self.journal, record, self.target, max_attempts=self.max_attempts
            )
            with self._changed:
                self._outcomes[record.id] = outcome
                while len(self._outcomes) > MAX_REMEMBERED_OUTCOMES:  # oldest first
                    del self._outcomes[next(iter(self._outcomes))]
                self._changed.notify_all()
        return bool(records)

    def _writebacks(self, owner: str) -> bool:
        kinds = handlers.installed_kinds()
        claimed = self.journal.claim_due_writebacks(
            owner, WRITEBACK_CLAIM, LEASE_SECONDS, kinds=kinds
        )
        run_writebacks(self.journal, claimed)
        for writeback in claimed:
            record = writeback.record
            if record is not None and not self.journal.pending_writebacks_for(record.id, kinds):
                with self._changed:
                    self._mine.discard(record.id)  # uploaded and written back: done
                    self._changed.notify_all()
        return bool(claimed)

    def wait_for(self, record_id: int, timeout: float) -> UploadOutcome | None:
        """Wait up to ``timeout`` s for the record's upload; the last outcome seen, if any.

        Returns early on success or on a refusal that retrying cannot fix — whether this
        process uploaded it or another one did (``sync``, a companion): the journal is
        looked at every :data:`JOURNAL_POLL_SECONDS`.
        """
        deadline = time.monotonic() + timeout
        self._wake.set()
        with self._changed:
            while True:
                outcome = self._outcomes.get(record_id)
                if outcome is not None and (outcome.confirmed or not outcome.retryable):
                    return outcome
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._uploaded_elsewhere(record_id):
                    return outcome
                self._changed.wait(min(remaining, JOURNAL_POLL_SECONDS))

    def _uploaded_elsewhere(self, record_id: int) -> bool:
        record = self.journal.get(record_id)
        return record is not None and record.state == UPLOADED

    def _unfinished(self, record_id: int, kinds: list[str]) -> bool:
        record = self.journal.get(record_id)
        if record is None:
            return False
        if record.state in (PENDING, UNCONFIRMED):
            return True
        return bool(self.journal.pending_writebacks_for(record_id, kinds))

    def flush(self, timeout: float) -> int:
        """Give this process's records up to ``timeout`` s to be uploaded and written back
        (the write-backs this process can perform); return how many are unfinished."""
        deadline = time.monotonic() + timeout
        kinds = handlers.installed_kinds()
        self._wake.set()
        with self._changed:
            while self._mine:
                still_pending = {rid for rid in self._mine if self._unfinished(rid, kinds)}
                self._mine = still_pending
                remaining = deadline - time.monotonic()
                if not self._mine or remaining <= 0:
                    break
                self._changed.wait(min(remaining, 0.25))
            return len(self._mine)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the threads, waiting up to ``timeout`` seconds in all for the attempts in
        progress (a thread still busy after that finishes its attempt and exits; a lease
        it held is released, or reclaimed once it expires)."""
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        for thread in self._workers:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._workers.clear()


@dataclass
class _Registry:
    pools: dict[Path, UploadWorkers]
    lock: threading.Lock


_REGISTRY = _Registry({}, threading.Lock())


def workers_for(
    journal: Journal,
    *,
    target: UploadTarget | None = None,
    max_attempts: int | None = None,
    threads: int = 2,
) -> UploadWorkers:
    """The process-wide worker pool of ``journal`` (started on first use).

    ``target`` (default: the configured service) replaces the pool's: the latest
    configuration wins.
    """
    key = journal.path.resolve()
    with _REGISTRY.lock:
        pool = _REGISTRY.pools.get(key)
        if pool is None:
            pool = UploadWorkers(journal, target=target, max_attempts=max_attempts, threads=threads)
            _REGISTRY.pools[key] = pool
        elif target is not None:
            pool.target = target
    pool.start()
    return pool


def stop_all_workers(timeout: float = 5.0) -> None:
    """Stop every pool of this process (tests, and embedders that manage their own exit),
    waiting up to ``timeout`` seconds in all."""
    with _REGISTRY.lock:
        pools = list(_REGISTRY.pools.values())
        _REGISTRY.pools.clear()
    deadline = time.monotonic() + timeout
    for pool in pools:
        pool.stop(max(0.0, deadline - time.monotonic()))


#: Homes whose spool this process wrote decisions to (a companion uploads them).
_SPOOLED_HOMES: set[Path] = set()
#: How long exit waits for a companion to take this process's last spooled decisions.
SPOOL_EXIT_WAIT_SECONDS = 1.0


def report_at_exit(home: Path) -> None:
    """Have the exit notice cover ``home`` even if this process uploads nothing itself
    (it only spooled decisions for a companion)."""
    _SPOOLED_HOMES.add(home.resolve())


@atexit.register
def _flush_at_exit() -> None:
    """A short, bounded flush at interpreter exit; then say what is still not uploaded."""
    from ario_mlflow.config import load_settings
    from ario_mlflow.errors import ConfigError

    try:
        seconds = load_settings().exit_flush
    except ConfigError as exc:
        logger.warning("%s; flushing for the default 3 s", exc)
        seconds = 3.0
    covered: set[Path] = set()
    for pool in list(_REGISTRY.pools.values()):
        try:
            mine = pool.flush(seconds)
            covered.add(pool.journal.path.parent.resolve())
            notice = unfinished_notice(pool.journal, mine)
        except Exception:  # interpreter shutting down: never raise from atexit
            continue
        if notice:
            logger.warning("%s", notice)
    for home in _SPOOLED_HOMES - covered:
        if not home.is_dir():  # removed already (a temporary home): do not recreate it
            continue
        try:
            notice = _spool_notice(home, min(seconds, SPOOL_EXIT_WAIT_SECONDS))
        except Exception:
            continue
        if notice:
            logger.warning("%s", notice)


def _spool_notice(home: Path, wait: float) -> str | None:
    """The notice for a home this process only spooled to, once the companion had
    ``wait`` seconds to take what is left."""
    journal = Journal.at_home(home)
    until = time.monotonic() + wait
    while (notice := unfinished_notice(journal, 0)) and time.monotonic() < until:
        time.sleep(0.1)
    return notice


def unfinished_notice(journal: Journal, mine: int) -> str | None:
    """What a process leaving now leaves behind: its own unfinished records, and the rest
    of the installation's (decisions a companion or ``sync`` still has to take)."""
    counts = journal.counts()
    outstanding = sum(counts.get(state, 0) for state in OUTSTANDING)
    spooled = spooled_entries(journal.path.parent, journal)
    others = max(0, outstanding + spooled - mine)
    waiting = counts.get("decisions_unwindowed", 0)
    if not mine and not others and not waiting:
        return None
    parts = [f"{mine + others} signed record(s) not uploaded yet"]
    if waiting:
        parts.append(f"{waiting} batched decision(s) not in a signed window yet")
    if mine and others:
        parts.append(f"{mine} from this process, {others} more in the journal or spool")
    elif others:
        parts.append("decisions a companion process or 'ar-io-mlflow sync' still has to upload")
    return (
        f"{'; '.join(parts)}: they stay in {journal.path.parent} "
        "(run 'ar-io-mlflow sync', or 'ar-io-mlflow outbox' to see them)"
    )
