"""Shared fixtures: the conformance vectors, and an isolated $ARIO_MLFLOW_HOME."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: The conformance corpus, a copy of ``../shared/vectors`` kept in the repository so a fresh
#: clone runs the tests (``tests/test_vectors_copy.py`` keeps the copy from drifting).
IN_REPO_VECTORS = PROJECT_ROOT / "tests" / "vectors"
VECTORS_DIR = Path(os.environ.get("ARIO_MLFLOW_VECTORS") or IN_REPO_VECTORS)

#: Where a test that names no upload service or gateway sends its requests: the discard
#: port on loopback, which nothing here listens on (never the public network).
CLOSED_PORT_URL = "http://127.0.0.1:9"
#: ``ARIO_MLFLOW_*`` variables that configure the test harness, not the product.
_HARNESS_VARIABLES = frozenset(
    {"ARIO_MLFLOW_CHROMIUM", "ARIO_MLFLOW_VECTORS", "ARIO_MLFLOW_REPORT_SCREENSHOTS"}
)


#: Fixtures that make a test slow: a real MLflow store (MLflow, a trained model), an MLflow
#: server process, Chromium, the demo. Such tests are marked ``slow`` automatically, so
#: ``pytest -m "not slow"`` is the quick loop (the pure kernel, codecs, clients over the
#: local gateway, the outbox).
SLOW_FIXTURES = frozenset(
    {
        "mlflow_store",
        "demo_dir",
        "browser",
        "open_page",
        "auth_server",
        "mlflow_server",
        "lifecycle",
        "prod_stack",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def vectors_dir() -> Path:
    """``tests/vectors`` (or ``$ARIO_MLFLOW_VECTORS``); a missing corpus is an error, not a skip."""
    if not VECTORS_DIR.is_dir():
        pytest.fail(f"conformance vectors not found at {VECTORS_DIR}")
    return VECTORS_DIR


@pytest.fixture(scope="session")
def arweave_jwk() -> dict[str, str]:
    """One RSA-4096 Arweave JWK per test session (generating one takes about a second)."""
    from ario_mlflow.arweave.wallet import generate_arweave_jwk

    return generate_arweave_jwk()


@pytest.fixture(autouse=True)
def ario_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty $ARIO_MLFLOW_HOME, none of the user's settings, and
    its own working directory."""
    home = tmp_path_factory.mktemp("ario-home")
    for name in list(os.environ):
        if name.startswith("ARIO_MLFLOW_") and name not in _HARNESS_VARIABLES:
            monkeypatch.delenv(name)
    monkeypatch.setenv("ARIO_MLFLOW_HOME", str(home))
    # the network defaults (Turbo mainnet, arweave.net) are never reached from a test: a
    # test that names no service talks to a closed loopback port
    for name in ("ARIO_MLFLOW_UPLOAD_URL", "ARIO_MLFLOW_GATEWAY_HOST", "ARIO_MLFLOW_GATEWAYS"):
        monkeypatch.setenv(name, CLOSED_PORT_URL)
    # and its own working directory: a default store (./mlflow.db, ./mlruns) never lands
    # in the repository
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    return home


# --- the local gateway over real HTTP -------------------------------------------------

GATEWAY_WALLET = "gateway-wallet.json"


@pytest.fixture(scope="session")
def gateway_key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One RSA key for every test gateway (generating a key per test would be slow)."""
    from ario_mlflow.localgw import LocalGateway

    directory = tmp_path_factory.mktemp("gateway-key")
    LocalGateway(directory, key_bits=2048).start().stop()
    return directory / GATEWAY_WALLET


@pytest.fixture
def gateway_dir(tmp_path_factory: pytest.TempPathFactory, gateway_key_file: Path) -> Path:
    """A fresh gateway data directory holding the shared test key."""
    directory = tmp_path_factory.mktemp("gateway")
    shutil.copy2(gateway_key_file, directory / GATEWAY_WALLET)
    return directory


@pytest.fixture
def fast_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short timeouts and deadline so fault tests finish quickly."""
    monkeypatch.setenv("ARIO_MLFLOW_CONNECT_TIMEOUT", "1")
    monkeypatch.setenv("ARIO_MLFLOW_READ_TIMEOUT", "2")
    monkeypatch.setenv("ARIO_MLFLOW_ANCHOR_DEADLINE", "2")


