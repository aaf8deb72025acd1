"""Properties of the alias timeline (pure), for random histories.

- Exact changes with consistent ``previous_version``: at any time after the first change,
  ``version_at`` names the version of the last change at or before that time, and nothing
  is a gap.
- One change whose ``previous_version`` contradicts the version before it: exactly one
  uncertain period, between those two changes, naming both.
- Any input at all: periods in time order, each ending where the next starts, never
  overlapping; at most one period covers a moment; input order never changes the result.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ario_mlflow.proof.alias_history import (
    AT_ABSENT,
    AT_NOT_RECORDED,
    AT_UNCERTAIN,
    AT_VERSION,
    RECORDED,
    UNCERTAIN,
    UNRECORDED,
    AliasChange,
    Timeline,
    build_timeline,
    version_at,
)

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VERSIONS = st.sampled_from(["1", "2", "3", "4", None])
OBSERVERS = st.sampled_from(["client", "webhook", None])


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _change(
    index: int,
    seconds: float,
    version: str | None,
    previous: str | None,
    *,
    previous_known: bool = True,
    observed_by: str | None = "client",
) -> AliasChange:
    moment = _at(seconds)
    found = observed_by == "reconcile"
    timed = not found and observed_by is not None
    return AliasChange(
        tx_id=f"tx-{index:04d}",
        version=version,
        previous=previous,
        previous_known=previous_known,
        # a record from before observed_by existed is dated by its signature
        signed_at=moment + timedelta(milliseconds=5) if timed else moment,
        changed_at=moment if timed else None,
        found_at=moment if found else None,
        observed_by=observed_by,
    )


@st.composite
def consistent_histories(draw: Any, min_size: int = 1) -> list[AliasChange]:
    """Exact changes at strictly increasing times, each ``previous`` the version before."""
    versions = draw(st.lists(VERSIONS, min_size=min_size, max_size=12))
    gaps = draw(
        st.lists(
            st.integers(min_value=1, max_value=10**9),
            min_size=len(versions),
            max_size=len(versions),
        )
    )
    first_previous = draw(VERSIONS)
    changes = []
    seconds = 0
    previous = first_previous
    for index, (version, gap) in enumerate(zip(versions, gaps, strict=True)):
        seconds += gap / 1000  # milliseconds apart at least
        observer = draw(OBSERVERS)
        changes.append(_change(index, seconds, version, previous, observed_by=observer))
        previous = version
    return changes


def _expected(changes: list[AliasChange], moment: datetime) -> AliasChange | None:
    """The last change at or before ``moment``."""
    before = [c for c in changes if c.at <= moment]
    return max(before, key=lambda c: c.at) if before else None


def _moments(changes: list[AliasChange], extra: list[float]) -> list[datetime]:
    """Each change's time, a microsecond either side, midpoints, and drawn times."""
    moments = [_at(s) for s in extra]
    for change in changes:
        moments += [change.at, change.at - timedelta(microseconds=1)]
        moments.append(change.at + timedelta(microseconds=1))
    for earlier, later in itertools.pairwise(changes):
        moments.append(earlier.at + (later.at - earlier.at) / 2)
    return moments


def _assert_well_formed(timeline: Timeline) -> None:
    periods = timeline.periods
    for index, period in enumerate(periods):
        if period.start is not None and period.end is not None:
            assert period.start <= period.end, period
        if index > 0:
            assert period.start is not None, f"only the first period may start unknown: {period}"
        if index < len(periods) - 1:
            assert period.end is not None, f"only the last period may be open: {period}"
    for earlier, later in itertools.pairwise(periods):
        assert earlier.end == later.start, (earlier, later)  # contiguous, no overlap
        if earlier.start is not None and later.start is not None:
            assert earlier.start <= later.start


# --- consistent exact histories ---------------------------------------------------------


