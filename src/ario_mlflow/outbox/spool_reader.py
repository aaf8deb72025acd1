"""The decision spool: the hot path's durable, lock-free first stage of the journal.

``VerifiedModel.predict`` must commit its signed record before it returns, and must not
wait for anybody to do so. A SQLite transaction can wait (another process holds the write
lock; SQLite's busy handler sleeps at least a millisecond) and signing the ANS-104 item
costs as much again. So a decision is appended, as one JSON line, to a file only this
process writes (:mod:`ario_mlflow.outbox.spool_writer`). A line that has been appended
survives the death of the process (it is in the page cache; the same guarantee as the
journal's ``synchronous=NORMAL``). A file ends at its last byte or at its first NUL byte
(a mapped file is zeros past its lines).

Ingestion — by the companion process, ``sync``, or any worker — signs each entry into a
data item and moves it into the journal. The lines and the file's new offset commit in
one transaction that first checks the old offset, so two ingesters never journal a line
twice (which matters: an RSA-PSS item signed twice gets two TX ids). A file whose lines
are all journaled is deleted once its writer is gone or has moved on to a newer file.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ario_mlflow._files import private_file
from ario_mlflow._process import local_process_gone
from ario_mlflow.arweave.dataitem import create_data_item
from ario_mlflow.arweave.item_tags import proof_tags
from ario_mlflow.arweave.wallet import LoadedWallet, load_wallet
from ario_mlflow.outbox.journal import Journal, NewRecord, Writeback
from ario_mlflow.outbox.leaves import Spooled, parse_line
from ario_mlflow.outbox.spool_writer import SUFFIX, spool_dir
from ario_mlflow.proof.canonical import canonical_json

logger = logging.getLogger(__name__)

#: Lines journaled per transaction while ingesting.
INGEST_BATCH = 500
#: A spool file is read this much at a time (a mapped file is mostly zeros past its lines).
READ_CHUNK = 256 * 1024

#: ``sign(envelope, canonical bytes) -> (tx_id, item bytes, token)``: how an ingester
#: turns an entry into an ANS-104 item (it holds the funding wallet).
Signer = Callable[[Mapping[str, Any], bytes], tuple[str, bytes, str]]


class WalletSigner:
    """Signs entries into data items with a funding wallet, loaded on first use (an
    ingester with nothing to ingest never touches wallet files)."""

    def __init__(self, home: Path, wallet_path: str | os.PathLike[str] | None = None) -> None:
        self.home = Path(home)
        self.wallet_path = wallet_path
        self._wallet: LoadedWallet | None = None

    def __call__(self, envelope: Mapping[str, Any], data: bytes) -> tuple[str, bytes, str]:
        if self._wallet is None:
            if self.wallet_path is None:
                from ario_mlflow.config import load_settings

                self.wallet_path = load_settings().wallet_path
            self._wallet = load_wallet(self.wallet_path, home=self.home)
        signer = self._wallet.signer
        item = create_data_item(data, signer, proof_tags(envelope))
        return item.id, item.raw, signer.token


def _sealed(path: Path) -> bool:
    """A newer file of the same writer exists: nobody appends to this one any more."""
    prefix, _, sequence = path.name[: -len(SUFFIX)].rpartition("~")
    return any(
        other.name[: -len(SUFFIX)].rpartition("~")[2] > sequence
        for other in path.parent.glob(f"{prefix}~*{SUFFIX}")
    )


def _writer_alive(path: Path) -> bool:
    host, _, rest = path.name.partition("~")
    return not local_process_gone(host, rest.partition("~")[0])


@dataclass(frozen=True)
class _Line:
    end: int  # offset just past this line
    entry: dict[str, Any] | None  # None: not an entry (kept aside, never lost)
    raw: bytes


def _complete_lines(data: bytes, start: int) -> Iterator[_Line]:
    position = 0
    while True:
        newline = data.find(b"\n", position)
        if newline < 0:
            return  # an unterminated tail is a write still in progress
        raw = data[position:newline]
        position = newline + 1
        try:
            entry = json.loads(raw)
            if not isinstance(entry, dict):
                entry = None
        except ValueError:
            entry = None
        yield _Line(start + position, entry, raw)


def record_from_entry(entry: Mapping[str, Any], sign: Signer) -> NewRecord:
    """The journal record of a spool entry (an envelope and where it goes, with its
    write-backs), signed into a data item by ``sign``."""
    envelope: dict[str, Any] = entry["envelope"]
    data = canonical_json(envelope)
    tx_id, item, token = sign(envelope, data)
    return NewRecord(
        tx_id=tx_id,
        envelope=data,
        item=item,
        upload_url=str(entry["upload_url"]),
        token=token,
        gateway_base=str(entry["gateway_base"]),
        event_id=str(envelope.get("event_id")) if envelope.get("event_id") else None,
        event_type=str(envelope.get("event_type")) if envelope.get("event_type") else None,
        context_key=entry.get("context_key"),
        writebacks=[
            Writeback(kind, spec, bool(after)) for kind, spec, after in entry["writebacks"]
        ],
        writeback_delay=float(entry.get("writeback_delay") or 0.0),
    )


def _keep_aside(directory: Path, raw: bytes, why: str) -> None:
    """A line that is not an entry is never dropped: it goes to ``rejected.log``."""
    logger.error("spool line that is not a decision entry kept aside (%s): %.200r", why, raw)
    with open(private_file(directory / "rejected.log"), "ab") as sink:
        sink.write(raw + b"\n")


def _unread_bytes(path: Path, start: int) -> bytes:
    """The file's bytes from ``start`` to its end or its first NUL (FileNotFoundError if
    it is gone). Read in chunks: a mapped file is mostly zeros past its lines."""
    parts: list[bytes] = []
    with open(path, "rb") as source:
        source.seek(start)
        while chunk := source.read(READ_CHUNK):
            end = chunk.find(b"\0")
            if end >= 0:
                parts.append(chunk[:end])
                break
            parts.append(chunk)
    return b"".join(parts)


def ingest_file(journal: Journal, path: Path, sign: Signer, *, batch: int = INGEST_BATCH) -> int:
    """Journal every complete line of one spool file, ``batch`` records and decisions per
    transaction; how many were journaled. The file is read once."""
    key = path.name
    start = journal.spool_offset(key)
    try:
        data = _unread_bytes(path, start)
    except FileNotFoundError:
        return 0
    total = 0
    records: list[NewRecord] = []
    batched = Spooled([], [], [])
    end = start
    for line in _complete_lines(data, start):
        if line.entry is None:
            _keep_aside(path.parent, line.raw, "not JSON")
        else:
            try:
                if isinstance(line.entry.get("envelope"), dict):
                    records.append(record_from_entry(line.entry, sign))
                elif not parse_line(line.entry, batched):
                    _keep_aside(path.parent, line.raw, "not a spool entry")
            except Exception as exc:  # a malformed entry must not block the ones after it
                _keep_aside(path.parent, line.raw, f"{type(exc).__name__}: {exc}")
        end = line.end
        if len(records) + len(batched.leaves) >= batch:
            if not journal.ingest(key, start, end, records, batched.write):
                return total  # another ingester took these lines first
            total += len(records) + len(batched.leaves)
            start, records, batched = end, [], Spooled([], [], [])
    if end != start and journal.ingest(key, start, end, records, batched.write):
        total += len(records) + len(batched.leaves)
    return total


def ingest_spool(journal: Journal, home: Path, sign: Signer) -> int:
    """Journal every complete spool line of the installation; delete finished files.

    Returns how many records were journaled.
    """
    directory = spool_dir(home)
    if not directory.is_dir():
        return 0
    total = 0
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        total += ingest_file(journal, path, sign)
        _delete_if_finished(journal, path)
    return total


def _delete_if_finished(journal: Journal, path: Path) -> None:
    """Delete a file whose writer is done with it once every line is journaled.

    A dead writer's unterminated last line (it died while appending, so that call never
    returned) can never complete: it is kept aside in ``rejected.log`` and the file goes.
    """
    if _writer_alive(path) and not _sealed(path):
        return
    offset = journal.spool_offset(path.name)
    try:
        rest = _unread_bytes(path, offset)
    except FileNotFoundError:
        return
    if b"\n" in rest:
        return  # lines still to journal (another ingester may be at them right now)
    if rest:
        _keep_aside(path.parent, rest, "unterminated last line of a writer that is gone")
    path.unlink(missing_ok=True)
    journal.forget_spool(path.name)


def _unjournaled(home: Path, journal: Journal) -> Iterator[bytes]:
    """The bytes of each spool file that the journal has not ingested yet."""
    directory = spool_dir(home)
    if not directory.is_dir():
        return
    for path in directory.glob(f"*{SUFFIX}"):
        try:
            yield _unread_bytes(path, journal.spool_offset(path.name))
        except FileNotFoundError:
            continue


def spool_backlog(home: Path, journal: Journal) -> int:
    """Bytes written to spool files and not journaled yet (0 when all is ingested)."""
    return sum(len(rest) for rest in _unjournaled(home, journal))


def spooled_entries(home: Path, journal: Journal) -> int:
    """Complete spool lines (decisions) not journaled yet."""
    return sum(rest.count(b"\n") for rest in _unjournaled(home, journal))
