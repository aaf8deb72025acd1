"""Reconciliation: compare the registry with the anchored history, anchor what is missing.

A webhook MLflow never delivered, a change made while the receiver was down, a version
registered with plain MLflow: each leaves the registry ahead of the records. This finds
those changes (the registry's aliases and versions against each alias's *verified*
history and each version's registration record) and anchors one record per change,
marked ``observed_by: reconcile`` with the time it was found — the time it happened is
not known, and the history shows it so. Running it again finds nothing new: it is safe
from cron. Lives beside the verifiers because it acts on what they conclude.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ario_mlflow.errors import ReconcileBusy
from ario_mlflow.lifecycle.alias_records import (
    checked_alias_records,
    last_recorded,
    name_filter,
    registered_aliases,
    timeline_json,
)
from ario_mlflow.lifecycle.lineage import verified_registration_tx
from ario_mlflow.lifecycle.recorder import REGISTRY_ALIAS, REGISTRY_REGISTRATION, registry_key
from ario_mlflow.lifecycle.registry import ArioMlflowClient
from ario_mlflow.outbox.journal import DONE, FAILED, Journal
from ario_mlflow.outbox.workers import run_task_now
from ario_mlflow.proof import payloads
from ario_mlflow.proof.envelope import utc_now_iso


@dataclass
class Found:
    """One change found and anchored (or that failed to be)."""

    kind: str  # "alias" or "registration"
    model: str
    key: str  # the alias, or the version
    recorded: str | None  # what the registry says now (None: no such alias)
    anchored_before: str | None  # what the records said
    tx_id: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "model": self.model,
            "key": self.key,
            "registry_now": self.recorded,
            "records_said": self.anchored_before,
            "tx_id": self.tx_id,
            "error": self.error,
        }


@dataclass
class Reconciliation:
    """What one pass found."""

    found_at: str
    models: list[str] = field(default_factory=list)
    found: list[Found] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unfinished: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems and all(f.error is None for f in self.found)

    def to_json(self) -> dict[str, Any]:
        return {
            "found_at": self.found_at,
            "models": self.models,
            "found": [f.to_json() for f in self.found],
            "problems": self.problems,
            "not_uploaded_yet": self.unfinished,
            "ok": self.ok,
        }


@contextlib.contextmanager
def reconcile_lock(home: Path) -> Iterator[None]:
    """One reconciliation per installation at a time (two would anchor a change twice)."""
    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(home / "reconcile.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ReconcileBusy(f"another reconciliation is running ({home})") from None
        yield
    finally:
        os.close(fd)


def _in_flight(journal: Journal, name: str, alias: str) -> tuple[bool, str | None]:
    """Is a change of ``name@alias`` journaled here and not recorded yet (and to what)?"""
    tasks = journal.tasks_for(registry_key(REGISTRY_ALIAS, name, alias))
    if not tasks:
        return False, None
    _, state, spec = tasks[-1]
    if state in (DONE, FAILED):
        return False, None
    target = spec.get("alias_version")
    return True, None if target is None else str(target)


class Reconciler:
    """Finds and anchors the registry changes no record covers."""

    def __init__(
        self,
        *,
        tracking_uri: str | None = None,
        registry_uri: str | None = None,
        trusted_keys: Sequence[str] = (),
    ) -> None:
        from ario_mlflow.lifecycle.handlers import install

        install()
        self.client = ArioMlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)
        _, self.anchor = self.client._ario_components()
        self.journal = self.client._ario_journal()
        self.trusted = tuple(trusted_keys)

    def _queue(self, event: str, name: str, key: str, fields: dict[str, Any]) -> int:
        task = self.client._ario_journal_event(event, name, key, fields)
        assert task is not None  # no ``once`` key, so always journaled
        return task

    def _aliases(self, name: str, found_at: str, report: Reconciliation) -> list[tuple[Found, int]]:
        current = registered_aliases(self.client, name)
        records, search_failure = checked_alias_records(
            self.client, self.anchor, name, list(current), self.trusted
        )
        aliases = set(current) | {r.alias for r in records if r.alias}
        queued = []
        for alias in sorted(aliases):
            history = timeline_json(
                name,
                alias,
                records,
                current.get(alias),
                trusted=self.trusted,
                search_failure=search_failure,
            )
            report.problems += [f"{name}@{alias}: {p}" for p in history["problems"]]
            pending, target = _in_flight(self.journal, name, alias)
            known = target if pending else last_recorded(history)
            now = current.get(alias)
            if now == known:
                continue
            observed = payloads.observation(
                observed_by=payloads.OBSERVED_BY_RECONCILE,
                found_at=found_at,
                previous_known=False,
            )
            fields = {
                "alias": alias,
                "alias_version": now,
                "previous_version": known,
                "observed": observed,
            }
            task = self._queue(REGISTRY_ALIAS, name, alias, fields)
            queued.append((Found("alias", name, alias, now, known), task))
        return queued

    def _versions(self, name: str, found_at: str) -> list[tuple[Found, int]]:
        queued = []
        for mv in self.client.search_model_versions(name_filter(name)):
            version = str(mv.version)
            if verified_registration_tx(mv.tags or {}, self.anchor, name, version, self.trusted):
                continue
            fields = {
                "source": mv.source,
                "run_id": mv.run_id or None,
                "observed": payloads.observation(
                    observed_by=payloads.OBSERVED_BY_RECONCILE, found_at=found_at
                ),
            }
            task = self._queue(REGISTRY_REGISTRATION, name, version, fields)
            queued.append((Found("registration", name, version, version, None), task))
        return queued

    def _all_models(self) -> list[str]:
        """Every registered model, page after page."""
        names: list[str] = []
        token: str | None = None
        while True:
            page = self.client.search_registered_models(max_results=100, page_token=token)
            names += [str(m.name) for m in page]
            token = page.token
            if not token:
                return names

    def _run(self, task: int, timeout: float) -> tuple[str, str | None]:
        """Run a queued task here, or wait for the upload worker that took it first;
        its final state (``pending`` if neither finished within ``timeout``)."""
        run_task_now(self.journal, task)
        deadline = time.monotonic() + timeout
        state, error = self.journal.task_state(task)
        while state not in (DONE, FAILED) and time.monotonic() < deadline:
            time.sleep(0.1)
            state, error = self.journal.task_state(task)
        return state, error

    def run(self, names: Sequence[str] = (), *, upload_timeout: float = 30.0) -> Reconciliation:
        """Reconcile the models ``names`` (all registered models when empty)."""
        found_at = utc_now_iso()
        report = Reconciliation(found_at)
        if not names:
            names = self._all_models()
        for name in names:
            report.models.append(name)
            queued = self._versions(name, found_at) + self._aliases(name, found_at, report)
            for found, task in queued:
                state, error = self._run(task, upload_timeout)
                key = registry_key(
                    REGISTRY_ALIAS if found.kind == "alias" else REGISTRY_REGISTRATION,
                    name,
                    found.key,
                )
                record = self.journal.latest_for(key)
                if state == DONE and record is not None:
                    found.tx_id = record.tx_id
                else:
                    found.error = error or f"task {task} is {state}"
                report.found.append(found)
        report.unfinished = self.anchor.flush(upload_timeout) if report.found else 0
        return report
