"""Benchmark: start-up time of the ``ar-io-mlflow`` command line vs a bare interpreter.

    python benchmarks/bench_cli.py [--rounds 10]

Runs each command ``--rounds`` times (default 10) as a subprocess, round-robin so that a
slow phase of the machine hits all of them, and prints the median and the best wall time:

* ``python -c pass`` — the floor: interpreter start-up alone;
* ``python -c "import ario_mlflow"`` — the package's import cost;
* ``ar-io-mlflow --help`` and ``ar-io-mlflow --version`` — what a user waits for;
* ``ar-io-mlflow sync --help`` and ``ar-io-mlflow verify --help`` — a subcommand's import
  (reported as unavailable if the subcommand exits non-zero, e.g. not written yet).

``--help`` is also run once under ``python -X importtime`` to list its slowest imports and
to check that it does not import MLflow (the CLI promises to load subcommands lazily).
The ``ar-io-mlflow`` console script next to this interpreter is used when installed, else
``python -m ario_mlflow.cli``. Commands run with an empty temporary ``ARIO_MLFLOW_HOME``.
Exit status 1 if ``--help`` or ``--version`` fails or ``--help`` imports MLflow.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parents[1] / "src"


def cli_prefix() -> list[str]:
    """The console script beside this interpreter, else ``python -m ario_mlflow.cli``."""
    script = Path(sys.executable).parent / "ar-io-mlflow"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "ario_mlflow.cli"]


def run_once(command: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall seconds and exit status of one run (output discarded)."""
    start = time.perf_counter()
    done = subprocess.run(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
    )
    return time.perf_counter() - start, done.returncode


def slowest_imports(command: list[str], env: dict[str, str], top: int) -> tuple[list[str], bool]:
    """``-X importtime`` of ``command``: the ``top`` slowest (cumulative) and whether MLflow
    was imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *command],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    rows: list[tuple[int, str]] = []
    mlflow = False
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if not match:
            continue
        name = match.group(4)
        mlflow = mlflow or name == "mlflow" or name.startswith("mlflow.")
        if not match.group(3).strip(" ") and len(match.group(3)) == 1:  # top-level only
            rows.append((int(match.group(2)), name))
    rows.sort(reverse=True)
    return [f"{name} {micros / 1000:.0f} ms" for micros, name in rows[:top]], mlflow


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="runs per command")
    args = parser.parse_args()

    cli = cli_prefix()
    with tempfile.TemporaryDirectory(prefix="ario-bench-cli-") as home:
        env = dict(os.environ, ARIO_MLFLOW_HOME=home)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(SOURCE_ROOT), env.get("PYTHONPATH"))))
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import ario_mlflow'": [sys.executable, "-c", "import ario_mlflow"],
            "ar-io-mlflow --help": [*cli, "--help"],
            "ar-io-mlflow --version": [*cli, "--version"],
            "ar-io-mlflow sync --help": [*cli, "sync", "--help"],
            "ar-io-mlflow verify --help": [*cli, "verify", "--help"],
        }
        times: dict[str, list[float]] = {label: [] for label in commands}
        status: dict[str, int] = {}
        for label, command in commands.items():  # warm-up: page cache, .pyc files
            status[label] = run_once(command, env)[1]
        for _ in range(args.rounds):
            for label, command in commands.items():
                if status[label] == 0:
                    times[label].append(run_once(command, env)[0])
        module = [sys.executable, "-m", "ario_mlflow.cli", "--help"][1:]
        imports, mlflow_imported = slowest_imports(module, env, 6)

    floor = statistics.median(times["python -c pass"])
    print(f"{'command':<34} {'median ms':>10} {'best ms':>9} {'over python -c pass':>20}")
    print("-" * 76)
    for label, values in times.items():
        if not values:
            print(f"{label:<34} {'unavailable (exit status ' + str(status[label]) + ')':>41}")
            continue
        median = statistics.median(values)
        print(
            f"{label:<34} {median * 1000:>10.0f} {min(values) * 1000:>9.0f} "
            f"{(median - floor) * 1000:>+17.0f} ms"
        )
    print("-" * 76)
    print(f"slowest top-level imports of --help: {', '.join(imports)}")
    print(f"--help imports MLflow: {mlflow_imported}; rounds {args.rounds}; cli {' '.join(cli)}")
    ok = status["ar-io-mlflow --help"] == 0 and status["ar-io-mlflow --version"] == 0
    return 0 if ok and not mlflow_imported else 1


if __name__ == "__main__":
    sys.exit(main())
