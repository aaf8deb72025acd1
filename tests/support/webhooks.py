"""MLflow webhook deliveries as MLflow sends them, signed by MLflow's own signing code."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from mlflow.webhooks.delivery import _generate_hmac_signature


def signed_delivery(
    data: dict[str, Any],
    secret: str,
    *,
    entity: str = "model_version_alias",
    action: str = "created",
    delivery_id: str | None = None,
    stamp: int | None = None,
    sent_at: str | None = None,
) -> tuple[dict[str, str], bytes]:
    """Headers and body of one delivery (``stamp``: its Unix time, default now; ``sent_at``:
    the payload's own time, default the same moment)."""
    when = int(time.time()) if stamp is None else stamp
    moment = sent_at or datetime.fromtimestamp(when, timezone.utc).isoformat()
    body = json.dumps({"entity": entity, "action": action, "timestamp": moment, "data": data})
    delivery = delivery_id or str(uuid.uuid4())
    headers = {
        "Content-Type": "application/json",
        "X-MLflow-Delivery-Id": delivery,
        "X-MLflow-Timestamp": str(when),
        "X-MLflow-Signature": _generate_hmac_signature(secret, delivery, str(when), body),
    }
    return headers, body.encode()
