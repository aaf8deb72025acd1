"""``ar-io-mlflow sync`` and ``outbox`` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ario_mlflow.engine import ProofEngine
from ario_mlflow.outbox.anchor import ArweaveAnchor
from tests.support.cli import run_cli
from tests.support.lifecycle import journal_one_record


def test_empty_journal_syncs_cleanly() -> None:
    result = run_cli("sync")
    assert result.returncode == 0, result.stderr
    assert "uploaded 0" in result.stdout
    listing = run_cli("outbox")
    assert listing.returncode == 0
    assert "0 pending" in listing.stdout


def test_outbox_lists_and_sync_fails_while_the_service_is_down(
    local_gateway: Any, fast_network: None
) -> None:
    local_gateway.stop()
    tx_id = journal_one_record(ArweaveAnchor())
    listing = run_cli("outbox", "--format", "json")
    assert listing.returncode == 0
    body = json.loads(listing.stdout)
    assert [r["tx_id"] for r in body["records"]] == [tx_id]
    result = run_cli("sync")
    assert result.returncode == 1
    assert "still pending: 1 record(s)" in result.stdout
    assert "Traceback" not in result.stderr
    text = run_cli("outbox")
    assert tx_id in text.stdout
    assert "Connection" in text.stdout  # the last error is shown


def test_sync_uploads_and_reports(local_gateway: Any, gateway_dir: Path) -> None:
    from ario_mlflow.localgw import LocalGateway

    port = local_gateway.port
    local_gateway.stop()
    tx_id = journal_one_record(ArweaveAnchor())
    revived = LocalGateway(gateway_dir, port=port, key_bits=2048).start()
    try:
        result = run_cli("sync", "--format", "json")
        assert result.returncode == 0, result.stdout + result.stderr
        summary = json.loads(result.stdout)
        assert summary["complete"] is True
        assert summary["remaining"]["uploaded"] == 1
        assert ArweaveAnchor().fetch_envelope_bytes(tx_id) is not None
    finally:
        revived.stop()


def test_outbox_shows_spooled_decisions_and_sync_takes_them(
    local_gateway: Any, ario_home: Path
) -> None:
    """Decisions a serving process spooled (its companion gone) are not invisible."""
    from ario_mlflow.outbox.spool_writer import SpoolWriter, entry_line
    from ario_mlflow.proof.canonical import canonical_json

    envelope = ProofEngine().create_commitment(
        event_type="prediction",
        subject={"type": "mlflow_prediction", "decision_id": "d-1"},
        payload_bytes=b"p",
        previous_hash="GENESIS",
    )
    SpoolWriter(ario_home).append(
        entry_line(
            canonical_json(envelope),
            context_key="prediction:d-1",
            upload_url=local_gateway.url,
            gateway_base=local_gateway.url,
        )
    )
    listing = run_cli("outbox", "--format", "json")
    assert json.loads(listing.stdout)["counts"]["spooled_bytes"] > 0
    assert "not journaled yet" in run_cli("outbox").stdout
    result = run_cli("sync", "--format", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["uploaded"] == 1
    assert json.loads(run_cli("outbox", "--format", "json").stdout)["counts"]["spooled_bytes"] == 0
