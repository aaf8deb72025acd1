"""``ar-io-mlflow sync`` and ``ar-io-mlflow outbox``: the journal from the command line."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import click

from ario_mlflow.cli.output import EXIT_CHECK_FAILED

if TYPE_CHECKING:
    from ario_mlflow.arweave.journal import Journal, Record
    from ario_mlflow.arweave.turbo import UploadOutcome


def _journal() -> Journal:
    from ario_mlflow.arweave.journal import Journal
    from ario_mlflow.config import load_settings

    return Journal.at_home(load_settings().home)


@click.command("sync")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--quiet", "-q", is_flag=True, help="Print only the summary.")
def sync(fmt: str, quiet: bool) -> None:
    """Upload every journaled record and finish pending MLflow write-backs now.

    Exits 1 if anything is still outstanding afterwards.
    """
    import ario_mlflow.registry
    import ario_mlflow.writeback  # noqa: F401  (registers the MLflow write-back handlers)
    from ario_mlflow.arweave.uploader import sync_journal
    from ario_mlflow.config import load_settings

    settings = load_settings()
    journal = _journal()
    started = time.monotonic()

    def show(record: Record, outcome: UploadOutcome) -> None:
        if quiet or fmt == "json":
            return
        status = "uploaded" if outcome.accepted else f"failed: {outcome.error}"
        click.echo(f"  {record.tx_id}  {record.event_type or '-':<18} {status}")

    report = sync_journal(
        journal, timeout=(settings.connect_timeout, settings.read_timeout), progress=show
    )
    summary = {
        "uploaded": report.uploaded,
        "failed_attempts": report.failed_attempts,
        "writebacks_done": report.writebacks_done,
        "writebacks_failed": report.writebacks_failed,
        "remaining": report.remaining,
        "complete": report.complete,
        "journal": str(journal.path),
        "seconds": round(time.monotonic() - started, 2),
    }
    if fmt == "json":
        click.echo(json.dumps(summary, indent=2))
    else:
        remaining = report.remaining
        click.echo(
            f"uploaded {report.uploaded}, failed {report.failed_attempts}; "
            f"write-backs done {report.writebacks_done}, failed {report.writebacks_failed}; "
            f"still pending: {remaining.get('pending', 0)} record(s), "
            f"{remaining.get('rejected', 0)} rejected, "
            f"{remaining.get('writebacks_pending', 0)} write-back(s)"
        )
    if not report.complete:
        raise SystemExit(EXIT_CHECK_FAILED)


@click.command("outbox")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option(
    "--limit",
    # bounded: SQLite cannot bind an integer beyond 64 bits (OverflowError, a traceback)
    type=click.IntRange(0, 1_000_000),
    default=50,
    show_default=True,
    help="Rows to list.",
)
def outbox(fmt: str, limit: int) -> None:
    """List journaled records and write-backs that are not done yet, with their last error."""
    from ario_mlflow.arweave.spool import spool_backlog

    journal = _journal()
    records = journal.outstanding(limit)
    writebacks = journal.outstanding_writebacks(limit)
    counts = journal.counts()
    # decisions a serving process spooled that no companion (or sync) has journaled yet
    counts["spooled_bytes"] = spool_backlog(journal.path.parent, journal)
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "journal": str(journal.path),
                    "counts": counts,
                    "records": [
                        {
                            "tx_id": r.tx_id,
                            "event_type": r.event_type,
                            "state": r.state,
                            "attempts": r.attempts,
                            "last_error": r.last_error,
                            "upload_url": r.upload_url,
                        }
                        for r in records
                    ],
                    "writebacks": [
                        {"id": w[0], "kind": w[1], "last_error": w[2], "tx_id": w[3]}
                        for w in writebacks
                    ],
                },
                indent=2,
            )
        )
        return
    click.echo(f"journal: {journal.path}")
    click.echo(
        f"records: {counts['uploaded']} uploaded, {counts['pending']} pending, "
        f"{counts['rejected']} rejected; write-backs pending: {counts['writebacks_pending']}"
    )
    if counts["spooled_bytes"]:
        click.echo(
            f"decision spool: {counts['spooled_bytes']} bytes not journaled yet "
            "(a companion process or 'ar-io-mlflow sync' takes them)"
        )
    for r in records:
        click.echo(
            f"  {r.state:<9} {r.tx_id}  {r.event_type or '-':<18} attempts={r.attempts}"
            f"  {r.last_error or ''}"
        )
    for wid, kind, error, tx_id in writebacks:
        click.echo(f"  write-back #{wid} {kind} for {tx_id or '(task)'}  {error or 'pending'}")
