"""``audit`` and ``verify trace`` against an insider with MLflow write access: an alias
moved behind the client's back, decisions deleted and replaced by junk, stub or replayed
traces, a gateway that hides deletions, a trace that borrows another decision's record.

Real MLflow (sqlite), the local gateway over HTTP, real records.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import pytest

from ario_mlflow.localgw import LocalGateway
from tests.support.cli import invoke_cli
from tests.support.lifecycle import (
    decide,
    register,
    set_alias,
    start_gateway,
    sync,
    trace_id_of,
    train,
)


def _audit(*args: str) -> tuple[int, dict[str, Any]]:
    code, out, err = invoke_cli(["audit", *args, "--format", "json"])
    assert out, err
    return code, json.loads(out)


# --- 7. an alias moved without a record ----------------------------------------------------


def test_an_alias_moved_with_the_plain_client_fails_the_audit(
    mlflow_store: str, local_gateway: Any
) -> None:
    client = register("credit", train(), train())
    set_alias(client, "credit", "champion", "1")
    assert sync()
    code, bundle = _audit("credit@champion")
    assert code == 0, bundle
    mlflow.MlflowClient().set_registered_model_alias("credit", "champion", "2")
    code, bundle = _audit("credit@champion")
    assert code == 1
    (alias,) = [s for s in bundle["stages"] if s["stage"] == "alias_current"]
    assert alias["reason"].startswith("alias_unrecorded: @champion points at v2")
    assert bundle["overall_ok"] is False


def test_an_alias_moved_back_behind_the_clients_back_fails_the_audit(
    mlflow_store: str, local_gateway: Any
) -> None:
    client = register("credit", train(), train())
    set_alias(client, "credit", "champion", "1")
    assert sync()
    set_alias(client, "credit", "champion", "2")
    assert sync()
    assert _audit("credit@champion")[0] == 0
    # v1 still carries its old (genuine) alias record: only the latest one counts.
    mlflow.MlflowClient().set_registered_model_alias("credit", "champion", "1")
    code, bundle = _audit("credit@champion")
    assert code == 1
    (alias,) = [s for s in bundle["stages"] if s["stage"] == "alias_current"]
    assert "latest alias_changed record" in alias["reason"]
    assert alias["reason"].endswith("points it at v2")


# --- 8. decisions are counted by content ---------------------------------------------------


@pytest.fixture
def decisions(mlflow_store: str, local_gateway: Any) -> list[Any]:
    """A registered version with three anchored, traced, written-back decisions (built
    per test: each test changes it)."""
    register("credit", train())
    made = decide("models:/credit/1")
    assert sync()
    assert _audit("credit/1")[0] == 0
    return made


def _traces() -> dict[str, Any]:
    found = mlflow.MlflowClient().search_traces(experiment_ids=["0"])
    return {t.info.tags.get("ario.decision_id"): t for t in found}


def _junk_witness(decision_id: str) -> None:
    """Overwrite a decision's payload witness in the run's artifact store."""
    from urllib.parse import urlparse

    run = mlflow.MlflowClient().search_runs(["0"])[0]
    root = Path(urlparse(run.info.artifact_uri).path)
    witness = root / "ario" / "predictions" / decision_id / "payload.json"
    assert witness.is_file()
    witness.write_bytes(b'{"junk": true}')


def test_a_deleted_decision_replaced_by_a_stub_trace_is_found(decisions: list[Any]) -> None:
    newest = decisions[-1]
    traces = _traces()
    client = mlflow.MlflowClient()
    client.delete_traces("0", trace_ids=[trace_id_of(traces[newest.decision_id])])
    _junk_witness(newest.decision_id)
    # a stub: same tags, junk mirror
    with mlflow.start_span("stub"):
        pass
    stub_id = mlflow.get_last_active_trace_id()
    assert stub_id
    flush = getattr(mlflow, "flush_trace_async_logging", None)
    if flush is not None:  # the trace must exist before it can be tagged
        flush()
    for key, value in {
        "ario.decision_id": newest.decision_id,
        "ario.prediction_tx": newest.tx_id,
        "ario.model_name": "credit",
        "ario.model_version": "1",
        "ario.payload_json": '{"decision_id":"' + newest.decision_id + '"}',
    }.items():
        client.set_trace_tag(stub_id, key, value)
    code, bundle = _audit("credit/1")
    assert code == 1, json.dumps(bundle["decisions"], indent=1)
    assert bundle["decisions"]["count"] == 3, [t.info.tags for t in _traces().values()]
    assert bundle["decisions"]["verified"] == 2
    assert [u["why"] for u in bundle["decisions"]["unverified"]] == [
        "mirror bytes differ from the anchored payload"
    ]
    assert bundle["decisions"]["onchain"]["missing"] == [newest.tx_id]


def test_a_replayed_trace_pointing_at_another_decision_is_not_counted(
    decisions: list[Any],
) -> None:
    first, newest = decisions[0], decisions[-1]
    traces = _traces()
    client = mlflow.MlflowClient()
    client.delete_traces("0", trace_ids=[trace_id_of(traces[newest.decision_id])])
    _junk_witness(newest.decision_id)
    client.set_trace_tag(trace_id_of(traces[first.decision_id]), "ario.prediction_tx", newest.tx_id)
    code, bundle = _audit("credit/1")
    assert code == 1
    # the replayed trace counts for nothing; the first decision still has its witness
    assert bundle["decisions"]["verified"] == 2
    assert [u["why"] for u in bundle["decisions"]["unverified"]] == [
        "the TX records another decision"
    ]
    assert bundle["decisions"]["onchain"]["missing"] == [newest.tx_id]


# --- 9. completeness across gateways ---------------------------------------------------------


def test_a_gateway_that_cannot_search_makes_the_audit_unchecked(
    decisions: list[Any], local_gateway: LocalGateway
) -> None:
    local_gateway.set_faults(graphql={"fail_rate": 1.0})
    code, bundle = _audit("credit/1")
    assert code == 1
    assert bundle["decisions"]["onchain"]["ok"] is None
    assert bundle["decisions"]["completeness"].startswith("unchecked: ")
    code, bundle = _audit("credit/1", "--accept-unchecked-completeness")
    assert code == 0
    assert bundle["decisions"]["completeness"] == "unchecked, accepted by the user"


def test_an_empty_gateway_first_does_not_hide_deletions(
    decisions: list[Any],
    local_gateway: LocalGateway,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
    gateway_key_file: Any,
) -> None:
    empty = start_gateway(tmp_path_factory.mktemp("empty-gw"), gateway_key_file)
    try:
        monkeypatch.setenv("ARIO_MLFLOW_GATEWAYS", f"{empty.url},{local_gateway.url}")
        newest = decisions[-1]
        mlflow.MlflowClient().delete_traces(
            "0", trace_ids=[trace_id_of(_traces()[newest.decision_id])]
        )
        _junk_witness(newest.decision_id)
        code, bundle = _audit("credit/1")
        assert code == 1
        onchain = bundle["decisions"]["onchain"]
        assert onchain["missing"] == [newest.tx_id]
        assert empty.url in onchain["unchecked"]  # its empty answer was not believed
    finally:
        empty.stop()


# --- 10. verify trace is bound to the trace ----------------------------------------------------


def test_verify_trace_does_not_borrow_another_decisions_record(decisions: list[Any]) -> None:
    first, other = decisions[0], decisions[1]
    trace = _traces()[first.decision_id]
    trace_id = trace_id_of(trace)
    assert invoke_cli(["verify", "trace", trace_id])[0] == 0
    client = mlflow.MlflowClient()
    client.set_trace_tag(trace_id, "ario.prediction_tx", other.tx_id)
    client.delete_trace_tag(trace_id, "ario.decision_id")
    code, out, _ = invoke_cli(["verify", "trace", trace_id])
    assert code == 1, out
    client.delete_trace_tag(trace_id, "ario.payload_json")
    code, out, _ = invoke_cli(["verify", "trace", trace_id])
    assert code == 1, out
    assert "no record can be bound" in out
