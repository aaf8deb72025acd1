"""Artifact hashing and artifact-path resolution, on real MLflow.

Two stores: a sqlite tracking store with artifacts in a local directory (hashed in place)
and a real ``mlflow server`` subprocess that proxies artifacts over HTTP (hashed through a
temporary download that must disappear). Expected hashes are always computed here
independently, with plain ``hashlib`` over the files MLflow wrote.
"""

from __future__ import annotations

import hashlib
import json
import os
import pty
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ario_mlflow.errors import ArioError, ArtifactAccessError
from ario_mlflow.lifecycle import artifacts
from ario_mlflow.lifecycle.artifacts import (
    ChecksumDiff,
    artifact_checksums,
    artifact_hash,
    compare_checksums,
    hash_directory,
    logged_model_paths,
    model_uri_checksums,
    parse_runs_uri,
    resolve_artifact_path,
)
from tests.support.lifecycle import (
    HAS_LOGGED_MODELS,
    local_model_dir,
    log_sklearn_model,
    model_location,
    release_store,
)
from tests.support.mlflow_server import MlflowServer

_QUIET_MLFLOW = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
}


# --- independent reference computations --------------------------------------------------


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def expected_tree(root: Path) -> dict[str, str]:
    """What the map must be: every file under root except registered_model_meta."""
    return {
        p.relative_to(root).as_posix(): sha256_file(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "registered_model_meta"
    }


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A model-like directory: nested dirs, a multi-chunk file, registered_model_meta twice."""
    root = tmp_path / "model"
    write(root / "MLmodel", b"flavors: {}\n")
    write(root / "model.pkl", os.urandom(3 * artifacts.CHUNK_SIZE + 12345))
    write(root / "empty.bin", b"")
    write(root / "sub" / "deeper" / "weights.bin", os.urandom(70_000))
    write(root / "sub" / "notes.txt", "naïve 🌍".encode())
    write(root / "registered_model_meta", b"model_name: x\n")
    write(root / "sub" / "registered_model_meta", b"model_name: y\n")
    return root


# --- pure functions ----------------------------------------------------------------------


def test_aggregate_hash_matches_the_reference_vector() -> None:
    checksums = {"MLmodel": "a" * 64, "model.pkl": "b" * 64}
    assert (
        artifact_hash(checksums)
        == "3f694eb865df75d062564f8da221eefbea6f2ca8d03a7ed4ee7b28925200984d"
    )
    assert artifact_hash(dict(reversed(list(checksums.items())))) == artifact_hash(checksums)
    assert artifact_hash({}) is None


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (None, (None, None)),
        ("", (None, None)),
        ("models:/m-123", (None, None)),
        ("s3://bucket/runs:/abc", (None, None)),
        ("runs:/", (None, None)),
        ("runs:/abc", ("abc", None)),
        ("runs:/abc/", ("abc", None)),
        ("runs:/abc/model", ("abc", "model")),
        ("runs:/abc/nested/path", ("abc", "nested/path")),
        ("runs:///abc/nested/path", ("abc", "nested/path")),
    ],
)
def test_parse_runs_uri(source: str | None, expected: tuple[str | None, str | None]) -> None:
    assert parse_runs_uri(source) == expected


def test_compare_checksums_names_every_difference() -> None:
    expected = {"MLmodel": "1" * 64, "model.pkl": "2" * 64, "gone.txt": "3" * 64}
    actual = {"MLmodel": "1" * 64, "model.pkl": "f" * 64, "z.txt": "4" * 64, "a.txt": "5" * 64}
    diff = compare_checksums(expected, actual)
    assert diff == ChecksumDiff(
        changed=["model.pkl"], missing=["gone.txt"], added=["a.txt", "z.txt"]
    )
    assert not diff.ok
    assert diff.describe() == "changed: model.pkl; missing: gone.txt; added: a.txt, z.txt"
    assert "(+1 more)" in diff.describe(limit=1)
    same = compare_checksums(expected, dict(expected))
    assert same.ok
    assert same.describe() == "no differences"


# --- hash_directory: the local core ------------------------------------------------------


def test_hash_directory_equals_independent_hashlib(tree: Path) -> None:
    result = hash_directory(tree)
    assert result == expected_tree(tree)
    assert list(result) == sorted(result)
    assert "sub/deeper/weights.bin" in result  # "/" keys at any depth
    assert not any(key.endswith("registered_model_meta") for key in result)
    assert result["empty.bin"] == hashlib.sha256(b"").hexdigest()


def test_parallel_result_equals_sequential(tree: Path) -> None:
    for index in range(30):  # enough files that completion order varies between threads
        write(tree / "many" / f"f{index:02d}.bin", os.urandom(1000 + index * 5000))
    sequential = hash_directory(tree, workers=1)
    assert hash_directory(tree, workers=4) == sequential
    assert hash_directory(tree, workers=64) == sequential
    assert sequential == expected_tree(tree)
    with pytest.raises(ValueError, match="workers"):
        hash_directory(tree, workers=0)


def test_progress_callback_reaches_total_monotonically(tree: Path) -> None:
    calls: list[tuple[int, int]] = []
    hash_directory(tree, progress=lambda done, total: calls.append((done, total)), workers=3)
    total = (
        sum(p.stat().st_size for p in tree.rglob("*") if p.is_file()) - len(b"model_name: x\n") * 2
    )
    assert calls[-1] == (total, total)
    assert all(t == total for _, t in calls)
    dones = [d for d, _ in calls]
    assert dones == sorted(dones)
    assert len(calls) >= 4  # the 3-chunk file alone reports per chunk


def test_progress_callback_gets_a_final_call_for_empty_trees(tmp_path: Path) -> None:
    write(tmp_path / "only" / "empty", b"")
    calls: list[tuple[int, int]] = []
    assert hash_directory(tmp_path / "only", progress=lambda d, t: calls.append((d, t))) == {
        "empty": hashlib.sha256(b"").hexdigest()
    }
    assert calls == [(0, 0)]


def test_single_file_is_hashed_under_its_basename(tree: Path) -> None:
    assert hash_directory(tree / "sub" / "notes.txt") == {
        "notes.txt": sha256_file(tree / "sub" / "notes.txt")
    }
    assert hash_directory(tree / "registered_model_meta") == {}


def test_missing_directory_raises_artifact_access_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactAccessError, match="does not exist") as info:
        hash_directory(tmp_path / "nope")
    assert isinstance(info.value, ArioError)
    assert isinstance(info.value, RuntimeError)


def test_symlinks_are_followed_and_cycles_do_not_hang(tree: Path, tmp_path: Path) -> None:
    outside = write(tmp_path / "outside" / "blob.bin", b"linked content")
    (tree / "link.bin").symlink_to(outside)
    (tree / "sub" / "loop").symlink_to(tree, target_is_directory=True)
    (tree / "dangling").symlink_to(tmp_path / "missing")
    result = hash_directory(tree)
    assert result["link.bin"] == sha256_file(outside)
    # a link back to an ancestor is a cycle: never entered
    assert not any(key.startswith("sub/loop/") for key in result)
    assert "dangling" not in result
    # a directory linked from elsewhere (no cycle) is hashed there too, like a copy would be
    (tree / "alias").symlink_to(tree / "sub", target_is_directory=True)
    again = hash_directory(tree)
    assert again["alias/deeper/weights.bin"] == again["sub/deeper/weights.bin"]


def test_file_vanishing_mid_hash_is_an_artifact_access_error(tree: Path) -> None:
    victim = tree / "sub" / "notes.txt"

    def remove_victim(done: int, total: int) -> None:
        victim.unlink(missing_ok=True)  # the big file is hashed first (largest first)

    with pytest.raises(ArtifactAccessError, match=r"cannot read 'sub/notes.txt'"):
        hash_directory(tree, progress=remove_victim, workers=1)


def test_progress_bar_is_drawn_on_a_terminal(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pty stands in for the user's terminal: the rich bar must appear there."""
    master, slave = pty.openpty()
    terminal = os.fdopen(slave, "w", buffering=1, encoding="utf-8")
    try:
        monkeypatch.setattr(sys, "stderr", terminal)
        monkeypatch.setenv("TERM", "xterm-256color")
        monkeypatch.delenv("NO_COLOR", raising=False)
        monkeypatch.setattr(artifacts, "PROGRESS_BAR_MIN_BYTES", 1024)
        assert hash_directory(tree) == expected_tree(tree)
        terminal.flush()
        os.set_blocking(master, False)
        drawn = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        terminal.close()
        os.close(master)
    assert b"hashing artifacts" in drawn


def test_no_progress_bar_below_the_threshold_or_off_a_terminal(tree: Path) -> None:
    assert artifacts._want_bar(10, None) is False
    assert artifacts._want_bar(artifacts.PROGRESS_BAR_MIN_BYTES, None) is sys.stderr.isatty()
    assert artifacts._want_bar(10, True) is True
    # forcing the bar off a terminal still hashes correctly
    assert hash_directory(tree, show_progress=True) == expected_tree(tree)


# --- a real local MLflow store (sqlite + local artifact directory) -------------------------


@dataclass
class LocalStore:
    tracking_uri: str
    experiment_id: str
    artifact_root: Path
    client: Any


@pytest.fixture(scope="module")
def local_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStore]:
    """One sqlite store per module (creating its tables takes seconds)."""
    base = tmp_path_factory.mktemp("mlflow-local")
    tracking_uri = f"sqlite:///{base}/mlflow.db"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in _QUIET_MLFLOW.items():
            patch.setenv(name, value)
        patch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri)
        root = base / "artifacts"
        experiment_id = client.create_experiment("artifacts", artifact_location=str(root))
        yield LocalStore(tracking_uri, experiment_id, root, client)


