"""``history`` and ``reconcile`` at their edges: an old model version deleted, a registry of
more than one page of models, a model name with a quote, ``--at`` exactly at a move, an
alias no record covers, a webhook deletion of an alias nobody recorded, a delivery dated
into the past by whoever holds the webhook secret, and a client moving an alias back to the
version it named before an unrecorded UI move.

Real MLflow (sqlite), the local gateway over HTTP, records made by ArioMlflowClient, the
webhook receiver in process.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import mlflow

from ario_mlflow.config import load_settings
from ario_mlflow.outbox.journal import Journal
from tests.support.cli import invoke_cli
from tests.support.lifecycle import register, set_alias, sync, train
from tests.support.webhooks import signed_delivery

SECRET = "edge-tests-webhook-secret-0123456789"


def _history(ref: str = "credit@champion", *args: str) -> tuple[int, dict[str, Any]]:
    code, out, err = invoke_cli(["history", ref, "--format", "json", *args])
    assert out, err
    return code, json.loads(out)


def _reconcile(*args: str) -> tuple[int, dict[str, Any]]:
    code, out, err = invoke_cli(["reconcile", *args, "--format", "json"])
    assert out, err
    return code, json.loads(out)


def _two_client_moves() -> Any:
    client = register("credit", train(), train())
    set_alias(client, "credit", "champion", "1")
    time.sleep(0.05)
    set_alias(client, "credit", "champion", "2")
    assert sync()
    return client


def _delivery(
    data: dict[str, Any], *, action: str = "created", sent_at: str | None = None
) -> tuple[dict[str, str], bytes]:
    """A delivery as MLflow makes it, signed with MLflow's own function."""
    return signed_delivery(data, SECRET, action=action, sent_at=sent_at)


def _receive(*deliveries: tuple[dict[str, str], bytes]) -> list[int]:
    """Hand deliveries to a receiver in this process; wait for what it took."""
    from ario_mlflow.lifecycle.webhook_server import WebhookReceiver

    receiver = WebhookReceiver(SECRET)
    statuses = [receiver.handle(headers, body, "test")[0] for headers, body in deliveries]
    receiver.close(20)
    return statuses


# --- the registry changed under the records -------------------------------------------


def test_deleting_an_old_model_version_does_not_fail_the_alias_history(
    mlflow_store: str, local_gateway: Any
) -> None:
    """Deleting an archived version is routine MLflow housekeeping: its run (and the
    record's payload witness in it) stays. @champion's history (v1 then v2, both
    anchored) must still verify; a tamper alarm forever after, with ``reconcile`` failing
    in cron on every run, is not what deleting v1 means."""
    client = _two_client_moves()
    mlflow.MlflowClient().delete_model_version("credit", "1")
    code, history = _history()
    assert history["problems"] == [], history["problems"]
    assert code == 0
    assert [p["version"] for p in history["periods"] if p["kind"] == "recorded"] == ["1", "2"]
    code, report = _reconcile("credit")
    assert (code, report["problems"]) == (0, []), report
    aliases = client.get_registered_model("credit").aliases
    assert {k: str(v) for k, v in aliases.items()} == {"champion": "2"}


def test_reconcile_reaches_every_model_past_the_first_page(
    mlflow_store: str, local_gateway: Any
) -> None:
    """MlflowClient.search_registered_models returns 100 models a page by default; a
    registry of more models must still be reconciled in full. The model that sorts last
    has a version registered with plain MLflow, which must be found and recorded."""
    plain = mlflow.MlflowClient()
    for number in range(101):
        plain.create_registered_model(f"m-{number:03d}")
    trained = train()
    mlflow.register_model(trained.model_uri, "zz-credit")  # no ArioMlflowClient
    code, report = _reconcile()
    assert len(report["models"]) == 102, f"reconciled {len(report['models'])} of 102 models"
    assert "zz-credit" in report["models"]
    assert [(f["model"], f["kind"], f["key"]) for f in report["found"]] == [
        ("zz-credit", "registration", "1")
    ]
    assert code == 0


