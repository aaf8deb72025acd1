"""``VerifiedModel`` on a real MLflow store with the local gateway."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pytest

from ario_mlflow.arweave.agent_status import VerifyStatusClient
from ario_mlflow.errors import (
    AssetTamperedError,
    IntegrityError,
    ProofUnavailableError,
)
from ario_mlflow.lifecycle.registry import ArioMlflowClient
from ario_mlflow.lifecycle.serving import VerifiedModel, VerifiedPrediction
from ario_mlflow.lifecycle.traces import all_experiment_ids, preset_trace_ids, search_traces
from ario_mlflow.outbox.anchor import ArweaveAnchor
from ario_mlflow.proof.commitment import verify_commitment
from ario_mlflow.proof.fingerprint import FingerprintError, input_fingerprint
from ario_mlflow.verify.core import verify_proof_by_tx
from tests.support.cli import run_cli
from tests.support.lifecycle import (
    FEATURES,
    HAS_LOGGED_MODELS,
    NEEDS_LOGGED_MODELS,
    Trained,
    local_model_dir,
    product_threads,
    register,
    serialized_model,
    set_alias,
    sync,
    train,
)
from tests.support.loopback import Loopback, Reply, Seen

ROW = FEATURES.iloc[[0]]
#: MLflow 3 stores a trace under an id chosen beforehand; MLflow 2's store names it itself.
PRESET_TRACES = preset_trace_ids()
NEEDS_PRESET_TRACES = "MLflow 2's tracking store names a trace only when the trace starts"


def _register(trained: Trained) -> ArioMlflowClient:
    """``credit/1`` from ``trained``, registration anchored, ``@champion`` pointed at it."""
    client = register("credit", trained)
    set_alias(client, "credit", "champion", "1", wait=False)
    return client


def _witness(run_id: str, path: str) -> bytes:
    return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path)).read_bytes()


@pytest.mark.parametrize("background", ["process", "thread"])
def test_load_predict_and_verify_a_decision(
    mlflow_store: str, local_gateway: Any, background: str
) -> None:
    trained = train()
    client = _register(trained)
    model = VerifiedModel("models:/credit@champion", background=background, decisions="each")
    assert model.artifact_verified is True
    assert (model.model_name, model.model_version, model.run_id) == ("credit", "1", trained.run_id)

    first = model.predict(ROW)
    second = model.predict({k: float(v) for k, v in ROW.iloc[0].items()})  # a feature dict
    assert isinstance(first, VerifiedPrediction)
    assert first.proof_status == "anchoring"
    assert list(first.prediction) in ([0], [1])
    assert first.record["sequence"] == 1
    assert second.record["sequence"] == 2
    assert first.record["stream_id"] == second.record["stream_id"] == model.stream_id
    assert first.record["input_hash"] == input_fingerprint(ROW)
    assert first.record["artifact_verified"] is True

    assert first.wait_for_anchor(15)
    assert first.proof_status == "anchored"
    envelope = ArweaveAnchor().fetch_proof(first.tx_id)
    registration = client.anchor_status("registration", "credit", "1")["tx_id"]
    assert envelope["previous_hash"] == registration  # decisions chain to the registration
    assert envelope["subject"]["decision_id"] == first.decision_id
    assert envelope["subject"]["model_run_id"] == trained.run_id

    assert sync()  # witness + trace written back
    payload_bytes = _witness(trained.run_id, f"ario/predictions/{first.decision_id}/payload.json")
    assert verify_commitment(envelope, payload_bytes)["overall"] is True
    (trace,) = [
        t
        for t in mlflow.MlflowClient().search_traces(experiment_ids=["0"])
        if t.info.tags.get("ario.decision_id") == first.decision_id
    ]
    tags = trace.info.tags
    assert tags["ario.payload_json"].encode() == payload_bytes
    assert tags["ario.prediction_tx"] == first.tx_id
    assert tags["ario.proof_status"] == "anchored"
    assert all(span.inputs is None for span in trace.data.spans)  # hashes only, no raw input


@pytest.mark.parametrize(
    "uri_form",
    [
        "version",
        "stage",
        pytest.param(
            "logged_model",
            marks=pytest.mark.skipif(not HAS_LOGGED_MODELS, reason=NEEDS_LOGGED_MODELS),
        ),
        "runs",
    ],
)
def test_every_uri_form_is_verified(mlflow_store: str, local_gateway: Any, uri_form: str) -> None:
    trained = train()
    client = _register(trained)
    if uri_form == "stage":
        client.transition_model_version_stage("credit", "1", "Production")
    uri = {
        "version": "models:/credit/1",
        "stage": "models:/credit/Production",
        "logged_model": trained.model_uri,
        "runs": f"runs:/{trained.run_id}/model",
    }[uri_form]
    model = VerifiedModel(uri)
    assert model.artifact_verified is True
    assert model.run_id == trained.run_id
    assert model.predict(ROW).record["model_uri"] == uri


def test_a_swapped_artifact_is_refused_before_load(mlflow_store: str, local_gateway: Any) -> None:
    trained = train()
    _register(trained)
    model_file = serialized_model(local_model_dir(trained.model_uri))
    model_file.write_bytes(b"not a model at all")  # pyfunc would fail to load this
    with pytest.raises(IntegrityError, match=re.escape(model_file.name)) as info:
        VerifiedModel("models:/credit@champion")
    assert not isinstance(info.value, ProofUnavailableError)


def test_an_added_file_is_refused(mlflow_store: str, local_gateway: Any) -> None:
    trained = train()
    _register(trained)
    (local_model_dir(trained.model_uri) / "backdoor.py").write_text("print('hi')")
    with pytest.raises(IntegrityError, match=r"backdoor\.py"):
        VerifiedModel("models:/credit@champion")


def test_deleting_or_editing_the_hash_tag_does_not_help(
    mlflow_store: str, local_gateway: Any
) -> None:
    trained = train()
    _register(trained)
    model_file = serialized_model(local_model_dir(trained.model_uri))
    model_file.write_bytes(model_file.read_bytes() + b"x")
    tracking = mlflow.MlflowClient()
    tracking.delete_tag(trained.run_id, "ario.artifact_hash")
    with pytest.raises(IntegrityError):
        VerifiedModel("models:/credit@champion")
    tracking.set_tag(trained.run_id, "ario.artifact_hash", "0" * 64)
    with pytest.raises(IntegrityError):
        VerifiedModel("models:/credit@champion")


def test_a_tag_pointing_at_another_runs_proof_is_refused(
    mlflow_store: str,
    local_gateway: Any,
    caplog: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    trained = train()
    other = train()
    _register(trained)
    mlflow.MlflowClient().set_tag(trained.run_id, "ario.training_tx", other.anchored["tx_id"])
    # The registration record chains to the genuine training record: the edited tag is
    # only a hint, it is ignored (and reported), and the genuine model loads verified.
    with caplog.at_level("WARNING", logger="ario_mlflow"):
        assert VerifiedModel("models:/credit@champion").artifact_verified is True
    assert any("do not check out" in r.getMessage() for r in caplog.records)
    # With nothing but the run's tag to go on (another machine: no journal), it is refused.
    monkeypatch.setenv("ARIO_MLFLOW_HOME", str(tmp_path / "elsewhere"))
    with pytest.raises(IntegrityError, match=r"none of which checks out.*record is about"):
        VerifiedModel(f"runs:/{trained.run_id}/model")


def test_an_edited_payload_witness_is_refused(mlflow_store: str, local_gateway: Any) -> None:
    trained = train()
    _register(trained)
    run_dir = Path(mlflow.get_run(trained.run_id).info.artifact_uri.replace("file://", ""))
    event_id = trained.anchored["envelope"]["event_id"]
    for path in (
        run_dir / "ario" / "payload.json",
        run_dir / "ario/events" / event_id / "payload.json",
    ):
        path.write_bytes(path.read_bytes().replace(b"0.93", b"0.99"))
    with pytest.raises(IntegrityError, match="witness"):
        VerifiedModel("models:/credit@champion")


def test_a_proof_that_cannot_be_checked_fails_closed(
    mlflow_store: str, local_gateway: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    trained = train()
    _register(trained)
    local_gateway.stop()  # no gateway, and another installation's (empty) journal
    monkeypatch.setenv("ARIO_MLFLOW_HOME", str(tmp_path / "elsewhere"))
    with pytest.raises(ProofUnavailableError, match="could not be fetched"):
        VerifiedModel("models:/credit@champion")


def test_unpinned_signer_is_refused_when_keys_are_pinned(
    mlflow_store: str, local_gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained = train()
    _register(trained)
    monkeypatch.setenv("ARIO_MLFLOW_TRUSTED_KEYS", "ab" * 32)
    with pytest.raises(IntegrityError, match="not a trusted key"):
        VerifiedModel("models:/credit@champion")
    signer = trained.anchored["envelope"]["public_key"]
    monkeypatch.setenv("ARIO_MLFLOW_TRUSTED_KEYS", f"{'ab' * 32},{signer}")
    assert VerifiedModel("models:/credit@champion").artifact_verified is True


def test_no_proof_loads_unverified_or_refuses_when_required(
    mlflow_store: str, local_gateway: Any, caplog: pytest.LogCaptureFixture
) -> None:
    trained = train(anchored=False)
    with caplog.at_level(logging.WARNING):
        model = VerifiedModel(trained.model_uri)
    assert model.artifact_verified is None
    assert "artifact_verified=None" in caplog.text
    assert model.predict(ROW).record["artifact_verified"] is None
    with pytest.raises(IntegrityError, match="require_proof"):
        VerifiedModel(trained.model_uri, require_proof=True)


def test_unfingerprintable_input_is_refused_before_the_model_runs(
    mlflow_store: str, local_gateway: Any
) -> None:
    trained = train()
    model = VerifiedModel(trained.model_uri)
    before = model._anchor.journal.counts()
    with pytest.raises(FingerprintError):
        model.predict({"income": {1, 2}})
    assert model._anchor.journal.counts() == before


def test_audit_counts_untraced_decisions_by_their_witnesses(
    mlflow_store: str, local_gateway: Any
) -> None:
    """Decisions anchored on Arweave are matched to MLflow by trace *or* witness: serving
    with ``trace_predictions=False`` must not look like deleted decisions."""
    _register(train())
    model = VerifiedModel("models:/credit@champion", trace_predictions=False, decisions="each")
    decisions = [model.predict(ROW) for _ in range(2)]
    assert all("mlflow_trace_id" not in d.record for d in decisions)  # no trace, no id
    assert all(d.wait_for_anchor(30) for d in decisions)
    assert sync()
    result = run_cli("audit", "credit/1", "--format", "json")
    onchain = json.loads(result.stdout)["decisions"]["onchain"]
    assert onchain["gateways"] == [local_gateway.url]  # searched, and it answered
    assert onchain["unchecked"] == {}
    del onchain["gateways"], onchain["unchecked"]
    assert onchain == {"ok": True, "onchain": 2, "missing": [], "reason": None}
    assert json.loads(result.stdout)["decisions"]["verified"] == 2
    assert result.returncode == 0, result.stdout


def test_a_decision_inside_an_mlflow_trace_names_it(mlflow_store: str, local_gateway: Any) -> None:
    model = VerifiedModel(train().model_uri, decisions="each")
    outside = model.predict(ROW)
    with mlflow.start_span("serve") as span:
        inside = model.predict(ROW)
    trace_id = getattr(span, "trace_id", None) or span.request_id
    assert inside.record["mlflow_trace_id"] == trace_id
    # outside the caller's trace a decision names its own (MLflow 3), never the caller's
    assert outside.record.get("mlflow_trace_id") != trace_id
    assert ("mlflow_trace_id" in outside.record) is PRESET_TRACES
    assert inside.wait_for_anchor(30)
    envelope = ArweaveAnchor().fetch_proof(inside.tx_id)
    assert envelope["subject"]["trace_id"] == trace_id
    assert sync()  # the caller's trace is left alone: the decision gets a trace of its own
    client = mlflow.MlflowClient()
    (carrier,) = search_traces(
        client, all_experiment_ids(client), f"tags.`ario.decision_id` = '{inside.decision_id}'"
    )
    assert (getattr(carrier.info, "trace_id", None) or carrier.info.request_id) != trace_id


@pytest.mark.skipif(not PRESET_TRACES, reason=NEEDS_PRESET_TRACES)
@pytest.mark.parametrize("background", ["process", "thread"])
def test_an_each_decision_is_signed_with_the_id_of_its_trace(
    mlflow_store: str, local_gateway: Any, background: str
) -> None:
    """The signed payload names the MLflow trace that the write-back creates, as the
    reference's verifier requires: the id is chosen at predict time, the trace made later."""
    _register(train())
    model = VerifiedModel("models:/credit@champion", decisions="each", background=background)
    decision = model.predict(ROW)
    trace_id = decision.record["mlflow_trace_id"]
    assert re.fullmatch(r"tr-[0-9a-f]{32}", trace_id)
    assert model.predict(ROW).record["mlflow_trace_id"] != trace_id  # one trace per decision
    assert decision.wait_for_anchor(30)
    envelope = ArweaveAnchor().fetch_proof(decision.tx_id)
    assert envelope["subject"]["trace_id"] == trace_id  # signed, in the envelope too

    assert sync()  # witness + trace written back
    client = mlflow.MlflowClient()
    (carrier,) = search_traces(
        client,
        all_experiment_ids(client),
        f"tags.`ario.decision_id` = '{decision.decision_id}'",
    )
    assert carrier.info.trace_id == trace_id  # the trace carrying the decision is that one
    trace = client.get_trace(trace_id)
    tags = trace.info.tags
    assert tags["ario.prediction_tx"] == decision.tx_id
    assert tags["ario.proof_status"] == "anchored"
    payload_bytes = _witness(
        decision.record["run_id"], f"ario/predictions/{decision.decision_id}/payload.json"
    )
    assert tags["ario.payload_json"].encode() == payload_bytes
    assert json.loads(payload_bytes)["mlflow_trace_id"] == trace_id
    (span,) = trace.data.spans
    assert span.name == "VerifiedModel.predict"
    assert span.inputs is None  # hashes only, no raw input

    result = verify_proof_by_tx(decision.tx_id, mlflow_client=client)
    assert result["overall"] is True, result
    assert result["source_of_truth"]["ok"] is True