def _use_tracking_uri(uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point MLflow at ``uri`` for one test, then leave no global MLflow state behind."""
    import mlflow

    for name, value in _QUIET_MLFLOW.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    yield
    release_store()


@pytest.fixture
def mlflow_local(local_store: LocalStore, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStore]:
    """Point MLflow at the module's local store for this test."""
    for _ in _use_tracking_uri(local_store.tracking_uri, monkeypatch):
        yield local_store


def fit_model(seed: int) -> Any:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    features = rng.random((40, 3))
    labels = (features[:, 0] + rng.random(40) * 0.2 > 0.6).astype(int)
    return LogisticRegression(C=1.0 + seed).fit(features, labels)


def log_sklearn(name: str, seed: int = 0) -> Any:
    """Log a fitted model under ``name`` (requirements given, so MLflow does not spend
    seconds inferring them)."""
    return log_sklearn_model(fit_model(seed), name, pip_requirements=["scikit-learn"])


@pytest.fixture
def observed_temp_dirs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every ``tempfile.mkdtemp`` (the directories still get created for real)."""
    created: list[str] = []
    real_mkdtemp = tempfile.mkdtemp

    def recording_mkdtemp(*args: Any, **kwargs: Any) -> str:
        path = real_mkdtemp(*args, **kwargs)
        created.append(path)
        return path

    monkeypatch.setattr(tempfile, "mkdtemp", recording_mkdtemp)
    return created


@pytest.fixture
def observed_downloads(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record calls of ``mlflow.artifacts.download_artifacts`` (which still runs)."""
    import mlflow.artifacts

    calls: list[dict[str, Any]] = []
    real = mlflow.artifacts.download_artifacts

    def recording(*args: Any, **kwargs: Any) -> str:
        calls.append(kwargs)
        return str(real(*args, **kwargs))

    monkeypatch.setattr(mlflow.artifacts, "download_artifacts", recording)
    return calls


def mlflow_download_map(run_id: str, path: str, tmp_path: Path) -> dict[str, str]:
    """Independent: let MLflow download ``runs:/<run>/<path>`` and hash it with hashlib."""
    import mlflow.artifacts

    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"runs:/{run_id}/{path}", dst_path=str(tmp_path / "independent")
        )
    )
    if local.is_file():
        return {local.name: sha256_file(local)}
    return expected_tree(local)


