"""Compatibility path (ar-io-mlflow 0.3.0): training provenance lives in
:mod:`ario_mlflow.lifecycle.training`."""

from __future__ import annotations

from ario_mlflow.errors import ArtifactAccessError
from ario_mlflow.lifecycle.artifacts import artifact_checksums, parse_runs_uri
from ario_mlflow.lifecycle.otel import capture_otel_context
from ario_mlflow.lifecycle.training import TAG_LAST_TRAINING_HASH, anchor

__all__ = [
    "TAG_LAST_TRAINING_HASH",
    "ArtifactAccessError",
    "anchor",
    "artifact_checksums",
    "capture_otel_context",
    "parse_runs_uri",
]
