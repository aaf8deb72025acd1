"""The HTTP path: a real ``mlflow server`` subprocess (sqlite behind it, proxied artifacts)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.linear_model import LogisticRegression

from ario_mlflow.lifecycle.training import anchor
from ario_mlflow.lifecycle.writebacks import set_tags_writeback
from ario_mlflow.outbox.anchor import ArweaveAnchor
from ario_mlflow.outbox.sync import sync_journal
from ario_mlflow.proof.commitment import verify_commitment
from tests.support.lifecycle import log_sklearn_model, release_store
from tests.support.mlflow_server import MlflowServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    root = tmp_path_factory.mktemp("mlflow-server")
    handle = MlflowServer.start(f"sqlite:///{root / 'backend.db'}", root / "artifacts")
    yield handle
    handle.stop()


@pytest.fixture
def remote_store(server: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    mlflow.set_tracking_uri(server.url)
    yield server.url
    release_store()


def _train() -> None:
    features = pd.DataFrame(np.random.default_rng(3).random((30, 2)), columns=["x", "y"])
    mlflow.log_input(mlflow.data.from_pandas(features, name="train", source="s3://b/t"))
    mlflow.log_metric("accuracy", 0.8)
    model = LogisticRegression().fit(features, (features["x"] > 0.5).astype(int))
    log_sklearn_model(model, "model", pip_requirements=["scikit-learn"])


def test_anchor_over_http(remote_store: str, local_gateway: Any) -> None:
    with mlflow.start_run() as run:
        _train()
        result = anchor()
    assert result["anchor_result"] is not None
    assert result["artifact_status"] == "hashed"
    tags = MlflowClient().get_run(run.info.run_id).data.tags
    assert tags["ario.training_tx"] == result["tx_id"]
    local = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="ario/payload.json"
    )
    payload_bytes = Path(local).read_bytes()
    envelope = ArweaveAnchor().fetch_proof(result["tx_id"])
    assert verify_commitment(envelope, payload_bytes)["overall"] is True


def test_tag_writeback_survives_the_tracking_server_going_away(
    tmp_path: Path, local_gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    backend = f"sqlite:///{tmp_path / 'db.sqlite'}"
    first = MlflowServer.start(backend, tmp_path / "artifacts")
    port = first.port
    run_id = MlflowClient(first.url).create_run("0").info.run_id
    first.stop()

    from ario_mlflow.engine import ProofEngine

    arweave = ArweaveAnchor()
    envelope = ProofEngine().create_commitment(
        event_type="training_complete",
        subject={"type": "mlflow_run", "run_id": run_id},
        payload_bytes=b"{}",
        previous_hash="GENESIS",
    )
    record = arweave.journal_proof(
        envelope,
        writebacks=[
            set_tags_writeback(
                "run", {"ario.training_tx": "{tx_id}"}, tracking_uri=first.url, run_id=run_id
            )
        ],
    )
    assert arweave.wait(record, 10) is not None  # uploaded: the gateway is fine
    report = sync_journal(arweave.journal)
    assert report.writebacks_failed == 1
    assert report.remaining["writebacks_pending"] == 1
    listing = subprocess.run(
        [sys.executable, "-m", "ario_mlflow.cli", "outbox"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert f"mlflow.set_tags for {record.tx_id}" in listing.stdout

    second = MlflowServer.start(backend, tmp_path / "artifacts", port=port)
    try:
        synced = subprocess.run(
            [sys.executable, "-m", "ario_mlflow.cli", "sync"],
            capture_output=True,
            text=True,
            check=False,
            timeout=180,
        )
        assert synced.returncode == 0, synced.stdout + synced.stderr
        tags = MlflowClient(second.url).get_run(run_id).data.tags
        assert tags["ario.training_tx"] == record.tx_id
    finally:
        second.stop()
