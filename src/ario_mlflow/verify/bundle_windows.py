"""Windows of batched decisions in an evidence bundle.

A window goes in whole: its anchored record (``envelope.json``), its manifest (the record's
payload, ``payload.bin``) and its decisions (``decisions.jsonl``, one payload per line in
sequence order). With all of a window's leaves at hand a verifier recomputes the root, so
every decision in it carries its inclusion proof implicitly; no per-decision receipt is
needed. Consecutive windows of a stream must link (TX and manifest hash) with no sequence
number between them; a bundle cut short by the export limit says so in its manifest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ario_mlflow.lifecycle.witness import (
    decision_lines,
    decisions_file,
    read_window,
    window_folders,
)
from ario_mlflow.proof.hashing import sha256_hex
from ario_mlflow.proof.payloads import GENESIS
from ario_mlflow.proof.windows import decisions_problem, window_problem

STAGE = "window"


def export_windows(
    staging: Path, *, client: Any, anchor: Any, run_id: str | None, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """Write the run's windows (newest last) holding at most ``limit`` decisions into
    ``staging``; ``(manifest entries, truncated)``."""
    if not run_id or limit <= 0:
        return [], False
    folders = window_folders(client, run_id)
    entries: list[dict[str, Any]] = []
    total = 0
    for stream_id, first, last in folders:
        size = last - first + 1
        if total + size > limit:
            return entries, True
        window = read_window(client, run_id, stream_id, first, last)
        data = anchor.fetch_envelope_bytes(window.tx_id) if window.tx_id else None
        if data is None:
            continue  # not anchored (yet): nothing to prove it with
        tx_id = str(window.tx_id)
        folder = staging / "records" / tx_id
        folder.mkdir(parents=True, exist_ok=True)
        decisions = decisions_file(window.payloads)
        files = {
            "envelope": ("envelope.json", data),
            "payload": ("payload.bin", window.manifest_bytes),
            "decisions": ("decisions.jsonl", decisions),
        }
        entry: dict[str, Any] = {
            "stage": STAGE,
            "label": f"window {first}-{last} of stream {stream_id}",
            "tx_id": tx_id,
            "event_type": "prediction_batch",
            "receipt": None,
        }
        for key, (name, content) in files.items():
            (folder / name).write_bytes(content)
            entry[key] = f"records/{tx_id}/{name}"
            entry[f"{key}_sha256"] = sha256_hex(content)
        entries.append(entry)
        total += size
    return entries, False


def check_window(
    result: dict[str, Any],
    read: Callable[[str], bytes],
    *,
    model: tuple[str, str],
    registration_tx: str | None,
) -> list[str]:
    """Problems of one bundled window beyond the per-record checks: the record, the
    decisions against the signed root, the model version and its registration."""
    envelope = result.get("envelope_obj") or {}
    manifest = result.get("payload_obj") or {}
    payload = read(result["payload"]) if result.get("payload") else b""
    problem = window_problem(envelope, payload)
    if problem:
        return [problem]
    relative = result.get("decisions")
    if not isinstance(relative, str):
        return ["the window's decisions are not in the bundle"]
    data = read(relative)
    if sha256_hex(data) != result.get("decisions_sha256"):
        return ["decisions file differs from the manifest hash"]
    lines = decision_lines(data)
    found = decisions_problem(manifest, lines)
    problems = [f"{found[0]}: {found[1]}"] if found else []
    if (manifest.get("model_name"), manifest.get("model_version")) != model:
        problems.append(
            f"subject_mismatch: window is about {manifest.get('model_name')}/"
            f"{manifest.get('model_version')}, not {model[0]}/{model[1]}"
        )
    if manifest.get("registration_tx") != registration_tx:
        problems.append(
            f"chain_link_broken: window names registration {manifest.get('registration_tx')!r}, "
            f"expected {registration_tx!r}"
        )
    result["decision_count"] = len(lines)
    return problems


def check_links(windows: Sequence[dict[str, Any]], truncated: bool) -> None:
    """Consecutive bundled windows of a stream follow each other (flags ``result``)."""
    streams: dict[str, list[dict[str, Any]]] = {}
    for result in windows:
        manifest = result.get("payload_obj") or {}
        streams.setdefault(str(manifest.get("stream_id")), []).append(result)
    for members in streams.values():
        members.sort(key=lambda r: (r.get("payload_obj") or {}).get("first_seq") or 0)
        previous: dict[str, Any] | None = None
        for result in members:
            envelope = result.get("envelope_obj") or {}
            manifest = result.get("payload_obj") or {}
            link = envelope.get("previous_hash")
            if previous is None:
                if link != GENESIS and not truncated:
                    _fail(result, f"chain_link_broken: the stream's first window follows {link}")
            elif link != previous["tx_id"] or manifest.get("previous_window_hash") != (
                (previous.get("envelope_obj") or {}).get("payload_hash")
            ):
                _fail(
                    result,
                    f"chain_link_broken: follows {link}, not the window before it in the bundle "
                    f"({previous['tx_id']})",
                )
            elif (
                manifest.get("first_seq")
                != (previous.get("payload_obj") or {}).get("last_seq", 0) + 1
            ):
                _fail(result, "gap_between_windows: sequence numbers are missing before it")
            previous = result


def _fail(result: dict[str, Any], problem: str) -> None:
    result["ok"] = False
    result["problems"].append(problem)
