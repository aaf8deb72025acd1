"""Benchmark: ``VerifiedModel.predict`` vs plain ``mlflow.pyfunc`` predict, with anchoring on.

    python benchmarks/bench_predict.py [--rows 2000] [--decisions both|batch|each]
                                       [--sustained 10000] [--budget 60]
                                       [--sustained-budget 120]
                                       [--inprocess-gateway] [--background thread]

Everything lives in a temporary directory: its own ``ARIO_MLFLOW_HOME`` (journal, keys,
wallet), a sqlite MLflow store, and a local gateway on 127.0.0.1 (RSA 2048) that
``ARIO_MLFLOW_UPLOAD_URL`` / ``ARIO_MLFLOW_GATEWAY_HOST`` / ``ARIO_MLFLOW_GATEWAYS`` point
at. By default the gateway runs in its own process (``LocalGateway.spawn``), as a real
upload service would; ``--inprocess-gateway`` uses ``LocalGateway(...).start()`` instead
(its HTTP server then shares this process's GIL with the code being measured).

A small sklearn model is trained, anchored (``ario_mlflow.anchor()``), registered through
``ArioMlflowClient`` and aliased ``@champion``. Then, in this one process, each phase with
a fresh journal (same keys and wallet) so that one phase's backlog does not slow the next:

1. predict overhead — per input kind (a feature list: one row as a list of floats; a
   1-row DataFrame; a feature dict), a ``VerifiedModel(uri, decisions=mode)`` for each
   mode of ``--decisions`` (``batch``: an unsigned leaf per decision, one signed window
   per ``ARIO_MLFLOW_WINDOW_SIZE`` decisions; ``each``: a signed record per decision),
   then warm-up and ``--rows`` rounds in which plain ``mlflow.pyfunc.load_model(uri)
   .predict`` and every mode are called once each on the same row (the 200 training rows
   in turn; the contenders' order rotates through every permutation, round by round).
   Plain predict gets a list or dict shaped as ``VerifiedModel`` shapes it
   (``np.array([row])``, ``np.array([list(d.values())])``, inside the timed call): a plain
   sklearn pyfunc without a signature cannot take either. The companion runs in the
   background throughout, as in production. Then a step-by-step breakdown of the hot
   path of each mode (diagnosis).
2. sustained run (``each`` mode; ``bench_batch.py`` is the ``batch`` one) —
   ``--sustained`` predictions back to back from one thread: decisions/s made; the time
   until the journal shows every one uploaded (anchored decisions/s); the MLflow
   write-back rate over ``--window`` s; a ``sync_journal`` pass (in a child process
   without MLflow, so that it retries uploads only: see ``upload_only_sync``); then a
   per-decision check that each record is ``uploaded``. Threads (``Threads``) and RSS
   (``VmRSS``) of this process are sampled from ``/proc/self/status`` every 0.25 s.
3. load overhead — ``VerifiedModel(uri)`` vs ``mlflow.pyfunc.load_model(uri)``, median of
   ``--loads`` alternating loads.

A failing ``predict`` (e.g. ``JournalError: database is locked``) is counted, reported and
ends that measurement (the journal is stuck: further calls would only wait out the same
lock). The overhead phases stop after ``--budget`` seconds, the sustained loop after
``--sustained-budget`` seconds (and its upload wait after ``max(30, --budget / 2)``), so
the run stays under 5 minutes on 2 cores even when the product misbehaves.

``--no-trace-predictions`` passes ``trace_predictions=False`` (no MLflow trace per
decision: the witness write-back only), to measure what the per-decision traces cost.
``--background thread`` passes ``background="thread"`` (item signing, journal commit,
uploads and write-backs inside the serving process instead of the companion process).

Targets (``batch`` mode, ratios to plain in the same rounds): feature list median
<= 1.10x, 1-row DataFrame median <= 1.05x, p99 of both <= 1.25x; ``each`` mode is
reported, with no latency target. Exit status 1 if a target is missed, if any predict
failed, or if any ``each`` decision is not anchored after ``sync_journal``.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

SOURCE_ROOT = Path(__file__).resolve().parents[1] / "src"
#: ``batch`` targets: median ratio to plain predict per input kind, and p99 ratio of both.
TARGET_MEDIAN = {"feature list": 1.10, "1-row DataFrame": 1.05}
TARGET_P99 = 1.25
INPUT_KINDS = ("feature list", "1-row DataFrame", "feature dict")
MODES = ("batch", "each")
PLAIN = "plain"
MODEL_NAME = "bench-credit"
MODEL_URI = f"models:/{MODEL_NAME}@champion"
SAMPLE_SECONDS = 0.25
#: How long to wait for upload worker threads to finish their current item when stopped.
WORKER_STOP_SECONDS = 20.0
#: How long the upload-only ``sync_journal`` child may take.
SYNC_TIMEOUT_SECONDS = 45.0
#: Extra ``VerifiedModel`` keyword arguments (``--no-trace-predictions``).
MODEL_OPTIONS: dict[str, Any] = {}


# --- small helpers --------------------------------------------------------------------


def proc_status(field_name: str) -> int:
    """An integer field of ``/proc/self/status`` (``VmRSS`` in KiB, ``Threads``); 0 if absent."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile (``q`` in 0..1) of an unsorted, non-empty list."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))
    return ordered[index]