@PROPERTY
@given(
    consistent_histories(),
    st.lists(st.floats(min_value=0, max_value=2e7, allow_nan=False), max_size=5),
)
def test_a_consistent_history_answers_the_last_change_at_or_before_any_time(
    changes: list[AliasChange], extra: list[float]
) -> None:
    timeline = build_timeline(changes, current=changes[-1].version)
    _assert_well_formed(timeline)
    assert not [p for p in timeline.periods if p.kind == UNCERTAIN]
    # the only period no record covers is the one before the first record, when the
    # first record says what the alias named before it
    unrecorded = [p for p in timeline.periods if p.kind == UNRECORDED]
    first = changes[0]
    if first.previous is not None:
        assert unrecorded == [timeline.periods[0]]
        assert unrecorded[0].version == first.previous
    else:
        assert unrecorded == []
    assert timeline.gaps == unrecorded
    # recorded versions: the sequence, consecutive repeats merged
    merged = [
        c.version for i, c in enumerate(changes) if i == 0 or changes[i - 1].version != c.version
    ]
    assert [p.version for p in timeline.periods if p.kind == RECORDED] == merged
    for moment in _moments(changes, extra):
        answer = version_at(timeline, moment)
        last = _expected(changes, moment)
        if last is None:
            assert answer.status == AT_NOT_RECORDED, (moment, answer)
            assert answer.version is None
            continue
        if last.version is None:
            assert answer.status == AT_ABSENT, (moment, answer)
        else:
            assert (answer.status, answer.version) == (AT_VERSION, last.version), (moment, answer)
        assert answer.period is not None
        assert answer.period.covers(moment)


@PROPERTY
@given(consistent_histories(min_size=2), st.data())
def test_one_inconsistent_previous_makes_exactly_one_uncertain_period(
    changes: list[AliasChange], data: Any
) -> None:
    # a change whose version differs from the one before it (else they merge)
    moves = [i for i in range(1, len(changes)) if changes[i].version != changes[i - 1].version]
    if not moves:
        changes = [
            *changes,
            _change(999, changes[-1].at.timestamp() - T0.timestamp() + 1, "9", changes[-1].version),
        ]
        moves = [len(changes) - 1]
    index = data.draw(st.sampled_from(moves))
    before = changes[index - 1].version
    bogus = data.draw(
        st.sampled_from(["1", "2", "3", "4", "5", None]).filter(lambda v: v != before)
    )
    changes[index] = replace(changes[index], previous=bogus)
    timeline = build_timeline(changes, current=changes[-1].version)
    _assert_well_formed(timeline)
    uncertain = [p for p in timeline.periods if p.kind == UNCERTAIN]
    assert len(uncertain) == 1, timeline.periods
    (gap,) = uncertain
    # the gap starts at the last record naming the version before (confirmations narrow it)
    assert (gap.start, gap.end) == (changes[index - 1].at, changes[index].at)
    assert gap.candidates == (before, bogus)
    middle = changes[index - 1].at + (changes[index].at - changes[index - 1].at) / 2
    answer = version_at(timeline, middle)
    assert answer.status == AT_UNCERTAIN
    assert answer.candidates == (before, bogus)
    # outside the gap the answers are as before
    assert version_at(timeline, changes[index].at).version == changes[index].version


@PROPERTY
@given(consistent_histories(), VERSIONS.filter(lambda v: v is not None))
def test_a_registry_ahead_of_the_records_is_one_open_uncertain_period(
    changes: list[AliasChange], current: str
) -> None:
    if changes[-1].version == current:
        current = current + "0"
    timeline = build_timeline(changes, current=current)
    _assert_well_formed(timeline)
    last = timeline.periods[-1]
    # a gap after a run of records naming one version starts at the last of them
    assert (last.kind, last.start, last.end) == (UNCERTAIN, changes[-1].at, None)
    assert last.candidates == (changes[-1].version, current)
    later = changes[-1].at + timedelta(days=3)
    assert version_at(timeline, later).status == AT_UNCERTAIN


# --- any input at all -----------------------------------------------------------------


@st.composite
def any_histories(draw: Any) -> list[AliasChange]:
    """Changes of every kind: exact and found by reconcile, previous known or not,
    consistent or not, times that may be equal."""
    count = draw(st.integers(min_value=0, max_value=10))
    changes = []
    for index in range(count):
        changes.append(
            _change(
                index,
                draw(st.integers(min_value=0, max_value=6)) * 60.0,
                draw(VERSIONS),
                draw(VERSIONS),
                previous_known=draw(st.booleans()),
                observed_by=draw(st.sampled_from(["client", "webhook", "reconcile", None])),
            )
        )
    return changes


