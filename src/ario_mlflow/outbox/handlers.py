"""Write-back handlers: the code that performs journaled write-backs, installed explicitly.

A write-back is data in the journal ("set these tags on that run once the record is
uploaded"); performing one needs code that knows its target, and the outbox knows no
target itself. The MLflow side installs its handlers with
:func:`ario_mlflow.lifecycle.handlers.install` — the record pipeline does before it
journals anything, the companion and ``sync`` do at start — so no handler exists by the
side effect of an import.

Workers claim only kinds installed in their process (another process may hold the
handler), and journaling a write-back of a kind this process cannot perform is a
:class:`~ario_mlflow.errors.MissingHandlerError`, never a record that waits forever.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from ario_mlflow.errors import MissingHandlerError

if TYPE_CHECKING:
    from ario_mlflow.outbox.journal import Journal, PendingWriteback, Record

logger = logging.getLogger(__name__)

#: ``handler(spec, record, journal)``; ``record`` is ``None`` for a standalone task.
WritebackHandler = Callable[[dict[str, object], "Record | None", "Journal"], None]
#: ``handler(writebacks, journal) -> errors``: one call for many write-backs of a kind
#: (e.g. the witnesses and traces of a window of decisions); one error or ``None`` each.
BatchHandler = Callable[[list["PendingWriteback"], "Journal"], list["Exception | None"]]


class AbandonTask(Exception):
    """Raised by a handler when retrying cannot help; the task is marked failed."""


_single: dict[str, WritebackHandler] = {}
_batch: dict[str, BatchHandler] = {}
_installers: set[str] = set()
_lock = threading.Lock()


def install(kind: str, handler: WritebackHandler) -> None:
    """Make this process able to perform write-backs of ``kind``, one per call."""
    with _lock:
        _single[kind] = handler


def install_batch(kind: str, handler: BatchHandler) -> None:
    """Make this process able to perform write-backs of ``kind``, many per call."""
    with _lock:
        _batch[kind] = handler


def install_from(installer: str) -> None:
    """Run an installer named ``"module:function"`` once (``function()`` installs its
    handlers): how a process started by name, the companion, gets its handlers."""
    with _lock:
        if installer in _installers:
            return
    module, _, function = installer.partition(":")
    if not module or not function:
        raise MissingHandlerError(f"handler installer {installer!r} is not 'module:function'")
    try:
        getattr(importlib.import_module(module), function)()
    except (ImportError, AttributeError) as exc:
        raise MissingHandlerError(f"cannot install handlers from {installer}: {exc}") from None
    with _lock:
        _installers.add(installer)


def installed_kinds() -> list[str]:
    """The kinds this process can perform."""
    with _lock:
        return sorted({*_single, *_batch})


def is_batch(kind: str) -> bool:
    """Is ``kind`` performed many at a time?"""
    with _lock:
        return kind in _batch


def require(kinds: Iterable[str]) -> None:
    """Raise :class:`MissingHandlerError` naming every kind of ``kinds`` this process has
    no handler for (journaling one would leave it pending with nobody to perform it)."""
    with _lock:
        missing = sorted(set(kinds) - {*_single, *_batch})
    if missing:
        raise MissingHandlerError(
            f"no handler installed for write-back kind(s) {', '.join(missing)}; install "
            "them first (ario_mlflow.lifecycle.handlers.install() for the MLflow kinds)"
        )


def perform(claimed: list[PendingWriteback], journal: Journal) -> list[Exception | None]:
    """Run leased write-backs (a batch kind in one call); the error of each, or ``None``.

    A handler's failure is returned, never raised: it must not kill a worker.
    """
    errors: dict[int, Exception | None] = {}
    batches: dict[str, list[PendingWriteback]] = {}
    with _lock:
        single, batch = dict(_single), dict(_batch)
    for writeback in claimed:
        if writeback.kind in batch:
            batches.setdefault(writeback.kind, []).append(writeback)
            continue
        handler = single.get(writeback.kind)
        if handler is None:
            errors[writeback.id] = MissingHandlerError(
                f"no handler for write-back kind {writeback.kind!r} in this process"
            )
            continue
        try:
            handler(writeback.spec, writeback.record, journal)
        except Exception as exc:
            errors[writeback.id] = exc
        else:
            errors[writeback.id] = None
    for kind, items in batches.items():
        try:
            outcomes = batch[kind](items, journal)
        except Exception as exc:
            outcomes = [exc] * len(items)
        errors.update((item.id, error) for item, error in zip(items, outcomes, strict=True))
    return [errors[w.id] for w in claimed]
