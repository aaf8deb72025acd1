"""``batch`` decisions end to end: real MLflow store, local gateway, companion process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import pytest

from ario_mlflow.lifecycle.serving import VerifiedModel
from ario_mlflow.outbox.anchor import ArweaveAnchor
from ario_mlflow.proof.merkle import leaf_hash
from ario_mlflow.proof.windows import Receipt, receipt_problem
from tests.support.lifecycle import FEATURES, Trained, register, set_alias, sync, train

ROW = FEATURES.iloc[[0]]


def _serve(trained: Trained, **options: Any) -> tuple[VerifiedModel, str]:
    client = register("credit", trained)
    set_alias(client, "credit", "champion", "1", wait=False)
    registration = client.anchor_status("registration", "credit", "1")["tx_id"]
    return VerifiedModel("models:/credit@champion", **options), registration


@pytest.mark.parametrize("background", ["process", "thread"])
def test_a_batched_decision_is_in_a_signed_anchored_window(
    mlflow_store: str, local_gateway: Any, background: str
) -> None:
    trained = train()
    model, registration = _serve(trained, background=background)
    assert model.decisions == "batch"
    first = model.predict(ROW)
    second = model.predict(ROW)
    assert first.proof_status == "pending"
    assert (first.seq, second.seq) == (1, 2)
    assert first.stream_id == second.stream_id == model.stream_id
    assert first.record["decided_at"]
    assert first.leaf_hash is not None

    assert second.wait_for_anchor(20), second.anchor_error
    assert second.proof_status == "anchored"
    receipt = second.receipt()
    assert receipt is not None
    assert receipt_problem(receipt) is None
    assert receipt.tx_id == second.tx_id
    assert leaf_hash(receipt.payload_bytes).hex() == second.leaf_hash
    manifest = receipt.manifest
    assert manifest["registration_tx"] == registration
    assert (manifest["model_name"], manifest["model_version"]) == ("credit", "1")
    assert manifest["first_seq"] == 1
    assert manifest["last_seq"] == 2
    assert manifest["closed_by"] == "request"
    assert receipt.envelope["previous_hash"] == "GENESIS"  # the stream's first window
    # the window's record on the gateway is the one the receipt holds
    assert ArweaveAnchor().fetch_proof(receipt.tx_id) == receipt.envelope
    # both decisions are in it; the first one's receipt verifies too
    first_receipt = first.receipt()
    assert first_receipt is not None
    assert receipt_problem(first_receipt) is None
    assert first_receipt.leaf_index == 0

    assert sync()  # the window's witness reaches MLflow
    folder = f"ario/windows/{model.stream_id}/{1:012d}-{2:012d}"
    local = Path(mlflow.artifacts.download_artifacts(run_id=trained.run_id, artifact_path=folder))
    lines = (local / "decisions.jsonl").read_bytes().splitlines()
    assert lines == [first_receipt.payload_bytes, receipt.payload_bytes]
    assert (local / "manifest.json").read_bytes() == receipt.manifest_bytes
    assert json.loads((local / "record.json").read_text())["tx_id"] == receipt.tx_id


def test_a_tampered_receipt_fails_with_its_reason(mlflow_store: str, local_gateway: Any) -> None:
    model, _ = _serve(train())
    decided = model.predict(ROW)
    assert decided.wait_for_anchor(20), decided.anchor_error
    receipt = decided.receipt()
    assert receipt is not None
    edited = receipt.payload_bytes.replace(b'"sequence":1', b'"sequence":7')
    forged = Receipt(**{**receipt.__dict__, "payload_bytes": edited})
    assert "not in the signed window" in str(receipt_problem(forged))
    again = Receipt.from_json(json.loads(json.dumps(receipt.to_json())))
    assert receipt_problem(again) is None
