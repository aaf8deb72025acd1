#!/usr/bin/env python3
"""Verify an ar-io-mlflow evidence bundle without ar-io-mlflow.

Needs Python 3.10+ and two packages from PyPI, nothing else:

    pip install cryptography rfc8785
    python standalone_verify.py BUNDLE_DIR [--trusted-key HEX ...] [--gateway URL] [--json]
    python standalone_verify.py RECEIPT.json [--trusted-key HEX ...] [--expect-model NAME/VERSION]
        [--expect-registration TX] [--gateway URL] [--json]

A bundle (``ar-io-mlflow export NAME/VERSION --output BUNDLE_DIR``) is a ``manifest.json``
plus, per anchored record, ``records/<tx_id>/envelope.json`` (the exact bytes stored on
Arweave) and ``records/<tx_id>/payload.bin`` (the exact payload bytes the envelope commits
to). Per record this script checks: the files against the manifest's SHA-256, that the
envelope bytes are canonical RFC 8785 JSON, the spec version, the Ed25519 signature over
the signed scope, SHA-256(payload) == payload_hash, what the record is about (subject),
and its chain link; with --trusted-key, who signed it; with --gateway, that the gateway
serves exactly these bytes at the TX id. Exit status 0 = PASS, 1 = FAIL.

A *receipt* (a file, ``ario.mlflow/receipt-v1``) proves one batched decision: its payload
bytes are an RFC 9162 leaf under the ``root_hash`` of a window manifest, and one signed
``prediction_batch`` record commits to that manifest. The script recomputes the root from
the payload and the audit path, then checks the manifest against the record's
payload_hash, the record's signature and subject, and the decision against its window
(stream, model, run, sequence number); --trusted-key, --expect-model,
--expect-registration and --gateway add who signed, which model version, which
registration record, and what is stored at the TX id.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import sys
import urllib.request
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

SCHEMA = "ario.mlflow.evidence/v1"
ACCEPTED_MAJORS = {"ario.mlflow/v1", "ario.agent/v1", "ario.events/v1"}
SPEC_GRAMMAR = re.compile(r"(?P<major>[a-z][a-z0-9._-]*/v[0-9]+)(?:\.[0-9]+)?")
STAGE_EVENT = {
    "training": "training_complete",
    "datasets": "dataset",
    "registration": "model_registered",
    "promotion": "stage_transition",
    "alias": "alias_changed",
    "prediction": "prediction",
}
RECEIPT_FORMAT = "ario.mlflow/receipt-v1"
BATCH_EVENT = "prediction_batch"
LEAF_HASH = "rfc9162-sha256"
HEX64 = re.compile(r"[0-9a-f]{64}")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def strict_json(data: bytes) -> Any:
    """Parse UTF-8 JSON, refusing duplicate keys and NaN/Infinity."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [key for key, _ in pairs]
        if len(keys) != len(set(keys)):
            raise ValueError("duplicate key")
        return dict(pairs)

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(
        data.decode("utf-8"), object_pairs_hook=no_duplicates, parse_constant=no_constants
    )


def signed_scope(envelope: dict[str, Any]) -> dict[str, Any]:
    """The envelope minus signature and co_signatures, and minus top-level ``_*`` keys
    for ario.mlflow/v1 and legacy (no spec_version) envelopes."""
    version = envelope.get("spec_version")
    match = SPEC_GRAMMAR.fullmatch(version) if isinstance(version, str) else None
    strip = version is None or (match is not None and match["major"] == "ario.mlflow/v1")
    return {
        key: value
        for key, value in envelope.items()
        if key not in ("signature", "co_signatures") and not (strip and key.startswith("_"))
    }


