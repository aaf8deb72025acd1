"""Real MLflow lifecycle steps shared by the registry, model and verification tests.

The steps compose: :func:`train` a run (data, model, anchored), :func:`register` it with
``ArioMlflowClient`` (waiting for the anchors), :func:`set_alias`, :func:`decide` with
``VerifiedModel``, :func:`sync`. They work on whatever this process points at: a test's
``mlflow_store`` and ``local_gateway``, or a :class:`Sandbox` (a world of its own, for a
module to build once: :func:`sandbox`, :func:`copy_store`, :func:`inside`, and
:func:`copy_sandbox` for each test that changes it).
"""

from __future__ import annotations

import base64
import contextlib
import inspect
import json
import os
import shutil
import sqlite3
import threading
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from ario_mlflow.lifecycle.training import anchor

if TYPE_CHECKING:
    import pytest

    from ario_mlflow.lifecycle.registry import ArioMlflowClient
    from ario_mlflow.lifecycle.serving import VerifiedPrediction
    from ario_mlflow.localgw import LocalGateway

FEATURES = pd.DataFrame(
    np.random.default_rng(11).random((40, 3)), columns=["income", "debt", "age"]
)
LABELS = (FEATURES["income"] > 0.5).astype(int)

#: MLflow 3 stores models as LoggedModels (``models:/m-<id>``); MLflow 2 inside the run.
HAS_LOGGED_MODELS = hasattr(mlflow.MlflowClient, "get_logged_model")
#: Why a test that needs LoggedModels does not run on MLflow 2.
NEEDS_LOGGED_MODELS = "MLflow 2 has no LoggedModels (models:/m-<id>)"


def log_sklearn_model(model: Any, name: str, **kwargs: Any) -> Any:
    """``mlflow.sklearn.log_model`` under ``name``: MLflow 3 calls it ``name=``, MLflow 2
    ``artifact_path=`` (both land at ``runs:/<run>/<name>``)."""
    accepted = inspect.signature(mlflow.sklearn.log_model).parameters
    key = "name" if "name" in accepted else "artifact_path"
    return mlflow.sklearn.log_model(model, **{key: name}, **kwargs)


@dataclass(frozen=True)
class Trained:
    """A run with a logged (and, unless asked otherwise, anchored) model."""

    run_id: str
    model_uri: str
    anchored: dict[str, Any] | None


def train(*, anchored: bool = True, model_name: str = "model") -> Trained:
    """Train a small classifier in a new run, log its data and model, and anchor it."""
    with mlflow.start_run() as run:
        dataset = mlflow.data.from_pandas(FEATURES, source="s3://bank/train.parquet", name="train")
        mlflow.log_input(dataset, context="training")
        mlflow.log_param("C", 1.0)
        mlflow.log_metric("accuracy", 0.93)
        model = LogisticRegression().fit(FEATURES, LABELS)
        info = log_sklearn_model(model, model_name, pip_requirements=["scikit-learn"])
        result = anchor() if anchored else None
    return Trained(run.info.run_id, info.model_uri, result)


def register(name: str, *runs: Trained) -> ArioMlflowClient:
    """Create the registered model ``name`` with ``ArioMlflowClient`` and one version per
    run (1, 2, ...), then wait for each registration to be anchored; the client."""
    from ario_mlflow.lifecycle.registry import ArioMlflowClient

    client = ArioMlflowClient()
    client.create_registered_model(name)
    versions = [
        client.create_model_version(name, trained.model_uri, run_id=trained.run_id).version
        for trained in runs
    ]
    for version in versions:
        assert client.wait_for_anchor("registration", name, version, timeout=30)
    return client


def set_alias(
    client: ArioMlflowClient, name: str, alias: str, version: str, *, wait: bool = True
) -> None:
    """Point ``name@alias`` at ``version`` and (unless ``wait=False``) wait for the
    alias record to be anchored."""
    client.set_registered_model_alias(name, alias, version)
    if wait:
        assert client.wait_for_anchor("alias", name, alias, timeout=30)


