"""The record pipeline: sign → journal (write-backs held) → witness → settle within the
caller's deadline → release. Over the in-process local gateway (no socket)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ario_mlflow.engine import ProofEngine
from ario_mlflow.lifecycle.recorder import Deadline, Event, Recorder
from ario_mlflow.localgw import LocalGateway
from ario_mlflow.localgw.faults import FaultSpec
from ario_mlflow.outbox import handlers
from ario_mlflow.outbox.anchor import ArweaveAnchor
from ario_mlflow.outbox.journal import Writeback
from ario_mlflow.proof import payloads

FAILING = "test.always_fails"


@pytest.fixture
def gateway(gateway_dir: Path) -> Iterator[LocalGateway]:
    with LocalGateway(gateway_dir, key_bits=2048).in_process() as served:
        yield served


@pytest.fixture
def recorder(gateway: LocalGateway) -> Recorder:
    anchor = ArweaveAnchor(
        upload_url=gateway.url, gateways=[gateway.url], transport=gateway.transport
    )
    return Recorder(ProofEngine(), anchor)


def _event(after: list[Writeback] | None = None) -> Event:
    return Event(
        event_type=payloads.DATASET,
        subject=payloads.dataset_subject("d", "digest"),
        payload={"name": "d"},
        previous_hash=payloads.GENESIS,
        after_upload=after or [],
    )


def _fails(spec: dict[str, Any], record: Any, journal: Any) -> None:
    raise RuntimeError("MLflow said no")


def test_a_record_is_signed_journaled_uploaded_and_its_writebacks_run(
    recorder: Recorder,
) -> None:
    done: list[str] = []
    handlers.install("test.note", lambda spec, record, journal: done.append(record.tx_id))
    recorded = recorder.record(_event([Writeback("test.note", {})]), Deadline(10))
    assert recorded.uploaded
    assert recorded.tx_id is not None
    assert done == [recorded.tx_id]  # settled here, within the deadline
    assert recorder.anchor.journal.pending_writebacks_for(recorded.record.id) == 0  # type: ignore[union-attr]


def test_settling_never_outlasts_the_deadline(recorder: Recorder) -> None:
    """A write-back that keeps failing after the upload: the settle loop used to retry
    until ``timeout + 5 s``; the caller's deadline is the bound now."""
    handlers.install(FAILING, _fails)
    started = time.monotonic()
    recorded = recorder.record(_event([Writeback(FAILING, {})]), Deadline(1.0))
    elapsed = time.monotonic() - started
    assert recorded.uploaded
    assert elapsed < 1.0 + 0.5, elapsed
    assert recorder.anchor.journal.pending_writebacks_for(recorded.record.id) == 1  # type: ignore[union-attr]


def test_an_upload_that_never_answers_returns_at_the_deadline_and_holds_writebacks(
    recorder: Recorder, gateway: LocalGateway
) -> None:
    gateway.set_faults(upload=FaultSpec(blackhole=True))
    handlers.install("test.note2", lambda *_: None)
    started = time.monotonic()
    recorded = recorder.record(_event([Writeback("test.note2", {})]), Deadline(1.0))
    assert time.monotonic() - started < 1.5
    assert not recorded.uploaded
    assert recorded.tx_id is not None  # signed and journaled: nothing lost
    journal = recorder.anchor.journal
    held = journal.claim_due_writebacks("x", 10, 60, kinds=["test.note2"])
    assert held == []  # held until the caller has written its own tags
    recorder.release(recorded)
    stored = journal.get(recorded.record.id)  # type: ignore[union-attr]
    assert stored is not None
    assert stored.state == "pending"
    gateway.set_faults()


def test_anchor_returns_within_its_deadline_plus_the_hashing(
    mlflow_store: str, local_gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``anchor()`` with the upload black-holed: the deadline (2 s here) plus the time
    the model files take to hash, plus the fixed work of a small run."""
    import mlflow

    from ario_mlflow.lifecycle.artifacts import artifact_checksums
    from ario_mlflow.lifecycle.training import anchor
    from tests.support.lifecycle import FEATURES, LABELS, log_sklearn_model

    monkeypatch.setenv("ARIO_MLFLOW_ANCHOR_DEADLINE", "2")
    local_gateway.set_faults(upload=FaultSpec(blackhole=True))
    from sklearn.linear_model import LogisticRegression

    with mlflow.start_run() as run:
        mlflow.log_input(mlflow.data.from_pandas(FEATURES, source="s3://t", name="train"))
        log_sklearn_model(LogisticRegression().fit(FEATURES, LABELS), "model")
        started = time.monotonic()
        artifact_checksums(run.info.run_id, artifact_path="model")
        hashing = time.monotonic() - started
        started = time.monotonic()
        result = anchor()
        elapsed = time.monotonic() - started
    assert result["anchor_result"] is None
    assert result["tx_id"]
    assert elapsed < 2.0 + hashing + 1.0, (elapsed, hashing)
    local_gateway.set_faults()