def ed25519_ok(message: bytes, signature_hex: Any, public_key_hex: Any) -> bool:
    hex64, hex128 = re.compile(r"[0-9a-f]{64}"), re.compile(r"[0-9a-f]{128}")
    if not (isinstance(public_key_hex, str) and hex64.fullmatch(public_key_hex)):
        return False
    if not (isinstance(signature_hex, str) and hex128.fullmatch(signature_hex)):
        return False
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
        key.verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def read_files(bundle: Path, entry: dict[str, Any], problems: list[str]) -> tuple[Any, Any]:
    """``(envelope bytes, payload bytes)`` of a manifest entry, checked against its hashes."""

    def read(relative: Any) -> bytes | None:
        if not isinstance(relative, str) or ".." in Path(relative).parts or relative[:1] == "/":
            problems.append(f"files: bad path {relative!r} in the manifest")
            return None
        try:
            return (bundle / relative).read_bytes()
        except OSError as exc:
            problems.append(f"files: {relative} unreadable ({exc.strerror})")
            return None

    envelope_bytes = read(entry.get("envelope"))
    payload_bytes = read(entry["payload"]) if entry.get("payload") else None
    if envelope_bytes is not None and sha256_hex(envelope_bytes) != entry.get("envelope_sha256"):
        problems.append("files: envelope.json does not match envelope_sha256 in the manifest")
    if payload_bytes is not None and sha256_hex(payload_bytes) != entry.get("payload_sha256"):
        problems.append("files: payload.bin does not match payload_sha256 in the manifest")
    return envelope_bytes, payload_bytes


def check_signed(
    envelope: dict[str, Any], message: bytes, problems: list[str], notes: list[str]
) -> None:
    """The spec version and the Ed25519 signature over ``message`` (the signed scope)."""
    version = envelope.get("spec_version")
    if version is None:
        notes.append("legacy envelope (no spec_version)")
    else:
        match = SPEC_GRAMMAR.fullmatch(version) if isinstance(version, str) else None
        if match is None or match["major"] not in ACCEPTED_MAJORS:
            problems.append(f"spec_version: {version!r} is not an accepted profile")

    if not ed25519_ok(message, envelope.get("signature"), envelope.get("public_key")):
        problems.append("signature: Ed25519 signature does not verify with public_key")