def summary_us(samples_ns: list[int]) -> dict[str, float]:
    """Count, median, p90, p99 in microseconds (zeros when there is no sample)."""
    if not samples_ns:
        return {"n": 0, "median": 0.0, "p90": 0.0, "p99": 0.0}
    values = [s / 1000.0 for s in samples_ns]
    return {
        "n": len(values),
        "median": statistics.median(values),
        "p90": quantile(values, 0.90),
        "p99": quantile(values, 0.99),
    }


@dataclass
class Sampler:
    """Samples thread count and RSS of this process every ``interval`` s on a thread.

    The sampler's own thread is excluded from the thread counts it reports.
    """

    interval: float = SAMPLE_SECONDS
    threads: list[int] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.threads.append(proc_status("Threads") - 1)
            self.rss_kib.append(proc_status("VmRSS"))
            self._stop.wait(self.interval)

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


FAILED = object()


@dataclass
class Failures:
    """Failed calls by kind of error, and how long each took to fail."""

    kinds: dict[str, int] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)

    def call(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)``, or ``FAILED`` after recording the exception it raised."""
        start = time.perf_counter()
        try:
            return function(*args)
        except Exception as exc:
            self.seconds.append(time.perf_counter() - start)
            kind = f"{type(exc).__name__}: {str(exc).rsplit(': ', 1)[-1][:80]}"
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
            return FAILED

    @property
    def count(self) -> int:
        """How many calls failed."""
        return len(self.seconds)

    def describe(self) -> str:
        """One line: none, or the kinds and the median time to fail."""
        if not self.seconds:
            return "none"
        return f"{self.kinds} (median {statistics.median(self.seconds):.1f} s to fail)"


# --- environment ------------------------------------------------------------------------


@contextlib.contextmanager
def environment(scratch: Path, inprocess: bool) -> Iterator[str]:
    """Own ARIO_MLFLOW_HOME, sqlite store and local gateway; yields the gateway URL."""
    store = scratch / "mlflow"
    store.mkdir()
    os.chdir(store)  # the sqlite store keeps its artifacts beside it
    os.environ["ARIO_MLFLOW_HOME"] = str(scratch / "home-setup")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store / 'mlflow.db'}"
    for name in ("ARIO_MLFLOW_SIGNING_KEY", "ARIO_MLFLOW_ARWEAVE_WALLET"):
        os.environ.pop(name, None)
    os.environ.pop("ARIO_MLFLOW_TRUSTED_KEYS", None)
    os.environ["ARIO_MLFLOW_EXIT_FLUSH"] = "0"  # the benchmark syncs explicitly
    from ario_mlflow.localgw import LocalGateway

    gateway: Any
    if inprocess:
        gateway = LocalGateway(scratch / "gateway", key_bits=2048).start()
    else:
        gateway = LocalGateway.spawn(scratch / "gateway", key_bits=2048)
    try:
        for name in ("ARIO_MLFLOW_UPLOAD_URL", "ARIO_MLFLOW_GATEWAY_HOST", "ARIO_MLFLOW_GATEWAYS"):
            os.environ[name] = gateway.url
        yield str(gateway.url)
    finally:
        if stop_workers():  # still busy: they will fail once the store is removed
            logging.getLogger("mlflow").setLevel(logging.CRITICAL)
        gateway.stop()


def stop_workers(timeout: float = WORKER_STOP_SECONDS) -> int:
    """Stop the upload workers and wait (bounded) until their threads are gone.

    ``stop_all_workers`` joins each thread for 5 s only; a worker inside a slow journal
    transaction or trace write-back outlives that, keeps its leases and keeps the GIL
    busy. Returns how many worker threads are still alive after ``timeout`` s.
    """
    from ario_mlflow.outbox.companion import stop_companions
    from ario_mlflow.outbox.workers import stop_all_workers

    stop_companions()
    stop_all_workers()
    until = time.monotonic() + timeout
    alive = [t for t in threading.enumerate() if t.name.startswith("ario-upload-")]
    for thread in alive:
        while True:
            try:
                thread.join(max(0.0, until - time.monotonic()))
                break
            except RuntimeError:  # in limbo (being started right now): join it once it runs
                if time.monotonic() > until:
                    break
                time.sleep(0.01)
    return sum(thread.is_alive() for thread in alive)


def fresh_home(scratch: Path, phase: str) -> Path:
    """Stop the workers and switch to a new ARIO_MLFLOW_HOME with the same keys and wallet."""
    from ario_mlflow.outbox.journal import Journal

    stop_workers()
    home = scratch / f"home-{phase}"
    shutil.copytree(scratch / "home-setup", home, ignore=shutil.ignore_patterns("journal.sqlite3*"))
    os.environ["ARIO_MLFLOW_HOME"] = str(home)
    Journal.at_home(home).close()  # creates the schema
    return home


def bench_features() -> Any:
    """The 200 training rows (the same in every process: a fixed seed)."""
    import numpy as np
    import pandas as pd

    return pd.DataFrame(
        np.random.default_rng(11).random((200, 3)), columns=["income", "debt", "age"]
    )


def train_and_register() -> Any:
    """Train, log, anchor, register and alias a small classifier; return its features."""
    import mlflow
    from sklearn.linear_model import LogisticRegression

    from ario_mlflow.lifecycle.registry import ArioMlflowClient
    from ario_mlflow.lifecycle.training import anchor

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    features = bench_features()
    labels = (features["income"] > 0.5).astype(int)
    with mlflow.start_run() as run:
        dataset = mlflow.data.from_pandas(  # type: ignore[attr-defined]
            features, source="s3://bank/train.parquet", name="train"
        )
        mlflow.log_input(dataset, context="training")
        mlflow.log_param("C", 1.0)
        model = LogisticRegression().fit(features, labels)
        mlflow.log_metric("accuracy", float(model.score(features, labels)))
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
        result = anchor()
    if result["anchor_result"] is None:
        raise SystemExit(f"training record not anchored: {result}")
    client = ArioMlflowClient()
    client.create_registered_model(MODEL_NAME)
    version = client.create_model_version(MODEL_NAME, info.model_uri, run_id=run.info.run_id)
    if not client.wait_for_anchor("registration", MODEL_NAME, version.version, timeout=60):
        raise SystemExit("registration not anchored within 60 s")
    client.set_registered_model_alias(MODEL_NAME, "champion", version.version)
    return features


# --- 1. predict overhead ----------------------------------------------------------------


def interleaved(
    contenders: dict[str, tuple[Callable[[Any], Any], Sequence[Any]]],
    rounds: int,
    warmup: int,
    *,
    deadline: float,
    failures: dict[str, Failures],
) -> dict[str, list[int]]:
    """Each contender ``(call, rows)`` once per round on ``rows[round % len(rows)]``, in
    an order that goes through every permutation, round by round; per-call ns of each.

    Every contender goes through the same ``Failures`` wrapper. A failed verified call
    ends the loop (``failures`` has it): it means the journal is stuck, and every further
    call would wait out the same lock; a failed plain call ends the benchmark. The loop
    also stops at ``deadline`` (``time.monotonic()``).
    """
    names = list(contenders)
    orders = list(itertools.permutations(names))
    for index in range(warmup):
        for name in names:
            call, rows = contenders[name]
            failures[name].call(call, rows[index % len(rows)])
    samples: dict[str, list[int]] = {name: [] for name in names}
    clock = time.perf_counter_ns
    for index in range(rounds):
        if time.monotonic() > deadline:
            break
        for name in orders[index % len(orders)]:
            call, rows = contenders[name]
            row, tally = rows[index % len(rows)], failures[name]
            start = clock()
            outcome = tally.call(call, row)
            elapsed = clock() - start
            if outcome is FAILED:
                if name == PLAIN:
                    raise SystemExit(f"plain predict failed: {tally.describe()}")
                return samples  # the journal is stuck: more calls only wait
            samples[name].append(elapsed)
    return samples


def input_rows(features: Any, kind: str) -> list[Any]:
    """The training rows as ``kind`` inputs (a list of floats, a 1-row DataFrame, a dict)."""
    if kind == "1-row DataFrame":
        return [features.iloc[[i]] for i in range(len(features))]
    records = [
        {str(k): float(v) for k, v in features.iloc[i].items()} for i in range(len(features))
    ]
    return records if kind == "feature dict" else [list(r.values()) for r in records]


def plain_call(model: Any, kind: str) -> Callable[[Any], Any]:
    """Plain predict of a ``kind`` input, shaped as ``VerifiedModel`` shapes it
    (``model_input``): a plain sklearn pyfunc without a signature takes no list or dict."""
    import numpy as np

    if kind == "1-row DataFrame":
        return cast("Callable[[Any], Any]", model.predict)
    if kind == "feature dict":
        return lambda row: model.predict(np.array([list(row.values())]))
    return lambda row: model.predict(np.array([row]))


def overhead(
    uri: str,
    features: Any,
    rounds: int,
    warmup: int,
    *,
    modes: Sequence[str],
    budget: float,
    new_journal: Callable[[str], object],
) -> dict[str, dict[str, Any]]:
    """Per input kind: latency summaries of plain predict and of each decision mode.

    Each input kind gets its own journal (``new_journal(label)``) and ``VerifiedModel``s,
    so the second is not measured against the first one's backlog.
    """
    import mlflow

    from ario_mlflow.lifecycle.serving import VerifiedModel

    plain_model = mlflow.pyfunc.load_model(uri)
    results: dict[str, dict[str, Any]] = {}
    for kind in INPUT_KINDS:
        rows, plain = input_rows(features, kind), plain_call(plain_model, kind)
        new_journal(kind.split()[-1].lower())
        contenders: dict[str, tuple[Callable[[Any], Any], Sequence[Any]]] = {PLAIN: (plain, rows)}
        for mode in modes:
            verified_model = VerifiedModel(uri, **MODEL_OPTIONS, decisions=mode)
            if verified_model.artifact_verified is not True:
                raise SystemExit("VerifiedModel did not verify the artifacts")
            if list(plain(rows[0])) != list(verified_model.predict(rows[0]).prediction):
                raise SystemExit(f"{kind}, {mode}: plain and verified predictions differ")
            contenders[mode] = (verified_model.predict, rows)
        failures = {name: Failures() for name in contenders}
        samples = interleaved(
            contenders,
            rounds,
            warmup,
            deadline=time.monotonic() + budget / len(INPUT_KINDS),
            failures=failures,
        )
        results[kind] = {
            **{name: summary_us(ns) for name, ns in samples.items()},
            "failures": {mode: failures[mode] for mode in modes},
        }
    return results


#: Rounds of a step breakdown run before its samples are kept.
STEP_WARMUP = 50
#: ``one_round(index) -> the clock marks between its steps`` (None: a failed round).
StepRound = Callable[[int], "tuple[int, ...] | None"]


def step_medians(
    names: Sequence[str], one_round: StepRound, rounds: int, *, budget: float
) -> dict[str, float]:
    """Median µs of each step (between consecutive marks) over ``rounds`` rounds."""
    samples: list[list[int]] = [[] for _ in names]
    deadline = time.monotonic() + budget
    for index in range(rounds + STEP_WARMUP):
        if time.monotonic() > deadline:
            break
        marks = one_round(index)
        if index >= STEP_WARMUP and marks is not None:
            for sink, (a, b) in zip(samples, itertools.pairwise(marks), strict=True):
                sink.append(b - a)
    return {
        name: statistics.median(v) / 1000.0 if v else float("nan")
        for name, v in zip(names, samples, strict=True)
    }


BATCH_STEPS = (
    "input_fingerprint",
    "model_input",
    "model.predict (the pyfunc call)",
    "pid check + span pre-check",
    "output_fingerprint",
    "decision id (random_uuid)",
    "sequence + decided_at (utc_now_iso)",
    "leaf: payload bytes + leaf hash",
    "spool append (LeafSink.append)",
    "VerifiedPrediction + waiter",
)
EACH_STEPS = (
    "input_fingerprint",
    "model_input",
    "model.predict (the pyfunc call)",
    "active trace id + OTel context",
    "output_fingerprint",
    "decision id (random_uuid)",
    "payload + envelope + Ed25519",
    "payload text (write-back slot)",
    "commit (decision sink)",
)


def model_steps(model: Any, row: Any) -> tuple[tuple[int, ...], str, Any, float]:
    """The steps both modes share, timed: marks before ``input_fingerprint``,
    ``model_input``, the model call and after it; the input hash, the prediction and the
    call's latency in ms (as ``predict`` measures it)."""
    from ario_mlflow.proof.fingerprint import input_fingerprint, model_input

    clock = time.perf_counter_ns
    t0 = clock()
    input_hash = input_fingerprint(row)
    t1 = clock()
    shaped = model_input(row)
    t2 = clock()
    started = time.perf_counter()
    prediction = model._model.predict(shaped)
    latency_ms = (time.perf_counter() - started) * 1000.0
    t3 = clock()
    return (t0, t1, t2, t3), input_hash, prediction, latency_ms


