"""Verification API and ``ar-io-mlflow verify`` on real records, including the tamper cases
of reference §10.1 (each must fail with a precise reason)."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Any

import mlflow
import pytest
from sklearn.linear_model import LogisticRegression

from ario_mlflow.lifecycle.registry import ArioMlflowClient
from ario_mlflow.lifecycle.serving import VerifiedModel
from ario_mlflow.lifecycle.training import anchor
from ario_mlflow.outbox.anchor import ArweaveAnchor
from ario_mlflow.outbox.sync import sync_journal
from ario_mlflow.proof.canonical import canonical_json
from ario_mlflow.proof.ed25519 import signing_key_from_seed
from ario_mlflow.proof.envelope import sign_envelope
from ario_mlflow.verify import full_verify, verify_proof_by_tx, verify_record
from ario_mlflow.verify.checks import verify_source_of_truth
from tests.conftest import VECTORS_DIR
from tests.support.cli import run_cli
from tests.support.lifecycle import (
    FEATURES,
    LABELS,
    local_model_dir,
    log_sklearn_model,
    serialized_model,
    trace_id_of,
    train,
)


def _verify_json(*args: str) -> tuple[int, dict[str, Any]]:
    result = run_cli("verify", *args, "--format", "json")
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


@pytest.mark.parametrize(
    "record", sorted(p.name for p in (VECTORS_DIR / "original-0.3.0").iterdir())
)
def test_reference_records_verify_offline(record: str) -> None:
    folder = VECTORS_DIR / "original-0.3.0" / record
    envelope = json.loads((folder / "envelope.json").read_bytes())
    result = verify_record(envelope, (folder / "payload.bin").read_bytes(), trusted_keys=())
    assert result["overall"] is True
    assert result["issuer"]["ok"] is None
    assert "unpinned key" in result["issuer"]["reason"]
    pinned = verify_record(
        envelope, (folder / "payload.bin").read_bytes(), trusted_keys=(envelope["public_key"],)
    )
    assert pinned["issuer"]["ok"] is True
    other = verify_record(
        envelope, (folder / "payload.bin").read_bytes(), trusted_keys=("ab" * 32,)
    )
    assert other["overall"] is False
    assert other["issuer"]["reason"].startswith("untrusted_issuer")


def test_offline_verification_reads_only_the_pinned_keys_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unrelated bad setting (the upload URL) must not break an offline verifier."""
    folder = next((VECTORS_DIR / "original-0.3.0").iterdir())
    envelope = json.loads((folder / "envelope.json").read_bytes())
    payload = (folder / "payload.bin").read_bytes()
    monkeypatch.setenv("ARIO_MLFLOW_UPLOAD_URL", "not-a-url")
    assert verify_record(envelope, payload)["overall"] is True
    monkeypatch.setenv("ARIO_MLFLOW_TRUSTED_KEYS", "ab" * 32)
    assert verify_record(envelope, payload)["issuer"]["reason"].startswith("untrusted_issuer")


def test_every_verify_command_passes_on_honest_records(
    mlflow_store: str, local_gateway: Any
) -> None:
    trained = train()
    client = ArioMlflowClient()
    client.create_registered_model("credit")
    client.create_model_version("credit", trained.model_uri, run_id=trained.run_id)
    assert client.wait_for_anchor("registration", "credit", "1", timeout=30)
    model = VerifiedModel("models:/credit/1")
    decision = model.predict(FEATURES.iloc[[0]])
    assert decision.wait_for_anchor(15)
    assert sync_journal(ArweaveAnchor().journal).complete

    code, run = _verify_json("run", trained.run_id)
    assert code == 0, run
    assert run["overall"] is True
    assert run["checks"]["subject"]["ok"] is True
    assert run["tx_id"] == trained.anchored["tx_id"]
    code, registration = _verify_json("model", "credit/1")
    assert code == 0, registration
    assert registration["checks"]["chain"]["ok"] is True  # linked to the training TX
    code, by_decision = _verify_json("decision", decision.decision_id)
    assert code == 0, by_decision
    assert by_decision["checks"]["source_of_truth"]["ok"] is True
    dataset_tx = trained.anchored["dataset_anchors"][0]["tx_id"]
    code, dataset = _verify_json("dataset", trained.run_id, "train")
    assert code == 0, dataset
    assert dataset["tx_id"] == dataset_tx
    code, _ = _verify_json("tx", trained.anchored["tx_id"])
    assert code == 0
    text = run_cli("verify", "run", trained.run_id)
    assert "Training Record Matches" in text.stdout
    assert "unpinned key" in text.stdout
    pinned = run_cli("verify", "run", trained.run_id, "--trusted-key", "ab" * 32)
    assert pinned.returncode == 1
    assert "untrusted_issuer" in pinned.stdout


