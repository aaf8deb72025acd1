"""SQLite persistence of the data items a local gateway accepted.

One database file under the data dir (WAL), one connection guarded by a lock: the server
is threaded but local traffic is light, and a single connection closes cleanly on stop.
Each item keeps its header bytes and data bytes apart, plus the SHA-256 recorded at
upload, so the Verify stand-in can re-check both honestly later (and a test can corrupt
either in place). Tags live in their own table, indexed for GraphQL tag queries.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ario_mlflow.arweave.encoding import b64url_encode
from ario_mlflow.proof.hashing import sha256_hex

if TYPE_CHECKING:
    from ario_mlflow.arweave.dataitem import DataItem

DB_FILENAME = "gateway.sqlite3"
_SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT NOT NULL UNIQUE,
    signature_type INTEGER NOT NULL,
    signature      BLOB NOT NULL,
    owner          BLOB NOT NULL,
    owner_address  TEXT NOT NULL,
    target         TEXT NOT NULL,
    anchor         TEXT NOT NULL,
    content_type   TEXT,
    header         BLOB NOT NULL,
    data           BLOB NOT NULL,
    data_size      INTEGER NOT NULL,
    digest         TEXT NOT NULL,
    token          TEXT,
    received_at    REAL NOT NULL,
    receipt        TEXT
);
CREATE INDEX IF NOT EXISTS items_owner ON items (owner_address, seq);
CREATE INDEX IF NOT EXISTS items_target ON items (target, seq);
CREATE TABLE IF NOT EXISTS tags (
    item_seq INTEGER NOT NULL REFERENCES items (seq) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    name     TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (item_seq, position)
);
CREATE INDEX IF NOT EXISTS tags_name_value ON tags (name, value, item_seq);
CREATE TABLE IF NOT EXISTS verifications (
    id         TEXT PRIMARY KEY,
    tx_id      TEXT NOT NULL,
    created_at REAL NOT NULL,
    result     TEXT NOT NULL
);
"""

_ITEM_COLUMNS = (
    "seq, id, signature_type, signature, owner, owner_address, target, anchor, content_type, "
    "header, data, data_size, digest, token, received_at, receipt"
)


@dataclass(frozen=True)
class StoredItem:
    """One accepted data item as persisted (``data`` may have been altered on disk)."""

    seq: int
    id: str
    signature_type: int
    signature: bytes
    owner: bytes
    owner_address: str
    target: str
    anchor: str
    content_type: str | None
    header: bytes
    data: bytes
    data_size: int
    digest: str
    token: str | None
    received_at: float
    receipt: dict[str, Any] | None
    tags: tuple[tuple[str, str], ...] = ()

    @property
    def raw(self) -> bytes:
        """The full data item bytes as stored (header followed by data)."""
        return self.header + self.data


@dataclass(frozen=True)
class TagFilter:
    """Match items having a tag ``name`` whose value is (or, negated, is not) in ``values``."""

    name: str
    values: tuple[str, ...]
    negate: bool = False


@dataclass(frozen=True)
class ItemQuery:
    """Filters of a GraphQL ``transactions`` query, already validated; all AND-ed."""

    ids: tuple[str, ...] | None = None
    owners: tuple[str, ...] | None = None
    recipients: tuple[str, ...] | None = None
    tags: tuple[TagFilter, ...] = ()
    #: Only items received at or before this time (finalized ones, for block filters).
    received_before: float | None = None
    min_seq: int | None = None
    max_seq: int | None = None
    #: True when the query can match nothing (e.g. ``bundledIn`` of a bundle we never made).
    empty: bool = False


def _content_type(tags: Iterable[tuple[str, str]]) -> str | None:
    for name, value in tags:
        if name.lower() == "content-type":
            return value
    return None


