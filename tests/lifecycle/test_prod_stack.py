"""The whole lifecycle, and tampering, on the production stack: ``mlflow server`` over HTTP
with PostgreSQL as its backend store and its artifacts in S3 (``tests/support/prod_stack``).

Every test has an experiment and a registered model of its own on the session's stack,
its own ``$ARIO_MLFLOW_HOME`` (signing key, journal) and its own local Arweave gateway.
The tampers are made where an insider would make them: in the database with ``psql``, in
the bucket with ``boto3``, never through MLflow. (The tests on the stack are marked slow by
their ``prod_stack`` fixture; the first ones, about a missing PostgreSQL or moto, are not.)
"""

from __future__ import annotations

import base64
import gc
import hashlib
import hmac
import json
import os
import tempfile
import tracemalloc
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from ario_mlflow.errors import IntegrityError
from ario_mlflow.lifecycle.registry import ArioMlflowClient
from ario_mlflow.lifecycle.serving import VerifiedModel
from ario_mlflow.lifecycle.training import anchor
from tests.support import prod_stack as stack_module
from tests.support.cli import run_cli
from tests.support.lifecycle import (
    FEATURES,
    LABELS,
    Trained,
    log_sklearn_model,
    model_location,
    register,
    release_store,
    set_alias,
    sync,
    train,
)
from tests.support.loopback import Loopback, Reply
from tests.support.prod_stack import AWS_UNSET, ProdStack, StackUnavailable

ROW = FEATURES.iloc[[0]]


@dataclass(frozen=True)
class OnStack:
    """This test's view of the stack: its experiment and a model name of its own."""

    stack: ProdStack
    gateway: Any
    experiment_id: str
    model_name: str

    @property
    def client(self) -> mlflow.MlflowClient:
        return mlflow.MlflowClient(self.stack.tracking_uri)

    def s3_key(self, location: str) -> str:
        """The bucket key of an artifact location the server hands out
        (``mlflow-artifacts:/<path>`` is ``s3://BUCKET/artifacts/<path>``)."""
        assert location.startswith("mlflow-artifacts:"), location
        return "artifacts/" + location.split("mlflow-artifacts:", 1)[1].lstrip("/")

    def s3_files(self, location: str) -> dict[str, int]:
        """``{name relative to location: size}`` of what the bucket holds under it."""
        prefix = self.s3_key(location).rstrip("/") + "/"
        pages = self.stack.s3().get_paginator("list_objects_v2")
        return {
            item["Key"][len(prefix) :]: item["Size"]
            for page in pages.paginate(Bucket=self.stack.bucket, Prefix=prefix)
            for item in page.get("Contents", [])
        }

    def sql(self, statement: str) -> str:
        """``psql`` on MLflow's database; its output, stripped."""
        return self.stack.psql(statement).strip()


@pytest.fixture
def on_stack(
    prod_stack: ProdStack,
    local_gateway: Any,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[OnStack]:
    """This process pointed at the stack (its tracking URI and S3 settings), in a new
    experiment; the local gateway is the upload service and the read gateway."""
    for name, value in prod_stack.env.items():
        monkeypatch.setenv(name, value)
    for name in AWS_UNSET:
        monkeypatch.delenv(name, raising=False)
    # a failing test must not leave a background worker retrying a 5xx for minutes (MLflow's
    # default: 7 retries, backoff factor 2) against a server that stops with the session
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    mlflow.set_tracking_uri(prod_stack.tracking_uri)
    tag = uuid.uuid4().hex[:8]
    experiment_id = mlflow.create_experiment(f"prod-{request.node.name[:60]}-{tag}")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment_id)
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", experiment_id)
    try:
        yield OnStack(prod_stack, local_gateway, experiment_id, f"credit-{tag}")
    finally:
        release_store()


def _cli(*args: str, signer: str, **options: Any) -> tuple[int, dict[str, Any]]:
    """``ar-io-mlflow ARGS --format json --trusted-key SIGNER``: exit code and report."""
    done = run_cli(*args, "--format", "json", "--trusted-key", signer, **options)
    assert done.stdout, done.stderr[-3000:]
    return done.returncode, json.loads(done.stdout)


def _passed(report: dict[str, Any]) -> bool:
    return any(report.get(key) is True for key in ("overall", "overall_ok", "ok"))


