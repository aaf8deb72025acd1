"""Benchmark: sustained ``batch`` serving — windows, receipts and an evidence bundle.

    python benchmarks/bench_batch.py [--decisions 100000] [--input list|frame|dict]
                                     [--window-size 1000] [--window-seconds 30]
                                     [--settle 30] [--no-bundle]

The environment is ``bench_predict.py``'s (its helpers are imported, not copied): a
temporary directory with its own ``ARIO_MLFLOW_HOME``, a sqlite MLflow store and a local
gateway subprocess on 127.0.0.1 (RSA 2048); a small sklearn model trained, anchored,
registered and aliased ``@champion``. ``ARIO_MLFLOW_WINDOW_SIZE`` / ``_SECONDS`` are set
from ``--window-size`` / ``--window-seconds`` (the product's defaults, 1000 and 30 s).

1. Serving, in a child process of its own (so that its threads and RSS are a serving
   process's, not those of this one, which trained the model): ``VerifiedModel(uri,
   decisions="batch")`` makes ``--decisions`` one-row predictions back to back from one
   thread (``--input``: a list of floats by default, the training rows in turn). A first
   model (its own stream) warms up and waits for its window's anchor before; it is not
   counted. After the last prediction the journal is polled until every decision is in
   a window and every window of the stream is uploaded (the companion ingests the spool,
   closes windows by size or time and uploads them to the gateway, which verifies every
   data item). Threads (``Threads``) and RSS (``VmRSS``) are sampled every 0.25 s from
   the loop's start to the end of that wait. Then it waits (bounded) for the windows'
   MLflow write-backs (the window witnesses ``export`` reads).
2. Receipts, in this process: every decision's inclusion receipt from the journal
   (payload, leaf index, audit path, window manifest, envelope and TX, built per window
   in one pass; ``receipt_for`` rebuilds the window's tree for each call, so it is
   called on one decision per window and must give the same receipt), each checked with
   ``receipt_problem`` and the issuer pinned. A running digest of (sequence, decision
   id, leaf hash) of every ``VerifiedPrediction`` the child got must equal the one of
   the windows' leaves in order: every decision made is in a window, with the payload
   ``predict`` returned.
3. Bundle (unless ``--no-bundle``): ``ar-io-mlflow export bench-credit@champion
   --decisions <all>`` and ``ar-io-mlflow verify-bundle <dir> --trusted-key <key>
   --format json`` (start-up included); then one decision of one window is edited (and
   the bundle manifest's file hash updated, as a forger would): verify-bundle must exit
   1 with exactly that window failing. ``export`` passes ``--decisions`` to MLflow's
   trace search as ``max_results``, which MLflow caps at 50,000: past that it fails, the
   target is missed, and bundles of 25,000 and 50,000 decisions are exported and
   verified instead, the time for all being extrapolated from those two (reported, not
   counted as met).

Targets: every decision in an uploaded window within ``--settle`` s (30) of the last
prediction, and every receipt verifying; uploads (windows) <= ceil(decisions / size) +
windows closed by time; threads of the serving process <= 8; its RSS growth <= 32 MiB;
``verify-bundle`` of the exported bundle <= 10 s. Exit status 1 if a target is missed or
a check fails.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import logging
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from array import array
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_predict as bp  # noqa: E402 - beside this script
import bench_verify as bv  # noqa: E402

MAX_THREADS = 8
MAX_RSS_GROWTH_MIB = 32.0
MAX_VERIFY_BUNDLE_SECONDS = 10.0
INPUTS = {"list": "feature list", "frame": "1-row DataFrame", "dict": "feature dict"}
#: How long the serving child waits for the windows' MLflow write-backs.
WRITEBACK_TIMEOUT = 300.0
POLL_SECONDS = 0.1


def load_average() -> str:
    """``os.getloadavg()`` as ``a / b / c``."""
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def thread_names() -> dict[str, int]:
    """This process's threads by name (``/proc/self/task/*/comm``)."""
    names: dict[str, int] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
        except OSError:
            continue
        names[name] = names.get(name, 0) + 1
    return names


