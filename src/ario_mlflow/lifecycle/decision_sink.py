"""Where ``VerifiedModel.predict`` commits a signed decision before it returns.

Two sinks, one contract (the record survives a crash of the process once ``commit``
returned; it is uploaded and written back later, by somebody else):

* ``SpoolSink`` (default, ``ARIO_MLFLOW_BACKGROUND=process``): one appended line in this
  process's spool file; a companion process does the rest. Nothing in the serving process
  competes with ``predict`` for the GIL or for the journal's write lock.
* ``JournalSink`` (``thread``): the ANS-104 item is signed and committed to the journal
  here; this process's worker threads upload it.

Those two are for ``each`` decisions. A ``batch`` decision is one unsigned spool line
(``LeafSink``); its window is signed later, off the hot path.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ario_mlflow.arweave.gateway_reader import gateway_base
from ario_mlflow.lifecycle.handlers import INSTALLER
from ario_mlflow.lifecycle.window_pump import window_pump
from ario_mlflow.lifecycle.writebacks import DECISION_PAYLOAD
from ario_mlflow.outbox.companion import ensure_companion
from ario_mlflow.outbox.journal import REJECTED, UPLOADED, Record, Writeback
from ario_mlflow.outbox.leaves import CLOSE, STREAM, decision_window
from ario_mlflow.outbox.spool_writer import EntryTemplate, SpoolWriter, entry_line
from ario_mlflow.outbox.workers import report_at_exit

#: ``wait(timeout) -> (tx_id or None, error or None)``.
Waiter = Callable[[float], tuple[str | None, str | None]]
#: How often the spool sink makes sure its companion runs.
COMPANION_CHECK_SECONDS = 1.0
#: How often a waiter looks at the journal.
WAIT_POLL_SECONDS = 0.02

_writers: dict[Path, SpoolWriter] = {}
_writers_lock = threading.Lock()


def _writer_for(home: Path) -> SpoolWriter:
    with _writers_lock:
        writer = _writers.get(home)
        if writer is None:
            writer = _writers[home] = SpoolWriter(home)
        return writer


class JournalSink:
    """Sign the item and commit it to the journal in this process (worker threads)."""

    def __init__(self, anchor: Any, base: Writeback) -> None:
        self._anchor = anchor
        self._base = base

    def commit(
        self,
        envelope: Mapping[str, Any],
        envelope_json: bytes,
        key: str,
        writeback: Writeback | str,
    ) -> Waiter:
        """Journal the signed ``envelope`` with ``writeback`` (or the sink's base
        write-back with ``writeback`` as its payload text)."""
        if isinstance(writeback, str):
            spec = {**self._base.spec, DECISION_PAYLOAD: writeback}
            writeback = Writeback(self._base.kind, spec, self._base.after_upload)
        record = self._anchor.journal_proof(envelope, writebacks=[writeback], context_key=key)
        anchor = self._anchor

        def wait(timeout: float) -> tuple[str | None, str | None]:
            outcome = anchor.wait(record, timeout)
            return (outcome["tx_id"], None) if outcome else (None, anchor.last_error)

        return wait


class SpoolSink:
    """Append the decision to this process's spool; the companion takes it from there."""

    def __init__(self, anchor: Any, base: Writeback) -> None:
        self._anchor = anchor
        self._home = Path(anchor.settings.home)
        self._writer = _writer_for(self._home)
        report_at_exit(self._home)
        self._gateway = gateway_base(anchor.gateway_host)
        self._template = EntryTemplate(
            upload_url=anchor.upload_url,
            gateway_base=self._gateway,
            writebacks=[base],
            slot=DECISION_PAYLOAD,
        )
        self._wallet_path = getattr(anchor, "_wallet_path", None)
        self._next_check = 0.0
        self._journal: Any = None

    def commit(
        self,
        envelope: Mapping[str, Any],
        envelope_json: bytes,
        key: str,
        writeback: Writeback | str,
    ) -> Waiter:
        """Spool the signed envelope (``envelope_json``: its canonical bytes) with
        ``writeback`` (or the sink's base write-back with ``writeback`` as its payload)."""
        if isinstance(writeback, str):
            line = self._template.line(envelope_json, key, writeback)
        else:
            line = entry_line(
                envelope_json,
                context_key=key,
                upload_url=self._anchor.upload_url,
                gateway_base=self._gateway,
                writebacks=[writeback],
            )
        self._writer.append(line)
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + COMPANION_CHECK_SECONDS
            ensure_companion(self._home, self._wallet_path, installer=INSTALLER)
            self._journal = self._anchor.journal  # opened here, off the usual call
        journal = self._journal

        def wait(timeout: float) -> tuple[str | None, str | None]:
            return _poll(lambda: journal.latest_for(key), timeout, "record")

        return wait