class ItemStore:
    """Thread-safe SQLite store of accepted items (``with`` closes it)."""

    def __init__(self, data_dir: str | Path) -> None:
        self.path = self.path_in(data_dir)
        self._lock = threading.RLock()
        conn = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=30.0
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.executescript(_SCHEMA)
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)", (_SCHEMA_VERSION,)
            )
        except BaseException:
            conn.close()
            raise
        self._open: sqlite3.Connection | None = conn

    @staticmethod
    def path_in(data_dir: str | Path) -> Path:
        """Where the database of a gateway data dir lives."""
        return Path(data_dir) / DB_FILENAME

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._open is None:
            raise sqlite3.ProgrammingError("the gateway store is closed")
        return self._open

    def close(self) -> None:
        """Close the connection (idempotent); SQLite checkpoints the WAL on close."""
        with self._lock:
            if self._open is not None:
                self._open.close()
                self._open = None

    def __enter__(self) -> ItemStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writes --------------------------------------------------------------------------

    def add(
        self,
        item: DataItem,
        *,
        owner_address: str,
        token: str | None,
        received_at: float,
    ) -> StoredItem | None:
        """Persist a verified item; ``None`` if an item with that id is already held."""
        tags = tuple((tag.name, tag.value) for tag in item.tags)
        data = bytes(item.data)
        header = bytes(item.raw[: len(item.raw) - len(data)])
        row = (
            item.id,
            item.signature_type,
            bytes(item.signature),
            bytes(item.owner),
            owner_address,
            _b64(item.target),
            _b64(item.anchor),
            _content_type(tags),
            header,
            data,
            len(data),
            sha256_hex(data),
            token,
            received_at,
        )
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                cursor = self._conn.execute(
                    "INSERT OR IGNORE INTO items (id, signature_type, signature, owner, "
                    "owner_address, target, anchor, content_type, header, data, data_size, "
                    "digest, token, received_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    row,
                )
                if cursor.rowcount == 0:
                    self._conn.execute("ROLLBACK")
                    return None
                seq = cursor.lastrowid
                self._conn.executemany(
                    "INSERT INTO tags (item_seq, position, name, value) VALUES (?,?,?,?)",
                    [(seq, index, name, value) for index, (name, value) in enumerate(tags)],
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        stored = self.get(item.id)
        assert stored is not None
        return stored

    def set_receipt(self, item_id: str, receipt: dict[str, Any]) -> None:
        """Remember the receipt issued for ``item_id``."""
        with self._lock:
            self._conn.execute(
                "UPDATE items SET receipt = ? WHERE id = ?", (json.dumps(receipt), item_id)
            )

    def save_verification(self, verification_id: str, tx_id: str, result: dict[str, Any]) -> None:
        """Keep a Verify result so ``GET /api/v1/verify/{id}`` can return it later."""
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO verifications (id, tx_id, created_at, result) "
                "VALUES (?, ?, strftime('%s','now'), ?)",
                (verification_id, tx_id, json.dumps(result)),
            )

    # --- reads ---------------------------------------------------------------------------

    def get(self, item_id: str) -> StoredItem | None:
        """The item with id ``item_id``, with its tags, or ``None``."""
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_ITEM_COLUMNS} FROM items WHERE id = ?", (item_id,)
            ).fetchone()
            if row is None:
                return None
            return self._with_tags([row])[0]

    def get_verification(self, verification_id: str) -> dict[str, Any] | None:
        """A stored Verify result, or ``None``."""
        with self._lock:
            row = self._conn.execute(
                "SELECT result FROM verifications WHERE id = ?", (verification_id,)
            ).fetchone()
        if row is None:
            return None
        result: dict[str, Any] = json.loads(row[0])
        return result

    def count(self) -> int:
        """Number of items held."""
        with self._lock:
            (total,) = self._conn.execute("SELECT count(*) FROM items").fetchone()
        return int(total)

    def query(
        self,
        query: ItemQuery,
        *,
        descending: bool,
        after_seq: int | None,
        limit: int,
    ) -> list[StoredItem]:
        """Items matching ``query`` in ``seq`` order, strictly after ``after_seq``."""
        if query.empty or limit <= 0:
            return []
        where: list[str] = []
        params: list[Any] = []

        def member(column: str, values: Sequence[Any]) -> None:
            where.append(f"{column} IN ({','.join('?' * len(values))})" if values else "0")
            params.extend(values)

        if query.ids is not None:
            member("i.id", query.ids)
        if query.owners is not None:
            member("i.owner_address", query.owners)
        if query.recipients is not None:
            member("i.target", query.recipients)
        for tag in query.tags:
            placeholders = ",".join("?" * len(tag.values))
            test = "NOT IN" if tag.negate else "IN"
            where.append(
                "EXISTS (SELECT 1 FROM tags t WHERE t.item_seq = i.seq AND t.name = ? "
                f"AND t.value {test} ({placeholders}))"
            )
            params.append(tag.name)
            params.extend(tag.values)
        if query.received_before is not None:
            where.append("i.received_at <= ?")
            params.append(query.received_before)
        if query.min_seq is not None:
            where.append("i.seq >= ?")
            params.append(query.min_seq)
        if query.max_seq is not None:
            where.append("i.seq <= ?")
            params.append(query.max_seq)
        if after_seq is not None:
            where.append("i.seq < ?" if descending else "i.seq > ?")
            params.append(after_seq)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        order = "DESC" if descending else "ASC"
        columns = ", ".join(f"i.{name.strip()}" for name in _ITEM_COLUMNS.split(","))
        sql = f"SELECT {columns} FROM items i {clause} ORDER BY i.seq {order} LIMIT ?"
        params.append(limit)
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
            return self._with_tags(rows)

    def _with_tags(self, rows: list[tuple[Any, ...]]) -> list[StoredItem]:
        if not rows:
            return []
        seqs = [row[0] for row in rows]
        tags: dict[int, list[tuple[str, str]]] = {seq: [] for seq in seqs}
        for start in range(0, len(seqs), 500):
            chunk = seqs[start : start + 500]
            for seq, name, value in self._conn.execute(
                f"SELECT item_seq, name, value FROM tags WHERE item_seq IN "
                f"({','.join('?' * len(chunk))}) ORDER BY item_seq, position",
                chunk,
            ):
                tags[seq].append((name, value))
        return [_row_to_item(row, tuple(tags[row[0]])) for row in rows]


def _row_to_item(row: tuple[Any, ...], tags: tuple[tuple[str, str], ...]) -> StoredItem:
    receipt = json.loads(row[15]) if row[15] else None
    return StoredItem(
        seq=row[0],
        id=row[1],
        signature_type=row[2],
        signature=bytes(row[3]),
        owner=bytes(row[4]),
        owner_address=row[5],
        target=row[6],
        anchor=row[7],
        content_type=row[8],
        header=bytes(row[9]),
        data=bytes(row[10]),
        data_size=row[11],
        digest=row[12],
        token=row[13],
        received_at=row[14],
        receipt=receipt,
        tags=tags,
    )


def _b64(value: bytes | None) -> str:
    return b64url_encode(value) if value else ""
