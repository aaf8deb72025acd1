"""Batched decisions in the journal: streams, their leaves, their windows.

A serving process spools three kinds of lines for ``batch`` decisions (besides signed
records): a *stream* header once (the model version, the key its windows must be signed
with, where they go), a *leaf* per decision (its payload), and a *close* request when a
caller waits for a decision's anchor. Ingestion puts them in the ``streams`` and
``leaves`` tables in the same transaction as the spool offset (``Journal.ingest``), so a
line is taken exactly once. The window closer (``windows.py``) cuts windows from here.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ario_mlflow.outbox.journal import Journal
from ario_mlflow.proof.canonical import canonical_json
from ario_mlflow.proof.windows import Receipt, receipt_in_window

#: Spool line keys (one per line kind).
STREAM, LEAF, CLOSE = "stream", "leaf", "close"


@dataclass(frozen=True)
class Stream:
    """A serving stream: its header and where its chain of windows stands."""

    stream_id: str
    header: dict[str, Any]
    public_key: str
    writer: str
    next_seq: int
    close_through: int
    last_window_tx: str | None
    last_window_hash: str | None
    windows: int


@dataclass(frozen=True)
class Spooled:
    """The batched-decision lines of one ingestion batch."""

    streams: list[dict[str, Any]]
    leaves: list[tuple[str, int, str, bytes, str]]
    closes: list[tuple[str, int]]

    def write(self, db: sqlite3.Connection) -> None:
        """Insert them (inside ``Journal.ingest``'s transaction); a line seen twice (a
        re-read after a crash between read and commit cannot happen, but a copied spool
        file can) changes nothing."""
        now = time.time()
        for header in self.streams:
            db.execute(
                "INSERT OR IGNORE INTO streams (stream_id, header, public_key, writer, "
                "created_at) VALUES (?, ?, ?, ?, ?)",
                (
                    header["stream_id"],
                    json.dumps(header, sort_keys=True),
                    header["public_key"],
                    header["writer"],
                    now,
                ),
            )
        db.executemany(
            "INSERT OR IGNORE INTO leaves (stream_id, seq, decision_id, payload, decided_at, "
            "ingested_at) VALUES (?, ?, ?, ?, ?, ?)",
            [(s, q, d, p, t, now) for s, q, d, p, t in self.leaves],
        )
        for stream_id, through in self.closes:
            db.execute(
                "UPDATE streams SET close_through = MAX(close_through, ?) WHERE stream_id = ?",
                (through, stream_id),
            )


def parse_line(entry: Mapping[str, Any], into: Spooled) -> bool:
    """Add a batched-decision spool line to ``into``; False when it is not one.
    ``ValueError`` when it is one but malformed (the caller keeps the line aside)."""
    if LEAF in entry:
        payload = entry[LEAF]
        if not isinstance(payload, dict):
            raise ValueError("leaf is not a JSON object")
        stream, seq = payload.get("stream_id"), payload.get("sequence")
        decision, decided = payload.get("decision_id"), payload.get("decided_at")
        if not (isinstance(stream, str) and type(seq) is int and isinstance(decision, str)):
            raise ValueError("leaf lacks its stream_id, sequence or decision_id")
        if not isinstance(decided, str):
            raise ValueError("leaf lacks decided_at")
        into.leaves.append((stream, seq, decision, canonical_json(payload), decided))
        return True
    if STREAM in entry:
        header = entry[STREAM]
        needed = ("stream_id", "public_key", "writer", "model_name", "model_version")
        if not isinstance(header, dict) or not all(isinstance(header.get(k), str) for k in needed):
            raise ValueError(f"stream header lacks one of {', '.join(needed)}")
        into.streams.append(header)
        return True
    if CLOSE in entry:
        stream, through = entry.get(CLOSE), entry.get("through")
        if not isinstance(stream, str) or type(through) is not int:
            raise ValueError("close request lacks its stream or sequence number")
        into.closes.append((stream, through))
        return True
    return False


def _stream(row: sqlite3.Row) -> Stream:
    return Stream(
        stream_id=row["stream_id"],
        header=json.loads(row["header"]),
        public_key=row["public_key"],
        writer=row["writer"],
        next_seq=int(row["next_seq"]),
        close_through=int(row["close_through"]),
        last_window_tx=row["last_window_tx"],
        last_window_hash=row["last_window_hash"],
        windows=int(row["windows"]),
    )


def open_streams(journal: Journal) -> list[Stream]:
    """Streams with decisions not in a window yet."""
    rows = journal.connection().execute(
        "SELECT s.* FROM streams s WHERE EXISTS (SELECT 1 FROM leaves l WHERE "
        "l.stream_id = s.stream_id AND l.window_tx IS NULL) ORDER BY s.created_at"
    )
    return [_stream(row) for row in rows]


def get_stream(journal: Journal, stream_id: str) -> Stream | None:
    """The stream ``stream_id``, if this journal has its header."""
    row = (
        journal.connection()
        .execute("SELECT * FROM streams WHERE stream_id = ?", (stream_id,))
        .fetchone()
    )
    return _stream(row) if row else None


@dataclass(frozen=True)
class Pending:
    """A stream's decisions waiting for a window: how many, since when, up to which."""

    count: int
    oldest: float
    last_seq: int


