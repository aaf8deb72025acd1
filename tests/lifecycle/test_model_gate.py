"""The serving gate against an insider with write access to the MLflow database and the
artifact store (not the signing key): redirected sources, a file swapped while it is
loaded, deleted tags, and the plain ``create_model_version(name, "runs:/...")`` idiom.

Real MLflow (sqlite store, local artifacts), the local gateway over HTTP, real crypto.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from ario_mlflow.engine import ProofEngine
from ario_mlflow.errors import IntegrityError
from ario_mlflow.keys import load_or_create_key_files
from ario_mlflow.lifecycle.registry import ArioMlflowClient
from ario_mlflow.lifecycle.serving import VerifiedModel
from ario_mlflow.outbox.anchor import ArweaveAnchor
from ario_mlflow.outbox.sync import sync_journal
from tests.support.cli import invoke_cli
from tests.support.lifecycle import (
    FEATURES,
    LABELS,
    Trained,
    local_model_dir,
    log_sklearn_model,
    serialized_model,
    trace_id_of,
    train,
)

ROWS = FEATURES.head(8)


def _register(trained: Trained, name: str = "credit", **client_options: Any) -> ArioMlflowClient:
    client = ArioMlflowClient(**client_options)
    client.create_registered_model(name)
    version = client.create_model_version(name, trained.model_uri, run_id=trained.run_id)
    assert client.wait_for_anchor("registration", name, version.version, timeout=30)
    client.set_registered_model_alias(name, "champion", version.version)
    return client


def _sql(store: str, statement: str, *parameters: object) -> None:
    """Edit the tracking database behind MLflow's back, as an insider can."""
    with sqlite3.connect(store.removeprefix("sqlite:///")) as connection:
        assert connection.execute(statement, parameters).rowcount > 0, statement


def _evil_model_dir() -> Path:
    """Another model (labels flipped: it answers the opposite), logged in its own run."""
    with mlflow.start_run():
        evil = LogisticRegression().fit(FEATURES, 1 - LABELS)
        info = log_sklearn_model(evil, "model", pip_requirements=["scikit-learn"])
    return local_model_dir(info.model_uri)


def _genuine_answers(trained: Trained) -> np.ndarray:
    return np.asarray(mlflow.pyfunc.load_model(trained.model_uri).predict(ROWS))


def _delete_ario_tags(run_id: str, name: str, version: str) -> None:
    client = mlflow.MlflowClient()
    for key in [k for k in client.get_run(run_id).data.tags if k.startswith("ario.")]:
        client.delete_tag(run_id, key)
    for key in [k for k in client.get_model_version(name, version).tags if k.startswith("ario.")]:
        client.delete_model_version_tag(name, version, key)


# --- 1. source redirect ------------------------------------------------------------------


def test_a_redirected_source_is_refused(
    mlflow_store: str, local_gateway: Any, tmp_path: Path
) -> None:
    trained = train()
    _register(trained)
    evil = _evil_model_dir()
    _sql(mlflow_store, "UPDATE model_versions SET source = ? WHERE name = 'credit'", str(evil))
    with pytest.raises(IntegrityError, match="redirected"):
        VerifiedModel("models:/credit@champion")
    code, out, _ = invoke_cli(["verify", "model", "credit/1", "--format", "json"])
    assert code == 1, out
    assert "source" in out
    code, out, _ = invoke_cli(["audit", "credit@champion", "--format", "json"])
    assert code == 1, out
    bundle = tmp_path / "evidence.zip"
    code, out, err = invoke_cli(["export", "credit/1", "--output", str(bundle)])
    assert code != 0
    assert "live check" in out + err
    assert not bundle.exists()
    code, out, err = invoke_cli(["export", "credit/1", "--output", str(bundle), "--force"])
    assert code == 0, out + err
    code, out, err = invoke_cli(["verify-bundle", str(bundle)])
    assert code == 1, out
    assert "live check" in out