def test_edited_metric_fails_live_state(mlflow_store: str, local_gateway: Any) -> None:
    trained = train()
    mlflow.MlflowClient().log_metric(trained.run_id, "accuracy", 0.99)
    code, result = _verify_json("run", trained.run_id)
    assert code == 1
    assert result["checks"]["source_of_truth"]["reason"] == (
        "live_mlflow_mismatch: metric_history, metrics, metrics_exact"
    )


LOSS = [math.nan, 0.6, 0.4, 0.3, 0.25]  # MLflow keeps NaN points in a history


def _train_with_history() -> dict[str, Any]:
    """An anchored run whose ``loss`` has five steps and whose ``lr`` is below 5e-7."""
    with mlflow.start_run() as run:
        dataset = mlflow.data.from_pandas(FEATURES, source="s3://bank/train.parquet", name="train")
        mlflow.log_input(dataset, context="training")
        client = mlflow.MlflowClient()
        for step, value in enumerate(LOSS):
            client.log_metric(run.info.run_id, "loss", value, timestamp=1000 + step, step=step)
        mlflow.log_metric("lr", 3e-7)
        mlflow.log_metric("accuracy", 0.93)
        model = LogisticRegression().fit(FEATURES, LABELS)
        log_sklearn_model(model, "model", pip_requirements=["scikit-learn"])
        result: dict[str, Any] = anchor()
    return {"run_id": run.info.run_id, **result}


def _sql(store: str, statement: str, *parameters: object) -> None:
    """Edit the sqlite tracking store behind MLflow's back, as an insider could."""
    with sqlite3.connect(store.removeprefix("sqlite:///")) as connection:
        assert connection.execute(statement, parameters).rowcount > 0, statement


def test_an_honest_metric_history_verifies(mlflow_store: str, local_gateway: Any) -> None:
    trained = _train_with_history()
    history = trained["payload"]["metric_history"]["loss"]
    assert [point[2] for point in history] == ["NaN", *LOSS[1:]]
    code, result = _verify_json("run", trained["run_id"])
    assert code == 0, result
    live = result["checks"]["source_of_truth"]
    assert live["ok"] is True
    assert {"metric_history", "metrics_exact"} <= set(live["live_fields_refetched"])


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE metrics SET value = 0.35 WHERE run_uuid = ? AND key = 'loss' AND step = 2",
        "UPDATE metrics SET is_nan = 0 WHERE run_uuid = ? AND key = 'loss' AND step = 0",
        "DELETE FROM metrics WHERE run_uuid = ? AND key = 'loss' AND step = 1",
        "UPDATE metrics SET timestamp = 999 WHERE run_uuid = ? AND key = 'loss' AND step = 3",
    ],
    ids=["value", "nan-cleared", "deleted", "timestamp"],
)
def test_an_edited_earlier_step_fails_naming_metric_history(
    mlflow_store: str, local_gateway: Any, statement: str
) -> None:
    """The latest value (all 0.3.0 committed) is untouched; only the history changes."""
    trained = _train_with_history()
    _sql(mlflow_store, statement, trained["run_id"])
    code, result = _verify_json("run", trained["run_id"])
    assert code == 1
    live = result["checks"]["source_of_truth"]
    assert live["ok"] is False
    assert live["reason"] == "live_mlflow_mismatch: metric_history"