@pytest.mark.skipif(not PRESET_TRACES, reason=NEEDS_PRESET_TRACES)
def test_a_decision_traced_with_its_raw_io_keeps_the_id_it_was_signed_with(
    mlflow_store: str, local_gateway: Any
) -> None:
    model = VerifiedModel(
        train().model_uri, decisions="each", background="thread", trace_raw_io=True
    )
    decision = model.predict(ROW)
    assert decision.wait_for_anchor(30)
    assert sync()
    (span,) = mlflow.MlflowClient().get_trace(decision.record["mlflow_trace_id"]).data.spans
    assert span.inputs is not None  # the opt-in raw input, on the trace the record names
    assert span.outputs == list(decision.prediction)


def test_a_decision_inside_an_opentelemetry_span_records_its_ids(
    mlflow_store: str, local_gateway: Any
) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    model = VerifiedModel(train().model_uri)
    tracer = TracerProvider().get_tracer("serving")
    with tracer.start_as_current_span("request") as span:
        inside = model.predict(ROW, metadata={"request": "r-1"})
    context = span.get_span_context()
    assert inside.record["otel_trace_id"] == format(context.trace_id, "032x")
    assert inside.record["otel_span_id"] == format(context.span_id, "016x")
    assert inside.record["request"] == "r-1"
    outside = model.predict(ROW)
    assert "otel_trace_id" not in outside.record
    assert outside.record["sequence"] == inside.record["sequence"] + 1
    assert inside.wait_for_anchor(30)
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_threads_stay_bounded_over_many_predictions(mlflow_store: str, local_gateway: Any) -> None:
    earlier = set(threading.enumerate())
    trained = train()
    model = VerifiedModel(trained.model_uri)
    results = [model.predict(ROW) for _ in range(300)]
    uploaders = [
        t for t in threading.enumerate() if t.name.startswith("ario-upload") and t not in earlier
    ]
    assert len(uploaders) <= 2
    assert product_threads(earlier) < 16
    assert results[-1].wait_for_anchor(30)
    assert len({r.decision_id for r in results}) == 300
    assert [r.record["sequence"] for r in results] == list(range(1, 301))


