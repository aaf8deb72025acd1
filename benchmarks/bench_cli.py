"""Benchmark: start-up time of the ``ar-io-mlflow`` command line vs a bare interpreter.

    python benchmarks/bench_cli.py [--rounds 10] [--verify-rounds 5] [--no-verify]

Runs each command ``--rounds`` times (default 10) as a subprocess, round-robin so that a
slow phase of the machine hits all of them, and prints the median and the best wall time:

* ``python -c pass`` — the floor: interpreter start-up alone;
* ``python -c "import ario_mlflow"`` — the package's import cost;
* ``ar-io-mlflow --help`` and ``ar-io-mlflow --version`` — what a user waits for;
* ``ar-io-mlflow sync --help`` and ``ar-io-mlflow verify --help`` — a subcommand's import
  (reported as unavailable if the subcommand exits non-zero, e.g. not written yet);
* ``ar-io-mlflow verify run <run_id> --format json`` — a real verification, start-up
  included: what an auditor waits for. Unless ``--no-verify``, a setup first creates, in
  the temporary directory, a sqlite MLflow store and a local gateway on 127.0.0.1 (port
  0, RSA 2048, its own process via ``LocalGateway.spawn``) that ``ARIO_MLFLOW_UPLOAD_URL``
  / ``ARIO_MLFLOW_GATEWAY_HOST`` / ``ARIO_MLFLOW_GATEWAYS`` point at; a child process
  trains a tiny sklearn model in a run, ``anchor()``s it and ``sync_journal``s (so the
  record is on the gateway), keeping MLflow out of this process. The command runs with
  that store, home and gateway; every run must exit 0 (all checks passed). Its baseline,
  in the same environment: ``python -c "from mlflow.tracking import MlflowClient;
  MlflowClient().get_run(<id>)"`` — importing MLflow and reading the run from the store,
  the least any verifier of an MLflow run must do. These two take seconds, so they run in
  the first ``--verify-rounds`` rounds only (default 5).

``--help`` is also run once under ``python -X importtime`` to list its slowest imports and
to check that it does not import MLflow (the CLI promises to load subcommands lazily).
The ``ar-io-mlflow`` console script next to this interpreter is used when installed, else
``python -m ario_mlflow.cli``. Commands run with an empty temporary ``ARIO_MLFLOW_HOME``
(``verify run``: the home the record was anchored from). Exit status 1 if ``--help`` or
``--version`` fails, ``--help`` imports MLflow, or a ``verify run`` does not exit 0.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

SOURCE_ROOT = Path(__file__).resolve().parents[1] / "src"
VERIFY_LABEL = "ar-io-mlflow verify run <id> --format json"
MLFLOW_LABEL = "python: MlflowClient().get_run(<id>)"


def cli_prefix() -> list[str]:
    """The console script beside this interpreter, else ``python -m ario_mlflow.cli``."""
    script = Path(sys.executable).parent / "ar-io-mlflow"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "ario_mlflow.cli"]


def run_once(command: list[str], env: dict[str, str], cwd: str | None = None) -> tuple[float, int]:
    """Wall seconds and exit status of one run (output discarded)."""
    start = time.perf_counter()
    done = subprocess.run(
        command,
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return time.perf_counter() - start, done.returncode


def train_and_anchor() -> None:
    """Child process: a tiny sklearn model in a new run, anchored and synced; prints JSON.

    Runs in its own process so that this benchmark's process never imports MLflow and the
    upload workers ``anchor()`` starts end with it.
    """
    sys.path.insert(0, str(SOURCE_ROOT))
    warnings.filterwarnings("ignore")
    import inspect
    import logging

    import mlflow
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from ario_mlflow.config import load_settings
    from ario_mlflow.lifecycle.training import anchor
    from ario_mlflow.outbox.journal import Journal
    from ario_mlflow.outbox.sync import sync_journal
    from ario_mlflow.outbox.workers import stop_all_workers

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    features = pd.DataFrame(
        np.random.default_rng(11).random((40, 3)), columns=["income", "debt", "age"]
    )
    labels = (features["income"] > 0.5).astype(int)
    # MLflow 3 calls the model's location ``name=``, MLflow 2 ``artifact_path=``.
    key = (
        "name"
        if "name" in inspect.signature(mlflow.sklearn.log_model).parameters
        else "artifact_path"
    )
    with mlflow.start_run() as run:
        mlflow.log_input(
            mlflow.data.from_pandas(  # type: ignore[attr-defined]
                features, source="s3://bank/train.parquet", name="train"
            ),
            context="training",
        )
        mlflow.log_param("C", 1.0)
        mlflow.log_metric("accuracy", 0.93)
        model = LogisticRegression().fit(features, labels)
        mlflow.sklearn.log_model(model, **{key: "model"}, pip_requirements=["scikit-learn"])
        result = anchor()
    journal = Journal.at_home(load_settings().home)
    sync_journal(journal)
    stop_all_workers()
    record = journal.by_tx(result["tx_id"])
    print(
        json.dumps(
            {
                "run_id": run.info.run_id,
                "tx_id": result["tx_id"],
                "state": getattr(record, "state", "missing"),
            }
        )
    )


def anchored_setup(scratch: Path, cli: list[str]) -> tuple[Any, dict[str, str], dict[str, Any]]:
    """Store, home and gateway for ``verify run``: gateway handle, env, the setup's facts."""
    sys.path.insert(0, str(SOURCE_ROOT))
    from ario_mlflow.localgw import LocalGateway

    store = scratch / "mlflow"
    store.mkdir()
    env = dict(os.environ, ARIO_MLFLOW_HOME=str(scratch / "home"), ARIO_MLFLOW_EXIT_FLUSH="0")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(SOURCE_ROOT), env.get("PYTHONPATH"))))
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{store / 'mlflow.db'}"
    for name in (
        "ARIO_MLFLOW_SIGNING_KEY",
        "ARIO_MLFLOW_ARWEAVE_WALLET",
        "ARIO_MLFLOW_TRUSTED_KEYS",
    ):
        env.pop(name, None)
    gateway = LocalGateway.spawn(scratch / "gateway", key_bits=2048)
    try:
        for name in ("ARIO_MLFLOW_UPLOAD_URL", "ARIO_MLFLOW_GATEWAY_HOST", "ARIO_MLFLOW_GATEWAYS"):
            env[name] = gateway.url
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, __file__, "--train-and-anchor"],
            env=env,
            cwd=store,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"setup failed: {done.stderr.strip()[-2000:]}")
        facts: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        facts["seconds"] = time.perf_counter() - start
        facts["gateway"] = gateway.url
        verify = [*cli, "verify", "run", facts["run_id"], "--format", "json"]
        report = subprocess.run(
            verify, env=env, cwd=store, capture_output=True, text=True, check=False
        )
        facts["status"] = report.returncode
        try:
            checks = json.loads(report.stdout)["checks"]
            facts["checks"] = {name: check.get("ok") for name, check in checks.items()}
        except (ValueError, KeyError):
            facts["checks"] = {"output": report.stdout[-300:] + report.stderr[-500:]}
    except BaseException:
        gateway.stop()
        raise
    return gateway, env, facts


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
    parser.add_argument(
        "--verify-rounds", type=int, default=5, help="runs of verify run and its baseline"
    )
    parser.add_argument("--no-verify", action="store_true", help="skip verify run (no setup)")
    parser.add_argument("--train-and-anchor", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.train_and_anchor:
        train_and_anchor()
        return 0

    cli = cli_prefix()
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average {load}", flush=True)
    gateway = None
    with tempfile.TemporaryDirectory(prefix="ario-bench-cli-") as scratch:
        home = str(Path(scratch) / "empty-home")
        env = dict(os.environ, ARIO_MLFLOW_HOME=home)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(SOURCE_ROOT), env.get("PYTHONPATH"))))
        envs: dict[str, tuple[dict[str, str], str | None]] = {}
        facts: dict[str, Any] = {}
        try:
            if not args.no_verify:
                gateway, verify_env, facts = anchored_setup(Path(scratch), cli)
                print(
                    f"setup: run {facts['run_id']} anchored as {facts['tx_id']} "
                    f"({facts['state']}) on the local gateway {facts['gateway']} in "
                    f"{facts['seconds']:.1f} s; first verify run: exit {facts['status']}, "
                    f"checks {facts['checks']}",
                    flush=True,
                )
                for label in (VERIFY_LABEL, MLFLOW_LABEL):
                    envs[label] = (verify_env, str(Path(scratch) / "mlflow"))
            times, status = measure(
                cli, env, envs, facts.get("run_id"), (args.rounds, args.verify_rounds)
            )
        finally:
            if gateway is not None:
                gateway.stop()
        module = [sys.executable, "-m", "ario_mlflow.cli", "--help"][1:]
        imports, mlflow_imported = slowest_imports(module, env, 6)
    return report(
        times,
        status,
        imports=imports,
        mlflow_imported=mlflow_imported,
        rounds=(args.rounds, args.verify_rounds),
        cli=cli,
    )


