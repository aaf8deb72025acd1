"""Nothing is lost, nothing is duplicated: several processes, a SIGKILL, then ``sync``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from ario_mlflow.outbox.anchor import ArweaveAnchor
from ario_mlflow.outbox.journal import Journal

pytestmark = pytest.mark.slow  # processes killed and restarted

_PRODUCER = textwrap.dedent(
    """
    import sys
    from ario_mlflow.outbox.anchor import ArweaveAnchor
    from ario_mlflow.engine import ProofEngine

    count, tag = int(sys.argv[1]), sys.argv[2]
    anchor, engine = ArweaveAnchor(), ProofEngine()
    for index in range(count):
        envelope = engine.create_commitment(
            event_type="prediction",
            subject={"type": "mlflow_prediction", "decision_id": f"{tag}-{index}"},
            payload_bytes=f"{tag}-{index}".encode(),
            previous_hash="GENESIS",
        )
        record = anchor.journal_proof(envelope)
        print(record.tx_id, flush=True)
    if len(sys.argv) > 3:
        import time
        time.sleep(600)  # wait to be killed
    """
)


def _spawn(count: int, tag: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _PRODUCER, str(count), tag, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )


def _sync_cli() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ario_mlflow.cli", "sync", "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_four_processes_share_one_journal_without_loss_or_duplicates(
    local_gateway: Any, ario_home: Path
) -> None:
    producers = [_spawn(25, f"p{n}") for n in range(4)]
    tx_ids: list[str] = []
    for producer in producers:
        out, err = producer.communicate(timeout=120)
        assert producer.returncode == 0, err
        tx_ids += out.split()
    assert len(tx_ids) == 100
    assert len(set(tx_ids)) == 100

    result = _sync_cli()
    assert result.returncode == 0, result.stdout + result.stderr
    journal = Journal.at_home(ario_home)
    assert journal.counts()["uploaded"] == 100
    found = [
        node.id
        for node in ArweaveAnchor()
        .reader()
        .search_everywhere(tags={"App-Name": "ar-io-mlflow", "Event-Type": "prediction"})
        .nodes
    ]
    assert sorted(found) == sorted(tx_ids)


def test_sigkill_loses_nothing(local_gateway: Any, ario_home: Path) -> None:
    local_gateway.set_faults(upload={"blackhole": True})
    producer = _spawn(20, "crash", "then-wait")
    assert producer.stdout is not None
    returned = [producer.stdout.readline().strip() for _ in range(20)]
    producer.send_signal(signal.SIGKILL)
    producer.wait(timeout=30)
    assert producer.returncode == -signal.SIGKILL

    journal = Journal.at_home(ario_home)
    assert sorted(journal.outstanding_ids()) == sorted(
        r.id for r in (journal.by_tx(t) for t in returned) if r is not None
    )
    local_gateway.set_faults()
    result = _sync_cli()
    assert result.returncode == 0, result.stdout + result.stderr
    anchor = ArweaveAnchor()
    for tx_id in returned:
        record = journal.by_tx(tx_id)
        assert record is not None
        assert record.state == "uploaded"
        assert anchor.fetch_envelope_bytes(tx_id) == record.envelope


def test_a_spent_retry_budget_parks_the_record_until_sync(
    local_gateway: Any, monkeypatch: Any
) -> None:
    import time

    from ario_mlflow.engine import ProofEngine
    from ario_mlflow.outbox.sync import sync_journal

    monkeypatch.setenv("ARIO_MLFLOW_MAX_ATTEMPTS", "2")
    local_gateway.set_faults(upload={"fail_rate": 1.0, "status": 503})
    anchor = ArweaveAnchor(deadline=4)
    envelope = ProofEngine().create_commitment(
        event_type="dataset", subject={}, payload_bytes=b"x", previous_hash="GENESIS"
    )
    assert anchor.upload_proof(envelope) is None
    (record,) = anchor.journal.outstanding()
    assert record.attempts == 2
    assert "retry budget of 2 attempts used" in (record.last_error or "")
    assert record.next_attempt_at > time.time() + 365 * 24 * 3600
    local_gateway.set_faults()
    time.sleep(2.5)  # the workers leave a parked record alone
    assert anchor.journal.by_tx(record.tx_id).state == "pending"  # type: ignore[union-attr]
    assert sync_journal(anchor.journal).complete


_QUICK_EXIT = textwrap.dedent(
    """
    from ario_mlflow.outbox.anchor import ArweaveAnchor
    from ario_mlflow.engine import ProofEngine

    envelope = ProofEngine().create_commitment(
        event_type="dataset", subject={}, payload_bytes=b"quick", previous_hash="GENESIS"
    )
    print(ArweaveAnchor().journal_proof(envelope).tx_id, flush=True)
    # no wait, no sync: the interpreter exits at once
    """
)


def test_interpreter_exit_flushes_pending_uploads(local_gateway: Any, ario_home: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _QUICK_EXIT],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    tx_id = result.stdout.strip()
    record = Journal.at_home(ario_home).by_tx(tx_id)
    assert record is not None
    assert record.state == "uploaded"


def test_interpreter_exit_is_bounded_when_the_gateway_hangs(
    local_gateway: Any, ario_home: Path
) -> None:
    import time

    local_gateway.set_faults(upload={"blackhole": True})
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", _QUICK_EXIT],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, "ARIO_MLFLOW_EXIT_FLUSH": "1"},
    )
    assert time.monotonic() - started < 15
    assert "not uploaded yet: they stay in" in result.stderr
    record = Journal.at_home(ario_home).by_tx(result.stdout.strip())
    assert record is not None
    assert record.state == "pending"
