"""``docs/standalone_verify.py`` and ``docs/verification.md`` on batched decisions.

A window built and signed by the package's own code gives receipts that the standalone
script (run without ``ario_mlflow``) and the by-hand recipe both accept; each kind of
tampering fails the script with its own reason, the recipe with an exception, and the
package's ``receipt_problem`` too, so the three cannot drift apart.
"""

from __future__ import annotations

import base64
import json
import runpy
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature

from ario_mlflow.proof.canonical import canonical_json
from ario_mlflow.proof.decisions import DecisionLeaves
from ario_mlflow.proof.ed25519 import public_key_hex, signing_key_from_seed
from ario_mlflow.proof.envelope import build_mlflow_envelope, sign_envelope
from ario_mlflow.proof.merkle import leaf_hash, tree_with_paths
from ario_mlflow.proof.payloads import PREDICTION_BATCH
from ario_mlflow.proof.windows import Receipt, receipt_problem, window_manifest, window_subject
from tests.test_docs import SCRIPT, _marked_block, _verification_md, attacker_key, run_script

KEY = signing_key_from_seed(bytes(range(32)))
TX = "wIndowTx0000000000000000000000000000000000A"
REGISTRATION = "regIstrationTx00000000000000000000000000000"
FIRST_SEQ = 11  # not 0 or 1: the sequence check must add leaf_index to first_seq
SIZE = 5  # not a power of two: the last leaf climbs the tree's ragged right edge
STREAM = {
    "stream_id": "stream-1",
    "model_name": "credit-scorer",
    "model_version": "1",
    "model_uri": "models:/m-1",
    "run_id": "run-1",
    "registration_tx": REGISTRATION,
}

Receipts = list[dict[str, Any]]


def build_window(payload_sequence: Callable[[int], int] = lambda seq: seq) -> Receipts:
    """The receipts of one signed window of ``SIZE`` decisions, as ``Receipt.to_json()``.
    ``payload_sequence`` maps a decision's place to the sequence its payload claims."""
    fixed = {k: STREAM[k] for k in ("stream_id", "model_name", "model_version", "run_id")}
    maker = DecisionLeaves(**fixed, model_uri=STREAM["model_uri"], artifact_verified=True)
    leaves = [
        maker.leaf(
            decision_id=f"decision-{i}",
            input_hash=f"{i:064x}",
            output_hash=f"{i + 100:064x}",
            latency_ms=1.25,
            sequence=payload_sequence(FIRST_SEQ + i),
            decided_at=f"2026-01-01T00:00:0{i}+00:00",
        )
        for i in range(SIZE)
    ]
    manifest = window_manifest(
        stream=STREAM,
        leaves=[(FIRST_SEQ + i, leaf.payload_bytes) for i, leaf in enumerate(leaves)],
        first_decided_at="2026-01-01T00:00:00+00:00",
        last_decided_at=f"2026-01-01T00:00:0{SIZE - 1}+00:00",
        previous_window_hash=None,
        closed_by="size",
    )
    manifest_bytes = canonical_json(manifest)
    envelope = build_mlflow_envelope(
        event_type=PREDICTION_BATCH,
        subject=window_subject("credit-scorer", "1", "stream-1"),
        payload_bytes=manifest_bytes,
        previous_hash="GENESIS",
        key=KEY,
    )
    root, paths = tree_with_paths([leaf.leaf_hash for leaf in leaves])
    assert root.hex() == manifest["root_hash"]
    return [
        Receipt(
            payload_bytes=leaf.payload_bytes,
            leaf_index=i,
            tree_size=SIZE,
            audit_path=tuple(paths[i]),
            manifest_bytes=manifest_bytes,
            envelope=envelope,
            tx_id=TX,
        ).to_json()
        for i, leaf in enumerate(leaves)
    ]


@pytest.fixture(scope="module")
def receipts() -> Receipts:
    return build_window()


def write(receipt: dict[str, Any], folder: Path) -> Path:
    path = folder / "receipt.json"
    path.write_text(json.dumps(receipt, indent=2))
    return path


def _bytes_of(receipt: dict[str, Any], name: str) -> bytes:
    return base64.b64decode(receipt[name])


def _with_bytes(receipt: dict[str, Any], name: str, old: bytes, new: bytes) -> dict[str, Any]:
    data = _bytes_of(receipt, name)
    assert old in data
    return {**receipt, name: base64.b64encode(data.replace(old, new, 1)).decode()}


