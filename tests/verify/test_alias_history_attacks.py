"""``history NAME@ALIAS`` against an insider with MLflow write access: the alias tag deleted,
the record's payload edited or deleted, the alias moved with no record. Records are found
on the gateway's index even with every tag gone; an unreadable record is a failure, not a
record that silently drops out of the history.

Real MLflow (sqlite), the local gateway over HTTP, records made by ArioMlflowClient.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import mlflow
import pytest

from ario_mlflow.errors import IntegrityError
from ario_mlflow.lifecycle.serving import VerifiedModel
from tests.support.cli import invoke_cli
from tests.support.lifecycle import register, set_alias, sync, train


def _history(*args: str) -> tuple[int, dict[str, Any]]:
    code, out, err = invoke_cli(["history", "credit@champion", "--format", "json", *args])
    assert out, err
    return code, json.loads(out)


def _two_moves() -> tuple[Any, datetime, list[str]]:
    trained = [train(), train()]
    client = register("credit", *trained)
    set_alias(client, "credit", "champion", "1")
    between = datetime.now(timezone.utc)
    time.sleep(0.05)
    set_alias(client, "credit", "champion", "2")
    assert sync()
    return client, between, [t.run_id for t in trained]


def _alias_payloads(run_id: str) -> list[Path]:
    """Every copy of the run's alias payloads in its witness (an insider edits them all)."""
    root = Path(unquote(urlparse(mlflow.get_run(run_id).info.artifact_uri).path))
    return [
        path
        for path in sorted((root / "ario").rglob("payload.json"))
        if json.loads(path.read_text()).get("event_type") == "alias_changed"
    ]


def test_history_of_two_client_moves_and_the_version_between_them(
    mlflow_store: str, local_gateway: Any
) -> None:
    _, between, _ = _two_moves()
    code, history = _history("--at", between.isoformat())
    assert code == 0, history
    assert [p["version"] for p in history["periods"]] == ["1", "2"]
    assert {p["observed_by"] for p in history["periods"]} == {"client"}
    assert history["version"] == "1"
    assert history["gaps"] == 0
    code, out, _ = invoke_cli(["history", "credit@champion"])
    assert code == 0
    assert "v1" in out
    assert "v2" in out
    assert "Overall: ✓ verified" in out
    # the audit of the version shows the same timeline
    code, out, _err = invoke_cli(["audit", "credit/2", "--format", "json"])
    assert json.loads(out)["alias_history"]["champion"]["periods"] == history["periods"]


def test_deleted_alias_tags_hide_no_record(mlflow_store: str, local_gateway: Any) -> None:
    client, _, _ = _two_moves()
    for version in ("1", "2"):
        client.delete_model_version_tag("credit", version, "ario.alias_tx.champion")
    code, history = _history()
    assert code == 0, history
    assert [p["version"] for p in history["periods"]] == ["1", "2"]
    assert all("tag" not in r["claimed_by"] for r in history["records"])
    assert all("gateway" in r["claimed_by"] for r in history["records"])


def test_an_edited_alias_payload_fails_the_history(mlflow_store: str, local_gateway: Any) -> None:
    _, _, runs = _two_moves()
    payloads = _alias_payloads(runs[0])
    assert payloads
    for payload in payloads:
        data = json.loads(payload.read_text())
        data["changed_by"] = "somebody-else"
        payload.write_text(json.dumps(data))
    code, history = _history()
    assert code == 1
    (problem,) = history["problems"]
    assert "edited" in problem
    assert [p["version"] for p in history["periods"] if p["kind"] == "recorded"] == ["2"]


def test_a_deleted_alias_payload_and_tag_fail_the_history(
    mlflow_store: str, local_gateway: Any
) -> None:
    client, _, runs = _two_moves()
    client.delete_model_version_tag("credit", "1", "ario.alias_tx.champion")
    payloads = _alias_payloads(runs[0])
    assert payloads
    for payload in payloads:
        payload.unlink()
    code, history = _history()
    assert code == 1
    (problem,) = history["problems"]
    assert "payload cannot be read" in problem
    code, out, _ = invoke_cli(["history", "credit@champion"])
    assert code == 1
    assert "FAILED" in out


def test_an_alias_moved_with_no_record_is_a_gap_until_reconcile_records_it(
    mlflow_store: str, local_gateway: Any
) -> None:
    _two_moves()
    mlflow.MlflowClient().set_registered_model_alias("credit", "champion", "1")
    code, history = _history()
    assert history["periods"][-1]["kind"] == "uncertain"
    assert history["periods"][-1]["candidates"] == ["2", "1"]
    code, _audit, _ = invoke_cli(["audit", "credit@champion", "--format", "json"])
    assert code == 1
    # the serving gate refuses what MLflow resolves the alias to, naming the record
    with pytest.raises(IntegrityError, match=r"resolves credit@champion to v1, but its latest"):
        VerifiedModel("models:/credit@champion")
    code, out, err = invoke_cli(["reconcile", "credit"])
    assert code == 0, out + err
    assert "credit@champion: registry says v1, records said v2 -> anchored" in out
    page = Path("history.html")
    code, out, err = invoke_cli(
        ["history", "credit@champion", "--format", "html", "--output", str(page)]
    )
    assert code == 0, out + err
    html = page.read_text()
    assert "VERIFIED, WITH GAPS" in html  # the move no one saw is shown, not hidden
    assert "Gap: no record" in html
    assert "found by reconciliation" in html
    code, history = _history()
    assert code == 0
    assert history["periods"][-1]["version"] == "1"
    assert history["periods"][-1]["observed_by"] == "reconcile"
    code, out, _ = invoke_cli(["reconcile", "credit"])
    assert code == 0
    assert "nothing to record" in out
    assert VerifiedModel("models:/credit@champion").model_version == "1"  # recorded now
    assert json.loads(invoke_cli(["audit", "credit@champion", "--format", "json"])[1])["overall_ok"]


def test_history_of_an_unknown_model_or_a_bad_time_is_one_line(
    mlflow_store: str, local_gateway: Any
) -> None:
    code, _, err = invoke_cli(["history", "nobody@champion"])
    assert code == 2
    assert "no registered model named 'nobody'" in err
    code, _, err = invoke_cli(["history", "credit@champion", "--at", "yesterday"])
    assert code == 2
    assert "not an ISO 8601 time" in err
    code, _out, err = invoke_cli(["history", "credit"])
    assert code == 2
    assert "NAME@ALIAS" in err