def leaf_digest_line(seq: int, decision_id: str, leaf_hash_hex: str) -> bytes:
    """What the digest of a stream's decisions takes per decision."""
    return f"{seq} {decision_id} {leaf_hash_hex}\n".encode()


# --- 1. the serving child ------------------------------------------------------------------


def stream_progress(journal: Any, stream_id: str) -> tuple[int, int, int, int]:
    """Decisions of ``stream_id`` ingested and windowed; windows, and those uploaded."""
    db = journal.connection()
    ingested, windowed = db.execute(
        "SELECT COUNT(*), COUNT(window_tx) FROM leaves WHERE stream_id = ?", (stream_id,)
    ).fetchone()
    windows, uploaded = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(r.state = 'uploaded'), 0) FROM windows w "
        "JOIN records r ON r.tx_id = w.tx_id WHERE w.stream_id = ?",
        (stream_id,),
    ).fetchone()
    return int(ingested), int(windowed), int(windows), int(uploaded)


def serve(count: int, kind: str, settle_timeout: float) -> dict[str, Any]:
    """The serving child's work (see the module docstring, 1.)."""
    from ario_mlflow.config import load_settings
    from ario_mlflow.lifecycle.serving import VerifiedModel
    from ario_mlflow.outbox.journal import Journal

    rows = bp.input_rows(bp.bench_features(), kind)
    warm = VerifiedModel(bp.MODEL_URI, decisions="batch")
    for row in rows[:-1]:
        warm.predict(row)
    if not warm.predict(rows[-1]).wait_for_anchor(60):
        raise SystemExit("warm-up: the warm-up window was not anchored within 60 s")
    model = VerifiedModel(bp.MODEL_URI, decisions="batch")
    journal = Journal.at_home(load_settings().home)
    stream_progress(journal, model.stream_id)
    latencies = array("q", bytes(8 * count))
    digest = hashlib.sha256()
    failures = bp.Failures()
    predict, clock, made = model.predict, time.perf_counter_ns, 0
    gc.collect()
    threads_before, rss_before = bp.proc_status("Threads"), bp.proc_status("VmRSS")
    names_before = thread_names()
    with bp.Sampler() as sampler:
        started = time.perf_counter()
        for index in range(count):
            row = rows[index % len(rows)]
            start = clock()
            result = failures.call(predict, row)
            latencies[index] = clock() - start
            if result is bp.FAILED:
                break
            digest.update(leaf_digest_line(result.seq, result.decision_id, result.leaf_hash))
            made += 1
        last = time.perf_counter()
        rss_after_loop = bp.proc_status("VmRSS")
        at_last = stream_progress(journal, model.stream_id)
        windowed_after = uploaded_after = None
        names_after_loop = thread_names()
        while time.perf_counter() - last < settle_timeout:
            _, windowed, windows, uploaded = stream_progress(journal, model.stream_id)
            if windowed == made and windowed_after is None:
                windowed_after = time.perf_counter() - last
            if windowed == made and uploaded == windows:
                uploaded_after = time.perf_counter() - last
                break
            time.sleep(POLL_SECONDS)
    writebacks_started = time.perf_counter()
    writebacks_left = journal.counts()["writebacks_pending"]
    while writebacks_left and time.perf_counter() - writebacks_started < WRITEBACK_TIMEOUT:
        time.sleep(0.5)
        writebacks_left = journal.counts()["writebacks_pending"]
    calls = list(latencies[:made])
    return {
        "stream_id": model.stream_id,
        "warm_stream_id": warm.stream_id,
        "asked": count,
        "made": made,
        "failures": failures.describe(),
        "made_seconds": last - started,
        "latency": bp.summary_us(calls),
        "latency_mean_us": statistics.fmean(calls) / 1000.0 if calls else 0.0,
        "digest": digest.hexdigest(),
        "at_last": at_last,
        "windowed_after": windowed_after,
        "uploaded_after": uploaded_after,
        "final": stream_progress(journal, model.stream_id),
        "threads_before": threads_before,
        "threads_max": max(sampler.threads, default=0),
        "thread_names_before": names_before,
        "thread_names_after_loop": names_after_loop,
        "rss_before_kib": rss_before,
        "rss_after_loop_kib": rss_after_loop,
        "rss_max_kib": max(sampler.rss_kib, default=0),
        "writebacks_seconds": time.perf_counter() - writebacks_started,
        "writebacks_left": writebacks_left,
    }