def batch_round(model: Any, rows: Sequence[Any], failures: Failures) -> StepRound:
    """One ``batch`` prediction, step by step as ``_predict_batched`` makes it."""
    from ario_mlflow.lifecycle.otel import no_span_can_be_active
    from ario_mlflow.lifecycle.serving import VerifiedPrediction, _waiter
    from ario_mlflow.proof.envelope import random_uuid, utc_now_iso
    from ario_mlflow.proof.fingerprint import output_fingerprint

    clock, sink, leaves = time.perf_counter_ns, model._leaf_sink, model._leaves

    def one_round(index: int) -> tuple[int, ...] | None:
        (t0, t1, t2, t3), input_hash, prediction, latency_ms = model_steps(
            model, rows[index % len(rows)]
        )
        if os.getpid() != model._stream_pid or not no_span_can_be_active():
            raise SystemExit("the batch breakdown assumes no active span, in the stream's process")
        t4 = clock()
        output_hash = output_fingerprint(prediction)
        t5 = clock()
        decision_id = random_uuid()
        t6 = clock()
        seq = next(model._sequence)
        decided_at = utc_now_iso()
        t7 = clock()
        leaf = leaves.leaf(
            decision_id=decision_id,
            input_hash=input_hash,
            output_hash=output_hash,
            latency_ms=latency_ms,
            sequence=seq,
            decided_at=decided_at,
            extra=None,
        )
        t8 = clock()
        appended = failures.call(sink.append, leaf.payload_bytes)
        t9 = clock()
        result = VerifiedPrediction(
            prediction,
            decision_id,
            "disabled",
            leaf.payload,
            stream_id=model.stream_id,
            seq=seq,
            leaf_hash=leaf.leaf_hash.hex(),
        )
        result.proof_status = "pending"
        result._wait = _waiter(sink.waiter(decision_id, seq))
        result._journal = model._anchor.journal
        t10 = clock()
        return None if appended is FAILED else (t0, t1, t2, t3, t4, t5, t6, t7, t8, t9, t10)

    return one_round