# --- the agent verify-status gate (a real loopback server) ---------------------------------


@dataclass
class _StatusAgent:
    """An ar-io-agent on a loopback port answering every verify-status request of
    ``models/credit`` with ``outcome``; ``requests`` counts them."""

    server: Loopback
    outcome: str = "verified"
    stale: bool = False

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def requests(self) -> int:
        return len(self.server.seen)

    def answer(self, seen: Seen) -> Reply:
        body = {
            "asset_id": "models/credit",
            "tenant_id": "t",
            "agent_id": "a",
            "outcome": self.outcome,
            "last_verified_at": "2026-11-26T00:00:00Z",
            "max_age": 300,
            "stale": self.stale,
            "policy_hash": "p" * 64,
            "current_tx_id": None,
        }
        return Reply(200, body, {"Content-Type": "application/json"})


@pytest.fixture
def status_server() -> Iterator[_StatusAgent]:
    with Loopback() as server:
        agent = _StatusAgent(server)
        server.fallback = agent.answer
        yield agent


def test_gate_arguments_are_validated() -> None:
    with pytest.raises(ValueError, match="on_failure"):
        VerifiedModel("models:/x/1", on_failure="ignore")
    with pytest.raises(ValueError, match="asset_id"):
        VerifiedModel("models:/x/1", asset_id="a")
    with pytest.raises(ValueError, match="recheck_per_predict"):
        VerifiedModel("models:/x/1", recheck_per_predict=True)
    with pytest.raises(ValueError, match="background"):
        VerifiedModel("models:/x/1", background="daemon")