def test_sklearn_model_is_hashed_in_place(
    mlflow_local: LocalStore,
    tmp_path: Path,
    observed_temp_dirs: list[str],
    observed_downloads: list[dict[str, Any]],
) -> None:
    import mlflow

    with mlflow.start_run(experiment_id=mlflow_local.experiment_id) as run:
        info = log_sklearn("clf")
    run_id = run.info.run_id
    model_dir = local_model_dir(info.model_uri)
    assert model_dir.is_dir()
    if HAS_LOGGED_MODELS:
        # MLflow 3 fact: the model's files live in the LoggedModel's location, not the run's
        assert not (mlflow_local.artifact_root / run_id / "artifacts" / "clf").exists()

    observed_temp_dirs.clear()  # logging the model used temp dirs of its own
    observed_downloads.clear()
    calls: list[tuple[int, int]] = []
    result = artifact_checksums(
        run_id, artifact_path="clf", progress=lambda d, t: calls.append((d, t))
    )

    assert result == expected_tree(model_dir)
    assert "MLmodel" in result
    assert observed_temp_dirs == []  # no copy was made ...
    assert observed_downloads == []  # ... and nothing was downloaded
    total = sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file())
    assert calls[-1] == (total, total)
    # the same files MLflow itself serves for runs:/<run>/clf (minus its bookkeeping file)
    assert result == mlflow_download_map(run_id, "clf", tmp_path)
    # the 0.3.0 calling convention: an ignored client first, then the run id
    assert artifact_checksums(mlflow_local.client, run_id, "clf") == result
    # resolution finds the LoggedModel's name through run.outputs (MLflow 3), or the
    # log-model history tag (MLflow 2)
    fetched = mlflow_local.client.get_run(run_id)
    assert logged_model_paths(fetched) == ["clf"]
    assert resolve_artifact_path(fetched) == "clf"
    assert resolve_artifact_path(fetched, "other") == "other"


