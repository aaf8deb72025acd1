"""Witness artifacts: the exact payload bytes and the envelope, stored next to the run.

Verifiers re-hash a witness to check an anchored commitment, so the payload file holds
the exact canonical bytes. Every event also gets its own folder
``ario/events/<event_id>/`` so that re-anchoring never destroys an earlier record; the
reference's paths (``ario/payload.json``, ``ario/registration_payload.json`` …) are
written too, for tools that read them.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

WITNESS_ROOT = "ario"


def event_dir(event_id: str) -> str:
    """Artifact folder (under ``ario/``) of one event's witness."""
    return f"events/{event_id}"


def proof_json(envelope: Mapping[str, Any]) -> bytes:
    """The human-readable ``proof.json`` (not canonical; verifiers re-canonicalize)."""
    return json.dumps(envelope, indent=2).encode("utf-8")


def event_files(
    envelope: Mapping[str, Any], payload_bytes: bytes, receipt: Mapping[str, Any] | None = None
) -> dict[str, bytes]:
    """``{relative path: bytes}`` of one event's own witness folder."""
    folder = event_dir(str(envelope["event_id"]))
    files = {
        f"{folder}/payload.json": payload_bytes,
        f"{folder}/proof.json": proof_json(envelope),
    }
    if receipt:
        files[f"{folder}/receipt.json"] = json.dumps(receipt, indent=2).encode("utf-8")
    return files


def log_witness_files(client: Any, run_id: str, files: Mapping[str, bytes]) -> None:
    """Upload ``files`` (paths relative to ``ario/``) to the run's artifacts in one call."""
    staging = Path(tempfile.mkdtemp(prefix="ario-witness-"))
    try:
        for relative, data in files.items():
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        client.log_artifacts(run_id, str(staging), WITNESS_ROOT)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
