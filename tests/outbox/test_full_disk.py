"""A disk that takes no more bytes: one clear line from the CLI, nothing left behind.

Two ways to make writes fail without mounting anything: a process whose ``RLIMIT_FSIZE``
is 0 (``SIGXFSZ`` ignored), in which every ``write(2)`` to a file fails with ``EFBIG``
while reading, creating and deleting files still work, as on a full disk; and a journal
connection that SQLite may not let grow (``max_page_count``), which fails exactly as a
full disk does inside SQLite (``SQLITE_FULL``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ario_mlflow.cli.output import EXIT_USAGE
from ario_mlflow.engine import ProofEngine
from ario_mlflow.errors import JournalError
from ario_mlflow.outbox.journal import JOURNAL_FILE, Journal, NewRecord, Writeback
from ario_mlflow.outbox.spool_writer import SpoolWriter, entry_line, spool_dir
from ario_mlflow.proof.canonical import canonical_json
from tests.support.cli import invoke_cli, run_cli
from tests.support.lifecycle import FEATURES, train

_NO_FILE_MAY_GROW = """\
import resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
"""


def _full_disk_env(tmp_path: Path) -> dict[str, str]:
    """Environment for ``run_cli`` in which the CLI process can write no byte to any file
    (a ``sitecustomize`` sets the limit before anything else runs)."""
    directory = tmp_path / "full-disk"
    directory.mkdir()
    (directory / "sitecustomize.py").write_text(_NO_FILE_MAY_GROW)
    paths = [str(directory), os.environ.get("PYTHONPATH", "")]
    return {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}


@pytest.fixture
def held_journal(ario_home: Path) -> Iterator[Journal]:
    """The installation's journal with one pending record, held open by this process
    (as a serving process or companion holds it), so its WAL and shared-memory files
    exist: another process can read it without writing a byte."""
    journal = Journal.at_home(ario_home)
    journal.enqueue(
        NewRecord(
            tx_id="f" * 43,
            envelope=b'{"e":1}',
            item=b"item",
            upload_url="http://127.0.0.1:9",
            token="arweave",
            gateway_base="http://127.0.0.1:9",
        )
    )
    yield journal
    journal.close()


def test_sync_on_a_full_disk_says_so_in_one_line(
    ario_home: Path, tmp_path: Path, held_journal: Journal
) -> None:
    result = run_cli(
        "sync",
        env={**_full_disk_env(tmp_path), "ARIO_MLFLOW_UPLOAD_URL": "http://127.0.0.1:9"},
        fresh_process=True,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == EXIT_USAGE, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot write journal {ario_home / JOURNAL_FILE}: "), line
    record = held_journal.by_tx("f" * 43)
    assert record is not None
    assert (record.state, record.attempts) == ("pending", 0)  # nothing half-done


def test_outbox_on_a_full_disk_still_lists(tmp_path: Path, held_journal: Journal) -> None:
    """Listing writes nothing, so a full disk does not stop it."""
    result = run_cli("outbox", env=_full_disk_env(tmp_path), fresh_process=True)
    assert result.returncode == 0, result.stderr
    assert "1 pending" in result.stdout
    assert "f" * 43 in result.stdout


@pytest.mark.parametrize("command", ["sync", "outbox"])
def test_a_journal_nobody_holds_cannot_even_be_opened_on_a_full_disk(
    ario_home: Path, tmp_path: Path, held_journal: Journal, command: str
) -> None:
    """Opening a journal no process has open writes its shared-memory file first."""
    held_journal.close()
    result = run_cli(command, env=_full_disk_env(tmp_path), fresh_process=True)
    assert result.returncode == EXIT_USAGE, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot open journal {ario_home / JOURNAL_FILE}: "), line


def test_sqlites_bare_io_error_on_a_full_file_system_is_called_a_full_disk(
    ario_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal.at_home(ario_home)
    full = os.statvfs_result((4096, 4096, 1000, 0, 0, 100, 0, 0, 0, 255))
    monkeypatch.setattr(os, "statvfs", lambda _: full)
    error = journal._error("open", sqlite3.OperationalError("disk I/O error"))
    assert str(error) == (
        f"cannot open journal {ario_home / JOURNAL_FILE}: no space left on device (disk I/O error)"
    )


@pytest.fixture
def journal_cannot_grow(ario_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The installation's journal exists (its tables made), and no connection may add a
    page to it: SQLite then fails with ``SQLITE_FULL``, its code for a full disk."""
    Journal.at_home(ario_home).close()
    connect = Journal._connection

    def capped(self: Journal) -> sqlite3.Connection:
        new = getattr(self._local, "db", None) is None
        db = connect(self)
        if new:
            db.execute("PRAGMA max_page_count = 1")  # never below the current size
        return db

    monkeypatch.setattr(Journal, "_connection", capped)