def test_default_model_path_and_run_files_merged_with_the_logged_model(
    mlflow_local: LocalStore, tmp_path: Path
) -> None:
    import mlflow

    with mlflow.start_run(experiment_id=mlflow_local.experiment_id) as run:
        log_sklearn("model", seed=1)
        mlflow.log_text("run-side note", "model/notes/extra.txt")
    run_id = run.info.run_id
    result = artifact_checksums(run_id)  # default artifact_path is "model"
    assert result["notes/extra.txt"] == hashlib.sha256(b"run-side note").hexdigest()
    assert "MLmodel" in result
    assert result == mlflow_download_map(run_id, "model", tmp_path)
    assert resolve_artifact_path(mlflow_local.client.get_run(run_id)) == "model"


def test_model_uris_of_registered_versions_hash_the_same_files(
    mlflow_local: LocalStore, observed_temp_dirs: list[str]
) -> None:
    """MLflow 3 records ``models:/m-<id>`` as a version's source, MLflow 2 the run's artifact
    location: either must hash like the run."""
    import mlflow

    with mlflow.start_run(experiment_id=mlflow_local.experiment_id) as run:
        info = log_sklearn_model(
            fit_model(5),
            "clf",
            pip_requirements=["scikit-learn"],
            registered_model_name="artifacts-test-model",
        )
    run_id = run.info.run_id
    client = mlflow_local.client
    version = client.get_model_version("artifacts-test-model", "1")
    if HAS_LOGGED_MODELS:
        assert version.source == f"models:/{info.model_id}"  # MLflow 3 fact, not runs:/
    else:
        assert version.source == model_location(info.model_uri, client)  # MLflow 2 fact
    client.set_registered_model_alias("artifacts-test-model", "champion", "1")
    by_run = artifact_checksums(run_id, artifact_path="clf")
    observed_temp_dirs.clear()
    for uri in (
        version.source,
        "models:/artifacts-test-model/1",
        "models:/artifacts-test-model@champion",
        f"runs:/{run_id}/clf",
    ):
        assert model_uri_checksums(uri) == by_run, uri
    assert observed_temp_dirs == []  # all resolved to the local store and hashed in place
    # a version created from a runs:/ source keeps pointing at the run
    client.create_registered_model("artifacts-test-runs-source")
    client.create_model_version("artifacts-test-runs-source", f"runs:/{run_id}/clf", run_id)
    assert model_uri_checksums("models:/artifacts-test-runs-source/1") == by_run
    with pytest.raises(ArtifactAccessError, match="models:/artifacts-test-model/99"):
        model_uri_checksums("models:/artifacts-test-model/99")
    with pytest.raises(ArtifactAccessError, match="no model URI"):
        model_uri_checksums("")


