"""The verified history of a model's aliases (for ``history``, the audit, reconcile and the
serving gate of ``models:/NAME@ALIAS``): every ``alias_changed`` record found, checked,
and laid out as a timeline (:mod:`ario_mlflow.proof.alias_history`).

Records are looked for everywhere they can be claimed — the versions' ``ario.alias_tx.*``
tags, this installation's journal, and every gateway's index — so that deleting a tag hides
nothing. A record that verifies but whose payload can no longer be read, or one a tag or
the journal claims that does not verify, makes the history fail: that is what tampering
looks like. The registry's current target is a hint shown beside the records, never one
of them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ario_mlflow.errors import IntegrityError, ProofUnavailableError, TargetNotFoundError
from ario_mlflow.lifecycle.lineage import fetch_checked_envelope
from ario_mlflow.lifecycle.model_location import version_run_id
from ario_mlflow.lifecycle.recorder import REGISTRY_ALIAS, registry_key
from ario_mlflow.lifecycle.witness import read_witness
from ario_mlflow.proof import alias_history as history
from ario_mlflow.proof.alias_history import AliasChange, Period, Timeline
from ario_mlflow.proof.checks import issuer_pinned, record_problem
from ario_mlflow.proof.ed25519 import key_fingerprint
from ario_mlflow.proof.hashing import sha256_hex
from ario_mlflow.proof.payloads import ALIAS, REGISTRATION, TRAINING, model_version_subject
from ario_mlflow.tags import ALIAS_TX_PREFIX

logger = logging.getLogger(__name__)

SCHEMA = "ario.mlflow.alias-history/v1"
#: Where a record was claimed: a version's tag, this installation's journal, a gateway.
BY_TAG, BY_JOURNAL, BY_GATEWAY = "tag", "journal", "gateway"


@dataclass
class CheckedRecord:
    """One claimed ``alias_changed`` record and what checking it found."""

    tx_id: str
    claimed_by: set[str] = field(default_factory=set)
    aliases_claimed: set[str] = field(default_factory=set)
    alias: str | None = None
    change: AliasChange | None = None
    public_key: str | None = None
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        change = self.change
        return {
            "tx_id": self.tx_id,
            "claimed_by": sorted(self.claimed_by),
            "alias": self.alias,
            "verified": self.problem is None and change is not None,
            "problem": self.problem,
            "public_key": self.public_key,
            "version": change.version if change else None,
            "previous_version": change.previous if change else None,
            "previous_version_known": change.previous_known if change else None,
            "observed_by": change.observed_by if change else None,
            "changed_by": change.changed_by if change else None,
            "changed_at": history.format_time(change.changed_at) if change else None,
            "found_at": history.format_time(change.found_at) if change else None,
            "signed_at": history.format_time(change.signed_at) if change else None,
        }


def name_filter(name: str) -> str:
    """MLflow's filter for a model's versions (a name may hold either quote)."""
    quote = '"' if "'" in name else "'"
    return f"name={quote}{name}{quote}"


def _claims(
    client: Any, anchor: Any, name: str, aliases: Iterable[str]
) -> tuple[dict[str, CheckedRecord], str | None]:
    """Every TX claimed to be an alias record of ``name``, and the gateway search's
    failure (``None``: searched)."""
    claims: dict[str, CheckedRecord] = {}

    def claim(tx: str, source: str, alias: str | None = None) -> None:
        record = claims.setdefault(tx, CheckedRecord(tx))
        record.claimed_by.add(source)
        if alias:
            record.aliases_claimed.add(alias)

    for version in client.search_model_versions(name_filter(name)):
        for key, value in (version.tags or {}).items():
            if key.startswith(ALIAS_TX_PREFIX) and value:
                claim(value, BY_TAG, key[len(ALIAS_TX_PREFIX) :])
    journal = getattr(anchor, "journal", None)
    if journal is not None:
        for alias in aliases:
            for record in journal.records_for(registry_key(REGISTRY_ALIAS, name, alias)):
                claim(record.tx_id, BY_JOURNAL, alias)
    search_failure: str | None = None
    try:
        found = anchor.reader().search_everywhere(
            tags={"App-Name": "ar-io-mlflow", "Event-Type": ALIAS, "Model-Name": name}
        )
        for node in found.nodes:
            claim(node.id, BY_GATEWAY)
        if not found.answered:
            search_failure = "; ".join(f"{k}: {v}" for k, v in found.failed.items()) or "none"
    except Exception as exc:  # the tags and the journal still count; the index only adds
        search_failure = str(exc)
    return claims, search_failure


def _witness_run(
    client: Any,
    anchor: Any,
    name: str,
    version: str,
    envelope: dict[str, Any],
    *,
    trusted: Sequence[str],
) -> str:
    """The run whose artifacts hold an alias record's payload: the version's run, or —
    the version deleted from MLflow since — the run its signed chain names (alias record
    -> registration record -> training record, whose subject is the run)."""
    from mlflow.exceptions import MlflowException

    try:
        return str(version_run_id(client, client.get_model_version(name, version)))
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
    registration = fetch_checked_envelope(
        str(envelope.get("previous_hash")),
        anchor,
        lambda e: record_problem(
            e,
            event_type=REGISTRATION,
            subject=model_version_subject(name, version),
            trusted_keys=trusted,
        ),
    )
    training = fetch_checked_envelope(
        str(registration.get("previous_hash")),
        anchor,
        lambda e: record_problem(
            e, event_type=TRAINING, subject={"type": "mlflow_run"}, trusted_keys=trusted
        ),
    )
    return str(training["subject"]["run_id"])


def _check(
    record: CheckedRecord, client: Any, anchor: Any, name: str, trusted: Sequence[str]
) -> None:
    """Fetch, verify and read one claimed record (fills ``change`` or ``problem``)."""
    subject = {"type": "mlflow_model_version", "name": name}
    try:
        envelope = fetch_checked_envelope(
            record.tx_id,
            anchor,
            lambda e: record_problem(e, event_type=ALIAS, subject=subject, trusted_keys=trusted),
        )
    except ProofUnavailableError as exc:
        record.problem = f"the record could not be read from any source now: {exc}"
        return
    except Exception as exc:
        record.problem = f"the record does not verify: {exc}"
        return
    record.public_key = str(envelope.get("public_key"))
    try:
        version = str(envelope["subject"].get("version") or "")
        if not version:
            raise IntegrityError("it names no version, so no run holds its payload")
        run_id = _witness_run(client, anchor, name, version, envelope, trusted=trusted)
        data, _ = read_witness(client, run_id, envelope)
        if sha256_hex(data) != envelope.get("payload_hash"):
            raise IntegrityError("its payload in MLflow was edited (hash differs)")
        payload = json.loads(data)
        if not isinstance(payload, dict) or payload.get("model_name") != name:
            raise IntegrityError("its payload is not about this model")
        record.alias = str(payload.get("alias"))
        record.change = AliasChange.from_payload(
            record.tx_id, payload, str(envelope.get("signed_at"))
        )
    except Exception as exc:
        record.problem = f"signed and anchored, but its payload cannot be read: {exc}"


def checked_alias_records(
    client: Any, anchor: Any, name: str, aliases: Iterable[str], trusted: Sequence[str]
) -> tuple[list[CheckedRecord], str | None]:
    """Every alias record of model ``name`` found anywhere, each checked; and why the
    gateway index could not be searched (``None``: it was)."""
    claims, search_failure = _claims(client, anchor, name, aliases)
    for record in claims.values():
        _check(record, client, anchor, name, trusted)
    return list(claims.values()), search_failure


def _concerns(record: CheckedRecord, alias: str) -> bool:
    """Does this record bear on ``alias``? (An unreadable one bears on every alias it was
    claimed for, and on all of them when nothing says which.)"""
    if record.alias is not None:
        return record.alias == alias
    return not record.aliases_claimed or alias in record.aliases_claimed


def _ignorable(record: CheckedRecord) -> bool:
    """A record only the index knows of that does not verify: anyone can upload junk
    with our tags; it claims nothing we rely on."""
    return record.claimed_by == {BY_GATEWAY} and record.change is None and record.public_key is None


def _period_json(period: Period) -> dict[str, Any]:
    change = period.change
    return {
        "kind": period.kind,
        "from": history.format_time(period.start),
        "to": history.format_time(period.end),
        "version": period.version,
        "candidates": list(period.candidates),
        "tx_id": change.tx_id if change else None,
        "observed_by": change.observed_by if change else None,
        "changed_by": change.changed_by if change else None,
        "time_exact": change.exact if change else None,
        "confirmed_by": [c.tx_id for c in period.confirmations],
        "note": period.note,
    }


def timeline_json(
    name: str,
    alias: str,
    records: Sequence[CheckedRecord],
    current: str | None,
    *,
    trusted: Sequence[str],
    search_failure: str | None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """The history of ``name@alias`` as JSON: periods, records, problems, verdict; with
    ``at``, which version the alias named then (top-level ``version``, ``at_status``)."""
    mine = [r for r in records if _concerns(r, alias) and not _ignorable(r)]
    verified = [r for r in mine if r.problem is None and r.change is not None]
    problems = [f"{r.tx_id}: {r.problem}" for r in mine if r.problem is not None]
    timeline: Timeline = history.build_timeline([r.change for r in verified if r.change], current)
    keys = sorted({r.public_key for r in verified if r.public_key})
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "model": name,
        "alias": alias,
        "generated_at": history.format_time(datetime.now(timezone.utc)),
        "current_version": current,
        "ok": not problems,
        "problems": problems,
        "gaps": len(timeline.gaps),
        "periods": [_period_json(p) for p in timeline.periods],
        "records": [r.to_json() for r in sorted(mine, key=_record_order)],
        "issuers": [
            {
                "public_key": key,
                "fingerprint": key_fingerprint(key),
                "pinned": issuer_pinned(key, trusted),
            }
            for key in keys
        ],
        "index_searched": search_failure is None,
        "index_problem": search_failure,
    }
    if at is not None:
        answer = history.version_at(timeline, at)
        period = answer.period
        result.update(
            {
                "at": history.format_time(at),
                "version": answer.version,
                "at_status": answer.status,
                "candidates": list(answer.candidates),
                "at_record": period.change.tx_id if period and period.change else None,
            }
        )
    return result


def _record_order(record: CheckedRecord) -> tuple[int, datetime, str]:
    if record.change is None:
        return (1, datetime.min.replace(tzinfo=timezone.utc), record.tx_id)
    return (0, record.change.at, record.tx_id)


def registered_aliases(client: Any, name: str) -> dict[str, str]:
    """``{alias: version}`` the registry holds for model ``name`` now (a hint)."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise TargetNotFoundError(f"no registered model named {name!r}") from None
        raise
    return {str(k): str(v) for k, v in (getattr(model, "aliases", None) or {}).items()}


