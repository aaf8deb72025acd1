"""The ``ario/`` witness layout in a run's artifacts: where each record's exact payload
bytes are written, and where verifiers look for them. A compatibility contract.

Verifiers re-hash a witness to check an anchored commitment, so the payload file holds
the exact canonical bytes. Every event gets its own folder ``ario/events/<event_id>/``,
so re-anchoring never destroys an earlier record; the reference's paths are written too,
for tools that read them::

    ario/events/<event_id>/payload.json, proof.json      every event but decisions
    ario/payload.json, proof.json                         training (latest)
    ario/registration_payload.json, …_proof.json          registration (latest)
    ario/promotions/<event_id>/payload.json, proof.json   stage transitions
    ario/aliases/<event_id>/payload.json, proof.json      alias changes
    ario/predictions/<decision_id>/payload.json, …        decisions (their only folder)
    ario/windows/<stream_id>/<first>-<last>/              a window of batched decisions:
        decisions.jsonl, manifest.json, proof.json,       their payloads (one per line, in
        record.json                                       sequence order), the signed
                                                          manifest, its envelope, its TX

Which run holds a record's witness is MLflow state (a version's run), resolved by the
caller; :func:`payload_paths` says where in that run to look, in order.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ario_mlflow.errors import ProofUnavailableError
from ario_mlflow.proof.payloads import (
    ALIAS,
    DATASET,
    PREDICTION,
    PROMOTION,
    REGISTRATION,
    TRAINING,
)

WITNESS_ROOT = "ario"

#: The reference's paths (under ``ario/``) of each event type: ``{path: "payload" |
#: "proof"}`` with ``{id}`` the event id (decisions: the decision id).
_LEGACY: dict[str, dict[str, str]] = {
    TRAINING: {"payload.json": "payload", "proof.json": "proof"},
    REGISTRATION: {
        "registration_payload.json": "payload",
        "registration_proof.json": "proof",
    },
    PROMOTION: {"promotions/{id}/payload.json": "payload", "promotions/{id}/proof.json": "proof"},
    ALIAS: {"aliases/{id}/payload.json": "payload", "aliases/{id}/proof.json": "proof"},
}


def event_dir(event_id: str) -> str:
    """Artifact folder (under ``ario/``) of one event's witness."""
    return f"events/{event_id}"


def decision_dir(decision_id: str) -> str:
    """Artifact folder (under ``ario/``) of one decision's witness."""
    return f"predictions/{decision_id}"


WINDOWS = "windows"
WINDOW_DECISIONS, WINDOW_MANIFEST, WINDOW_PROOF, WINDOW_RECORD = (
    "decisions.jsonl",
    "manifest.json",
    "proof.json",
    "record.json",
)


def window_dir(stream_id: str, first_seq: int, last_seq: int) -> str:
    """Artifact folder (under ``ario/``) of one window of batched decisions (sequence
    numbers zero-padded, so that listing order is sequence order)."""
    return f"{WINDOWS}/{stream_id}/{first_seq:012d}-{last_seq:012d}"


def decisions_file(payloads: list[bytes]) -> bytes:
    """``decisions.jsonl``: one payload per line (canonical JSON holds no newline)."""
    return b"".join(p + b"\n" for p in payloads)


def decision_lines(data: bytes) -> list[bytes]:
    """The payloads of a ``decisions.jsonl`` (exactly: no line is stripped or re-read)."""
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()  # the last line's newline
    return lines


def window_files(
    *,
    stream_id: str,
    first_seq: int,
    last_seq: int,
    payloads: list[bytes],
    manifest_bytes: bytes,
    envelope: Mapping[str, Any],
    tx_id: str,
) -> dict[str, bytes]:
    """``{path under ario/: bytes}`` of one window's witness."""
    folder = window_dir(stream_id, first_seq, last_seq)
    return {
        f"{folder}/{WINDOW_DECISIONS}": decisions_file(payloads),
        f"{folder}/{WINDOW_MANIFEST}": manifest_bytes,
        f"{folder}/{WINDOW_PROOF}": proof_json(envelope),
        f"{folder}/{WINDOW_RECORD}": json.dumps({"tx_id": tx_id}).encode("utf-8"),
    }


@dataclass(frozen=True)
class WindowWitness:
    """What MLflow holds of one window (a hint: checked against the anchored record)."""

    run_id: str
    folder: str
    stream_id: str
    first_seq: int
    last_seq: int
    payloads: list[bytes]
    manifest_bytes: bytes
    tx_id: str | None