def test_a_redirected_storage_location_is_refused(mlflow_store: str, local_gateway: Any) -> None:
    """Plain MLflow loads the storage location: the gate must check it too."""
    trained = train()
    _register(trained)
    evil = _evil_model_dir()
    _sql(
        mlflow_store,
        "UPDATE model_versions SET storage_location = ? WHERE name = 'credit'",
        str(evil),
    )
    assert mlflow.MlflowClient().get_model_version_download_uri("credit", "1") == str(evil)
    with pytest.raises(IntegrityError, match="stored at"):
        VerifiedModel("models:/credit@champion")
    code, out, _ = invoke_cli(["audit", "credit@champion", "--format", "json"])
    assert code == 1, out


def test_an_honest_version_loads_from_a_private_copy(mlflow_store: str, local_gateway: Any) -> None:
    trained = train()
    _register(trained)
    model = VerifiedModel("models:/credit@champion")
    assert model.artifact_verified is True
    copy = model._copy
    assert copy is not None
    assert copy.is_dir()
    assert (copy.parent.stat().st_mode & 0o077) == 0  # nobody else can enter it
    assert np.array_equal(np.asarray(model.predict(ROWS).prediction), _genuine_answers(trained))
    model.close()
    assert not copy.exists()


# --- 2. load race ---------------------------------------------------------------------------


def test_a_file_swapped_during_loads_is_never_loaded(
    mlflow_store: str, local_gateway: Any, tmp_path: Path
) -> None:
    trained = train()
    _register(trained)
    genuine = _genuine_answers(trained)
    keys = (ProofEngine().public_key_hex,)
    target = serialized_model(local_model_dir(trained.model_uri))
    original = target.read_bytes()
    evil = serialized_model(_evil_model_dir()).read_bytes()
    stop = threading.Event()

    def swapper() -> None:
        spare = tmp_path / "spare"
        flip = False
        while not stop.is_set():
            spare.write_bytes(evil if flip else original)
            os.replace(spare, target)
            flip = not flip
            stop.wait(0.002)
        target.write_bytes(original)

    thread = threading.Thread(target=swapper)
    thread.start()
    swapped = passed = refused = 0
    try:
        for _ in range(20):
            try:
                model = VerifiedModel("models:/credit@champion", trusted_keys=keys)
            except IntegrityError:
                refused += 1
                continue
            passed += 1
            answers = np.asarray(model.predict(ROWS).prediction)
            swapped += not np.array_equal(answers, genuine)
            model.close()
    finally:
        stop.set()
        thread.join()
    assert swapped == 0, f"{swapped} of {passed} passing loads ran the swapped model"
    assert passed + refused == 20
    assert VerifiedModel("models:/credit@champion", trusted_keys=keys).artifact_verified


# --- 3. deleted tags -------------------------------------------------------------------------


