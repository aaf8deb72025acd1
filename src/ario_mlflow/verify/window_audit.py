"""Completeness of a model version's batched decisions: every stream, every window.

MLflow holds each window's decisions and manifest (the witness); the gateways hold each
window's signed record. The audit proves, per stream, that

* every window's witness is what its anchored record signed (the decisions hash to the
  signed root; no decision deleted or edited inside a window),
* no decision is missing inside a window (tree size = last − first + 1, each decision's
  sequence number in its place),
* no window is missing between two others (each links to its predecessor's TX and
  manifest hash; sequence numbers run on), nor at the start (the first window follows
  ``GENESIS`` from sequence 1),
* no window or whole stream signed for this version is on the gateways but not in MLflow
  (a search by signer, model name and version over every gateway),
* and, from this installation's journal, no decision is still waiting outside a window.

Each finding has its own reason code (:data:`REASONS`) and a sentence a person can act on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ario_mlflow.arweave.gateway_reader import GatewayReader
from ario_mlflow.lifecycle.witness import WindowWitness, read_window, window_folders
from ario_mlflow.proof.hashing import sha256_hex
from ario_mlflow.proof.payloads import GENESIS, PREDICTION_BATCH
from ario_mlflow.proof.windows import GAP_INSIDE, ROOT_MISMATCH, decisions_problem, window_problem

WINDOW_INVALID = "window_record_invalid"
GAP_BETWEEN = "gap_between_windows"
WINDOW_MISSING = "window_missing_from_mlflow"
STREAM_MISSING = "stream_missing_from_mlflow"
UNCLOSED_TAIL = "unclosed_tail"
#: Every reason a stream can fail the audit with.
REASONS = (
    WINDOW_INVALID,
    ROOT_MISMATCH,
    GAP_INSIDE,
    GAP_BETWEEN,
    WINDOW_MISSING,
    STREAM_MISSING,
    UNCLOSED_TAIL,
)


@dataclass
class _Window:
    witness: WindowWitness
    envelope: dict[str, Any] | None
    manifest: dict[str, Any]


@dataclass
class _Stream:
    stream_id: str
    windows: list[_Window] = field(default_factory=list)
    problems: list[dict[str, str]] = field(default_factory=list)
    verified: int = 0

    def flag(self, reason: str, detail: str) -> None:
        self.problems.append({"reason": reason, "detail": detail})


def _manifest(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _check_window(
    stream: _Stream,
    window: _Window,
    *,
    name: str,
    version: str,
    registration_tx: str | None,
    issuers: set[str],
) -> None:
    """One window: its record, its witness against the signed root, no gap inside."""
    w, manifest = window.witness, window.manifest
    label = f"window {w.first_seq}-{w.last_seq} ({w.tx_id or 'no TX'})"
    envelope = window.envelope
    problem = (
        "its TX id or anchored record cannot be read"
        if envelope is None
        else window_problem(envelope, w.manifest_bytes)
    )
    if problem is None and envelope is not None:
        if issuers and envelope.get("public_key") not in issuers:
            problem = "signed by a key that signed none of this version's lineage"
        elif (manifest.get("model_name"), manifest.get("model_version")) != (name, version):
            problem = "it is about another model version"
        elif registration_tx and manifest.get("registration_tx") != registration_tx:
            problem = f"it names registration {manifest.get('registration_tx')!r}"
        elif manifest.get("stream_id") != stream.stream_id:
            problem = "it is about another stream"
        elif (manifest.get("first_seq"), manifest.get("last_seq")) != (w.first_seq, w.last_seq):
            problem = "its folder and its manifest name different sequence numbers"
    if problem is not None:
        stream.flag(WINDOW_INVALID, f"{label}: {problem}")
        return
    found = decisions_problem(manifest, w.payloads)
    if found is not None:
        stream.flag(found[0], f"{label}: {found[1]}")
        return
    stream.verified += len(w.payloads)


def _check_links(stream: _Stream, anchored: dict[str, dict[str, str]]) -> None:
    """Windows follow each other with nothing between, from the stream's start."""
    previous: _Window | None = None
    for window in stream.windows:
        w, envelope = window.witness, window.envelope or {}
        link = envelope.get("previous_hash")
        if previous is None:
            if link != GENESIS or w.first_seq != 1:
                stream.flag(
                    WINDOW_MISSING,
                    f"the first window in MLflow ({w.first_seq}-{w.last_seq}) follows "
                    f"{link}: the stream's earlier windows are not in MLflow",
                )
        else:
            p = previous.witness
            if link != p.tx_id or window.manifest.get("previous_window_hash") != sha256_hex(
                p.manifest_bytes
            ):
                stream.flag(
                    WINDOW_MISSING,
                    f"window {w.first_seq}-{w.last_seq} follows {link}, not the window before "
                    f"it in MLflow ({p.tx_id}): a window between them is missing",
                )
            elif w.first_seq != p.last_seq + 1:
                stream.flag(
                    GAP_BETWEEN,
                    f"sequence numbers {p.last_seq + 1}-{w.first_seq - 1} are in no window "
                    f"between {p.tx_id} and {w.tx_id}",
                )
        previous = window
    held = {w.witness.tx_id for w in stream.windows}
    for tx_id in sorted(set(anchored) - held):
        stream.flag(WINDOW_MISSING, f"window {tx_id} of this stream is anchored but not in MLflow")


