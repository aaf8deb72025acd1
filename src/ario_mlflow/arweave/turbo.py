"""One HTTP conversation with a Turbo upload service: post an item, ask for its status.

Deliberately single-shot: retrying, backoff and deadlines belong to the journal's
workers, which must survive restarts anyway. This module only says what happened, in a
form the workers can act on: confirmed (a receipt whose signature verifies), accepted but
not confirmed (a bare 202, or a 200 without a checkable receipt: the service *says* it
holds the item, which must be confirmed before it counts), retry after N seconds, or
refused for good. A receipt whose signature does not verify is a failed upload.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from ario_mlflow.arweave.receipt import verify_receipt
from ario_mlflow.arweave.transport import Request, Transport
from ario_mlflow.errors import TransportError

#: Statuses worth trying again later (the service or a proxy is having a bad moment).
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: Upload-status answers that mean the service holds the item.
HELD_STATUSES = frozenset({"CONFIRMED", "FINALIZED"})
#: Largest answer accepted from the upload service (a receipt is ~1 KiB).
MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True)
class UploadOutcome:
    """What one POST achieved.

    ``accepted``: the service says it holds the item (200 or 202). ``confirmed``: that is
    proven (a receipt whose signature verifies, or a later confirmation). Otherwise
    ``retryable`` says whether trying again can help, ``retry_after`` carries the server's
    ``Retry-After`` in seconds when given, and ``error`` is the ``last_error`` text.
    """

    accepted: bool
    receipt: dict[str, Any] | None = None
    receipt_valid: bool | None = None
    confirmed: bool = False
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
    transport: Transport,
    upload_url: str,
    token: str,
    item: bytes,
    tx_id: str,
    *,
    timeout: tuple[float, float],
) -> UploadOutcome:
    """POST ``item`` to ``{upload_url}/v1/tx/{token}``; never raises."""
    try:
        response = transport.send(
            Request.within(
                "POST",
                f"{upload_url}/v1/tx/{token}",
                timeout,
                max_body=MAX_ANSWER_BYTES,
                body=item,
                headers={"Content-Type": "application/octet-stream"},
            )
        )
    except TransportError as exc:
        return UploadOutcome(accepted=False, error=f"upload network/HTTP error: {exc}")
    status = response.status
    if status == 202:
        return UploadOutcome(
            accepted=True, error="upload accepted (202) without a receipt; not confirmed yet"
        )
    if status == 200:
        return _receipt_outcome(response.body, tx_id)
    error = f"upload returned HTTP {status}: {response.text[:200]}"
    if status == 402:
        return UploadOutcome(accepted=False, underfunded=True, error=error)
    return UploadOutcome(
        accepted=False,
        retryable=status in RETRYABLE_STATUSES,
        retry_after=_retry_after_seconds(response.header("Retry-After")),
        error=error,
    )


def _receipt_outcome(body: bytes, tx_id: str) -> UploadOutcome:
    import json

    try:
        receipt = json.loads(body)
    except (ValueError, RecursionError):
        receipt = None
    if not isinstance(receipt, dict):
        return UploadOutcome(
            accepted=True, error="upload accepted without a JSON receipt; not confirmed yet"
        )
    if receipt.get("id") not in (None, tx_id):
        return UploadOutcome(
            accepted=False,
            retryable=False,
            error=f"upload receipt names item {receipt.get('id')!r}, not {tx_id!r}",
        )
    valid = verify_receipt(receipt, expected_id=tx_id)
    if valid is False:
        return UploadOutcome(
            accepted=False,
            receipt=receipt,
            receipt_valid=False,
            error="upload receipt signature does not verify (the service's answer is not "
            "a valid promise to store the item)",
        )
    if valid is None:
        return UploadOutcome(
            accepted=True,
            receipt=receipt,
            receipt_valid=None,
            error="upload receipt carries no signature; not confirmed yet",
        )
    return UploadOutcome(accepted=True, receipt=receipt, receipt_valid=True, confirmed=True)


def fetch_status(
    transport: Transport, upload_url: str, tx_id: str, *, timeout: tuple[float, float]
) -> dict[str, Any]:
    """``{"status", "info"}`` of an item at the upload service; never raises.

    200 → the service's status (``UNKNOWN`` if absent); 404 or other non-200 →
    ``NOT_FOUND``; network errors or a non-JSON body → ``UNKNOWN``.
    """
    try:
        response = transport.send(
            Request.within(
                "GET", f"{upload_url}/v1/tx/{tx_id}/status", timeout, max_body=MAX_ANSWER_BYTES
            )
        )
    except TransportError:
        return {"status": "UNKNOWN"}
    if response.status != 200:
        return {"status": "NOT_FOUND"}
    try:
        body = response.json()
    except ValueError:
        return {"status": "UNKNOWN"}
    if not isinstance(body, dict):
        return {"status": "UNKNOWN"}
    return {"status": body.get("status") or "UNKNOWN", "info": body.get("info")}