@pytest.mark.parametrize(
    ("key", "step", "value"),
    [("loss", 4, 0.25 + 1e-9), ("lr", 0, 1e-7)],
    ids=["1e-9-change", "below-5e-7"],
)
def test_a_change_rounding_hides_fails_naming_metrics_exact(
    mlflow_store: str, local_gateway: Any, key: str, step: int, value: float
) -> None:
    """A latest value changed consistently in both tables, by less than six decimals show."""
    trained = _train_with_history()
    run_id = trained["run_id"]
    where = "WHERE run_uuid = ? AND key = ?"
    _sql(
        mlflow_store, f"UPDATE metrics SET value = ? {where} AND step = ?", value, run_id, key, step
    )
    _sql(mlflow_store, f"UPDATE latest_metrics SET value = ? {where}", value, run_id, key)
    assert mlflow.MlflowClient().get_run(run_id).data.metrics[key] == value
    code, result = _verify_json("run", run_id)
    assert code == 1
    live = result["checks"]["source_of_truth"]
    assert "metrics_exact" in live["reason"]
    assert live["mismatched_fields"] == ["metric_history", "metrics_exact"]  # not `metrics`


def test_a_0_3_0_shaped_training_payload_still_rebuilds_byte_identically(
    mlflow_store: str, local_gateway: Any
) -> None:
    """A payload without the new keys (as 0.3.0 wrote them) is rebuilt without them."""
    trained = _train_with_history()
    new_keys = ("metrics_exact", "metric_history", "artifact_path")
    old_shape = {k: v for k, v in trained["payload"].items() if k not in new_keys}
    payload_bytes = canonical_json(old_shape)
    live = verify_source_of_truth(trained["envelope"], payload_bytes, mlflow.MlflowClient())
    assert live["ok"] is True, live
    assert live["rebuilt_bytes"] == payload_bytes
    assert not set(new_keys) & set(live["live_fields_refetched"])
    # ... so such a record cannot see history edits: only newer records commit history
    _sql(mlflow_store, "DELETE FROM metrics WHERE run_uuid = ? AND step = 1", trained["run_id"])
    again = verify_source_of_truth(trained["envelope"], payload_bytes, mlflow.MlflowClient())
    assert again["ok"] is True
    current = verify_source_of_truth(
        trained["envelope"], trained["payload_bytes"], mlflow.MlflowClient()
    )
    assert current["mismatched_fields"] == ["metric_history"]


def test_swapped_artifact_fails_live_state(mlflow_store: str, local_gateway: Any) -> None:
    trained = train()
    model_file = serialized_model(local_model_dir(trained.model_uri))
    model_file.write_bytes(model_file.read_bytes() + b"!")
    code, result = _verify_json("run", trained.run_id)
    assert code == 1
    assert "artifact_checksums" in result["checks"]["source_of_truth"]["reason"]


def test_proof_of_another_run_fails_subject_binding(mlflow_store: str, local_gateway: Any) -> None:
    victim, other = train(), train()
    mlflow.MlflowClient().set_tag(victim.run_id, "ario.training_tx", other.anchored["tx_id"])
    code, result = _verify_json("run", victim.run_id)
    assert code == 1
    assert result["checks"]["subject"]["reason"].startswith("subject_mismatch")


