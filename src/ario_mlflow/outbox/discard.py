"""Giving up journaled records on purpose: explicit, logged, counted, never silent.

A record that can never be uploaded (it was signed for a test service, or its event is
known to be wrong) would keep ``sync`` failing forever. Discarding it is a decision a
person makes: the record stays in the journal (state ``discarded``, so ``outbox`` counts
it), its MLflow write-backs are dropped (no tag may point at a TX that will not exist),
and a JSON line per record goes to ``$ARIO_MLFLOW_HOME/discarded.log``.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path

from ario_mlflow._files import private_file
from ario_mlflow.outbox.journal import OUTSTANDING, Journal, Record

logger = logging.getLogger(__name__)

DISCARD_LOG = "discarded.log"


def select_records(
    journal: Journal,
    *,
    tx_ids: Sequence[str] = (),
    state: str | None = None,
    upload_url: str | None = None,
) -> tuple[list[Record], list[str]]:
    """Outstanding records matching every filter given; and the named TX ids that are not
    outstanding (unknown, uploaded or already discarded)."""
    if state is not None and state not in OUTSTANDING:
        raise ValueError(f"state must be one of {', '.join(OUTSTANDING)}, not {state!r}")
    wanted = set(tx_ids)
    found = [
        record
        for record in journal.outstanding(limit=10_000_000)
        if (not wanted or record.tx_id in wanted)
        and (state is None or record.state == state)
        and (upload_url is None or record.upload_url.rstrip("/") == upload_url.rstrip("/"))
    ]
    unknown = sorted(wanted - {record.tx_id for record in journal.outstanding(10_000_000)})
    return found, unknown


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}"


def discard_records(journal: Journal, records: Sequence[Record], reason: str) -> tuple[int, Path]:
    """Discard ``records``; ``(how many were discarded, the log file)``."""
    log = private_file(journal.path.parent / DISCARD_LOG)
    count = journal.discard([r.id for r in records], reason)
    by = _who()
    with open(log, "a", encoding="utf-8") as sink:
        for record in records:
            sink.write(
                json.dumps(
                    {
                        "discarded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "by": by,
                        "tx_id": record.tx_id,
                        "event_type": record.event_type,
                        "state": record.state,
                        "upload_url": record.upload_url,
                        "reason": reason,
                    },
                    sort_keys=True,
                )
                + "\n"
            )
    logger.warning("discarded %d journaled record(s) (%s); see %s", count, reason, log)
    return count, log