class LeafSink:
    """Where a ``batch`` stream's decisions go: one spool line each (a leaf), after the
    stream's header line. Windows are closed by the companion (``process``), or by a
    thread of this process (``thread``, or when this stream signs with a key other than
    the installation's, which only this process holds)."""

    def __init__(self, anchor: Any, header: dict[str, Any], *, pump_engine: Any = None) -> None:
        self._anchor = anchor
        self._home = Path(anchor.settings.home)
        self._writer = _writer_for(self._home)
        report_at_exit(self._home)
        self._wallet_path = getattr(anchor, "_wallet_path", None)
        self.stream_id = str(header["stream_id"])
        self._writer.append(_line(STREAM, header))
        self._pump_engine = pump_engine
        self._next_check = 0.0
        self._journal: Any = None
        self._closed_through = 0

    def append(self, payload_bytes: bytes) -> None:
        """Spool one decision's payload (durable when this returns)."""
        self._writer.append(b'{"leaf":' + payload_bytes + b"}\n")
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + COMPANION_CHECK_SECONDS
            self._keep_going()

    def _keep_going(self) -> None:
        """Make sure somebody ingests the spool and closes this stream's windows."""
        if self._pump_engine is not None:
            window_pump(self._anchor, self._pump_engine).watch(self.stream_id)
        else:
            ensure_companion(self._home, self._wallet_path, installer=INSTALLER)
        self._journal = self._anchor.journal

    def waiter(self, decision_id: str, seq: int) -> Waiter:
        """``wait(timeout)`` for the window of decision ``seq`` to be uploaded: asks for
        the window to close now rather than when it is due."""

        def wait(timeout: float) -> tuple[str | None, str | None]:
            if seq > self._closed_through:
                self._writer.append(_line(CLOSE, self.stream_id, through=seq))
                self._closed_through = seq
            self._keep_going()
            journal = self._journal

            def window() -> Record | None:
                found = decision_window(journal, decision_id)
                return journal.by_tx(found[0]) if found and found[0] else None

            return _poll(window, timeout, "window")

        return wait


def _poll(
    find: Callable[[], Record | None], timeout: float, what: str
) -> tuple[str | None, str | None]:
    """Look at the journal until the record ``find`` returns (a decision's own, or its
    window, ``what``) is uploaded or refused for good, or ``timeout`` passes:
    ``(tx_id or None, error or None)``."""
    until = time.monotonic() + timeout
    while True:
        record = find()
        if record is not None and record.state == UPLOADED:
            return record.tx_id, None
        if record is not None and record.state == REJECTED:
            return None, f"{record.last_error} ({what} {record.tx_id} kept in the journal)"
        if time.monotonic() >= until:
            where = f"{what} {record.tx_id}" if record else "the decision (spooled)"
            return None, (
                f"upload not confirmed within {timeout:g}s; {where} will be retried "
                "(ar-io-mlflow sync)"
            )
        time.sleep(WAIT_POLL_SECONDS)


def _line(kind: str, value: Any, **more: Any) -> bytes:
    return json.dumps({kind: value, **more}, separators=(",", ":")).encode() + b"\n"


def decision_sink(anchor: Any, background: str, base: Writeback) -> JournalSink | SpoolSink:
    """The sink for ``background`` (``process`` or ``thread``); ``base`` is the write-back
    every decision gets, with its own payload text under ``DECISION_PAYLOAD``."""
    sink = SpoolSink if background == "process" else JournalSink
    return sink(anchor, base)
