"""MLflow's registry webhooks, checked and turned into registry events to anchor.

MLflow (3.3+) signs each delivery with HMAC-SHA256 over ``<delivery id>.<timestamp>.<body>``
(header ``X-MLflow-Signature: v1,<base64>``), names it (``X-MLflow-Delivery-Id``) and dates
it (``X-MLflow-Timestamp``, Unix seconds). A delivery is taken only when the signature
matches the shared secret, the timestamp is within the tolerance, and its id was never
taken before (the journal remembers ids, so a replay is refused even after a restart).

What MLflow's payload does not say is recorded as unknown: the acting user, and what an
alias pointed at before it moved.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ario_mlflow.errors import WebhookRejected
from ario_mlflow.lifecycle.recorder import REGISTRY_ALIAS, REGISTRY_REGISTRATION, registry_key
from ario_mlflow.outbox.journal import Journal
from ario_mlflow.proof import payloads
from ario_mlflow.proof.alias_history import parse_time

SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
SIGNATURE_VERSION = "v1"
#: How old (or how far in the future) a delivery may be, in seconds.
DEFAULT_TOLERANCE = 300.0
#: Largest body taken (MLflow's registry payloads are a few hundred bytes).
MAX_BODY_BYTES = 1 << 20
#: A version created through our client gets its own registration record; the webhook's
#: task waits this long so that the client's record is there to be seen first.
REGISTRATION_GRACE_SECONDS = 5.0

ALIAS_CREATED = "model_version_alias.created"
ALIAS_DELETED = "model_version_alias.deleted"
VERSION_CREATED = "model_version.created"
#: The events we anchor (MLflow sends more: tags, prompts, registered models).
ANCHORED_EVENTS = (ALIAS_CREATED, ALIAS_DELETED, VERSION_CREATED)


@dataclass(frozen=True)
class Delivery:
    """One authentic, fresh delivery."""

    delivery_id: str
    timestamp: int
    event: str  # "<entity>.<action>"
    data: dict[str, Any]
    sent_at: str  # the payload's own ISO time (when MLflow made the change)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


def _signature_matches(secret: str, signed: bytes, header: str) -> bool:
    """Does any ``v1,<base64>`` signature in ``header`` (space-separated) match?"""
    expected = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).digest()
    for candidate in header.split():
        version, _, encoded = candidate.partition(",")
        if version != SIGNATURE_VERSION:
            continue
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(given, expected):
            return True
    return False


def check_delivery(
    headers: Mapping[str, str],
    body: bytes,
    secret: str,
    *,
    now: float | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Delivery:
    """The delivery in ``body`` if it is authentic and fresh; else :class:`WebhookRejected`
    (``unsigned``, ``forged``, ``stale`` or ``malformed``). Replays are caught when the
    delivery is journaled (:func:`journal_delivery`)."""
    delivery_id = _header(headers, DELIVERY_ID_HEADER)
    stamp = _header(headers, TIMESTAMP_HEADER)
    signature = _header(headers, SIGNATURE_HEADER)
    if not signature:
        raise WebhookRejected("unsigned", f"no {SIGNATURE_HEADER} header", 401)
    if not delivery_id or not stamp:
        raise WebhookRejected(
            "malformed", f"{DELIVERY_ID_HEADER} and {TIMESTAMP_HEADER} are required", 400
        )
    signed = f"{delivery_id}.{stamp}.".encode() + body
    if not _signature_matches(secret, signed, signature):
        raise WebhookRejected(
            "forged",
            f"delivery {delivery_id}: signature does not match the shared secret",
            401,
        )
    try:
        timestamp = int(stamp)
    except ValueError:
        raise WebhookRejected("malformed", f"timestamp {stamp!r} is not Unix seconds") from None
    age = (time.time() if now is None else now) - timestamp
    if abs(age) > tolerance:
        when = f"{age:.0f}s old" if age > 0 else f"{-age:.0f}s in the future"
        raise WebhookRejected(
            "stale",
            f"delivery {delivery_id} is {when} (tolerance {tolerance:g}s)",
            400,
        )
    try:
        message = json.loads(body)
        event = f"{message['entity']}.{message['action']}"
        data = message["data"]
        if not isinstance(data, dict):
            raise TypeError("data is not an object")
    except RecursionError:
        raise WebhookRejected(
            "malformed", f"delivery {delivery_id}: JSON nested too deep"
        ) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise WebhookRejected("malformed", f"delivery {delivery_id}: {exc}") from None
    return Delivery(
        delivery_id, timestamp, event, data, _sent_at(message, timestamp, tolerance, delivery_id)
    )


def _sent_at(message: Mapping[str, Any], timestamp: int, tolerance: float, delivery_id: str) -> str:
    """The payload's own time of the change (what the record's ``changed_at`` says). It
    must be a time within the tolerance of the signed, checked header timestamp: a sender
    cannot date a fresh delivery's change a month back or ten years ahead."""
    value = message.get("timestamp")
    try:
        moment = parse_time(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise WebhookRejected(
            "malformed", f"delivery {delivery_id}: timestamp {value!r} is not an ISO 8601 time"
        )
    if abs(moment.timestamp() - timestamp) > tolerance:
        raise WebhookRejected(
            "malformed",
            f"delivery {delivery_id}: its change is dated {value}, not near its "
            f"delivery time {timestamp} (tolerance {tolerance:g}s)",
        )
    return str(value)


def _observed(delivery: Delivery, previous_known: bool = False) -> dict[str, Any]:
    return payloads.observation(
        observed_by=payloads.OBSERVED_BY_WEBHOOK,
        changed_at=delivery.sent_at,
        changed_by=None,  # MLflow's payload does not name the user
        previous_known=previous_known,
        delivery={
            "delivery_id": delivery.delivery_id,
            "event": delivery.event,
            "timestamp": delivery.timestamp,
        },
    )


def _text(data: Mapping[str, Any], key: str, delivery: Delivery) -> str:
    value = data.get(key)
    if not isinstance(value, (str, int)) or isinstance(value, bool) or str(value) == "":
        raise WebhookRejected(
            "malformed", f"delivery {delivery.delivery_id}: {delivery.event} has no {key!r}"
        )
    return str(value)


def _last_known_target(journal: Journal, name: str, alias: str) -> str | None:
    """What this installation last recorded ``name@alias`` as pointing at."""
    for _, _, spec in reversed(journal.tasks_for(registry_key(REGISTRY_ALIAS, name, alias))):
        target = spec.get("alias_version") or spec.get("previous_version")
        if target:
            return str(target)
    return None


@dataclass(frozen=True)
class RegistryEvent:
    """What a delivery asks us to anchor (the arguments of ``journal_registry_event``)."""

    event: str
    name: str
    key: str  # the version, or the alias for alias events
    fields: dict[str, Any]
    not_before: float = 0.0

    def describe(self) -> str:
        if self.event == REGISTRY_ALIAS:
            target = self.fields.get("alias_version")
            return f"{self.name}@{self.key} -> " + (f"v{target}" if target else "deleted")
        return f"{self.name}/{self.key} registered"


#: ``(model name, alias) -> the version its records last point it at`` (or ``None``).
TargetLookup = Callable[[str, str], "str | None"]


def registry_event(
    delivery: Delivery, journal: Journal, last_target: TargetLookup | None = None
) -> RegistryEvent | None:
    """The registry event a delivery reports (``None``: an event we do not anchor).

    ``last_target`` says where an alias's records last pointed it, for a deletion this
    installation did not see the alias for (MLflow's deletion names no version)."""
    data = delivery.data
    if delivery.event == ALIAS_CREATED:
        name, alias = _text(data, "name", delivery), _text(data, "alias", delivery)
        fields = {
            "alias": alias,
            "alias_version": _text(data, "version", delivery),
            "previous_version": None,
            "observed": _observed(delivery),
        }
        return RegistryEvent(REGISTRY_ALIAS, name, alias, fields)
    if delivery.event == ALIAS_DELETED:
        name, alias = _text(data, "name", delivery), _text(data, "alias", delivery)
        # MLflow does not say what the alias pointed at; the record is kept beside the
        # version we last saw it on (previous_version_known stays false)
        previous = _last_known_target(journal, name, alias) or (
            last_target(name, alias) if last_target is not None else None
        )
        if previous is None:
            return None  # no record says the alias existed: its history stays empty
        fields = {
            "alias": alias,
            "alias_version": None,
            "previous_version": previous,
            "observed": _observed(delivery),
        }
        return RegistryEvent(REGISTRY_ALIAS, name, alias, fields)
    if delivery.event == VERSION_CREATED:
        name, version = _text(data, "name", delivery), _text(data, "version", delivery)
        run_id = data.get("run_id")
        fields = {
            "source": data.get("source"),
            "run_id": str(run_id) if run_id else None,
            "observed": _observed(delivery, previous_known=True),
        }
        return RegistryEvent(
            REGISTRY_REGISTRATION,
            name,
            version,
            fields,
            not_before=time.time() + REGISTRATION_GRACE_SECONDS,
        )
    return None


def delivery_once_key(delivery_id: str) -> str:
    """The journal key under which a delivery id is remembered (replays are refused)."""
    return f"mlflow-webhook:{delivery_id}"