def serving_child(args: argparse.Namespace) -> dict[str, Any]:
    """Run ``serve`` in a child process (same environment); its report."""
    command = [
        sys.executable,
        __file__,
        "--serve-child",
        "--decisions",
        str(args.decisions),
        "--input",
        args.input,
        "--settle-timeout",
        str(args.settle_timeout),
    ]
    done = subprocess.run(command, check=False, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"the serving child failed (exit {done.returncode})")
    report: dict[str, Any] = json.loads(lines[-1])
    return report


# --- 2. receipts ---------------------------------------------------------------------------


def check_receipts(journal: Any, stream_id: str, public_key: str) -> dict[str, Any]:
    """Every decision's receipt of ``stream_id`` checked (see the module docstring, 2.)."""
    from ario_mlflow.outbox.leaves import receipt_for
    from ario_mlflow.proof.merkle import leaf_hash, tree_with_paths
    from ario_mlflow.proof.windows import Receipt, receipt_problem

    db = journal.connection()
    windows = db.execute(
        "SELECT w.tx_id, w.manifest, r.envelope FROM windows w JOIN records r "
        "ON r.tx_id = w.tx_id WHERE w.stream_id = ? ORDER BY w.first_seq",
        (stream_id,),
    ).fetchall()
    digest = hashlib.sha256()
    checked = verified = 0
    problems: dict[str, int] = {}
    closed_by: dict[str, int] = {}
    same_as_receipt_for, receipt_for_ns = 0, []
    started = time.perf_counter()
    for tx_id, manifest, envelope_bytes in windows:
        envelope = json.loads(envelope_bytes)
        reason = json.loads(manifest)["closed_by"]
        closed_by[reason] = closed_by.get(reason, 0) + 1
        leaves = db.execute(
            "SELECT seq, decision_id, payload FROM leaves WHERE window_tx = ? ORDER BY leaf_index",
            (tx_id,),
        ).fetchall()
        hashes = [leaf_hash(bytes(payload)) for _, _, payload in leaves]
        _, paths = tree_with_paths(hashes)
        sample = len(leaves) // 2
        for index, (seq, decision_id, payload) in enumerate(leaves):
            receipt = Receipt(
                payload_bytes=bytes(payload),
                leaf_index=index,
                tree_size=len(hashes),
                audit_path=tuple(paths[index]),
                manifest_bytes=bytes(manifest),
                envelope=envelope,
                tx_id=tx_id,
            )
            problem = receipt_problem(receipt)
            if problem is None and envelope.get("public_key") != public_key:
                problem = "window signed by another key than the installation's"
            checked += 1
            if problem is None:
                verified += 1
            else:
                problems[problem] = problems.get(problem, 0) + 1
            digest.update(leaf_digest_line(seq, decision_id, hashes[index].hex()))
            if index == sample:
                start = time.perf_counter_ns()
                theirs = receipt_for(journal, decision_id)
                receipt_for_ns.append(time.perf_counter_ns() - start)
                same_as_receipt_for += theirs == receipt
    return {
        "windows": len(windows),
        "closed_by": closed_by,
        "checked": checked,
        "verified": verified,
        "problems": problems,
        "seconds": time.perf_counter() - started,
        "digest": digest.hexdigest(),
        "same_as_receipt_for": same_as_receipt_for,
        "receipt_for_ms": statistics.median(receipt_for_ns) / 1e6 if receipt_for_ns else 0.0,
    }