def alias_history(
    client: Any,
    anchor: Any,
    name: str,
    alias: str,
    *,
    trusted_keys: Sequence[str] = (),
    at: datetime | None = None,
) -> dict[str, Any]:
    """The verified timeline of ``name@alias`` (and, with ``at``, which version it named
    then: top-level ``version``, with ``at_status`` saying how sure that is)."""
    current = registered_aliases(client, name).get(alias)
    return _alias_timeline(client, anchor, name, alias, current, trusted_keys, at=at)


def _alias_timeline(  # noqa: PLR0917 - one alias's records, checked, as a history
    client: Any,
    anchor: Any,
    name: str,
    alias: str,
    current: str | None,
    trusted_keys: Sequence[str],
    at: datetime | None = None,
) -> dict[str, Any]:
    records, search_failure = checked_alias_records(client, anchor, name, [alias], trusted_keys)
    return timeline_json(
        name, alias, records, current, trusted=trusted_keys, search_failure=search_failure, at=at
    )


def model_alias_timelines(
    client: Any, anchor: Any, name: str, version: str, trusted_keys: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The history of every alias that names ``version`` now or named it in a record (for
    the audit of that version)."""
    current = registered_aliases(client, name)
    records, search_failure = checked_alias_records(
        client, anchor, name, list(current), trusted_keys
    )
    aliases = {a for a, v in current.items() if v == version}
    for record in records:
        change = record.change
        if change is not None and record.alias and version in (change.version, change.previous):
            aliases.add(record.alias)
    return {
        alias: timeline_json(
            name,
            alias,
            records,
            current.get(alias),
            trusted=trusted_keys,
            search_failure=search_failure,
        )
        for alias in sorted(aliases)
    }


def pointed_at(version: str | None) -> str:
    """How a record's target reads in a reason: ``v3``, or that it deleted the alias."""
    return f"v{version}" if version else "nothing (deleted)"


def latest_record(timeline: dict[str, Any]) -> dict[str, Any] | None:
    """The last period of an alias history that a record made (``None``: no record)."""
    recorded = [p for p in timeline["periods"] if p["kind"] == history.RECORDED]
    return recorded[-1] if recorded else None


def last_recorded(timeline: dict[str, Any]) -> str | None:
    """The version an alias history's last record points the alias at (``None``: none,
    or deleted)."""
    latest = latest_record(timeline)
    return None if latest is None else latest["version"]


def last_recorded_target(
    client: Any, anchor: Any, trusted_keys: Sequence[str] = ()
) -> Callable[[str, str], str | None]:
    """``(name, alias) -> version`` the alias's verified records last point it at (for a
    deletion MLflow reports without the version it removed)."""

    def lookup(name: str, alias: str) -> str | None:
        return last_recorded(_alias_timeline(client, anchor, name, alias, None, trusted_keys))

    return lookup


def check_alias_target(
    client: Any,
    anchor: Any,
    name: str,
    alias: str,
    version: str,
    *,
    trusted_keys: Sequence[str] = (),
) -> str | None:
    """``IntegrityError`` unless the verified records of ``name@alias`` last point it at
    ``version`` (what MLflow resolved it to); the TX of that record, or ``None`` when the
    alias has no record at all (the caller decides whether that is acceptable)."""
    timeline = _alias_timeline(client, anchor, name, alias, version, trusted_keys)
    if timeline["problems"]:
        raise IntegrityError(
            f"an alias_changed record of {name}@{alias} does not check out: "
            + " | ".join(timeline["problems"])
        )
    last = latest_record(timeline)
    if last is None:
        return None
    if last["version"] != version:
        points_at = pointed_at(last["version"])
        raise IntegrityError(
            f"MLflow resolves {name}@{alias} to v{version}, but its latest alias_changed "
            f"record ({last['tx_id']}, {last['from']}) points it at {points_at}: the alias was "
            "moved with no record (if the move is legitimate, `ar-io-mlflow reconcile` "
            "records it)"
        )
    return str(last["tx_id"])
