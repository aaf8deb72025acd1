"""``ar-io-mlflow sync`` and ``ar-io-mlflow outbox``: the journal from the command line."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any

import click

from ario_mlflow.cli.output import EXIT_CHECK_FAILED, one_line
from ario_mlflow.cli.tx_args import TxIdCommand

if TYPE_CHECKING:
    from ario_mlflow.arweave.turbo import UploadOutcome
    from ario_mlflow.outbox.journal import Journal, Record


def _journal() -> Journal:
    from ario_mlflow.config import load_settings
    from ario_mlflow.outbox.journal import Journal

    return Journal.at_home(load_settings().home)


def _state_counts(counts: dict[str, int]) -> str:
    return (
        f"{counts.get('pending', 0)} pending, {counts.get('unconfirmed', 0)} unconfirmed, "
        f"{counts.get('rejected', 0)} rejected"
    )


@click.command("sync")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--quiet", "-q", is_flag=True, help="Print only the summary.")
@click.option(
    "--upload-url",
    default=None,
    metavar="URL",
    help="Upload to this service (default: ARIO_MLFLOW_UPLOAD_URL). Records journaled for "
    "another service are sent here, with a log line saying so.",
)
def sync(fmt: str, quiet: bool, upload_url: str | None) -> None:
    """Upload every journaled record and finish pending MLflow write-backs now.

    Exits 1 if anything is still outstanding afterwards (not uploaded, uploaded but not
    confirmed, refused, or a write-back not done).
    """
    from ario_mlflow.config import check_url
    from ario_mlflow.lifecycle.handlers import install
    from ario_mlflow.outbox.sync import sync_journal
    from ario_mlflow.outbox.workers import UploadTarget

    install()

    if upload_url is not None:
        from ario_mlflow.errors import ConfigError

        try:
            upload_url = check_url("--upload-url", upload_url)
        except ConfigError as exc:
            raise click.BadParameter(str(exc), param_hint="'--upload-url'") from None
    journal = _journal()
    target = UploadTarget.configured(upload_url=upload_url)
    started = time.monotonic()

    def show(record: Record, outcome: UploadOutcome) -> None:
        if quiet or fmt == "json":
            return
        if outcome.confirmed:
            status = "uploaded"
        elif outcome.accepted:
            status = f"unconfirmed: {one_line(outcome.error)}"
        else:
            status = f"failed: {one_line(outcome.error)}"
        click.echo(f"  {record.tx_id}  {record.event_type or '-':<18} {status}")

    report = sync_journal(journal, target=target, progress=show)
    summary = {
        "uploaded": report.uploaded,
        "failed_attempts": report.failed_attempts,
        "writebacks_done": report.writebacks_done,
        "writebacks_failed": report.writebacks_failed,
        "remaining": report.remaining,
        "unhandled_writebacks": report.unhandled,
        "complete": report.complete,
        "upload_url": target.upload_url,
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
            f"{remaining.get('unconfirmed', 0)} unconfirmed, "
            f"{remaining.get('rejected', 0)} rejected, "
            f"{remaining.get('writebacks_pending', 0)} write-back(s)"
        )
        for kind, count in sorted(report.unhandled.items()):
            click.echo(
                f"  {count} write-back(s) of kind {kind!r} cannot be done by this version "
                "(no handler for it): upgrade ar-io-mlflow, or run sync where it was journaled"
            )
    if not report.complete:
        raise SystemExit(EXIT_CHECK_FAILED)


_LIMIT = click.option(
    "--limit",
    # bounded: SQLite cannot bind an integer beyond 64 bits (OverflowError, a traceback)
    type=click.IntRange(0, 1_000_000),
    default=50,
    show_default=True,
    help="Rows to list.",
)


@click.group("outbox", invoke_without_command=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@_LIMIT
@click.pass_context
def outbox(ctx: click.Context, fmt: str, limit: int) -> None:
    """List journaled records and write-backs that are not done yet, with their last error.

    ``outbox discard`` gives up records on purpose.
    """
    if ctx.invoked_subcommand is not None:
        return
    from ario_mlflow.outbox.spool_reader import spool_backlog

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
                    "records": [_record_json(r) for r in records],
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
        f"records: {counts['uploaded']} uploaded, {_state_counts(counts)}"
        + (f", {counts['discarded']} discarded" if counts.get("discarded") else "")
        + f"; write-backs pending: {counts['writebacks_pending']}"
    )
    if counts["spooled_bytes"]:
        click.echo(
            f"decision spool: {counts['spooled_bytes']} bytes not journaled yet "
            "(a companion process or 'ar-io-mlflow sync' takes them)"
        )
    if counts.get("decisions_unwindowed"):
        click.echo(
            f"batched decisions: {counts['decisions_unwindowed']} not in a signed window yet "
            "(their window closes when due, or now with 'ar-io-mlflow sync')"
        )
    for r in records:
        click.echo(
            f"  {r.state:<11} {r.tx_id}  {r.event_type or '-':<18} attempts={r.attempts}"
            f"  {one_line(r.last_error)}"
        )
    for wid, kind, error, tx_id in writebacks:
        click.echo(
            f"  write-back #{wid} {kind} for {tx_id or '(task)'}  {one_line(error) or 'pending'}"
        )


def _record_json(record: Record) -> dict[str, Any]:
    return {
        "tx_id": record.tx_id,
        "event_type": record.event_type,
        "state": record.state,
        "attempts": record.attempts,
        "last_error": record.last_error,
        "upload_url": record.upload_url,
    }


@outbox.command("discard", cls=TxIdCommand)
@click.argument("tx_ids", nargs=-1, metavar="[TX_ID]...")
@click.option("--all", "everything", is_flag=True, help="Every record not uploaded yet.")
@click.option(
    "--state",
    type=click.Choice(["pending", "unconfirmed", "rejected"]),
    default=None,
    help="Only records in this state.",
)
@click.option(
    "--upload-url", default=None, metavar="URL", help="Only records journaled for this service."
)
@click.option("--reason", default="abandoned by the user", show_default=True)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def discard(  # noqa: PLR0917 - click passes options positionally
    tx_ids: tuple[str, ...],
    everything: bool,
    state: str | None,
    upload_url: str | None,
    reason: str,
    yes: bool,
    fmt: str,
) -> None:
    """Give up records that will never be uploaded: they are kept in the journal (state
    ``discarded``), their write-backs are dropped, and each is logged to
    ``$ARIO_MLFLOW_HOME/discarded.log``. Nothing is selected unless you name TX ids or pass
    ``--all``, ``--state`` or ``--upload-url``."""
    from ario_mlflow.outbox.discard import discard_records, select_records

    if not (tx_ids or everything or state or upload_url):
        raise click.UsageError("name the records: TX_ID..., --all, --state or --upload-url")
    journal = _journal()
    chosen, unknown = select_records(journal, tx_ids=tx_ids, state=state, upload_url=upload_url)
    if unknown:
        raise click.BadParameter(
            f"not outstanding in {journal.path}: {', '.join(unknown)}", param_hint="TX_ID"
        )
    if not chosen:
        click.echo("nothing to discard")
        return
    if fmt == "text":
        for record in chosen[:20]:
            click.echo(f"  {record.state:<11} {record.tx_id}  {record.event_type or '-'}")
        if len(chosen) > 20:
            click.echo(f"  … and {len(chosen) - 20} more")
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError(
                f"discarding {len(chosen)} record(s) needs confirmation: pass --yes"
            )
        click.confirm(f"Discard {len(chosen)} record(s)? They will never be uploaded.", abort=True)
    count, log = discard_records(journal, chosen, reason)
    if fmt == "json":
        click.echo(
            json.dumps(
                {"discarded": count, "tx_ids": [r.tx_id for r in chosen], "log": str(log)},
                indent=2,
            )
        )
    else:
        click.echo(f"discarded {count} record(s); logged in {log}")
