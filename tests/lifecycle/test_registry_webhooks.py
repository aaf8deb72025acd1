"""Promotions that bypass our client, on the production stack (PostgreSQL + S3 behind
``mlflow server``): MLflow's real webhook delivery to ``ar-io-mlflow webhooks serve``,
``reconcile`` for what the receiver missed, and ``history NAME@ALIAS --at``.

Registry changes here are made with plain ``MlflowClient`` calls over the server's REST
API — what the MLflow UI does — never through ``ArioMlflowClient``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import mlflow
import pytest

from ario_mlflow.errors import IntegrityError
from ario_mlflow.lifecycle.serving import VerifiedModel
from tests.support.cli import run_cli
from tests.support.lifecycle import Trained, release_store, train
from tests.support.prod_stack import AWS_UNSET, ProdStack
from tests.support.webhooks import signed_delivery

pytestmark = pytest.mark.slow

SECRET = "webhook-secret-for-tests-0123456789"


@dataclass
class Receiver:
    """``ar-io-mlflow webhooks serve`` as a process of its own, with its own home."""

    process: subprocess.Popen[str]
    url: str
    log: Path

    def stop(self) -> str:
        """SIGTERM, wait for a clean exit; what it logged."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.log.read_text()


def start_receiver(home: Path, env: dict[str, str], log: Path) -> Receiver:
    process = subprocess.Popen(
        [sys.executable, "-m", "ario_mlflow.cli", "webhooks", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
        env={**env, "ARIO_MLFLOW_HOME": str(home), "ARIO_MLFLOW_WEBHOOK_SECRET": SECRET},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("listening on http://127.0.0.1:"), (line, log.read_text())
    return Receiver(process, line.split()[2], log)


@dataclass
class Registry:
    stack: ProdStack
    name: str
    env: dict[str, str]
    tmp: Path

    @property
    def client(self) -> mlflow.MlflowClient:
        return mlflow.MlflowClient(self.stack.tracking_uri)

    def version_of(self, trained: Trained) -> str:
        """Register ``trained`` with plain MLflow (as the UI does): its version."""
        version = self.client.create_model_version(
            self.name,
            trained.model_uri,
            run_id=trained.run_id,
            model_id=trained.model_uri.removeprefix("models:/"),
        )
        return str(version.version)

    def history(self, *args: str) -> tuple[int, dict[str, Any]]:
        done = run_cli("history", f"{self.name}@champion", "--format", "json", *args)
        assert done.stdout, done.stderr[-3000:]
        return done.returncode, json.loads(done.stdout)


@pytest.fixture
def registry(
    prod_stack: ProdStack,
    local_gateway: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Registry]:
    for name, value in prod_stack.env.items():
        monkeypatch.setenv(name, value)
    for name in AWS_UNSET:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ARIO_MLFLOW_WEBHOOK_SECRET", SECRET)
    mlflow.set_tracking_uri(prod_stack.tracking_uri)
    tag = uuid.uuid4().hex[:8]
    experiment_id = mlflow.create_experiment(f"hooks-{request.node.name[:50]}-{tag}")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment_id)
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", experiment_id)
    name = f"credit-{tag}"
    mlflow.MlflowClient().create_registered_model(name)
    try:
        yield Registry(prod_stack, name, dict(os.environ), tmp_path)
    finally:
        release_store()


def wait_until(predicate: Any, timeout: float, what: str) -> float:
    """Poll ``predicate`` until true; the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.25)
    raise AssertionError(f"not within {timeout:g}s: {what}")


def recorded(history: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in history["periods"] if p["kind"] == "recorded"]


def test_moves_made_over_rest_are_anchored_by_the_receiver_or_by_reconcile(
    registry: Registry,
) -> None:
    first, second, third = train(), train(), train()
    receiver = start_receiver(registry.tmp / "receiver-home", registry.env, registry.tmp / "r.log")
    try:
        done = run_cli("webhooks", "create", receiver.url, "--name", f"ario-{registry.name}")
        assert done.returncode == 0, done.stderr
        v1, v2 = registry.version_of(first), registry.version_of(second)

        # an alias moved through the server's REST API, with the receiver running
        registry.client.set_registered_model_alias(registry.name, "champion", v1)
        took = wait_until(
            lambda: [p["version"] for p in recorded(registry.history()[1])] == [v1],
            30,
            "the receiver anchored @champion -> v1",
        )
        assert took < 15, f"anchored only after {took:.1f}s"
        before_move = datetime.now(timezone.utc)
        time.sleep(1.0)
        registry.client.set_registered_model_alias(registry.name, "champion", v2)
        wait_until(
            lambda: [p["version"] for p in recorded(registry.history()[1])] == [v1, v2],
            30,
            "the receiver anchored @champion -> v2",
        )
        # registrations made with plain MLflow were anchored too (after their grace time)
        wait_until(
            lambda: all(
                registry.client.get_model_version(registry.name, v).tags.get("ario.registration_tx")
                for v in (v1, v2)
            ),
            40,
            "the receiver anchored both registrations",
        )
    finally:
        log = receiver.stop()
    assert receiver.process.returncode == 0, log
    assert "accepted model_version_alias.created" in log

    code, history = registry.history()
    assert code == 0, history
    moves = recorded(history)
    assert [m["observed_by"] for m in moves] == ["webhook", "webhook"]
    assert all(m["changed_by"] is None for m in moves)  # MLflow does not say who
    assert history["gaps"] == 0

    code, at = registry.history("--at", before_move.isoformat())
    assert code == 0, at
    assert at["version"] == v1
    assert at["at_status"] == "version"

    # a move while the receiver is down: nobody records it ...
    v3 = registry.version_of(third)
    registry.client.set_registered_model_alias(registry.name, "champion", v3)
    code, stale = registry.history()
    assert code == 0
    assert stale["periods"][-1]["kind"] == "uncertain"  # the registry is ahead: a gap
    assert stale["periods"][-1]["candidates"] == [v2, v3]

    # ... until reconcile finds it (and the unrecorded registration of v3)
    done = run_cli("reconcile", registry.name, "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    kinds = sorted((f["kind"], f["key"]) for f in report["found"])
    assert kinds == [("alias", "champion"), ("registration", v3)]
    assert all(f["tx_id"] for f in report["found"])

    code, after = registry.history()
    assert code == 0, after
    last = recorded(after)[-1]
    assert (last["version"], last["observed_by"], last["time_exact"]) == (v3, "reconcile", False)
    # the time of the unobserved move is not known: between the v2 record and the finding
    assert after["periods"][-2]["kind"] == "uncertain"
    assert after["periods"][-2]["candidates"] == [v2, v3]

    # idempotent: a second run finds nothing
    again = json.loads(run_cli("reconcile", registry.name, "--format", "json").stdout)
    assert again["found"] == []
    assert again["ok"] is True

    # v1 was registered by the receiver (its own host, its own key), trained here: a
    # lineage with two issuers is served only when both are pinned
    with pytest.raises(IntegrityError, match="unless both are pinned"):
        VerifiedModel(f"models:/{registry.name}/{v1}")
    keys = [_public_key(home) for home in (registry.tmp / "receiver-home", None)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ARIO_MLFLOW_TRUSTED_KEYS", ",".join(keys))
        assert VerifiedModel(f"models:/{registry.name}/{v1}").model_version == v1

    # a new receiver (a new host, an empty journal) sees the alias deleted: MLflow's
    # payload names no version, the records say where it pointed, the record stays readable
    fresh = start_receiver(registry.tmp / "new-home", registry.env, registry.tmp / "r2.log")
    try:
        done = run_cli("webhooks", "create", fresh.url, "--name", f"ario2-{registry.name}")
        assert done.returncode == 0, done.stderr
        registry.client.delete_registered_model_alias(registry.name, "champion")
        wait_until(
            lambda: recorded(registry.history()[1])[-1]["version"] is None,
            30,
            "the new receiver anchored the deletion",
        )
    finally:
        fresh.stop()
    code, deleted = registry.history()
    assert code == 0, deleted["problems"]
    (gone,) = [r for r in deleted["records"] if r["version"] is None]
    assert gone["previous_version"] == v3
    assert gone["previous_version_known"] is False


def _public_key(home: Path | None) -> str:
    """The signing identity of an installation (``None``: this test's own)."""
    env = {"ARIO_MLFLOW_HOME": str(home)} if home is not None else None
    done = run_cli("keys", "show", "--format", "json", env=env)
    return str(json.loads(done.stdout)["public_key"])


def _post(url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _delivery(
    name: str, delivery_id: str, *, stamp: int | None = None, secret: str = SECRET
) -> tuple[dict[str, str], bytes]:
    data = {"name": name, "alias": "champion", "version": "1"}
    return signed_delivery(data, secret, delivery_id=delivery_id, stamp=stamp)


def test_forged_replayed_and_stale_deliveries_are_refused_and_logged(
    registry: Registry,
) -> None:
    registry.version_of(train())
    receiver = start_receiver(registry.tmp / "receiver-home", registry.env, registry.tmp / "r.log")
    try:
        genuine = _delivery(registry.name, "genuine-1")
        assert _post(receiver.url, *genuine)[0] == 200
        status, answer = _post(receiver.url, *genuine)  # the same delivery again
        assert (status, answer["reason"]) == (409, "replayed")
        forged = _delivery(registry.name, "forged-1", secret="guessed-secret-xxxxxxxxxxxx")
        status, answer = _post(receiver.url, *forged)
        assert (status, answer["reason"]) == (401, "forged")
        stale = _delivery(registry.name, "stale-1", stamp=int(time.time()) - 3600)
        status, answer = _post(receiver.url, *stale)
        assert (status, answer["reason"]) == (400, "stale")
        headers, body = _delivery(registry.name, "unsigned-1")
        del headers["X-MLflow-Signature"]
        assert _post(receiver.url, headers, body)[1]["reason"] == "unsigned"
    finally:
        log = receiver.stop()
    assert "REJECTED replayed delivery" in log
    assert "REJECTED forged delivery" in log
    assert "REJECTED stale delivery" in log
    # only the genuine delivery became a record
    from ario_mlflow.outbox.journal import Journal

    journal = Journal.at_home(registry.tmp / "receiver-home")
    assert len(journal.tasks_for(f"alias:{registry.name}:champion")) == 1


def test_a_receiver_without_a_secret_refuses_to_start(registry: Registry) -> None:
    env = {k: v for k, v in registry.env.items() if k != "ARIO_MLFLOW_WEBHOOK_SECRET"}
    done = subprocess.run(
        [sys.executable, "-m", "ario_mlflow.cli", "webhooks", "serve", "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "ARIO_MLFLOW_WEBHOOK_SECRET" in done.stderr
    assert "Traceback" not in done.stderr