def each_round(model: Any, rows: Sequence[Any], failures: Failures) -> StepRound:
    """One ``each`` prediction, step by step as ``predict`` makes it. ``commit`` is the
    decision sink: one spool line with the default companion process, a signed item and
    a journal transaction with ``thread``."""
    from ario_mlflow.lifecycle.otel import capture_otel_context, no_span_can_be_active
    from ario_mlflow.lifecycle.traces import active_trace_id
    from ario_mlflow.proof.envelope import random_uuid
    from ario_mlflow.proof.fingerprint import output_fingerprint

    clock = time.perf_counter_ns

    def one_round(index: int) -> tuple[int, ...] | None:
        (t0, t1, t2, t3), input_hash, prediction, latency_ms = model_steps(
            model, rows[index % len(rows)]
        )
        trace_id = None
        if not no_span_can_be_active():
            trace_id = active_trace_id()
            capture_otel_context(True, configured=model._capture_otel)
        t4 = clock()
        output_hash = output_fingerprint(prediction)
        t5 = clock()
        decision_id = random_uuid()
        t6 = clock()
        signed = model._decisions.sign(
            decision_id=decision_id,
            input_hash=input_hash,
            output_hash=output_hash,
            latency_ms=latency_ms,
            sequence=next(model._sequence),
            trace_id=trace_id,
        )
        t7 = clock()
        writeback = signed.payload_bytes.decode("utf-8")  # the write-back's slot
        t8 = clock()
        committed = failures.call(
            model._sink.commit,
            signed.envelope,
            signed.envelope_json,
            f"prediction:{decision_id}",
            writeback,
        )
        t9 = clock()
        return None if committed is FAILED else (t0, t1, t2, t3, t4, t5, t6, t7, t8, t9)

    return one_round


