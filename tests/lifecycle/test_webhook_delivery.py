"""Checking MLflow's webhook deliveries: signed by MLflow's own signing code, then forged,
replayed, stale, from the future, unsigned and malformed ones, each refused with its reason."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from mlflow.webhooks.delivery import _generate_hmac_signature

from ario_mlflow.errors import WebhookRejected
from ario_mlflow.lifecycle.handlers import install
from ario_mlflow.lifecycle.webhooks import (
    ALIAS_CREATED,
    ALIAS_DELETED,
    VERSION_CREATED,
    check_delivery,
    delivery_once_key,
    registry_event,
)
from ario_mlflow.outbox.journal import Journal
from ario_mlflow.proof.alias_history import parse_time
from tests.support.webhooks import signed_delivery

SECRET = "s3cret-shared-with-mlflow"


def signed(
    data: dict[str, Any],
    *,
    entity: str = "model_version_alias",
    action: str = "created",
    delivery_id: str = "d-1",
    timestamp: int | None = None,
    secret: str = SECRET,
) -> tuple[dict[str, str], bytes]:
    """Headers and body as MLflow sends them (its own signature function)."""
    return signed_delivery(
        data, secret, entity=entity, action=action, delivery_id=delivery_id, stamp=timestamp
    )


ALIAS = {"name": "credit", "alias": "champion", "version": "2"}


def test_a_delivery_mlflow_signed_is_taken() -> None:
    headers, body = signed(ALIAS)
    delivery = check_delivery(headers, body, SECRET)
    assert delivery.event == ALIAS_CREATED
    assert delivery.data == ALIAS
    assert parse_time(delivery.sent_at).timestamp() == int(headers["X-MLflow-Timestamp"])
    # header names are case-insensitive on the wire
    lowered = {k.lower(): v for k, v in headers.items()}
    assert check_delivery(lowered, body, SECRET).delivery_id == "d-1"


def test_a_forged_delivery_is_refused() -> None:
    headers, body = signed(ALIAS, secret="not-the-secret-at-all")
    with pytest.raises(WebhookRejected) as caught:
        check_delivery(headers, body, SECRET)
    assert caught.value.reason == "forged"
    assert caught.value.status == 401


def test_a_body_changed_after_signing_is_refused() -> None:
    headers, body = signed(ALIAS)
    tampered = body.replace(b'"version": "2"', b'"version": "9"')
    assert tampered != body
    with pytest.raises(WebhookRejected, match="signature does not match") as caught:
        check_delivery(headers, tampered, SECRET)
    assert caught.value.reason == "forged"


def test_a_delivery_id_changed_to_dodge_replay_detection_is_refused() -> None:
    headers, body = signed(ALIAS)
    headers["X-MLflow-Delivery-Id"] = "d-2"
    with pytest.raises(WebhookRejected) as caught:
        check_delivery(headers, body, SECRET)
    assert caught.value.reason == "forged"


@pytest.mark.parametrize(("offset", "word"), [(-3600, "old"), (3600, "future")])
def test_a_stale_or_future_delivery_is_refused(offset: int, word: str) -> None:
    headers, body = signed(ALIAS, timestamp=int(time.time()) + offset)
    with pytest.raises(WebhookRejected, match=word) as caught:
        check_delivery(headers, body, SECRET)
    assert caught.value.reason == "stale"
    # the tolerance is the caller's
    assert check_delivery(headers, body, SECRET, tolerance=7200).delivery_id == "d-1"


def test_an_unsigned_delivery_is_refused() -> None:
    headers, body = signed(ALIAS)
    del headers["X-MLflow-Signature"]
    with pytest.raises(WebhookRejected) as caught:
        check_delivery(headers, body, SECRET)
    assert caught.value.reason == "unsigned"


@pytest.mark.parametrize("signature", ["v1,@@@", "v2,AAAA", "", "v1"])
def test_a_garbled_signature_is_refused(signature: str) -> None:
    headers, body = signed(ALIAS)
    headers["X-MLflow-Signature"] = signature
    with pytest.raises(WebhookRejected) as caught:
        check_delivery(headers, body, SECRET)
    assert caught.value.reason in ("forged", "unsigned")


def test_a_change_dated_far_from_its_delivery_is_malformed() -> None:
    headers, body = signed(ALIAS)
    text = body.decode()
    moved = json.loads(text)
    moved["timestamp"] = "2020-01-01T00:00:00+00:00"
    forged_body = json.dumps(moved)
    stamp, delivery_id = headers["X-MLflow-Timestamp"], headers["X-MLflow-Delivery-Id"]
    headers["X-MLflow-Signature"] = _generate_hmac_signature(
        SECRET, delivery_id, stamp, forged_body
    )
    with pytest.raises(WebhookRejected, match="not near its delivery time") as caught:
        check_delivery(headers, forged_body.encode(), SECRET)
    assert caught.value.reason == "malformed"


def test_a_signed_body_that_is_not_a_delivery_is_malformed() -> None:
    stamp = str(int(time.time()))
    body = '{"hello": 1}'
    headers = {
        "X-MLflow-Delivery-Id": "d",
        "X-MLflow-Timestamp": stamp,
        "X-MLflow-Signature": _generate_hmac_signature(SECRET, "d", stamp, body),
    }
    with pytest.raises(WebhookRejected) as caught:
        check_delivery(headers, body.encode(), SECRET)
    assert caught.value.reason == "malformed"


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    install()
    return Journal(tmp_path / "journal.sqlite")


def test_an_alias_move_reports_what_mlflow_does_not_say(journal: Journal) -> None:
    event = registry_event(check_delivery(*signed(ALIAS), SECRET), journal)
    assert event is not None
    assert event.describe() == "credit@champion -> v2"
    observed = event.fields["observed"]
    assert observed["observed_by"] == "webhook"
    assert observed["changed_by"] is None  # MLflow's payload names no user
    assert observed["previous_version_known"] is False
    assert parse_time(observed["changed_at"]) <= datetime.now(timezone.utc)
    assert observed["webhook_delivery"]["delivery_id"] == "d-1"


def test_a_version_created_waits_for_the_clients_own_record(journal: Journal) -> None:
    data = {"name": "credit", "version": "3", "source": "models:/m-1", "run_id": "r1"}
    delivery = check_delivery(*signed(data, entity="model_version", action="created"), SECRET)
    assert delivery.event == VERSION_CREATED
    event = registry_event(delivery, journal)
    assert event is not None
    assert event.fields["run_id"] == "r1"
    assert event.not_before > time.time() + 1


def test_other_events_are_not_anchored(journal: Journal) -> None:
    data = {"name": "credit", "version": "3", "key": "k", "value": "v"}
    delivery = check_delivery(*signed(data, entity="model_version_tag", action="set"), SECRET)
    assert registry_event(delivery, journal) is None


def test_an_alias_event_without_its_alias_is_malformed(journal: Journal) -> None:
    delivery = check_delivery(*signed({"name": "credit", "version": "2"}), SECRET)
    with pytest.raises(WebhookRejected, match="'alias'"):
        registry_event(delivery, journal)


def test_a_delivery_is_journaled_once_even_across_journal_handles(
    journal: Journal, tmp_path: Path
) -> None:
    from ario_mlflow.lifecycle.registry import journal_registry_event

    delivery = check_delivery(*signed(ALIAS), SECRET)
    event = registry_event(delivery, journal)
    assert event is not None
    once = delivery_once_key(delivery.delivery_id)
    first = journal_registry_event(
        journal, event.event, event.name, event.key, event.fields, once=once
    )
    assert first is not None
    again = Journal(tmp_path / "journal.sqlite")  # a restarted receiver
    assert (
        journal_registry_event(again, event.event, event.name, event.key, event.fields, once=once)
        is None
    )
    assert len(again.tasks_for("alias:credit:champion")) == 1


def test_a_deletion_is_kept_beside_the_version_last_recorded(journal: Journal) -> None:
    from ario_mlflow.lifecycle.registry import journal_registry_event

    created = registry_event(check_delivery(*signed(ALIAS), SECRET), journal)
    assert created is not None
    journal_registry_event(journal, created.event, created.name, created.key, created.fields)
    headers, body = signed(
        {"name": "credit", "alias": "champion"}, action="deleted", delivery_id="d-2"
    )
    deleted = registry_event(check_delivery(headers, body, SECRET), journal)
    assert deleted is not None
    assert deleted.fields["alias_version"] is None
    assert deleted.fields["previous_version"] == "2"
    assert deleted.describe() == "credit@champion -> deleted"
    assert check_delivery(headers, body, SECRET).event == ALIAS_DELETED
