"""Real MLflow lifecycle steps shared by the registry, model and verification tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from ario_mlflow.anchoring import anchor

FEATURES = pd.DataFrame(
    np.random.default_rng(11).random((40, 3)), columns=["income", "debt", "age"]
)
LABELS = (FEATURES["income"] > 0.5).astype(int)


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
        info = mlflow.sklearn.log_model(model, name=model_name, pip_requirements=["scikit-learn"])
        result = anchor() if anchored else None
    return Trained(run.info.run_id, info.model_uri, result)


def model_files(model_uri: str) -> list[str]:
    """Local paths of a logged model's files (the local store keeps them in place)."""
    from pathlib import Path

    root = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def local_model_dir(model_uri: str) -> Any:
    """The on-disk directory MLflow serves the model from (sqlite store, local artifacts)."""
    from pathlib import Path
    from urllib.parse import urlparse

    client = mlflow.MlflowClient()
    model_id = model_uri.rsplit("/", maxsplit=1)[-1]
    location = client.get_logged_model(model_id).artifact_location
    parsed = urlparse(location)
    return Path(parsed.path if parsed.scheme == "file" else location)
