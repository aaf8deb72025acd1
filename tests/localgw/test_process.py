"""The gateway as a subprocess: ``LocalGateway.spawn`` and ``ar-io-mlflow gateway``."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

import pytest
import requests

from ario_mlflow.arweave.signers import Ed25519Signer
from ario_mlflow.localgw import GatewayProcess, LocalGateway
from tests.localgw._support import make_item, upload

READY = re.compile(r"^ar-io-mlflow gateway listening on (http://127\.0\.0\.1:(\d+))$")
CLI = [sys.executable, "-c", "import sys; from ario_mlflow.cli import main; sys.exit(main())"]


def test_spawn_serves_and_stops_cleanly(data_dir: Path, signer: Ed25519Signer) -> None:
    process = LocalGateway.spawn(data_dir, key_bits=2048, finalize_after=0)
    try:
        assert process.url == f"http://127.0.0.1:{process.port}"
        item = make_item(signer)
        with requests.Session() as http:
            assert upload(http, process.url, item).status_code == 200
            status = http.get(f"{process.url}/v1/tx/{item.id}/status", timeout=5).json()
            assert status["status"] == "FINALIZED"
            process.set_faults(upload={"fail_next": 1, "status": 503})
            assert upload(http, process.url, make_item(signer)).status_code == 503
            assert upload(http, process.url, make_item(signer)).status_code == 200
    finally:
        code = process.stop()
    assert code == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{process.url}/health", timeout=2)


def test_killed_gateway_keeps_its_items(data_dir: Path, signer: Ed25519Signer) -> None:
    item = make_item(signer, b"survives SIGKILL")
    with LocalGateway.spawn(data_dir, key_bits=2048) as process, requests.Session() as http:
        assert upload(http, process.url, item).status_code == 200
        assert process.kill() == -signal.SIGKILL
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{process.url}/health", timeout=2)
    with LocalGateway.spawn(data_dir, key_bits=2048, faults={"read": {"latency": 0}}) as again:
        assert requests.get(f"{again.url}/raw/{item.id}", timeout=5).content == b"survives SIGKILL"


def test_spawn_failure_is_reported(tmp_path: Path) -> None:
    (tmp_path / "gateway-wallet.json").write_text("not json")
    with pytest.raises(RuntimeError, match="did not start"):
        GatewayProcess.start(tmp_path, startup_timeout=30)


def _lines(stream: IO[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return lines


def test_cli_prints_the_port_and_exits_0_on_sigterm(data_dir: Path) -> None:
    command = [*CLI, "gateway", "--port", "0", "--data-dir", str(data_dir), "--key-bits", "2048"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        try:
            line = _lines(process.stdout).get(timeout=30)
            match = READY.match(line)
            assert match, line
            url, port = match.group(1), int(match.group(2))
            assert port > 0
            assert requests.get(f"{url}/health", timeout=5).status_code == 200
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_cli_sigint_exits_0_and_defaults_to_ario_home(ario_home: Path) -> None:
    command = [*CLI, "gateway", "--key-bits", "2048", "--fault", "read:tamper"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        try:
            assert READY.match(_lines(process.stdout).get(timeout=30))
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=10) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        assert process.stderr is not None
        summary = process.stderr.read()
    assert (ario_home / "gateway" / "gateway.sqlite3").is_file()
    assert "tamper" in summary


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host", "0.0.0.0"], "non-loopback"),
        (["--fault", "upload:fail_rate=7"], "fail_rate"),
        (["--fault", "sideways"], "FAMILY"),
    ],
)
def test_cli_refuses_bad_setups(data_dir: Path, args: list[str], message: str) -> None:
    completed = subprocess.run(
        [*CLI, "gateway", "--data-dir", str(data_dir), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert completed.returncode == 2
    assert message in completed.stderr
    assert completed.stdout == ""