def decide(model_uri: str, count: int = 3, **options: Any) -> list[VerifiedPrediction]:
    """``count`` decisions of ``VerifiedModel(model_uri, **options)``, one per row of
    :data:`FEATURES` from the first, each waited for until anchored. A record apiece
    (``decisions="each"``) unless ``options`` say ``decisions="batch"``: the callers are
    the attack suites written for per-decision records and their traces."""
    from ario_mlflow.lifecycle.serving import VerifiedModel

    options.setdefault("decisions", "each")
    model = VerifiedModel(model_uri, **options)
    made = [model.predict(FEATURES.iloc[[row]]) for row in range(count)]
    assert all(decision.wait_for_anchor(30) for decision in made)
    return made


def sync(*, attempts: int = 1) -> bool:
    """Sync the journal (witnesses, trace mirrors, tags written back) until one pass is
    complete, at most ``attempts`` passes; whether one was."""
    from ario_mlflow.outbox.anchor import ArweaveAnchor
    from ario_mlflow.outbox.sync import sync_journal

    return any(sync_journal(ArweaveAnchor().journal).complete for _ in range(attempts))


def stop_background() -> None:
    """Stop this process's companions and upload workers (nothing writes afterwards)."""
    from ario_mlflow.outbox import companion
    from ario_mlflow.outbox import workers as uploader

    companion.stop_companions()
    uploader.stop_all_workers()


# --- a world of its own: directory, store, home, gateway --------------------------------

#: Short network timeouts and anchor deadline, so that fault tests finish quickly.
FAST_NETWORK = {
    "ARIO_MLFLOW_CONNECT_TIMEOUT": "1",
    "ARIO_MLFLOW_READ_TIMEOUT": "2",
    "ARIO_MLFLOW_ANCHOR_DEADLINE": "2",
}


def copy_store(template: Path, directory: Path) -> str:
    """A sqlite tracking store at ``directory/mlflow.db``, a copy of ``template`` (an
    empty store made once: MLflow's migrations take most of a second, a copy milliseconds)
    whose default experiment keeps its artifacts beside it; its tracking URI."""
    database = directory / "mlflow.db"
    shutil.copyfile(template, database)
    with contextlib.closing(sqlite3.connect(database)) as db, db:
        db.execute(
            "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
            (str(directory / "mlruns" / "0"),),
        )
    return f"sqlite:///{database}"


def release_store(uri: str | None = None) -> None:
    """Let go of the tracking store this process points at: end its runs, wait for the
    traces MLflow still exports in the background (else they land later in a default
    store in whatever the working directory is then), forget the URI and close the
    connections MLflow caches for ``uri`` (a file descriptor or more per store)."""
    from mlflow.store.tracking import sqlalchemy_store

    while mlflow.active_run() is not None:
        mlflow.end_run()
    flush = getattr(mlflow, "flush_trace_async_logging", None)
    if flush is not None:
        flush()
    mlflow.set_tracking_uri(None)
    if uri is None:
        return
    store = sqlalchemy_store.SqlAlchemyStore
    engines = getattr(store, "_engine_map", None) or getattr(
        store, "_db_uri_sql_alchemy_engine_map", None
    )
    if isinstance(engines, dict):
        engine = engines.pop(uri, None)
        if engine is not None:
            engine.dispose()


def start_gateway(directory: Path, key_file: Path) -> LocalGateway:
    """A running local gateway keeping its data in ``directory`` and signing with the
    session's shared key (``key_file``: generating a key per gateway would be slow)."""
    from ario_mlflow.localgw import LocalGateway

    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy2(key_file, directory / key_file.name)
    return LocalGateway(directory, key_bits=2048).start()


