"""Upload services and gateways that lie, stall or flood, over real HTTP.

Each test is an attack or a mistake from the "close the holes" issue: a forged receipt, a
bare 202, a record stranded at a mistyped service, a gateway that trickles, floods,
redirects or answers wrong bytes first. The local gateway produces each fault for real.
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path
from typing import Any

import pytest

from ario_mlflow.arweave.gateway_reader import GatewayReader
from ario_mlflow.errors import ConfigError, GatewayError
from ario_mlflow.localgw import LocalGateway
from ario_mlflow.outbox.anchor import ArweaveAnchor
from ario_mlflow.outbox.journal import DISCARDED, UNCONFIRMED, UPLOADED, Journal
from ario_mlflow.outbox.sync import sync_journal
from ario_mlflow.outbox.workers import UploadTarget
from tests.support.cli import invoke_cli
from tests.support.lifecycle import journal_one_record


def _state(tx_id: str) -> str:
    journal = Journal.at_home(Path(os.environ["ARIO_MLFLOW_HOME"]))
    record = journal.by_tx(tx_id)
    assert record is not None
    return record.state


# --- a lying upload service (item 5) ---------------------------------------------------


def test_a_forged_receipt_is_a_failed_upload(local_gateway: LocalGateway) -> None:
    local_gateway.set_faults(upload={"forge_receipt": True})
    anchor = ArweaveAnchor()
    tx_id = journal_one_record(anchor)
    record = anchor.journal.by_tx(tx_id)
    assert record is not None
    assert anchor.wait(record, timeout=1.5) is None
    assert _state(tx_id) != UPLOADED
    code, out, _ = invoke_cli(["sync"])
    assert code == 1, out
    assert "receipt" in out.lower()
    code, out, _ = invoke_cli(["outbox"])
    assert tx_id in out
    # The honest service takes it: the same record now uploads and sync is clean.
    local_gateway.set_faults()
    code, out, _ = invoke_cli(["sync"])
    assert code == 0, out
    assert _state(tx_id) == UPLOADED


def test_a_bare_202_is_unconfirmed_until_the_item_is_seen(local_gateway: LocalGateway) -> None:
    local_gateway.set_faults(upload={"drop": True})
    anchor = ArweaveAnchor()
    tx_id = journal_one_record(anchor)
    record = anchor.journal.by_tx(tx_id)
    assert record is not None
    assert anchor.wait(record, timeout=1.5) is None
    assert _state(tx_id) == UNCONFIRMED
    code, out, _ = invoke_cli(["outbox", "--format", "json"])
    assert code == 0
    listed = json.loads(out)
    assert listed["counts"][UNCONFIRMED] == 1
    assert [r["state"] for r in listed["records"]] == [UNCONFIRMED]
    code, out, _ = invoke_cli(["sync"])
    assert code == 1, out
    assert "unconfirmed" in out
    local_gateway.set_faults()
    code, out, _ = invoke_cli(["sync"])
    assert code == 0, out
    assert _state(tx_id) == UPLOADED


def test_a_202_for_an_item_the_service_does_hold_is_confirmed(
    local_gateway: LocalGateway,
) -> None:
    anchor = ArweaveAnchor()
    tx_id = journal_one_record(anchor)
    record = anchor.journal.by_tx(tx_id)
    assert record is not None
    assert anchor.wait(record) is not None
    # A second post of a held item answers 202 (a duplicate): confirmed by status/read.
    anchor.journal.retarget(record.id, local_gateway.url)
    report = sync_journal(anchor.journal, target=UploadTarget.configured())
    assert report.complete
    assert _state(tx_id) == UPLOADED


# --- stranded records (item 6) ----------------------------------------------------------


def test_records_journaled_for_a_dead_service_go_to_the_configured_one(
    local_gateway: LocalGateway, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    monkeypatch.setenv("ARIO_MLFLOW_UPLOAD_URL", "http://127.0.0.1:9")  # mistyped
    tx_id = journal_one_record(ArweaveAnchor())
    monkeypatch.setenv("ARIO_MLFLOW_UPLOAD_URL", local_gateway.url)  # fixed
    with caplog.at_level("WARNING", logger="ario_mlflow"):
        code, out, _ = invoke_cli(["sync"])
    assert code == 0, out
    assert _state(tx_id) == UPLOADED
    assert any("was journaled for http://127.0.0.1:9" in r.getMessage() for r in caplog.records)


def test_sync_upload_url_chooses_the_service(
    local_gateway: LocalGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = local_gateway.url
    monkeypatch.setenv("ARIO_MLFLOW_UPLOAD_URL", "http://127.0.0.1:9")
    tx_id = journal_one_record(ArweaveAnchor())
    code, out, _ = invoke_cli(["sync"])
    assert code == 1
    code, out, _ = invoke_cli(["sync", "--upload-url", live])
    assert code == 0, out
    assert _state(tx_id) == UPLOADED


def test_outbox_discard_is_explicit_confirmed_logged_and_counted(
    monkeypatch: pytest.MonkeyPatch, ario_home: Path
) -> None:
    monkeypatch.setenv("ARIO_MLFLOW_UPLOAD_URL", "http://127.0.0.1:9")
    kept, dropped = journal_one_record(ArweaveAnchor()), journal_one_record(ArweaveAnchor())
    code, _, err = invoke_cli(["outbox", "discard"])
    assert code == 2
    assert "name the records" in err
    code, _, err = invoke_cli(["outbox", "discard", dropped])
    assert code == 2
    assert "--yes" in err
    code, out, _ = invoke_cli(["outbox", "discard", dropped, "--yes", "--reason", "test run"])
    assert code == 0, out
    assert _state(dropped) == DISCARDED
    assert _state(kept) != DISCARDED
    log = (ario_home / "discarded.log").read_text().splitlines()
    assert json.loads(log[-1])["tx_id"] == dropped
    assert json.loads(log[-1])["reason"] == "test run"
    assert (ario_home / "discarded.log").stat().st_mode & 0o077 == 0
    code, out, _ = invoke_cli(["outbox", "--format", "json"])
    counts = json.loads(out)["counts"]
    assert counts[DISCARDED] == 1
    assert counts["pending"] == 1
    # sync no longer waits for the abandoned record.
    code, out, _ = invoke_cli(["outbox", "discard", kept, "-y"])
    code, out, _ = invoke_cli(["sync"])
    assert code == 0, out


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ARIO_MLFLOW_UPLOAD_URL", "http://upload .example"),
        ("ARIO_MLFLOW_UPLOAD_URL", "ftp://example.com"),
        ("ARIO_MLFLOW_ARIO_VERIFY_URL", "notaurl"),
        ("ARIO_MLFLOW_GATEWAYS", "https://a.example,http://b c"),
        ("ARIO_MLFLOW_EXIT_FLUSH", "nan"),
        ("ARIO_MLFLOW_CAPTURE_OTEL", "maybe"),
        ("ARIO_MLFLOW_ANCHOR_DEADLINE", "1e9"),
    ],
)
def test_nonsense_settings_are_refused_when_settings_load(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ario_mlflow.config import load_settings

    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_settings()
    code, _, err = invoke_cli(["outbox"])
    assert code != 0
    assert name in err
    assert "Traceback" not in err


# --- hostile gateways (items 11, 12) -------------------------------------------------------


@pytest.fixture
def stored(local_gateway: LocalGateway) -> tuple[str, bytes, bytes]:
    """An uploaded record: ``(tx_id, envelope bytes, data item bytes)``."""
    anchor = ArweaveAnchor()
    tx_id = journal_one_record(anchor)
    record = anchor.journal.by_tx(tx_id)
    assert record is not None
    assert anchor.wait(record) is not None
    return tx_id, record.envelope, record.item


def _second_gateway(
    tmp_path_factory: pytest.TempPathFactory, gateway_key_file: Path, item: bytes
) -> Any:
    """Another honest gateway that holds ``item``."""
    import shutil

    import requests

    directory = tmp_path_factory.mktemp("gw2")
    shutil.copy2(gateway_key_file, directory / gateway_key_file.name)
    gateway = LocalGateway(directory, key_bits=2048).start()
    answer = requests.post(
        f"{gateway.url}/v1/tx/solana",
        data=item,
        headers={"Content-Type": "application/octet-stream"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return gateway


def test_a_trickling_gateway_is_cut_at_the_deadline(
    local_gateway: LocalGateway, stored: tuple[str, bytes, bytes]
) -> None:
    tx_id = stored[0]
    local_gateway.set_faults(read={"trickle": 0.5})
    reader = GatewayReader([local_gateway.url], timeout=(0.5, 1.5))
    started = time.monotonic()
    with pytest.raises(GatewayError, match="within"):
        reader.fetch_raw(tx_id)
    assert time.monotonic() - started < 4.0


def test_a_flooding_gateway_is_cut_at_the_cap(
    local_gateway: LocalGateway, stored: tuple[str, bytes, bytes]
) -> None:
    tx_id = stored[0]
    local_gateway.set_faults(read={"pad_bytes": 100 << 20})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(GatewayError, match=r"larger than|exceeds|too large"):
        GatewayReader([local_gateway.url]).fetch_raw(tx_id)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 30, f"reading a 100 MB answer grew memory by {grown_mb:.0f} MB"


def test_a_redirect_to_another_host_is_refused(
    local_gateway: LocalGateway, stored: tuple[str, bytes, bytes]
) -> None:
    tx_id = stored[0]
    local_gateway.set_faults(read={"redirect": f"http://localhost:{local_gateway.port}/x"})
    with pytest.raises(GatewayError, match="redirect"):
        GatewayReader([local_gateway.url]).fetch_raw(tx_id)


@pytest.mark.parametrize(
    "fault",
    [{"tamper": True}, {"trickle": 0.5}, {"pad_bytes": 4 << 20}, {"fail_rate": 1.0}],
    ids=["wrong-bytes", "trickle", "huge", "error"],
)
def test_one_bad_gateway_first_does_not_hide_a_good_one(
    local_gateway: LocalGateway,
    stored: tuple[str, bytes, bytes],
    tmp_path_factory: pytest.TempPathFactory,
    gateway_key_file: Path,
    fault: dict[str, Any],
) -> None:
    tx_id, envelope, item = stored
    good = _second_gateway(tmp_path_factory, gateway_key_file, item)
    try:
        local_gateway.set_faults(read=fault)
        reader = GatewayReader([local_gateway.url, good.url], timeout=(0.5, 1.5))
        fetched = reader.fetch_json_object(tx_id, check=lambda v: None)
        assert fetched.accepted
        assert fetched.data == envelope
        assert fetched.gateway == good.url
        assert fetched.trail[0].startswith(local_gateway.url)
        assert len(fetched.trail) == 2
    finally:
        good.stop()


def test_a_bad_signature_from_the_first_gateway_falls_back(
    local_gateway: LocalGateway,
    stored: tuple[str, bytes, bytes],
    tmp_path_factory: pytest.TempPathFactory,
    gateway_key_file: Path,
) -> None:
    """A check failure (not a digest mismatch) also moves on to the next gateway."""
    tx_id, _envelope, item = stored
    good = _second_gateway(tmp_path_factory, gateway_key_file, item)
    try:
        reader = GatewayReader([local_gateway.url, good.url])
        seen: list[str] = []

        def check(value: dict[str, Any]) -> str | None:
            seen.append("call")
            return "signature does not verify" if len(seen) == 1 else None

        fetched = reader.fetch_json_object(tx_id, check=check)
        assert fetched.accepted
        assert fetched.gateway == good.url
        assert "signature does not verify" in fetched.trail[0]
    finally:
        good.stop()


def test_verify_tx_refuses_a_path_as_an_id(local_gateway: LocalGateway) -> None:
    code, out, err = invoke_cli(["verify", "tx", "../../__faults"])
    assert code == 2, out + err
    assert "transaction id" in (out + err).lower()
    assert "Traceback" not in err
