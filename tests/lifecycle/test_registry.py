"""``ArioMlflowClient`` on a real MLflow store with the local gateway."""

from __future__ import annotations

import getpass
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import mlflow
import pytest

from ario_mlflow.lifecycle.registry import ArioMlflowClient, register_model
from ario_mlflow.outbox.anchor import ArweaveAnchor
from ario_mlflow.proof.commitment import verify_commitment
from tests.support.lifecycle import local_model_dir, product_threads, serialized_model, sync, train


def _witness(run_id: str, path: str) -> bytes:
    return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path)).read_bytes()


def _fetch(tx_id: str) -> dict[str, Any]:
    envelope = ArweaveAnchor().fetch_proof(tx_id)
    assert envelope is not None
    return envelope


def test_register_promote_alias_end_to_end(mlflow_store: str, local_gateway: Any) -> None:
    trained = train()
    client = ArioMlflowClient()
    client.create_registered_model("credit")
    started = time.monotonic()
    version = client.create_model_version("credit", trained.model_uri, run_id=trained.run_id)
    assert time.monotonic() - started < 1.0  # MLflow's answer at once
    assert client.wait_for_anchor("registration", "credit", version.version, timeout=30)
    status = client.anchor_status("registration", "credit", version.version)
    assert status["status"] == "anchored"
    assert status["done"] is True
    registration_tx = status["tx_id"]

    tags = client.get_model_version("credit", version.version).tags
    assert tags["ario.registration_tx"] == registration_tx
    assert tags["ario.verify_status"] == "anchored"
    assert tags["ario.artifact_verified"] == "true"
    envelope = _fetch(registration_tx)
    assert envelope["previous_hash"] == trained.anchored["tx_id"]  # chained to training
    assert envelope["subject"] == {"type": "mlflow_model_version", "name": "credit", "version": "1"}
    payload = _witness(trained.run_id, "ario/registration_payload.json")
    assert verify_commitment(envelope, payload)["overall"] is True
    assert json.loads(payload)["artifact_verified"] is True
    report = _witness(trained.run_id, "ario/registration_verification.html").decode()
    assert "ar-io-mlflow verify model credit/1" in report
    assert registration_tx in report

    client.transition_model_version_stage("credit", version.version, "Staging")
    assert client.wait_for_anchor("promotion", "credit", version.version, timeout=30)
    promotion = client.anchor_status("promotion", "credit", version.version)
    promoted = _fetch(promotion["tx_id"])
    assert promoted["previous_hash"] == registration_tx
    folder = f"ario/promotions/{promoted['event_id']}/payload.json"
    assert verify_commitment(promoted, _witness(trained.run_id, folder))["overall"] is True
    tags = client.get_model_version("credit", version.version).tags
    assert tags["ario.promotion_tx"] == promotion["tx_id"]
    assert tags["ario.promotion_payload_hash"] == promoted["payload_hash"]

    client.set_registered_model_alias("credit", "champion", version.version)
    assert client.wait_for_anchor("alias", "credit", "champion", timeout=30)
    alias = client.anchor_status("alias", "credit", "champion")
    aliased = _fetch(alias["tx_id"])
    assert aliased["event_type"] == "alias_changed"
    assert aliased["previous_hash"] == registration_tx
    alias_payload = _witness(trained.run_id, f"ario/aliases/{aliased['event_id']}/payload.json")
    signed_alias = json.loads(alias_payload)
    changed_at = signed_alias.pop("changed_at")
    assert signed_alias == {
        "alias": "champion",
        "event_type": "alias_changed",
        "model_name": "credit",
        "model_version": "1",
        "previous_version": None,
        # how the move was seen: by the client that made it, as the OS user running it
        "observed_by": "client",
        "changed_by": getpass.getuser(),
        "changed_by_source": "os_user",
        "previous_version_known": True,
    }
    assert changed_at <= aliased["signed_at"]
    assert client.get_model_version("credit", "1").tags["ario.alias_tx.champion"] == alias["tx_id"]

    client.delete_registered_model_alias("credit", "champion")
    assert client.wait_for_anchor("alias", "credit", "champion", timeout=30)
    deleted = _fetch(client.anchor_status("alias", "credit", "champion")["tx_id"])
    witness = _witness(trained.run_id, f"ario/aliases/{deleted['event_id']}/payload.json")
    assert json.loads(witness)["model_version"] is None
    assert json.loads(witness)["previous_version"] == "1"