def test_two_models_need_an_explicit_path(mlflow_local: LocalStore) -> None:
    import mlflow

    with mlflow.start_run(experiment_id=mlflow_local.experiment_id) as run:
        first = log_sklearn("champion", seed=2)
        second = log_sklearn("challenger", seed=3)
    fetched = mlflow_local.client.get_run(run.info.run_id)
    # MLflow 3 does not keep run.outputs in logging order; both must be there, once
    assert sorted(logged_model_paths(fetched)) == ["challenger", "champion"]
    with pytest.raises(ValueError, match="multiple model artifact paths") as info:
        resolve_artifact_path(fetched)
    assert "champion" in str(info.value)
    assert "challenger" in str(info.value)

    champion = artifact_checksums(run.info.run_id, artifact_path="champion")
    challenger = artifact_checksums(run.info.run_id, artifact_path="challenger")
    for result, logged in ((champion, first), (challenger, second)):
        assert result == expected_tree(local_model_dir(logged.model_uri))
    assert champion["model.skops" if "model.skops" in champion else "model.pkl"] != challenger.get(
        "model.skops", challenger.get("model.pkl")
    )


def test_nested_directories_single_files_and_exclusions(
    mlflow_local: LocalStore, tree: Path
) -> None:
    import mlflow

    with mlflow.start_run(experiment_id=mlflow_local.experiment_id) as run:
        mlflow.log_artifacts(str(tree), "bundle")
    run_id = run.info.run_id
    result = artifact_checksums(run_id, artifact_path="bundle")
    assert result == expected_tree(tree)
    assert "sub/deeper/weights.bin" in result
    assert "registered_model_meta" not in result
    assert "sub/registered_model_meta" not in result
    # an artifact path naming one file: hashed under its basename (0.3.0 returned {})
    weights = tree / "sub" / "deeper" / "weights.bin"
    assert artifact_checksums(run_id, artifact_path="bundle/sub/deeper/weights.bin") == {
        "weights.bin": sha256_file(weights)
    }
    assert (
        artifact_checksums(
            run_id, artifact_path="bundle/sub/deeper/weights.bin", legacy_single_file=True
        )
        == {}
    )
    # surrounding slashes do not change the answer
    assert artifact_checksums(run_id, artifact_path="/bundle/") == result


def test_missing_path_names_run_path_and_cause(mlflow_local: LocalStore) -> None:
    import mlflow

    with mlflow.start_run(experiment_id=mlflow_local.experiment_id) as run:
        mlflow.log_text("x", "present/x.txt")
    run_id = run.info.run_id
    with pytest.raises(ArtifactAccessError) as info:
        artifact_checksums(run_id, artifact_path="absent")
    message = str(info.value)
    assert run_id in message
    assert "'absent'" in message
    assert "no artifacts" in message

    with pytest.raises(ArtifactAccessError, match="cannot load the run") as unknown:
        artifact_checksums("0" * 32, artifact_path="model")
    assert "0" * 32 in str(unknown.value)

    with pytest.raises(ArtifactAccessError, match="inside the run"):
        artifact_checksums(run_id, artifact_path="present/../../../etc")
    with pytest.raises(ArtifactAccessError, match="no run id"):
        artifact_checksums(object(), None, "model")
    # 0.3.0 signature: the second positional argument is a run id, never a path
    with pytest.raises(TypeError, match="artifact_path="):
        artifact_checksums(run_id, "present")
    assert artifact_checksums(run_id, run_id, "present") == artifact_checksums(
        run_id, artifact_path="present"
    )