def _anchored_windows(
    anchor: Any, name: str, version: str, issuers: set[str]
) -> tuple[dict[str, dict[str, dict[str, str]]], dict[str, str], bool | None]:
    """``({stream: {tx: tags}}, failed gateways, searched)`` of the windows signed for
    this version on every gateway (``searched`` None when no gateway answered)."""
    if not issuers:
        return {}, {"-": "no signing key in the lineage to search by"}, None
    reader: GatewayReader = anchor.reader()
    result = reader.search_everywhere(
        tags={
            "App-Name": "ar-io-mlflow",
            "Event-Type": PREDICTION_BATCH,
            "Model-Name": name,
            "Model-Version": version,
            "Signer": sorted(issuers),
        }
    )
    found: dict[str, dict[str, dict[str, str]]] = {}
    for node in result.nodes:
        found.setdefault(node.tags.get("Stream-Id", "?"), {})[node.id] = node.tags
    return found, dict(result.failed), (True if result.answered else None)


def _unclosed(journal: Any, name: str, version: str) -> dict[str, int]:
    """Decisions of this version's streams waiting outside a window in this journal."""
    if journal is None:
        return {}
    rows = journal.connection().execute(
        "SELECT s.stream_id, s.header, COUNT(l.seq) FROM streams s JOIN leaves l "
        "ON l.stream_id = s.stream_id WHERE l.window_tx IS NULL GROUP BY s.stream_id"
    )
    waiting = {}
    for stream_id, header, count in rows:
        h = json.loads(header)
        if (h.get("model_name"), h.get("model_version")) == (name, version):
            waiting[str(stream_id)] = int(count)
    return waiting


def audit_windows(
    client: Any,
    anchor: Any,
    *,
    name: str,
    version: str,
    run_id: str | None,
    registration_tx: str | None,
    issuers: Iterable[str],
    journal: Any = None,
) -> dict[str, Any]:
    """The completeness report of a version's batched decisions (module docstring)."""
    keys = set(issuers)
    streams: dict[str, _Stream] = {}
    for stream_id, first, last in window_folders(client, run_id) if run_id else []:
        stream = streams.setdefault(stream_id, _Stream(stream_id))
        witness = read_window(client, run_id or "", stream_id, first, last)
        envelope = anchor.fetch_proof(witness.tx_id) if witness.tx_id else None
        window = _Window(witness, envelope, _manifest(witness.manifest_bytes))
        stream.windows.append(window)
        _check_window(
            stream,
            window,
            name=name,
            version=version,
            registration_tx=registration_tx,
            issuers=keys,
        )
    anchored, failed, searched = _anchored_windows(anchor, name, version, keys)
    for stream in streams.values():
        _check_links(stream, anchored.get(stream.stream_id, {}))
    for stream_id, txs in sorted(anchored.items()):
        if stream_id not in streams:
            missing = streams.setdefault(stream_id, _Stream(stream_id))
            missing.flag(
                STREAM_MISSING,
                f"{len(txs)} window(s) of stream {stream_id} are anchored for {name}/{version} "
                "but MLflow holds none of them",
            )
    for stream_id, count in _unclosed(journal, name, version).items():
        streams.setdefault(stream_id, _Stream(stream_id)).flag(
            UNCLOSED_TAIL,
            f"{count} decision(s) of stream {stream_id} are not in a window yet "
            "(run 'ar-io-mlflow sync' to close it)",
        )
    report: list[dict[str, Any]] = [
        {
            "stream_id": s.stream_id,
            "windows": len(s.windows),
            "decisions": sum(len(w.witness.payloads) for w in s.windows),
            "verified": s.verified,
            "first_seq": s.windows[0].witness.first_seq if s.windows else None,
            "last_seq": s.windows[-1].witness.last_seq if s.windows else None,
            "problems": s.problems,
        }
        for s in sorted(streams.values(), key=lambda s: s.stream_id)
    ]
    problems = [p for s in streams.values() for p in s.problems]
    return {
        "streams": report,
        "windows": sum(r["windows"] for r in report),
        "decisions": sum(r["decisions"] for r in report),
        "verified": sum(r["verified"] for r in report),
        "problems": problems,
        "searched_gateways": searched,
        "unchecked": failed,
        "ok": False if problems else (True if searched else None),
    }