@dataclass(frozen=True)
class Sandbox:
    """A world of its own: ``root`` holds the tracking store (``mlflow.db``, artifacts
    beside it) and ``$ARIO_MLFLOW_HOME`` (``home``); ``gateway`` (kept outside ``root``)
    is its upload service and read gateway."""

    root: Path
    gateway: LocalGateway

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    def settings(self, *, fast: bool = True) -> dict[str, str]:
        """The environment naming this world's home, store and gateway (with
        :data:`FAST_NETWORK` unless ``fast=False``: the product's own timeouts)."""
        url = self.gateway.url
        return {
            "ARIO_MLFLOW_HOME": str(self.home),
            "ARIO_MLFLOW_UPLOAD_URL": url,
            "ARIO_MLFLOW_GATEWAY_HOST": url,
            "ARIO_MLFLOW_GATEWAYS": url,
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            **(FAST_NETWORK if fast else {}),
        }

    def process_env(self, *, fast: bool = False) -> dict[str, str]:
        """The environment of a process run in this world: this one's without any
        ``ARIO_MLFLOW_*`` setting or tracking URI, plus :meth:`settings`."""
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("ARIO_MLFLOW_") and k != "MLFLOW_TRACKING_URI"
        }
        return {**base, **self.settings(fast=fast)}

    def signing_key(self) -> Any:
        """The Ed25519 key this world's records were signed with (from its home)."""
        from ario_mlflow.proof.ed25519 import signing_key_from_seed

        document = json.loads((self.home / "keys" / "ed25519_private.json").read_text())
        return signing_key_from_seed(base64.b64decode(document["seed"]))


@contextlib.contextmanager
def sandbox(
    tmp_path_factory: pytest.TempPathFactory, name: str, key_file: Path
) -> Iterator[Sandbox]:
    """A new, empty :class:`Sandbox` in temporary directories named after ``name``; its
    gateway stops on exit."""
    root = tmp_path_factory.mktemp(name)
    gateway = start_gateway(tmp_path_factory.mktemp(f"{name}-gateway"), key_file)
    try:
        yield Sandbox(root, gateway)
    finally:
        gateway.stop()


