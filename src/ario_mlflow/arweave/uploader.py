"""Compatibility path (ar-io-mlflow 0.4): the journal's workers and ``sync`` live in
:mod:`ario_mlflow.outbox`."""

from __future__ import annotations

from ario_mlflow.outbox.handlers import installed_kinds as writeback_kinds
from ario_mlflow.outbox.sync import sync_journal
from ario_mlflow.outbox.workers import stop_all_workers

__all__ = ["stop_all_workers", "sync_journal", "writeback_kinds"]
