"""Compatibility path (ar-io-mlflow 0.3.0's entry point): the run context provider lives
in :mod:`ario_mlflow.lifecycle.plugin`."""

from __future__ import annotations

from ario_mlflow.lifecycle.plugin import ArioContextProvider

__all__ = ["ArioContextProvider"]