def check_record(bundle: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """Checks that need only this record's own files. ``problems`` empty means ok."""
    problems: list[str] = []
    notes: list[str] = []
    failed = {"envelope": None, "payload": None, "problems": problems, "notes": notes}
    envelope_bytes, payload_bytes = read_files(bundle, entry, problems)
    if envelope_bytes is None:
        return failed
    try:
        envelope = strict_json(envelope_bytes)
        if not isinstance(envelope, dict):
            raise ValueError("not a JSON object")
        canonical = rfc8785.dumps(envelope)
        message = rfc8785.dumps(signed_scope(envelope))  # the bytes the signature covers
    except (UnicodeDecodeError, ValueError) as exc:  # rfc8785 errors are ValueErrors too
        problems.append(f"envelope: not a canonicalizable JSON object ({exc})")
        return failed
    if canonical != envelope_bytes:
        problems.append("canonical: envelope bytes are not RFC 8785 canonical JSON")
    check_signed(envelope, message, problems, notes)

    if payload_bytes is None:
        if envelope.get("event_type") == "dataset":
            notes.append("no payload bytes in the bundle: signature checked only")
        else:
            problems.append("payload_hash: the bundle holds no payload bytes for this record")
    elif sha256_hex(payload_bytes) != envelope.get("payload_hash"):
        problems.append("payload_hash: SHA-256 of payload.bin differs from payload_hash")

    expected_event = STAGE_EVENT.get(entry.get("stage"))
    if envelope.get("event_type") != expected_event or entry.get("event_type") != expected_event:
        problems.append(
            f"event_type: stage {entry.get('stage')!r} needs {expected_event!r}, "
            f"envelope says {envelope.get('event_type')!r}"
        )
    payload = None
    if payload_bytes is not None:
        try:
            payload = strict_json(payload_bytes)
        except (UnicodeDecodeError, ValueError):
            problems.append("payload: payload.bin is not JSON")
    return {"envelope": envelope, "payload": payload, "problems": problems, "notes": notes}


def check_links(manifest: dict[str, Any], results: list[dict[str, Any]]) -> list[str]:
    """Subject binding and chain links among the bundle's records; bundle-level problems."""
    by_stage: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        by_stage.setdefault(result["stage"], []).append(result)
    bundle_problems = [
        f"the bundle needs exactly one {stage} record, it has {len(by_stage.get(stage, []))}"
        for stage in ("training", "registration")
        if len(by_stage.get(stage, [])) != 1
    ]
    training = (by_stage.get("training") or [None])[0]
    registration = (by_stage.get("registration") or [None])[0]
    version_subject = {
        "type": "mlflow_model_version",
        "name": str(manifest.get("model")),
        "version": str(manifest.get("version")),
    }
    source_run = ((registration or {}).get("payload") or {}).get("source_run_id")
    training_run = (((training or {}).get("envelope") or {}).get("subject") or {}).get("run_id")
    dataset_inputs = ((training or {}).get("payload") or {}).get("dataset_inputs") or []
    for result in results:
        envelope = result["envelope"]
        if envelope is None:
            continue
        stage, subject = result["stage"], envelope.get("subject") or {}
        problems, payload = result["problems"], result["payload"] or {}
        # chain: what previous_hash must be
        expected = {
            "datasets": "GENESIS",
            "registration": training["tx_id"] if training else "GENESIS",
            "promotion": registration["tx_id"] if registration else None,
            "alias": registration["tx_id"] if registration else None,
            "prediction": registration["tx_id"] if registration else None,
        }.get(stage, envelope.get("previous_hash"))
        if envelope.get("previous_hash") != expected:
            problems.append(
                f"chain: previous_hash is {envelope.get('previous_hash')!r}, expected {expected!r}"
            )
        # subject: the record must be about this model version / its run
        if stage in ("registration", "promotion", "alias") and subject != version_subject:
            problems.append(f"subject: record is about {subject}, not {version_subject}")
        if stage == "training" and (
            subject.get("type") != "mlflow_run" or subject.get("run_id") != source_run
        ):
            problems.append(
                f"subject: training record is about run {subject.get('run_id')!r}, the "
                f"registration's source run is {source_run!r}"
            )
        if stage == "prediction" and (
            subject.get("type") != "mlflow_prediction"
            or subject.get("model_run_id") != training_run
            or payload.get("decision_id") != subject.get("decision_id")
            or str(payload.get("model_name")) != version_subject["name"]
            or str(payload.get("model_version")) != version_subject["version"]
        ):
            problems.append("subject: decision is not about this model version and run")
        if stage == "datasets":
            if subject.get("type") != "mlflow_dataset":
                problems.append(f"subject: dataset record is about {subject}")
            elif not any(
                d.get("name") == subject.get("name") and d.get("digest") == subject.get("digest")
                for d in dataset_inputs
                if isinstance(d, dict)
            ):
                result["notes"].append("dataset is not among the training payload's inputs")
    return bundle_problems


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def inclusion_root(leaf: bytes, index: int, size: int, path: list[bytes]) -> bytes | None:
    """The root ``path`` leads to from ``leaf`` at ``index`` of a ``size``-leaf tree
    (RFC 9162 section 2.1.3.2), or None when the path cannot belong to that place."""
    if not 0 <= index < size:
        return None
    fn, sn, node = index, size - 1, leaf
    for sibling in path:
        if sn == 0:
            return None  # the path is longer than the tree is high
        if fn & 1 or fn == sn:
            node = node_hash(sibling, node)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            node = node_hash(node, sibling)
        fn, sn = fn >> 1, sn >> 1
    return node if sn == 0 else None


def read_receipt(path: Path) -> dict[str, Any]:
    """A receipt file with its bytes decoded; ``ValueError`` naming what is malformed."""
    value = strict_json(path.read_bytes())
    if not isinstance(value, dict) or value.get("format") != RECEIPT_FORMAT:
        raise ValueError(f"format is not {RECEIPT_FORMAT}")
    try:
        nodes = value["audit_path"]
        if not all(isinstance(node, str) and HEX64.fullmatch(node) for node in nodes):
            raise ValueError("audit_path holds a node that is not 64 lowercase hex digits")
        receipt = {
            "tx_id": value["tx_id"],
            "leaf_index": value["leaf_index"],
            "tree_size": value["tree_size"],
            "audit_path": [bytes.fromhex(node) for node in nodes],
            "payload": base64.b64decode(value["payload"], validate=True),
            "manifest": base64.b64decode(value["manifest"], validate=True),
            "envelope": value["envelope"],
        }
    except (KeyError, TypeError, ValueError) as exc:  # binascii.Error is a ValueError
        raise ValueError(f"malformed receipt ({type(exc).__name__}: {exc})") from None
    for name, kind in (("tx_id", str), ("leaf_index", int), ("tree_size", int)):
        if type(receipt[name]) is not kind:  # not isinstance: a bool is no index
            raise ValueError(f"malformed receipt ({name} is not a {kind.__name__})")
    if not isinstance(receipt["envelope"], dict):
        raise ValueError("malformed receipt (envelope is not a JSON object)")
    return receipt


def json_object(data: bytes) -> dict[str, Any] | None:
    """``data`` as a strict JSON object, or None: a bad part is reported, not raised."""
    try:
        value = strict_json(data)
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def check_receipt(receipt: dict[str, Any]) -> list[str]:
    """Every check a receipt supports on its own; no problems means ok. The window record
    is checked as any record is (spec version, signature), then the chain of hashes from
    the decision's bytes up to the signed payload_hash, then what each part names."""
    problems: list[str] = []
    envelope = receipt["envelope"]
    if envelope.get("spec_version") is None:  # windows are newer than legacy records
        problems.append("spec_version: missing (a window record is never a legacy record)")
    try:
        message = rfc8785.dumps(signed_scope(envelope))
    except ValueError as exc:
        problems.append(f"envelope: not a canonicalizable JSON object ({exc})")
    else:
        check_signed(envelope, message, problems, [])
    if envelope.get("event_type") != BATCH_EVENT:
        problems.append(f"event_type: the record is {envelope.get('event_type')!r}, not a window")
    if sha256_hex(receipt["manifest"]) != envelope.get("payload_hash"):
        problems.append("payload_hash: SHA-256 of the manifest bytes differs from payload_hash")

    manifest = json_object(receipt["manifest"])
    if manifest is None:
        problems.append("manifest: the manifest bytes are not a JSON object")
        return problems
    if rfc8785.dumps(manifest) != receipt["manifest"]:
        problems.append("manifest: the manifest bytes are not RFC 8785 canonical JSON")
    if manifest.get("event_type") != BATCH_EVENT or manifest.get("leaf_hash") != LEAF_HASH:
        problems.append(f"manifest: not a {BATCH_EVENT} manifest with {LEAF_HASH} leaves")
    subject = {
        "type": "mlflow_prediction_batch",
        "name": str(manifest.get("model_name")),
        "version": str(manifest.get("model_version")),
        "stream_id": str(manifest.get("stream_id")),
    }
    if envelope.get("subject") != subject:
        problems.append(f"subject: record is about {envelope.get('subject')}, not {subject}")
    if manifest.get("previous_window_hash") is None and envelope.get("previous_hash") != "GENESIS":
        problems.append("chain: the stream's first window must have previous_hash GENESIS")

    index, size = receipt["leaf_index"], receipt["tree_size"]
    if size != manifest.get("tree_size"):
        problems.append(
            f"inclusion: receipt says {size} leaves, the manifest {manifest.get('tree_size')!r}"
        )
    root = inclusion_root(leaf_hash(receipt["payload"]), index, size, receipt["audit_path"])
    if root is None or root.hex() != manifest.get("root_hash"):
        problems.append(
            "inclusion: the decision's payload and audit path do not lead to the manifest's "
            "root_hash (edited payload, wrong leaf_index or forged path)"
        )

    decision = json_object(receipt["payload"])
    if decision is None or decision.get("event_type") != "prediction":
        problems.append("decision: the payload is not a prediction payload")
        return problems
    for field in ("stream_id", "model_name", "model_version", "run_id"):
        if decision.get(field) != manifest.get(field):
            problems.append(
                f"decision: {field} {decision.get(field)!r} is not the window's "
                f"{manifest.get(field)!r}"
            )
    first = manifest.get("first_seq")
    if type(first) is not int or decision.get("sequence") != first + index:
        problems.append(
            f"sequence: the decision's sequence {decision.get('sequence')!r} is not first_seq "
            f"{first!r} + leaf_index {index}"
        )
    return problems


def served_problem(gateway: str, tx_id: Any, expected: bytes) -> str | None:
    """Why ``GET <gateway>/raw/<tx_id>`` does not return ``expected``, else None."""
    url = f"{gateway.rstrip('/')}/raw/{tx_id}"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            served = response.read()
    except OSError as exc:
        return f"gateway: {url} failed ({exc})"
    return None if served == expected else f"gateway: {url} serves other bytes"


def verify_receipt(path: Path, args: argparse.Namespace, trusted: set[str]) -> int:
    """The receipt mode of :func:`main`: checks, expectations, report, exit status."""
    try:
        receipt = read_receipt(path)
    except (OSError, ValueError) as exc:
        print(f"FAIL: {path} is not a decision receipt ({exc})")
        return 1
    problems = check_receipt(receipt)
    envelope = receipt["envelope"]
    manifest = json_object(receipt["manifest"]) or {}
    decision = json_object(receipt["payload"]) or {}
    model = f"{manifest.get('model_name')}/{manifest.get('model_version')}"
    signer = envelope.get("public_key")
    if trusted and signer not in trusted:
        problems.append(f"issuer: signed by {signer}, which is not a trusted key")
    if args.expect_model is not None and model != args.expect_model:
        problems.append(f"expected: the window is of {model}, not {args.expect_model}")
    registration = manifest.get("registration_tx")
    if args.expect_registration is not None and registration != args.expect_registration:
        problems.append(
            f"expected: the window names registration {registration!r}, "
            f"not {args.expect_registration}"
        )
    for gateway in args.gateway:
        try:
            anchored = rfc8785.dumps(envelope)
        except ValueError:
            break  # already reported: the envelope has no canonical bytes
        problem = served_problem(gateway, receipt["tx_id"], anchored)
        if problem:
            problems.append(problem)

    ok = not problems
    decision_id, tx_id = decision.get("decision_id"), receipt["tx_id"]
    if args.json:
        report = {
            "ok": ok,
            "decision_id": decision_id,
            "sequence": decision.get("sequence"),
            "stream_id": manifest.get("stream_id"),
            "model": manifest.get("model_name"),
            "version": manifest.get("model_version"),
            "registration_tx": registration,
            "tx_id": tx_id,
            "leaf_index": receipt["leaf_index"],
            "tree_size": receipt["tree_size"],
            "problems": problems,
            "signers": [{"public_key": signer, "pinned": signer in trusted}],
        }
        print(json.dumps(report, indent=2))
        return 0 if ok else 1
    print(
        f"decision {decision_id}: sequence {decision.get('sequence')!r} of stream "
        f"{manifest.get('stream_id')}, leaf {receipt['leaf_index']} of {receipt['tree_size']}"
    )
    print(f"window   {tx_id}: {model}, registration {registration}")
    for line in problems:
        print(f"FAIL {line}")
    print(f"signer {signer}: {'pinned' if signer in trusted else 'NOT pinned (use --trusted-key)'}")
    if ok:
        print(f"PASS: decision {decision_id} is in window {tx_id} of {model}")
    else:
        print(f"FAIL: decision {decision_id} is not proven by this receipt: {problems[0]}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Verify an ar-io-mlflow evidence bundle or a batched decision's receipt."
    )
    parser.add_argument(
        "bundle",
        type=Path,
        help="The bundle directory (with manifest.json), or a decision's receipt JSON file.",
    )
    parser.add_argument(
        "--trusted-key",
        action="append",
        default=[],
        metavar="HEX",
        help="Public key (64 hex) the records must be signed with (repeatable).",
    )
    parser.add_argument(
        "--gateway",
        action="append",
        default=[],
        metavar="URL",
        help="Also require GET URL/raw/<tx_id> to return the bundled envelope bytes "
        "(for a receipt: the JCS bytes of its window record).",
    )
    parser.add_argument(
        "--expect-model",
        metavar="NAME/VERSION",
        help="Require the bundle's (or the receipt's window's) model version to be this one.",
    )
    parser.add_argument(
        "--expect-registration",
        metavar="TX",
        help="Require this TX id as the model version's registration record.",
    )
    parser.add_argument("--json", action="store_true", help="Print the results as JSON.")
    args = parser.parse_args(argv)
    trusted = {key.lower() for key in args.trusted_key}
    if args.bundle.is_file():
        return verify_receipt(args.bundle, args, trusted)

    try:
        manifest = strict_json((args.bundle / "manifest.json").read_bytes())
        if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
            raise ValueError(f"schema is not {SCHEMA}")
        entries = manifest["records"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"FAIL: {args.bundle} is not an evidence bundle ({exc})")
        return 1

    results = []
    for entry in entries:
        result = {"stage": entry.get("stage"), "tx_id": entry.get("tx_id"), "label": None}
        result.update(check_record(args.bundle, entry))
        result["label"] = entry.get("label")
        envelope = result["envelope"] or {}
        signer = envelope.get("public_key")
        if trusted and signer not in trusted:
            result["problems"].append(f"issuer: signed by {signer}, which is not a trusted key")
        for gateway in args.gateway:
            bundled = (args.bundle / entry["envelope"]).read_bytes()
            problem = served_problem(gateway, entry.get("tx_id"), bundled)
            if problem:
                result["problems"].append(problem)
        results.append(result)
    bundle_problems = check_links(manifest, results)
    model = f"{manifest.get('model')}/{manifest.get('version')}"
    if args.expect_model is not None and model != args.expect_model:
        bundle_problems.append(f"expected: the bundle is of {model}, not {args.expect_model}")
    registrations = [r["tx_id"] for r in results if r["stage"] == "registration"]
    if args.expect_registration is not None and registrations != [args.expect_registration]:
        bundle_problems.append(
            f"expected: registration record {registrations}, not {args.expect_registration}"
        )

    signers = sorted({(r["envelope"] or {}).get("public_key") or "?" for r in results})
    ok = bool(results) and not bundle_problems and not any(r["problems"] for r in results)
    if args.json:
        print(
            json.dumps(
                {
                    "ok": ok,
                    "model": manifest.get("model"),
                    "version": manifest.get("version"),
                    "problems": bundle_problems,
                    "signers": [{"public_key": k, "pinned": k in trusted} for k in signers],
                    "records": [
                        {k: r[k] for k in ("stage", "label", "tx_id", "problems", "notes")}
                        for r in results
                    ],
                },
                indent=2,
            )
        )
        return 0 if ok else 1
    for r in results:
        verdict = "ok  " if not r["problems"] else "FAIL"
        detail = "; ".join(r["problems"] + r["notes"])
        print(f"{verdict} {r['stage']:<13} {r['tx_id']}  {detail}".rstrip())
    for problem in bundle_problems:
        print(f"FAIL bundle: {problem}")
    for key in signers:
        print(f"signer {key}: {'pinned' if key in trusted else 'NOT pinned (use --trusted-key)'}")
    print(f"{'PASS' if ok else 'FAIL'}: {len(results)} record(s) of {model}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
