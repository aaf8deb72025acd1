"""The durable journal (outbox): every signed record is committed here before any network call.

One SQLite database in WAL mode under ``$ARIO_MLFLOW_HOME``, shared by every process of
an installation (several serving workers, a training script, ``ar-io-mlflow sync``).

* ``records`` holds what must reach the upload service: the envelope's JCS bytes, the
  signed ANS-104 item (whose id *is* the TX id, known before upload), where it was meant
  to go, its state, retry bookkeeping and the receipt. States: ``pending`` (not accepted
  yet) → ``uploaded`` (a receipt whose signature verifies, or an upload the service's
  status or a gateway read confirmed); ``unconfirmed`` (the service said it took the item
  but nothing proves it yet: retried and re-checked like ``pending``); ``rejected`` (the
  service refused it for good: only ``sync`` tries again); ``discarded`` (a user gave it
  up with ``ar-io-mlflow outbox discard``: kept, never uploaded, counted).
* ``writebacks`` holds what must happen once a record is uploaded (MLflow tags, chain
  heads): each is retried on its own until it succeeds, so an unreachable MLflow server
  loses nothing either.

Work is claimed with a lease inside ``BEGIN IMMEDIATE`` so that concurrent processes never
upload or write back the same entry twice at the same time; an expired lease (a process
killed mid-upload) makes the entry claimable again, and re-posting the same item bytes is
idempotent on the service side (202 duplicate). Commits use ``synchronous=NORMAL``: an
entry survives a crash of the process the moment ``enqueue`` returns.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ario_mlflow._files import ensure_private_dir, private_file
from ario_mlflow.errors import JournalError
from ario_mlflow.redaction import redacted_text

JOURNAL_FILE = "journal.sqlite3"
#: SQLite's primary result code for "database or disk is full" (``sqlite3.SQLITE_FULL``
#: from Python 3.11 on).
_SQLITE_FULL = 13

PENDING = "pending"
UNCONFIRMED = "unconfirmed"
UPLOADED = "uploaded"
REJECTED = "rejected"
DISCARDED = "discarded"
#: Record states that still owe an upload.
OUTSTANDING = (PENDING, UNCONFIRMED, REJECTED)
DONE = "done"
FAILED = "failed"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    tx_id TEXT NOT NULL UNIQUE,
    event_id TEXT,
    event_type TEXT,
    context_key TEXT,
    context TEXT NOT NULL DEFAULT '{}',
    envelope BLOB NOT NULL,
    item BLOB NOT NULL,
    upload_url TEXT NOT NULL,
    token TEXT NOT NULL,
    gateway_base TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    receipt TEXT,
    created_at REAL NOT NULL,
    uploaded_at REAL
);
CREATE INDEX IF NOT EXISTS records_due ON records (state, next_attempt_at);
CREATE INDEX IF NOT EXISTS records_context ON records (context_key, id);
CREATE TABLE IF NOT EXISTS writebacks (
    id INTEGER PRIMARY KEY,
    record_id INTEGER REFERENCES records(id),
    context_key TEXT,
    kind TEXT NOT NULL,
    spec TEXT NOT NULL,
    after_upload INTEGER NOT NULL DEFAULT 1,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    done_at REAL
);
CREATE INDEX IF NOT EXISTS writebacks_due ON writebacks (state, next_attempt_at);
CREATE INDEX IF NOT EXISTS writebacks_context ON writebacks (context_key, id);
CREATE INDEX IF NOT EXISTS writebacks_record ON writebacks (record_id, state, id);
CREATE TABLE IF NOT EXISTS spool_offsets (
    file TEXT PRIMARY KEY,
    offset INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS streams (
    stream_id TEXT PRIMARY KEY,
    header TEXT NOT NULL,
    public_key TEXT NOT NULL,
    writer TEXT NOT NULL,
    created_at REAL NOT NULL,
    next_seq INTEGER NOT NULL DEFAULT 1,
    close_through INTEGER NOT NULL DEFAULT 0,
    last_window_tx TEXT,
    last_window_hash TEXT,
    windows INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS leaves (
    stream_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    decision_id TEXT NOT NULL,
    payload BLOB NOT NULL,
    decided_at TEXT NOT NULL,
    ingested_at REAL NOT NULL,
    window_tx TEXT,
    leaf_index INTEGER,
    PRIMARY KEY (stream_id, seq)
);
CREATE INDEX IF NOT EXISTS leaves_decision ON leaves (decision_id);
CREATE INDEX IF NOT EXISTS leaves_window ON leaves (window_tx, leaf_index);
CREATE TABLE IF NOT EXISTS windows (
    tx_id TEXT PRIMARY KEY,
    stream_id TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    tree_size INTEGER NOT NULL,
    manifest BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS windows_stream ON windows (stream_id, first_seq);
CREATE TABLE IF NOT EXISTS once_keys (
    key TEXT PRIMARY KEY,
    task_id INTEGER NOT NULL,
    created_at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Writeback:
    """A durable task attached to a record; ``kind`` selects a registered handler.

    By default it runs once the record is uploaded (tags that carry the TX id); with
    ``after_upload=False`` it may run at once (e.g. storing the payload witness). A
    record's write-backs run in the order given: each waits for its predecessors.
    """

    kind: str
    spec: dict[str, Any]
    after_upload: bool = True


@dataclass(frozen=True)
class NewRecord:
    """A signed record ready to be journaled."""

    tx_id: str
    envelope: bytes
    item: bytes
    upload_url: str
    token: str
    gateway_base: str
    event_id: str | None = None
    event_type: str | None = None
    context_key: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    writebacks: Sequence[Writeback] = ()
    #: Write-backs wait this long unless released earlier (lets the producer write its
    #: own first tags without a worker's write-back racing it; a crashed producer only
    #: delays them).
    writeback_delay: float = 0.0


@dataclass(frozen=True)
class Record:
    """A journaled record as stored."""

    id: int
    tx_id: str
    event_id: str | None
    event_type: str | None
    context_key: str | None
    context: dict[str, Any]
    envelope: bytes
    item: bytes
    upload_url: str
    token: str
    gateway_base: str
    state: str
    attempts: int
    next_attempt_at: float
    last_error: str | None
    receipt: dict[str, Any] | None
    created_at: float
    uploaded_at: float | None

    @property
    def url(self) -> str:
        """Where a reader fetches the envelope (``<gateway>/<tx_id>``)."""
        return f"{self.gateway_base}/{self.tx_id}"


@dataclass(frozen=True)
class PendingWriteback:
    """A claimed write-back with the record it belongs to (``None`` for a task)."""

    id: int
    kind: str
    spec: dict[str, Any]
    attempts: int
    record: Record | None


def _kept_error(error: str) -> str:
    """An error as the journal keeps it: short, and without credentials a URL carried."""
    return redacted_text(error)[:500]


def _disk_full(exc: sqlite3.Error) -> bool:
    """SQLite said ``SQLITE_FULL``: a write needed space the file system does not have."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return int(code) & 0xFF == _SQLITE_FULL
    return "database or disk is full" in str(exc)


