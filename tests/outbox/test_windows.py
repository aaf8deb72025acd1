"""The window closer on a real journal: what it takes, what it waits for, who wins."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ario_mlflow.engine import ProofEngine
from ario_mlflow.outbox.journal import Journal
from ario_mlflow.outbox.leaves import Spooled, get_stream, receipt_for
from ario_mlflow.outbox.windows import BY_REQUEST, BY_SIZE, WindowCloser, closer_for_engine
from ario_mlflow.proof.windows import receipt_problem
from tests.support.lifecycle import spooled_leaf


def _item(envelope: Mapping[str, Any], data: bytes) -> tuple[str, bytes, str]:
    """Stands in for the wallet's ANS-104 signature (not under test here): a unique id."""
    digest = hashlib.sha256(data).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("="), data, "arweave"


def _header(writer: str) -> dict[str, Any]:
    return {
        "stream_id": "s1",
        "public_key": ENGINE.public_key_hex,
        "writer": writer,
        "model_name": "credit",
        "model_version": "1",
        "model_uri": "models:/credit/1",
        "run_id": "r" * 32,
        "registration_tx": "R" * 43,
        "upload_url": "http://127.0.0.1:9",
        "gateway_base": "http://127.0.0.1:9",
        "writebacks": [],
    }


ENGINE = ProofEngine()


def _leaf(seq: int) -> tuple[str, int, str, bytes, str]:
    return spooled_leaf(_header("h~1"), seq)


def _spool(journal: Journal, name: str, seqs: list[int], header: dict[str, Any] | None) -> None:
    spooled = Spooled([header] if header else [], [_leaf(s) for s in seqs], [])
    assert journal.ingest(name, 0, 1, [], spooled.write)


def _closer(journal: Journal, *, size: int = 10, seconds: float = 3600.0) -> WindowCloser:
    return closer_for_engine(journal, ENGINE, _item, size=size, seconds=seconds)


def test_a_missing_number_of_a_live_writer_is_waited_for(ario_home: Path) -> None:
    journal = Journal.at_home(ario_home)
    _spool(journal, "a", [1, 2, 4], _header(f"{socket.gethostname()}~{os.getpid()}"))
    closer = _closer(journal)
    assert closer.close_due(force=True) == 1  # 1-2 only: 3 is on its way
    stream = get_stream(journal, "s1")
    assert stream is not None
    assert stream.next_seq == 3
    _spool(journal, "b", [3], None)  # the late append arrives
    assert closer.close_due(force=True) == 1
    receipt = receipt_for(journal, _leaf(4)[2])
    assert receipt is not None
    assert (receipt.manifest["first_seq"], receipt.manifest["last_seq"]) == (3, 4)
    assert receipt_problem(receipt) is None
    assert journal.counts()["decisions_unwindowed"] == 0


def test_a_number_missing_for_too_long_is_closed_over(ario_home: Path, monkeypatch: Any) -> None:
    journal = Journal.at_home(ario_home)
    _spool(journal, "a", [1, 2, 4], _header(f"{socket.gethostname()}~{os.getpid()}"))
    closer = _closer(journal)
    assert closer.close_due(force=True) == 1
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 60)  # the gap is old now
    assert closer.close_due(force=True) == 1
    receipt = receipt_for(journal, _leaf(4)[2])
    assert receipt is not None
    assert receipt.manifest["first_seq"] == 4  # the gap is visible, the decision anchored


def test_windows_close_by_size_then_by_request(ario_home: Path) -> None:
    journal = Journal.at_home(ario_home)
    _spool(journal, "a", list(range(1, 8)), _header(f"{socket.gethostname()}~{os.getpid()}"))
    closer = _closer(journal, size=3)
    assert closer.close_due() == 2  # 1-3, 4-6; 7 is not due
    journal.ingest("c", 0, 1, [], Spooled([], [], [("s1", 7)]).write)  # a waiter asks
    assert closer.close_due() == 1
    reasons = [receipt_for(journal, _leaf(s)[2]).manifest["closed_by"] for s in (1, 4, 7)]  # type: ignore[union-attr]
    assert reasons == [BY_SIZE, BY_SIZE, BY_REQUEST]
    chain = [receipt_for(journal, _leaf(s)[2]) for s in (1, 4, 7)]
    assert chain[0].envelope["previous_hash"] == "GENESIS"  # type: ignore[union-attr]
    assert chain[1].envelope["previous_hash"] == chain[0].tx_id  # type: ignore[union-attr]
    assert chain[2].envelope["previous_hash"] == chain[1].tx_id  # type: ignore[union-attr]


def test_two_closers_never_seal_the_same_decisions_twice(ario_home: Path) -> None:
    journal = Journal.at_home(ario_home)
    _spool(journal, "a", list(range(1, 5)), _header(f"{socket.gethostname()}~{os.getpid()}"))
    first, second = _closer(journal), _closer(Journal.at_home(ario_home))
    stale = get_stream(journal, "s1")
    assert stale is not None
    assert first.close_due(force=True) == 1
    assert second._close_one(stale, "sync") is False  # it read the stream before: refused
    assert len(journal.connection().execute("SELECT * FROM windows").fetchall()) == 1


def test_a_stream_signed_with_another_key_is_left_alone(ario_home: Path) -> None:
    journal = Journal.at_home(ario_home)
    header = {**_header("h~1"), "public_key": "ab" * 32}
    _spool(journal, "a", [1], header)
    assert _closer(journal).close_due(force=True) == 0
    assert journal.counts()["decisions_unwindowed"] == 1
