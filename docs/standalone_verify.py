#!/usr/bin/env python3
"""Verify an ar-io-mlflow evidence bundle without ar-io-mlflow.

Needs Python 3.10+ and two packages from PyPI, nothing else:

    pip install cryptography rfc8785
    python standalone_verify.py BUNDLE_DIR [--trusted-key HEX ...] [--gateway URL] [--json]

A bundle (``ar-io-mlflow export NAME/VERSION --output BUNDLE_DIR``) is a ``manifest.json``
plus, per anchored record, ``records/<tx_id>/envelope.json`` (the exact bytes stored on
Arweave) and ``records/<tx_id>/payload.bin`` (the exact payload bytes the envelope commits
to). Per record this script checks: the files against the manifest's SHA-256, that the
envelope bytes are canonical RFC 8785 JSON, the spec version, the Ed25519 signature over
the signed scope, SHA-256(payload) == payload_hash, what the record is about (subject),
and its chain link; with --trusted-key, who signed it; with --gateway, that the gateway
serves exactly these bytes at the TX id. Exit status 0 = PASS, 1 = FAIL.
"""

from __future__ import annotations

import argparse
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

    version = envelope.get("spec_version")
    if version is None:
        notes.append("legacy envelope (no spec_version)")
    else:
        match = SPEC_GRAMMAR.fullmatch(version) if isinstance(version, str) else None
        if match is None or match["major"] not in ACCEPTED_MAJORS:
            problems.append(f"spec_version: {version!r} is not an accepted profile")

    if not ed25519_ok(message, envelope.get("signature"), envelope.get("public_key")):
        problems.append("signature: Ed25519 signature does not verify with public_key")

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify an ar-io-mlflow evidence bundle.")
    parser.add_argument("bundle", type=Path, help="The bundle directory (with manifest.json).")
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
        help="Also require GET URL/raw/<tx_id> to return the bundled envelope bytes.",
    )
    parser.add_argument("--json", action="store_true", help="Print the results as JSON.")
    args = parser.parse_args(argv)
    trusted = {key.lower() for key in args.trusted_key}

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
            url = f"{gateway.rstrip('/')}/raw/{entry.get('tx_id')}"
            try:
                with urllib.request.urlopen(url, timeout=30) as response:
                    served = response.read()
            except OSError as exc:
                result["problems"].append(f"gateway: {url} failed ({exc})")
                continue
            if served != (args.bundle / entry["envelope"]).read_bytes():
                result["problems"].append(f"gateway: {url} serves other bytes")
        results.append(result)
    bundle_problems = check_links(manifest, results)

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
    model = f"{manifest.get('model')}/{manifest.get('version')}"
    print(f"{'PASS' if ok else 'FAIL'}: {len(results)} record(s) of {model}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
