"""Codecs and clients of the permanent-storage side: ANS-104 data items, wallets, the
transport, Turbo upload, gateway reads, ar.io Verify and the agent's verify-status API.

``ArweaveAnchor`` (the durable pipeline's front door, :mod:`ario_mlflow.outbox.anchor`)
and ``ArioVerifyClient`` are resolved lazily; with ``WalletLoadError`` they are the
documented import paths of ar-io-mlflow 0.3.0.
"""

from __future__ import annotations

import importlib
from typing import Any

from ario_mlflow.errors import WalletLoadError

_LAZY = {
    "ArweaveAnchor": "ario_mlflow.outbox.anchor",
    "ArioVerifyClient": "ario_mlflow.arweave.ario_verify",
}

__all__ = ["ArioVerifyClient", "ArweaveAnchor", "WalletLoadError"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
