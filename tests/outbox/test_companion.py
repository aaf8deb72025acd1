"""Predictions through the companion process: anchored, written back, never lost."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import mlflow
import pytest

from ario_mlflow.lifecycle.registry import ArioMlflowClient
from ario_mlflow.lifecycle.serving import VerifiedModel
from ario_mlflow.outbox.anchor import ArweaveAnchor
from ario_mlflow.outbox.companion import LOG_FILE, _running
from ario_mlflow.outbox.journal import Journal
from ario_mlflow.outbox.leaves import receipt_for
from ario_mlflow.outbox.spool_writer import spool_dir
from ario_mlflow.proof.windows import receipt_problem
from tests.conftest import PROJECT_ROOT
from tests.support.cli import run_cli
from tests.support.lifecycle import FEATURES, train

pytestmark = pytest.mark.slow  # companion processes

ROOT = PROJECT_ROOT

_SERVER = textwrap.dedent(
    """
    import sys, time
    from ario_mlflow.outbox import companion
    from ario_mlflow.lifecycle.serving import VerifiedModel
    from tests.support.lifecycle import FEATURES

    if sys.argv[3] == "wait":  # a registration in flight too
        from ario_mlflow.lifecycle.registry import ArioMlflowClient

        client = ArioMlflowClient()
        client.create_registered_model("killed")
        version = client.create_model_version("killed", sys.argv[1], run_id=sys.argv[4])
        print(version.version, flush=True)
    model = VerifiedModel(sys.argv[1])
    for index in range(int(sys.argv[2])):
        print(model.predict(FEATURES.iloc[[index % len(FEATURES)]]).decision_id, flush=True)
    (process,) = companion._running.values()
    print("companion", process.pid, flush=True)
    if sys.argv[3] == "wait":
        time.sleep(600)  # until killed
    """
)


def _serve(
    model_uri: str, count: int, then: str, run_id: str = "", *, decisions: str = "each"
) -> tuple[subprocess.Popen[str], list[str], int, str | None]:
    """A serving process predicting ``count`` times (``decisions``: its decision mode)."""
    server = subprocess.Popen(
        [sys.executable, "-c", _SERVER, model_uri, str(count), then, run_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "ARIO_MLFLOW_DECISIONS": decisions},
    )
    assert server.stdout is not None
    version = server.stdout.readline().strip() if then == "wait" else None
    decisions = [server.stdout.readline().strip() for _ in range(count)]
    line = server.stdout.readline()
    assert line, server.stderr.read() if server.stderr else "the server ended early"
    label, pid = line.split()
    assert label == "companion"
    assert all(decisions)
    return server, decisions, int(pid), version


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its parent is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _wait_until(condition: Any, timeout: float) -> bool:
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        if condition():
            return True
        time.sleep(0.1)
    return bool(condition())


def test_the_companion_anchors_and_writes_back_while_the_process_only_predicts(
    mlflow_store: str, local_gateway: Any, ario_home: Path
) -> None:
    trained = train()
    model = VerifiedModel(trained.model_uri, decisions="each")
    before = set(threading.enumerate())
    decisions = [model.predict(FEATURES.iloc[[i]]) for i in range(6)]
    assert all(d.wait_for_anchor(30) for d in decisions)
    assert all(d.proof_status == "anchored" and d.tx_id for d in decisions)
    (companion,) = _running.values()
    assert companion.pid != os.getpid()
    assert companion.poll() is None
    started = [t.name for t in set(threading.enumerate()) - before]
    assert not [name for name in started if name.startswith("ario-")], started

    journal = Journal.at_home(ario_home)
    assert _wait_until(lambda: journal.counts()["writebacks_pending"] == 0, 60)
    private = [ario_home / LOG_FILE, *spool_dir(ario_home).iterdir()]
    assert {path.name: stat.S_IMODE(path.stat().st_mode) for path in private} == {
        path.name: 0o600 for path in private
    }
    client = mlflow.MlflowClient()
    for decision in decisions:
        path = f"ario/predictions/{decision.decision_id}"
        names = {f.path for f in client.list_artifacts(trained.run_id, path)}
        assert names == {f"{path}/payload.json", f"{path}/proof.json"}
    result = run_cli("verify", "decision", decisions[0].decision_id, "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    checks = json.loads(result.stdout)["checks"]
    assert checks["source_of_truth"]["ok"] is True


def test_the_companion_finishes_after_its_parent_exits(
    mlflow_store: str, local_gateway: Any, ario_home: Path
) -> None:
    trained = train()
    server, decisions, companion, _ = _serve(trained.model_uri, 8, "exit")
    assert server.wait(timeout=60) == 0
    journal = Journal.at_home(ario_home)

    def done() -> bool:
        records = [journal.latest_for(f"prediction:{d}") for d in decisions]
        settled = all(r is not None and r.state == "uploaded" for r in records)
        return settled and journal.counts()["writebacks_pending"] == 0

    assert _wait_until(done, 60), journal.counts()
    assert _wait_until(lambda: not _alive(companion), 30)  # and then it leaves


def _kill_then_sync(
    server: subprocess.Popen[str], companion: int, gateway: Any
) -> subprocess.CompletedProcess[str]:
    """SIGKILL the serving process and its companion, lift the gateway's faults, run
    ``ar-io-mlflow sync``: what a user does after the crash."""
    for pid in (server.pid, companion):
        os.kill(pid, signal.SIGKILL)
    server.wait(timeout=30)
    assert _wait_until(lambda: not _alive(companion), 10)
    gateway.set_faults()
    result = run_cli("sync", "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_sigkill_of_server_and_companion_loses_no_returned_decision(
    mlflow_store: str, local_gateway: Any, ario_home: Path
) -> None:
    """A serving process that registers and predicts, and its companion, are killed."""
    trained = train()
    local_gateway.set_faults(upload={"blackhole": True})
    server, decisions, companion, version = _serve(trained.model_uri, 10, "wait", trained.run_id)
    result = _kill_then_sync(server, companion, local_gateway)
    journal, anchor = Journal.at_home(ario_home), ArweaveAnchor()
    for decision_id in decisions:
        record = journal.latest_for(f"prediction:{decision_id}")
        assert record is not None
        assert record.state == "uploaded"
        assert anchor.fetch_envelope_bytes(record.tx_id) == record.envelope
    result = run_cli("verify", "decision", decisions[-1], "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert version is not None
    status = ArioMlflowClient().anchor_status("registration", "killed", version)
    assert status["status"] == "anchored", status
    result = run_cli("verify", "model", f"killed/{version}", "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_batch_stream_is_closed_by_the_companion_after_its_parent_exits(
    mlflow_store: str, local_gateway: Any, ario_home: Path
) -> None:
    trained = train()
    server, decisions, companion, _ = _serve(trained.model_uri, 8, "exit", decisions="batch")
    assert server.wait(timeout=60) == 0
    journal = Journal.at_home(ario_home)

    def done() -> bool:
        receipts = [receipt_for(journal, d) for d in decisions]
        if not all(receipts):
            return False
        windows = {r.tx_id for r in receipts if r is not None}
        states = [journal.by_tx(tx) for tx in windows]
        return (
            all(s is not None and s.state == "uploaded" for s in states)
            and not (journal.counts()["writebacks_pending"])
        )

    assert _wait_until(done, 60), journal.counts()
    receipts = [receipt_for(journal, d) for d in decisions]
    assert all(r is not None and receipt_problem(r) is None for r in receipts)
    closed_by = {r.manifest["closed_by"] for r in receipts if r is not None}
    assert closed_by == {"writer_gone"}, closed_by  # 8 < the window size: nobody asked
    assert _wait_until(lambda: not _alive(companion), 30)


def test_sigkill_of_a_batch_server_and_its_companion_loses_no_returned_decision(
    mlflow_store: str, local_gateway: Any, ario_home: Path
) -> None:
    """Every decision ``predict`` returned is in a window, anchored and verifiable after
    ``sync``, although the serving process and its companion were killed mid-stream."""
    trained = train()
    local_gateway.set_faults(upload={"blackhole": True})
    server, decisions, companion, _version = _serve(
        trained.model_uri, 25, "wait", trained.run_id, decisions="batch"
    )
    result = _kill_then_sync(server, companion, local_gateway)
    assert json.loads(result.stdout)["remaining"]["decisions_unwindowed"] == 0
    journal, anchor = Journal.at_home(ario_home), ArweaveAnchor()
    counted = 0
    for decision_id in decisions:
        receipt = receipt_for(journal, decision_id)
        assert receipt is not None, decision_id
        assert receipt_problem(receipt) is None
        record = journal.by_tx(receipt.tx_id)
        assert record is not None
        assert record.state == "uploaded"
        assert anchor.fetch_envelope_bytes(record.tx_id) == record.envelope
        counted += 1
    assert counted == len(decisions) == 25
    result = run_cli("verify", "decision", decisions[-1], "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr


_ONLY_PREDICT = textwrap.dedent(
    """
    import sys
    from ario_mlflow.lifecycle.serving import VerifiedModel
    from tests.support.lifecycle import FEATURES

    model = VerifiedModel(sys.argv[1])
    for row in range(3):
        model.predict(FEATURES.iloc[[row]])
    """
)


def test_a_process_that_only_predicts_says_at_exit_what_the_companion_still_holds(
    mlflow_store: str, local_gateway: Any, ario_home: Path
) -> None:
    trained = train()  # uploaded: nothing is outstanding before the serving process
    assert Journal.at_home(ario_home).counts()["pending"] == 0
    local_gateway.set_faults(upload={"fail_rate": 1.0})
    try:
        result = subprocess.run(
            [sys.executable, "-c", _ONLY_PREDICT, trained.model_uri],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "ARIO_MLFLOW_DECISIONS": "each"},
        )
    finally:
        local_gateway.set_faults()  # let the lingering companion finish and leave
    assert result.returncode == 0, result.stderr
    assert "3 signed record(s) not uploaded yet" in result.stderr
    assert "companion" in result.stderr
