"""``anchor()`` on a real MLflow store with the local gateway over HTTP."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.linear_model import LogisticRegression

from ario_mlflow.lifecycle.training import anchor
from ario_mlflow.outbox.anchor import ArweaveAnchor
from ario_mlflow.outbox.journal import Journal
from ario_mlflow.proof.canonical import canonical_json
from ario_mlflow.proof.commitment import verify_commitment
from ario_mlflow.proof.hashing import sha256_hex
from tests.support.cli import run_cli
from tests.support.lifecycle import log_sklearn_model

FEATURES = pd.DataFrame(np.random.default_rng(7).random((40, 3)), columns=["income", "debt", "age"])
LABELS = (FEATURES["income"] > 0.5).astype(int)


def _log_training(model_name: str = "model", registered: str | None = None) -> None:
    dataset = mlflow.data.from_pandas(FEATURES, source="s3://bank/train.parquet", name="train")
    mlflow.log_input(dataset, context="training")
    mlflow.log_param("C", 1.0)
    mlflow.log_metric("accuracy", 0.912345678)
    model = LogisticRegression().fit(FEATURES, LABELS)
    log_sklearn_model(
        model, model_name, registered_model_name=registered, pip_requirements=["scikit-learn"]
    )


def _artifact_bytes(run_id: str, path: str) -> bytes:
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path)
    return Path(local).read_bytes()


def _ario_tags(run_id: str) -> dict[str, str]:
    tags = MlflowClient().get_run(run_id).data.tags
    return {k: v for k, v in tags.items() if k.startswith("ario.")}


def test_anchor_end_to_end(mlflow_store: str, local_gateway: Any) -> None:
    with mlflow.start_run() as run:
        _log_training()
        result = anchor()
    run_id = run.info.run_id
    tx_id = result["tx_id"]
    assert result["anchor_result"]["tx_id"] == tx_id
    assert result["artifact_status"] == "hashed"
    assert result["artifact_path"] == "model"
    assert result["previous_hash"] == "GENESIS"
    checksums = result["payload"]["artifact_checksums"]
    assert "MLmodel" in checksums
    assert len({"model.skops", "model.pkl"} & set(checksums)) == 1  # MLflow 3 / MLflow 2
    assert result["payload"]["metrics"] == {"accuracy": 0.912346}
    assert result["payload"]["params"] == {"C": "1.0"}
    assert result["payload"]["artifact_path"] == "model"

    # the envelope on the gateway verifies against the run's payload witness
    envelope = ArweaveAnchor().fetch_proof(tx_id)
    assert envelope == result["envelope"]
    payload_bytes = _artifact_bytes(run_id, "ario/payload.json")
    assert payload_bytes == result["payload_bytes"] == canonical_json(result["payload"])
    assert verify_commitment(envelope, payload_bytes)["overall"] is True
    event_dir = f"ario/events/{envelope['event_id']}"
    assert _artifact_bytes(run_id, f"{event_dir}/payload.json") == payload_bytes
    assert json.loads(_artifact_bytes(run_id, "ario/proof.json")) == envelope
    assert json.loads(_artifact_bytes(run_id, "ario/receipt.json"))["id"] == tx_id
    report = _artifact_bytes(run_id, "ario/verification.html").decode()
    assert tx_id in report
    assert "training_complete" in report

    tags = _ario_tags(run_id)
    assert tags["ario.verify_status"] == "anchored"
    assert tags["ario.training_tx"] == tx_id
    assert tags["ario.arweave_url"] == f"{local_gateway.url}/{tx_id}"
    assert tags["ario.payload_hash"] == envelope["payload_hash"]
    assert tags["ario.public_key"] == envelope["public_key"]
    assert tags["ario.wallet_mode"] == "persistent"
    assert tags["ario.wallet_type"] == "solana"
    assert tags["ario.enabled"] == "true"  # the RunContextProvider plugin
    assert "ario.queued_tx" not in tags
    checksums = result["payload"]["artifact_checksums"]
    assert tags["ario.artifact_hash"] == sha256_hex(canonical_json(checksums))

    # one dataset event per input, with its run tag and witness
    (dataset,) = result["dataset_anchors"]
    assert dataset["dataset_name"] == "train"
    assert tags["ario.dataset_anchor_tx.train"] == dataset["tx_id"]
    (entry,) = result["payload"]["dataset_inputs"]
    assert entry["context"] == "training"
    rebuilt = {k: v for k, v in entry.items() if k != "context"} | {"event_type": "dataset"}
    assert canonical_json(rebuilt) == dataset["payload_bytes"]
    assert ArweaveAnchor().fetch_proof(dataset["tx_id"]) == dataset["envelope"]


def test_gateway_down_returns_in_time_and_sync_completes_the_tags(
    mlflow_store: str, local_gateway: Any, gateway_dir: Path
) -> None:
    from ario_mlflow.localgw import LocalGateway

    port = local_gateway.port
    local_gateway.stop()
    with mlflow.start_run() as run:
        _log_training()
        started = time.monotonic()
        result = anchor(deadline=1.0)
        elapsed = time.monotonic() - started
    assert elapsed < 8  # hashing + MLflow writes + a 1 s deadline
    assert result["anchor_result"] is None
    tags = _ario_tags(run.info.run_id)
    assert tags["ario.verify_status"] == "signed"
    assert tags["ario.queued_tx"] == result["tx_id"]
    assert "ario.training_tx" not in tags
    # the payload witness does not wait for the network
    assert _artifact_bytes(run.info.run_id, "ario/payload.json") == result["payload_bytes"]

    revived = LocalGateway(gateway_dir, port=port, key_bits=2048).start()
    try:
        synced = run_cli("sync")
        assert synced.returncode == 0, synced.stdout + synced.stderr
        tags = _ario_tags(run.info.run_id)
        assert tags["ario.training_tx"] == result["tx_id"]
        assert tags["ario.verify_status"] == "anchored"
        assert "ario.queued_tx" not in tags
        assert tags["ario.dataset_anchor_tx.train"] == result["dataset_anchors"][0]["tx_id"]
        assert ArweaveAnchor().fetch_proof(result["tx_id"]) == result["envelope"]
    finally:
        revived.stop()


def _nothing_happened(run_id: str, ario_home: Path) -> None:
    assert not any(
        k.startswith("ario.") and k not in {"ario.enabled", "ario.version"}
        for k in _ario_tags(run_id)
    )
    assert mlflow.artifacts.list_artifacts(run_id=run_id, artifact_path="ario") == []
    journal = ario_home / "journal.sqlite3"
    if journal.exists():
        assert Journal(journal).counts()["pending"] == 0
        assert Journal(journal).counts()["uploaded"] == 0


def test_nan_metric_is_refused_before_any_side_effect(
    mlflow_store: str, local_gateway: Any, ario_home: Path
) -> None:
    with mlflow.start_run() as run:
        _log_training()
        mlflow.log_metric("loss", float("nan"))
        with pytest.raises(ValueError, match="'loss'"):
            anchor()
    _nothing_happened(run.info.run_id, ario_home)


@pytest.mark.parametrize("infinity", [math.inf, -math.inf])
def test_infinite_metric_is_refused_before_any_side_effect(
    mlflow_store: str, local_gateway: Any, ario_home: Path, infinity: float
) -> None:
    """The sqlite store keeps infinity as +/-sys.float_info.max; that is refused like NaN."""
    with mlflow.start_run() as run:
        _log_training()
        mlflow.log_metric("loss", infinity)
        stored = MlflowClient().get_run(run.info.run_id).data.metrics["loss"]
        assert stored in (infinity, math.copysign(sys.float_info.max, infinity))
        with pytest.raises(ValueError, match=r"metric 'loss' is .*infinit"):
            anchor()
    _nothing_happened(run.info.run_id, ario_home)


def test_exact_latest_values_and_the_whole_history_are_committed(
    mlflow_store: str, local_gateway: Any
) -> None:
    """Every point of every metric, NaN and infinity included, and unrounded latest values;
    a huge but finite latest value is not mistaken for infinity."""
    big = math.nextafter(sys.float_info.max, 0.0)
    with mlflow.start_run() as run:
        _log_training()
        client = MlflowClient()
        for step, value in enumerate([math.nan, 0.7, math.inf, 0.25, 0.2500000001]):
            client.log_metric(run.info.run_id, "loss", value, timestamp=1000 + step, step=step)
        mlflow.log_metric("big", big)
        result = anchor()
    payload = result["payload"]
    assert payload["metrics"] == {"accuracy": 0.912346, "big": big, "loss": 0.25}
    assert payload["metrics_exact"] == {"accuracy": 0.912345678, "big": big, "loss": 0.2500000001}
    infinity = client.get_metric_history(run.info.run_id, "loss")[2].value  # as the store has it
    assert payload["metric_history"]["loss"] == [
        [0, 1000, "NaN"],
        [1, 1001, 0.7],
        [2, 1002, infinity],
        [3, 1003, 0.25],
        [4, 1004, 0.2500000001],
    ]
    assert [point[2] for point in payload["metric_history"]["big"]] == [big]
    assert set(payload["metric_history"]) == {"accuracy", "big", "loss"}
    assert b'"metrics_exact":{"accuracy":0.912345678,' in result["payload_bytes"]


def test_bad_metadata_is_refused_before_any_side_effect(
    mlflow_store: str, local_gateway: Any, ario_home: Path
) -> None:
    with mlflow.start_run() as run:
        _log_training()
        with pytest.raises(ValueError, match="'owner'"):
            anchor(metadata={"ticket": "CHG-1", "owner": object()})
    _nothing_happened(run.info.run_id, ario_home)


def test_datasets_are_required_unless_allowed(mlflow_store: str, local_gateway: Any) -> None:
    with mlflow.start_run():
        log_sklearn_model(
            LogisticRegression().fit(FEATURES, LABELS), "model", pip_requirements=["sklearn"]
        )
        with pytest.raises(ValueError, match=r"mlflow\.log_input"):
            anchor()
        result = anchor(allow_empty_dataset_inputs=True)
    assert result["payload"]["dataset_inputs"] == []
    assert result["dataset_anchors"] == []


def test_outside_a_run_is_a_clear_error(mlflow_store: str, local_gateway: Any) -> None:
    with pytest.raises(RuntimeError, match="inside an active MLflow run"):
        anchor()


def test_reanchoring_keeps_every_earlier_record(mlflow_store: str, local_gateway: Any) -> None:
    with mlflow.start_run() as run:
        _log_training()
        first = anchor()
        mlflow.log_metric("accuracy", 0.95)
        second = anchor()
    run_id = run.info.run_id
    for result in (first, second):
        folder = f"ario/events/{result['envelope']['event_id']}"
        data = _artifact_bytes(run_id, f"{folder}/payload.json")
        assert verify_commitment(result["envelope"], data)["overall"] is True
    assert first["payload_bytes"] != second["payload_bytes"]
    assert _artifact_bytes(run_id, "ario/payload.json") == second["payload_bytes"]


def test_several_models_need_an_explicit_path(mlflow_store: str, local_gateway: Any) -> None:
    with mlflow.start_run():
        _log_training("classifier")
        log_sklearn_model(
            LogisticRegression(C=2).fit(FEATURES, LABELS), "challenger", pip_requirements=[]
        )
        with pytest.raises(ValueError, match="multiple model artifact paths"):
            anchor()
        result = anchor(artifact_path="challenger")
    assert result["artifact_path"] == "challenger"
    assert result["payload"]["artifact_path"] == "challenger"
    assert "MLmodel" in result["payload"]["artifact_checksums"]


def test_training_chain_through_the_registered_model(mlflow_store: str, local_gateway: Any) -> None:
    with mlflow.start_run():
        _log_training(registered="credit-scorer")
        first = anchor()
    assert first["registered_model"] == "credit-scorer"
    assert first["previous_hash"] == "GENESIS"
    head = MlflowClient().get_registered_model("credit-scorer").tags["ario.last_training_hash"]
    assert head == first["payload_hash"]
    with mlflow.start_run():
        _log_training(registered="credit-scorer")
        second = anchor()
    assert second["previous_hash"] == first["payload_hash"]


def test_metadata_tracking_uri_and_otel(mlflow_store: str, local_gateway: Any) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("test")
    with mlflow.start_run(), tracer.start_as_current_span("training") as span:
        _log_training()
        result = anchor(
            metadata={"ticket": "CHG-7", "run_id": "spoofed", "include_tracking_uri": True}
        )
        context = span.get_span_context()
    payload = result["payload"]
    assert payload["ticket"] == "CHG-7"
    assert payload["run_id"] != "spoofed"
    assert "include_tracking_uri" not in payload
    assert payload["mlflow_tracking_uri"] == mlflow_store
    assert result["envelope"]["subject"]["tracking_uri"] == mlflow_store
    assert payload["otel_trace_id"] == format(context.trace_id, "032x")
    assert payload["otel_span_id"] == format(context.span_id, "016x")
    assert trace  # imported for the side effect of a real OTel API


def test_standalone_live_dataset_without_a_run(mlflow_store: str, local_gateway: Any) -> None:
    dataset = mlflow.data.from_pandas(FEATURES, source="s3://bank/holdout.parquet", name="holdout")
    result = anchor(dataset=dataset)
    payload = json.loads(result["payload_bytes"])
    assert payload["event_type"] == "dataset"
    assert payload["name"] == "holdout"
    assert payload["digest"] == dataset.digest
    assert "context" not in payload
    assert result["previous_hash"] == "GENESIS"
    assert result["anchor_result"]["tx_id"] == result["tx_id"]
    assert result["envelope"]["subject"] == {
        "type": "mlflow_dataset",
        "name": "holdout",
        "digest": dataset.digest,
    }
    assert verify_commitment(result["envelope"], result["payload_bytes"])["overall"] is True


def test_standalone_dataset_in_a_run_stores_a_witness(
    mlflow_store: str, local_gateway: Any
) -> None:
    with mlflow.start_run() as run:
        mlflow.log_input(mlflow.data.from_numpy(np.arange(6.0), name="vec"), context="eval")
        logged = MlflowClient().get_run(run.info.run_id).inputs.dataset_inputs[0].dataset
        result = anchor(dataset=logged)
    folder = f"ario/events/{result['envelope']['event_id']}"
    assert _artifact_bytes(run.info.run_id, f"{folder}/payload.json") == result["payload_bytes"]
    assert _ario_tags(run.info.run_id)["ario.dataset_anchor_tx.vec"] == result["tx_id"]


def test_not_a_dataset_is_a_clear_error(mlflow_store: str, local_gateway: Any) -> None:
    with pytest.raises(ValueError, match="expected an MLflow dataset"):
        anchor(dataset={"name": "x"})


def test_a_legacy_duck_typed_anchor_still_works(mlflow_store: str, ario_home: Path) -> None:
    uploaded: list[dict[str, Any]] = []

    class Recorder:
        enabled = True
        wallet_mode = "user-configured"

        def upload_proof(self, proof: dict[str, Any]) -> dict[str, Any]:
            uploaded.append(proof)
            return {"tx_id": "T" * 43, "url": "https://g/" + "T" * 43, "receipt": None}

    with mlflow.start_run():
        _log_training()
        result = anchor(arweave=Recorder())
    assert result["anchor_result"]["tx_id"] == "T" * 43
    assert [p["event_type"] for p in uploaded] == ["dataset", "training_complete"]


def test_the_span_precheck_is_empty_outside_spans_and_not_inside(mlflow_store: str) -> None:
    """The predict hot path skips the MLflow/OTel span lookups only when no span can exist."""
    from opentelemetry.sdk.trace import TracerProvider

    from ario_mlflow.lifecycle.otel import no_span_can_be_active

    assert no_span_can_be_active()  # else the hot path pays ~100 µs of lookups per decision
    with mlflow.start_span("mlflow-span"):
        assert not no_span_can_be_active()
    with TracerProvider().get_tracer("t").start_as_current_span("otel-span"):
        assert not no_span_can_be_active()


def test_the_span_precheck_asked_before_mlflow_is_imported_still_sees_mlflow_spans(
    tmp_path: Path,
) -> None:
    code = (
        "from ario_mlflow.lifecycle.otel import no_span_can_be_active\n"
        "assert no_span_can_be_active()\n"  # asked before MLflow is imported
        "import mlflow\n"
        f"mlflow.set_tracking_uri('sqlite:///{tmp_path}/m.db')\n"
        "with mlflow.start_span('s'):\n"
        "    assert not no_span_can_be_active()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
