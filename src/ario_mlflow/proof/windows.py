"""Windows of batched decisions and their inclusion receipts (pure).

In ``batch`` mode a decision is not signed by itself. Its payload (the ``prediction``
payload plus ``decided_at``) is an RFC 9162 leaf; the decisions of one serving stream are
cut into windows, and each window has one signed ``prediction_batch`` record whose payload
is the *manifest* below: the tree's root over the window's leaves in sequence order, the
window's sequence range and times, the model version and its registration TX, and the
hash of the stream's previous manifest. The record's ``previous_hash`` is the previous
window's TX (``GENESIS`` for the first), so a stream is a chain and a missing window
shows.

A decision's *receipt* carries everything needed to check it with nothing else: its
payload bytes, its leaf index and the audit path, the window's manifest bytes, envelope
and TX. :func:`receipt_problem` is the whole check except pinning the issuer and
binding the model version, which the caller knows.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ario_mlflow.proof.canonical import canonical_json
from ario_mlflow.proof.envelope import verify_envelope
from ario_mlflow.proof.hashing import sha256_hex
from ario_mlflow.proof.merkle import audit_path, leaf_hash, merkle_root, verify_inclusion
from ario_mlflow.proof.payloads import PREDICTION, PREDICTION_BATCH

__all__ = [
    "BATCH_SUBJECT_TYPE",
    "LEAF_HASH",
    "RECEIPT_FORMAT",
    "Receipt",
    "decisions_problem",
    "receipt_in_window",
    "receipt_problem",
    "window_manifest",
    "window_problem",
    "window_subject",
]

BATCH_SUBJECT_TYPE = "mlflow_prediction_batch"
#: How the manifest's ``root_hash`` is computed from the leaves (named in the manifest).
LEAF_HASH = "rfc9162-sha256"
RECEIPT_FORMAT = "ario.mlflow/receipt-v1"


def window_subject(model_name: str, model_version: str, stream_id: str) -> dict[str, str]:
    """The subject of a ``prediction_batch`` record: the model version and the stream."""
    return {
        "type": BATCH_SUBJECT_TYPE,
        "name": model_name,
        "version": model_version,
        "stream_id": stream_id,
    }


def window_manifest(
    *,
    stream: Mapping[str, Any],
    leaves: Sequence[tuple[int, bytes]],
    first_decided_at: str,
    last_decided_at: str,
    previous_window_hash: str | None,
    closed_by: str,
) -> dict[str, Any]:
    """The payload of a window's record. ``stream`` holds the stream's fixed fields
    (``stream_id``, ``model_name``, ``model_version``, ``model_uri``, ``run_id``,
    ``registration_tx``); ``leaves`` are ``(sequence, payload bytes)`` in sequence order."""
    if not leaves:
        raise ValueError("a window holds at least one decision")
    return {
        "event_type": PREDICTION_BATCH,
        "stream_id": stream["stream_id"],
        "model_name": stream["model_name"],
        "model_version": stream["model_version"],
        "model_uri": stream["model_uri"],
        "run_id": stream["run_id"],
        "registration_tx": stream.get("registration_tx"),
        "first_seq": leaves[0][0],
        "last_seq": leaves[-1][0],
        "tree_size": len(leaves),
        "leaf_hash": LEAF_HASH,
        "root_hash": merkle_root([leaf_hash(data) for _, data in leaves]).hex(),
        "first_decided_at": first_decided_at,
        "last_decided_at": last_decided_at,
        "previous_window_hash": previous_window_hash,
        "closed_by": closed_by,
    }


def _json_object(data: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def window_problem(envelope: Any, manifest_bytes: bytes) -> str | None:
    """Why ``envelope`` + ``manifest_bytes`` are not a signed window record, else None:
    the signature, the manifest's hash, event type, subject and manifest agreeing."""
    if not isinstance(envelope, dict):
        return "window record is not a JSON object"
    if envelope.get("event_type") != PREDICTION_BATCH:
        return f"record is a {envelope.get('event_type')!r} event, not {PREDICTION_BATCH}"
    checked = verify_envelope(envelope, payload_bytes=manifest_bytes)
    if not checked.ok:
        return f"window record does not verify: {checked.reason}"
    manifest = _json_object(manifest_bytes)
    if manifest is None or manifest.get("event_type") != PREDICTION_BATCH:
        return "window manifest is not a prediction_batch payload"
    if canonical_json(manifest) != manifest_bytes:
        return "window manifest bytes are not canonical JSON"
    subject = window_subject(
        str(manifest.get("model_name")),
        str(manifest.get("model_version")),
        str(manifest.get("stream_id")),
    )
    if envelope.get("subject") != subject:
        return "window record's subject does not name the manifest's model version and stream"
    if manifest.get("leaf_hash") != LEAF_HASH:
        return f"window manifest's leaf hash is {manifest.get('leaf_hash')!r}, not {LEAF_HASH}"
    return None


#: A window's decisions are not what its record signed / not all in sequence.
ROOT_MISMATCH = "window_root_mismatch"
GAP_INSIDE = "gap_inside_window"


