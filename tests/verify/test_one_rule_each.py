"""Each domain rule has one home, and every caller gets the same answer from it.

The rules: the expected chain link (proof/chain), the witness layout (lifecycle/witness),
the lineage's stages (verify/stages), the record checks (proof/checks), the files rule
(proof/checksums + lifecycle/model_files) and the verifier's wiring (verify/context).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import pytest

from ario_mlflow.engine import ProofEngine
from ario_mlflow.lifecycle import witness
from ario_mlflow.lifecycle.registry import ArioMlflowClient
from ario_mlflow.lifecycle.training import anchor
from ario_mlflow.outbox.anchor import ArweaveAnchor
from ario_mlflow.proof import chain, payloads
from ario_mlflow.proof.checks import record_problem
from ario_mlflow.proof.checksums import anchored_artifact_path, compare_checksums
from tests.support.cli import invoke_cli, run_cli
from tests.support.lifecycle import FEATURES, LABELS, log_sklearn_model

DEAD = "http://127.0.0.1:9"


def _train_with_a_parked_upload() -> str:
    """A trained run whose training record is journaled for a dead service and parked
    after one attempt: signed, queued (``ario.queued_tx``), never uploaded."""
    from sklearn.linear_model import LogisticRegression

    with mlflow.start_run() as run:
        mlflow.log_input(mlflow.data.from_pandas(FEATURES, source="s3://t", name="train"))
        log_sklearn_model(LogisticRegression().fit(FEATURES, LABELS), "model")
        result = anchor(None, ArweaveAnchor(upload_url=DEAD))
    assert result["anchor_result"] is None
    assert mlflow.MlflowClient().get_run(run.info.run_id).data.tags["ario.queued_tx"]
    return str(run.info.run_id)


def test_audit_and_verify_model_agree_while_the_training_upload_is_queued(
    mlflow_store: str, local_gateway: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The registration follows the *queued* training TX. ``verify model`` took the queued
    TX as the expected link, while ``audit`` (on a machine without the journal, which
    cannot find the training record yet) expected GENESIS and called it broken."""
    monkeypatch.setenv("ARIO_MLFLOW_MAX_ATTEMPTS", "1")
    run_id = _train_with_a_parked_upload()
    client = ArioMlflowClient()
    client.create_registered_model("credit")
    client.create_model_version("credit", f"runs:/{run_id}/model", run_id=run_id)
    assert client.wait_for_anchor("registration", "credit", "1", timeout=30)
    assert client.anchor_status("registration", "credit", "1")["status"] == "anchored"
    auditor = {"ARIO_MLFLOW_HOME": str(tmp_path / "auditor")}  # no journal there

    verified = run_cli("verify", "model", "credit/1", "--format", "json", env=auditor)
    audited = run_cli("audit", "credit/1", "--format", "json", env=auditor)
    verify_chain = json.loads(verified.stdout)["checks"]["chain"]
    registration = next(
        s for s in json.loads(audited.stdout)["stages"] if s["stage"] == "registration"
    )
    assert verify_chain["ok"] is True, verify_chain
    assert registration["checks"]["chain"] == {"ok": True, "reason": ""}
    assert audited.returncode == 1  # the training record is still not on chain


@pytest.mark.parametrize(
    ("event_type", "subject", "legacy"),
    [
        (payloads.TRAINING, {"type": "mlflow_run", "run_id": "r"}, "ario/payload.json"),
        (
            payloads.REGISTRATION,
            {"type": "mlflow_model_version", "name": "m", "version": "1"},
            "ario/registration_payload.json",
        ),
        (
            payloads.PROMOTION,
            {"type": "mlflow_model_version", "name": "m", "version": "1"},
            "ario/promotions/{id}/payload.json",
        ),
        (
            payloads.ALIAS,
            {"type": "mlflow_model_version", "name": "m", "version": "1"},
            "ario/aliases/{id}/payload.json",
        ),
        (payloads.DATASET, {"type": "mlflow_dataset", "name": "d"}, None),
    ],
)
def test_every_witness_written_is_where_verifiers_look(
    event_type: str, subject: dict[str, str], legacy: str | None
) -> None:
    envelope = ProofEngine().create_commitment(
        event_type=event_type, subject=subject, payload_bytes=b"{}", previous_hash="GENESIS"
    )
    written = {
        f"ario/{p}" for p, data in witness.witness_files(envelope, b"{}").items() if data == b"{}"
    }
    looked = witness.payload_paths(envelope)
    own = f"ario/events/{envelope['event_id']}/payload.json"
    assert looked[0] == own
    assert set(looked) == written  # every payload written is read, and nothing else
    if legacy is not None:
        assert legacy.format(id=envelope["event_id"]) in looked


