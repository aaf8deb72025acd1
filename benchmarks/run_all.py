"""Run every benchmark, one fresh process each, and print a combined summary.

    python benchmarks/run_all.py [--quick] [--what-if] [--only NAME ...]

Each benchmark's own output is streamed as it runs; the summary at the end repeats its
key lines, its exit status and its wall time. ``--quick`` passes smaller sizes (hashing
256 MiB x 3 rounds, 500 predict rounds and 2,000 sustained predictions, 10,000 batched
decisions in windows of 1,000, 3 anchor runs with an 8 MiB model, 5 CLI rounds and 3 of
``verify run``, 2,000 records and 20,000 inclusion receipts to verify) for a smoke run;
the defaults are what the README table reports. ``--what-if`` also runs
``bench_predict.py --background thread`` and ``bench_predict.py --no-trace-predictions``.
Exit status 1 if any benchmark exits non-zero (a missed target counts).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUICK_PREDICT = [
    "--rows",
    "500",
    "--warmup",
    "50",
    "--steps",
    "200",
    "--sustained",
    "2000",
    "--window",
    "5",
    "--loads",
    "3",
]


@dataclass
class Bench:
    """One benchmark script, its arguments, and which output lines summarise it."""

    name: str
    script: str
    quick_args: list[str]
    key_lines: str  # regex over the output lines
    args: list[str] = field(default_factory=list)


BENCHES = [
    Bench(
        "hashing",
        "bench_hashing.py",
        ["--size-mib", "256", "--rounds", "3"],
        r"^(ratio|RSS growth|hashlib streaming|ario_mlflow hash_directory)",
    ),
    Bench(
        "predict",
        "bench_predict.py",
        QUICK_PREDICT,
        r"^(feature list|1-row DataFrame|feature dict|\s+(batch|each)/plain|\s+failed|"
        r"sustained:|  uploads|  MLflow|  plain|  journal states|  threads|  RSS|load:|"
        r"product errors|target|each:|failed predicts)",
    ),
    Bench(
        "batch",
        "bench_batch.py",
        ["--decisions", "10000"],
        r"^(serving:|  at the last|  after the last|  threads|  RSS|windows:|receipts:|"
        r"  receipt_for|export|verify-bundle|target)",
    ),
    Bench(
        "predict-thread",
        "bench_predict.py",
        QUICK_PREDICT,
        r"^(feature list|1-row DataFrame|feature dict|\s+(batch|each)/plain|sustained:|"
        r"  uploads|  MLflow|  plain|  RSS|target)",
        ["--background", "thread"],
    ),
    Bench(
        "predict-no-traces",
        "bench_predict.py",
        QUICK_PREDICT,
        r"^(feature list|1-row DataFrame|feature dict|\s+(batch|each)/plain|sustained:|"
        r"  uploads|  MLflow|  plain|  RSS|target)",
        ["--no-trace-predictions"],
    ),
    Bench(
        "anchor",
        "bench_anchor.py",
        ["--runs", "3", "--extra-mib", "8"],
        r"^(up |blackholed|gateway down|after lifting)",
    ),
    Bench(
        "cli",
        "bench_cli.py",
        ["--rounds", "5", "--verify-rounds", "3"],
        r"^(python|ar-io-mlflow|slowest|--help|verify run|setup)",
    ),
    Bench(
        "verify",
        "bench_verify.py",
        ["--records", "2000", "--inclusion", "20000"],
        r"^(floor|verify_record|leaf_hash|receipt_problem|ratio|tamper|inclusion tamper|"
        r"verify-bundle|verify_bundle|target)",
    ),
]


def run(bench: Bench, quick: bool) -> tuple[int, float, list[str]]:
    """Run one benchmark, streaming its output; exit status, seconds, key lines."""
    command = [sys.executable, str(HERE / bench.script), *bench.args]
    if quick:
        command += bench.quick_args
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n=== {bench.name}: {' '.join(command[1:])} (load average {load})", flush=True)
    pattern = re.compile(bench.key_lines)
    keep: list[str] = []
    start = time.perf_counter()
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            if "INFO mlflow" in line:  # MLflow's database set-up chatter
                continue
            print(line, end="", flush=True)
            if pattern.search(line):
                keep.append(line.rstrip())
    return process.returncode, time.perf_counter() - start, keep


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (smoke run)")
    parser.add_argument("--what-if", action="store_true", help="also the predict variants")
    parser.add_argument(
        "--only", nargs="+", choices=[b.name for b in BENCHES], help="run only these"
    )
    args = parser.parse_args()
    chosen = [
        b
        for b in BENCHES
        if (args.only and b.name in args.only)
        or (not args.only and (not b.name.startswith("predict-") or args.what_if))
    ]
    results = [(bench, *run(bench, args.quick)) for bench in chosen]

    print("\n" + "=" * 100)
    print("SUMMARY" + (" (--quick)" if args.quick else ""))
    for bench, status, seconds, lines in results:
        verdict = "ok" if status == 0 else f"exit {status} (target missed or check failed)"
        print(f"\n[{bench.name}] {verdict}, {seconds:.0f} s")
        for line in lines:
            print(f"  {line}")
    return 0 if all(status == 0 for _, status, _, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