def pending(journal: Journal, stream_id: str) -> Pending:
    """What of ``stream_id`` is not in a window yet."""
    row = (
        journal.connection()
        .execute(
            "SELECT COUNT(*), MIN(ingested_at), MAX(seq) FROM leaves "
            "WHERE stream_id = ? AND window_tx IS NULL",
            (stream_id,),
        )
        .fetchone()
    )
    return Pending(int(row[0]), float(row[1] or 0.0), int(row[2] or 0))


def unwindowed(journal: Journal, stream_id: str, limit: int) -> list[tuple[int, bytes, str]]:
    """The first ``limit`` decisions of ``stream_id`` not in a window, in sequence order:
    ``(seq, payload bytes, decided_at)``."""
    rows = journal.connection().execute(
        "SELECT seq, payload, decided_at FROM leaves WHERE stream_id = ? AND window_tx IS NULL "
        "ORDER BY seq LIMIT ?",
        (stream_id, limit),
    )
    return [(int(r[0]), bytes(r[1]), str(r[2])) for r in rows]


def window_payloads(journal: Journal, tx_id: str) -> list[bytes]:
    """The payloads of the window ``tx_id``, in leaf order."""
    rows = journal.connection().execute(
        "SELECT payload FROM leaves WHERE window_tx = ? ORDER BY leaf_index", (tx_id,)
    )
    return [bytes(r[0]) for r in rows]


def window_manifest_bytes(journal: Journal, tx_id: str) -> bytes | None:
    """The signed manifest of the window ``tx_id``, if this journal closed it."""
    row = (
        journal.connection()
        .execute("SELECT manifest FROM windows WHERE tx_id = ?", (tx_id,))
        .fetchone()
    )
    return bytes(row[0]) if row else None


def decision_window(journal: Journal, decision_id: str) -> tuple[str | None, str] | None:
    """``(window TX or None while unwindowed, stream id)`` of a batched decision."""
    row = (
        journal.connection()
        .execute(
            "SELECT window_tx, stream_id FROM leaves WHERE decision_id = ? LIMIT 1",
            (decision_id,),
        )
        .fetchone()
    )
    return (row[0], row[1]) if row else None


def receipt_for(journal: Journal, decision_id: str) -> Receipt | None:
    """The inclusion receipt of a batched decision, once its window is journaled."""
    row = (
        journal.connection()
        .execute(
            "SELECT l.window_tx, l.leaf_index, l.payload, w.manifest, r.envelope "
            "FROM leaves l JOIN windows w ON w.tx_id = l.window_tx "
            "JOIN records r ON r.tx_id = l.window_tx WHERE l.decision_id = ? LIMIT 1",
            (decision_id,),
        )
        .fetchone()
    )
    if row is None:
        return None
    tx_id = str(row[0])
    return receipt_in_window(
        window_payloads(journal, tx_id),
        int(row[1]),
        manifest_bytes=bytes(row[3]),
        envelope=json.loads(row[4]),
        tx_id=tx_id,
    )


def seal_window(
    db: sqlite3.Connection,
    stream: Stream,
    seqs: Sequence[int],
    *,
    tx_id: str,
    manifest_bytes: bytes,
    manifest_hash: str,
) -> bool:
    """Mark ``seqs`` as window ``tx_id`` and move the stream's chain on (inside the
    transaction that journals the window's record); False when another closer moved the
    stream first (then the caller's transaction must be rolled back)."""
    moved = db.execute(
        "UPDATE streams SET next_seq = ?, last_window_tx = ?, last_window_hash = ?, "
        "windows = windows + 1 WHERE stream_id = ? AND windows = ?",
        (seqs[-1] + 1, tx_id, manifest_hash, stream.stream_id, stream.windows),
    ).rowcount
    if moved != 1:
        return False
    db.executemany(
        "UPDATE leaves SET window_tx = ?, leaf_index = ? WHERE stream_id = ? AND seq = ?",
        [(tx_id, index, stream.stream_id, seq) for index, seq in enumerate(seqs)],
    )
    db.execute(
        "INSERT INTO windows (tx_id, stream_id, first_seq, last_seq, tree_size, manifest) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (tx_id, stream.stream_id, seqs[0], seqs[-1], len(seqs), manifest_bytes),
    )
    return True
