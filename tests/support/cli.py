"""Running ``ar-io-mlflow`` the way a user does: real arguments through the console-script
entry point — in this process by default (cheap), or in a fresh one where the process
itself is under test (``fresh_process=True``: its environment at start, its exit, its
interpreter state)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    cwd: str | os.PathLike[str] | None = None,
    fresh_process: bool = False,
) -> subprocess.CompletedProcess[str]:
    """``ar-io-mlflow ARGS`` with this environment plus ``env``, in ``cwd``."""
    if fresh_process:
        return subprocess.run(
            [sys.executable, "-m", "ario_mlflow.cli", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
    with _environment(env or {}), _directory(cwd):
        code, out, err = invoke_cli(list(args))
    return subprocess.CompletedProcess(["ar-io-mlflow", *args], code, out, err)


def invoke_cli(args: list[str]) -> tuple[int, str, str]:
    """``ar-io-mlflow ARGS`` through the console-script entry point, in this process:
    ``(exit code, stdout, stderr)``. An exception escaping ``main`` (a user's traceback)
    propagates and fails the test. Log records of WARNING and above go to stderr, bare,
    as Python's last-resort handler writes them in a process that configures no logging."""
    from ario_mlflow.cli import main

    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)
    handler.setLevel(logging.WARNING)
    root = logging.getLogger()
    root.addHandler(handler)
    code: int
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                main(args)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        root.removeHandler(handler)
    return code, out.getvalue(), err.getvalue()


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """``env`` over ``os.environ`` for the call (MLflow's tracking URI follows it)."""
    import mlflow

    saved = {key: os.environ.get(key) for key in env}
    tracking = mlflow.get_tracking_uri() if "MLFLOW_TRACKING_URI" in env else None
    os.environ.update(env)
    if tracking is not None:
        mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if tracking is not None:
            mlflow.set_tracking_uri(tracking)


@contextlib.contextmanager
def _directory(cwd: str | os.PathLike[str] | None) -> Iterator[None]:
    if cwd is None:
        yield
        return
    before = os.getcwd()
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(before)