def test_mlflow2_log_model_history_resolution(
    mlflow_local: LocalStore, tree: Path, tmp_path: Path
) -> None:
    """MLflow 2 records models in a run tag and stores them under the run's artifacts."""
    import mlflow

    history = [
        {"artifact_path": "legacy_model", "flavors": {"sklearn": {}}},
        {"artifact_path": "legacy_model"},  # logged twice: de-duplicated
        {"artifact_path": ""},  # ignored
        "not a dict",  # ignored
    ]
    with mlflow.start_run(experiment_id=mlflow_local.experiment_id) as run:
        mlflow.set_tag(artifacts.LOG_MODEL_HISTORY_TAG, json.dumps(history))
        mlflow.log_artifacts(str(tree), "legacy_model")
    fetched = mlflow_local.client.get_run(run.info.run_id)
    assert logged_model_paths(fetched) == ["legacy_model"]
    path = resolve_artifact_path(fetched)
    assert path == "legacy_model"
    assert artifact_checksums(run.info.run_id, artifact_path=path) == expected_tree(tree)
    assert artifact_checksums(run.info.run_id, artifact_path=path) == mlflow_download_map(
        run.info.run_id, path, tmp_path
    )

    with mlflow.start_run(experiment_id=mlflow_local.experiment_id) as two:
        mlflow.set_tag(
            artifacts.LOG_MODEL_HISTORY_TAG,
            json.dumps([{"artifact_path": "a"}, {"artifact_path": "b"}]),
        )
    with pytest.raises(ValueError, match="multiple model artifact paths"):
        resolve_artifact_path(mlflow_local.client.get_run(two.info.run_id))

    with mlflow.start_run(experiment_id=mlflow_local.experiment_id) as broken:
        mlflow.set_tag(artifacts.LOG_MODEL_HISTORY_TAG, "{not json")
    fetched_broken = mlflow_local.client.get_run(broken.info.run_id)
    assert logged_model_paths(fetched_broken) == []
    assert resolve_artifact_path(fetched_broken) == "model"


# --- a real remote store: mlflow server with proxied artifacts ---------------------------


