"""The README's quickstart runs exactly as written (online and offline)."""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import mlflow.sklearn
import pytest

from tests.conftest import PROJECT_ROOT
from tests.support.cli import run_cli

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        "name" not in inspect.signature(mlflow.sklearn.log_model).parameters,
        reason="the README's quickstart is written for MLflow 3 (log_model(name=...)); "
        "MLflow 2 has no name= parameter",
    ),
]


def _quickstart() -> str:
    text = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 3
    return "\n".join(blocks)


def _run(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "quickstart.py"
    script.write_text(_quickstart())
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, **env},
    )


def test_quickstart_with_the_local_gateway(tmp_path: Path, local_gateway: Any) -> None:
    result = _run(tmp_path, {})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "uploaded: True" in result.stdout
    assert "'status': 'anchored'" in result.stdout
    # the decision as printed: prediction, decision id, and "pending" (a batched decision
    # is a leaf of its stream's next window until that window is anchored)
    printed = result.stdout.splitlines()[-1].split()
    assert printed[-1] == "pending", printed
    decision_id = printed[-2]
    # it verifies online (after wait_for_anchor closed its window) ...
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    verified = run_cli(
        "verify",
        "decision",
        decision_id,
        "--format",
        "json",
        env=env,
        cwd=tmp_path,
        fresh_process=True,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr[-2000:]
    assert json.loads(verified.stdout)["checks"]["inclusion"]["ok"] is True
    # ... and from an exported bundle, offline
    exported = run_cli(
        "export",
        "credit-scorer@champion",
        "--output",
        "evidence",
        env=env,
        cwd=tmp_path,
        fresh_process=True,
    )
    assert exported.returncode == 0, exported.stdout + exported.stderr[-2000:]
    manifest = json.loads((tmp_path / "evidence" / "manifest.json").read_text())
    (window,) = [r for r in manifest["records"] if r["stage"] == "window"]
    assert decision_id.encode() in (tmp_path / "evidence" / window["decisions"]).read_bytes()
    offline = {**env, "MLFLOW_TRACKING_URI": "sqlite:////nonexistent/x.db"}
    bundle = run_cli("verify-bundle", "evidence", env=offline, cwd=tmp_path, fresh_process=True)
    assert bundle.returncode == 0, bundle.stdout


def test_quickstart_offline_returns_and_keeps_everything(
    tmp_path: Path, fast_network: None
) -> None:
    dead = "http://127.0.0.1:9"
    started = time.monotonic()
    result = _run(
        tmp_path,
        {
            "ARIO_MLFLOW_UPLOAD_URL": dead,
            "ARIO_MLFLOW_GATEWAYS": dead,
            "ARIO_MLFLOW_GATEWAY_HOST": dead,
        },
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "uploaded: False" in result.stdout
    assert time.monotonic() - started < 200
    outbox = subprocess.run(
        [sys.executable, "-m", "ario_mlflow.cli", "outbox", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert json.loads(outbox.stdout)["counts"]["pending"] >= 3  # dataset, training, registration