def test_a_model_name_with_a_quote_breaks_neither_history_nor_reconcile(
    mlflow_store: str, local_gateway: Any
) -> None:
    """MLflow allows ``'`` in model names; the product builds
    ``search_model_versions(f"name='{name}'")``, which MLflow cannot parse for such a name.
    One such model must not stop ``reconcile`` (from cron, for every model) nor make
    ``history`` crash."""
    plain = mlflow.MlflowClient()
    quoted = "bob's model"
    mlflow.register_model(train().model_uri, quoted)
    plain.set_registered_model_alias(quoted, "champion", "1")
    mlflow.register_model(train().model_uri, "credit")
    code, report = _reconcile()
    assert sorted(report["models"]) == sorted([quoted, "credit"])
    assert ("credit", "registration", "1") in [
        (f["model"], f["kind"], f["key"]) for f in report["found"]
    ]
    assert code == 0, report
    code, history = _history(f"{quoted}@champion")
    assert code == 0, history
    assert [p["version"] for p in history["periods"]] == ["1"]


# --- --at and gaps ---------------------------------------------------------------------


def test_at_exactly_a_move_names_the_new_version_and_a_microsecond_before_the_old(
    mlflow_store: str, local_gateway: Any
) -> None:
    _two_client_moves()
    _, history = _history()
    moved = history["periods"][1]["from"]
    assert history["periods"][1]["version"] == "2"
    code, at = _history("credit@champion", "--at", moved)
    assert (code, at["version"], at["at_status"]) == (0, "2", "version")
    just_before = datetime.fromisoformat(moved.replace("Z", "+00:00")) - timedelta(microseconds=1)
    code, at = _history("credit@champion", "--at", just_before.isoformat())
    assert (code, at["version"]) == (0, "1")
    # the same instant written with another offset is the same instant
    elsewhere = datetime.fromisoformat(moved.replace("Z", "+00:00")).astimezone(
        timezone(timedelta(hours=5, minutes=30))
    )
    code, at = _history("credit@champion", "--at", elsewhere.isoformat())
    assert (code, at["version"]) == (0, "2")
    # before the first record: not recorded, exit 1
    first = datetime.fromisoformat(history["periods"][0]["from"].replace("Z", "+00:00"))
    code, at = _history("credit@champion", "--at", (first - timedelta(seconds=1)).isoformat())
    assert (code, at["version"], at["at_status"]) == (1, None, "not_recorded")


def test_an_alias_with_no_record_but_a_target_is_one_gap(
    mlflow_store: str, local_gateway: Any
) -> None:
    mlflow.register_model(train().model_uri, "credit")
    mlflow.MlflowClient().set_registered_model_alias("credit", "champion", "1")
    _, history = _history()
    assert history["records"] == []
    assert history["current_version"] == "1"
    assert history["gaps"] == 1
    ((period,),) = [history["periods"]]
    assert (period["kind"], period["from"], period["to"]) == ("uncertain", None, None)
    assert period["candidates"] == ["1"]
    now = datetime.now(timezone.utc).isoformat()
    code, at = _history("credit@champion", "--at", now)
    assert (code, at["version"], at["at_status"], at["candidates"]) == (
        1,
        None,
        "uncertain",
        ["1"],
    )
    code, out, _ = invoke_cli(["history", "credit@champion"])
    assert "GAP" in out
    assert "0 verified record(s), 1 gap(s); the registry says v1 now" in out
    # an alias that never existed: nothing to show, and --at cannot say anything
    code, at = _history("credit@ghost", "--at", now)
    assert (code, at["periods"], at["at_status"]) == (1, [], "not_recorded")


