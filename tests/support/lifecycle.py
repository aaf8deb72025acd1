"""Real MLflow lifecycle steps shared by the registry, model and verification tests."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from ario_mlflow.lifecycle.training import anchor

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