def test_status_is_read_from_the_journal_by_any_client(
    mlflow_store: str, local_gateway: Any
) -> None:
    trained = train()
    first = ArioMlflowClient()
    first.create_registered_model("m")
    version = first.create_model_version("m", trained.model_uri, run_id=trained.run_id)
    assert first.wait_for_anchor("registration", "m", version.version, timeout=30)
    later = ArioMlflowClient()  # e.g. a new process: nothing in memory
    assert later.anchor_status("registration", "m", version.version)["status"] == "anchored"
    assert later.wait_for_anchor("registration", "m", version.version, timeout=5)
    assert later.anchor_status("registration", "m", "99")["status"] == "unknown"
    assert later.wait_for_anchor("registration", "m", "99") is False
    code = (
        "from ario_mlflow.lifecycle.registry import ArioMlflowClient;"
        "status = ArioMlflowClient().anchor_status("
        f"'registration', 'm', '{version.version}');"
        "print(status['status'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "anchored"


def test_a_swapped_artifact_is_recorded_as_not_verified(
    mlflow_store: str, local_gateway: Any, caplog: pytest.LogCaptureFixture
) -> None:
    trained = train()
    model_file = serialized_model(local_model_dir(trained.model_uri))
    model_file.write_bytes(model_file.read_bytes() + b"tampered")
    client = ArioMlflowClient()
    client.create_registered_model("credit")
    version = client.create_model_version("credit", trained.model_uri, run_id=trained.run_id)
    assert client.wait_for_anchor("registration", "credit", version.version, timeout=30)
    tags = client.get_model_version("credit", version.version).tags
    assert tags["ario.artifact_verified"] == "false"
    said = [r.getMessage() for r in caplog.records if "differ from the anchored" in r.getMessage()]
    assert said
    assert f"changed: {model_file.name}" in said[0]  # the files, not "ChecksumDiff(...)"


def test_a_deleted_artifact_hash_tag_changes_nothing(mlflow_store: str, local_gateway: Any) -> None:
    trained = train()
    mlflow.MlflowClient().delete_tag(trained.run_id, "ario.artifact_hash")
    client = ArioMlflowClient()
    client.create_registered_model("credit")
    version = client.create_model_version("credit", trained.model_uri, run_id=trained.run_id)
    assert client.wait_for_anchor("registration", "credit", version.version, timeout=30)
    assert (
        client.get_model_version("credit", version.version).tags["ario.artifact_verified"] == "true"
    )


def test_conflicting_run_ids_fail_without_minting(mlflow_store: str, local_gateway: Any) -> None:
    trained = train()
    other = train(anchored=False)
    client = ArioMlflowClient()
    client.create_registered_model("credit")
    source = f"runs:/{trained.run_id}/model"
    version = client.create_model_version("credit", source, run_id=other.run_id)
    assert client.wait_for_anchor("registration", "credit", version.version, timeout=30)
    status = client.anchor_status("registration", "credit", version.version)
    assert status["status"] == "failed"
    assert trained.run_id in status["error"]
    assert other.run_id in status["error"]
    assert "ario.registration_tx" not in client.get_model_version("credit", "1").tags


def test_gateway_down_then_sync_completes_the_registration(
    mlflow_store: str, local_gateway: Any, gateway_dir: Path
) -> None:
    from ario_mlflow.localgw import LocalGateway

    trained = train()
    port = local_gateway.port
    local_gateway.stop()
    client = ArioMlflowClient()
    client.create_registered_model("credit")
    version = client.create_model_version("credit", trained.model_uri, run_id=trained.run_id)
    assert client.wait_for_anchor("registration", "credit", version.version, timeout=30)
    assert client.anchor_status("registration", "credit", "1")["status"] in {"anchoring", "signed"}
    tags = client.get_model_version("credit", "1").tags
    assert tags["ario.verify_status"] == "signed"
    queued = tags["ario.queued_tx"]
    revived = LocalGateway(gateway_dir, port=port, key_bits=2048).start()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "ario_mlflow.cli", "sync"],
            capture_output=True,
            text=True,
            check=False,
            timeout=180,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        tags = client.get_model_version("credit", "1").tags
        assert tags["ario.registration_tx"] == queued
        assert "ario.queued_tx" not in tags
        assert client.anchor_status("registration", "credit", "1")["status"] == "anchored"
    finally:
        revived.stop()