def test_a_client_moving_back_shows_the_unrecorded_interlude_as_a_gap(
    mlflow_store: str, local_gateway: Any
) -> None:
    """@champion: v1 by the client; v2 in the UI with no receiver running (no record);
    v1 again by the client, whose record says it moved *from v2*. The history must show
    that the alias named v2 for a while no record dates; ``--at`` inside that while must
    not answer v1 for certain."""
    client = register("credit", train(), train())
    set_alias(client, "credit", "champion", "1")
    time.sleep(0.2)
    mlflow.MlflowClient().set_registered_model_alias("credit", "champion", "2")  # the UI
    inside = datetime.now(timezone.utc)
    time.sleep(0.2)
    set_alias(client, "credit", "champion", "1")
    assert sync()
    _, history = _history()
    back = [r for r in history["records"] if r["previous_version"] == "2"]
    assert len(back) == 1, history["records"]  # the client recorded where it came from
    assert history["gaps"] >= 1, history["periods"]
    code, at = _history("credit@champion", "--at", inside.isoformat())
    assert at["at_status"] == "uncertain", at
    assert "2" in at["candidates"]
    assert code == 1


# --- webhook records -------------------------------------------------------------------


def test_a_webhook_deletion_of_an_alias_nobody_recorded_still_verifies(
    mlflow_store: str, local_gateway: Any, monkeypatch: Any
) -> None:
    """The receiver is new (its journal knows nothing of @champion) and no record ever
    named @champion; someone deletes it in the UI. MLflow's payload does not say what it
    pointed at, and nothing else does: the receiver takes the delivery but records nothing
    (a record naming no version could hold its payload nowhere), so the history stays
    empty and verifies, and reconcile has nothing to add."""
    register("credit", train())
    plain = mlflow.MlflowClient()
    plain.set_registered_model_alias("credit", "champion", "1")  # before the receiver ran
    plain.delete_registered_model_alias("credit", "champion")
    headers, body = _delivery({"name": "credit", "alias": "champion"}, action="deleted")
    assert _receive((headers, body)) == [200]
    assert sync()
    tasks = Journal.at_home(load_settings().home).tasks_for("alias:credit:champion")
    assert tasks == []
    code, history = _history()
    assert history["problems"] == [], history["problems"]
    assert code == 0
    assert history["periods"] == []
    code, report = _reconcile("credit")
    assert (code, report["problems"]) == (0, []), report


def test_a_delivery_dated_into_the_past_cannot_rewrite_what_the_alias_named_then(
    mlflow_store: str, local_gateway: Any
) -> None:
    """@champion: v1 at t1, v2 at t2 (a second later), both by the client. Then a
    delivery signed with the webhook secret (which MLflow's server and its operators
    hold), fresh by its header, whose payload ``timestamp`` lies between t1 and t2, says
    @champion was moved to v2. The receiver now refuses a payload time more than the
    tolerance (300 s) from the header's, so this works only within the last 5 minutes,
    but there it still works: the timeline merges the client's v2 record (which says it
    moved *from v1* at t2) into the forged one as a confirmation and never reads its
    ``previous_version``. ``history --at`` a moment between t1 and t2 must still say v1,
    or at worst be uncertain, never "v2" for certain."""
    client = register("credit", train(), train())
    set_alias(client, "credit", "champion", "1")
    t1 = datetime.now(timezone.utc)
    time.sleep(1.0)
    set_alias(client, "credit", "champion", "2")
    forged_time = t1 + timedelta(milliseconds=300)
    headers, body = _delivery(
        {"name": "credit", "alias": "champion", "version": "2"},
        sent_at=forged_time.isoformat(),
    )
    statuses = _receive((headers, body))
    assert sync()
    _, at = _history("credit@champion", "--at", (t1 + timedelta(milliseconds=600)).isoformat())
    assert at["version"] != "2" or at["at_status"] != "version", (
        f"delivery answered {statuses}; the history now says @champion was v2 at a time "
        "the client's records say v1"
    )
    assert at["version"] == "1" or at["at_status"] == "uncertain"
