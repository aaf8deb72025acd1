"""One HTTP conversation with a Turbo upload service: post an item, ask for its status.

Deliberately single-shot: retrying, backoff and deadlines belong to the journal's
workers, which must survive restarts anyway. This module only says what happened, in a
form the workers can act on (success, retry after N seconds, or refused for good).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from ario_mlflow.arweave.receipt import verify_receipt

#: Statuses worth trying again later (the service or a proxy is having a bad moment).
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class UploadOutcome:
    """What one POST achieved.

    ``accepted``: the service holds the item (200 with a receipt, or 202 duplicate).
    Otherwise ``retryable`` says whether trying again can help, ``retry_after`` carries the
    server's ``Retry-After`` in seconds when given, and ``error`` is the ``last_error`` text.
    """

    accepted: bool
    receipt: dict[str, Any] | None = None
    receipt_valid: bool | None = None
    retryable: bool = True
    retry_after: float | None = None
    underfunded: bool = False
    error: str | None = None


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def post_item(
    session: requests.Session,
    upload_url: str,
    token: str,
    item: bytes,
    tx_id: str,
    *,
    timeout: tuple[float, float],
) -> UploadOutcome:
    """POST ``item`` to ``{upload_url}/v1/tx/{token}``; never raises."""
    url = f"{upload_url}/v1/tx/{token}"
    try:
        response = session.post(
            url,
            data=item,
            headers={"Content-Type": "application/octet-stream"},
            timeout=timeout,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        return UploadOutcome(
            accepted=False, error=f"upload network/HTTP error: {type(exc).__name__}: {exc}"
        )
    status = response.status_code
    if status == 202:
        return UploadOutcome(accepted=True)
    if status == 200:
        try:
            receipt = response.json()
        except ValueError:
            receipt = None
        if not isinstance(receipt, dict):
            return UploadOutcome(accepted=True, error="upload accepted without a JSON receipt")
        if receipt.get("id") not in (None, tx_id):
            return UploadOutcome(
                accepted=False,
                retryable=False,
                error=f"upload receipt names item {receipt.get('id')!r}, not {tx_id!r}",
            )
        return UploadOutcome(
            accepted=True, receipt=receipt, receipt_valid=verify_receipt(receipt, expected_id=tx_id)
        )
    body = response.text[:200]
    error = f"upload returned HTTP {status}: {body}"
    if status == 402:
        return UploadOutcome(accepted=False, underfunded=True, error=error)
    return UploadOutcome(
        accepted=False,
        retryable=status in RETRYABLE_STATUSES,
        retry_after=_retry_after_seconds(response.headers.get("Retry-After")),
        error=error,
    )


def fetch_status(
    session: requests.Session, upload_url: str, tx_id: str, *, timeout: tuple[float, float]
) -> dict[str, Any]:
    """``{"status", "info"}`` of an item at the upload service; never raises.

    200 → the service's status (``UNKNOWN`` if absent); 404 or other non-200 →
    ``NOT_FOUND``; network errors or a non-JSON body → ``UNKNOWN``.
    """
    try:
        response = session.get(
            f"{upload_url}/v1/tx/{tx_id}/status", timeout=timeout, allow_redirects=False
        )
    except requests.RequestException:
        return {"status": "UNKNOWN"}
    if response.status_code != 200:
        return {"status": "NOT_FOUND"}
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError):
        return {"status": "UNKNOWN"}
    if not isinstance(body, dict):
        return {"status": "UNKNOWN"}
    return {"status": body.get("status") or "UNKNOWN", "info": body.get("info")}
