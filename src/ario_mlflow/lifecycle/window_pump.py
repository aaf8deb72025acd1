"""Closing a serving process's own windows in the process itself.

Used when its batched decisions cannot wait for the companion: ``ARIO_MLFLOW_BACKGROUND=
thread`` (no companion), or a ``VerifiedModel`` signing with a key the installation's
companion does not hold. One daemon thread per (installation, key) ingests the spool,
closes the due windows of the streams it watches and wakes this process's upload
workers; at exit it closes what is still open, so a clean exit leaves no open tail.
"""

from __future__ import annotations

import atexit
import logging
import threading
from pathlib import Path
from typing import Any

from ario_mlflow.outbox.spool_reader import WalletSigner, ingest_spool
from ario_mlflow.outbox.windows import WindowCloser, closer_for_engine

logger = logging.getLogger(__name__)

#: Pause between two passes while decisions come in / while idle (seconds).
BUSY_SECONDS = 0.05
IDLE_SECONDS = 0.2


class WindowPump:
    """The thread (see the module docstring)."""

    def __init__(self, anchor: Any, engine: Any) -> None:
        self._anchor = anchor
        home = Path(anchor.settings.home)
        self._sign = WalletSigner(home, getattr(anchor, "_wallet_path", None))
        self._home = home
        self._closer: WindowCloser = closer_for_engine(
            anchor.journal,
            engine,
            self._sign,
            size=anchor.settings.window_size,
            seconds=anchor.settings.window_seconds,
        )
        self._streams: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, stream_id: str) -> None:
        """Close ``stream_id``'s windows from now on (starts the thread if needed)."""
        with self._lock:
            self._streams.add(stream_id)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="ario-window-pump", daemon=True
                )
                self._thread.start()

    def pass_once(self, *, force: bool = False) -> int:
        """Ingest the spool and close the due windows (all open ones with ``force``)."""
        with self._lock:
            streams = set(self._streams)
        journaled = ingest_spool(self._anchor.journal, self._home, self._sign)
        closed = self._closer.close_due(force=force, streams=streams)
        if journaled or closed:
            self._anchor.wake_workers()
        return journaled + closed

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.pass_once()
            except Exception:  # never die on one bad pass: the spool and journal keep it
                logger.exception("closing windows of batched decisions failed; retrying")
                busy = 0
                self._stop.wait(1.0)
            self._stop.wait(BUSY_SECONDS if busy else IDLE_SECONDS)

    def finish(self) -> None:
        """At exit: stop the thread and close every open window of the watched streams."""
        self._stop.set()
        try:
            self.pass_once(force=True)
        except Exception as exc:  # the spool keeps them: sync closes them later
            logger.warning("could not close the open windows at exit (%s); run sync", exc)


_pumps: dict[tuple[Path, str], WindowPump] = {}
_pumps_lock = threading.Lock()


def window_pump(anchor: Any, engine: Any) -> WindowPump:
    """This process's pump for ``anchor``'s installation and ``engine``'s key."""
    key = (Path(anchor.settings.home).resolve(), str(engine.public_key_hex))
    with _pumps_lock:
        pump = _pumps.get(key)
        if pump is None:
            pump = _pumps[key] = WindowPump(anchor, engine)
        return pump


@atexit.register
def _finish_all() -> None:
    with _pumps_lock:
        pumps = list(_pumps.values())
    for pump in pumps:
        pump.finish()