def decisions_problem(
    manifest: Mapping[str, Any], payloads: Sequence[bytes]
) -> tuple[str, str] | None:
    """``(reason code, sentence)`` when ``payloads`` (a window's decisions, in leaf
    order, as a witness or a bundle holds them) are not the ones the signed ``manifest``
    commits to — or are, but a sequence number is missing or out of place; else None."""
    size = manifest.get("tree_size")
    root = merkle_root([leaf_hash(p) for p in payloads]).hex()
    if root != manifest.get("root_hash") or len(payloads) != size:
        return ROOT_MISMATCH, (
            f"its {len(payloads)} decisions do not hash to the signed root of {size} "
            "(a decision deleted, added or edited)"
        )
    first, last = manifest.get("first_seq"), manifest.get("last_seq")
    expected = (
        list(range(first, last + 1)) if isinstance(first, int) and isinstance(last, int) else []
    )
    seqs = [(_json_object(p) or {}).get("sequence") for p in payloads]
    if size != len(expected) or seqs != expected:
        missing = sorted(set(expected) - {s for s in seqs if isinstance(s, int)})
        return GAP_INSIDE, (
            f"holds {len(seqs)} decisions for {len(expected)} sequence numbers"
            + (f"; missing {missing[:20]}" if missing else "; out of place")
        )
    return None


@dataclass(frozen=True)
class Receipt:
    """A batched decision's proof of inclusion in its signed, anchored window."""

    payload_bytes: bytes
    leaf_index: int
    tree_size: int
    audit_path: tuple[bytes, ...]
    manifest_bytes: bytes
    envelope: dict[str, Any]
    tx_id: str

    @property
    def payload(self) -> dict[str, Any]:
        """The decision's payload (``{}`` when its bytes are not a JSON object)."""
        return _json_object(self.payload_bytes) or {}

    @property
    def manifest(self) -> dict[str, Any]:
        """The window's manifest (``{}`` when its bytes are not a JSON object)."""
        return _json_object(self.manifest_bytes) or {}

    def to_json(self) -> dict[str, Any]:
        """The receipt as JSON (bytes as base64; the envelope as it is)."""
        return {
            "format": RECEIPT_FORMAT,
            "tx_id": self.tx_id,
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "audit_path": [node.hex() for node in self.audit_path],
            "payload": base64.b64encode(self.payload_bytes).decode("ascii"),
            "manifest": base64.b64encode(self.manifest_bytes).decode("ascii"),
            "envelope": self.envelope,
        }

    @classmethod
    def from_json(cls, value: Any) -> Receipt:
        """A receipt from :meth:`to_json`'s form; ``ValueError`` naming what is wrong."""
        if not isinstance(value, dict) or value.get("format") != RECEIPT_FORMAT:
            raise ValueError(f"not a receipt: expected format {RECEIPT_FORMAT!r}")
        try:
            path = tuple(bytes.fromhex(node) for node in value["audit_path"])
            return cls(
                payload_bytes=base64.b64decode(value["payload"], validate=True),
                leaf_index=_int(value["leaf_index"], "leaf_index"),
                tree_size=_int(value["tree_size"], "tree_size"),
                audit_path=path,
                manifest_bytes=base64.b64decode(value["manifest"], validate=True),
                envelope=dict(value["envelope"]),
                tx_id=str(value["tx_id"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed receipt: {type(exc).__name__}: {exc}") from None


def receipt_in_window(
    payloads: Sequence[bytes],
    index: int,
    *,
    manifest_bytes: bytes,
    envelope: dict[str, Any],
    tx_id: str,
) -> Receipt:
    """The receipt of decision ``index`` of a window whose decisions are ``payloads``
    (in leaf order): its audit path computed from all of them."""
    hashes = [leaf_hash(p) for p in payloads]
    return Receipt(
        payload_bytes=payloads[index],
        leaf_index=index,
        tree_size=len(hashes),
        audit_path=tuple(audit_path(index, hashes)),
        manifest_bytes=manifest_bytes,
        envelope=envelope,
        tx_id=tx_id,
    )


def _int(value: Any, name: str) -> int:
    if type(value) is not int:
        raise ValueError(f"{name} is not an integer")
    return value


def receipt_problem(receipt: Receipt) -> str | None:
    """Why ``receipt`` does not prove its decision, else None. Checked: the window record
    (:func:`window_problem`), the decision's leaf under the manifest's root at its index,
    the tree size, and the decision's stream, model and sequence number agreeing with
    the window. Not checked here: who signed (pin the issuer) and whether the model
    version is the expected one (compare the manifest's ``model_name`` / ``model_version``
    and ``registration_tx``)."""
    problem = window_problem(receipt.envelope, receipt.manifest_bytes)
    if problem:
        return problem
    manifest = receipt.manifest
    if receipt.tree_size != manifest.get("tree_size"):
        return (
            f"receipt says the tree holds {receipt.tree_size} decisions, the signed manifest "
            f"{manifest.get('tree_size')}"
        )
    try:
        root = bytes.fromhex(str(manifest.get("root_hash")))
    except ValueError:
        return "window manifest's root_hash is not hex"
    leaf = leaf_hash(receipt.payload_bytes)
    if not verify_inclusion(leaf, receipt.leaf_index, receipt.tree_size, receipt.audit_path, root):
        return (
            "decision is not in the signed window: its payload and audit path do not lead "
            "to the manifest's root (edited payload, wrong index or forged path)"
        )
    payload = receipt.payload
    if payload.get("event_type") != PREDICTION:
        return "decision payload is not a prediction payload"
    for field in ("stream_id", "model_name", "model_version", "run_id"):
        if payload.get(field) != manifest.get(field):
            return f"decision's {field} {payload.get(field)!r} is not its window's"
    first = manifest.get("first_seq")
    if not isinstance(first, int) or payload.get("sequence") != first + receipt.leaf_index:
        return (
            f"decision's sequence number {payload.get('sequence')!r} is not its place in the "
            f"window ({first!r} + {receipt.leaf_index})"
        )
    return None


def receipt_payload_hash(receipt: Receipt) -> str:
    """The SHA-256 of the decision's payload bytes (what an each-mode record would sign)."""
    return sha256_hex(receipt.payload_bytes)
