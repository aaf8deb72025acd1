"""A real ``mlflow server`` subprocess on 127.0.0.1, for tests that need a remote store.

``MlflowServer.start(backend_uri, artifacts_dir)`` launches ``python -m mlflow server``
with ``--serve-artifacts`` (artifacts proxied over HTTP, stored under ``artifacts_dir``, a
local directory or an object-store URI such as ``s3://bucket/artifacts``) on a free
loopback port, waits until ``/health`` answers, and returns a handle with ``url``,
``stop()`` (SIGTERM, then SIGKILL) and ``kill()`` (SIGKILL). The server runs in its own
process group, so stopping it also ends the uvicorn workers it spawns; only that group is
ever signalled. Telemetry and background job execution are switched off, ``env`` adds to
(or, with ``None`` values, removes from) the server's environment, and everything the
server prints goes to a log file (``log_path``) whose tail is included in the error if it
does not come up.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

HOST = "127.0.0.1"
#: Environment for the server: no telemetry, no job runner, unbuffered logs.
SERVER_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    "PYTHONUNBUFFERED": "1",
}
_DROPPED_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


def free_port(host: str = HOST) -> int:
    """A port that was free a moment ago (bind to port 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def is_uri(location: str | os.PathLike[str]) -> bool:
    """Whether an artifacts destination is a URI (``s3://…``) rather than a local path."""
    return "://" in str(location)


def _server_options() -> set[str]:
    """Option names ``mlflow server`` accepts in the installed MLflow (2.x or 3.x)."""
    try:
        from mlflow.cli import server

        return {opt for param in server.params for opt in getattr(param, "opts", ())}
    except Exception:  # pragma: no cover - very old or unusual MLflow
        return set()


class MlflowServer:
    """Handle of one ``mlflow server`` process group started by :meth:`start`."""

    def __init__(
        self, process: subprocess.Popen[bytes], url: str, log_path: Path, log_offset: int = 0
    ) -> None:
        self.process = process
        self.url = url
        self.log_path = log_path
        self._log_offset = log_offset

    @classmethod
    def start(
        cls,
        backend_uri: str,
        artifacts_dir: str | os.PathLike[str],
        *,
        port: int | None = None,
        log_path: str | os.PathLike[str] | None = None,
        startup_timeout: float = 60.0,
        extra_args: tuple[str, ...] = (),
        wait: bool = True,
        env: Mapping[str, str | None] | None = None,
        workdir: str | os.PathLike[str] | None = None,
    ) -> MlflowServer:
        """Launch the server and wait until ``GET /health`` answers 200.

        ``artifacts_dir`` is a local directory (created) or a URI (``s3://…``, used as
        given). The server runs in ``workdir`` (default: the artifacts directory's parent;
        required for a URI) and logs to ``log_path`` (default ``workdir/mlflow-server.log``).
        ``env`` is laid over this process's environment (a ``None`` value unsets the
        variable). Raises ``RuntimeError`` with the log tail if it exits or is not healthy
        within ``startup_timeout`` seconds (it is killed first). A port taken between choosing
        and binding is retried with another free port. With ``wait=False`` it returns at
        once (the server boots while the caller does other work); call
        :meth:`wait_until_healthy` before using it.
        """
        artifacts = str(artifacts_dir)
        if not is_uri(artifacts):
            Path(artifacts).mkdir(parents=True, exist_ok=True)
        elif workdir is None:
            raise ValueError(f"an artifacts URI ({artifacts}) needs a workdir")
        directory = Path(workdir) if workdir is not None else Path(artifacts_dir).parent
        log = Path(log_path) if log_path else directory / "mlflow-server.log"
        settings = dict(env or {})
        attempts = 1 if port is not None or not wait else 3
        last_error: RuntimeError | None = None
        for _ in range(attempts):
            chosen = port if port is not None else free_port()
            server = cls._launch(
                backend_uri,
                artifacts,
                chosen,
                log,
                extra_args,
                settings=settings,
                workdir=directory,
            )
            if not wait:
                return server
            try:
                return server.wait_until_healthy(startup_timeout)
            except RuntimeError as exc:
                last_error = exc
                if "address already in use" not in str(exc).lower():
                    raise
        assert last_error is not None
        raise last_error

    @classmethod
    def _launch(
        cls,
        backend_uri: str,
        artifacts: str,
        port: int,
        log_path: Path,
        extra_args: tuple[str, ...],
        *,
        settings: Mapping[str, str | None],
        workdir: Path,
    ) -> MlflowServer:
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            backend_uri,
            "--serve-artifacts",
            "--artifacts-destination",
            artifacts,
            "--host",
            HOST,
            "--port",
            str(port),
        ]
        if "--workers" in _server_options():
            command += ["--workers", "1"]
        command += list(extra_args)
        env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
        env.update(SERVER_ENV)
        for name, value in settings.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        log_path.parent.mkdir(parents=True, exist_ok=True)
        start_offset = log_path.stat().st_size if log_path.exists() else 0
        with open(log_path, "ab") as log:
            log.write(f"$ {' '.join(command)}\n".encode())
            log.flush()
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=str(workdir),
                start_new_session=(os.name == "posix"),
            )
        return cls(process, f"http://{HOST}:{port}", log_path, start_offset)

    def wait_until_healthy(self, timeout: float = 60.0) -> MlflowServer:
        """Block until ``GET /health`` answers 200; on failure kill it and raise with the log
        (interrupted — Ctrl-C, a signal turned into an exception — it is killed too)."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    break
                if self.healthy():
                    return self
                time.sleep(0.2)
        except BaseException:
            self.kill()
            raise
        self.kill()
        raise RuntimeError(
            f"mlflow server on port {self.port} did not become healthy "
            f"(exit status {self.process.returncode}); log {self.log_path}:\n{self.log_tail()}"
        )

    def log_tail(self, size: int = 3000) -> str:
        """The last ``size`` bytes this server wrote to its log."""
        try:
            data = self.log_path.read_bytes()[self._log_offset :]
        except OSError:
            return ""
        return data[-size:].decode(errors="replace")

    @property
    def pid(self) -> int:
        """Process id of the ``mlflow server`` command (leader of its process group)."""
        return self.process.pid

    @property
    def port(self) -> int:
        """The loopback port it listens on."""
        return int(self.url.rsplit(":", 1)[1])

    def healthy(self, timeout: float = 2.0) -> bool:
        """True when ``GET /health`` answers 200."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
        try:
            with opener.open(f"{self.url}/health", timeout=timeout) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _signal(self, signum: int) -> None:
        if os.name == "posix":
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signum)  # the group we created, nothing else
        elif signum == getattr(signal, "SIGKILL", None):  # pragma: no cover - Windows
            self.process.kill()
        else:  # pragma: no cover - Windows
            self.process.terminate()

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM the group, wait up to ``timeout`` s, then SIGKILL; returns exit status."""
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)
        return self.kill()

    def kill(self) -> int:
        """SIGKILL the whole group (also any worker the server left); returns exit status."""
        self._signal(getattr(signal, "SIGKILL", signal.SIGTERM))
        return self.process.wait()

    def __enter__(self) -> MlflowServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