@contextlib.contextmanager
def inside(world: Sandbox, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """This process pointed at ``world``: its root as the working directory, its
    :meth:`~Sandbox.settings` (and no pinned keys) in the environment (``monkeypatch``
    undoes both), MLflow's tracking URI (reset on exit); yields the tracking URI."""
    monkeypatch.chdir(world.root)
    monkeypatch.delenv("ARIO_MLFLOW_TRUSTED_KEYS", raising=False)
    for name, value in world.settings().items():
        monkeypatch.setenv(name, value)
    mlflow.set_tracking_uri(world.tracking_uri)
    try:
        yield world.tracking_uri
    finally:
        release_store(world.tracking_uri)


def copy_sandbox(world: Sandbox, root: Path) -> Sandbox:
    """A private copy of ``world``'s directory at ``root``, sharing its gateway (``world``
    must be at rest: no worker writing). The copy's store is pointed at its own files (the
    store records absolute artifact paths), and MLflow forgets the artifact repositories it
    cached for the original's runs."""
    shutil.copytree(world.root, root)
    _repoint_store(root / "mlflow.db", str(world.root), str(root))
    _forget_artifact_repositories()
    return Sandbox(root, world.gateway)


def _repoint_store(database: Path, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` in every text value of a sqlite database."""
    with contextlib.closing(sqlite3.connect(database)) as connection, connection:
        tables = [
            r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        for table in tables:
            for column in [r[1] for r in connection.execute(f'PRAGMA table_info("{table}")')]:
                connection.execute(
                    f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) '
                    f'WHERE typeof("{column}") = \'text\' AND instr("{column}", ?) > 0',
                    (old, new, old),
                )


def _forget_artifact_repositories() -> None:
    """MLflow 2 caches each run's artifact repository by run id, process-wide: a copy
    holds the same runs elsewhere, so the cache would read the original's files."""
    from mlflow.tracking._tracking_service import utils

    cache = getattr(utils, "_artifact_repos_cache", None)
    if cache is not None:
        cache.clear()


def product_threads(earlier: Collection[threading.Thread] = ()) -> int:
    """Threads of this process except the in-process test gateway's request handlers and
    the ``earlier`` ones (left by previous tests: MLflow 2 keeps a thread pool per cached
    artifact repository, one per store those tests used)."""
    return sum(
        1
        for t in threading.enumerate()
        if "process_request_thread" not in (t.name or "") and t not in earlier
    )


def trace_id_of(trace: Any) -> str:
    """A trace's id: ``info.trace_id`` on MLflow 3, ``info.request_id`` on MLflow 2."""
    info = trace.info
    return str(getattr(info, "trace_id", None) or info.request_id)


def model_files(model_uri: str) -> list[str]:
    """Local paths of a logged model's files (the local store keeps them in place)."""
    root = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def model_location(model_uri: str, client: Any = None) -> str:
    """Where MLflow stored a logged model: the LoggedModel's artifact location for
    ``models:/m-<id>`` (MLflow 3), ``<run artifact URI>/<path>`` for ``runs:/`` (MLflow 2)."""
    client = client or mlflow.MlflowClient()
    if model_uri.startswith("runs:/"):
        run_id, _, path = model_uri[len("runs:/") :].lstrip("/").partition("/")
        return f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{path}"
    model_id = model_uri.rsplit("/", maxsplit=1)[-1]
    return str(client.get_logged_model(model_id).artifact_location)


def local_model_dir(model_uri: str) -> Path:
    """The on-disk directory MLflow serves the model from (sqlite store, local artifacts)."""
    from urllib.parse import urlparse

    location = model_location(model_uri)
    parsed = urlparse(location)
    return Path(parsed.path if parsed.scheme == "file" else location)


def serialized_model(directory: Path) -> Path:
    """The sklearn model file in a model directory: ``model.skops`` (MLflow 3's default
    format) or ``model.pkl`` (MLflow 2's cloudpickle)."""
    found = [directory / n for n in ("model.skops", "model.pkl") if (directory / n).is_file()]
    assert len(found) == 1, f"expected one serialized model in {directory}, found {found}"
    return found[0]


def journal_one_record(arweave: Any) -> str:
    """Sign a small dataset record into ``arweave``'s journal (no MLflow); its TX id."""
    from ario_mlflow.engine import ProofEngine

    envelope = ProofEngine().create_commitment(
        event_type="dataset",
        subject={"type": "mlflow_dataset"},
        payload_bytes=b"d",
        previous_hash="GENESIS",
    )
    return str(arweave.journal_proof(envelope).tx_id)


def spooled_leaf(stream: Mapping[str, Any], seq: int) -> tuple[str, int, str, bytes, str]:
    """Decision ``seq`` of ``stream`` (a stream header) as ingestion journals it:
    ``(stream id, seq, decision id, payload bytes, decided_at)``, made by the product's
    own ``DecisionLeaves`` with fixed fingerprints."""
    from ario_mlflow.proof.decisions import DecisionLeaves

    leaf = DecisionLeaves(
        model_name=stream["model_name"],
        model_version=stream["model_version"],
        run_id=stream["run_id"],
        model_uri=stream["model_uri"],
        artifact_verified=True,
        stream_id=stream["stream_id"],
    ).leaf(
        decision_id=f"00000000-0000-4000-8000-{seq:012d}",
        input_hash="sha256:" + "1" * 64,
        output_hash="sha256:" + "2" * 64,
        latency_ms=1.0,
        sequence=seq,
        decided_at="2026-12-05T12:00:00+00:00",
    )
    payload = leaf.payload
    return (
        stream["stream_id"],
        seq,
        payload["decision_id"],
        leaf.payload_bytes,
        payload["decided_at"],
    )