def test_resigned_record_with_moved_tags(
    mlflow_store: str, local_gateway: Any, tmp_path: Path
) -> None:
    """An attacker with MLflow write access re-signs the payload with their own key,
    uploads it, and points the run's tag at it."""
    trained = train()
    mlflow.MlflowClient().log_metric(trained.run_id, "accuracy", 0.99)
    attacker = signing_key_from_seed(bytes(range(1, 33)))
    forged_payload = json.loads(trained.anchored["payload_bytes"])
    forged_payload["metrics"]["accuracy"] = 0.99
    payload_bytes = canonical_json(forged_payload)
    run_dir = Path(mlflow.get_run(trained.run_id).info.artifact_uri.replace("file://", ""))
    envelope = {
        k: v
        for k, v in trained.anchored["envelope"].items()
        if k not in ("signature", "public_key")
    }
    envelope["payload_hash"] = __import__("hashlib").sha256(payload_bytes).hexdigest()
    forged = sign_envelope(envelope, attacker)
    witness = run_dir / "ario" / "events" / forged["event_id"] / "payload.json"
    witness.write_bytes(payload_bytes)
    (run_dir / "ario" / "payload.json").write_bytes(payload_bytes)
    result = ArweaveAnchor(deadline=10).upload_proof(forged)
    assert result is not None
    mlflow.MlflowClient().set_tag(trained.run_id, "ario.training_tx", result["tx_id"])

    code, unpinned = _verify_json("run", trained.run_id)
    issuer = unpinned["checks"]["issuer"]
    assert issuer["ok"] is None
    assert issuer["fingerprint"] in issuer["reason"]
    assert "signed by an unpinned key" in issuer["reason"]
    honest_key = trained.anchored["envelope"]["public_key"]
    code, pinned = _verify_json("run", trained.run_id, "--trusted-key", honest_key)
    assert code == 1
    assert pinned["checks"]["issuer"]["reason"].startswith("untrusted_issuer")


def _synced(rounds: int = 3) -> bool:
    """Sync until nothing is left: a write-back that fails once is retried, by design."""
    return any(sync_journal(ArweaveAnchor().journal).complete for _ in range(rounds))


def test_edited_trace_mirror_fails(mlflow_store: str, local_gateway: Any) -> None:
    trained = train()
    model = VerifiedModel(trained.model_uri, decisions="each")
    decision = model.predict(FEATURES.iloc[[1]])
    assert decision.wait_for_anchor(15)
    assert _synced()
    client = mlflow.MlflowClient()
    (trace,) = [
        t
        for t in client.search_traces(experiment_ids=["0"])
        if t.info.tags.get("ario.decision_id") == decision.decision_id
    ]
    mirror = json.loads(trace.info.tags["ario.payload_json"])
    del mirror["latency_ms"]  # pruning a key passed the reference's check
    client.set_trace_tag(trace_id_of(trace), "ario.payload_json", canonical_json(mirror).decode())
    code, result = _verify_json("trace", trace_id_of(trace))
    assert code == 1
    assert result["checks"]["source_of_truth"]["reason"] == "live_refetch_incomplete"
    assert "latency_ms" in result["checks"]["source_of_truth"]["detail"]


def test_deleted_tag_and_unknown_targets(mlflow_store: str, local_gateway: Any) -> None:
    trained = train()
    mlflow.MlflowClient().delete_tag(trained.run_id, "ario.training_tx")
    result = run_cli("verify", "run", trained.run_id)
    assert result.returncode == 1
    assert "Not anchored" in result.stdout
    missing = run_cli("verify", "run", "0" * 32)
    assert missing.returncode == 2
    assert "not found" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad = run_cli("verify", "model", "no-version")
    assert bad.returncode == 2


def test_tampered_gateway_bytes_are_detected(mlflow_store: str, local_gateway: Any) -> None:
    trained = train()
    local_gateway.set_faults(read={"tamper": True})
    result = verify_proof_by_tx(trained.anchored["tx_id"], mlflow_client=mlflow.MlflowClient())
    assert result["proof_found"] is False
    assert "X-AR-IO-Digest" in (result["fetch_error"] or "")


def test_full_verify_without_mlflow_is_not_ok_for_mlflow_bound_events(
    mlflow_store: str, local_gateway: Any
) -> None:
    trained = train()
    result = full_verify(trained.anchored["envelope"])
    assert result["signature"]["ok"] is True
    assert result["anchored_bytes"]["reason"] == "no_mlflow_client"
    assert result["overall"] is False
