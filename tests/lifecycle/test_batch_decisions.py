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
from ario_mlflow.verify import verify_record
from tests.support.cli import invoke_cli
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
    # verify_record takes a receipt (object or JSON) and needs nothing else
    assert verify_record(receipt, None)["overall"] is True
    assert verify_record(receipt.to_json(), None)["overall"] is True
    failed = verify_record(forged, None)
    assert failed["overall"] is False
    assert "not in the signed window" in failed["inclusion"]["reason"]
    pinned_elsewhere = verify_record(receipt, None, trusted_keys=["ab" * 32])
    assert pinned_elsewhere["overall"] is False
    assert "untrusted_issuer" in pinned_elsewhere["issuer"]["reason"]


def test_a_batched_decision_inside_a_callers_trace_names_it_and_verifies_by_it(
    mlflow_store: str, local_gateway: Any
) -> None:
    model, _ = _serve(train())
    with mlflow.start_span("score-applicant") as span:
        inside = model.predict(ROW)
        trace_id = span.trace_id if hasattr(span, "trace_id") else span.request_id
    outside = model.predict(ROW)
    assert inside.record["mlflow_trace_id"] == trace_id
    assert "mlflow_trace_id" not in outside.record
    assert outside.wait_for_anchor(20), outside.anchor_error
    receipt = inside.receipt()
    assert receipt is not None
    assert receipt_problem(receipt) is None
    assert sync()
    flush = getattr(mlflow, "flush_trace_async_logging", None)
    if flush is not None:
        flush()  # the caller's trace, exported in the background
    code, out, err = invoke_cli(["verify", "trace", trace_id, "--format", "json"])
    assert code == 0, out + err
    report = json.loads(out)
    assert inside.decision_id in report["target"]
    assert report["checks"]["inclusion"]["ok"] is True


_FORKED = """
import json, os, sys
from ario_mlflow.lifecycle.serving import VerifiedModel
from tests.support.lifecycle import FEATURES

model = VerifiedModel("models:/credit@champion")
parent = model.predict(FEATURES.iloc[[0]])
read, write = os.pipe()
child = os.fork()
if child == 0:
    decided = model.predict(FEATURES.iloc[[1]])
    os.write(write, json.dumps([decided.stream_id, decided.seq, decided.decision_id]).encode())
    os._exit(0)
os.waitpid(child, 0)
other = json.loads(os.read(read, 4096))
last = model.predict(FEATURES.iloc[[2]])
print(json.dumps({"parent": [parent.stream_id, parent.seq, parent.decision_id],
                  "child": other, "last": [last.stream_id, last.seq, last.decision_id]}))
"""


def test_a_forked_child_decides_in_a_stream_of_its_own(
    mlflow_store: str, local_gateway: Any, ario_home: Path
) -> None:
    """Two processes numbering one stream would collide on sequence numbers (and one of
    them would lose its decisions): a fork opens a new stream."""
    import os
    import subprocess
    import sys

    from ario_mlflow.outbox.journal import Journal
    from ario_mlflow.outbox.leaves import receipt_for
    from tests.conftest import PROJECT_ROOT

    _serve(train())
    ran = subprocess.run(
        [sys.executable, "-c", _FORKED],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        cwd=PROJECT_ROOT,
        env=dict(os.environ),
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    made = json.loads(ran.stdout.strip().splitlines()[-1])
    assert made["child"][0] != made["parent"][0]
    assert made["child"][1] == 1  # its own numbering
    assert made["last"][0] == made["parent"][0]
    assert made["last"][1] == 2  # the parent's stream goes on where it was
    assert sync()
    journal = Journal.at_home(ario_home)
    for _, _, decision_id in made.values():
        receipt = receipt_for(journal, decision_id)
        assert receipt is not None, decision_id
        assert receipt_problem(receipt) is None