def _no_space_left(directory: Path) -> bool:
    """The file system holding ``directory`` has no block (or no inode) left for us.

    SQLite reports some writes on a full disk as a bare "disk I/O error" (sizing its
    shared-memory file, for one); this tells the user what the cause is.
    """
    try:
        usage = os.statvfs(directory)
    except OSError:
        return False
    return usage.f_bavail == 0 or (usage.f_files > 0 and usage.f_favail == 0)


def _marks(values: Sequence[Any]) -> str:
    """``?,?,…`` for an ``IN (…)`` clause of ``values``."""
    return ",".join("?" * len(values))


def _record(row: sqlite3.Row) -> Record:
    return Record(
        id=row["id"],
        tx_id=row["tx_id"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        context_key=row["context_key"],
        context=json.loads(row["context"]),
        envelope=bytes(row["envelope"]),
        item=bytes(row["item"]),
        upload_url=row["upload_url"],
        token=row["token"],
        gateway_base=row["gateway_base"],
        state=row["state"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        receipt=json.loads(row["receipt"]) if row["receipt"] else None,
        created_at=row["created_at"],
        uploaded_at=row["uploaded_at"],
    )


def _pending_writeback(row: sqlite3.Row) -> PendingWriteback:
    return PendingWriteback(
        id=row["wid"],
        kind=row["kind"],
        spec=json.loads(row["spec"]),
        attempts=row["wattempts"],
        record=_record(row) if row["id"] is not None else None,
    )


def insert_record(db: sqlite3.Connection, new: NewRecord, now: float) -> int:
    """Insert a record and its write-backs (inside the caller's transaction); its row id."""
    cursor = db.execute(
        "INSERT INTO records (tx_id, event_id, event_type, context_key, context, "
        "envelope, item, upload_url, token, gateway_base, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            new.tx_id,
            new.event_id,
            new.event_type,
            new.context_key,
            json.dumps(new.context, sort_keys=True),
            new.envelope,
            new.item,
            new.upload_url,
            new.token,
            new.gateway_base,
            now,
        ),
    )
    record_id = int(cursor.lastrowid or 0)
    db.executemany(
        "INSERT INTO writebacks (record_id, kind, spec, after_upload, next_attempt_at) "
        "VALUES (?, ?, ?, ?, ?)",
        [
            (
                record_id,
                w.kind,
                json.dumps(w.spec, sort_keys=True),
                int(w.after_upload),
                now + (new.writeback_delay if w.after_upload else 0.0),
            )
            for w in new.writebacks
        ],
    )
    return record_id


class Journal:
    """Thread- and process-safe access to one journal database."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        try:
            ensure_private_dir(self.path.parent)
            # SQLite gives its -wal and -shm files the database file's mode: 0600 too.
            for file in (self.path, *(Path(f"{self.path}{s}") for s in ("-wal", "-shm"))):
                if file == self.path or file.exists():
                    private_file(file)
            self._connection().executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise self._error("open", exc) from None
        except OSError as exc:
            raise JournalError(f"cannot open journal {self.path}: {exc}") from None

    @classmethod
    def at_home(cls, home: Path) -> Journal:
        """The installation's journal, ``$ARIO_MLFLOW_HOME/journal.sqlite3``."""
        return cls(home / JOURNAL_FILE)

    # --- connections -------------------------------------------------------------------

    def _error(self, action: str, exc: sqlite3.Error) -> JournalError:
        """The one-line error for a failed ``action`` ("open", "write"): it names this
        journal, and a full disk as such (SQLite's own words do not say which disk)."""
        reason = str(exc) or type(exc).__name__
        if _disk_full(exc) or _no_space_left(self.path.parent):
            reason = f"no space left on device ({reason})"
        return JournalError(f"cannot {action} journal {self.path}: {reason}")

    def _connection(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            try:
                db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            except sqlite3.Error as exc:
                raise self._error("open", exc) from None
            try:
                db.row_factory = sqlite3.Row
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("PRAGMA busy_timeout=30000")
            except sqlite3.Error as exc:
                db.close()
                raise self._error("open", exc) from None
            self._local.db = db
        return db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` … ``COMMIT``. Whatever fails (a full disk fails the
        ``COMMIT`` itself) is rolled back, so this connection can take the next
        transaction, and a SQLite error becomes a ``JournalError`` naming the journal:
        a command line reports it in one line, never as a traceback."""
        db = self._connection()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise self._error("write", exc) from None

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """One write transaction, for the outbox's other tables (``leaves.py``)."""
        return self._transaction()

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, for reads of the outbox's other tables."""
        return self._connection()

    def close(self) -> None:
        """Close this thread's connection (other threads keep theirs)."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # --- records -----------------------------------------------------------------------

    def enqueue(self, new: NewRecord) -> Record:
        """Commit ``new`` (and its write-backs); return the stored record.

        Enqueuing an item whose TX id is already journaled returns the existing record
        and adds nothing (the same bytes never need two entries).
        """
        with self._transaction() as db:
            existing = db.execute("SELECT * FROM records WHERE tx_id = ?", (new.tx_id,)).fetchone()
            if existing is not None:
                return _record(existing)
            record_id = insert_record(db, new, time.time())
            row = db.execute("SELECT * FROM records WHERE id = ?", (record_id,)).fetchone()
        return _record(row)

    # --- the decision spool (see spool_writer.py and spool_reader.py) ------------------

    def spool_offset(self, spool_file: str) -> int:
        """How many bytes of a spool file are journaled."""
        row = (
            self._connection()
            .execute("SELECT offset FROM spool_offsets WHERE file = ?", (spool_file,))
            .fetchone()
        )
        return int(row[0]) if row else 0

    def ingest(
        self,
        spool_file: str,
        start: int,
        end: int,
        records: Sequence[NewRecord],
        also: Callable[[sqlite3.Connection], None] | None = None,
    ) -> bool:
        """Journal ``records`` (the spool lines ``start:end``; ``also`` writes the rest of
        them, e.g. batched decisions) and move the file's offset, atomically — unless
        another ingester moved it first (then nothing is written)."""
        now = time.time()
        with self._transaction() as db:
            row = db.execute(
                "SELECT offset FROM spool_offsets WHERE file = ?", (spool_file,)
            ).fetchone()
            if (int(row[0]) if row else 0) != start:
                return False
            for new in records:
                if not db.execute("SELECT 1 FROM records WHERE tx_id = ?", (new.tx_id,)).fetchone():
                    insert_record(db, new, now)
            if also is not None:
                also(db)
            db.execute(
                "INSERT INTO spool_offsets (file, offset) VALUES (?, ?) "
                "ON CONFLICT(file) DO UPDATE SET offset = excluded.offset",
                (spool_file, end),
            )
        return True

    def forget_spool(self, spool_file: str) -> None:
        """Drop the offset of a spool file that was deleted."""
        with self._transaction() as db:
            db.execute("DELETE FROM spool_offsets WHERE file = ?", (spool_file,))

    def get(self, record_id: int) -> Record | None:
        """The record with this row id."""
        row = (
            self._connection()
            .execute("SELECT * FROM records WHERE id = ?", (record_id,))
            .fetchone()
        )
        return _record(row) if row else None

    def by_tx(self, tx_id: str) -> Record | None:
        """The record with this TX id."""
        row = (
            self._connection().execute("SELECT * FROM records WHERE tx_id = ?", (tx_id,)).fetchone()
        )
        return _record(row) if row else None

    def latest_for(self, context_key: str) -> Record | None:
        """The most recent record journaled under ``context_key``."""
        row = (
            self._connection()
            .execute(
                "SELECT * FROM records WHERE context_key = ? ORDER BY id DESC LIMIT 1",
                (context_key,),
            )
            .fetchone()
        )
        return _record(row) if row else None

    def records_for(self, context_key: str) -> list[Record]:
        """Every record journaled under ``context_key``, oldest first."""
        rows = (
            self._connection()
            .execute("SELECT * FROM records WHERE context_key = ? ORDER BY id", (context_key,))
            .fetchall()
        )
        return [_record(row) for row in rows]

    def update_context(self, record_id: int, values: dict[str, Any]) -> None:
        """Merge ``values`` into a record's context (e.g. the trace id it was given)."""
        self.update_contexts({record_id: values})

    def update_contexts(self, values_by_record: dict[int, dict[str, Any]]) -> None:
        """:meth:`update_context` for several records in one transaction."""
        with self._transaction() as db:
            for record_id, values in values_by_record.items():
                row = db.execute(
                    "SELECT context FROM records WHERE id = ?", (record_id,)
                ).fetchone()
                if row is None:
                    raise JournalError(f"no record {record_id} in {self.path}")
                merged = {**json.loads(row["context"]), **values}
                db.execute(
                    "UPDATE records SET context = ? WHERE id = ?",
                    (json.dumps(merged, sort_keys=True), record_id),
                )

    def claim_due_records(
        self, owner: str, limit: int, lease_seconds: float, *, ignore_schedule: bool = False
    ) -> list[Record]:
        """Lease up to ``limit`` records that are due for an upload attempt.

        ``ignore_schedule`` (used by ``sync``) also takes records whose backoff has not
        expired and rejected ones, but never records leased by someone else.
        """
        now = time.time()
        states = OUTSTANDING if ignore_schedule else (PENDING, UNCONFIRMED)
        due_before = float("inf") if ignore_schedule else now
        with self._transaction() as db:
            rows = db.execute(
                f"SELECT id FROM records WHERE state IN ({','.join('?' * len(states))}) "
                "AND next_attempt_at <= ? AND lease_until < ? ORDER BY next_attempt_at, id LIMIT ?",
                (*states, due_before, now, limit),
            ).fetchall()
            ids = [row["id"] for row in rows]
            if not ids:
                return []
            marks = ",".join("?" * len(ids))
            db.execute(
                f"UPDATE records SET lease_owner = ?, lease_until = ? WHERE id IN ({marks})",
                (owner, now + lease_seconds, *ids),
            )
            claimed = db.execute(
                f"SELECT * FROM records WHERE id IN ({marks}) ORDER BY id", ids
            ).fetchall()
        return [_record(row) for row in claimed]

    def claim_record(self, record_id: int, owner: str, lease_seconds: float) -> Record | None:
        """Lease one outstanding record regardless of its backoff (``sync``)."""
        now = time.time()
        with self._transaction() as db:
            updated = db.execute(
                "UPDATE records SET lease_owner = ?, lease_until = ? "
                f"WHERE id = ? AND state IN ({_marks(OUTSTANDING)}) AND lease_until < ?",
                (owner, now + lease_seconds, record_id, *OUTSTANDING, now),
            ).rowcount
            row = db.execute("SELECT * FROM records WHERE id = ?", (record_id,)).fetchone()
        return _record(row) if updated else None

    def release_leases_where(self, owner_is_dead: Callable[[str], bool]) -> int:
        """Free every current lease whose owner ``owner_is_dead``; return how many."""
        now = time.time()
        freed = 0
        with self._transaction() as db:
            for table in ("records", "writebacks"):
                owners = [
                    row[0]
                    for row in db.execute(
                        f"SELECT DISTINCT lease_owner FROM {table} WHERE lease_until >= ?", (now,)
                    )
                    if row[0] and owner_is_dead(row[0])
                ]
                for owner in owners:
                    freed += db.execute(
                        f"UPDATE {table} SET lease_owner = NULL, lease_until = 0 "
                        "WHERE lease_owner = ?",
                        (owner,),
                    ).rowcount
        return freed

    def mark_uploaded(self, record_id: int, receipt: dict[str, Any] | None) -> None:
        """Record a successful upload and release the lease."""
        with self._transaction() as db:
            db.execute(
                "UPDATE records SET state = ?, receipt = ?, uploaded_at = ?, "
                "attempts = attempts + 1, "
                "last_error = NULL, lease_owner = NULL, lease_until = 0 WHERE id = ?",
                (
                    UPLOADED,
                    json.dumps(receipt) if receipt is not None else None,
                    time.time(),
                    record_id,
                ),
            )

    def mark_unconfirmed(
        self, record_id: int, error: str, retry_in: float, receipt: dict[str, Any] | None
    ) -> None:
        """The service said it took the item, and nothing confirmed it yet: check again
        (and re-post, which is idempotent) after ``retry_in`` s."""
        self._end_attempt(record_id, UNCONFIRMED, error, retry_in, receipt)

    def retarget(self, record_id: int, upload_url: str) -> None:
        """Send a record to another upload service from now on."""
        with self._transaction() as db:
            db.execute("UPDATE records SET upload_url = ? WHERE id = ?", (upload_url, record_id))

    def discard(self, record_ids: Sequence[int], reason: str) -> int:
        """Give up records deliberately (never uploaded, kept, counted); how many.

        Their write-backs are abandoned too: no tag may claim a TX that will not exist.
        """
        if not record_ids:
            return 0
        marks = _marks(record_ids)
        with self._transaction() as db:
            count = db.execute(
                f"UPDATE records SET state = ?, last_error = ?, lease_owner = NULL, "
                f"lease_until = 0 WHERE id IN ({marks}) AND state IN ({_marks(OUTSTANDING)})",
                (DISCARDED, _kept_error(reason), *record_ids, *OUTSTANDING),
            ).rowcount
            db.execute(
                f"UPDATE writebacks SET state = ?, last_error = ? WHERE state = ? "
                f"AND record_id IN (SELECT id FROM records WHERE id IN ({marks}) AND state = ?)",
                (
                    FAILED,
                    _kept_error(f"record discarded: {reason}"),
                    PENDING,
                    *record_ids,
                    DISCARDED,
                ),
            )
        return int(count)

    def mark_failed_attempt(
        self, record_id: int, error: str, retry_in: float, *, rejected: bool = False
    ) -> None:
        """Record a failed attempt; the record becomes due again after ``retry_in`` s."""
        self._end_attempt(record_id, REJECTED if rejected else PENDING, error, retry_in, None)

    def _end_attempt(
        self,
        record_id: int,
        state: str,
        error: str,
        retry_in: float,
        receipt: dict[str, Any] | None,
    ) -> None:
        """Count an attempt that did not upload the record, release its lease, schedule
        the next one (a receipt, if any, is kept). A record discarded while the attempt
        ran stays discarded: a failed attempt never brings it back."""
        with self._transaction() as db:
            db.execute(
                "UPDATE records SET state = ?, attempts = attempts + 1, last_error = ?, "
                "receipt = COALESCE(?, receipt), next_attempt_at = ?, lease_owner = NULL, "
                f"lease_until = 0 WHERE id = ? AND state IN ({_marks(OUTSTANDING)})",
                (
                    state,
                    _kept_error(error),
                    json.dumps(receipt) if receipt is not None else None,
                    time.time() + retry_in,
                    record_id,
                    *OUTSTANDING,
                ),
            )

    def release(self, record_id: int) -> None:
        """Give a claimed record back untouched (e.g. on shutdown)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE records SET lease_owner = NULL, lease_until = 0 WHERE id = ?", (record_id,)
            )

    # --- write-backs -------------------------------------------------------------------

    def claim_due_writebacks(
        self,
        owner: str,
        limit: int,
        lease_seconds: float,
        *,
        kinds: Sequence[str],
        ignore_schedule: bool = False,
    ) -> list[PendingWriteback]:
        """Lease write-backs of uploaded records whose handler ``kinds`` this process has."""
        if not kinds:
            return []
        now = time.time()
        due_before = float("inf") if ignore_schedule else now
        kind_marks = ",".join("?" * len(kinds))
        with self._transaction() as db:
            rows = db.execute(
                "SELECT w.id FROM writebacks w LEFT JOIN records r ON r.id = w.record_id "
                "WHERE w.state = ? AND (r.state = ? OR w.after_upload = 0) "
                f"AND w.kind IN ({kind_marks}) "
                "AND w.next_attempt_at <= ? AND w.lease_until < ? "
                # a record's write-backs run in order: none before its predecessors are done
                "AND (w.record_id IS NULL OR NOT EXISTS (SELECT 1 FROM writebacks e "
                "WHERE e.record_id = w.record_id AND e.id < w.id AND e.state = ?)) "
                "ORDER BY w.id LIMIT ?",
                (PENDING, UPLOADED, *kinds, due_before, now, PENDING, limit),
            ).fetchall()
            ids = [row["id"] for row in rows]
            if not ids:
                return []
            marks = ",".join("?" * len(ids))
            db.execute(
                f"UPDATE writebacks SET lease_owner = ?, lease_until = ? WHERE id IN ({marks})",
                (owner, now + lease_seconds, *ids),
            )
            claimed = db.execute(
                f"SELECT w.id AS wid, w.kind, w.spec, w.attempts AS wattempts, r.* "
                f"FROM writebacks w LEFT JOIN records r ON r.id = w.record_id "
                f"WHERE w.id IN ({marks}) ORDER BY w.id",
                ids,
            ).fetchall()
        return [_pending_writeback(row) for row in claimed]

    def mark_writeback_done(self, writeback_id: int) -> None:
        """A write-back succeeded."""
        self.mark_writebacks_done([writeback_id])

    def mark_writebacks_done(self, writeback_ids: Sequence[int]) -> None:
        """Several write-backs succeeded (one transaction)."""
        now = time.time()
        with self._transaction() as db:
            db.executemany(
                "UPDATE writebacks SET state = ?, done_at = ?, attempts = attempts + 1, "
                "last_error = NULL, lease_owner = NULL, lease_until = 0 WHERE id = ?",
                [(DONE, now, writeback_id) for writeback_id in writeback_ids],
            )

    def add_task(
        self,
        task: Writeback,
        *,
        context_key: str | None = None,
        not_before: float = 0.0,
    ) -> int:
        """Journal a task that belongs to no record yet (e.g. "anchor this registration"),
        to run no earlier than ``not_before`` (a Unix time)."""
        with self._transaction() as db:
            return self._insert_task(db, task, context_key, not_before)

    def add_task_once(
        self,
        task: Writeback,
        once: str,
        *,
        context_key: str | None = None,
        not_before: float = 0.0,
    ) -> int | None:
        """:meth:`add_task` unless a task was already journaled under ``once`` (then
        ``None``): the check and the insert are one transaction, so that one delivery
        is taken once even by two processes."""
        with self._transaction() as db:
            seen = db.execute("SELECT 1 FROM once_keys WHERE key = ?", (once,)).fetchone()
            if seen is not None:
                return None
            task_id = self._insert_task(db, task, context_key, not_before)
            db.execute(
                "INSERT INTO once_keys (key, task_id, created_at) VALUES (?, ?, ?)",
                (once, task_id, time.time()),
            )
            return task_id

    @staticmethod
    def _insert_task(
        db: sqlite3.Connection, task: Writeback, context_key: str | None, not_before: float
    ) -> int:
        cursor = db.execute(
            "INSERT INTO writebacks (record_id, context_key, kind, spec, after_upload, "
            "next_attempt_at) VALUES (NULL, ?, ?, ?, 0, ?)",
            (context_key, task.kind, json.dumps(task.spec, sort_keys=True), not_before),
        )
        return int(cursor.lastrowid or 0)

    def tasks_for(self, context_key: str) -> list[tuple[int, str, dict[str, Any]]]:
        """``(id, state, spec)`` of every task journaled under ``context_key``, oldest first."""
        rows = (
            self._connection()
            .execute(
                "SELECT id, state, spec FROM writebacks WHERE context_key = ? "
                "AND record_id IS NULL ORDER BY id",
                (context_key,),
            )
            .fetchall()
        )
        return [(row["id"], row["state"], json.loads(row["spec"])) for row in rows]

    def task_state(self, task_id: int) -> tuple[str, str | None]:
        """``(state, last_error)`` of a task or write-back."""
        row = (
            self._connection()
            .execute("SELECT state, last_error FROM writebacks WHERE id = ?", (task_id,))
            .fetchone()
        )
        if row is None:
            raise JournalError(f"no task {task_id} in {self.path}")
        return row["state"], row["last_error"]

    def latest_task_for(self, context_key: str) -> tuple[int, str, str | None] | None:
        """``(id, state, last_error)`` of the newest task journaled under ``context_key``."""
        row = (
            self._connection()
            .execute(
                "SELECT id, state, last_error FROM writebacks WHERE context_key = ? "
                "ORDER BY id DESC LIMIT 1",
                (context_key,),
            )
            .fetchone()
        )
        return (row["id"], row["state"], row["last_error"]) if row else None

    def claim_task(self, task_id: int, owner: str, lease_seconds: float) -> PendingWriteback | None:
        """Lease one pending task regardless of its schedule (to run it right now)."""
        now = time.time()
        with self._transaction() as db:
            updated = db.execute(
                "UPDATE writebacks SET lease_owner = ?, lease_until = ? "
                "WHERE id = ? AND state = ? AND lease_until < ?",
                (owner, now + lease_seconds, task_id, PENDING, now),
            ).rowcount
            row = db.execute(
                "SELECT w.id AS wid, w.kind, w.spec, w.attempts AS wattempts, r.* "
                "FROM writebacks w LEFT JOIN records r ON r.id = w.record_id WHERE w.id = ?",
                (task_id,),
            ).fetchone()
        return _pending_writeback(row) if updated else None

    def mark_writeback_abandoned(self, writeback_id: int, error: str) -> None:
        """A task that can never succeed (e.g. its source run is gone): stop retrying it."""
        with self._transaction() as db:
            db.execute(
                "UPDATE writebacks SET state = ?, attempts = attempts + 1, last_error = ?, "
                "lease_owner = NULL, lease_until = 0 WHERE id = ?",
                (FAILED, _kept_error(error), writeback_id),
            )

    def release_writebacks(self, record_id: int) -> None:
        """Make a record's held write-backs due now."""
        with self._transaction() as db:
            db.execute(
                "UPDATE writebacks SET next_attempt_at = 0 WHERE record_id = ? AND state = ?",
                (record_id, PENDING),
            )

    def claim_writebacks_for(
        self, record_id: int, owner: str, lease_seconds: float
    ) -> list[PendingWriteback]:
        """Lease the pending write-backs of one record, held or not — all or none, so
        that they still run in order when another worker holds one of them."""
        now = time.time()
        with self._transaction() as db:
            busy = db.execute(
                "SELECT COUNT(*) FROM writebacks WHERE record_id = ? AND state = ? "
                "AND lease_until >= ?",
                (record_id, PENDING, now),
            ).fetchone()[0]
            if busy:
                return []
            db.execute(
                "UPDATE writebacks SET lease_owner = ?, lease_until = ? WHERE record_id = ? "
                "AND state = ? AND lease_until < ? AND (after_upload = 0 "
                "OR record_id IN (SELECT id FROM records WHERE state = ?))",
                (owner, now + lease_seconds, record_id, PENDING, now, UPLOADED),
            )
            rows = db.execute(
                "SELECT w.id AS wid, w.kind, w.spec, w.attempts AS wattempts, r.* "
                "FROM writebacks w LEFT JOIN records r ON r.id = w.record_id "
                "WHERE w.record_id = ? AND w.lease_owner = ? AND w.state = ? ORDER BY w.id",
                (record_id, owner, PENDING),
            ).fetchall()
        return [_pending_writeback(row) for row in rows]

    def pending_writebacks_for(self, record_id: int, kinds: Sequence[str] | None = None) -> int:
        """How many write-backs of a record (of ``kinds``, if given) are not done yet."""
        query = "SELECT COUNT(*) FROM writebacks WHERE record_id = ? AND state = ?"
        arguments: list[Any] = [record_id, PENDING]
        if kinds is not None:
            if not kinds:
                return 0
            query += f" AND kind IN ({','.join('?' * len(kinds))})"
            arguments += list(kinds)
        row = self._connection().execute(query, arguments).fetchone()
        return int(row[0])

    def pending_writeback_kinds(self) -> dict[str, int]:
        """Pending write-backs (and tasks) per kind."""
        rows = self._connection().execute(
            "SELECT kind, COUNT(*) AS n FROM writebacks WHERE state = ? GROUP BY kind", (PENDING,)
        )
        return {row["kind"]: int(row["n"]) for row in rows}

    def live_writeback_leases(self) -> int:
        """Pending write-backs currently leased by someone (being performed now)."""
        row = (
            self._connection()
            .execute(
                "SELECT COUNT(*) FROM writebacks WHERE state = ? AND lease_until >= ?",
                (PENDING, time.time()),
            )
            .fetchone()
        )
        return int(row[0])

    def release_writeback(self, writeback_id: int) -> None:
        """Give a claimed write-back back untouched."""
        with self._transaction() as db:
            db.execute(
                "UPDATE writebacks SET lease_owner = NULL, lease_until = 0 WHERE id = ?",
                (writeback_id,),
            )

    def mark_writeback_failed(self, writeback_id: int, error: str, retry_in: float) -> None:
        """A write-back failed; retry after ``retry_in`` seconds."""
        with self._transaction() as db:
            db.execute(
                "UPDATE writebacks SET attempts = attempts + 1, last_error = ?, "
                "next_attempt_at = ?, "
                "lease_owner = NULL, lease_until = 0 WHERE id = ?",
                (_kept_error(error), time.time() + retry_in, writeback_id),
            )

    # --- reporting ---------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Records per state, and write-backs still pending (``writebacks_pending``)."""
        db = self._connection()
        counts = {PENDING: 0, UNCONFIRMED: 0, UPLOADED: 0, REJECTED: 0, DISCARDED: 0}
        for row in db.execute("SELECT state, COUNT(*) AS n FROM records GROUP BY state"):
            counts[row["state"]] = row["n"]
        for state, key in ((PENDING, "writebacks_pending"), (FAILED, "writebacks_failed")):
            counts[key] = db.execute(
                "SELECT COUNT(*) FROM writebacks WHERE state = ?", (state,)
            ).fetchone()[0]
        counts["decisions_unwindowed"] = db.execute(
            "SELECT COUNT(*) FROM leaves WHERE window_tx IS NULL"
        ).fetchone()[0]
        return counts

    def outstanding_ids(self) -> list[int]:
        """Ids of records not yet uploaded (and not discarded), oldest first."""
        rows = self._connection().execute(
            f"SELECT id FROM records WHERE state IN ({_marks(OUTSTANDING)}) ORDER BY id",
            OUTSTANDING,
        )
        return [row[0] for row in rows]

    def outstanding(self, limit: int = 1000) -> list[Record]:
        """Records not yet uploaded (and not discarded), oldest first."""
        rows = self._connection().execute(
            f"SELECT * FROM records WHERE state IN ({_marks(OUTSTANDING)}) ORDER BY id LIMIT ?",
            (*OUTSTANDING, limit),
        )
        return [_record(row) for row in rows]

    def outstanding_writebacks(
        self, limit: int = 1000
    ) -> list[tuple[int, str, str | None, str | None]]:
        """``(writeback id, kind, last_error, tx_id)`` of pending write-backs."""
        rows = self._connection().execute(
            "SELECT w.id, w.kind, w.last_error, r.tx_id FROM writebacks w "
            "LEFT JOIN records r ON r.id = w.record_id WHERE w.state = ? ORDER BY w.id LIMIT ?",
            (PENDING, limit),
        )
        return [(row[0], row[1], row[2], row[3]) for row in rows]