def breakdown(
    uri: str,
    features: Any,
    rounds: int,
    *,
    modes: Sequence[str],
    budget: float,
    failures: Failures,
    new_journal: Callable[[str], object],
) -> dict[str, dict[str, dict[str, float]]]:
    """Per mode and input kind (feature list, DataFrame), the median µs of each step of
    ``VerifiedModel.predict``'s hot path, timed one by one on the same rows as the
    latency phase (reaching into the model's private parts: diagnosis only, the totals
    are the numbers that count)."""
    from ario_mlflow.lifecycle.serving import VerifiedModel

    kinds = [kind for kind in INPUT_KINDS if kind in TARGET_MEDIAN]
    steps: dict[str, dict[str, dict[str, float]]] = {}
    for mode in modes:
        new_journal(f"steps-{mode}")
        model = VerifiedModel(uri, **MODEL_OPTIONS, decisions=mode)
        make, names = (batch_round, BATCH_STEPS) if mode == "batch" else (each_round, EACH_STEPS)
        steps[mode] = {
            kind: step_medians(
                names,
                make(model, input_rows(features, kind), failures),
                rounds,
                budget=budget / len(modes) / len(kinds),
            )
            for kind in kinds
        }
    return steps


# --- 2. sustained run -------------------------------------------------------------------


def decision_states(journal: Any, decision_ids: list[str]) -> dict[str, int]:
    """How many of ``decision_ids`` are in each journal state (``missing`` if absent)."""
    states: dict[str, int] = {}
    for decision_id in decision_ids:
        record = journal.latest_for(f"prediction:{decision_id}")
        state = record.state if record is not None else "missing"
        states[state] = states.get(state, 0) + 1
    return states