def _signer(trained: Trained) -> str:
    assert trained.anchored is not None
    return str(trained.anchored["envelope"]["public_key"])


def _stage(report: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in report["stages"] if s["stage"] == name)
    return found


# --- nothing missing goes unnoticed ------------------------------------------------------------


def test_a_missing_postgres_is_named_with_its_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stack_module, "DEBIAN_POSTGRES", tmp_path / "no-postgresql")
    monkeypatch.setenv("PATH", str(tmp_path))  # no initdb on PATH either
    assert stack_module.postgres_bin_dir() is None
    with pytest.raises(StackUnavailable) as missing:
        ProdStack.start(tmp_path / "stack")
    assert "apt-get install -y postgresql" in str(missing.value)
    assert not (tmp_path / "stack").exists()  # nothing was started or made


def test_a_missing_moto_is_named_with_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = stack_module.importlib.util.find_spec
    monkeypatch.setattr(
        stack_module.importlib.util,
        "find_spec",
        lambda name, *args: None if name in ("moto", "psycopg2") else real(name, *args),
    )
    (problem,) = [p for p in stack_module.missing() if "Python package" in p]
    assert "moto[server], psycopg2-binary are not installed" in problem
    assert "pip install -e '.[test]'" in problem


# --- the stack itself ------------------------------------------------------------------------


def test_mlflow_server_restarts_keeping_its_data_and_its_webhook_secrets(
    on_stack: OnStack,
) -> None:
    """After ``restart_mlflow()`` the runs are still in PostgreSQL, the files in S3, and a
    webhook made before the restart still signs its deliveries with its secret (stored
    encrypted with the stack's fixed key), to a receiver on loopback over plain HTTP."""
    stack, secret = on_stack.stack, "whsec-prod-stack"
    with mlflow.start_run() as run:
        mlflow.log_text("kept", "note.txt")
    with Loopback() as receiver:
        receiver.script("POST", "/hook", Reply(200, {"ok": True}))
        hook = on_stack.client.create_webhook(
            name=f"hook-{on_stack.model_name}",
            url=f"{receiver.url}/hook",
            events=["model_version.created"],
            secret=secret,
        )
        try:
            stack.restart_mlflow()
            client = on_stack.client  # the same URL, a new server process
            assert client.get_run(run.info.run_id).info.status == "FINISHED"
            assert mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/note.txt") == "kept"
            result = client.test_webhook(hook.webhook_id)
            assert result.success, result.error_message
        finally:
            on_stack.client.delete_webhook(hook.webhook_id)
        (delivery,) = receiver.requests_to("POST", "/hook")
    headers = {k.lower(): v for k, v in delivery.headers.items()}
    signed = f"{headers['x-mlflow-delivery-id']}.{headers['x-mlflow-timestamp']}.".encode()
    digest = hmac.new(secret.encode(), signed + delivery.body, hashlib.sha256).digest()
    assert headers["x-mlflow-signature"] == "v1," + base64.b64encode(digest).decode()
    assert json.loads(delivery.body)["entity"] == "model_version"


# --- the lifecycle ----------------------------------------------------------------------------


