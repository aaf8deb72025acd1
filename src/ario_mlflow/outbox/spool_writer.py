"""Writing the decision spool: one line per decision, durable when ``append`` returns.

A serving process writes only its own files (``<host>~<pid>~<random>~<n>.jsonl`` under
``$ARIO_MLFLOW_HOME/spool``), so appending needs no lock shared with anybody else.

Two ways to put a line in the file, with the same guarantee (the bytes are in the page
cache, which outlives the process; the journal's ``synchronous=NORMAL`` promises as much):

* **mapped** (the default where it is safe): the file is created at its full size with
  ``posix_fallocate`` — its blocks reserved, so a page can never fail to be written for
  lack of space — and mapped; a line is a memory copy, with no system call. With cold
  caches after a model call this costs ~10 µs against ~40 µs for ``write(2)``. Bytes past
  the last line are zeros, which readers take as "nothing more yet" (a line never holds a
  NUL byte: JSON escapes it). A sealed file is truncated to its lines.
* **appended**: one ``write(2)`` on an ``O_APPEND`` descriptor. Used on file systems whose
  space reservation we cannot rely on (copy-on-write and network file systems, where a
  write into a mapping could fail with ``SIGBUS`` on a full disk), when reserving fails
  (e.g. the disk is full: the append then raises a typed error), and for a line longer
  than a whole mapped file.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import secrets
import socket
import threading
from collections.abc import Sequence
from pathlib import Path

from ario_mlflow._files import ensure_private_dir
from ario_mlflow.errors import JournalError
from ario_mlflow.outbox.journal import Writeback
from ario_mlflow.proof.canonical import encode_string

SPOOL_DIR = "spool"
SUFFIX = ".jsonl"
#: A writer starts a new file past this size; the old one is deleted once journaled.
ROTATE_BYTES = 4 * 1024 * 1024
#: File systems on which a block reserved by ``posix_fallocate`` is written in place.
MAPPABLE_FILE_SYSTEMS = frozenset({"ext2", "ext3", "ext4", "xfs", "tmpfs", "overlay"})


def spool_dir(home: Path) -> Path:
    """Where the spool files of an installation live."""
    return Path(home) / SPOOL_DIR


def file_system_type(path: Path) -> str | None:
    """The type of the file system holding ``path`` (Linux ``mountinfo``), else None."""
    try:
        target = os.path.realpath(path)
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as mounts:
            lines = mounts.readlines()
    except OSError:
        return None
    best, kind = "", None
    for line in lines:
        fields, _, rest = line.partition(" - ")
        parts = fields.split()
        if len(parts) < 5 or not rest:
            continue
        mount_point = parts[4].replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, kind = mount_point, rest.split()[0]
    return kind


class SpoolWriter:
    """Appends lines to this process's spool file (see the module docstring).

    Past ``ROTATE_BYTES`` the writer moves on to the next sequence number, which seals
    the previous file. A forked child gets files of its own.
    """

    def __init__(self, home: Path, *, mapped: bool | None = None) -> None:
        self.directory = spool_dir(home)
        self._lock = threading.Lock()
        self._mapped_allowed = mapped
        self._fd: int | None = None
        self._map: mmap.mmap | None = None
        self._pid = -1
        self._prefix = ""
        self._sequence = 0
        self._size = 0
        #: The current file was created by this writer (only such a file is removed
        #: when its first line cannot be written).
        self._created = False
        self.path: Path | None = None

    @property
    def mapped(self) -> bool:
        """True while the current file is written through a memory map."""
        return self._map is not None

    def _may_map(self) -> bool:
        if self._mapped_allowed is None:
            self._mapped_allowed = (
                hasattr(os, "posix_fallocate")
                and file_system_type(self.directory) in MAPPABLE_FILE_SYSTEMS
            )
        return self._mapped_allowed

    def _room_for(self, length: int) -> None:
        """Make the current file one that can take ``length`` more bytes."""
        pid = os.getpid()
        if self._fd is not None and self._pid == pid:
            if self._map is not None:
                if self._size + length <= len(self._map):
                    return
            elif self._size < ROTATE_BYTES:
                return
            self._seal()  # rotation: the next file seals this one
            self._sequence += 1
        else:  # first use, or a forked child: files of its own (the parent's stay open)
            self._fd = self._map = None
            self._prefix = f"{socket.gethostname()}~{pid}~{secrets.token_hex(4)}~"
            self._sequence = 0
        ensure_private_dir(self.directory)
        self.path = self.directory / f"{self._prefix}{self._sequence:06d}{SUFFIX}"
        self._pid, self._size, self._created = pid, 0, False
        if length <= ROTATE_BYTES and self._may_map() and self._open_mapped():
            self._created = True
            return
        existed = os.path.lexists(self.path)  # never, unless someone put a file there
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._created = not existed

    def _open_mapped(self) -> bool:
        assert self.path is not None
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.posix_fallocate(fd, 0, ROTATE_BYTES)
            self._map = mmap.mmap(fd, ROTATE_BYTES)
        except (OSError, ValueError):
            # No space to reserve, or no reservation on this file: append instead.
            os.close(fd)
            self.path.unlink(missing_ok=True)
            return False
        self._fd = fd
        return True

    def _seal(self) -> None:
        """Close the current file; a mapped one is cut down to its lines first."""
        if self._map is not None:
            self._map.close()
            self._map = None
            assert self._fd is not None
            os.ftruncate(self._fd, self._size)
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None

    def append(self, line: bytes) -> None:
        """Make ``line`` (an :func:`entry_line`) durable against a crash of this process
        before returning.

        Raises ``JournalError`` when the spool cannot be written (e.g. a full disk): a
        decision that cannot be kept is refused, never silently dropped.
        """
        length = len(line)
        with self._lock:
            try:
                self._room_for(length)
                if self._map is not None:
                    self._map[self._size : self._size + length] = line
                else:
                    assert self._fd is not None
                    written = os.write(self._fd, line)
                    while written < length:  # a regular file takes it whole; be exact
                        written += os.write(self._fd, line[written:])
            except OSError as exc:
                self._abandon()
                raise JournalError(f"cannot write the decision spool {self.path}: {exc}") from None
            self._size += length

    def _abandon(self) -> None:
        """After a failed write: the next line goes to a new file, never after a torn one.

        A file this writer created and could not put a single line in is removed (it
        holds nothing, or only the refused line's torn start): otherwise each decision
        refused on a full disk would leave one more file behind.
        """
        with contextlib.suppress(OSError):
            self._seal()
        if self._created and self._size == 0 and self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
        self._fd = self._map = None
        self._created = False

    def close(self) -> None:
        """Seal the file (ingesters delete it once it is journaled and we are gone)."""
        with self._lock:
            if self._pid == os.getpid():
                self._seal()
            self._fd = self._map = None


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
