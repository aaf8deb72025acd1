"""Write-back handlers exist only where they were installed explicitly, and a write-back
nobody here can perform is an error, never a record pending forever."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ario_mlflow.errors import MissingHandlerError
from ario_mlflow.outbox import handlers
from ario_mlflow.outbox.journal import Journal, NewRecord, Writeback
from ario_mlflow.outbox.sync import sync_journal
from ario_mlflow.outbox.workers import UploadTarget
from tests.support.cli import invoke_cli

_IMPORT_EVERYTHING = """
import ario_mlflow, ario_mlflow.anchoring, ario_mlflow.model, ario_mlflow.registry
import ario_mlflow.lifecycle.writebacks, ario_mlflow.lifecycle.registry, ario_mlflow.verify
from ario_mlflow.outbox import handlers
print(handlers.installed_kinds())
"""


def test_importing_installs_no_handler() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_EVERYTHING], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_installing_is_explicit_and_covers_every_mlflow_kind() -> None:
    from ario_mlflow.lifecycle import handlers as mlflow_handlers
    from ario_mlflow.lifecycle.registry import TASK_KIND
    from ario_mlflow.lifecycle.writebacks import DECISION, LOG_WITNESS, SET_TAGS

    mlflow_handlers.install()
    assert {SET_TAGS, LOG_WITNESS, DECISION, TASK_KIND} <= set(handlers.installed_kinds())
    handlers.install_from(mlflow_handlers.INSTALLER)  # by name, as the companion does


@pytest.mark.parametrize("installer", ["nonsense", "no.such.module:install", "os:no_such"])
def test_a_bad_installer_name_is_a_clear_error(installer: str) -> None:
    with pytest.raises(MissingHandlerError, match="install"):
        handlers.install_from(installer)


def test_journaling_a_writeback_no_one_here_performs_is_refused(ario_home: Path) -> None:
    from ario_mlflow.engine import ProofEngine
    from ario_mlflow.outbox.anchor import ArweaveAnchor

    envelope = ProofEngine().create_commitment(
        event_type="dataset",
        subject={"type": "mlflow_dataset"},
        payload_bytes=b"d",
        previous_hash="GENESIS",
    )
    anchor = ArweaveAnchor(upload_url="http://127.0.0.1:9")
    with pytest.raises(MissingHandlerError, match=r"nobody\.kind"):
        anchor.journal_proof(envelope, writebacks=[Writeback("nobody.kind", {})])
    assert anchor.journal.counts()["pending"] == 0  # nothing half-journaled


def test_sync_names_writebacks_it_has_no_handler_for(ario_home: Path) -> None:
    """A journal written by a newer version (a kind this one does not know): sync says so
    and exits 1 instead of calling it complete or leaving it silently."""
    journal = Journal.at_home(ario_home)
    journal.add_task(Writeback("future.kind", {"x": 1}, after_upload=False))
    report = sync_journal(journal, target=UploadTarget("http://127.0.0.1:9"))
    assert report.unhandled == {"future.kind": 1}
    assert not report.complete
    code, out, _ = invoke_cli(["sync", "--upload-url", "http://127.0.0.1:9"])
    assert code == 1
    assert "1 write-back(s) of kind 'future.kind' cannot be done by this version" in out


def test_a_record_with_writebacks_of_an_unknown_kind_keeps_them_pending(
    ario_home: Path,
) -> None:
    journal = Journal.at_home(ario_home)
    journal.enqueue(
        NewRecord(
            tx_id="u" * 43,
            envelope=b"{}",
            item=b"i",
            upload_url="http://127.0.0.1:9",
            token="arweave",
            gateway_base="http://127.0.0.1:9",
            writebacks=[Writeback("future.kind", {}, after_upload=False)],
        )
    )
    claimed = journal.claim_due_writebacks(
        "me", 10, 60, kinds=handlers.installed_kinds(), ignore_schedule=True
    )
    assert [w.kind for w in claimed] == []  # workers here never take what they cannot do
    assert journal.pending_writeback_kinds() == {"future.kind": 1}
