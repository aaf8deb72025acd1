"""The on-disk exchange format between the two virtualenvs (stdlib only, both sides import it).

The two implementations never share a Python process, so every minted record travels as
files: ``<dir>/<label>/envelope.json`` (the exact bytes that were anchored),
``payload.bin`` (the exact payload bytes the envelope commits to) and ``meta.json`` (what
the verifier should expect). ``<dir>/manifest.json`` says where the MLflow store and the
gateway are. Verdicts come back as JSON rows that ``run.py`` turns into the table.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

ACCEPT = "accept"
REJECT = "reject"


def write_record(
    directory: Path,
    label: str,
    envelope_bytes: bytes,
    payload_bytes: bytes | None,
    meta: dict[str, Any],
) -> Path:
    """Store one record; ``meta`` must carry ``event_type`` and ``expect``."""
    folder = directory / label
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "envelope.json").write_bytes(envelope_bytes)
    if payload_bytes is not None:
        (folder / "payload.bin").write_bytes(payload_bytes)
    meta = {"expect": ACCEPT, "tamper": None, **meta, "label": label}
    (folder / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return folder


def read_records(directory: Path) -> list[dict[str, Any]]:
    """Every record of ``directory`` in manifest order: meta plus the two byte strings."""
    manifest = read_manifest(directory)
    records = []
    for label in manifest["records"]:
        folder = directory / label
        meta = json.loads((folder / "meta.json").read_text())
        payload = folder / "payload.bin"
        meta["envelope_bytes"] = (folder / "envelope.json").read_bytes()
        meta["payload_bytes"] = payload.read_bytes() if payload.exists() else None
        records.append(meta)
    return records


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """``manifest.json``: ``records`` (labels in order) plus where the store lives."""
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest written by :func:`write_manifest`."""
    manifest: dict[str, Any] = json.loads((directory / "manifest.json").read_text())
    return manifest


def tampered_payload(payload_bytes: bytes) -> bytes:
    """One byte of the payload changed, still valid JSON (a digit or letter swapped)."""
    data = bytearray(payload_bytes)
    for index in range(len(data) - 1, -1, -1):
        char = chr(data[index])
        if char.isdigit():
            data[index] = ord("1" if char != "1" else "2")
            return bytes(data)
        if char.isalpha() and char not in "truefalsn":
            data[index] = ord("x" if char != "x" else "y")
            return bytes(data)
    raise ValueError("payload has no byte that can be changed safely")


def tampered_envelope(envelope_bytes: bytes, key: str, value: Any) -> bytes:
    """The envelope with one signed field replaced (the signature is left as it was)."""
    envelope = json.loads(envelope_bytes)
    if envelope.get(key) == value:
        raise ValueError(f"tampering {key!r} must change it")
    envelope[key] = value
    return json.dumps(envelope, sort_keys=True, separators=(",", ":")).encode("utf-8")


def fake_tx_id(data: bytes) -> str:
    """A 43-character Arweave-shaped id derived from the bytes (no network involved)."""
    import base64

    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")


def verdict(
    record: dict[str, Any], verified_by: str, check: str, ok: bool | None, detail: str = ""
) -> dict[str, Any]:
    """One row of the final table: did ``verified_by`` decide as the record expects?"""
    accepted = ok is True
    expected_accept = record["expect"] == ACCEPT
    return {
        "record": record["label"],
        "event_type": record["event_type"],
        "minted_by": record["minted_by"],
        "verified_by": verified_by,
        "check": check,
        "expect": record["expect"],
        "outcome": "accepted" if accepted else "rejected",
        "passed": accepted == expected_accept,
        "detail": detail,
    }