# --- 3. bundle -----------------------------------------------------------------------------


def cli(*arguments: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    """``ar-io-mlflow ARGUMENTS`` in this environment: wall seconds and the outcome."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(bp.SOURCE_ROOT), env.get("PYTHONPATH"))))
    start = time.perf_counter()
    done = subprocess.run(
        [*bv.cli_prefix(), *arguments], env=env, capture_output=True, text=True, check=False
    )
    return time.perf_counter() - start, done


def forge_decision(bundle: Path) -> str:
    """Edit one decision of a middle window (a hex digit of its ``input_hash``) and the
    bundle manifest's hash of that file; the window's TX."""
    manifest_path = bundle / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    windows = [r for r in manifest["records"] if r["stage"] == "window"]
    victim = windows[len(windows) // 2]
    path = bundle / victim["decisions"]
    lines = path.read_bytes().split(b"\n")
    line = lines[len(lines) // 3]
    at = line.index(b'"input_hash":"') + len(b'"input_hash":"')
    lines[len(lines) // 3] = (
        line[:at] + (b"0" if line[at : at + 1] != b"0" else b"1") + line[at + 1 :]
    )
    data = b"\n".join(lines)
    path.write_bytes(data)
    victim["decisions_sha256"] = hashlib.sha256(data).hexdigest()
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return str(victim["tx_id"])


def export_and_verify(folder: Path, decisions: int, public_key: str) -> dict[str, Any]:
    """``ar-io-mlflow export --decisions DECISIONS`` into ``folder``, then verify-bundle."""
    export_seconds, exported = cli(
        "export",
        f"{bp.MODEL_NAME}@champion",
        "--output",
        str(folder),
        "--decisions",
        str(decisions),
    )
    outcome: dict[str, Any] = {"limit": decisions, "export_seconds": export_seconds}
    if exported.returncode != 0:
        return {**outcome, "export_error": exported.stderr.strip()[-400:]}
    seconds, status, report = bv.verify_bundle_cli(folder, public_key)
    records = report["records"] if report else []
    return {
        **outcome,
        "folder": folder,
        "export_line": " ".join(exported.stdout.strip().splitlines()[-1:]),
        "bytes": sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()),
        "seconds": seconds,
        "status": status,
        "verdict": report.get("verdict") if report else None,
        "records": len(records),
        "windows": sum(r["stage"] == "window" for r in records),
        "decisions": sum(r.get("decision_count", 0) for r in records),
        "failed": [r["tx_id"] for r in records if not r["ok"]],
    }


def bundle_checks(scratch: Path, decisions: int, public_key: str) -> dict[str, Any]:
    """Export every decision and verify-bundle it, then a forged copy (module docstring,
    3.). When the export refuses that many (MLflow caps a trace search at
    ``SEARCH_MAX_RESULTS_THRESHOLD``, and ``export`` asks it for ``--decisions`` traces),
    the largest bundle it writes and one of half that size are verified instead, and the
    time of ``decisions`` is extrapolated from the two."""
    full = export_and_verify(scratch / "bundle", decisions, public_key)
    outcome: dict[str, Any] = {"full": full, "partial": [], "extrapolated": None}
    largest = full
    if "export_error" in full:
        from mlflow.store.tracking import SEARCH_MAX_RESULTS_THRESHOLD

        for limit in (SEARCH_MAX_RESULTS_THRESHOLD // 2, SEARCH_MAX_RESULTS_THRESHOLD):
            outcome["partial"].append(
                export_and_verify(scratch / f"bundle-{limit}", limit, public_key)
            )
        small, largest = outcome["partial"]
        if "seconds" in small and "seconds" in largest:
            slope = (largest["seconds"] - small["seconds"]) / (
                largest["decisions"] - small["decisions"]
            )
            outcome["extrapolated"] = largest["seconds"] + slope * (
                decisions - largest["decisions"]
            )
    if "folder" in largest:
        victim = forge_decision(largest["folder"])
        seconds, status, forged = bv.verify_bundle_cli(largest["folder"], public_key)
        failed = [r for r in (forged or {}).get("records", []) if not r["ok"]]
        outcome["forged"] = (seconds, status, failed, victim)
    return outcome


# --- report --------------------------------------------------------------------------------


def print_serving(run: dict[str, Any], settle: float) -> None:
    """The serving child's numbers."""
    made, seconds, lat = run["made"], run["made_seconds"], run["latency"]
    print(
        f"serving: {made:,} of {run['asked']:,} predictions in {seconds:.2f} s = "
        f"{made / seconds:,.0f} decisions/s made (one thread); predict median "
        f"{lat['median']:.0f} µs, p90 {lat['p90']:.0f} µs, p99 {lat['p99']:.0f} µs, mean "
        f"{run['latency_mean_us']:.0f} µs; failed: {run['failures']}"
    )
    ingested, windowed, windows, uploaded = run["at_last"]
    print(
        f"  at the last prediction: {ingested:,} ingested, {windowed:,} in a window, "
        f"{windows} windows of which {uploaded} uploaded"
    )
    after = run["windowed_after"]
    up = run["uploaded_after"]
    print(
        "  after the last prediction: every decision in a window "
        + (f"after {after:.2f} s" if after is not None else "NOT within the wait")
        + ", every window uploaded "
        + (f"after {up:.2f} s" if up is not None else "NOT within the wait")
        + f" (target <= {settle:g} s); at the end {run['final']}"
    )
    growth = (run["rss_max_kib"] - run["rss_before_kib"]) / 1024.0
    print(
        f"  threads: {run['threads_before']} before, max {run['threads_max']} during "
        f"(target <= {MAX_THREADS}); by name before {run['thread_names_before']}, after "
        f"the loop {run['thread_names_after_loop']}"
    )
    print(
        f"  RSS: {run['rss_before_kib'] / 1024:.1f} MiB before, "
        f"{run['rss_after_loop_kib'] / 1024:.1f} MiB after the loop, max "
        f"{run['rss_max_kib'] / 1024:.1f} MiB (growth {growth:+.1f} MiB, target <= "
        f"{MAX_RSS_GROWTH_MIB:g} MiB)"
    )
    print(
        f"  window write-backs (MLflow witnesses): {run['writebacks_left']} left after "
        f"{run['writebacks_seconds']:.1f} s"
    )


def print_receipts(receipts: dict[str, Any], made: int, bound: int) -> None:
    """The receipts' numbers."""
    print(
        f"windows: {receipts['windows']} uploaded windows, closed by {receipts['closed_by']}; "
        f"bound ceil(decisions / size) + closed by time = {bound}"
    )
    print(
        f"receipts: {receipts['verified']:,} of {receipts['checked']:,} verify "
        f"(receipt_problem, issuer pinned) of {made:,} decisions made, in "
        f"{receipts['seconds']:.1f} s ({receipts['checked'] / max(receipts['seconds'], 1e-9):,.0f}"
        f"/s); problems {receipts['problems'] or 'none'}"
    )
    per_call = receipts["receipt_for_ms"]
    print(
        f"  receipt_for (one per window): {receipts['same_as_receipt_for']} of "
        f"{receipts['windows']} equal to the receipts checked; {per_call:.2f} ms per call "
        f"(it rebuilds the window's tree: all {made:,} that way would take "
        f"~{per_call * made / 1000:.0f} s)"
    )


def print_bundle(bundle: dict[str, Any]) -> None:
    """The bundle's numbers."""
    for verified in (bundle["full"], *bundle["partial"]):
        if "export_error" in verified:
            print(
                f"export --decisions {verified['limit']:,} FAILED after "
                f"{verified['export_seconds']:.1f} s: {verified['export_error']}"
            )
            continue
        print(
            f"export --decisions {verified['limit']:,}: {verified['export_seconds']:.1f} s, "
            f"{verified['bytes'] / 2**20:.1f} MiB ({verified['export_line']})"
        )
        print(
            f"verify-bundle CLI ({verified['records']} records, {verified['windows']} windows, "
            f"{verified['decisions']:,} decisions, start-up included): "
            f"{verified['seconds']:.2f} s, {verified['decisions'] / verified['seconds']:,.0f} "
            f"decisions/s, exit {verified['status']}, verdict {verified['verdict']}, failed "
            f"records {len(verified['failed'])}"
        )
    if bundle["extrapolated"] is not None:
        print(
            f"verify-bundle of all decisions, extrapolated from the two bundles: "
            f"{bundle['extrapolated']:.2f} s"
        )
    if "forged" in bundle:
        seconds, status, failed, victim = bundle["forged"]
        exact = [r["tx_id"] for r in failed] == [victim]
        reasons = sorted({p.split(":")[0] for r in failed for p in r["problems"]})
        print(
            f"verify-bundle, one decision forged in window {victim} (file hash updated): "
            f"{seconds:.2f} s, exit {status}, {len(failed)} failed "
            f"({'exactly that window' if exact else 'WRONG'}), reasons {reasons}"
        )


def bundle_verdict(bundle: dict[str, Any], made: int) -> tuple[bool, str]:
    """Whether the exported bundle met its target, and the value to show."""
    full, forged = bundle["full"], bundle.get("forged")
    caught = (
        forged is not None and forged[1] == 1 and [r["tx_id"] for r in forged[2]] == [forged[3]]
    )
    if "export_error" in full:
        guess = bundle["extrapolated"]
        return False, (
            f"export --decisions {full['limit']:,} fails"
            + (f"; extrapolated {guess:.2f} s" if guess is not None else "")
            + f"; forged decision caught: {caught}"
        )
    ok = (
        full["seconds"] <= MAX_VERIFY_BUNDLE_SECONDS
        and full["status"] == 0
        and full["decisions"] >= made
        and caught
    )
    return ok, f"{full['seconds']:.2f} s, {full['decisions']:,} decisions; forged caught: {caught}"


def verdicts(
    run: dict[str, Any],
    receipts: dict[str, Any],
    bundle: dict[str, Any] | None,
    args: argparse.Namespace,
) -> bool:
    """Print one line per target and check; whether all are met."""
    made = run["made"]
    bound = math.ceil(made / args.window_size) + receipts["closed_by"].get("time", 0)
    growth = (run["rss_max_kib"] - run["rss_before_kib"]) / 1024.0
    up = run["uploaded_after"]
    lines = [
        (
            f"every decision in an uploaded window <= {args.settle:g} s after the last",
            up is not None and up <= args.settle,
            "not within the wait" if up is None else f"{up:.2f} s",
        ),
        (
            "every decision's receipt verifies, and it is the decision predict returned",
            receipts["verified"] == made == run["asked"]
            and receipts["digest"] == run["digest"]
            and receipts["same_as_receipt_for"] == receipts["windows"],
            f"{receipts['verified']:,}/{made:,}, digests "
            f"{'equal' if receipts['digest'] == run['digest'] else 'DIFFER'}",
        ),
        (
            f"uploads <= ceil({made:,}/{args.window_size}) + closed by time = {bound}",
            receipts["windows"] <= bound,
            f"{receipts['windows']}",
        ),
        (
            f"threads <= {MAX_THREADS}",
            run["threads_max"] <= MAX_THREADS,
            f"max {run['threads_max']}",
        ),
        (
            f"RSS growth <= {MAX_RSS_GROWTH_MIB:g} MiB",
            growth <= MAX_RSS_GROWTH_MIB,
            f"{growth:+.1f} MiB",
        ),
    ]
    if bundle is not None:
        ok, value = bundle_verdict(bundle, made)
        what = f"verify-bundle of the exported bundle <= {MAX_VERIFY_BUNDLE_SECONDS:g} s"
        lines.append((what, ok, value))
    for what, ok, value in lines:
        print(f"target {what}: {'met' if ok else 'MISSED'} ({value})")
    return all(ok for _, ok, _ in lines)


# --- main ----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=100_000, help="predictions to make")
    parser.add_argument("--input", choices=list(INPUTS), default="list", help="one-row input")
    parser.add_argument("--window-size", type=int, default=1000, help="ARIO_MLFLOW_WINDOW_SIZE")
    parser.add_argument(
        "--window-seconds", type=float, default=30.0, help="ARIO_MLFLOW_WINDOW_SECONDS"
    )
    parser.add_argument("--settle", type=float, default=30.0, help="target, seconds")
    parser.add_argument(
        "--settle-timeout", type=float, default=120.0, help="how long to wait for the windows"
    )
    parser.add_argument("--no-bundle", action="store_true", help="skip export / verify-bundle")
    parser.add_argument("--dir", default=None, help="where to create the temporary directory")
    parser.add_argument("--serve-child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def measure(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """Train, serve (child), check receipts, export and verify the bundle."""
    from ario_mlflow.engine import ProofEngine
    from ario_mlflow.outbox.journal import Journal

    bp.train_and_register()
    print(f"trained, anchored, registered: {time.perf_counter() - STARTED:.0f} s", flush=True)
    home = bp.fresh_home(scratch, "batch")
    run = serving_child(args)
    print(
        f"served: {time.perf_counter() - STARTED:.0f} s (load average {load_average()})",
        flush=True,
    )
    public_key = ProofEngine().public_key_hex
    journal = Journal.at_home(home)
    receipts = check_receipts(journal, run["stream_id"], public_key)
    print(f"receipts checked: {time.perf_counter() - STARTED:.0f} s", flush=True)
    bundle = None
    if not args.no_bundle:
        total = journal.connection().execute("SELECT COUNT(*) FROM leaves").fetchone()[0]
        bundle = bundle_checks(scratch, int(total), public_key)
    return {"run": run, "receipts": receipts, "bundle": bundle}


STARTED = time.perf_counter()


def main() -> int:
    args = parse_args()
    sys.path.insert(0, str(bp.SOURCE_ROOT))
    warnings.filterwarnings("ignore")  # sklearn's feature-name warning, MLflow deprecations
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    if args.serve_child:
        print(json.dumps(serve(args.decisions, INPUTS[args.input], args.settle_timeout)))
        return 0
    errors = bp.ErrorCounter()
    product_logger = logging.getLogger("ario_mlflow")
    product_logger.addHandler(errors)
    product_logger.propagate = False
    os.environ["ARIO_MLFLOW_WINDOW_SIZE"] = str(args.window_size)
    os.environ["ARIO_MLFLOW_WINDOW_SECONDS"] = str(args.window_seconds)
    os.environ.pop("ARIO_MLFLOW_DECISIONS", None)
    scratch = Path(tempfile.mkdtemp(prefix="ario-bench-batch-", dir=args.dir))
    cwd = os.getcwd()
    try:
        with bp.environment(scratch, inprocess=False) as url:
            print(
                f"local gateway (subprocess) at {url}; {args.decisions:,} decisions, input "
                f"{INPUTS[args.input]}, window {args.window_size} decisions / "
                f"{args.window_seconds:g} s; load average {load_average()}",
                flush=True,
            )
            results = measure(args, scratch)
    finally:
        os.chdir(cwd)
        shutil.rmtree(scratch, ignore_errors=True)
    run, receipts, bundle = results["run"], results["receipts"], results["bundle"]
    print()
    print_serving(run, args.settle)
    bound = math.ceil(run["made"] / args.window_size) + receipts["closed_by"].get("time", 0)
    print_receipts(receipts, run["made"], bound)
    if bundle is not None:
        print_bundle(bundle)
    print(f"product errors logged in this process: {errors.kinds or 'none'}")
    ok = verdicts(run, receipts, bundle, args)
    print(
        f"cpu count {os.cpu_count()}, total {time.perf_counter() - STARTED:.0f} s, load "
        f"average {load_average()}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