def drain_wait(journal: Any, timeout: float) -> bool:
    """Poll the journal until no record is pending upload; False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not journal.counts()["pending"]:
            return True
        time.sleep(0.05)
    return False


def timed_calls(call: Callable[[], Any], *, seconds: float = 0.0, count: int = 0) -> list[int]:
    """ns of each ``call()``, repeated for ``seconds`` (or ``count`` times)."""
    samples: list[int] = []
    clock = time.perf_counter_ns
    until = time.monotonic() + seconds
    while (len(samples) < count) if count else (time.monotonic() < until):
        start = clock()
        call()
        samples.append(clock() - start)
    return samples


def sustained(
    uri: str, features: Any, count: int, *, window: float, budget: float, drain_timeout: float
) -> dict[str, Any]:
    """``count`` back-to-back ``each`` predictions; rates, time to anchor all, threads, RSS.

    After the uploads, the MLflow write-back rate is watched for ``window`` s with this
    thread idle; then plain predict is timed back to back for ``window / 2`` s while the
    workers go on draining, and again once they are stopped: the difference is what the
    in-process workers cost every other call of the process.
    """
    import mlflow

    from ario_mlflow.config import load_settings
    from ario_mlflow.lifecycle.serving import VerifiedModel
    from ario_mlflow.outbox.journal import Journal

    model = VerifiedModel(uri, **MODEL_OPTIONS, decisions="each")
    plain = mlflow.pyfunc.load_model(uri)
    row = features.iloc[[1]]
    journal = Journal.at_home(load_settings().home)
    model.predict(row).wait_for_anchor(30)  # warm, workers started
    threads_before, rss_before = proc_status("Threads"), proc_status("VmRSS")
    decision_ids: list[str] = []
    failures = Failures()
    deadline = time.monotonic() + budget
    with Sampler() as sampler:
        started = time.perf_counter()
        for _ in range(count):
            result = failures.call(lambda: model.predict(row))
            if result is FAILED:  # the journal is stuck: more calls only wait
                break
            decision_ids.append(result.decision_id)
            if time.monotonic() > deadline:
                break
        made = time.perf_counter() - started
        rss_after_loop = proc_status("VmRSS")
        all_uploaded = drain_wait(journal, drain_timeout)
        uploaded_seconds = time.perf_counter() - started
        # MLflow write-backs (witness and trace of each decision): watch the workers for a while,
        # this thread idle (a busy thread starves them of the GIL), ...
        pending_before = journal.counts()["writebacks_pending"]
        time.sleep(window)
        pending_after = journal.counts()["writebacks_pending"]
        # ... then time plain predict while they go on draining.
        plain_busy = timed_calls(lambda: plain.predict(row), seconds=window / 2)
    still_running = stop_workers()  # their leases would hold sync_journal off
    plain_idle = timed_calls(lambda: plain.predict(row), count=max(len(plain_busy), 200))
    before_sync = decision_states(journal, decision_ids)
    sync = upload_only_sync()
    after_sync = decision_states(journal, decision_ids)
    return {
        "count": len(decision_ids),
        "asked": count,
        "failures": failures,
        "made_seconds": made,
        "uploaded_seconds": uploaded_seconds,
        "all_uploaded_by_workers": all_uploaded,
        "writebacks_window": window,
        "writebacks_pending_before": pending_before,
        "writebacks_pending_after": pending_after,
        "before_sync": before_sync,
        "sync": sync,
        "after_sync": after_sync,
        "threads_before": threads_before,
        "threads_max": max(sampler.threads, default=0),
        "rss_before_kib": rss_before,
        "rss_after_loop_kib": rss_after_loop,
        "rss_max_kib": max(sampler.rss_kib, default=0),
        "plain_busy": summary_us(plain_busy),
        "plain_idle": summary_us(plain_idle),
        "busy_pending": pending_after,
        "workers_still_running": still_running,
    }


def upload_only_sync() -> dict[str, Any]:
    """``sync_journal`` on the current journal, in a child process that never imports MLflow.

    Such a process registers no handler for the MLflow write-back kinds, so
    ``sync_journal`` makes one attempt at every outstanding *upload* and leaves the MLflow
    write-backs journaled. In this process it would also run every queued trace
    write-back first-hand — about a second each (see the README), hours for 10,000.
    """
    command = [sys.executable, __file__, "--sync-child"]
    failed = {"seconds": 0.0, "uploaded": 0, "failed_attempts": 0}
    try:
        done = subprocess.run(
            command, check=False, capture_output=True, text=True, timeout=SYNC_TIMEOUT_SECONDS
        )
    except subprocess.TimeoutExpired:  # run() has killed the child
        return {**failed, "remaining": f"did not finish within {SYNC_TIMEOUT_SECONDS:g} s"}
    if done.returncode != 0:  # e.g. sqlite3.OperationalError: database is locked
        error = (done.stderr.strip().splitlines() or ["?"])[-1]
        return {**failed, "remaining": error}
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def sync_child() -> None:
    """Run ``sync_journal`` on ``$ARIO_MLFLOW_HOME``'s journal; print the report as JSON."""
    from ario_mlflow.config import load_settings
    from ario_mlflow.outbox.handlers import installed_kinds as writeback_kinds
    from ario_mlflow.outbox.journal import Journal
    from ario_mlflow.outbox.sync import sync_journal

    started = time.perf_counter()
    report = sync_journal(Journal.at_home(load_settings().home))
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - started,
                "uploaded": report.uploaded,
                "failed_attempts": report.failed_attempts,
                "remaining": report.remaining,
                "handler_kinds": writeback_kinds(),
                "mlflow_imported": "mlflow" in sys.modules,
            }
        )
    )


# --- 3. load overhead -------------------------------------------------------------------


def load_overhead(uri: str, rounds: int) -> dict[str, float]:
    """Median seconds of plain and verified loads, alternated."""
    import mlflow

    from ario_mlflow.lifecycle.serving import VerifiedModel

    plain: list[float] = []
    verified: list[float] = []
    for _ in range(rounds):
        start = time.perf_counter()
        mlflow.pyfunc.load_model(uri)
        plain.append(time.perf_counter() - start)
        start = time.perf_counter()
        VerifiedModel(uri, **MODEL_OPTIONS)
        verified.append(time.perf_counter() - start)
    return {"plain": statistics.median(plain), "verified": statistics.median(verified)}


# --- report -----------------------------------------------------------------------------


def latency_ratios(latency: dict[str, dict[str, Any]], modes: Sequence[str]) -> None:
    """Add ``ratio[mode]`` (median, p90, p99 of the mode over plain's) to every input kind."""
    for pair in latency.values():
        pair["ratio"] = {
            mode: {q: pair[mode][q] / max(pair[PLAIN][q], 1e-9) for q in ("median", "p90", "p99")}
            for mode in modes
        }


def print_latency(
    latency: dict[str, dict[str, Any]],
    steps: dict[str, dict[str, dict[str, float]]],
    modes: Sequence[str],
) -> None:
    """The latency table, ratios and the step breakdowns."""
    print()
    print(
        f"{'input':<16} {'contender':<9} {'calls':>6} {'median µs':>10} {'p90 µs':>9} {'p99 µs':>9}"
    )
    print("-" * 64)
    for label, pair in latency.items():
        for who in (PLAIN, *modes):
            s = pair[who]
            print(
                f"{label:<16} {who:<9} {s['n']:>6} {s['median']:>10.0f} {s['p90']:>9.0f} "
                f"{s['p99']:>9.0f}"
            )
        for mode in modes:
            ratio = pair["ratio"][mode]
            print(
                f"{'':<16} {mode + '/plain':<11} {'':>4} {ratio['median']:>9.2f}x "
                f"{ratio['p90']:>8.2f}x {ratio['p99']:>8.2f}x"
            )
        failures = "; ".join(f"{m}: {f.describe()}" for m, f in pair["failures"].items())
        print(f"{'':<16} failed verified calls: {failures}")
    print("-" * 64)
    for mode, kinds in steps.items():
        print(f"{mode} hot path step by step (median µs, companion running):")
        print(f"  {'step':<38}" + "".join(f" {kind:>16}" for kind in kinds))
        names = list(next(iter(kinds.values())))
        for name in names:
            print(f"  {name:<38}" + "".join(f" {k[name]:>16.1f}" for k in kinds.values()))
        overhead = [
            sum(v for n, v in k.items() if n not in ("model_input", names[2]))
            for k in kinds.values()
        ]
        print(
            f"  {'sum of the steps but the model call':<38}"
            + "".join(f" {v:>16.1f}" for v in overhead)
        )


