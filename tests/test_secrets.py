"""A tracking URI's credentials are used, never recorded (journal, chain, reports, logs).

The server here is MLflow's own basic-auth app, so a request without the password is
refused: a write-back that succeeds proves the credentials were used, and a scan of every
file we wrote proves they were not kept.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from ario_mlflow.lifecycle.training import anchor
from ario_mlflow.lifecycle.uris import recorded_uri, usable_uri
from ario_mlflow.outbox.anchor import ArweaveAnchor
from ario_mlflow.outbox.sync import sync_journal
from ario_mlflow.redaction import public_uri, redacted_text
from tests.support.lifecycle import journal_one_record, release_store, train
from tests.support.mlflow_server import MlflowServer, free_port

pytestmark = pytest.mark.slow  # an authenticated MLflow server, and processes

PASSWORD = "Secr3t-pw-4-test"
SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.mark.parametrize(
    ("uri", "public"),
    [
        ("http://alice:pw@mlflow.internal:5000", "http://mlflow.internal:5000"),
        ("https://token@host/path", "https://host/path"),
        ("postgresql://u:p@db:5432/mlflow", "postgresql://db:5432/mlflow"),
        ("databricks://profile", "databricks://profile"),
        ("http://h/?api_key=1&x=2&Token=3&sig=4", "http://h/?x=2"),
        ("https://h/p?X-Amz-Signature=abc&X-Amz-Credential=d&region=eu", "https://h/p?region=eu"),
        ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
        ("/abs/mlruns", "/abs/mlruns"),
    ],
)
def test_public_form_has_no_credentials(uri: str, public: str) -> None:
    assert public_uri(uri) == public


def test_credentials_are_found_again_in_this_process_and_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "http://bob:hunter2@tracking.example:5000"
    assert recorded_uri(secret) == "http://tracking.example:5000"
    assert usable_uri("http://tracking.example:5000") == secret
    other = "http://tracking.other:5000"
    assert usable_uri(other) == other  # nothing known: the recorded form as it is
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://carol:pw@tracking.other:5000")
    assert usable_uri(other) == "http://carol:pw@tracking.other:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://carol:pw@elsewhere:5000")
    assert usable_uri(other) == other  # another server's credentials are not lent


def test_an_error_quoting_a_url_keeps_no_password(ario_home: Path) -> None:
    message = "API request to http://admin:pw1@host:5000/api/2.0/x failed (see https://u@h/)"
    assert (
        redacted_text(message)
        == "API request to http://host:5000/api/2.0/x failed (see https://h/)"
    )
    arweave = ArweaveAnchor()
    tx_id = journal_one_record(arweave)
    record = arweave.journal.by_tx(tx_id)
    assert record is not None
    arweave.journal.mark_failed_attempt(record.id, message, 60)
    assert _files_holding(ario_home, b"pw1") == []


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    root = tmp_path_factory.mktemp("auth-server")
    config = root / "basic_auth.ini"
    config.write_text(
        textwrap.dedent(f"""\
            [mlflow]
            default_permission = NO_PERMISSIONS
            database_uri = sqlite:///{root / "auth.db"}
            admin_username = admin
            admin_password = {PASSWORD}
            authorization_function = mlflow.server.auth:authenticate_request_basic_auth
            """)
    )
    server_env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "csrf-key-for-tests",
    }
    saved = {name: os.environ.get(name) for name in server_env}
    os.environ.update(server_env)
    try:
        handle = MlflowServer.start(
            f"sqlite:///{root / 'backend.db'}",
            root / "artifacts",
            extra_args=("--app-name", "basic-auth"),
        )
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    yield handle
    handle.stop()


@pytest.fixture
def secret_uri(auth_server: MlflowServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    uri = auth_server.url.replace("http://", f"http://admin:{PASSWORD}@")
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    yield uri
    release_store()


def _files_holding(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_a_password_in_the_tracking_uri_is_used_and_never_recorded(
    auth_server: MlflowServer,
    secret_uri: str,
    local_gateway: Any,
    gateway_dir: Path,
    ario_home: Path,
) -> None:
    with pytest.raises(Exception, match=r"401|Unauthorized|credentials"):
        MlflowClient(auth_server.url).search_experiments()  # the server does want them
    trained = train(anchored=False)
    with mlflow.start_run(run_id=trained.run_id):
        result = anchor(metadata={"include_tracking_uri": True})
    report = sync_journal(ArweaveAnchor().journal)
    assert report.remaining["writebacks_pending"] == 0
    tags = MlflowClient(secret_uri).get_run(trained.run_id).data.tags
    assert tags["ario.training_tx"] == result["tx_id"]  # written back with the password

    payload = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(
                run_id=trained.run_id, artifact_path="ario/payload.json"
            )
        ).read_bytes()
    )
    assert payload["mlflow_tracking_uri"] == auth_server.url
    envelope = ArweaveAnchor().fetch_proof(result["tx_id"])
    assert envelope["subject"]["tracking_uri"] == auth_server.url
    needle = PASSWORD.encode()
    assert _files_holding(ario_home, needle) == []  # journal, spool, logs
    assert _files_holding(gateway_dir, needle) == []  # what went on chain
    journal_files = [p for p in ario_home.rglob("*") if p.is_file() and "journal" in p.name]
    assert journal_files
    for path in journal_files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


_JOURNAL_ONE_WRITEBACK = """
import sys
from ario_mlflow.outbox.anchor import ArweaveAnchor
from ario_mlflow.engine import ProofEngine
from ario_mlflow.lifecycle.handlers import install
from ario_mlflow.lifecycle.writebacks import set_tags_writeback

install()

envelope = ProofEngine().create_commitment(
    event_type="dataset", subject={"type": "mlflow_dataset"}, payload_bytes=b"d",
    previous_hash="GENESIS",
)
record = ArweaveAnchor().journal_proof(envelope, writebacks=[set_tags_writeback(
    "run", {"ario.note": "{tx_id}"}, tracking_uri=sys.argv[1], run_id=sys.argv[2])])
print(record.tx_id)
"""


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, check=False, capture_output=True, text=True, env=env, timeout=120
    )


def test_a_later_process_takes_the_credentials_from_its_own_environment(
    auth_server: MlflowServer, secret_uri: str, local_gateway: Any, ario_home: Path
) -> None:
    run_id = MlflowClient(secret_uri).create_run("0").info.run_id
    env = {
        **os.environ,
        "PYTHONPATH": SRC,
        "ARIO_MLFLOW_UPLOAD_URL": f"http://127.0.0.1:{free_port()}",
    }
    env.pop("MLFLOW_TRACKING_URI")
    journaled = _run([sys.executable, "-c", _JOURNAL_ONE_WRITEBACK, secret_uri, run_id], env)
    assert journaled.returncode == 0, journaled.stderr
    assert _files_holding(ario_home, PASSWORD.encode()) == []

    sync = [sys.executable, "-m", "ario_mlflow.cli", "sync", "--upload-url", local_gateway.url]
    without = _run(sync, env)
    assert without.returncode != 0  # the recorded form alone is refused by the server
    assert PASSWORD not in without.stdout + without.stderr
    assert "ario.note" not in MlflowClient(secret_uri).get_run(run_id).data.tags

    with_env = _run(sync, {**env, "MLFLOW_TRACKING_URI": secret_uri})
    assert with_env.returncode == 0, with_env.stdout + with_env.stderr
    assert PASSWORD not in with_env.stdout + with_env.stderr
    assert (
        MlflowClient(secret_uri).get_run(run_id).data.tags["ario.note"] == journaled.stdout.strip()
    )
