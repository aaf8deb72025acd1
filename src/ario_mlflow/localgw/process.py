"""A local gateway in a subprocess, controlled by its own process handle.

For tests where the gateway must die (SIGKILL), restart, or be driven from another
process: faults are changed over ``POST /__faults``. The handle only ever signals the
process it started.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from ario_mlflow.localgw.runner import READY_PREFIX

LOG_FILENAME = "gateway.log"


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    """Forward the child's stdout lines, then keep draining so it never blocks."""
    try:
        for line in stream:
            lines.put(line)
    except (OSError, ValueError):
        pass
    finally:
        stream.close()
        lines.put(None)


class GatewayProcess:
    """Handle of a gateway subprocess: ``url``, ``stop()``, ``kill()``, context manager."""

    def __init__(self, process: subprocess.Popen[str], url: str, data_dir: Path) -> None:
        self.process = process
        self.url = url
        self.data_dir = data_dir

    @classmethod
    def start(
        cls,
        data_dir: str | Path,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        key_bits: int = 4096,
        finalize_after: float | None = None,
        faults: dict[str, Any] | None = None,
        fault_seed: int | None = None,
        allow_remote: bool = False,
        startup_timeout: float = 60.0,
        env: dict[str, str] | None = None,
    ) -> GatewayProcess:
        """Launch ``python -m ario_mlflow.localgw`` and wait until it listens."""
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "ario_mlflow.localgw",
            "--data-dir",
            str(data_dir),
            "--host",
            host,
            "--port",
            str(port),
            "--key-bits",
            str(key_bits),
        ]
        if finalize_after is not None:
            command += ["--finalize-after", str(finalize_after)]
        if faults:
            command += ["--faults", json.dumps(faults)]
        if fault_seed is not None:
            command += ["--fault-seed", str(fault_seed)]
        if allow_remote:
            command.append("--allow-remote")
        child_env = dict(os.environ if env is None else env)
        source_root = str(Path(__file__).resolve().parents[2])
        child_env["PYTHONPATH"] = os.pathsep.join(
            filter(None, (source_root, child_env.get("PYTHONPATH")))
        )
        log_path = data_dir / LOG_FILENAME
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                text=True,
                env=child_env,
            )
        assert process.stdout is not None
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True).start()
        deadline = time.monotonic() + startup_timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = lines.get(timeout=max(0.01, remaining))
            except queue.Empty:
                line = ""
            if line and line.startswith(READY_PREFIX):
                return cls(process, line[len(READY_PREFIX) :].strip(), data_dir)
            if line is None or remaining <= 0:
                handle = cls(process, "", data_dir)
                handle.kill()
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(
                    f"local gateway subprocess did not start (exit {process.returncode}): {tail}"
                )

    @property
    def pid(self) -> int:
        """Process id of the gateway."""
        return self.process.pid

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self.url.rsplit(":", 1)[1])

    @property
    def returncode(self) -> int | None:
        """Exit status once it has exited, else ``None``."""
        return self.process.poll()

    def set_faults(self, faults: dict[str, Any] | None = None, **families: Any) -> None:
        """Replace its faults over ``POST /__faults`` (same shape as ``LocalGateway``)."""
        import requests

        merged = dict(faults or {})
        merged.update(families)
        response = requests.post(f"{self.url}/__faults", json=merged, timeout=10)
        response.raise_for_status()

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; returns the exit status."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        return self.kill()

    def kill(self) -> int:
        """SIGKILL (a gateway that dies without cleaning up); returns the exit status."""
        if self.process.poll() is None:
            self.process.kill()
        return self.process.wait()

    def __enter__(self) -> GatewayProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
