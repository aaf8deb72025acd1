"""Where an alias pointed, and when: the timeline built from its verified records.

Pure: it takes the ``alias_changed`` records that verified (and the registry's current
state, a hint) and answers which version the alias named over time. Nothing is smoothed
over: a change no record covers becomes an *uncertain* period listing the versions it may
have been, never a guess.

A record's time is when the change happened (``changed_at``, from the client that made it
or MLflow's webhook) or, for a change found later by reconciliation, only an upper bound
(``found_at``): the change then happened some time after the record before it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from ario_mlflow.proof.payloads import OBSERVED_BY_RECONCILE

RECORDED = "recorded"
#: A period in which the alias changed at a time no record gives (candidates listed).
UNCERTAIN = "uncertain"
#: Before the first record: the alias existed, since when is not recorded.
UNRECORDED = "unrecorded"

#: Answers of :func:`version_at`.
AT_VERSION = "version"
AT_ABSENT = "absent"
AT_UNCERTAIN = "uncertain"
AT_NOT_RECORDED = "not_recorded"


def parse_time(text: str) -> datetime:
    """An ISO 8601 time as an aware UTC datetime (``Z`` accepted; no offset means UTC)."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def format_time(moment: datetime | None) -> str | None:
    """``YYYY-MM-DDTHH:MM:SS(.ffffff)Z``, or ``None``."""
    if moment is None:
        return None
    text = moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0")
    return text.rstrip(".") + "Z"


@dataclass(frozen=True)
class AliasChange:
    """One verified ``alias_changed`` record, as far as the timeline needs it."""

    tx_id: str
    version: str | None
    previous: str | None
    previous_known: bool
    signed_at: datetime
    changed_at: datetime | None = None
    found_at: datetime | None = None
    observed_by: str | None = None
    changed_by: str | None = None

    @classmethod
    def from_payload(cls, tx_id: str, payload: Mapping[str, Any], signed_at: str) -> AliasChange:
        """From a record's payload and its envelope's ``signed_at`` (records made before
        ``observed_by`` existed are a client's: their time is when they were signed)."""

        def when(key: str) -> datetime | None:
            value = payload.get(key)
            return parse_time(value) if isinstance(value, str) and value else None

        def text(key: str) -> str | None:
            value = payload.get(key)
            return None if value is None else str(value)

        return cls(
            tx_id=tx_id,
            version=text("model_version"),
            previous=text("previous_version"),
            previous_known=payload.get("previous_version_known") is not False,
            signed_at=parse_time(signed_at),
            changed_at=when("changed_at"),
            found_at=when("found_at"),
            observed_by=text("observed_by"),
            changed_by=text("changed_by"),
        )

    @property
    def exact(self) -> bool:
        """Is the time of the change known (not only that it was found by then)?"""
        return self.observed_by != OBSERVED_BY_RECONCILE

    @property
    def at(self) -> datetime:
        """When the change happened, or (not :attr:`exact`) the latest it can have."""
        return self.changed_at or self.found_at or self.signed_at


@dataclass(frozen=True)
class Period:
    """A stretch of time and what the alias named in it."""

    kind: str
    start: datetime | None  # None: not known (before the first record)
    end: datetime | None  # None: still so now
    version: str | None = None  # RECORDED/UNRECORDED: the version (None: no alias)
    candidates: tuple[str | None, ...] = ()  # UNCERTAIN: what it may have been, in order
    change: AliasChange | None = None  # RECORDED: the record that made it so
    confirmations: tuple[AliasChange, ...] = ()  # later records saying the same
    note: str = ""

    def covers(self, moment: datetime) -> bool:
        """Is ``moment`` in ``[start, end)``?"""
        return (self.start is None or self.start <= moment) and (
            self.end is None or moment < self.end
        )


@dataclass
class Timeline:
    """An alias's periods, oldest first, and what the registry says now."""

    periods: list[Period] = field(default_factory=list)
    current: str | None = None

    @property
    def gaps(self) -> list[Period]:
        """Periods no record covers."""
        return [p for p in self.periods if p.kind != RECORDED]


