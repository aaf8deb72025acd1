"""Running ``ar-io-mlflow`` the way a user does: a fresh process, real arguments."""

from __future__ import annotations

import os
import subprocess
import sys


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``ar-io-mlflow ARGS`` in a subprocess (this environment plus ``env``)."""
    return subprocess.run(
        [sys.executable, "-m", "ario_mlflow.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