def window_folders(client: Any, run_id: str) -> list[tuple[str, int, int]]:
    """``(stream id, first, last)`` of every window witness on a run, in stream and
    sequence order (an unlisted or malformed folder is skipped)."""
    found: list[tuple[str, int, int]] = []
    try:
        streams = client.list_artifacts(run_id, f"{WITNESS_ROOT}/{WINDOWS}")
    except Exception:  # no windows folder (or an unreadable store): none
        return found
    for stream in streams:
        if not stream.is_dir:
            continue
        stream_id = stream.path.rsplit("/", 1)[-1]
        for window in client.list_artifacts(run_id, stream.path):
            first, _, last = window.path.rsplit("/", 1)[-1].partition("-")
            if window.is_dir and first.isdigit() and last.isdigit():
                found.append((stream_id, int(first), int(last)))
    return sorted(found)


def read_window(client: Any, run_id: str, stream_id: str, first: int, last: int) -> WindowWitness:
    """One window's witness; :class:`ProofUnavailableError` naming what is missing."""
    folder = f"{WITNESS_ROOT}/{window_dir(stream_id, first, last)}"
    try:
        decisions = read_artifact(client, run_id, f"{folder}/{WINDOW_DECISIONS}")
        manifest = read_artifact(client, run_id, f"{folder}/{WINDOW_MANIFEST}")
    except Exception as exc:
        raise ProofUnavailableError(f"window witness {folder} of run {run_id}: {exc}") from None
    try:
        record = json.loads(read_artifact(client, run_id, f"{folder}/{WINDOW_RECORD}"))
        tx_id = str(record["tx_id"])
    except Exception:  # the TX id is a hint; without it the window cannot be fetched
        tx_id = None
    lines = decision_lines(decisions)
    return WindowWitness(run_id, folder, stream_id, first, last, lines, manifest, tx_id)


def proof_json(envelope: Mapping[str, Any]) -> bytes:
    """The human-readable ``proof.json`` (not canonical; verifiers re-canonicalize)."""
    return json.dumps(envelope, indent=2).encode("utf-8")


def witness_files(envelope: Mapping[str, Any], payload_bytes: bytes) -> dict[str, bytes]:
    """``{path under ario/: bytes}`` of a record's witness: its own folder, and the
    reference's paths for its event type."""
    event_id = str(envelope["event_id"])
    files = {
        f"{event_dir(event_id)}/payload.json": payload_bytes,
        f"{event_dir(event_id)}/proof.json": proof_json(envelope),
    }
    for template, kind in _LEGACY.get(str(envelope.get("event_type")), {}).items():
        path = template.format(id=event_id)
        files[path] = payload_bytes if kind == "payload" else proof_json(envelope)
    return files


def decision_files(
    decision_id: str, payload_bytes: bytes, envelope: Mapping[str, Any]
) -> dict[str, bytes]:
    """``{path under ario/: bytes}`` of one decision's witness."""
    folder = decision_dir(decision_id)
    return {f"{folder}/payload.json": payload_bytes, f"{folder}/proof.json": proof_json(envelope)}


def payload_paths(envelope: Mapping[str, Any]) -> list[str]:
    """Artifact paths (from the run's root) that may hold a record's payload, in the order
    to try: the record's own folder first (never overwritten), then the reference's path.
    """
    event_id = str(envelope.get("event_id"))
    own = f"{WITNESS_ROOT}/{event_dir(event_id)}/payload.json"
    event_type = str(envelope.get("event_type"))
    subject = envelope.get("subject")
    subject = subject if isinstance(subject, dict) else {}
    if event_type == PREDICTION or subject.get("type") == "mlflow_prediction":
        decision = subject.get("decision_id")
        return [f"{WITNESS_ROOT}/{decision_dir(str(decision))}/payload.json", own]
    if event_type == DATASET:
        return [own]
    legacy_id = event_id
    if event_type == PROMOTION:  # 0.3.0 promotions name their folder in the subject
        legacy_id = str(subject.get("event_id") or event_id)
    legacy = next(
        (p for p, kind in _LEGACY.get(event_type, {}).items() if kind == "payload"),
        "payload.json",  # a legacy record of an unknown type: the reference's one path
    )
    return [own, f"{WITNESS_ROOT}/{legacy.format(id=legacy_id)}"]


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


def read_artifact(client: Any, run_id: str, path: str) -> bytes:
    """The bytes of one artifact of a run (downloaded into a private scratch directory)."""
    with tempfile.TemporaryDirectory(prefix="ario-witness-") as scratch:
        return Path(client.download_artifacts(run_id, path, scratch)).read_bytes()


def read_witness(client: Any, run_id: str, envelope: Mapping[str, Any]) -> tuple[bytes, str]:
    """``(payload bytes, path)`` of the first of :func:`payload_paths` the run holds.

    Raises :class:`ProofUnavailableError` naming every path tried and why. The bytes are
    not checked here: the caller compares their hash with the record's ``payload_hash``.
    """
    problems = []
    for path in payload_paths(envelope):
        try:
            return read_artifact(client, run_id, path), path
        except Exception as exc:  # MlflowException, OSError: not there, try the next
            problems.append(f"{path}: {exc}")
    raise ProofUnavailableError(
        f"payload witness of run {run_id} is missing: " + "; ".join(problems)
    )