def _name(version: str | None) -> str:
    return "nothing (no alias)" if version is None else f"v{version}"


def _groups(changes: Sequence[AliasChange]) -> list[list[AliasChange]]:
    """Changes in time order, consecutive ones naming the same version merged (a move seen
    by our client and by the webhook is one move)."""
    ordered = sorted(changes, key=lambda c: (c.at, c.signed_at, c.tx_id))
    groups: list[list[AliasChange]] = []
    for change in ordered:
        # a later record of the same version confirms the move, unless it says the alias
        # came from elsewhere (a move away and back that no record covers)
        came_from_elsewhere = change.previous_known and change.previous != change.version
        if groups and groups[-1][0].version == change.version and not came_from_elsewhere:
            groups[-1].append(change)
        else:
            groups.append([change])
    return groups


def build_timeline(changes: Sequence[AliasChange], current: str | None) -> Timeline:
    """The periods of an alias from its verified records and the registry's current
    target (``current``; ``None``: no such alias now)."""
    timeline = Timeline(current=current)
    periods = timeline.periods
    before: AliasChange | None = None
    for group in _groups(changes):
        change = group[0]
        if before is None:
            if change.previous_known and change.previous is not None:
                periods.append(
                    Period(
                        UNRECORDED,
                        None,
                        change.at,
                        version=change.previous,
                        note=f"{_name(change.previous)} before the first record; "
                        "since when is not recorded",
                    )
                )
        elif not change.exact:
            periods.append(
                Period(
                    UNCERTAIN,
                    before.at,
                    change.at,
                    candidates=(before.version, change.version),
                    note=f"changed from {_name(before.version)} to {_name(change.version)} "
                    f"at a time no record gives; found by reconciliation at "
                    f"{format_time(change.at)}",
                )
            )
        elif change.previous_known and change.previous != before.version:
            periods.append(
                Period(
                    UNCERTAIN,
                    before.at,
                    change.at,
                    candidates=(before.version, change.previous),
                    note=f"changed from {_name(before.version)} to {_name(change.previous)} "
                    "with no record of that change",
                )
            )
        periods.append(
            Period(
                RECORDED,
                change.at,
                None,
                version=change.version,
                change=change,
                confirmations=tuple(group[1:]),
            )
        )
        before = group[-1]  # what follows starts from the last record saying so
    _close(periods)
    if before is None:
        if current is not None:
            periods.append(
                Period(
                    UNCERTAIN,
                    None,
                    None,
                    candidates=(current,),
                    note=f"the registry says {_name(current)} now, and no record says so",
                )
            )
    elif before.version != current:
        periods.append(
            Period(
                UNCERTAIN,
                before.at,
                None,
                candidates=(before.version, current),
                note=f"the registry says {_name(current)} now, and no record says so "
                "(`ar-io-mlflow reconcile` records it)",
            )
        )
        _close(periods)
    return timeline


def _close(periods: list[Period]) -> None:
    """Each period ends where the next one starts."""
    for index in range(len(periods) - 1):
        following = periods[index + 1]
        period = periods[index]
        if period.end is None or (following.start is not None and following.start < period.end):
            periods[index] = replace(period, end=following.start)


@dataclass(frozen=True)
class Answer:
    """Which version the alias named at a moment, as far as the records say."""

    status: str  # AT_VERSION, AT_ABSENT, AT_UNCERTAIN or AT_NOT_RECORDED
    version: str | None
    period: Period | None
    candidates: tuple[str | None, ...] = ()


def version_at(timeline: Timeline, moment: datetime) -> Answer:
    """The version the alias named at ``moment``; uncertain or not recorded when no
    record can say."""
    for period in reversed(timeline.periods):
        if not period.covers(moment):
            continue
        if period.kind == RECORDED:
            if period.version is None:
                return Answer(AT_ABSENT, None, period)
            return Answer(AT_VERSION, period.version, period)
        if period.kind == UNCERTAIN:
            return Answer(AT_UNCERTAIN, None, period, period.candidates)
        return Answer(AT_NOT_RECORDED, None, period, (period.version,))
    return Answer(AT_NOT_RECORDED, None, None)
