"""Helpers for the local gateway tests: build items, upload them, read them back."""

from __future__ import annotations

import os
from collections.abc import Iterable

import requests

from ario_mlflow.arweave.dataitem import DataItem, create_data_item
from ario_mlflow.arweave.signers import Signer

OCTET = {"Content-Type": "application/octet-stream"}


def make_item(
    signer: Signer,
    data: bytes | None = None,
    tags: Iterable[tuple[str, str]] = (("Content-Type", "application/json"),),
) -> DataItem:
    """A freshly signed item (random anchor, so every call is a new id)."""
    return create_data_item(
        data if data is not None else os.urandom(24).hex().encode(), signer, tags
    )


def upload(
    http: requests.Session,
    url: str,
    item: DataItem | bytes,
    token: str | None = "solana",
    *,
    headers: dict[str, str] | None = None,
    prefix: str = "/v1",
    timeout: float | tuple[float, float] = 10,
) -> requests.Response:
    """POST an item as the Turbo client does."""
    body = item.raw if isinstance(item, DataItem) else item
    path = f"{prefix}/tx" + (f"/{token}" if token else "")
    return http.post(f"{url}{path}", data=body, headers=headers or OCTET, timeout=timeout)
