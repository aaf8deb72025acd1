"""``ar-io-mlflow`` as a user runs it: help, version, keys show/init, clean errors."""

from __future__ import annotations

import json
import time
from pathlib import Path

import ario_mlflow
from tests.support.cli import run_cli


def test_help_is_fast_and_lists_commands() -> None:
    started = time.perf_counter()
    result = run_cli("--help")
    elapsed = time.perf_counter() - started
    assert result.returncode == 0
    assert "keys" in result.stdout
    assert elapsed < 2.0  # interpreter start included; the CLI itself imports no MLflow


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert ario_mlflow.__version__ in result.stdout


def test_keys_show_before_init_creates_nothing(ario_home: Path) -> None:
    result = run_cli("keys", "show")
    assert result.returncode == 2
    assert "keys init" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(ario_home.iterdir()) == []


def test_keys_init_then_show_agree(ario_home: Path) -> None:
    created = run_cli("keys", "init", "--format", "json")
    assert created.returncode == 0, created.stderr
    shown = run_cli("keys", "show", "--format", "json")
    assert json.loads(created.stdout) == json.loads(shown.stdout)
    assert json.loads(shown.stdout)["source"] == str(ario_home / "keys" / "ed25519_private.json")
    again = run_cli("keys", "init")
    assert json.loads(shown.stdout)["public_key"] in again.stdout


def test_bad_env_key_is_one_line_not_a_traceback() -> None:
    result = run_cli("keys", "show", env={"ARIO_MLFLOW_SIGNING_KEY": "%%%"})
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: ARIO_MLFLOW_SIGNING_KEY")
    assert "Traceback" not in result.stderr


def test_unknown_command_is_a_usage_error() -> None:
    result = run_cli("frobnicate")
    assert result.returncode == 2
    assert "No such command" in result.stderr


def test_an_unreachable_tracking_server_is_one_line_not_a_traceback() -> None:
    result = run_cli(
        "verify",
        "run",
        "abc",
        env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: MLflow:")
    assert "Traceback" not in result.stderr
