"""Interop with the reference ar-io-mlflow 0.3.0, in both directions, as one command.

Why: DESIGN.md §1 promises that our records verify under the reference implementation
and the reference's under ours. The shared vectors prove it for records minted once, long
ago; this proves it for records minted *now*, by both code bases, through their real
flows. The reference runs in its own virtualenv (``--reference-python``), we run here.

1. We mint training, datasets (implicit and standalone), registration, stage promotion
   and predictions against our local gateway (127.0.0.1, port 0) and a sqlite MLflow
   store, and export them (``mint_ours.py``).
2. The reference verifies them with its own ``verify_record`` and ``verify_proof_by_tx``
   (``reference_side.py verify``).
3. The reference mints the same event types with its own flows (``reference_side.py mint``).
4. We verify those with ``verify_record`` and ``full_verify`` (``verify_theirs.py``).

Each direction also carries tampered records that must be rejected. Exit status: 0 when
every row passed, 1 when any did, 2 when a side could not run at all. A row listed in
``KNOWN_GAPS`` is shown as a known gap and does not fail the run unless ``--strict``; a
listed row that starts passing fails the run, so the list is kept honest.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
#: MLflow 3 reports usage over the internet unless told not to; only 127.0.0.1 is allowed.
NO_TELEMETRY = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
os.environ.update(NO_TELEMETRY)

import mint_ours  # noqa: E402  (siblings, found through sys.path)
import verify_theirs  # noqa: E402

#: (minted_by, verified_by, check, event_type) -> why the row fails today. Empty: every
#: row passes (predictions now name, in their signed payload, the trace created for them).
KNOWN_GAPS: dict[tuple[str, str, str, str], str] = {}


class SideFailed(RuntimeError):
    """One side could not run at all (not a failed check): exit status 2."""


def _reference(python: str, args: list[str], workdir: Path, log_name: str) -> None:
    """Run ``reference_side.py`` in the reference venv with a clean, isolated environment."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ARIO_MLFLOW_", "MLFLOW_"))
        and k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    }
    env.update(NO_TELEMETRY)
    env["HOME"] = str(workdir / "reference-home")  # the reference writes under ~ by default
    env["PYTHONNOUSERSITE"] = "1"
    (workdir / "reference-home").mkdir(exist_ok=True)
    log = workdir / log_name
    with log.open("w") as handle:
        done = subprocess.run(
            [python, str(HERE / "reference_side.py"), *args],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            check=False,
            timeout=600,
        )
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise SideFailed(f"reference_side.py {args[0]} failed (exit {done.returncode}):\n{tail}")


def _apply_gaps(rows: list[dict[str, Any]], strict: bool) -> None:
    for row in rows:
        key = (row["minted_by"], row["verified_by"], row["check"], row["event_type"])
        gap = KNOWN_GAPS.get(key)
        row["status"] = "PASS" if row["passed"] else "FAIL"
        if gap is None or row["expect"] != "accept":
            continue
        if row["passed"]:
            row["status"] = "FAIL"
            row["detail"] = "listed in KNOWN_GAPS but passes now: remove it from the list"
        elif not strict:
            row["status"] = "KNOWN GAP"
            row["detail"] = gap


def _table(rows: list[dict[str, Any]]) -> str:
    headers = ("record", "minted by", "verified by", "check", "expect", "result", "why")
    lines = [
        (
            r["record"],
            r["minted_by"],
            r["verified_by"],
            r["check"],
            r["expect"],
            r["status"],
            r["detail"] if r["status"] != "PASS" or r["expect"] != "accept" else "",
        )
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *lines, strict=True)]
    widths[-1] = min(widths[-1], 90)

    def fmt(cells: tuple[Any, ...]) -> str:
        text = [str(c)[: widths[i]] for i, c in enumerate(cells)]
        return "  ".join(t.ljust(widths[i]) for i, t in enumerate(text)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(headers), rule, *(fmt(line) for line in lines)])


def _quiet() -> None:
    """MLflow's INFO logs and deprecation warnings (stages) would drown the table."""
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


def run(reference_python: str, workdir: Path, strict: bool) -> list[dict[str, Any]]:
    """Both directions; the rows of the table (statuses applied)."""
    from ario_mlflow.localgw import LocalGateway
    from ario_mlflow.outbox.workers import stop_all_workers

    for name in [k for k in os.environ if k.startswith("ARIO_MLFLOW_")]:
        del os.environ[name]  # the user's own keys, wallet and gateways stay out of this
    rows: list[dict[str, Any]] = []
    gateway = LocalGateway(workdir / "gateway", host="127.0.0.1", port=0, key_bits=2048).start()
    try:
        print(f"[1/4] minting with ours (gateway {gateway.url}, store {workdir / 'ours'})")
        mint_ours.mint(workdir / "ours", gateway.url)
        print("[2/4] the reference verifies our records")
        verdicts = workdir / "reference-verdicts.json"
        _reference(
            reference_python,
            ["verify", str(workdir / "ours" / "records"), str(verdicts)],
            workdir,
            "reference-verify.log",
        )
        rows += json.loads(verdicts.read_text())
    finally:
        stop_all_workers()
        gateway.stop()
    for name in [k for k in os.environ if k.startswith("ARIO_MLFLOW_")]:
        del os.environ[name]  # our minting's settings (a stopped gateway) end here
    os.environ["ARIO_MLFLOW_HOME"] = str(workdir / "verifier-home")
    print("[3/4] minting with the reference")
    _reference(reference_python, ["mint", str(workdir / "theirs")], workdir, "reference-mint.log")
    print("[4/4] we verify the reference's records")
    rows += verify_theirs.verify(workdir / "theirs" / "records", workdir / "our-verdicts.json")
    _apply_gaps(rows, strict)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run both directions, print the table; the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference-python", required=True, help="python of the reference venv")
    parser.add_argument("--workdir", type=Path, help="keep everything here (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="do not delete the temp dir")
    parser.add_argument("--strict", action="store_true", help="known gaps fail the run too")
    args = parser.parse_args(argv)
    strict = args.strict or os.environ.get("ARIO_INTEROP_STRICT") == "1"
    _quiet()
    started = time.monotonic()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="ario-interop-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        rows = run(args.reference_python, workdir, strict)
    except SideFailed as exc:
        print(f"interop: {exc}", file=sys.stderr)
        print(f"interop: logs kept in {workdir}", file=sys.stderr)
        return 2
    print()
    print(_table(rows))
    failed = [r for r in rows if r["status"] == "FAIL"]
    gaps = [r for r in rows if r["status"] == "KNOWN GAP"]
    print()
    print(
        f"{len(rows)} checks: {len(rows) - len(failed) - len(gaps)} passed, "
        f"{len(gaps)} known gaps, {len(failed)} failed; "
        f"{sum(r['expect'] == 'reject' for r in rows)} of the checks are on tampered or "
        f"impostor records that must be rejected ({time.monotonic() - started:.0f}s)"
    )
    if args.workdir is None and not args.keep and not failed:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"work directory: {workdir}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