def test_sync_with_a_journal_that_cannot_grow_names_the_full_disk(
    ario_home: Path, journal_cannot_grow: None
) -> None:
    envelope = ProofEngine().create_commitment(
        event_type="prediction",
        subject={"type": "mlflow_prediction", "decision_id": "d-1"},
        payload_bytes=b"p",
        previous_hash="GENESIS",
    )
    SpoolWriter(ario_home).append(
        entry_line(
            canonical_json(envelope),
            context_key="prediction:d-1",
            upload_url="http://127.0.0.1:9",
            gateway_base="http://127.0.0.1:9",
            writebacks=[Writeback("test.kind", {"blob": "x" * 20_000})],  # needs new pages
        )
    )
    code, _, err = invoke_cli(["sync", "--upload-url", "http://127.0.0.1:9"])
    assert code == EXIT_USAGE
    assert err.strip() == (
        f"error: cannot write journal {ario_home / JOURNAL_FILE}: "
        "no space left on device (database or disk is full)"
    )


def test_a_write_that_finds_the_disk_full_is_a_journal_error_and_rolled_back(
    ario_home: Path, journal_cannot_grow: None
) -> None:
    journal = Journal.at_home(ario_home)
    new = NewRecord(
        tx_id="a" * 43,
        envelope=b"{}",
        item=b"x" * 20_000,
        upload_url="http://127.0.0.1:9",
        token="arweave",
        gateway_base="http://127.0.0.1:9",
    )
    with pytest.raises(JournalError, match="no space left on device"):
        journal.enqueue(new)
    # the failed transaction was rolled back: the connection takes the next one
    journal._connection().execute("PRAGMA max_page_count = 1000000")
    assert journal.enqueue(new).tx_id == "a" * 43


_PREDICT_ON_A_FULL_DISK = """
import json, resource, signal, sys
from ario_mlflow.lifecycle.serving import VerifiedModel

def full() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

outcomes = []
if sys.argv[3] == "before-load":
    full()
try:
    model = VerifiedModel(sys.argv[1], decisions=sys.argv[4])
except Exception as exc:
    print(json.dumps([[type(exc).__name__, str(exc)]]))
    sys.exit(0)
if sys.argv[3] == "after-load":
    full()
for _ in range(3):
    try:
        decision = model.predict(json.loads(sys.argv[2]))
        outcomes.append(["returned", decision.decision_id])
    except Exception as exc:
        outcomes.append([type(exc).__name__, str(exc)])
print(json.dumps(outcomes))
"""


def _predict_on_a_full_disk(model_uri: str, when: str, decisions: str) -> list[list[str]]:
    row = {name: float(value) for name, value in FEATURES.iloc[0].items()}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _PREDICT_ON_A_FULL_DISK,
            model_uri,
            json.dumps(row),
            when,
            decisions,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    outcomes: list[list[str]] = json.loads(result.stdout.strip().splitlines()[-1])
    return outcomes


def test_a_refused_prediction_leaves_no_spool_file_behind(
    ario_home: Path, mlflow_store: str, local_gateway: Any
) -> None:
    """Each refused decision used to leave an empty spool file: thousands of them after
    a night of traffic on a full disk."""
    trained = train()
    outcomes = _predict_on_a_full_disk(trained.model_uri, "after-load", "each")
    assert [kind for kind, _ in outcomes] == ["JournalError"] * 3  # never returned unrecorded
    assert all("cannot write the decision spool" in message for _, message in outcomes)
    directory = spool_dir(ario_home)
    left = sorted(p.name for p in directory.iterdir()) if directory.exists() else []
    assert left == []


def test_a_batch_stream_cannot_open_on_a_full_disk_and_leaves_nothing(
    ario_home: Path, mlflow_store: str, local_gateway: Any
) -> None:
    """Nothing can be written: the model does not load (a typed error: its private copy
    cannot be made, or its stream's header cannot be spooled), rather than serve decisions
    that could not be kept."""
    outcomes = _predict_on_a_full_disk(train().model_uri, "before-load", "batch")
    assert [kind for kind, _ in outcomes] in (["ProofUnavailableError"], ["JournalError"])
    directory = spool_dir(ario_home)
    assert (sorted(p.name for p in directory.iterdir()) if directory.exists() else []) == []


def test_batch_decisions_made_in_reserved_spool_space_are_kept_when_the_disk_fills(
    ario_home: Path, mlflow_store: str, local_gateway: Any
) -> None:
    """The spool file's blocks were reserved when the stream opened (posix_fallocate), so
    decisions made after the disk filled still land in it, and none is lost."""
    from ario_mlflow.outbox.leaves import receipt_for
    from ario_mlflow.outbox.spool_writer import MAPPABLE_FILE_SYSTEMS, file_system_type

    outcomes = _predict_on_a_full_disk(train().model_uri, "after-load", "batch")
    if file_system_type(ario_home) not in MAPPABLE_FILE_SYSTEMS:
        # no reservations here: each decision is refused, never kept falsely
        assert [kind for kind, _ in outcomes] == ["JournalError"] * 3
        return
    assert [kind for kind, _ in outcomes] == ["returned"] * 3
    assert run_cli("sync").returncode == 0
    journal = Journal.at_home(ario_home)
    assert all(receipt_for(journal, decision) is not None for _, decision in outcomes)
