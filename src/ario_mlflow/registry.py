"""Compatibility path (ar-io-mlflow 0.3.0): registry provenance lives in
:mod:`ario_mlflow.lifecycle.registry`."""

from __future__ import annotations

from ario_mlflow.lifecycle.registry import ArioMlflowClient, register_model

__all__ = ["ArioMlflowClient", "register_model"]
