"""Running ``ar-io-mlflow`` the way a user does: a fresh process, real arguments — or, when
many calls must be cheap, the same entry point in this process."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``ar-io-mlflow ARGS`` in a subprocess (this environment plus ``env``; in ``cwd``)."""
    return subprocess.run(
        [sys.executable, "-m", "ario_mlflow.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def invoke_cli(args: list[str]) -> tuple[int, str, str]:
    """``ar-io-mlflow ARGS`` through the console-script entry point, in this process:
    ``(exit code, stdout, stderr)``. An exception escaping ``main`` (a user's traceback)
    propagates and fails the test."""
    from ario_mlflow.cli import main

    out, err = io.StringIO(), io.StringIO()
    code: int
    with redirect_stdout(out), redirect_stderr(err):
        try:
            main(args)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return code, out.getvalue(), err.getvalue()
