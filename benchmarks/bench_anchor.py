"""Benchmark: ``ario_mlflow.anchor()`` latency beyond artifact hashing, gateway up and down.

    python benchmarks/bench_anchor.py [--runs 5] [--extra-mib 32] [--deadline 2] [--profile]

Everything lives in a temporary directory: its own ``ARIO_MLFLOW_HOME``, a sqlite MLflow
store and a local gateway on 127.0.0.1 (RSA 2048, in its own process like a real upload
service) that ``ARIO_MLFLOW_UPLOAD_URL`` / ``ARIO_MLFLOW_GATEWAY_HOST`` /
``ARIO_MLFLOW_GATEWAYS`` point at; ``ARIO_MLFLOW_ANCHOR_DEADLINE`` is ``--deadline``.

For each of ``--runs`` MLflow runs (a logged dataset, a param, a metric, a small sklearn
model plus ``--extra-mib`` MiB of random bytes in the model directory, so hashing has
something to do), in the run:

* ``artifact_checksums(run_id, artifact_path="model")`` alone — the hashing ``anchor()``
  must do (after one untimed pass, so both read from the page cache);
* ``anchor()`` in total — hashing, signing, journaling, the witness files, the bounded
  wait for the upload and the run tags.

Gateway up: medians of both and of the difference (what ``anchor()`` costs beyond
hashing). Gateway down: the upload route blackholed (``set_faults(upload={"blackhole":
True})``: the request is accepted and never answered); ``anchor()`` must still return
within the deadline (plus hashing and a 1 s allowance for the work around the wait),
with its records journaled. The fault is then lifted and ``sync_journal`` must upload
every record: nothing is lost. ``--profile`` prints where one extra ``anchor()`` spends
its time. Exit status 1 if a deadline is overrun or a record is not uploaded.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

SOURCE_ROOT = Path(__file__).resolve().parents[1] / "src"
MIB = 1 << 20
#: Work ``anchor()`` does around its bounded wait (reads, signing, witness, tags).
ALLOWANCE_SECONDS = 1.0


def setup_environment(scratch: Path, deadline: float) -> Any:
    """Own home, store and gateway process; returns the gateway handle."""
    store = scratch / "mlflow"
    store.mkdir()
    os.chdir(store)
    os.environ["ARIO_MLFLOW_HOME"] = str(scratch / "home")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store / 'mlflow.db'}"
    os.environ["ARIO_MLFLOW_ANCHOR_DEADLINE"] = str(deadline)
    os.environ["ARIO_MLFLOW_EXIT_FLUSH"] = "0"
    for name in ("ARIO_MLFLOW_SIGNING_KEY", "ARIO_MLFLOW_ARWEAVE_WALLET"):
        os.environ.pop(name, None)
    from ario_mlflow.localgw import LocalGateway

    gateway = LocalGateway.spawn(scratch / "gateway", key_bits=2048)
    for name in ("ARIO_MLFLOW_UPLOAD_URL", "ARIO_MLFLOW_GATEWAY_HOST", "ARIO_MLFLOW_GATEWAYS"):
        os.environ[name] = gateway.url
    return gateway


def log_training(extra_mib: int, scratch: Path) -> None:
    """Inside the active run: a dataset, a param, a metric and a model (+ a blob)."""
    import mlflow
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    features = pd.DataFrame(
        np.random.default_rng(7).random((200, 3)), columns=["income", "debt", "age"]
    )
    labels = (features["income"] > 0.5).astype(int)
    mlflow.log_input(
        mlflow.data.from_pandas(  # type: ignore[attr-defined]
            features, source="s3://bank/train.parquet", name="train"
        ),
        context="training",
    )
    mlflow.log_param("C", 1.0)
    model = LogisticRegression().fit(features, labels)
    mlflow.log_metric("accuracy", float(model.score(features, labels)))
    mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
    if extra_mib:
        blob = scratch / "weights.bin"
        with open(blob, "wb") as handle:
            for _ in range(extra_mib):
                handle.write(os.urandom(MIB))
        mlflow.log_artifact(str(blob), artifact_path="model")
        blob.unlink()


def one_run(extra_mib: int, scratch: Path, profile: bool = False) -> dict[str, Any]:
    """A new run: hashing alone, then ``anchor()``; seconds of each and the result."""
    import mlflow

    from ario_mlflow.lifecycle.artifacts import artifact_checksums
    from ario_mlflow.lifecycle.training import anchor

    with mlflow.start_run() as run:
        log_training(extra_mib, scratch)
        artifact_checksums(run.info.run_id, artifact_path="model")  # page cache warm-up
        start = time.perf_counter()
        checksums = artifact_checksums(run.info.run_id, artifact_path="model")
        hashing = time.perf_counter() - start
        profiler = cProfile.Profile() if profile else None
        start = time.perf_counter()
        if profiler:
            profiler.enable()
        result = anchor()
        if profiler:
            profiler.disable()
        total = time.perf_counter() - start
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(
            r"ario_mlflow|mlflow/(tracking|store)|requests/sessions", 25
        )
        print(text.getvalue())
    return {
        "hashing": hashing,
        "total": total,
        "files": len(checksums),
        "anchored": result["anchor_result"] is not None,
        "tx_id": result["tx_id"],
        "dataset_tx": [d["tx_id"] for d in result["dataset_anchors"]],
    }


def median_ms(rows: list[dict[str, Any]], key: str) -> float:
    """Median of ``key`` over ``rows``, in ms."""
    return float(statistics.median(float(r[key]) for r in rows)) * 1000.0


def report_ok(
    args: argparse.Namespace,
    up: list[dict[str, Any]],
    down: list[dict[str, Any]],
    sync: dict[str, Any],
) -> bool:
    """Print the table and the checks; True when every check passed."""
    for row in up + down:
        row["beyond"] = row["total"] - row["hashing"]
    print()
    print(
        f"{'gateway':<12} {'runs':>4} {'hashing ms':>11} {'anchor() ms':>12} "
        f"{'beyond hashing ms':>18} {'max anchor() ms':>16} {'uploaded in time':>17}"
    )
    print("-" * 86)
    for label, rows in (("up", up), ("blackholed", down)):
        print(
            f"{label:<12} {len(rows):>4} {median_ms(rows, 'hashing'):>11.0f} "
            f"{median_ms(rows, 'total'):>12.0f} {median_ms(rows, 'beyond'):>18.0f} "
            f"{max(r['total'] for r in rows) * 1000:>16.0f} "
            f"{sum(r['anchored'] for r in rows):>14}/{len(rows)}"
        )
    print("-" * 86)
    limit = args.deadline + ALLOWANCE_SECONDS
    worst = max(r["beyond"] for r in down)
    within = worst <= limit
    print(
        f"gateway down: worst anchor() beyond hashing {worst:.2f} s; limit deadline "
        f"{args.deadline:g} s + {ALLOWANCE_SECONDS:g} s = {limit:g} s: "
        f"{'within' if within else 'OVERRUN'}"
    )
    print(
        f"after lifting the fault: sync_journal {sync['seconds']:.1f} s, "
        f"uploaded {sync['uploaded']}, remaining {sync['remaining']}; "
        f"{sync['total'] - len(sync['not_uploaded'])}/{sync['total']} "
        "records of these runs uploaded"
    )
    print(f"files per model {up[0]['files']}, cpu count {os.cpu_count()}")
    return within and not sync["not_uploaded"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per condition")
    parser.add_argument("--extra-mib", type=int, default=32, help="random MiB in the model")
    parser.add_argument("--deadline", type=float, default=2.0, help="anchor deadline, s")
    parser.add_argument("--profile", action="store_true", help="profile one more anchor()")
    parser.add_argument("--dir", default=None, help="where to create the temporary directory")
    args = parser.parse_args()
    sys.path.insert(0, str(SOURCE_ROOT))
    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("ario_mlflow").setLevel(logging.ERROR)  # expected "not uploaded yet"

    scratch = Path(tempfile.mkdtemp(prefix="ario-bench-anchor-", dir=args.dir))
    cwd = os.getcwd()
    gateway = None
    try:
        gateway = setup_environment(scratch, args.deadline)
        import mlflow

        from ario_mlflow.config import load_settings
        from ario_mlflow.outbox.journal import Journal
        from ario_mlflow.outbox.sync import sync_journal
        from ario_mlflow.outbox.workers import stop_all_workers

        mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
        print(
            f"local gateway (subprocess) at {gateway.url}; deadline {args.deadline:g} s; "
            f"model = small sklearn + {args.extra_mib} MiB",
            flush=True,
        )
        one_run(args.extra_mib, scratch)  # warm-up: imports, keys, wallet, schema
        up = [one_run(args.extra_mib, scratch) for _ in range(args.runs)]
        if args.profile:
            one_run(args.extra_mib, scratch, profile=True)

        gateway.set_faults(upload={"blackhole": True})
        down = [one_run(args.extra_mib, scratch) for _ in range(args.runs)]
        gateway.set_faults()
        journal = Journal.at_home(load_settings().home)
        stop_all_workers()  # sync alone, so its count is the proof
        start = time.perf_counter()
        report = sync_journal(journal)
        sync_seconds = time.perf_counter() - start
        tx_ids = [tx for row in up + down for tx in (row["tx_id"], *row["dataset_tx"])]
        states = [getattr(journal.by_tx(tx), "state", "missing") for tx in tx_ids]
        not_uploaded = [tx for tx, state in zip(tx_ids, states, strict=True) if state != "uploaded"]
    finally:
        from ario_mlflow.outbox.workers import stop_all_workers

        stop_all_workers()
        if gateway is not None:
            gateway.stop()
        os.chdir(cwd)
        shutil.rmtree(scratch, ignore_errors=True)

    sync = {
        "seconds": sync_seconds,
        "uploaded": report.uploaded,
        "remaining": report.remaining,
        "total": len(tx_ids),
        "not_uploaded": not_uploaded,
    }
    return 0 if report_ok(args, up, down, sync) else 1


if __name__ == "__main__":
    sys.exit(main())
