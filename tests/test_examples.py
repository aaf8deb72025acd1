"""``examples/`` run as a user runs them: subprocesses against a sqlite store and the local
gateway; then what they printed is verified."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlflow
import pytest

from ario_mlflow.verify import verify_receipt
from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow  # the examples, run as scripts

EXAMPLES = PROJECT_ROOT / "examples"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
TX = r"[A-Za-z0-9_-]{43}"


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """A subprocess in the current directory (``mlflow_store``'s) with the test's env."""
    return subprocess.run(
        [sys.executable, *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_train_and_serve_then_serve_and_verify(mlflow_store: str, local_gateway: Any) -> None:
    trained = _run(str(EXAMPLES / "train_and_serve.py"), "--write-csv", "applicants.csv")
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-3000:]
    out = trained.stdout
    assert re.search(rf"^run [0-9a-f]{{32}}: training record {TX}$", out, re.M), out
    assert re.search(rf"^  dataset applicants: record {TX}$", out, re.M), out
    assert re.search(rf"^model credit-scorer/1: registration anchored {TX}$", out, re.M), out
    assert (
        len(re.findall(rf"^decision {UUID}: approved=\w+ anchored in window {TX}$", out, re.M)) == 3
    )
    for what in ("training", "registration", "decision", "decision (offline)"):
        assert f"verify {what}: overall=True" in out, out
    assert out.rstrip().endswith("OK")
    assert Path("applicants.csv").read_text().startswith("income,debt_ratio,age\n")

    # rows from stdin (a header line, then one request per line), waiting for each upload
    requests = "".join(Path("applicants.csv").read_text().splitlines(keepends=True)[:4])
    served = _run(
        str(EXAMPLES / "serve.py"), "--model", "credit-scorer", "--wait", "30", stdin=requests
    )
    assert served.returncode == 0, served.stdout + served.stderr[-3000:]
    assert "(credit-scorer/1), artifact_verified=True" in served.stdout
    rows = re.findall(rf"^(\d+)\t([01])\t({UUID})\tanchored\t({TX})$", served.stdout, re.M)
    assert [row[0] for row in rows] == ["0", "1", "2"], served.stdout

    # what it printed verifies, once the journaled write-backs (trace, witness) are done
    import ario_mlflow.lifecycle.registry
    import ario_mlflow.lifecycle.writebacks  # noqa: F401  (write-back handlers, as the CLI's sync has)
    from ario_mlflow.outbox.anchor import ArweaveAnchor
    from ario_mlflow.outbox.leaves import receipt_for
    from ario_mlflow.outbox.sync import sync_journal

    journal = ArweaveAnchor().journal
    assert sync_journal(journal).complete
    for _, _, decision_id, tx_id in rows:  # each waited for: a window of its own
        receipt = receipt_for(journal, decision_id)
        assert receipt is not None
        assert receipt.tx_id == tx_id
        result = verify_receipt(
            receipt, mlflow_client=mlflow.MlflowClient(), expected_model=("credit-scorer", "1")
        )
        assert result["overall"] is True, result
        assert result["source_of_truth"]["ok"] is True
        assert result["decision"]["decision_id"] == decision_id

    # a swapped model file: the serving example refuses to serve it
    (model_file,) = [p for name in ("model.skops", "model.pkl") for p in Path.cwd().rglob(name)]
    model_file.write_bytes(model_file.read_bytes() + b"tampered")
    refused = _run(str(EXAMPLES / "serve.py"), "--csv", "applicants.csv", "--alias", "champion")
    assert refused.returncode == 2
    assert "refusing to serve models:/credit-scorer@champion" in refused.stderr
    assert model_file.name in refused.stderr
    assert "row\tprediction" not in refused.stdout