def test_deleted_tags_do_not_turn_the_gate_off(
    mlflow_store: str, local_gateway: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    trained = train()
    _register(trained)
    keys = (ProofEngine().public_key_hex,)
    _delete_ario_tags(trained.run_id, "credit", "1")
    assert VerifiedModel("models:/credit@champion").artifact_verified is True
    model_file = serialized_model(local_model_dir(trained.model_uri))
    model_file.write_bytes(model_file.read_bytes() + b"x")
    # Found through this installation's journal...
    with pytest.raises(IntegrityError, match="differ"):
        VerifiedModel("models:/credit@champion")
    # ... and, with no journal at all (another machine), through the gateways' index.
    monkeypatch.setenv("ARIO_MLFLOW_HOME", str(tmp_path / "elsewhere"))
    with pytest.raises(IntegrityError, match="differ"):
        VerifiedModel("models:/credit@champion")
    with pytest.raises(IntegrityError, match="differ"):
        VerifiedModel("models:/credit@champion", trusted_keys=keys)


def test_pinned_keys_imply_require_proof(mlflow_store: str, local_gateway: Any) -> None:
    unanchored = train(anchored=False)
    mlflow.MlflowClient().create_registered_model("plain")
    mlflow.MlflowClient().create_model_version("plain", unanchored.model_uri, unanchored.run_id)
    assert VerifiedModel("models:/plain/1").artifact_verified is None  # unpinned: allowed
    key = ProofEngine().public_key_hex
    with pytest.raises(IntegrityError, match="refusing to load"):
        VerifiedModel("models:/plain/1", trusted_keys=(key.upper(),))  # case never matters


def test_unpinned_loads_say_so(mlflow_store: str, local_gateway: Any, caplog: Any) -> None:
    trained = train()
    _register(trained)
    with caplog.at_level("INFO", logger="ario_mlflow"):
        VerifiedModel("models:/credit@champion")
    assert any("no issuer is pinned" in r.getMessage() for r in caplog.records)


def test_a_registration_signed_by_another_key_is_refused(
    mlflow_store: str, local_gateway: Any, tmp_path: Path
) -> None:
    trained = train()
    load_or_create_key_files(tmp_path / "other.json", tmp_path / "other.pub.json")
    other = ProofEngine(tmp_path / "other.json", tmp_path / "other.pub.json")
    _register(trained, proof_engine=other)
    with pytest.raises(IntegrityError, match="one lineage has one issuer"):
        VerifiedModel("models:/credit@champion")


# --- 4. the plain MLflow idiom ----------------------------------------------------------------


def test_a_version_registered_from_a_bare_runs_uri_is_gated(
    mlflow_store: str, local_gateway: Any
) -> None:
    trained = train()
    plain = mlflow.MlflowClient()
    plain.create_registered_model("credit-scorer")
    version = plain.create_model_version("credit-scorer", f"runs:/{trained.run_id}/model")
    assert not version.run_id
    model = VerifiedModel("models:/credit-scorer/1")
    assert model.artifact_verified is True
    assert model.run_id == trained.run_id
    requirements = local_model_dir(trained.model_uri) / "requirements.txt"
    requirements.write_text(requirements.read_text() + "evil-package==6.6.6\n")
    with pytest.raises(IntegrityError, match=r"requirements\.txt"):
        VerifiedModel("models:/credit-scorer/1")


def test_verify_and_audit_work_for_a_bare_runs_uri_version(
    mlflow_store: str, local_gateway: Any
) -> None:
    trained = train()
    client = ArioMlflowClient()
    client.create_registered_model("credit-scorer")
    version = client.create_model_version("credit-scorer", f"runs:/{trained.run_id}/model")
    assert client.wait_for_anchor("registration", "credit-scorer", version.version, timeout=30)
    client.set_registered_model_alias("credit-scorer", "champion", version.version)
    code, out, _ = invoke_cli(["verify", "model", "credit-scorer/1"])
    assert code == 0, out
    code, out, _ = invoke_cli(["audit", "credit-scorer@champion", "--format", "json"])
    assert code == 0, out
    assert "chain_link_broken" not in out
    model = VerifiedModel("models:/credit-scorer@champion", decisions="each")
    result = model.predict(ROWS.head(1))
    assert result.wait_for_anchor(30)
    assert sync_journal(ArweaveAnchor().journal).complete  # witness and trace written back
    code, out, _ = invoke_cli(["verify", "decision", result.decision_id])
    assert code == 0, out
    (trace,) = [
        t
        for t in mlflow.MlflowClient().search_traces(experiment_ids=["0"])
        if t.info.tags.get("ario.decision_id") == result.decision_id
    ]
    code, out, _ = invoke_cli(["verify", "trace", trace_id_of(trace)])
    assert code == 0, out


def test_copying_a_model_directory_elsewhere_keeps_the_genuine_one_loadable(
    mlflow_store: str, local_gateway: Any, tmp_path: Path
) -> None:
    """The gate reads runs:/<run>/<path> through MLflow, not a path given by the version."""
    trained = train()
    _register(trained)
    shutil.copytree(local_model_dir(trained.model_uri), tmp_path / "copy")
    assert VerifiedModel(f"runs:/{trained.run_id}/model").artifact_verified is True
    with pytest.raises(IntegrityError, match="not the anchored model"):
        VerifiedModel(f"runs:/{trained.run_id}/other")
