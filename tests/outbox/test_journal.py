"""The journal on its own: idempotent enqueue, leases, dead owners, write-back bookkeeping."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from ario_mlflow.outbox.journal import PENDING, REJECTED, UPLOADED, Journal, NewRecord, Writeback
from ario_mlflow.outbox.workers import lease_owner, reclaim_dead_leases


def _new(tx: str, **extra: object) -> NewRecord:
    return NewRecord(
        tx_id=tx,
        envelope=b'{"e":1}',
        item=b"item-" + tx.encode(),
        upload_url="http://127.0.0.1:9",
        token="solana",
        gateway_base="http://127.0.0.1:9",
        **extra,  # type: ignore[arg-type]
    )


def test_enqueue_persists_and_is_idempotent(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    first = journal.enqueue(_new("a" * 43, writebacks=[Writeback("k", {"x": 1})]))
    again = journal.enqueue(_new("a" * 43, writebacks=[Writeback("k", {"x": 2})]))
    assert first.id == again.id
    reopened = Journal(tmp_path / "j.sqlite3")
    stored = reopened.by_tx("a" * 43)
    assert stored is not None
    assert stored.state == PENDING
    assert stored.item == b"item-" + b"a" * 43
    assert reopened.counts()["writebacks_pending"] == 1
    assert stored.url == "http://127.0.0.1:9/" + "a" * 43


def test_journal_file_is_private_and_wal(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "home" / "journal.sqlite3")
    journal.enqueue(_new("b" * 43))
    assert (tmp_path / "home").stat().st_mode & 0o777 == 0o700
    mode = journal._connection().execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_claims_are_exclusive_across_threads(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    for index in range(200):
        journal.enqueue(_new(f"{index:043d}"))
    claimed: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        while batch := journal.claim_due_records(lease_owner(), 7, 60):
            with lock:
                claimed.extend(r.tx_id for r in batch)
            for record in batch:
                journal.mark_uploaded(record.id, None)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(claimed) == 200
    assert len(set(claimed)) == 200
    assert journal.counts()[UPLOADED] == 200


def test_failed_attempt_backs_off_and_rejected_is_not_claimed(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    record = journal.enqueue(_new("c" * 43))
    (claimed,) = journal.claim_due_records("me", 10, 60)
    journal.mark_failed_attempt(claimed.id, "HTTP 503", retry_in=60)
    assert journal.claim_due_records("me", 10, 60) == []
    stored = journal.get(record.id)
    assert stored is not None
    assert stored.attempts == 1
    assert stored.last_error == "HTTP 503"
    assert stored.next_attempt_at > time.time() + 50
    # sync ignores the schedule
    assert [r.id for r in journal.claim_due_records("me", 10, 60, ignore_schedule=True)] == [
        record.id
    ]
    journal.mark_failed_attempt(record.id, "HTTP 400", retry_in=0, rejected=True)
    assert journal.get(record.id).state == REJECTED  # type: ignore[union-attr]
    assert journal.claim_due_records("me", 10, 60) == []
    assert journal.outstanding_ids() == [record.id]


def test_leases_of_dead_processes_are_reclaimed(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    record = journal.enqueue(_new("d" * 43))
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_owner = lease_owner().rsplit(":", 2)[0] + f":{dead.stdout.strip()}:1"
    assert journal.claim_due_records(dead_owner, 1, 600)
    assert journal.claim_due_records("other", 1, 600) == []  # leased
    live_owner = lease_owner()  # this process: alive, must not be reclaimed
    journal.enqueue(_new("e" * 43))
    assert journal.claim_due_records(live_owner, 1, 600)
    assert reclaim_dead_leases(journal) == 1
    (freed,) = journal.claim_due_records("other", 5, 600)
    assert freed.id == record.id
    assert os.getpid() == int(live_owner.split(":")[1])


def test_writebacks_wait_for_the_upload(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    record = journal.enqueue(_new("f" * 43, writebacks=[Writeback("k", {"n": 1})]))
    assert journal.claim_due_writebacks("me", 10, 60, kinds=["k"]) == []
    journal.mark_uploaded(record.id, {"id": "f" * 43})
    assert journal.claim_due_writebacks("me", 10, 60, kinds=["other"]) == []
    (writeback,) = journal.claim_due_writebacks("me", 10, 60, kinds=["k"])
    assert writeback.spec == {"n": 1}
    assert writeback.record.receipt == {"id": "f" * 43}
    journal.mark_writeback_failed(writeback.id, "MLflow down", retry_in=0)
    assert journal.outstanding_writebacks() == [(writeback.id, "k", "MLflow down", "f" * 43)]
    (again,) = journal.claim_due_writebacks("me", 10, 60, kinds=["k"])
    journal.mark_writeback_done(again.id)
    assert journal.counts()["writebacks_pending"] == 0


def test_a_record_discarded_during_an_attempt_stays_discarded(tmp_path: Path) -> None:
    """A worker's failed attempt that ends after ``outbox discard`` must not bring the
    abandoned record back to ``pending`` (it used to, so ``sync`` kept retrying it)."""
    from ario_mlflow.outbox.journal import DISCARDED

    journal = Journal(tmp_path / "j.sqlite3")
    record = journal.enqueue(_new("d" * 43))
    leased = journal.claim_record(record.id, lease_owner(), 60)
    assert leased is not None
    assert journal.discard([record.id], "abandoned by hand") == 1
    journal.mark_failed_attempt(record.id, "connection refused", retry_in=1.0)
    journal.mark_unconfirmed(record.id, "no receipt", 1.0, None)
    stored = journal.get(record.id)
    assert stored is not None
    assert stored.state == DISCARDED
    assert journal.counts()[DISCARDED] == 1
    assert journal.outstanding_ids() == []
