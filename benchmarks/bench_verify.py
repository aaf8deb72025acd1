"""Benchmark: offline verification throughput of ``verify_record`` vs the cryptographic floor.

    python benchmarks/bench_verify.py [--records 10000] [--rounds 3] [--no-cli]

An auditor re-verifies every decision of a model: how many records per second does our
verifier check, and how far is that from what the cryptography alone costs? Verification
is offline by design (no MLflow, no network), so this benchmark needs no MLflow store and
no gateway: everything lives in a temporary directory with its own ``ARIO_MLFLOW_HOME``
(where ``ProofEngine`` creates the signing key).

``--records`` prediction decisions (default 10,000) are minted as ``VerifiedModel.predict``
builds them (``payloads.prediction_payload`` → ``canonical_json`` →
``ProofEngine.create_commitment`` with ``payloads.prediction_subject``), all chained to one
registration record. Then, for ``--rounds`` rounds (default 3), the contenders run one
after the other over all records, so a slow phase of the machine hits each of them:

* floor — the bare cryptography per record, in this process: ``hashlib.sha256`` of the
  payload bytes compared with ``payload_hash``, plus one PyNaCl ``VerifyKey(key).verify``
  of the envelope's signing message (messages, keys and signatures are prepared before
  timing: serialising the signed scope is verifier work, not cryptography);
* ``verify_record(envelope, payload_bytes, trusted_keys=(key,))`` — an auditor pinning
  the issuer, as ``verify-bundle --trusted-key`` does;
* ``verify_record(envelope, payload_bytes)`` — defaults: the trusted keys come from the
  environment (``load_settings()``) on every call.

Every timed pass counts the records that verified, so a pass that checks nothing would
show. A tamper check follows: one payload byte flipped in one record and one signed
envelope field changed in another; ``verify_record`` and the floor must fail exactly those
two records (``payload_hash_mismatch`` and ``signature_invalid``).

Unless ``--no-cli``, the records (plus the registration record) are also written as an
evidence bundle directory (``manifest.json`` + ``records/<tx_id>/{envelope.json,
payload.bin}``, the layout of ``ario_mlflow.verify.bundle``; written directly, since
``ar-io-mlflow export`` needs MLflow traces) and checked by ``ar-io-mlflow verify-bundle
<dir> --trusted-key <key> --format json`` in a subprocess (start-up included) and by
``verify_bundle()`` in this process; then one ``payload.bin`` is corrupted and the command
must exit 1 with exactly that record failing.

Target: ``verify_record`` (pinned) >= 1,000 records/s in its best round. Exit status 1 if
the target is missed, a timed pass verified fewer records than it was given, a tamper is
missed or a sound record fails, or ``verify-bundle`` does not exit 0 (1 when tampered).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from base64 import urlsafe_b64encode
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SOURCE_ROOT = Path(__file__).resolve().parents[1] / "src"
TARGET_RECORDS_PER_SECOND = 1000.0
MODEL_NAME = "credit-model"
MODEL_VERSION = "1"


@dataclass
class Minted:
    """The decisions under test and what the floor needs, prepared before timing."""

    public_key: str
    envelopes: list[dict[str, Any]]
    envelope_bytes: list[bytes]
    payloads: list[bytes]
    tx_ids: list[str]
    registration: tuple[str, dict[str, Any], bytes, bytes]  # tx id, envelope, bytes, payload
    training: tuple[str, dict[str, Any], bytes, bytes]  # the record the registration links to
    seconds: float
    floor_inputs: list[tuple[bytes, str, bytes, bytes, bytes]] = field(default_factory=list)


def fake_tx_id(data: bytes) -> str:
    """A 43-character base64url id, shaped like an Arweave TX id (the bundle's folder name)."""
    return urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")


def mint(count: int) -> Minted:
    """``count`` signed prediction records chained to one registration record."""
    from ario_mlflow.engine import ProofEngine
    from ario_mlflow.proof import payloads
    from ario_mlflow.proof.canonical import canonical_json
    from ario_mlflow.proof.envelope import parse_json_object

    engine = ProofEngine()
    run_id = uuid.uuid4().hex
    model_uri = f"models:/m-{uuid.uuid4().hex}"
    train_payload = canonical_json(
        payloads.training_payload(
            run_id=run_id,
            params={"C": "1.0"},
            metrics={"accuracy": 0.93},
            artifact_checksums={"model.pkl": hashlib.sha256(b"model").hexdigest()},
            source_name="train.py",
            git_commit="unknown",
            dataset_inputs=[],
        )
    )
    train_envelope = engine.create_commitment(
        event_type=payloads.TRAINING,
        subject=payloads.run_subject(run_id),
        payload_bytes=train_payload,
        previous_hash=payloads.GENESIS,
    )
    train_bytes = canonical_json(train_envelope)
    train_tx = fake_tx_id(train_bytes)
    reg_payload = canonical_json(
        payloads.registration_payload(
            model_name=MODEL_NAME,
            model_version=MODEL_VERSION,
            source_run_id=run_id,
            source=model_uri,
            artifact_verified=True,
            artifact_hash=hashlib.sha256(b"model").hexdigest(),
        )
    )
    reg_envelope = engine.create_commitment(
        event_type=payloads.REGISTRATION,
        subject=payloads.model_version_subject(MODEL_NAME, MODEL_VERSION),
        payload_bytes=reg_payload,
        previous_hash=train_tx,
    )
    reg_bytes = canonical_json(reg_envelope)
    reg_tx = fake_tx_id(reg_bytes)
    stream_id = str(uuid.uuid4())
    envelopes: list[dict[str, Any]] = []
    envelope_bytes: list[bytes] = []
    payload_texts: list[bytes] = []
    tx_ids: list[str] = []
    start = time.perf_counter()
    for index in range(count):
        decision_id = str(uuid.uuid4())
        payload = payloads.prediction_payload(
            decision_id=decision_id,
            model_name=MODEL_NAME,
            model_version=MODEL_VERSION,
            run_id=run_id,
            model_uri=model_uri,
            input_hash=hashlib.sha256(f"input {index}".encode()).hexdigest(),
            output_hash=hashlib.sha256(f"output {index}".encode()).hexdigest(),
            latency_ms=0.5 + (index % 100) / 37,
            artifact_verified=True,
            snapshot={"sequence": index, "stream_id": stream_id},
        )
        payload_bytes = canonical_json(payload)
        envelope = engine.create_commitment(
            event_type=payloads.PREDICTION,
            subject=payloads.prediction_subject(decision_id, run_id, f"tr-{uuid.uuid4().hex}"),
            payload_bytes=payload_bytes,
            previous_hash=reg_tx,
        )
        data = canonical_json(envelope)
        envelopes.append(parse_json_object(data))  # what an auditor holds: the parsed bytes
        envelope_bytes.append(data)
        payload_texts.append(payload_bytes)
        tx_ids.append(fake_tx_id(data))
    seconds = time.perf_counter() - start
    minted = Minted(
        engine.public_key_hex,
        envelopes,
        envelope_bytes,
        payload_texts,
        tx_ids,
        (reg_tx, reg_envelope, reg_bytes, reg_payload),
        (train_tx, train_envelope, train_bytes, train_payload),
        seconds,
    )
    minted.floor_inputs = floor_inputs(envelopes, payload_texts)
    return minted


def floor_inputs(
    envelopes: list[dict[str, Any]], payloads: list[bytes]
) -> list[tuple[bytes, str, bytes, bytes, bytes]]:
    """Per record: payload bytes, stored hash, key, signing message, signature (raw)."""
    from ario_mlflow.proof.envelope import signing_message

    return [
        (
            payload,
            envelope["payload_hash"],
            bytes.fromhex(envelope["public_key"]),
            signing_message(envelope),
            bytes.fromhex(envelope["signature"]),
        )
        for envelope, payload in zip(envelopes, payloads, strict=True)
    ]


def floor_pass(inputs: list[tuple[bytes, str, bytes, bytes, bytes]]) -> list[int]:
    """The baseline: sha256 + one Ed25519 verification per record; indices that failed."""
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    failed = []
    for index, (payload, stored, key, message, signature) in enumerate(inputs):
        ok = hashlib.sha256(payload).hexdigest() == stored
        try:
            VerifyKey(key).verify(message, signature)
        except BadSignatureError:
            ok = False
        if not ok:
            failed.append(index)
    return failed


def ours_pass(
    envelopes: list[dict[str, Any]], payloads: list[bytes], trusted: tuple[str, ...] | None
) -> list[int]:
    """``verify_record`` over every record; indices whose ``overall`` is not true."""
    from ario_mlflow.verify import verify_record

    return [
        index
        for index, (envelope, payload) in enumerate(zip(envelopes, payloads, strict=True))
        if verify_record(envelope, payload, trusted_keys=trusted)["overall"] is not True
    ]


def run_rounds(
    contenders: dict[str, Callable[[], list[int]]], rounds: int
) -> dict[str, dict[str, Any]]:
    """Each contender (returning the indices that failed) once for warm-up, then once per
    round, one after the other: seconds per round and failures."""
    for run in contenders.values():  # warm-up: imports, caches
        run()
    results: dict[str, dict[str, Any]] = {name: {"seconds": [], "failed": 0} for name in contenders}
    for _ in range(rounds):
        for name, run in contenders.items():
            start = time.perf_counter()
            failed = run()
            results[name]["seconds"].append(time.perf_counter() - start)
            results[name]["failed"] += len(failed)
    return results


def timed_rounds(minted: Minted, rounds: int) -> dict[str, dict[str, Any]]:
    """Each contender once per round over all records: seconds and failures per round."""
    pinned = (minted.public_key,)
    return run_rounds(
        {
            "floor": lambda: floor_pass(minted.floor_inputs),
            "pinned": lambda: ours_pass(minted.envelopes, minted.payloads, pinned),
            "default": lambda: ours_pass(minted.envelopes, minted.payloads, None),
        },
        rounds,
    )


def tamper_check(minted: Minted) -> dict[str, Any]:
    """Flip one payload byte and one signed envelope field; exactly those two must fail."""
    from ario_mlflow.verify import verify_record

    count = len(minted.payloads)
    bad_payload, bad_envelope = count // 3 + 7, (2 * count) // 3 + 1
    payloads = list(minted.payloads)
    corrupted = bytearray(payloads[bad_payload])
    corrupted[len(corrupted) // 2] ^= 0x01
    payloads[bad_payload] = bytes(corrupted)
    envelopes = list(minted.envelopes)
    forged = json.loads(json.dumps(envelopes[bad_envelope]))
    forged["subject"]["decision_id"] = str(uuid.uuid4())  # a signed field
    envelopes[bad_envelope] = forged
    pinned = (minted.public_key,)
    ours = ours_pass(envelopes, payloads, pinned)
    reasons = {
        index: [
            f"{name}: {check.get('reason')}"
            for name, check in verify_record(
                envelopes[index], payloads[index], trusted_keys=pinned
            ).items()
            if isinstance(check, dict) and check.get("ok") is False
        ]
        for index in ours
    }
    floor = floor_pass(floor_inputs(envelopes, payloads))
    expected = [bad_payload, bad_envelope]
    ok = (
        ours == expected
        and floor == expected
        and reasons.get(bad_payload) == ["anchored_bytes: payload_hash_mismatch"]
        and reasons.get(bad_envelope) == ["signature: signature_invalid"]
    )
    return {"expected": expected, "ours": ours, "floor": floor, "reasons": reasons, "ok": ok}


def write_bundle(minted: Minted, root: Path) -> int:
    """The records as an evidence bundle directory; returns how many records it holds."""
    from ario_mlflow.verify.bundle import SCHEMA

    reg_tx, reg_envelope, reg_bytes, reg_payload = minted.registration
    train_tx, train_envelope, train_bytes, train_payload = minted.training
    entries = [
        ("training", "run", train_tx, train_envelope, train_bytes, train_payload),
        ("registration", f"v{MODEL_VERSION}", reg_tx, reg_envelope, reg_bytes, reg_payload),
    ]
    entries += [
        ("prediction", env["subject"]["decision_id"], tx, env, data, payload)
        for env, data, payload, tx in zip(
            minted.envelopes, minted.envelope_bytes, minted.payloads, minted.tx_ids, strict=True
        )
    ]
    records = []
    for stage, label, tx_id, envelope, data, payload in entries:
        folder = root / "records" / tx_id
        folder.mkdir(parents=True)
        (folder / "envelope.json").write_bytes(data)
        (folder / "payload.bin").write_bytes(payload)
        records.append(
            {
                "stage": stage,
                "label": label,
                "tx_id": tx_id,
                "event_type": envelope["event_type"],
                "envelope": f"records/{tx_id}/envelope.json",
                "envelope_sha256": hashlib.sha256(data).hexdigest(),
                "payload": f"records/{tx_id}/payload.bin",
                "payload_sha256": hashlib.sha256(payload).hexdigest(),
                "receipt": None,
            }
        )
    manifest = {
        "schema": SCHEMA,
        "generated_by": "benchmarks/bench_verify.py",
        "created_at": "2026-01-01T00:00:00+00:00",
        "model": MODEL_NAME,
        "version": MODEL_VERSION,
        "run_id": minted.training[1]["subject"]["run_id"],
        "records": records,
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return len(records)


def cli_prefix() -> list[str]:
    """The console script beside this interpreter, else ``python -m ario_mlflow.cli``."""
    script = Path(sys.executable).parent / "ar-io-mlflow"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "ario_mlflow.cli"]


def verify_bundle_cli(bundle: Path, key: str) -> tuple[float, int, dict[str, Any] | None]:
    """``ar-io-mlflow verify-bundle --format json`` once: wall seconds, exit status, and
    its JSON report (None, after printing why, when it printed none)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(SOURCE_ROOT), env.get("PYTHONPATH"))))
    command = [*cli_prefix(), "verify-bundle", str(bundle), "--trusted-key", key]
    start = time.perf_counter()
    done = subprocess.run(
        [*command, "--format", "json"], env=env, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    try:
        report = json.loads(done.stdout)
    except ValueError:
        report = None
    if not isinstance(report, dict) or "records" not in report:
        print(f"  verify-bundle output is not its JSON report: {done.stderr.strip()[-500:]}")
        return seconds, done.returncode, None
    return seconds, done.returncode, report


def run_verify_bundle(bundle: Path, key: str) -> tuple[float, int, list[str]]:
    """``ar-io-mlflow verify-bundle`` once: wall seconds, exit status, failing tx ids."""
    seconds, status, report = verify_bundle_cli(bundle, key)
    if report is None:
        return seconds, status, ["<no report>"]
    return seconds, status, [r["tx_id"] for r in report["records"] if not r["ok"]]


def bundle_checks(minted: Minted, scratch: Path) -> dict[str, Any]:
    """verify-bundle on the sound bundle (CLI and in-process), then with one byte flipped."""
    from ario_mlflow.verify.bundle import verify_bundle

    root = scratch / "bundle"
    start = time.perf_counter()
    count = write_bundle(minted, root)
    written = time.perf_counter() - start
    key = minted.public_key
    cli_seconds, cli_status, cli_failed = run_verify_bundle(root, key)
    start = time.perf_counter()
    report = verify_bundle(root, trusted_keys=[key])
    inprocess = time.perf_counter() - start
    inprocess_failed = [r["tx_id"] for r in report["records"] if not r["ok"]]
    victim = minted.tx_ids[len(minted.tx_ids) // 2]
    path = root / "records" / victim / "payload.bin"
    data = bytearray(path.read_bytes())
    data[5] ^= 0x01
    path.write_bytes(bytes(data))
    tampered_seconds, tampered_status, tampered_failed = run_verify_bundle(root, key)
    ok = (
        cli_status == 0
        and not cli_failed
        and report["ok"] is True
        and not inprocess_failed
        and tampered_status == 1
        and tampered_failed == [victim]
    )
    return {
        "records": count,
        "written": written,
        "cli": (cli_seconds, cli_status, cli_failed),
        "inprocess": (inprocess, inprocess_failed),
        "tampered": (tampered_seconds, tampered_status, tampered_failed, victim),
        "ok": ok,
    }


RECORD_LABELS = {
    "floor": "floor: sha256 + Ed25519 verify",
    "pinned": "verify_record, trusted_keys pinned",
    "default": "verify_record, defaults",
}


def print_rounds(
    results: dict[str, dict[str, Any]], count: int, labels: dict[str, str], unit: str = "record"
) -> None:
    """The result table of ``run_rounds`` (``labels``: the floor's first), ratios to it."""
    floor = next(iter(labels))
    floor_best = min(results[floor]["seconds"])
    floor_median = statistics.median(results[floor]["seconds"])
    short = unit[:3]
    print(
        f"{'contender':<36} {'best ' + short + '/s':>11} {'median ' + short + '/s':>13} "
        f"{'best total s':>13} {'µs/' + unit:>10} {'med/floor':>9} {'failed':>7}"
    )
    print("-" * 105)
    for name, label in labels.items():
        seconds = results[name]["seconds"]
        best, median = min(seconds), statistics.median(seconds)
        print(
            f"{label:<36} {count / best:>11,.0f} {count / median:>13,.0f} {best:>13.3f} "
            f"{best / count * 1e6:>10.2f} {median / floor_median:>8.2f}x "
            f"{results[name]['failed']:>7}"
        )
    print("-" * 105)
    for name in list(labels)[1:]:
        seconds = results[name]["seconds"]
        print(
            f"ratio {labels[name]} / floor (time): {min(seconds) / floor_best:.2f}x best, "
            f"{statistics.median(seconds) / floor_median:.2f}x median; beyond the floor "
            f"{(statistics.median(seconds) - floor_median) / count * 1e6:.2f} µs/{unit}"
        )


def best_rate(results: dict[str, dict[str, Any]], name: str, count: int) -> float:
    """``count`` per second in ``name``'s best round."""
    return float(count / min(results[name]["seconds"]))


def print_bundle(bundle: dict[str, Any]) -> None:
    """The verify-bundle lines."""
    count = bundle["records"]
    seconds, status, failed = bundle["cli"]
    print(
        f"verify-bundle CLI ({count:,} records, start-up included): {seconds:.2f} s, "
        f"{count / seconds:,.0f} records/s, exit {status}, failed records {len(failed)}"
    )
    seconds, failed = bundle["inprocess"]
    print(
        f"verify_bundle() in-process: {seconds:.2f} s, {count / seconds:,.0f} records/s, "
        f"failed records {len(failed)} (bundle written in {bundle['written']:.1f} s)"
    )
    seconds, status, failed, victim = bundle["tampered"]
    print(
        f"verify-bundle, one payload.bin byte flipped ({victim}): {seconds:.2f} s, exit "
        f"{status}, failed {failed if len(failed) < 4 else f'{len(failed)} records'} — "
        f"{'exactly that record' if failed == [victim] else 'WRONG'}"
    )


# --- inclusion receipts of batched decisions ----------------------------------------------

TARGET_INCLUSIONS_PER_SECOND = 100_000.0
INCLUSION_LABELS = {
    "floor": "floor: hashlib, leaf + path hashes",
    "inclusion": "leaf_hash + verify_inclusion",
    "receipt": "receipt_problem (whole receipt)",
}
#: ``(payload bytes, leaf index, tree size, audit path, root)`` of one receipt.
Inclusion = tuple[bytes, int, int, tuple[bytes, ...], bytes]


@dataclass
class Windows:
    """Batched decisions cut into signed windows, and every decision's receipt."""

    public_key: str
    receipts: list[Any]  # ario_mlflow.proof.windows.Receipt
    items: list[Inclusion]
    windows: int
    seconds: float


def mint_windows(count: int, size: int) -> Windows:
    """``count`` batched decisions (``DecisionLeaves``, as ``predict`` makes them) in
    windows of ``size`` (``window_manifest`` signed as ``prediction_batch`` records, each
    following the one before), and each decision's receipt (``tree_with_paths``)."""
    from ario_mlflow.engine import ProofEngine
    from ario_mlflow.proof.canonical import canonical_json
    from ario_mlflow.proof.decisions import DecisionLeaves
    from ario_mlflow.proof.envelope import parse_json_object, utc_now_iso
    from ario_mlflow.proof.merkle import leaf_hash, tree_with_paths
    from ario_mlflow.proof.payloads import GENESIS, PREDICTION_BATCH
    from ario_mlflow.proof.windows import Receipt, window_manifest, window_subject

    engine = ProofEngine()
    stream = {
        "stream_id": uuid.uuid4().hex,
        "model_name": MODEL_NAME,
        "model_version": MODEL_VERSION,
        "model_uri": f"models:/{MODEL_NAME}/{MODEL_VERSION}",
        "run_id": uuid.uuid4().hex,
        "registration_tx": fake_tx_id(b"registration"),
    }
    leaves = DecisionLeaves(
        model_name=MODEL_NAME,
        model_version=MODEL_VERSION,
        run_id=stream["run_id"],
        model_uri=stream["model_uri"],
        artifact_verified=True,
        stream_id=stream["stream_id"],
    )
    subject = window_subject(MODEL_NAME, MODEL_VERSION, stream["stream_id"])
    minted = Windows(engine.public_key_hex, [], [], 0, 0.0)
    previous_tx, previous_hash = GENESIS, None
    start = time.perf_counter()
    for first in range(1, count + 1, size):
        seqs = range(first, min(first + size, count + 1))
        times = [utc_now_iso() for _ in seqs]
        payloads = [
            leaves.leaf(
                decision_id=str(uuid.uuid4()),
                input_hash=hashlib.sha256(f"input {seq}".encode()).hexdigest(),
                output_hash=hashlib.sha256(f"output {seq}".encode()).hexdigest(),
                latency_ms=0.1 + (seq % 100) / 37,
                sequence=seq,
                decided_at=decided_at,
            ).payload_bytes
            for seq, decided_at in zip(seqs, times, strict=True)
        ]
        manifest = canonical_json(
            window_manifest(
                stream=stream,
                leaves=list(zip(seqs, payloads, strict=True)),
                first_decided_at=times[0],
                last_decided_at=times[-1],
                previous_window_hash=previous_hash,
                closed_by="size",
            )
        )
        data = canonical_json(
            engine.create_commitment(
                event_type=PREDICTION_BATCH,
                subject=subject,
                payload_bytes=manifest,
                previous_hash=previous_tx,
            )
        )
        envelope, tx_id = parse_json_object(data), fake_tx_id(data)
        root, paths = tree_with_paths([leaf_hash(payload) for payload in payloads])
        if root.hex() != json.loads(manifest)["root_hash"]:
            raise SystemExit("tree_with_paths and window_manifest disagree on the root")
        for index, payload in enumerate(payloads):
            path = tuple(paths[index])
            minted.receipts.append(
                Receipt(payload, index, len(payloads), path, manifest, envelope, tx_id)
            )
            minted.items.append((payload, index, len(payloads), path, root))
        minted.windows += 1
        previous_tx, previous_hash = tx_id, hashlib.sha256(manifest).hexdigest()
    minted.seconds = time.perf_counter() - start
    return minted


def inclusion_floor(items: list[Inclusion]) -> list[int]:
    """The baseline: the same SHA-256 calls on the same bytes as an inclusion check (the
    leaf hash, then one node hash per path entry, in path order), with ``hashlib`` alone
    and none of the index arithmetic; it checks nothing, so it fails nothing."""
    sha = hashlib.sha256
    for payload, _, _, path, root in items:
        node = sha(b"\x00" + payload).digest()
        for sibling in path:
            node = sha(b"\x01" + node + sibling).digest()
        _ = node == root
    return []


def inclusion_pass(items: list[Inclusion]) -> list[int]:
    """``verify_inclusion(leaf_hash(payload), index, size, path, root)`` per decision (the
    root read once per window, as a verifier of many receipts does); indices that fail."""
    from ario_mlflow.proof.merkle import leaf_hash, verify_inclusion

    return [
        index
        for index, (payload, leaf, size, path, root) in enumerate(items)
        if not verify_inclusion(leaf_hash(payload), leaf, size, path, root)
    ]


def receipt_pass(receipts: list[Any]) -> list[int]:
    """``receipt_problem`` per receipt (its window record's signature, manifest, leaf,
    path and fields, all again for each); indices that fail."""
    from ario_mlflow.proof.windows import receipt_problem

    return [index for index, r in enumerate(receipts) if receipt_problem(r) is not None]


def inclusion_tamper(minted: Windows) -> dict[str, Any]:
    """One decision's payload byte flipped, another's audit path node changed: exactly
    those two must fail, in both checks."""
    import dataclasses

    count = len(minted.items)
    bad_payload, bad_path = count // 3 + 7, (2 * count) // 3 + 1
    items, receipts = list(minted.items), list(minted.receipts)
    payload, index, size, path, root = items[bad_payload]
    changed = bytearray(payload)
    changed[len(changed) // 2] ^= 0x01
    items[bad_payload] = (bytes(changed), index, size, path, root)
    receipts[bad_payload] = dataclasses.replace(receipts[bad_payload], payload_bytes=bytes(changed))
    payload, index, size, path, root = items[bad_path]
    forged = (hashlib.sha256(path[0]).digest(), *path[1:])
    items[bad_path] = (payload, index, size, forged, root)
    receipts[bad_path] = dataclasses.replace(receipts[bad_path], audit_path=forged)
    expected = [bad_payload, bad_path]
    inclusion, receipt = inclusion_pass(items), receipt_pass(receipts)
    return {
        "expected": expected,
        "inclusion": inclusion,
        "receipt": receipt,
        "ok": inclusion == expected and receipt == expected,
    }


def inclusion_section(count: int, size: int, rounds: int) -> bool:
    """Mint, time, tamper, print; whether the target is met and every check passed."""
    print(
        f"minting {count:,} batched decisions in windows of {size} "
        f"(load average {' / '.join(f'{x:.1f}' for x in os.getloadavg())}) ...",
        flush=True,
    )
    minted = mint_windows(count, size)
    print(
        f"  minted in {minted.seconds:.1f} s: {minted.windows} signed windows, "
        f"{count:,} receipts, audit paths of {len(minted.items[0][3])} nodes",
        flush=True,
    )
    results = run_rounds(
        {
            "floor": lambda: inclusion_floor(minted.items),
            "inclusion": lambda: inclusion_pass(minted.items),
            "receipt": lambda: receipt_pass(minted.receipts),
        },
        rounds,
    )
    tamper = inclusion_tamper(minted)
    print()
    print_rounds(results, count, INCLUSION_LABELS, unit="decision")
    print(
        f"inclusion tamper check: failed {tamper['inclusion']} (verify_inclusion), "
        f"{tamper['receipt']} (receipt_problem), expected {tamper['expected']}: "
        f"{'ok' if tamper['ok'] else 'WRONG'}"
    )
    best = best_rate(results, "inclusion", count)
    complete = all(r["failed"] == 0 for r in results.values())
    met = best >= TARGET_INCLUSIONS_PER_SECOND
    print(
        f"target inclusion checks >= {TARGET_INCLUSIONS_PER_SECOND:,.0f} decisions/s: "
        f"{'met' if met else 'MISSED'} ({best:,.0f}/s best round, "
        f"{count / statistics.median(results['inclusion']['seconds']):,.0f}/s median); "
        f"every receipt verified: {complete}; tamper detected exactly: {tamper['ok']}"
    )
    return met and complete and bool(tamper["ok"])


def records_section(args: argparse.Namespace, scratch: Path) -> bool:
    """``verify_record`` and ``verify-bundle`` (each-mode records); whether all is well."""
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"minting {args.records:,} prediction records (load average {load}) ...", flush=True)
    minted = mint(args.records)
    print(
        f"  minted in {minted.seconds:.1f} s ({args.records / minted.seconds:,.0f}/s: "
        f"payload + canonical_json + create_commitment); issuer {minted.public_key[:16]}…",
        flush=True,
    )
    results = timed_rounds(minted, args.rounds)
    tamper = tamper_check(minted)
    bundle = None if args.no_cli else bundle_checks(minted, scratch)
    print()
    print_rounds(results, args.records, RECORD_LABELS)
    best = best_rate(results, "pinned", args.records)
    print(
        f"tamper check: failed {tamper['ours']} (verify_record), {tamper['floor']} (floor), "
        f"expected {tamper['expected']}: {'ok' if tamper['ok'] else 'WRONG'}; "
        f"reasons {tamper['reasons']}"
    )
    if bundle is not None:
        print_bundle(bundle)
    complete = all(r["failed"] == 0 for r in results.values())
    met = best >= TARGET_RECORDS_PER_SECOND
    print(
        f"target verify_record >= {TARGET_RECORDS_PER_SECOND:,.0f} records/s: "
        f"{'met' if met else 'MISSED'} ({best:,.0f}/s best round); every timed record "
        f"verified: {complete}; tamper detected exactly: {tamper['ok']}; verify-bundle: "
        f"{'skipped' if bundle is None else 'ok' if bundle['ok'] else 'FAILED'}"
    )
    bundle_ok = bundle is None or bundle["ok"]
    return bool(met and complete and tamper["ok"] and bundle_ok)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--records", type=int, default=10_000, help="each-mode decisions to verify (0: none)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="timed passes per contender")
    parser.add_argument("--no-cli", action="store_true", help="skip the verify-bundle part")
    parser.add_argument(
        "--inclusion", type=int, default=100_000, help="batched decisions to check (0: none)"
    )
    parser.add_argument("--window-size", type=int, default=1000, help="decisions per window")
    parser.add_argument("--dir", default=None, help="where to create the temporary directory")
    args = parser.parse_args()
    sys.path.insert(0, str(SOURCE_ROOT))
    started = time.perf_counter()

    scratch = Path(tempfile.mkdtemp(prefix="ario-bench-verify-", dir=args.dir))
    saved = {n: os.environ.get(n) for n in ("ARIO_MLFLOW_HOME", "ARIO_MLFLOW_TRUSTED_KEYS")}
    ok = True
    try:
        os.environ["ARIO_MLFLOW_HOME"] = str(scratch / "home")
        os.environ.pop("ARIO_MLFLOW_SIGNING_KEY", None)
        os.environ.pop("ARIO_MLFLOW_TRUSTED_KEYS", None)
        if args.records > 0:
            ok = records_section(args, scratch)
        if args.inclusion > 0:
            print()
            ok = inclusion_section(args.inclusion, args.window_size, args.rounds) and ok
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(scratch, ignore_errors=True)
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"cpu count {os.cpu_count()}, records {args.records:,}, batched decisions "
        f"{args.inclusion:,}, rounds {args.rounds}, total {time.perf_counter() - started:.0f} s, "
        f"load average {load}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