def test_the_whole_lifecycle_over_http_on_postgres_and_s3(
    on_stack: OnStack, tmp_path: Path
) -> None:
    name = on_stack.model_name
    trained = train()
    assert trained.anchored is not None
    assert trained.anchored["anchor_result"] is not None  # uploaded within the deadline
    assert trained.anchored["artifact_status"] == "hashed"
    signer, training_tx = _signer(trained), trained.anchored["tx_id"]
    holdout = mlflow.data.from_pandas(
        FEATURES.tail(10), source="s3://bank/holdout.parquet", name="holdout"
    )
    dataset = anchor(dataset=holdout)
    assert dataset["anchor_result"] is not None

    # what the server stored where: the run and its tag in PostgreSQL, the files in S3
    run = on_stack.client.get_run(trained.run_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    assert (
        on_stack.sql(
            f"SELECT value FROM tags WHERE run_uuid = '{trained.run_id}' "
            "AND key = 'ario.training_tx'"
        )
        == training_tx
    )
    assert (
        on_stack.sql(
            f"SELECT value FROM metrics WHERE run_uuid = '{trained.run_id}' AND key = 'accuracy'"
        )
        == "0.93"
    )
    run_files = on_stack.s3_files(run.info.artifact_uri)
    assert "ario/payload.json" in run_files
    model_files = on_stack.s3_files(model_location(trained.model_uri, on_stack.client))
    assert {"MLmodel", "requirements.txt"} <= set(model_files)

    client = register(name, trained)
    set_alias(client, name, "champion", "1")
    assert (
        on_stack.sql(
            f"SELECT version FROM registered_model_aliases WHERE name = '{name}' "
            "AND alias = 'champion'"
        )
        == "1"
    )
    registration_tx = client.get_model_version(name, "1").tags["ario.registration_tx"]

    # serving: the artifacts come from S3 through the server, checked, then loaded
    model = VerifiedModel(f"models:/{name}@champion")
    decision = model.predict(ROW)
    assert decision.prediction is not None
    assert list(np.asarray(decision.prediction)) == list(
        LogisticRegression().fit(FEATURES, LABELS).predict(ROW)
    )
    assert decision.record["artifact_verified"] is True
    assert (decision.record["model_name"], decision.record["model_version"]) == (name, "1")
    assert decision.wait_for_anchor(30), decision.anchor_error
    assert decision.proof_status == "anchored"
    receipt = decision.receipt()
    assert receipt is not None
    assert receipt.manifest["registration_tx"] == registration_tx
    assert sync(attempts=3)  # the window's witness and every write-back reach MLflow

    # verify, audit, export: the command line, as a user runs it
    code, report = _cli("verify", "run", trained.run_id, signer=signer)
    assert (code, _passed(report)) == (0, True), report
    assert report["checks"]["source_of_truth"]["ok"] is True
    code, report = _cli("verify", "dataset", trained.run_id, "train", signer=signer)
    assert (code, _passed(report)) == (0, True), report
    code, report = _cli("verify", "tx", dataset["tx_id"], signer=signer)
    assert (code, _passed(report)) == (0, True), report
    code, report = _cli("verify", "model", f"{name}/1", signer=signer)
    assert (code, _passed(report)) == (0, True), report
    assert report["checks"]["chain"]["ok"] is True
    code, report = _cli("verify", "decision", decision.decision_id, signer=signer)
    assert (code, _passed(report)) == (0, True), report
    assert report["checks"]["inclusion"]["ok"] is True
    code, report = _cli("audit", f"{name}@champion", signer=signer)
    assert (code, _passed(report)) == (0, True), json.dumps(report)[-3000:]
    assert _stage(report, "alias_current")["ok"] is True
    assert report["artifact_integrity"]["ok"] is True
    assert report["decisions"]["onchain"]["ok"] is True

    evidence = tmp_path / "evidence"
    exported = run_cli("export", f"{name}@champion", "--output", str(evidence))
    assert exported.returncode == 0, exported.stdout + exported.stderr[-3000:]
    manifest = json.loads((evidence / "manifest.json").read_text())
    stages = {r["stage"] for r in manifest["records"]}
    assert {"training", "registration", "alias", "window"} <= stages, stages
    # offline: no MLflow (the stack's URI replaced by a store that does not exist)
    offline = {"MLFLOW_TRACKING_URI": "sqlite:////nonexistent/mlflow.db"}
    bundle = run_cli(
        "verify-bundle", str(evidence), "--format", "json", env=offline, fresh_process=True
    )
    assert bundle.returncode == 0, bundle.stdout[-3000:] + bundle.stderr[-3000:]
    assert json.loads(bundle.stdout)["ok"] is True


def test_a_large_model_is_hashed_from_s3_in_bounded_memory_leaving_no_temp_files(
    on_stack: OnStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 64 MiB file in the model: loading it through ``VerifiedModel`` downloads it from S3
    (the server hands out presigned URLs) and hashes it without holding it in memory, and
    every temporary file is gone once the model is.

    Memory may grow with the number of download threads (MLflow runs two per CPU, up to
    20), not with the file: the test fixes that number by letting MLflow see 2 CPUs, so the
    bound below means the same on any machine."""
    size = 64 << 20
    weights = tmp_path / "weights.bin"
    with open(weights, "wb") as out:
        for seed in range(size >> 20):
            out.write(np.random.default_rng(seed).bytes(1 << 20))
    with mlflow.start_run() as run:
        mlflow.log_input(
            mlflow.data.from_pandas(FEATURES, source="s3://bank/train.parquet", name="train"),
            context="training",
        )
        mlflow.log_metric("accuracy", 0.9)
        info = log_sklearn_model(
            LogisticRegression().fit(FEATURES, LABELS),
            "model",
            pip_requirements=["scikit-learn"],
            code_paths=[str(weights)],
        )
        trained = Trained(run.info.run_id, info.model_uri, anchor())
    assert trained.anchored is not None
    checksums = trained.anchored["payload"]["artifact_checksums"]
    assert "code/weights.bin" in checksums, sorted(checksums)
    stored = on_stack.s3_files(model_location(trained.model_uri, on_stack.client))
    assert stored["code/weights.bin"] == size  # in the bucket, whole
    register(on_stack.model_name, trained)

    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)  # 4 download threads
    gc.collect()
    tracemalloc.start()
    try:
        model = VerifiedModel(f"models:/{on_stack.model_name}/1")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    copies = [p.name for p in scratch.iterdir()]
    assert len(copies) == 1, copies  # the private copy the model was loaded from, only
    assert copies[0].startswith("ario-mlflow-model-")
    decision = model.predict(ROW)
    assert decision.record["artifact_verified"] is True
    assert decision.wait_for_anchor(30), decision.anchor_error
    del model, decision
    gc.collect()
    assert sorted(p.name for p in scratch.iterdir()) == []
    # Python allocations while the model was fetched, hashed and loaded: a few buffers,
    # not the file (the server hands out presigned S3 URLs, and MLflow's client holds each
    # byte range it downloads whole in memory: 100 MiB ranges unless told otherwise)
    assert peak < size // 4, f"loading allocated {peak >> 20} MiB at peak for a 64 MiB file"


# --- tampering behind MLflow's back ------------------------------------------------------------


def test_a_metric_edited_with_psql_fails_verify_run(on_stack: OnStack) -> None:
    trained = train()
    signer, run_id = _signer(trained), trained.run_id
    code, report = _cli("verify", "run", run_id, signer=signer)
    assert (code, _passed(report)) == (0, True), report  # honest first

    for table in ("metrics", "latest_metrics"):
        updated = on_stack.stack.psql(
            f"UPDATE {table} SET value = 0.99 WHERE run_uuid = '{run_id}' AND key = 'accuracy' "
            "RETURNING value"
        )
        assert updated.split() == ["0.99"], (table, updated)
    assert on_stack.client.get_run(run_id).data.metrics["accuracy"] == 0.99  # MLflow serves it

    code, report = _cli("verify", "run", run_id, signer=signer)
    assert code == 1
    assert not _passed(report)
    check = report["checks"]["source_of_truth"]
    assert check["ok"] is False
    assert check["reason"].startswith(
        "live_mlflow_mismatch: metric_history, metrics, metrics_exact"
    ), check


def _replace_model_file(on_stack: OnStack, trained: Trained) -> str:
    """Put another (valid) model's serialized file over this one's, in the bucket; its name."""
    location = model_location(trained.model_uri, on_stack.client)
    files = on_stack.s3_files(location)
    (serialized,) = [n for n in files if n in ("model.skops", "model.pkl")]
    s3, key = on_stack.stack.s3(), f"{on_stack.s3_key(location)}/{serialized}"
    with mlflow.start_run():  # another model, same format: it would load fine
        other = log_sklearn_model(
            LogisticRegression(C=0.01).fit(FEATURES, 1 - LABELS),
            "other",
            pip_requirements=["scikit-learn"],
        )
    other_key = f"{on_stack.s3_key(model_location(other.model_uri, on_stack.client))}/{serialized}"
    original = s3.get_object(Bucket=on_stack.stack.bucket, Key=key)["Body"].read()
    replacement = s3.get_object(Bucket=on_stack.stack.bucket, Key=other_key)["Body"].read()
    assert replacement != original
    s3.put_object(Bucket=on_stack.stack.bucket, Key=key, Body=replacement)
    return serialized


def test_a_model_file_replaced_in_the_bucket_is_refused(on_stack: OnStack) -> None:
    name = on_stack.model_name
    trained = train()
    signer = _signer(trained)
    register(name, trained)
    code, report = _cli("verify", "model", f"{name}/1", signer=signer)
    assert (code, _passed(report)) == (0, True), report  # honest first

    serialized = _replace_model_file(on_stack, trained)

    with pytest.raises(IntegrityError) as refused:
        VerifiedModel(f"models:/{name}/1")
    message = str(refused.value)
    assert "differ from the anchored training record" in message
    assert trained.anchored is not None
    assert trained.anchored["tx_id"] in message
    assert serialized in message
    code, report = _cli("verify", "model", f"{name}/1", signer=signer)
    assert code == 1
    assert not _passed(report)
    check = report["checks"]["source_of_truth"]
    assert check["ok"] is False
    assert check["reason"].startswith("live_mlflow_mismatch: artifact_hash"), check
    code, report = _cli("verify", "run", trained.run_id, signer=signer)
    assert code == 1
    assert report["checks"]["source_of_truth"]["reason"].startswith(
        "live_mlflow_mismatch: artifact_checksums"
    ), report["checks"]["source_of_truth"]


def test_an_alias_moved_with_psql_is_caught(on_stack: OnStack) -> None:
    """@champion is anchored at v1; an UPDATE in the database points it at v2 (an honest,
    anchored version): no alias record says so."""
    name = on_stack.model_name
    first, second = train(), train()
    signer = _signer(first)
    client = register(name, first, second)
    set_alias(client, name, "champion", "1")
    code, report = _cli("audit", f"{name}@champion", signer=signer)
    assert (code, _passed(report)) == (0, True), json.dumps(report)[-3000:]  # honest first

    moved = on_stack.stack.psql(
        f"UPDATE registered_model_aliases SET version = 2 WHERE name = '{name}' "
        "AND alias = 'champion' RETURNING version"
    )
    assert moved.split() == ["2"]
    assert on_stack.client.get_model_version_by_alias(name, "champion").version == "2"

    code, report = _cli("audit", f"{name}@champion", signer=signer)
    assert code == 1
    assert not _passed(report)
    stage = _stage(report, "alias_current")
    assert stage["ok"] is False
    assert stage["reason"].startswith(
        f"alias_unrecorded: @champion points at v2, but its latest alias_changed record "
        f"({stage['tx_id']}"
    ), stage
    assert stage["reason"].endswith("points it at v1"), stage


def test_serving_an_alias_moved_with_psql_is_refused(on_stack: OnStack) -> None:
    """``VerifiedModel("models:/NAME@champion")`` with @champion moved in the database: the
    signed alias history says v1, MLflow says v2. Loading v2 under the alias's name, as if
    it had been promoted, must not pass silently."""
    name = on_stack.model_name
    first, second = train(), train()
    client = register(name, first, second)
    set_alias(client, name, "champion", "1")
    honest = VerifiedModel(f"models:/{name}@champion")
    assert honest.model_version == "1"
    del honest
    on_stack.stack.psql(
        f"UPDATE registered_model_aliases SET version = 2 WHERE name = '{name}' "
        "AND alias = 'champion'"
    )
    with pytest.raises(IntegrityError) as refused:
        VerifiedModel(f"models:/{name}@champion", trusted_keys=(_signer(first),))
    assert "@champion" in str(refused.value)


def test_registering_as_the_readme_does_works_against_the_server(on_stack: OnStack) -> None:
    """The README's step 2, ``client.create_model_version(name, info.model_uri,
    run_id=run.info.run_id)`` with ``ArioMlflowClient`` (a drop-in ``MlflowClient``), on a
    real ``mlflow server``: an MLflow 3 server refuses a ``models:/m-<id>`` source (400,
    "The model_id request parameter must identify the resource that contains the source")
    unless ``model_id`` names the LoggedModel too, which the README's call does not pass."""
    trained = train()
    client = ArioMlflowClient()
    client.create_registered_model(on_stack.model_name)
    version = client.create_model_version(
        on_stack.model_name, trained.model_uri, run_id=trained.run_id
    )
    assert client.wait_for_anchor("registration", on_stack.model_name, version.version, 30)
    registered = on_stack.client.get_model_version(on_stack.model_name, "1")
    assert registered.run_id == trained.run_id
    assert registered.source == trained.model_uri
