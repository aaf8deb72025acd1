"""Shared fixtures: conformance vectors in place, and an isolated $ARIO_MLFLOW_HOME."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
VECTORS_DIR = Path(
    os.environ.get("ARIO_MLFLOW_VECTORS", PROJECT_ROOT.parent / "shared" / "vectors")
)

_OUR_VARIABLES = (
    "ARIO_MLFLOW_SIGNING_KEY",
    "ARIO_MLFLOW_ARWEAVE_WALLET",
    "ARIO_MLFLOW_UPLOAD_URL",
    "ARIO_MLFLOW_GATEWAY_HOST",
    "ARIO_MLFLOW_GATEWAYS",
    "ARIO_MLFLOW_ARIO_VERIFY_URL",
    "ARIO_MLFLOW_TRUSTED_KEYS",
)


@pytest.fixture(scope="session")
def vectors_dir() -> Path:
    """``../shared/vectors`` (read in place); a missing corpus is an error, not a skip."""
    if not VECTORS_DIR.is_dir():
        pytest.fail(f"conformance vectors not found at {VECTORS_DIR} (set ARIO_MLFLOW_VECTORS)")
    return VECTORS_DIR


@pytest.fixture(autouse=True)
def ario_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Every test gets its own empty $ARIO_MLFLOW_HOME and none of the user's settings."""
    home = tmp_path_factory.mktemp("ario-home")
    for name in _OUR_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ARIO_MLFLOW_HOME", str(home))
    return home
