"""The permanent-storage side: ANS-104 data items, wallets, Turbo upload, gateways,
the durable journal and the local gateway.

``ArweaveAnchor`` is imported lazily (it pulls in ``requests``); ``WalletLoadError`` is
re-exported because ``ario_mlflow.arweave.WalletLoadError`` is a documented import path.
"""

from __future__ import annotations

import importlib
from typing import Any

from ario_mlflow.errors import WalletLoadError

_LAZY = {
    "ArweaveAnchor": "ario_mlflow.arweave.anchor",
    "ArioVerifyClient": "ario_mlflow.arweave.verify_client",
}

__all__ = ["ArioVerifyClient", "ArweaveAnchor", "WalletLoadError"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
