"""Compatibility path (ar-io-mlflow 0.3.0): serving lives in
:mod:`ario_mlflow.lifecycle.serving`."""

from __future__ import annotations

from ario_mlflow.lifecycle.serving import ON_FAILURE_MODES, VerifiedModel, VerifiedPrediction

__all__ = ["ON_FAILURE_MODES", "VerifiedModel", "VerifiedPrediction"]
