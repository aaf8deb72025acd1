"""``reconcile`` against plain-MLflow registrations and an insider's bogus tags: a tag is a
hint, only a record that verifies counts. Real MLflow (sqlite), the local gateway."""

from __future__ import annotations

import json
from typing import Any

import mlflow

from ario_mlflow.config import load_settings
from ario_mlflow.verify.reconcile import reconcile_lock
from tests.support.cli import invoke_cli
from tests.support.lifecycle import train


def _reconcile(*args: str) -> tuple[int, dict[str, Any]]:
    code, out, err = invoke_cli(["reconcile", *args, "--format", "json"])
    assert out, err
    return code, json.loads(out)


def test_versions_registered_with_plain_mlflow_are_recorded_once(
    mlflow_store: str, local_gateway: Any
) -> None:
    trained = train()
    mlflow.register_model(trained.model_uri, "credit")  # no ArioMlflowClient
    mlflow.MlflowClient().set_registered_model_alias("credit", "champion", "1")
    code, report = _reconcile()  # every registered model
    assert code == 0, report
    assert report["models"] == ["credit"]
    assert sorted((f["kind"], f["key"]) for f in report["found"]) == [
        ("alias", "champion"),
        ("registration", "1"),
    ]
    tags = mlflow.MlflowClient().get_model_version("credit", "1").tags
    registration = next(f for f in report["found"] if f["kind"] == "registration")
    assert tags["ario.registration_tx"] == registration["tx_id"]
    code, out, err = invoke_cli(["verify", "model", "credit/1", "--format", "json"])
    assert code == 0, out + err
    code, again = _reconcile("credit")
    assert (code, again["found"]) == (0, [])


def test_a_bogus_registration_tag_does_not_pass_for_a_record(
    mlflow_store: str, local_gateway: Any
) -> None:
    trained = train()
    mlflow.register_model(trained.model_uri, "credit")
    assert trained.anchored is not None
    # the insider names the *training* record as the registration, hoping reconcile skips
    training_tx = trained.anchored["tx_id"]
    mlflow.MlflowClient().set_model_version_tag("credit", "1", "ario.registration_tx", training_tx)
    code, report = _reconcile("credit")
    assert code == 0, report
    (found,) = report["found"]
    assert (found["kind"], found["key"]) == ("registration", "1")
    assert found["tx_id"] != training_tx


def test_a_second_reconcile_at_the_same_time_stops_with_a_reason(
    mlflow_store: str, local_gateway: Any
) -> None:
    with reconcile_lock(load_settings().home):
        code, _, err = invoke_cli(["reconcile"])
    assert code == 2
    assert "another reconciliation is running" in err
    assert "Traceback" not in err