@pytest.fixture
def local_gateway(
    gateway_dir: Path, monkeypatch: pytest.MonkeyPatch, fast_network: None
) -> Iterator[Any]:
    """A running local gateway that ARIO_MLFLOW_UPLOAD_URL and the gateways point at."""
    from ario_mlflow.localgw import LocalGateway

    gateway = LocalGateway(gateway_dir, key_bits=2048).start()
    monkeypatch.setenv("ARIO_MLFLOW_UPLOAD_URL", gateway.url)
    monkeypatch.setenv("ARIO_MLFLOW_GATEWAY_HOST", gateway.url)
    monkeypatch.setenv("ARIO_MLFLOW_GATEWAYS", gateway.url)
    yield gateway
    gateway.stop()


@pytest.fixture(autouse=True)
def _stop_upload_workers() -> Iterator[None]:
    """Upload workers are per process and per journal: stop them after each test."""
    yield
    companion = sys.modules.get("ario_mlflow.outbox.companion")
    if companion is not None:
        companion.stop_companions()
    uploader = sys.modules.get("ario_mlflow.outbox.workers")
    if uploader is not None:
        uploader.stop_all_workers(timeout=1.0)  # a thread mid-attempt finishes on its own


# --- a real MLflow store ----------------------------------------------------------------


@pytest.fixture(scope="session")
def store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty sqlite tracking store with MLflow's tables, made once: running MLflow's
    migrations takes most of a second, copying the file a few milliseconds
    (``tests.support.lifecycle.copy_store``)."""
    import mlflow

    directory = tmp_path_factory.mktemp("mlflow-template")
    path = directory / "mlflow.db"
    # MLflow 2 runs alembic's logging.config.fileConfig while it creates the tables,
    # which replaces the root logger's handlers: keep pytest's.
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments(max_results=1)
    root.handlers[:], root.level = handlers, level
    mlflow.set_tracking_uri(None)
    return path


@pytest.fixture
def mlflow_store(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, store_template: Path
) -> Iterator[str]:
    """A fresh sqlite tracking store (artifacts beside it); returns the tracking URI."""
    import mlflow

    from tests.support.lifecycle import copy_store, release_store

    directory = tmp_path_factory.mktemp("mlflow")
    monkeypatch.chdir(directory)
    uri = copy_store(store_template, directory)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    # a command run in this process may have set an experiment of an earlier store
    monkeypatch.setattr(mlflow.tracking.fluent, "_active_experiment_id", None, raising=False)
    yield uri
    release_store(uri)


# --- the production stack: PostgreSQL + S3 behind mlflow server ---------------------


@pytest.fixture(scope="session")
def prod_stack() -> Iterator[Any]:
    """PostgreSQL, moto's S3 server and ``mlflow server`` on loopback, one stack per
    session (per xdist worker), stopped by PID at the end (``tests.support.prod_stack``).
    Never skipped: if PostgreSQL or moto is not installed, the test fails saying what to
    install."""
    from tests.support.prod_stack import ProdStack, StackUnavailable

    try:
        stack = ProdStack.start()
    except StackUnavailable as exc:
        problem = str(exc)
    else:
        problem = None
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    yield stack
    stack.stop()


# --- the repository stays clean -----------------------------------------------------

_STRAY = ("mlflow.db", "mlruns", "mlartifacts")


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_stray_key] = {
        name for name in _STRAY if (session.config.rootpath / name).exists()
    }


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if a test left a default MLflow store in the repository (a trace
    exported after its test, a command run in the wrong directory)."""
    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller checks
        return
    before = session.config.stash.get(_stray_key, set())
    left = [n for n in _STRAY if (session.config.rootpath / n).exists() and n not in before]
    if left:
        session.config.get_terminal_writer().line(
            f"a test left {', '.join(left)} in {session.config.rootpath}", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_stray_key = pytest.StashKey[set[str]]()
