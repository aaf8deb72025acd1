"""The alias timeline (pure): which version an alias named when, and where no record says."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from ario_mlflow.proof.alias_history import (
    AT_ABSENT,
    AT_NOT_RECORDED,
    AT_UNCERTAIN,
    AT_VERSION,
    RECORDED,
    UNCERTAIN,
    UNRECORDED,
    AliasChange,
    build_timeline,
    format_time,
    parse_time,
    version_at,
)

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc)


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


def change(
    tx: str,
    version: str | None,
    at: float,
    *,
    previous: str | None = None,
    previous_known: bool = True,
    observed_by: str = "client",
) -> AliasChange:
    moment = hours(at)
    found = observed_by == "reconcile"
    return AliasChange(
        tx_id=tx,
        version=version,
        previous=previous,
        previous_known=previous_known,
        signed_at=moment + timedelta(seconds=1),
        changed_at=None if found else moment,
        found_at=moment if found else None,
        observed_by=observed_by,
        changed_by="alice" if observed_by == "client" else None,
    )


def test_the_version_between_two_moves_is_the_first_one() -> None:
    timeline = build_timeline(
        [change("a", "1", 0), change("b", "2", 10, previous="1")], current="2"
    )
    assert [p.kind for p in timeline.periods] == [RECORDED, RECORDED]
    assert version_at(timeline, hours(5)).version == "1"
    assert version_at(timeline, hours(5)).status == AT_VERSION
    assert version_at(timeline, hours(10)).version == "2"  # the move itself counts
    assert version_at(timeline, hours(100)).version == "2"
    assert version_at(timeline, hours(-1)).status == AT_NOT_RECORDED
    assert timeline.gaps == []


def test_records_are_ordered_by_when_the_change_happened_not_by_input_order() -> None:
    timeline = build_timeline(
        [change("b", "2", 10, previous="1"), change("a", "1", 0)], current="2"
    )
    assert [p.change.tx_id for p in timeline.periods if p.change] == ["a", "b"]


def test_a_move_no_record_covers_is_a_gap_listing_both_versions() -> None:
    # v1 recorded, then v3 recorded saying it came from v2: the move 1 -> 2 is unrecorded
    timeline = build_timeline(
        [change("a", "1", 0), change("c", "3", 10, previous="2")], current="3"
    )
    gap = [p for p in timeline.periods if p.kind == UNCERTAIN]
    assert len(gap) == 1
    assert gap[0].candidates == ("1", "2")
    answer = version_at(timeline, hours(5))
    assert answer.status == AT_UNCERTAIN
    assert answer.version is None
    assert answer.candidates == ("1", "2")


def test_a_change_found_by_reconcile_has_no_exact_time() -> None:
    timeline = build_timeline(
        [change("a", "1", 0), change("r", "2", 10, observed_by="reconcile", previous_known=False)],
        current="2",
    )
    assert version_at(timeline, hours(5)).status == AT_UNCERTAIN
    assert version_at(timeline, hours(5)).candidates == ("1", "2")
    assert version_at(timeline, hours(11)).version == "2"


def test_the_registry_ahead_of_the_records_is_a_gap_at_the_end() -> None:
    timeline = build_timeline([change("a", "1", 0)], current="4")
    last = timeline.periods[-1]
    assert last.kind == UNCERTAIN
    assert last.candidates == ("1", "4")
    assert "reconcile" in last.note
    assert version_at(timeline, hours(3)).status == AT_UNCERTAIN


def test_no_record_at_all_is_not_an_answer() -> None:
    timeline = build_timeline([], current="1")
    assert [p.kind for p in timeline.periods] == [UNCERTAIN]
    assert version_at(timeline, hours(1)).status == AT_UNCERTAIN
    assert build_timeline([], current=None).periods == []


def test_before_the_first_record_the_previous_target_is_unrecorded() -> None:
    timeline = build_timeline([change("b", "2", 10, previous="1")], current="2")
    assert timeline.periods[0].kind == UNRECORDED
    assert timeline.periods[0].version == "1"
    assert version_at(timeline, hours(5)).status == AT_NOT_RECORDED


def test_a_deleted_alias_names_no_version() -> None:
    timeline = build_timeline(
        [change("a", "1", 0), change("d", None, 10, previous="1")], current=None
    )
    assert version_at(timeline, hours(12)).status == AT_ABSENT
    assert version_at(timeline, hours(12)).version is None
    assert timeline.gaps == []


def test_one_move_seen_by_the_client_and_the_webhook_is_one_period() -> None:
    client = change("a", "2", 10, previous="1")
    webhook = change("w", "2", 10.0001, observed_by="webhook", previous_known=False)
    timeline = build_timeline([change("z", "1", 0), client, webhook], current="2")
    recorded = [p for p in timeline.periods if p.kind == RECORDED]
    assert [p.version for p in recorded] == ["1", "2"]
    assert [c.tx_id for c in recorded[1].confirmations] == ["w"]


def test_payload_fields_are_read_as_the_record_signed_them() -> None:
    parsed = AliasChange.from_payload(
        "tx",
        {
            "model_version": "3",
            "previous_version": None,
            "previous_version_known": False,
            "observed_by": "webhook",
            "changed_at": "2026-11-03T14:00:00.123456+00:00",
            "changed_by": None,
        },
        "2026-11-03T14:00:01+00:00",
    )
    assert parsed.version == "3"
    assert parsed.previous_known is False
    assert parsed.at == datetime(2026, 11, 3, 14, 0, 0, 123456, tzinfo=timezone.utc)
    legacy = AliasChange.from_payload("tx", {"model_version": "1"}, "2026-11-03T14:00:01Z")
    assert legacy.previous_known is True
    assert legacy.at == legacy.signed_at  # a 0.3.0 record: the time it was signed


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-03T14:00Z", datetime(2026, 11, 3, 14, tzinfo=timezone.utc)),
        ("2026-11-03T14:00", datetime(2026, 11, 3, 14, tzinfo=timezone.utc)),
        ("2026-11-03T15:00+01:00", datetime(2026, 11, 3, 14, tzinfo=timezone.utc)),
    ],
)
def test_times_are_utc(text: str, expected: datetime) -> None:
    assert parse_time(text) == expected
    assert format_time(parse_time(text)) == "2026-11-03T14:00:00Z"
