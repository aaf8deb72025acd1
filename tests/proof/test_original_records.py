"""Records minted by ar-io-mlflow 0.3.0 verify under our kernel; any byte change fails."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ario_mlflow.proof.canonical import canonical_json
from ario_mlflow.proof.commitment import verify_commitment
from ario_mlflow.proof.envelope import MLFLOW_ENVELOPE_KEYS, verify_envelope_bytes
from ario_mlflow.proof.hashing import sha256_hex
from tests.conftest import VECTORS_DIR

RECORDS = sorted(p for p in (VECTORS_DIR / "original-0.3.0").iterdir() if p.is_dir())
REFERENCE_SIGNER = "0bbc346a57667c380120bd9c7fd7e51d2c5fdfea37cd2f5bf405b2c6bf6f2d78"


def _read(record: Path) -> tuple[bytes, bytes, dict[str, object]]:
    return (
        (record / "envelope.json").read_bytes(),
        (record / "payload.bin").read_bytes(),
        json.loads((record / "meta.json").read_text()),
    )


def test_all_seven_records_present() -> None:
    assert [r.name for r in RECORDS] == [
        "dataset-implicit-0",
        "dataset-standalone",
        "prediction-0",
        "prediction-1",
        "promotion",
        "registration",
        "training",
    ]


@pytest.mark.parametrize("record", RECORDS, ids=[r.name for r in RECORDS])
def test_reference_record_verifies(record: Path) -> None:
    envelope_bytes, payload_bytes, meta = _read(record)
    envelope = json.loads(envelope_bytes)
    assert canonical_json(envelope) == envelope_bytes  # stored as exact JCS bytes
    assert tuple(sorted(envelope)) == tuple(sorted(MLFLOW_ENVELOPE_KEYS))
    assert envelope["public_key"] == REFERENCE_SIGNER
    assert envelope["event_type"] == meta["event"]
    assert json.loads(payload_bytes)["event_type"] == meta["event"]
    assert canonical_json(json.loads(payload_bytes)) == payload_bytes

    result = verify_commitment(envelope, payload_bytes)
    assert result == {
        "signature_valid": True,
        "payload_hash_valid": True,
        "computed_payload_hash": sha256_hex(payload_bytes),
        "stored_payload_hash": envelope["payload_hash"],
        "spec_version_status": "supported",
        "legacy_envelope": False,
        "overall": True,
    }


@pytest.mark.parametrize("record", RECORDS, ids=[r.name for r in RECORDS])
def test_every_single_byte_mutation_is_rejected(record: Path) -> None:
    envelope_bytes, payload_bytes, _ = _read(record)
    assert verify_envelope_bytes(envelope_bytes, payload_bytes=payload_bytes).ok
    for position in range(len(envelope_bytes)):
        mutated = bytearray(envelope_bytes)
        mutated[position] ^= 0x01
        result = verify_envelope_bytes(bytes(mutated), payload_bytes=payload_bytes)
        assert not result.ok, f"envelope byte {position} flipped still verifies"
    for position in range(len(payload_bytes)):
        mutated = bytearray(payload_bytes)
        mutated[position] ^= 0x01
        result = verify_envelope_bytes(envelope_bytes, payload_bytes=bytes(mutated))
        assert not result.ok, f"payload byte {position} flipped still verifies"
        assert result.reason == "payload_hash_mismatch"
