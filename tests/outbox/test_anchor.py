"""``ArweaveAnchor`` against the local gateway over real HTTP, including every fault."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests

from ario_mlflow.arweave.dataitem import parse_data_item, verify_data_item
from ario_mlflow.arweave.receipt import verify_receipt
from ario_mlflow.engine import ProofEngine
from ario_mlflow.errors import WalletLoadError
from ario_mlflow.outbox.anchor import ArweaveAnchor, proof_tags
from ario_mlflow.outbox.journal import PENDING, REJECTED, UPLOADED
from ario_mlflow.outbox.sync import sync_journal
from ario_mlflow.outbox.workers import workers_for
from ario_mlflow.proof.canonical import canonical_json


def _envelope(run_id: str = "r" * 32) -> dict[str, Any]:
    return ProofEngine().create_commitment(
        event_type="training_complete",
        subject={"type": "mlflow_run", "run_id": run_id},
        payload_bytes=b'{"run_id":"' + run_id.encode() + b'"}',
        previous_hash="GENESIS",
    )


def _wait_state(anchor: ArweaveAnchor, tx_id: str, state: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        record = anchor.journal.by_tx(tx_id)
        if record is not None and record.state == state:
            return
        workers_for(anchor.journal).wake()
        time.sleep(0.05)
    raise AssertionError(f"{tx_id} not {state} after {seconds}s: {anchor.journal.by_tx(tx_id)}")


def test_upload_returns_tx_whose_raw_bytes_are_the_jcs_envelope(local_gateway: Any) -> None:
    anchor = ArweaveAnchor()
    envelope = _envelope()
    result = anchor.upload_proof(envelope)
    assert result is not None, anchor.last_error
    tx_id = result["tx_id"]
    assert len(tx_id) == 43
    assert result["url"] == f"{local_gateway.url}/{tx_id}"
    raw = requests.get(f"{local_gateway.url}/raw/{tx_id}", timeout=5)
    assert raw.content == canonical_json(envelope)
    assert raw.headers["Content-Type"].startswith("application/json")
    assert anchor.fetch_proof(tx_id) == envelope
    assert verify_receipt(result["receipt"], expected_id=tx_id) is True
    assert anchor.check_status(tx_id)["status"] in {"CONFIRMED", "FINALIZED"}
    record = anchor.journal.by_tx(tx_id)
    assert record is not None
    assert record.state == UPLOADED
    assert anchor.last_error is None


def test_data_item_carries_reference_tags_and_verifies(local_gateway: Any) -> None:
    anchor = ArweaveAnchor()
    envelope = _envelope()
    record = anchor.journal_proof(envelope, extra_tags={"Team": "risk", "App-Name": "evil"})
    item = parse_data_item(record.item)
    assert verify_data_item(item)
    assert item.id == record.tx_id
    assert item.data == canonical_json(envelope)
    names = [(t.name, t.value) for t in item.tags]
    assert names[:6] == [
        ("Content-Type", "application/json"),
        ("App-Name", "ar-io-mlflow"),
        ("App-Version", __import__("ario_mlflow").__version__),
        ("Event-Type", "training_complete"),
        ("Event-Id", envelope["event_id"]),
        ("Chain-Prev", "GENESIS"),
    ]
    assert ("Team", "risk") in names
    assert ("App-Name", "evil") not in names
    assert ("Payload-Hash", envelope["payload_hash"]) in names
    assert anchor.wait(record) is not None
    found = anchor.reader().search_everywhere(tags={"Event-Id": envelope["event_id"]}).nodes
    assert [node.id for node in found] == [record.tx_id]


def test_legacy_record_bearing_proof_tags() -> None:
    legacy = {"record": {"event_type": "prediction", "decision_id": "d-1"}, "previous_hash": "X"}
    values = {t.name: t.value for t in proof_tags(legacy)}
    assert values["Event-Type"] == "prediction"
    assert values["Event-Id"] == "d-1"
    assert values["Chain-Prev"] == "X"


def test_gateway_down_returns_within_deadline_and_sync_anchors_later(
    local_gateway: Any, gateway_dir: Path
) -> None:
    from ario_mlflow.localgw import LocalGateway

    port = local_gateway.port
    local_gateway.stop()
    anchor = ArweaveAnchor()
    envelope = _envelope()
    started = time.monotonic()
    assert anchor.upload_proof(envelope) is None
    assert time.monotonic() - started < anchor.deadline + 1.0
    assert anchor.last_error is not None
    assert "journal" in anchor.last_error
    (record,) = anchor.journal.outstanding()
    assert record.state == PENDING
    assert record.envelope == canonical_json(envelope)

    revived = LocalGateway(gateway_dir, port=port, key_bits=2048).start()
    try:
        report = sync_journal(anchor.journal)
        assert report.complete, report
        assert anchor.fetch_proof(record.tx_id) == envelope
    finally:
        revived.stop()


def test_blackholed_gateway_does_not_hold_the_caller(local_gateway: Any) -> None:
    local_gateway.set_faults(upload={"blackhole": True})
    anchor = ArweaveAnchor()
    started = time.monotonic()
    assert anchor.upload_proof(_envelope()) is None
    assert time.monotonic() - started < anchor.deadline + 1.0
    (record,) = anchor.journal.outstanding()
    local_gateway.set_faults()
    _wait_state(anchor, record.tx_id, UPLOADED, 15)


@pytest.mark.slow  # real backoff between attempts
@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_transient_errors_are_retried_by_the_workers(local_gateway: Any, status: int) -> None:
    local_gateway.set_faults(upload={"fail_next": 2, "status": status})
    anchor = ArweaveAnchor(deadline=10)
    result = anchor.upload_proof(_envelope())
    assert result is not None, anchor.last_error
    record = anchor.journal.by_tx(result["tx_id"])
    assert record is not None
    assert record.attempts == 3


def test_retry_after_is_honoured(local_gateway: Any) -> None:
    local_gateway.set_faults(upload={"fail_next": 1, "status": 429, "retry_after": 3})
    anchor = ArweaveAnchor(deadline=0.5)
    before = time.time()
    assert anchor.upload_proof(_envelope()) is None
    (record,) = anchor.journal.outstanding()
    assert "HTTP 429" in (record.last_error or "")
    assert record.next_attempt_at >= before + 2.9


def test_underfunded_is_distinct_and_kept_for_later(local_gateway: Any) -> None:
    local_gateway.set_faults(upload={"fail_rate": 1.0, "status": 402})
    anchor = ArweaveAnchor(deadline=1)
    assert anchor.upload_proof(_envelope()) is None
    assert "HTTP 402" in (anchor.last_error or "")
    (record,) = anchor.journal.outstanding()
    assert record.state == PENDING  # funding the wallet later must be enough


def test_other_client_errors_fail_fast_and_only_sync_retries_them(local_gateway: Any) -> None:
    local_gateway.set_faults(upload={"fail_next": 1, "status": 400})
    anchor = ArweaveAnchor(deadline=5)
    started = time.monotonic()
    assert anchor.upload_proof(_envelope()) is None
    assert time.monotonic() - started < 2  # no waiting out the deadline on a refusal
    assert "HTTP 400" in (anchor.last_error or "")
    (record,) = anchor.journal.outstanding()
    assert record.state == REJECTED
    assert sync_journal(anchor.journal).complete


def test_reposting_the_same_item_is_idempotent(local_gateway: Any) -> None:
    anchor = ArweaveAnchor()
    result = anchor.upload_proof(_envelope())
    assert result is not None
    record = anchor.journal.by_tx(result["tx_id"])
    assert record is not None
    again = requests.post(
        f"{local_gateway.url}/v1/tx/solana",
        data=record.item,
        headers={"Content-Type": "application/octet-stream"},
        timeout=5,
    )
    assert again.status_code == 202


def test_tampered_gateway_is_skipped_for_an_honest_one(
    local_gateway: Any, gateway_dir: Path, tmp_path: Path, gateway_key_file: Path
) -> None:
    import shutil

    from ario_mlflow.localgw import LocalGateway

    anchor = ArweaveAnchor()
    envelope = _envelope()
    result = anchor.upload_proof(envelope)
    assert result is not None
    record = anchor.journal.by_tx(result["tx_id"])
    assert record is not None
    shutil.copy2(gateway_key_file, tmp_path / gateway_key_file.name)
    honest = LocalGateway(tmp_path, key_bits=2048).start()
    try:
        requests.post(
            f"{honest.url}/tx/solana",
            data=record.item,
            headers={"Content-Type": "application/octet-stream"},
            timeout=5,
        )
        local_gateway.set_faults(read={"tamper": True})
        only_tampered = ArweaveAnchor(gateways=[local_gateway.url])
        assert only_tampered.fetch_proof(record.tx_id) is None
        assert "X-AR-IO-Digest" in (only_tampered.last_error or "")
        both = ArweaveAnchor(gateways=[local_gateway.url, honest.url])
        assert both.fetch_proof(record.tx_id) == envelope
    finally:
        honest.stop()


def test_fetch_failure_names_every_gateway(fast_network: None) -> None:
    anchor = ArweaveAnchor(gateways=["http://127.0.0.1:9", "http://127.0.0.1:10"])
    assert anchor.fetch_proof("x" * 43) is None
    assert anchor.last_error is not None
    assert anchor.last_error.startswith("fetch failed across 2 gateway(s)")
    assert "127.0.0.1:9" in anchor.last_error
    assert "127.0.0.1:10" in anchor.last_error
    assert ArweaveAnchor(gateways=[]).fetch_proof("x" * 43) is None


def test_status_of_unknown_and_unreachable(local_gateway: Any, fast_network: None) -> None:
    assert ArweaveAnchor().check_status("x" * 43) == {"status": "NOT_FOUND"}
    assert ArweaveAnchor(upload_url="http://127.0.0.1:9").check_status("x" * 43) == {
        "status": "UNKNOWN"
    }


def test_configured_gateways_and_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARIO_MLFLOW_GATEWAYS")  # the defaults that follow the host
    monkeypatch.setenv("ARIO_MLFLOW_GATEWAY_HOST", "gw.example")
    anchor = ArweaveAnchor()
    assert anchor.gateways == ["gw.example", "turbo-gateway.com", "ardrive.net"]
    assert anchor.url_for("T") == "https://gw.example/T"
    assert ArweaveAnchor(gateway_host="h").gateways[0] == "h"
    monkeypatch.setenv("ARIO_MLFLOW_GATEWAYS", "http://127.0.0.1:1,b")
    assert ArweaveAnchor(gateway_host="h").gateways == ["http://127.0.0.1:1", "b"]
    assert ArweaveAnchor(gateways=["k"]).gateways == ["k"]


def test_a_bad_caller_wallet_raises_at_construction(tmp_path: Path, ario_home: Path) -> None:
    with pytest.raises(WalletLoadError, match="does not exist"):
        ArweaveAnchor(str(tmp_path / "missing.json"))
    assert not (ario_home / "wallet.json").exists()


def test_reading_never_creates_a_wallet(ario_home: Path, fast_network: None) -> None:
    anchor = ArweaveAnchor(gateways=["http://127.0.0.1:9"])
    anchor.fetch_proof("x" * 43)
    assert not (ario_home / "wallet.json").exists()
    assert anchor.wallet_mode == "persistent"  # created on first need only
    assert anchor.wallet_type == "solana"
    assert (ario_home / "wallet.json").stat().st_mode & 0o777 == 0o600