def test_a_registration_queued_by_a_killed_process_is_anchored_by_sync(
    mlflow_store: str, local_gateway: Any
) -> None:
    trained = train()
    mlflow.MlflowClient().create_registered_model("credit")
    code = (
        "import os, mlflow\n"
        "from ario_mlflow.lifecycle.registry import ArioMlflowClient\n"
        f"v = ArioMlflowClient().create_model_version('credit', '{trained.model_uri}', "
        f"run_id='{trained.run_id}')\n"
        "os._exit(0)  # die before the background task can run\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    client = ArioMlflowClient()
    assert client.anchor_status("registration", "credit", "1")["status"] == "anchoring"
    result = subprocess.run(
        [sys.executable, "-m", "ario_mlflow.cli", "sync"],
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert client.anchor_status("registration", "credit", "1")["status"] == "anchored"
    assert client.get_model_version("credit", "1").tags["ario.artifact_verified"] == "true"


def test_register_model_helper_and_anchoring_existing_versions(
    mlflow_store: str, local_gateway: Any
) -> None:
    trained = train()
    version = register_model(trained.model_uri, "scorer")
    client = ArioMlflowClient()
    assert client.wait_for_anchor("registration", "scorer", version.version, timeout=30)
    assert client.anchor_status("registration", "scorer", version.version)["status"] == "anchored"
    plain = mlflow.register_model(trained.model_uri, "scorer")  # not anchored by MLflow
    client.anchor_model_version("scorer", plain.version)
    assert client.wait_for_anchor("registration", "scorer", plain.version, timeout=30)
    # the tags are written back after the upload (a moment later, or by sync now)
    assert sync()
    assert (
        client.get_model_version("scorer", plain.version).tags["ario.verify_status"] == "anchored"
    )


def test_a_model_under_another_name_is_rehashed_at_its_own_path(
    mlflow_store: str, local_gateway: Any
) -> None:
    """The version's source names the model's path: a LoggedModel ``models:/m-<id>`` on
    MLflow 3, the run's artifact location ``…/artifacts/clf`` on MLflow 2; neither is
    ``runs:/``, and the default path ``model`` would hash nothing."""
    trained = train(model_name="clf")
    plain = mlflow.register_model(trained.model_uri, "scorer")
    client = ArioMlflowClient()
    client.anchor_model_version("scorer", plain.version)
    assert client.wait_for_anchor("registration", "scorer", plain.version, timeout=30)
    tags = client.get_model_version("scorer", plain.version).tags
    assert tags["ario.artifact_verified"] == "true"


def test_background_threads_stay_bounded(mlflow_store: str, local_gateway: Any) -> None:
    earlier = set(threading.enumerate())
    trained = train()
    client = ArioMlflowClient()
    client.create_registered_model("credit")
    for _ in range(12):
        client.create_model_version("credit", trained.model_uri, run_id=trained.run_id)
    ours = [  # pools left over by earlier tests of this process are not counted
        t.name
        for t in threading.enumerate()
        if t.name.startswith(("ario-upload", "ario-registry")) and t not in earlier
    ]
    for version in range(1, 13):
        assert client.wait_for_anchor("registration", "credit", str(version), timeout=60)
    assert len(ours) <= 4  # two upload workers, two registry workers: never one per event
    assert product_threads(earlier) < 16


def test_bad_metadata_is_refused(mlflow_store: str, local_gateway: Any) -> None:
    client = ArioMlflowClient()
    client.create_registered_model("credit")
    trained = train(anchored=False)
    with pytest.raises(ValueError, match="'when'"):
        client.create_model_version("credit", trained.model_uri, metadata={"when": object()})
