"""The companion: a child process that takes a serving process's decisions to Arweave.

Uploading a decision and writing its witness and trace to MLflow cost several times what
the prediction itself costs, in Python. Done by threads of the serving process they hold
its GIL while ``predict`` waits for it, and every prediction gets slower. So a process
that predicts starts one companion (``python -m ario_mlflow.outbox.companion``), which
journals the decisions the process spools (see ``spool_writer.py``), uploads them and
performs their write-backs with the ordinary workers, with the handlers its parent names
(``--handlers module:function``: the outbox itself knows no write-back target).

It also closes the windows of batched decisions (``windows.py``), signing them with the
installation's key. The companion has nothing the journal does not have: kill it and
``sync`` (or the next companion) finishes its work. When its parent exits it finishes
what is due, for at most ``LINGER_SECONDS``, and exits; SIGTERM stops it at once.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ario_mlflow._files import private_file
from ario_mlflow.config import load_settings
from ario_mlflow.outbox import handlers
from ario_mlflow.outbox.journal import Journal
from ario_mlflow.outbox.spool_reader import WalletSigner, ingest_spool, spool_backlog
from ario_mlflow.outbox.windows import InstallationCloser
from ario_mlflow.outbox.workers import UploadTarget, stop_all_workers, workers_for

logger = logging.getLogger(__name__)

#: How long a companion goes on after its parent exited, if work is still due.
LINGER_SECONDS = 30.0
#: Pause between two looks at the spool while decisions are coming in / while idle.
BUSY_POLL_SECONDS = 0.05
IDLE_POLL_SECONDS = 0.2
LOG_FILE = "companion.log"
#: Upload / write-back threads: twice a serving process's, since they cost it nothing
#: here (half favour uploads, so slow MLflow trace writes never hold the uploads back).
WORKER_THREADS = 4
#: How long a companion told to stop (SIGTERM) lets the attempts in progress finish.
TERM_GRACE_SECONDS = 0.5
#: The companion's scheduling priority relative to its parent (``nice``).
NICENESS = 10

_running: dict[tuple[Path, int], subprocess.Popen[bytes]] = {}
_running_lock = threading.Lock()


def ensure_companion(
    home: Path, wallet_path: str | os.PathLike[str] | None = None, *, installer: str
) -> None:
    """Start this process's companion for ``home`` unless it is running; ``installer``
    (``module:function``) installs the write-back handlers it needs."""
    key = (Path(home).resolve(), os.getpid())
    with _running_lock:
        process = _running.get(key)
        if process is not None and process.poll() is None:
            return
        command = [sys.executable, "-m", __name__, "--home", str(key[0]), "--parent", str(key[1])]
        command += ["--handlers", installer]
        if wallet_path:
            command += ["--wallet", os.fspath(wallet_path)]
        with open(private_file(key[0] / LOG_FILE), "ab") as log:
            _running[key] = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # a Ctrl-C meant for the parent must not cut a drain
                close_fds=True,
            )


def stop_companions(timeout: float = 10.0) -> None:
    """Stop the companions this process started (their work stays journaled)."""
    with _running_lock:
        processes = [p for (_, pid), p in _running.items() if pid == os.getpid()]
        _running.clear()
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run(home: Path, parent: int, wallet_path: str | None, installer: str) -> None:
    """Ingest, upload and write back until the parent is gone and the work is done."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(OSError):  # background work: the serving process comes first
        os.nice(NICENESS)
    settings = load_settings()
    journal = Journal.at_home(home)
    handlers.install_from(installer)

    pool = workers_for(
        journal,
        target=UploadTarget.configured(),
        max_attempts=settings.max_attempts,
        threads=WORKER_THREADS,
    )
    sign = WalletSigner(home, wallet_path)
    closer = InstallationCloser(journal, sign)
    orphaned_at: float | None = None
    while not stop.is_set() and home.is_dir():
        try:
            journaled = ingest_spool(journal, home, sign)
            journaled += closer.close_due()
        except Exception:  # never die on one bad pass: the spool and journal keep the work
            logger.exception("companion: ingesting the spool failed; retrying")
            journaled = 0
            stop.wait(1.0)
        if journaled:
            pool.wake()
        if os.getppid() != parent:
            orphaned_at = orphaned_at or time.monotonic()
            if _finished(journal, home) or time.monotonic() - orphaned_at > LINGER_SECONDS:
                break
        stop.wait(BUSY_POLL_SECONDS if journaled else IDLE_POLL_SECONDS)
    # SIGTERM: leave now (the journal keeps the work); else let the last attempts finish
    stop_all_workers(TERM_GRACE_SECONDS if stop.is_set() else 5.0)


def _finished(journal: Journal, home: Path) -> bool:
    counts = journal.counts()
    return not (
        spool_backlog(home, journal)
        or counts["pending"]
        or counts["writebacks_pending"]
        or counts["decisions_unwindowed"]
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m ario_mlflow.outbox.companion --home H --parent PID --handlers M:F
    [--wallet W]``."""
    parser = argparse.ArgumentParser(prog="ario-mlflow-companion")
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--wallet", default=None)
    parser.add_argument("--handlers", required=True, help="module:function installing handlers")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format=f"%(asctime)s companion[{os.getpid()}] %(message)s"
    )
    run(args.home, args.parent, args.wallet, args.handlers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
