"""Honest records and bundles the fuzzers start from, and the oracle that says whether a
mutated record is still the signed one."""

from __future__ import annotations

import json
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from ario_mlflow.errors import CanonicalizationError
from ario_mlflow.proof.canonical import canonical_json
from ario_mlflow.proof.ed25519 import signing_key_from_seed
from ario_mlflow.proof.envelope import (
    build_mlflow_envelope,
    envelope_for_signature,
    sign_envelope,
)
from ario_mlflow.proof.hashing import sha256_hex
from ario_mlflow.verify.bundle import SCHEMA
from tests.conftest import VECTORS_DIR

_KEY = signing_key_from_seed(bytes(range(32)))
_BUNDLE_KEY = signing_key_from_seed(bytes(range(32, 64)))
TRAINING_TX = "T" * 43
REGISTRATION_TX = "R" * 43

Record = tuple[str, dict[str, Any], bytes | None]


@lru_cache(maxsize=1)
def records() -> tuple[Record, ...]:
    """Honest records of every kind: the reference's, the agent's, ours, legacy."""
    found: list[Record] = []
    for folder in sorted((VECTORS_DIR / "original-0.3.0").iterdir()):
        envelope = json.loads((folder / "envelope.json").read_bytes())
        found.append((folder.name, envelope, (folder / "payload.bin").read_bytes()))
    vector = json.loads((VECTORS_DIR / "agent-envelope-asset-registered-01.json").read_bytes())
    seed = bytes.fromhex(vector["fixed_keypair"]["ed25519_seed_hex"])
    agent = sign_envelope(
        dict(vector["inputs"]["envelope_pre_signature"]), signing_key_from_seed(seed)
    )
    found.append(("agent", agent, canonical_json(agent["payload"])))
    payload = canonical_json({"metrics": {"loss": 0.25}, "params": {"lr": "0.1"}, "ok": True})
    ours = build_mlflow_envelope(
        event_type="model_registered",
        subject={"type": "mlflow_model_version", "name": "credit", "version": "1"},
        payload_bytes=payload,
        previous_hash="a" * 43,
        key=_KEY,
        event_id="00000000-0000-4000-8000-000000000000",
        signed_at="2026-01-01T00:00:00+00:00",
    )
    found.append(("ours", ours, payload))
    found.append(("annotated", {**ours, "_tx_id": "b" * 43}, payload))
    legacy = sign_envelope(
        {
            "event_id": "legacy-1",
            "event_type": "prediction",
            "subject": {"type": "mlflow_decision", "decision_id": "d1"},
            "payload_hash": ours["payload_hash"],
            "previous_hash": "GENESIS",
            "signed_at": "2025-01-01T00:00:00+00:00",
        },
        _KEY,
    )
    found.append(("legacy", legacy, payload))
    return tuple(found)


def signed_scope(envelope: dict[str, Any]) -> bytes | None:
    """The JCS bytes the signature of ``envelope`` covers (None if it has no JCS form)."""
    try:
        return canonical_json(envelope_for_signature(envelope))
    except CanonicalizationError:
        return None


def is_the_signed_record(original: dict[str, Any], candidate: Any) -> bool:
    """True when ``candidate`` carries exactly what ``original``'s signature covers."""
    return (
        isinstance(candidate, dict)
        and candidate.get("signature") == original["signature"]
        and candidate.get("public_key") == original["public_key"]
        and signed_scope(candidate) == signed_scope(original)
    )


@lru_cache(maxsize=1)
def bundle_files() -> dict[str, bytes]:
    """An honest two-record bundle (training → registration) as ``{relative path: bytes}``."""
    training_payload = canonical_json({"metrics": {"auc": 0.9}, "run_id": "r1"})
    training = build_mlflow_envelope(
        event_type="training_complete",
        subject={"type": "mlflow_run", "run_id": "r1"},
        payload_bytes=training_payload,
        previous_hash="GENESIS",
        key=_BUNDLE_KEY,
        event_id="11111111-1111-4111-8111-111111111111",
        signed_at="2026-01-01T00:00:00+00:00",
    )
    registration_payload = canonical_json(
        {"model_name": "m", "source_run_id": "r1", "version": "1"}
    )
    registration = build_mlflow_envelope(
        event_type="model_registered",
        subject={"type": "mlflow_model_version", "name": "m", "version": "1"},
        payload_bytes=registration_payload,
        previous_hash=TRAINING_TX,
        key=_BUNDLE_KEY,
        event_id="22222222-2222-4222-8222-222222222222",
        signed_at="2026-01-01T00:00:01+00:00",
    )
    files: dict[str, bytes] = {}
    entries = []
    for stage, tx_id, envelope, payload in (
        ("training", TRAINING_TX, training, training_payload),
        ("registration", REGISTRATION_TX, registration, registration_payload),
    ):
        envelope_bytes = canonical_json(envelope)
        files[f"records/{tx_id}/envelope.json"] = envelope_bytes
        files[f"records/{tx_id}/payload.bin"] = payload
        entries.append(
            {
                "stage": stage,
                "label": stage,
                "tx_id": tx_id,
                "event_type": envelope["event_type"],
                "envelope": f"records/{tx_id}/envelope.json",
                "envelope_sha256": sha256_hex(envelope_bytes),
                "payload": f"records/{tx_id}/payload.bin",
                "payload_sha256": sha256_hex(payload),
                "receipt": None,
            }
        )
    manifest = {"schema": SCHEMA, "model": "m", "version": "1", "run_id": "r1", "records": entries}
    files["manifest.json"] = json.dumps(manifest, indent=2).encode()
    return files


def bundle_manifest() -> dict[str, Any]:
    """A fresh, mutable copy of the honest bundle's manifest."""
    parsed: dict[str, Any] = json.loads(bundle_files()["manifest.json"])
    return parsed


def write_bundle(root: Path, files: dict[str, bytes], as_zip: bool) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if as_zip:
        path = root / "bundle.zip"
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in files.items():
                archive.writestr(name, data)
        return path
    path = root / "bundle"
    for name, data in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    return path
