"""The audit's completeness proof for batched decisions: one test per reason it reports.

Each case builds a real world (MLflow store, local gateway, companion), lets seven
decisions of ``credit/1`` fall into three windows (size 3), then does what an insider
with write access to MLflow's artifacts (or a lost spool line) would, and reads the
audit's verdict and reason.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import mlflow
import pytest

from ario_mlflow.lifecycle.serving import VerifiedModel
from ario_mlflow.outbox.anchor import ArweaveAnchor
from ario_mlflow.outbox.journal import Journal
from ario_mlflow.outbox.leaves import Spooled, get_stream
from ario_mlflow.proof.canonical import canonical_json
from ario_mlflow.verify import window_audit
from tests.support.cli import invoke_cli
from tests.support.lifecycle import FEATURES, register, set_alias, spooled_leaf, sync, train


@dataclass
class World:
    run_id: str
    model: VerifiedModel
    windows: Path  # the run's ario/windows folder on disk

    def window(self, index: int) -> Path:
        (stream,) = list(self.windows.iterdir())
        return sorted(stream.iterdir())[index]


def _world(monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setenv("ARIO_MLFLOW_WINDOW_SIZE", "3")
    trained = train()
    client = register("credit", trained)
    set_alias(client, "credit", "champion", "1", wait=False)
    model = VerifiedModel("models:/credit@champion")
    made = [model.predict(FEATURES.iloc[[row % len(FEATURES)]]) for row in range(7)]
    assert made[-1].wait_for_anchor(30), made[-1].anchor_error
    assert sync()
    uri = mlflow.MlflowClient().get_run(trained.run_id).info.artifact_uri
    return World(trained.run_id, model, Path(urlparse(uri).path) / "ario" / "windows")


def _audit() -> dict[str, Any]:
    code, out, err = invoke_cli(["audit", "credit@champion", "--format", "json"])
    assert "Traceback" not in err
    report = json.loads(out)
    assert (code == 0) == report["overall_ok"]
    return report


def _reasons(report: dict[str, Any]) -> list[str]:
    return [p["reason"] for p in report["decisions"]["batched"]["problems"]]


def test_an_honest_stream_is_complete(
    mlflow_store: str, local_gateway: Any, monkeypatch: Any
) -> None:
    _world(monkeypatch)
    report = _audit()
    batched = report["decisions"]["batched"]
    assert report["overall_ok"] is True
    assert (batched["windows"], batched["decisions"], batched["verified"]) == (3, 7, 7)
    assert batched["ok"] is True
    assert batched["problems"] == []
    code, out, _ = invoke_cli(["audit", "credit@champion"])
    assert code == 0
    assert "7 batched decision(s) in 3 window(s), 7 verified" in out


def _edit_line(world: World) -> None:
    decisions = world.window(1) / "decisions.jsonl"
    lines = decisions.read_bytes().split(b"\n")
    payload = json.loads(lines[1])
    payload["output_hash"] = "sha256:" + "0" * 64
    lines[1] = canonical_json(payload)
    decisions.write_bytes(b"\n".join(lines))


def _delete_line(world: World) -> None:
    decisions = world.window(1) / "decisions.jsonl"
    lines = decisions.read_bytes().split(b"\n")
    decisions.write_bytes(b"\n".join(lines[:1] + lines[2:]))


def _edit_manifest(world: World) -> None:
    manifest = world.window(0) / "manifest.json"
    manifest.write_bytes(
        manifest.read_bytes().replace(b'"closed_by":"size"', b'"closed_by":"time"')
    )


CASES: dict[str, tuple[Callable[[World], None], str, str]] = {
    "a decision edited in a window witness": (_edit_line, window_audit.ROOT_MISMATCH, "edited"),
    "a decision deleted from a window witness": (
        _delete_line,
        window_audit.ROOT_MISMATCH,
        "deleted",
    ),
    "a window deleted from MLflow (chain break)": (
        lambda w: shutil.rmtree(w.window(1)),
        window_audit.WINDOW_MISSING,
        "a window between them is missing",
    ),
    "the newest window deleted from MLflow": (
        lambda w: shutil.rmtree(w.window(2)),
        window_audit.WINDOW_MISSING,
        "anchored but not in MLflow",
    ),
    "the first window deleted from MLflow": (
        lambda w: shutil.rmtree(w.window(0)),
        window_audit.WINDOW_MISSING,
        "earlier windows are not in MLflow",
    ),
    "a whole stream deleted from MLflow": (
        lambda w: shutil.rmtree(w.windows),
        window_audit.STREAM_MISSING,
        "MLflow holds none of them",
    ),
    "a window manifest edited": (
        _edit_manifest,
        window_audit.WINDOW_INVALID,
        "does not verify",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_tampering_with_windows_is_named(
    case: str, mlflow_store: str, local_gateway: Any, monkeypatch: Any
) -> None:
    tamper, reason, words = CASES[case]
    tamper(_world(monkeypatch))
    report = _audit()
    assert report["overall_ok"] is False
    assert reason in _reasons(report), report["decisions"]["batched"]
    details = " ".join(p["detail"] for p in report["decisions"]["batched"]["problems"])
    assert words in details


def test_an_unclosed_tail_is_reported_until_sync_closes_it(
    mlflow_store: str, local_gateway: Any, monkeypatch: Any, ario_home: Path
) -> None:
    world = _world(monkeypatch)
    world.model.predict(FEATURES.iloc[[0]])  # one more: below the size, the writer alive
    journal = Journal.at_home(ario_home)
    deadline = time.monotonic() + 20
    while journal.counts()["decisions_unwindowed"] != 1 and time.monotonic() < deadline:
        time.sleep(0.05)  # the companion ingests it
    assert journal.counts()["decisions_unwindowed"] == 1
    report = _audit()
    assert report["overall_ok"] is False
    assert _reasons(report) == [window_audit.UNCLOSED_TAIL]
    assert sync()
    assert _audit()["overall_ok"] is True


def _gappy(template: dict[str, Any], seqs: list[int], *, header: bool) -> Spooled:
    """Spool lines of a stream whose spool lost some (only ``seqs`` are there), written
    by a process that is gone (so the closer does not wait for the missing ones)."""
    stream = {**template, "stream_id": "gappy", "writer": f"{socket.gethostname()}~{_dead_pid()}"}
    leaves = [spooled_leaf(stream, seq) for seq in seqs]
    return Spooled([stream] if header else [], leaves, [])


def _dead_pid() -> int:
    """The pid of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize(
    ("lost", "reason"),
    [((3,), window_audit.GAP_INSIDE), ((4,), window_audit.GAP_BETWEEN)],
    ids=["inside a window", "between windows"],
)
def test_lost_decisions_show_as_gaps(
    lost: tuple[int, ...],
    reason: str,
    *,
    mlflow_store: str,
    local_gateway: Any,
    monkeypatch: Any,
    ario_home: Path,
) -> None:
    """A spool line lost before its window closed (a disk error, a hand-edited spool):
    the window is signed over what was there, and the audit names the gap."""
    world = _world(monkeypatch)
    journal = Journal.at_home(ario_home)
    stream = get_stream(journal, world.model.stream_id)
    assert stream is not None
    if reason == window_audit.GAP_INSIDE:
        seqs = [s for s in range(1, 5) if s not in lost]
        assert journal.ingest("lost", 0, 1, [], _gappy(stream.header, seqs, header=True).write)
    else:  # window 1-3 closes first, then 5-6 with 4 never seen
        assert journal.ingest("lost", 0, 1, [], _gappy(stream.header, [1, 2, 3], header=True).write)
        assert sync()
        journal.ingest("lost-late", 0, 1, [], _gappy(stream.header, [5, 6], header=False).write)
    assert sync()
    report = _audit()
    assert report["overall_ok"] is False
    assert reason in _reasons(report), report["decisions"]["batched"]


def test_verify_decision_reads_a_window_witness_with_no_journal(
    mlflow_store: str, local_gateway: Any, monkeypatch: Any, tmp_path: Path
) -> None:
    """An auditor elsewhere: no journal, only MLflow and the gateways."""
    world = _world(monkeypatch)
    decision = json.loads((world.window(1) / "decisions.jsonl").read_bytes().split(b"\n")[0])
    auditor = tmp_path / "auditor-home"  # another machine: no journal of the producer's
    monkeypatch.setenv("ARIO_MLFLOW_HOME", str(auditor))
    code, out, err = invoke_cli(["verify", "decision", decision["decision_id"], "--format", "json"])
    assert code == 0, out + err
    report = json.loads(out)
    assert "receipt from MLflow run" in report["target"]
    assert report["checks"]["inclusion"]["ok"] is True
    assert report["checks"]["source_of_truth"]["ok"] is True
    assert report["checks"]["registration"]["ok"] is True
    assert ArweaveAnchor().fetch_proof(report["tx_id"]) == report["envelope"]
