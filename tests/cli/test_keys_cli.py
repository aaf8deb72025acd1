"""``ar-io-mlflow`` as a user runs it: help, version, keys show/init, clean errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import ario_mlflow


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ario_mlflow.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_help_is_fast_and_lists_commands() -> None:
    started = time.perf_counter()
    result = _run("--help")
    elapsed = time.perf_counter() - started
    assert result.returncode == 0
    assert "keys" in result.stdout
    assert elapsed < 2.0  # interpreter start included; the CLI itself imports no MLflow


def test_version() -> None:
    result = _run("--version")
    assert result.returncode == 0
    assert ario_mlflow.__version__ in result.stdout


def test_keys_show_before_init_creates_nothing(ario_home: Path) -> None:
    result = _run("keys", "show")
    assert result.returncode == 2
    assert "keys init" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(ario_home.iterdir()) == []


def test_keys_init_then_show_agree(ario_home: Path) -> None:
    created = _run("keys", "init", "--format", "json")
    assert created.returncode == 0, created.stderr
    shown = _run("keys", "show", "--format", "json")
    assert json.loads(created.stdout) == json.loads(shown.stdout)
    assert json.loads(shown.stdout)["source"] == str(ario_home / "keys" / "ed25519_private.json")
    again = _run("keys", "init")
    assert json.loads(shown.stdout)["public_key"] in again.stdout


def test_bad_env_key_is_one_line_not_a_traceback() -> None:
    result = _run("keys", "show", env={"ARIO_MLFLOW_SIGNING_KEY": "%%%"})
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: ARIO_MLFLOW_SIGNING_KEY")
    assert "Traceback" not in result.stderr


def test_unknown_command_is_a_usage_error() -> None:
    result = _run("frobnicate")
    assert result.returncode == 2
    assert "No such command" in result.stderr