def print_sustained(run: dict[str, Any]) -> None:
    """Rates, anchoring, write-backs, threads and RSS of the sustained run."""
    count, made = run["count"], run["made_seconds"]
    print(
        f"sustained: {count} of {run['asked']} predictions in {made:.2f} s = "
        f"{count / made:.0f} decisions/s made (one thread); failed: "
        f"{run['failures'].describe()}"
    )
    print(
        f"  uploads: all uploaded by the workers: {run['all_uploaded_by_workers']}, "
        f"{run['uploaded_seconds']:.2f} s after the first prediction "
        f"({run['uploaded_seconds'] - made:.2f} s after the last) = "
        f"{count / run['uploaded_seconds']:.0f} anchored decisions/s"
    )
    window = run["writebacks_window"]
    before, after = run["writebacks_pending_before"], run["writebacks_pending_after"]
    rate = (before - after) / window
    eta = f"~{after / rate / 60:.0f} min to drain" if rate > 0 else "not draining"
    print(
        f"  MLflow write-backs (witness and trace of each decision): {before} pending, "
        f"{before - after} done in {window:.0f} s = {rate:.1f}/s; {after} left ({eta})"
    )
    busy, idle = run["plain_busy"], run["plain_idle"]
    print(
        f"  plain predict while the workers drain ({run['busy_pending']} write-backs pending): "
        f"median {busy['median']:.0f} µs, p99 {busy['p99']:.0f} µs ({busy['n']} calls); "
        "workers stopped: median "
        f"{idle['median']:.0f} µs, p99 {idle['p99']:.0f} µs "
        f"(x{busy['median'] / max(idle['median'], 1e-9):.2f} median); worker threads still "
        f"running {WORKER_STOP_SECONDS:g} s after stop: {run['workers_still_running']}"
    )
    sync = run["sync"]
    print(
        f"  sync_journal (upload-only child): {sync['uploaded']} uploaded, "
        f"{sync['failed_attempts']} failed, {sync['seconds']:.2f} s; remaining "
        f"{sync['remaining']}"
    )
    print(
        f"  journal states of the {count} decisions: before sync {run['before_sync']}, "
        f"after sync {run['after_sync']}"
    )
    print(f"  threads: {run['threads_before']} before, max {run['threads_max']} during")
    mib = 1024.0
    growth = run["rss_max_kib"] - run["rss_before_kib"]
    print(
        f"  RSS: {run['rss_before_kib'] / mib:.1f} MiB before, "
        f"{run['rss_after_loop_kib'] / mib:.1f} MiB after the loop, "
        f"max {run['rss_max_kib'] / mib:.1f} MiB "
        f"(growth {growth / mib:+.1f} MiB = {growth / max(count, 1):.2f} KiB/decision)"
    )


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000, help="alternating calls per input")
    parser.add_argument("--warmup", type=int, default=200, help="warm-up calls per input")
    parser.add_argument("--steps", type=int, default=500, help="rounds of the step breakdown")
    parser.add_argument(
        "--sustained", type=int, default=10_000, help="sustained each-mode predictions (0: none)"
    )
    parser.add_argument("--window", type=float, default=10.0, help="write-back watch, seconds")
    parser.add_argument("--loads", type=int, default=5, help="loads per contender")
    parser.add_argument("--budget", type=float, default=60.0, help="overhead phases, seconds")
    parser.add_argument(
        "--decisions",
        choices=["both", *MODES],
        default="both",
        help="decision modes to measure (the targets are batch's)",
    )
    parser.add_argument(
        "--sustained-budget", type=float, default=120.0, help="sustained loop, seconds at most"
    )
    parser.add_argument(
        "--no-trace-predictions",
        action="store_true",
        help="VerifiedModel(trace_predictions=False): no MLflow trace per decision",
    )
    parser.add_argument("--inprocess-gateway", action="store_true", help="gateway in-process")
    parser.add_argument(
        "--background", choices=["process", "thread"], default=None, help="VerifiedModel mode"
    )
    parser.add_argument("--dir", default=None, help="where to create the temporary directory")
    parser.add_argument("--sync-child", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


class ErrorCounter(logging.Handler):
    """Counts the product's error log records (e.g. upload worker errors) by cause.

    Installed instead of printing them: a worker that hits ``database is locked`` logs a
    traceback every second, which would bury the report.
    """

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.kinds: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        cause = record.exc_info[1] if record.exc_info else None
        what = f"{type(cause).__name__}: {cause}" if cause else record.getMessage()
        key = f"{record.getMessage()[:40]} ({what[:60]})"
        self.kinds[key] = self.kinds.get(key, 0) + 1


def measure(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    """Every phase, each on a fresh journal; the numbers for the report."""
    modes = selected_modes(args)
    features = train_and_register()
    print(f"trained, anchored, registered: {time.perf_counter() - STARTED:.0f} s", flush=True)

    def new_journal(label: str) -> object:
        return fresh_home(scratch, label)

    latency = overhead(
        MODEL_URI,
        features,
        args.rows,
        args.warmup,
        modes=modes,
        budget=args.budget,
        new_journal=new_journal,
    )
    latency_ratios(latency, modes)
    step_failures = Failures()
    try:
        steps = breakdown(
            MODEL_URI,
            features,
            args.steps,
            modes=modes,
            budget=args.budget / 3,
            failures=step_failures,
            new_journal=new_journal,
        )
    except AttributeError as exc:  # it reaches into VerifiedModel's private parts
        print(f"step breakdown unavailable (VerifiedModel changed?): {exc}")
        steps = {}
    print(f"overhead measured: {time.perf_counter() - STARTED:.0f} s", flush=True)
    run = None
    if "each" in modes and args.sustained > 0:
        fresh_home(scratch, "sustained")
        run = sustained(
            MODEL_URI,
            features,
            args.sustained,
            window=args.window,
            budget=args.sustained_budget,
            drain_timeout=max(30.0, args.budget / 2),
        )
        print(f"sustained run done: {time.perf_counter() - STARTED:.0f} s", flush=True)
    fresh_home(scratch, "load")
    loads = load_overhead(MODEL_URI, args.loads)
    return {
        "latency": latency,
        "steps": steps,
        "step_failures": step_failures,
        "run": run,
        "loads": loads,
    }


def selected_modes(args: argparse.Namespace) -> tuple[str, ...]:
    """The decision modes of ``--decisions``."""
    return MODES if args.decisions == "both" else (args.decisions,)


def latency_verdict(latency: dict[str, dict[str, Any]]) -> tuple[bool, list[str]]:
    """Whether ``batch`` meets every latency target; one line per target."""
    lines, met = [], True
    for kind, target in TARGET_MEDIAN.items():
        ratio = latency[kind]["ratio"]["batch"]
        for what, value, limit in (
            ("median", ratio["median"], target),
            ("p99", ratio["p99"], TARGET_P99),
        ):
            ok = value <= limit
            met = met and ok
            lines.append(
                f"target batch {kind} {what} <= {limit:.2f}x: {'met' if ok else 'MISSED'} "
                f"({value:.2f}x, {value - limit:+.2f})"
            )
    return met, lines


def report(args: argparse.Namespace, results: dict[str, Any], errors: ErrorCounter) -> bool:
    """Print the results; whether every target is met and every check passed."""
    latency, run, loads = results["latency"], results["run"], results["loads"]
    modes = selected_modes(args)
    print_latency(latency, results["steps"], modes)
    print(f"  (sink failures during the breakdown: {results['step_failures'].describe()})")
    if run is not None:
        print_sustained(run)
    print(
        f"load: plain {loads['plain'] * 1000:.0f} ms, VerifiedModel "
        f"{loads['verified'] * 1000:.0f} ms, overhead "
        f"{(loads['verified'] - loads['plain']) * 1000:+.0f} ms "
        f"({loads['verified'] / loads['plain']:.2f}x)"
    )
    print(f"product errors logged (by the companion / workers, mostly): {errors.kinds or 'none'}")
    failed = sum(f.count for p in latency.values() for f in p["failures"].values())
    ok = True
    if "batch" in modes:
        ok, lines = latency_verdict(latency)
        for line in lines:
            print(line)
    if run is not None:
        anchored = run["after_sync"].get("uploaded", 0)
        failed += run["failures"].count
        ok = ok and anchored == run["count"]
        print(f"each: all {run['count']} sustained decisions anchored: {anchored == run['count']}")
    print(f"failed predicts: {failed}")
    return ok and not failed


STARTED = time.perf_counter()


def main() -> int:
    args = parse_args()
    sys.path.insert(0, str(SOURCE_ROOT))
    if args.sync_child:
        sync_child()
        return 0
    warnings.filterwarnings("ignore")  # sklearn's feature-name warning, MLflow deprecations
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    errors = ErrorCounter()
    product_logger = logging.getLogger("ario_mlflow")
    product_logger.addHandler(errors)
    product_logger.propagate = False
    if args.background:
        MODEL_OPTIONS["background"] = args.background
    if args.no_trace_predictions:
        MODEL_OPTIONS["trace_predictions"] = False

    scratch = Path(tempfile.mkdtemp(prefix="ario-bench-predict-", dir=args.dir))
    cwd = os.getcwd()
    try:
        with environment(scratch, args.inprocess_gateway) as url:
            where = "in-process" if args.inprocess_gateway else "subprocess"
            fixes = f"background={args.background or 'process (default)'}"
            if args.no_trace_predictions:
                fixes += ", trace_predictions=False"
            load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
            print(f"local gateway ({where}) at {url}; {fixes}; load average {load}", flush=True)
            results = measure(args, scratch)
    finally:
        os.chdir(cwd)
        shutil.rmtree(scratch, ignore_errors=True)
    ok = report(args, results, errors)
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"cpu count {os.cpu_count()}, rows {args.rows}, warm-up {args.warmup}, "
        f"total {time.perf_counter() - STARTED:.0f} s, load average {load}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
