"""Read-only commands name the MLflow store they searched and never create one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import mlflow
import pytest

from tests.support.cli import run_cli

READ_ONLY = (
    ("verify", "run", "0" * 32),
    ("verify", "model", "credit/1"),
    ("audit", "credit/1"),
    ("export", "credit/1", "--output", "evidence"),
)


@pytest.mark.parametrize("command", READ_ONLY, ids=lambda c: " ".join(c[:2]))
def test_a_command_in_the_wrong_directory_creates_nothing_and_names_the_store(
    tmp_path: Path, command: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    result = run_cli(*command, cwd=tmp_path, fresh_process=True)  # where the user stands
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"no MLflow store at sqlite:///{tmp_path / 'mlflow.db'}" in result.stderr
    assert "--tracking-uri" in result.stderr  # how to point it at the right one
    assert list(tmp_path.iterdir()) == []  # no empty mlflow.db, no evidence dir


def test_a_missing_target_names_the_store_it_was_looked_for_in(mlflow_store: str) -> None:
    result = run_cli("verify", "run", "0" * 32)
    assert result.returncode == 2
    assert f"run {'0' * 32} not found (MLflow store: {mlflow_store})" in result.stderr


def test_a_file_that_is_not_an_mlflow_store_is_named(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    sqlite3.connect(other).close()
    result = run_cli("audit", "credit/1", "--tracking-uri", f"sqlite:///{other}")
    assert result.returncode == 2
    assert "is not an MLflow store" in result.stderr
    assert other.stat().st_size == 0  # MLflow did not put its tables into it


def test_a_param_that_is_not_utf8_is_one_line_not_a_traceback(mlflow_store: str) -> None:
    with mlflow.start_run() as run:
        mlflow.log_param("C", "1.0")
    database = mlflow_store.removeprefix("sqlite:///")
    with sqlite3.connect(database) as db:  # an insider writes raw bytes into the row
        db.execute("UPDATE params SET value = CAST(X'FFFE41' AS TEXT) WHERE key = 'C'")
    result = run_cli("verify", "run", run.info.run_id)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "not valid UTF-8" in lines[0]
    assert "column 'value'" in lines[0]
    assert mlflow_store in lines[0]