def measure(
    cli: list[str],
    env: dict[str, str],
    envs: dict[str, tuple[dict[str, str], str | None]],
    run_id: str | None,
    rounds: tuple[int, int],
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Every command once (warm-up), then round-robin (``rounds``: all commands, the slow
    verify pair): seconds and exit status.

    A command that exits non-zero is not run again, so its status is that first failure.
    """
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import ario_mlflow'": [sys.executable, "-c", "import ario_mlflow"],
        "ar-io-mlflow --help": [*cli, "--help"],
        "ar-io-mlflow --version": [*cli, "--version"],
        "ar-io-mlflow sync --help": [*cli, "sync", "--help"],
        "ar-io-mlflow verify --help": [*cli, "verify", "--help"],
    }
    if run_id is not None:
        floor = f"from mlflow.tracking import MlflowClient; MlflowClient().get_run({run_id!r})"
        commands[MLFLOW_LABEL] = [sys.executable, "-c", floor]
        commands[VERIFY_LABEL] = [*cli, "verify", "run", run_id, "--format", "json"]
    times: dict[str, list[float]] = {label: [] for label in commands}
    status: dict[str, int] = {}
    for label, command in commands.items():  # warm-up: page cache, .pyc files
        status[label] = run_once(command, *envs.get(label, (env, None)))[1]
    for round_ in range(max(rounds)):
        for label, command in commands.items():
            slow = label in (MLFLOW_LABEL, VERIFY_LABEL)
            if round_ >= rounds[slow]:
                continue
            if status[label] == 0:
                seconds, code = run_once(command, *envs.get(label, (env, None)))
                times[label].append(seconds)
                status[label] = code
    return times, status


def report(
    times: dict[str, list[float]],
    status: dict[str, int],
    *,
    imports: list[str],
    mlflow_imported: bool,
    rounds: tuple[int, int],
    cli: list[str],
) -> int:
    """The result table; exit status of the benchmark."""
    floor = statistics.median(times["python -c pass"])
    print(f"{'command':<42} {'median ms':>10} {'best ms':>9} {'over python -c pass':>20}")
    print("-" * 84)
    for label, values in times.items():
        if not values:
            print(f"{label:<42} {'unavailable (exit status ' + str(status[label]) + ')':>41}")
            continue
        median = statistics.median(values)
        print(
            f"{label:<42} {median * 1000:>10.0f} {min(values) * 1000:>9.0f} "
            f"{(median - floor) * 1000:>+17.0f} ms"
        )
    print("-" * 84)
    print(f"slowest top-level imports of --help: {', '.join(imports)}")
    print(
        f"--help imports MLflow: {mlflow_imported}; rounds {rounds[0]} "
        f"(verify pair {rounds[1]}); cli {' '.join(cli)}"
    )
    ok = status["ar-io-mlflow --help"] == 0 and status["ar-io-mlflow --version"] == 0
    if VERIFY_LABEL in times:
        runs = times[VERIFY_LABEL]
        verified = status[VERIFY_LABEL] == 0 and len(runs) == rounds[1]
        print(
            f"verify run exit 0 in every run: {verified} "
            f"({len(runs)}/{rounds[1]} rounds, last exit {status[VERIFY_LABEL]})"
        )
        baseline = times[MLFLOW_LABEL]
        if runs and baseline:
            ours, theirs = statistics.median(runs), statistics.median(baseline)
            print(
                f"verify run / MlflowClient get_run baseline: {ours / theirs:.2f}x median "
                f"({(ours - theirs) * 1000:+.0f} ms); verify run / --help "
                f"{ours / statistics.median(times['ar-io-mlflow --help']):.0f}x"
            )
        ok = ok and verified
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average {load}")
    return 0 if ok and not mlflow_imported else 1


if __name__ == "__main__":
    sys.exit(main())