def test_a_decision_witness_is_where_verifiers_look() -> None:
    subject = {"type": "mlflow_prediction", "decision_id": "d-1", "model_run_id": "r"}
    envelope = ProofEngine().create_commitment(
        event_type=payloads.PREDICTION,
        subject=subject,
        payload_bytes=b"{}",
        previous_hash="GENESIS",
    )
    written = witness.decision_files("d-1", b"{}", envelope)
    assert witness.payload_paths(envelope)[0] == "ario/" + next(
        p for p in written if p.endswith("payload.json")
    )


@pytest.mark.parametrize(
    ("event_type", "expected"),
    [
        (payloads.DATASET, "GENESIS"),
        (payloads.REGISTRATION, "T"),
        (payloads.PROMOTION, "R"),
        (payloads.ALIAS, "R"),
        (payloads.PREDICTION, "R"),
        (payloads.TRAINING, None),
    ],
)
def test_the_chain_rule(event_type: str, expected: str | None) -> None:
    assert chain.expected_previous(event_type, training_tx="T", registration_tx="R") == expected


def test_the_chain_rule_without_the_records_it_follows() -> None:
    assert chain.expected_previous(payloads.REGISTRATION) == "GENESIS"
    assert chain.expected_previous(payloads.PREDICTION) == "GENESIS"
    assert chain.STAGE_EVENTS["registration"] == payloads.REGISTRATION
    assert {chain.EVENT_STAGES[e] for e in chain.STAGE_EVENTS.values()} == set(chain.STAGE_EVENTS)


def test_the_files_rule() -> None:
    assert anchored_artifact_path({}) == "model"  # a 0.3.0 record names no directory
    assert anchored_artifact_path({"artifact_path": "/clf/"}) == "clf"
    diff = compare_checksums({"a": "1", "b": "2"}, {"a": "1", "b": "3", "c": "4"})
    assert (diff.changed, diff.missing, diff.added, diff.ok) == (["b"], [], ["c"], False)
    assert str(diff) == "changed: b; added: c"


def test_the_record_checks() -> None:
    engine = ProofEngine()
    envelope = engine.create_commitment(
        event_type=payloads.TRAINING,
        subject={"type": "mlflow_run", "run_id": "r1"},
        payload_bytes=b"{}",
        previous_hash="GENESIS",
    )
    key = envelope["public_key"]
    ok = {"event_type": payloads.TRAINING, "subject": {"run_id": "r1"}}
    assert record_problem(envelope, **ok, trusted_keys=()) is None
    assert record_problem(envelope, **ok, trusted_keys=(key.upper(),)) is None
    assert "not a trusted key" in str(record_problem(envelope, **ok, trusted_keys=("0" * 64,)))
    wrong_run = {**ok, "subject": {"run_id": "r2"}}
    assert record_problem(envelope, **wrong_run, trusted_keys=()) == (
        "record is about run_id='r1' not run_id='r2'"
    )
    wrong_type = {**ok, "event_type": payloads.REGISTRATION}
    assert "not model_registered" in str(record_problem(envelope, **wrong_type, trusted_keys=()))
    forged = {**envelope, "payload_hash": "0" * 64}
    assert "does not verify" in str(record_problem(forged, **ok, trusted_keys=()))


@pytest.mark.parametrize(
    "command",
    [
        ["verify", "run", "r", "--trusted-key", "NOTAKEY"],
        ["audit", "m/1", "--trusted-key", "NOTAKEY"],
        ["verify-bundle", ".", "--trusted-key", "NOTAKEY"],
    ],
)
def test_every_verifier_pins_keys_the_same_way(command: list[str]) -> None:
    """One wiring (verify/context): a key that is not an Ed25519 public key is refused
    by name everywhere (``verify-bundle`` used to lowercase it and go on)."""
    code, _, err = invoke_cli(command)
    assert code == 2
    assert "--trusted-key holds 'NOTAKEY', which is not a 64-hex Ed25519 public key" in err