def _resigned(receipt: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The window record re-signed with the real key after ``changes`` (a buggy signer)."""
    envelope = {k: v for k, v in receipt["envelope"].items() if k not in ("signature",)}
    return {**receipt, "envelope": sign_envelope({**envelope, **changes}, KEY)}


def _flipped_node(receipt: dict[str, Any]) -> dict[str, Any]:
    node = receipt["audit_path"][0]
    forged = ("0" if node[0] != "0" else "1") + node[1:]
    return {**receipt, "audit_path": [forged, *receipt["audit_path"][1:]]}


#: name: (how the last receipt is tampered with, the script's reason, the recipe's error)
TAMPERED: dict[str, tuple[Callable[[Receipts], dict[str, Any]], str, str]] = {
    "payload byte": (
        lambda r: _with_bytes(r[-1], "payload", b'"latency_ms":1.25', b'"latency_ms":1.26'),
        "inclusion: the decision's payload and audit path do not lead to the manifest's",
        "root_hash",
    ),
    "audit path node": (
        lambda r: _flipped_node(r[-1]),
        "inclusion: the decision's payload and audit path do not lead to the manifest's",
        "root_hash",
    ),
    "leaf index": (
        lambda r: {**r[-1], "leaf_index": SIZE - 2},
        "inclusion: the decision's payload and audit path do not lead to the manifest's",
        "root_hash|audit path is too",
    ),
    "manifest byte": (
        lambda r: _with_bytes(r[-1], "manifest", b'"closed_by":"size"', b'"closed_by":"sizf"'),
        "payload_hash: SHA-256 of the manifest bytes differs from payload_hash",
        "payload_hash",
    ),
    "envelope field": (
        lambda r: {**r[-1], "envelope": {**r[-1]["envelope"], "previous_hash": "GENESIS2"}},
        "signature: Ed25519 signature does not verify with public_key",
        "",  # InvalidSignature
    ),
    "subject": (
        lambda r: _resigned(r[-1], subject=window_subject("credit-scorer", "2", "stream-1")),
        "subject: record is about {'type': 'mlflow_prediction_batch', 'name': 'credit-scorer', "
        "'version': '2', 'stream_id': 'stream-1'}, not",
        "subject",
    ),
    "sequence": (
        lambda _: build_window(lambda seq: 99 if seq == FIRST_SEQ + 1 else seq)[1],
        f"sequence: the decision's sequence 99 is not first_seq {FIRST_SEQ} + leaf_index 1",
        "sequence",
    ),
}


def test_every_receipt_of_a_window_passes(receipts: Receipts, tmp_path: Path) -> None:
    real = public_key_hex(KEY)
    for index, receipt in enumerate(receipts):
        assert receipt_problem(Receipt.from_json(receipt)) is None  # the package agrees
        ran = run_script(
            write(receipt, tmp_path),
            "--trusted-key",
            real,
            "--expect-model",
            "credit-scorer/1",
            "--expect-registration",
            REGISTRATION,
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert f"sequence {FIRST_SEQ + index} of stream stream-1" in ran.stdout
        assert f"signer {real}: pinned" in ran.stdout
        last = ran.stdout.splitlines()[-1]
        assert last == f"PASS: decision decision-{index} is in window {TX} of credit-scorer/1"


def test_the_json_report(receipts: Receipts, tmp_path: Path) -> None:
    ran = run_script(write(receipts[2], tmp_path), "--json")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    report = json.loads(ran.stdout)
    assert report["ok"] is True
    assert report["problems"] == []
    assert (report["decision_id"], report["sequence"]) == ("decision-2", FIRST_SEQ + 2)
    assert report["registration_tx"] == REGISTRATION
    assert report["signers"] == [{"public_key": public_key_hex(KEY), "pinned": False}]


@pytest.mark.parametrize("name", TAMPERED)
def test_a_tampered_receipt_fails_with_its_reason(
    name: str, receipts: Receipts, tmp_path: Path
) -> None:
    tamper, reason, _ = TAMPERED[name]
    forged = tamper(receipts)
    assert receipt_problem(Receipt.from_json(forged)) is not None  # the package agrees
    ran = run_script(write(forged, tmp_path))
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert f"FAIL {reason}" in ran.stdout
    assert ran.stdout.splitlines()[-1].startswith("FAIL: decision ")


def test_a_pin_or_an_expectation_that_does_not_hold_fails(
    receipts: Receipts, tmp_path: Path
) -> None:
    path = write(receipts[0], tmp_path)
    attacker = public_key_hex(attacker_key())
    for flags, reason in (
        (("--trusted-key", attacker), f"issuer: signed by {public_key_hex(KEY)}, which is not"),
        (("--expect-model", "credit-scorer/2"), "expected: the window is of credit-scorer/1, not"),
        (("--expect-registration", "other-tx"), f"names registration '{REGISTRATION}', not"),
    ):
        ran = run_script(path, *flags)
        assert ran.returncode == 1, ran.stdout
        assert reason in ran.stdout, ran.stdout


def test_a_file_that_is_no_receipt_fails(receipts: Receipts, tmp_path: Path) -> None:
    for broken in ({**receipts[0], "format": "other"}, {**receipts[0], "leaf_index": True}):
        ran = run_script(write(broken, tmp_path))
        assert ran.returncode == 1
        assert "is not a decision receipt" in ran.stdout


@pytest.fixture
def gateway(receipts: Receipts) -> Iterator[dict[str, bytes]]:
    """A gateway double serving ``GET /raw/<tx>`` from a dict the test may edit."""
    served = {f"/raw/{TX}": canonical_json(receipts[0]["envelope"])}

    class Raw(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = served.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Raw)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    served["url"] = f"http://127.0.0.1:{server.server_port}".encode()
    yield served
    server.shutdown()
    server.server_close()


def test_the_gateway_must_serve_the_window_record(
    receipts: Receipts, gateway: dict[str, bytes], tmp_path: Path
) -> None:
    path, url = write(receipts[0], tmp_path), gateway["url"].decode()
    ran = run_script(path, "--gateway", url)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    gateway[f"/raw/{TX}"] = canonical_json({**receipts[0]["envelope"], "signed_at": "x"})
    ran = run_script(path, "--gateway", url)
    assert ran.returncode == 1
    assert f"gateway: {url}/raw/{TX} serves other bytes" in ran.stdout


def test_the_scripts_inclusion_proof_is_rfc_9162s() -> None:
    """Every leaf of trees of 1 to 33 leaves, against the package's audit paths."""
    inclusion_root = runpy.run_path(str(SCRIPT))["inclusion_root"]
    for size in range(1, 34):
        leaves = [leaf_hash(bytes([i])) for i in range(size)]
        root, paths = tree_with_paths(leaves)
        for index, path in enumerate(paths):
            assert inclusion_root(leaves[index], index, size, path) == root
            if size > 1:
                assert inclusion_root(leaves[index], (index + 1) % size, size, path) != root
            assert inclusion_root(leaves[index], index, size, [*path, root]) is None
        assert inclusion_root(leaves[0], size, size, paths[0]) is None


def test_expectations_apply_to_a_bundle_too(tmp_path: Path) -> None:
    manifest = {"schema": "ario.mlflow.evidence/v1", "model": "m", "version": "1", "records": []}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    ran = run_script(tmp_path, "--expect-model", "m/2", "--expect-registration", "tx")
    assert ran.returncode == 1
    assert "FAIL bundle: expected: the bundle is of m/1, not m/2" in ran.stdout
    assert "FAIL bundle: expected: registration record [], not tx" in ran.stdout


# --- docs/verification.md: the by-hand steps --------------------------------------------------


def _receipt_recipe() -> Callable[[dict[str, Any]], dict[str, Any]]:
    namespace: dict[str, Any] = {}
    text = _verification_md()
    exec(_marked_block(text, "recipe", "python"), namespace)
    exec(_marked_block(text, "receipt-recipe", "python"), namespace)
    return namespace["verify_receipt"]


def test_the_by_hand_steps_accept_every_receipt(receipts: Receipts) -> None:
    verify = _receipt_recipe()
    for index, receipt in enumerate(receipts):
        decision = verify(json.loads(json.dumps(receipt)))
        assert (decision["decision_id"], decision["sequence"]) == (
            f"decision-{index}",
            FIRST_SEQ + index,
        )


@pytest.mark.parametrize("name", TAMPERED)
def test_the_by_hand_steps_reject_a_tampered_receipt(name: str, receipts: Receipts) -> None:
    tamper, _, error = TAMPERED[name]
    verify = _receipt_recipe()
    expected = InvalidSignature if not error else ValueError
    with pytest.raises(expected, match=error or None):
        verify(tamper(receipts))