@pytest.fixture(scope="module", autouse=True)
def _server_boot(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MlflowServer | None]:
    """Start booting the server (≈15 s) before the local tests run, if any test needs it."""
    wanted = any(
        "mlflow_server" in getattr(item, "fixturenames", ())
        and getattr(item, "module", None) is request.module
        for item in request.session.items
    )
    if not wanted:
        yield None
        return
    base = tmp_path_factory.mktemp("mlflow-server")
    server = MlflowServer.start(
        f"sqlite:///{base}/server.db", base / "served-artifacts", wait=False
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def mlflow_server(_server_boot: MlflowServer | None) -> MlflowServer:
    """The module's ``mlflow server`` (sqlite backend, proxied artifacts), once healthy."""
    assert _server_boot is not None
    return _server_boot.wait_until_healthy(60.0)


@pytest.fixture
def mlflow_remote(
    mlflow_server: MlflowServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[MlflowServer]:
    """Point MLflow at the module's server for this test."""
    for _ in _use_tracking_uri(mlflow_server.url, monkeypatch):
        yield mlflow_server


def _served_root(server: MlflowServer) -> Path:
    return server.log_path.parent / "served-artifacts"


def _assert_all_removed(paths: list[str]) -> None:
    assert paths, "expected a temporary download directory"
    for path in paths:
        assert not os.path.exists(path), f"temporary copy left behind: {path}"


def test_remote_store_hashes_a_download_and_removes_it(
    mlflow_remote: MlflowServer,
    observed_temp_dirs: list[str],
    observed_downloads: list[dict[str, Any]],
) -> None:
    import mlflow
    from mlflow import MlflowClient

    with mlflow.start_run() as run:
        info = log_sklearn("clf", seed=4)
        mlflow.log_text("served note", "clf/extra.txt")
    run_id = run.info.run_id
    client = MlflowClient(mlflow_remote.url)
    location = model_location(info.model_uri, client)
    assert location.startswith("mlflow-artifacts:")
    assert client.get_run(run_id).info.artifact_uri.startswith("mlflow-artifacts:")

    observed_temp_dirs.clear()  # logging the model used temp dirs of its own
    calls: list[tuple[int, int]] = []
    result = artifact_checksums(
        run_id, artifact_path="clf", progress=lambda d, t: calls.append((d, t))
    )

    # independent expectation: the files the server stored on its disk
    served = _served_root(mlflow_remote)
    model_dir = served / location.split("mlflow-artifacts:", 1)[1].lstrip("/")
    expected = expected_tree(model_dir)
    expected["extra.txt"] = hashlib.sha256(b"served note").hexdigest()
    assert result == expected
    assert "registered_model_meta" not in result  # MLflow writes it into the download
    assert len(observed_downloads) == 1
    assert observed_downloads[0]["artifact_path"] == "clf"
    assert calls
    assert calls[-1][0] == calls[-1][1]
    assert any(Path(p).name.startswith("ario-mlflow-artifacts-") for p in observed_temp_dirs)
    _assert_all_removed(observed_temp_dirs)


def test_remote_model_uri_is_downloaded_and_removed(
    mlflow_remote: MlflowServer, observed_temp_dirs: list[str]
) -> None:
    import mlflow
    from mlflow import MlflowClient

    with mlflow.start_run():
        info = log_sklearn("clf", seed=6)
    location = model_location(info.model_uri, MlflowClient(mlflow_remote.url))
    model_dir = _served_root(mlflow_remote) / location.split("mlflow-artifacts:", 1)[1].lstrip("/")
    if HAS_LOGGED_MODELS:
        uri = f"models:/{info.model_id}"
    else:  # no LoggedModels: name the model through a registered version
        uri = f"models:/remote-clf/{mlflow.register_model(info.model_uri, 'remote-clf').version}"
    observed_temp_dirs.clear()
    assert model_uri_checksums(uri) == expected_tree(model_dir)
    _assert_all_removed(observed_temp_dirs)


def test_remote_missing_path_fails_fast_and_leaves_nothing(
    mlflow_remote: MlflowServer, observed_temp_dirs: list[str]
) -> None:
    import mlflow

    with mlflow.start_run() as run:
        mlflow.log_text("x", "present/x.txt")
    observed_temp_dirs.clear()
    started = time.monotonic()
    with pytest.raises(ArtifactAccessError) as info:
        artifact_checksums(run.info.run_id, artifact_path="absent")
    message = str(info.value)
    assert run.info.run_id in message
    assert "'absent'" in message
    assert "no artifacts" in message
    assert observed_temp_dirs == []  # known missing before any download
    # fast: MLflow 2's server answers the download of a missing path with HTTP 500,
    # which its client retries for minutes
    assert time.monotonic() - started < 30

    single = artifact_checksums(run.info.run_id, artifact_path="present/x.txt")
    assert single == {"x.txt": hashlib.sha256(b"x").hexdigest()}


def test_remote_hashing_error_after_download_still_cleans_up(
    mlflow_remote: MlflowServer, observed_temp_dirs: list[str]
) -> None:
    import mlflow

    with mlflow.start_run() as run:
        mlflow.log_text("a" * 5000, "bundle/a.txt")
        mlflow.log_text("b", "bundle/b.txt")

    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt  # the user presses Ctrl-C mid-hash

    observed_temp_dirs.clear()
    with pytest.raises(KeyboardInterrupt):
        artifact_checksums(run.info.run_id, artifact_path="bundle", progress=interrupt)
    _assert_all_removed(observed_temp_dirs)