@PROPERTY
@given(any_histories(), st.one_of(st.none(), VERSIONS), st.randoms(use_true_random=False))
def test_periods_are_ordered_contiguous_and_independent_of_input_order(
    changes: list[AliasChange], current: str | None, rng: Any
) -> None:
    timeline = build_timeline(changes, current)
    _assert_well_formed(timeline)
    shuffled = list(changes)
    rng.shuffle(shuffled)
    assert build_timeline(shuffled, current) == timeline
    assert build_timeline(list(reversed(changes)), current) == timeline
    for minutes in range(-1, 8):
        for offset in (timedelta(0), timedelta(microseconds=1), timedelta(seconds=30)):
            moment = _at(minutes * 60.0) + offset
            covering = [p for p in timeline.periods if p.covers(moment)]
            assert len(covering) <= 1, (moment, covering)
            answer = version_at(timeline, moment)
            assert answer.period is (covering[0] if covering else None)
    # every verified record is in the timeline, as a period of its own or a confirmation
    seen = set()
    for period in timeline.periods:
        if period.change is not None:
            seen.add(period.change.tx_id)
            seen.update(c.tx_id for c in period.confirmations)
    assert seen == {c.tx_id for c in changes}


@PROPERTY
@given(consistent_histories(min_size=1), VERSIONS)
def test_a_change_found_by_reconcile_is_never_given_an_exact_time(
    changes: list[AliasChange], found: str | None
) -> None:
    if found == changes[-1].version:
        found = "found"
    seconds = changes[-1].at.timestamp() - T0.timestamp() + 3600
    late = _change(500, seconds, found, None, previous_known=False, observed_by="reconcile")
    timeline = build_timeline([*changes, late], current=found)
    _assert_well_formed(timeline)
    kinds = [p.kind for p in timeline.periods]
    assert kinds[-2:] == [UNCERTAIN, RECORDED]
    assert kinds.count(UNCERTAIN) == 1
    gap = timeline.periods[-2]
    assert (gap.start, gap.end) == (changes[-1].at, late.at)
    assert gap.candidates == (changes[-1].version, found)
    answer = version_at(timeline, changes[-1].at + timedelta(minutes=30))
    assert (answer.status, answer.candidates) == (AT_UNCERTAIN, (changes[-1].version, found))
    assert version_at(timeline, late.at).version == found


# --- found by these properties ------------------------------------------------------


def test_a_return_to_the_same_version_hides_no_unrecorded_interlude() -> None:
    """v1 recorded at 0 h; at 10 h a client record says the alias moved *from v3* to v1.
    So it named v3 for a while no record covers, and the history must show that as a gap.
    The timeline merges the second record into the first (same version) as a
    confirmation, never looks at its ``previous_version``, and answers "v1, recorded"
    for 5 h."""
    first = _change(0, 0, "1", None)
    back = _change(1, 36_000, "1", "3")
    timeline = build_timeline([first, back], current="1")
    uncertain = [p for p in timeline.periods if p.kind == UNCERTAIN]
    assert len(uncertain) == 1, timeline.periods
    assert uncertain[0].candidates == ("1", "3")
    answer = version_at(timeline, _at(18_000))
    assert answer.status == AT_UNCERTAIN, answer
    assert set(answer.candidates) == {"1", "3"}


@PROPERTY
@given(consistent_histories(min_size=2), st.data())
def test_any_inconsistent_previous_makes_exactly_one_uncertain_period(
    changes: list[AliasChange], data: Any
) -> None:
    """The property of the test above without its restriction: the contradicted change
    may name the same version as the one before it (a return, e.g. v1 -> v3 unseen ->
    v1)."""
    index = data.draw(st.integers(min_value=1, max_value=len(changes) - 1))
    before = changes[index - 1].version
    bogus = data.draw(
        st.sampled_from(["1", "2", "3", "4", "5", None]).filter(lambda v: v != before)
    )
    changes[index] = replace(changes[index], previous=bogus)
    timeline = build_timeline(changes, current=changes[-1].version)
    _assert_well_formed(timeline)
    assert len([p for p in timeline.periods if p.kind == UNCERTAIN]) == 1, timeline.periods


def test_a_confirming_record_is_not_turned_into_uncertainty() -> None:
    """v1 recorded at 0 h and confirmed by a record at 10 h (moved from v1 to v1); the
    registry names v2 now and no record says when. By the timeline's own rule (between
    two consistent records the alias named the first one's version) it named v1 until
    10 h; only after that is it uncertain. The timeline starts the gap at 0 h instead,
    answering "uncertain" for a time two records cover."""
    first = _change(0, 0, "1", None)
    again = _change(1, 36_000, "1", "1")
    timeline = build_timeline([first, again], current="2")
    answer = version_at(timeline, _at(18_000))
    assert (answer.status, answer.version) == (AT_VERSION, "1"), timeline.periods
    assert version_at(timeline, _at(40_000)).status == AT_UNCERTAIN