def test_tampered_outcome_blocks_the_load_before_mlflow(
    status_server: _StatusAgent, mlflow_store: str
) -> None:
    status_server.outcome = "tampered"
    client = VerifyStatusClient(status_server.url, secret="s")
    with pytest.raises(AssetTamperedError):
        VerifiedModel(
            "models:/does-not-exist/1", asset_id="models/credit", verify_status_client=client
        )


def test_fail_open_logs_and_rechecks_per_predict(
    status_server: _StatusAgent,
    mlflow_store: str,
    local_gateway: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    trained = train()
    client = VerifyStatusClient(status_server.url, secret="s")
    model = VerifiedModel(
        trained.model_uri,
        asset_id="models/credit",
        verify_status_client=client,
        recheck_per_predict=True,
    )
    model.predict(ROW)
    assert status_server.requests == 2  # load + one predict
    status_server.outcome = "missing"
    with pytest.raises(Exception, match="missing"):
        model.predict(ROW)
    lenient = VerifiedModel(
        trained.model_uri,
        asset_id="models/credit",
        verify_status_client=client,
        on_failure="fail_open",
        recheck_per_predict=True,
    )
    with caplog.at_level(logging.WARNING, logger="ario_mlflow.lifecycle.serving"):
        lenient.predict(ROW)
    logged = [
        r.ario_verify_status  # type: ignore[attr-defined]
        for r in caplog.records
        if "fail_open" in r.getMessage()
    ]
    assert [entry["phase"] for entry in logged] == ["load", "predict"]
    assert all(entry["outcome"] == "missing" for entry in logged)
    assert all(entry["asset_id"] == "models/credit" for entry in logged)


@pytest.mark.parametrize("background", ["process", "thread"])
def test_wait_for_anchor_is_true_only_once_the_decision_is_uploaded(
    mlflow_store: str, local_gateway: Any, monkeypatch: pytest.MonkeyPatch, background: str
) -> None:
    monkeypatch.setenv("ARIO_MLFLOW_BACKGROUND", background)
    model = VerifiedModel(train().model_uri, decisions="each")
    local_gateway.set_faults(upload={"forge_receipt": True})  # a service that lies
    decision = model.predict(ROW)
    assert decision.wait_for_anchor(1.5) is False
    assert decision.proof_status == "anchoring"
    assert decision.tx_id is None
    assert decision.anchor_error
    assert decision.wait_for_anchor(0.5) is False  # asking again does not turn it True
    local_gateway.set_faults()
    assert run_cli("sync").returncode == 0
    started = time.monotonic()
    assert decision.wait_for_anchor(30) is True
    assert time.monotonic() - started < 5  # uploaded by sync: seen, not waited out
    assert decision.proof_status == "anchored"
    assert decision.tx_id
    assert decision.anchor_error is None
