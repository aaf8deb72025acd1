"""Compatibility path (ar-io-mlflow 0.3.0): the ar-io-agent verify-status client lives in
:mod:`ario_mlflow.arweave.agent_status`."""

from __future__ import annotations

from ario_mlflow.arweave.agent_status import OUTCOMES, VerifyStatus, VerifyStatusClient

__all__ = ["OUTCOMES", "VerifyStatus", "VerifyStatusClient"]
