"""The decision spool: the hot path's durable, lock-free first stage of the journal.

``VerifiedModel.predict`` must commit its signed record before it returns, and must not
wait for anybody to do so. A SQLite transaction can wait (another process holds the write
lock; SQLite's busy handler sleeps at least a millisecond) and signing the ANS-104 item
costs as much again. So a decision is appended, as one JSON line and one ``write(2)``, to
a file only this process writes: ``$ARIO_MLFLOW_HOME/spool/<host>~<pid>~<random>~<n>.jsonl``.
A write that has returned survives the death of the process (it is in the page cache;
the same guarantee as the journal's ``synchronous=NORMAL``).

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
import secrets
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ario_mlflow._files import ensure_private_dir
from ario_mlflow._process import local_process_gone
from ario_mlflow.arweave.dataitem import create_data_item
from ario_mlflow.arweave.item_tags import proof_tags
from ario_mlflow.arweave.journal import Journal, NewRecord, Writeback
from ario_mlflow.arweave.wallet import LoadedWallet, load_wallet
from ario_mlflow.errors import JournalError
from ario_mlflow.proof.canonical import canonical_json, encode_string

logger = logging.getLogger(__name__)

SPOOL_DIR = "spool"
SUFFIX = ".jsonl"
#: Lines journaled per transaction while ingesting.
INGEST_BATCH = 500
#: A writer starts a new file past this size; the old one is deleted once journaled.
ROTATE_BYTES = 16 * 1024 * 1024

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


def spool_dir(home: Path) -> Path:
    """Where the spool files of an installation live."""
    return Path(home) / SPOOL_DIR


class SpoolWriter:
    """Appends entries to this process's spool file; one ``write(2)`` per entry.

    Files are named ``<host>~<pid>~<random>~<sequence>.jsonl``; past ``ROTATE_BYTES``
    the writer moves on to the next sequence number, which seals the previous file.
    """

    def __init__(self, home: Path) -> None:
        self.directory = spool_dir(home)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pid = -1
        self._prefix = ""
        self._sequence = 0
        self._size = 0
        self.path: Path | None = None

    def _open(self) -> int:
        pid = os.getpid()
        if self._fd is not None and self._pid == pid and self._size < ROTATE_BYTES:
            return self._fd
        if self._fd is not None and self._pid == pid:
            os.close(self._fd)  # rotation: the next file seals this one
            self._sequence += 1
        else:  # first use, or a forked child: a file of its own
            self._prefix = f"{socket.gethostname()}~{pid}~{secrets.token_hex(4)}~"
            self._sequence = 0
        ensure_private_dir(self.directory)
        self.path = self.directory / f"{self._prefix}{self._sequence:06d}{SUFFIX}"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._pid, self._size = pid, 0
        return self._fd

    def append(self, line: bytes) -> None:
        """Make ``line`` (an :func:`entry_line`) durable against a crash of this process
        before returning.

        Raises ``JournalError`` when the spool cannot be written (e.g. a full disk): a
        decision that cannot be kept is refused, never silently dropped.
        """
        with self._lock:
            try:
                fd = self._open()
                written = os.write(fd, line)
                while written < len(line):  # a regular file takes it whole; be exact anyway
                    written += os.write(fd, line[written:])
            except OSError as exc:
                raise JournalError(f"cannot write the decision spool {self.path}: {exc}") from None
            self._size += written

    def close(self) -> None:
        """Close the file (ingesters delete it once it is journaled and we are gone)."""
        with self._lock:
            if self._fd is not None and self._pid == os.getpid():
                os.close(self._fd)
            self._fd = None


def entry_line(
    envelope_json: bytes,
    *,
    context_key: str,
    upload_url: str,
    gateway_base: str,
    writebacks: Sequence[Writeback] = (),
    writeback_delay: float = 0.0,
) -> bytes:
    """A spool entry, as the line to append: the signed envelope and everything the
    journal row needs.

    ``envelope_json`` is the envelope's canonical JSON, spliced in as it is (the hot path
    has those bytes already). The ingester parses the line and canonicalizes the envelope
    again; RFC 8785 is deterministic, so those are the bytes that were signed.
    """
    template = EntryTemplate(
        upload_url=upload_url,
        gateway_base=gateway_base,
        writebacks=writebacks,
        writeback_delay=writeback_delay,
    )
    return template.line(envelope_json, context_key)


#: Stands for the slot's value while a template is serialized (cannot occur in JSON text
#: produced from a real value: a NUL is always escaped, and this is its escaped form).
_SLOT_MARKER = "\x00ario-slot\x00"


class EntryTemplate:
    """The entries of one stream (a served model's decisions), serialized once.

    Lines differ only in the envelope, the context key and, optionally, one string field
    of the first write-back's spec (``slot``: a decision's payload text). Everything else
    is JSON text made when the template is; a line is then a few concatenations.
    """

    def __init__(
        self,
        *,
        upload_url: str,
        gateway_base: str,
        writebacks: Sequence[Writeback] = (),
        writeback_delay: float = 0.0,
        slot: str | None = None,
    ) -> None:
        rows = [[w.kind, dict(w.spec), w.after_upload] for w in writebacks]
        if slot is not None:
            if not rows:
                raise ValueError("a slot needs a write-back to hold it")
            rows[0][1][slot] = _SLOT_MARKER  # type: ignore[index]
        text = json.dumps(
            {
                "upload_url": upload_url,
                "gateway_base": gateway_base,
                "writebacks": rows,
                "writeback_delay": writeback_delay,
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )
        marker = json.dumps(_SLOT_MARKER)
        if text.count(marker) != (slot is not None):
            raise ValueError("a write-back spec holds the template's slot marker")
        self.slot = slot
        self._before, _, self._after = text[1:].partition(marker)

    def line(self, envelope_json: bytes, context_key: str, slot_value: str | None = None) -> bytes:
        """The line of one entry (``slot_value`` fills the slot, when there is one)."""
        if self.slot is not None:
            if slot_value is None:
                raise ValueError(f"the template's slot {self.slot!r} needs a value")
            rest = f"{self._before}{encode_string(slot_value)}{self._after}"
        else:
            rest = self._before
        key = encode_string(context_key)
        return b'{"envelope":' + envelope_json + f',"context_key":{key},{rest}\n'.encode()


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
            if not isinstance(entry, dict) or not isinstance(entry.get("envelope"), dict):
                entry = None
        except ValueError:
            entry = None
        yield _Line(start + position, entry, raw)


def _new_record(entry: Mapping[str, Any], sign: Signer) -> NewRecord:
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
    with open(directory / "rejected.log", "ab") as sink:
        sink.write(raw + b"\n")


def ingest_file(journal: Journal, path: Path, sign: Signer, *, batch: int = INGEST_BATCH) -> int:
    """Journal every complete line of one spool file, ``batch`` records per transaction;
    how many were journaled. The file is read once."""
    key = path.name
    start = journal.spool_offset(key)
    try:
        with open(path, "rb") as source:
            source.seek(start)
            data = source.read()
    except FileNotFoundError:
        return 0
    total = 0
    records: list[NewRecord] = []
    end = start
    for line in _complete_lines(data, start):
        if line.entry is None:
            _keep_aside(path.parent, line.raw, "not JSON")
        else:
            try:
                records.append(_new_record(line.entry, sign))
            except Exception as exc:  # a malformed entry must not block the ones after it
                _keep_aside(path.parent, line.raw, f"{type(exc).__name__}: {exc}")
        end = line.end
        if len(records) >= batch:
            if not journal.ingest(key, start, end, records):
                return total  # another ingester took these lines first
            total, start, records = total + len(records), end, []
    if end != start and journal.ingest(key, start, end, records):
        total += len(records)
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
    if _writer_alive(path) and not _sealed(path):
        return
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return
    if journal.spool_offset(path.name) >= size:
        path.unlink(missing_ok=True)
        journal.forget_spool(path.name)


def spool_backlog(home: Path, journal: Journal) -> int:
    """Bytes written to spool files and not journaled yet (0 when all is ingested)."""
    directory = spool_dir(home)
    if not directory.is_dir():
        return 0
    backlog = 0
    for path in directory.glob(f"*{SUFFIX}"):
        try:
            backlog += max(0, path.stat().st_size - journal.spool_offset(path.name))
        except FileNotFoundError:
            continue
    return backlog
