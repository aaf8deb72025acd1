"""The local gateway in process: the whole upload → read → verify path with no socket,
and the transport's contract (deadline, body cap, origin) kept exactly as over TCP."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ario_mlflow.arweave.transport import Request
from ario_mlflow.engine import ProofEngine
from ario_mlflow.errors import DeadlineExceededError, ResponseTooLargeError, TransportError
from ario_mlflow.localgw import LocalGateway
from ario_mlflow.localgw.faults import FaultSpec
from ario_mlflow.localgw.in_process import IN_PROCESS_URL
from ario_mlflow.outbox.anchor import ArweaveAnchor
from ario_mlflow.proof.envelope import verify_envelope


@pytest.fixture
def gateway(data_dir: Path) -> Iterator[LocalGateway]:
    with LocalGateway(data_dir, key_bits=2048, finalize_after=0.3).in_process() as served:
        yield served


def test_it_opens_no_socket(gateway: LocalGateway) -> None:
    assert gateway.url == IN_PROCESS_URL
    assert gateway._running_server().socket.getsockname()[1] == 0  # never bound
    assert not [t for t in threading.enumerate() if t.name.startswith("ario-localgw-")]


def test_anchor_upload_read_and_verify_without_a_socket(gateway: LocalGateway) -> None:
    anchor = ArweaveAnchor(
        upload_url=gateway.url, gateways=[gateway.url], transport=gateway.transport
    )
    envelope = ProofEngine().create_commitment(
        event_type="dataset",
        subject={"type": "mlflow_dataset", "name": "d"},
        payload_bytes=b"{}",
        previous_hash="GENESIS",
    )
    result = anchor.upload_proof(envelope)
    assert result is not None, anchor.last_error
    assert result["receipt"]["id"] == result["tx_id"]
    fetched = anchor.fetch_proof(result["tx_id"])
    assert fetched == envelope
    assert verify_envelope(fetched).ok
    assert anchor.check_status(result["tx_id"])["status"] in {"CONFIRMED", "FINALIZED"}


def test_a_black_hole_is_cut_at_the_deadline(gateway: LocalGateway) -> None:
    gateway.set_faults(read=FaultSpec(blackhole=True))
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError):
        gateway.transport.send(
            Request("GET", f"{gateway.url}/raw/{'a' * 43}", timeout=0.5, max_body=1024)
        )
    assert time.monotonic() - started < 2.0
    gateway.set_faults()


def test_a_huge_answer_is_refused_at_the_cap(gateway: LocalGateway) -> None:
    anchor = ArweaveAnchor(
        upload_url=gateway.url, gateways=[gateway.url], transport=gateway.transport
    )
    envelope = ProofEngine().create_commitment(
        event_type="dataset",
        subject={"type": "mlflow_dataset"},
        payload_bytes=b"{}",
        previous_hash="GENESIS",
    )
    tx_id = anchor.upload_proof(envelope)["tx_id"]  # type: ignore[index]
    gateway.set_faults(read=FaultSpec(pad_bytes=50_000_000))
    with pytest.raises(ResponseTooLargeError):
        gateway.transport.send(
            Request("GET", f"{gateway.url}/raw/{tx_id}", timeout=10, max_body=64 * 1024)
        )


def test_another_origin_cannot_be_reached(gateway: LocalGateway) -> None:
    with pytest.raises(TransportError, match="cannot connect"):
        gateway.transport.send(Request("GET", "http://127.0.0.1:9/info", timeout=1, max_body=10))


def test_a_redirect_elsewhere_is_not_followed(gateway: LocalGateway) -> None:
    gateway.set_faults(read=FaultSpec(redirect="http://evil.example/raw/x"))
    request = Request(
        "GET", f"{gateway.url}/raw/{'b' * 43}", timeout=2, max_body=1024, follow_redirects=True
    )
    with pytest.raises(TransportError, match="another origin"):
        gateway.transport.send(request)
