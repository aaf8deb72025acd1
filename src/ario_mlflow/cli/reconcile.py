"""``ar-io-mlflow reconcile [NAME]``: anchor registry changes no record covers yet."""

from __future__ import annotations

import json

import click

from ario_mlflow.cli.output import EXIT_CHECK_FAILED, EXIT_OK


@click.command("reconcile")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI.")
@click.option("--trusted-key", "trusted_keys", multiple=True, metavar="HEX", help="Pin an issuer.")
@click.option(
    "--upload-timeout",
    default=30.0,
    show_default=True,
    type=float,
    help="Seconds to wait for uploads (what is left stays journaled for `sync`).",
)
def reconcile(
    names: tuple[str, ...],
    fmt: str,
    tracking_uri: str | None,
    trusted_keys: tuple[str, ...],
    upload_timeout: float,
) -> None:
    """Compare the registry's aliases and versions (of NAME, or of every registered
    model) with their anchored records, and anchor what is missing, marked as found by
    reconciliation at this time. Idempotent and safe from cron.

    Exit 1 if a record failed verification or a change could not be recorded.
    """
    from ario_mlflow.cli.panel import glyph
    from ario_mlflow.cli.store import open_client
    from ario_mlflow.config import load_settings
    from ario_mlflow.verify.context import VerifyContext
    from ario_mlflow.verify.reconcile import Reconciler, reconcile_lock

    context = VerifyContext.configured(trusted_keys)
    _, store = open_client(tracking_uri)
    with reconcile_lock(load_settings().home):
        report = Reconciler(tracking_uri=store, trusted_keys=context.trusted_keys).run(
            names, upload_timeout=upload_timeout
        )
    if fmt == "json":
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo(f"Reconciled {len(report.models)} model(s) at {report.found_at} ({store})")
        for found in report.found:
            what = (
                f"{found.model}@{found.key}: registry says "
                + (f"v{found.recorded}" if found.recorded else "no alias")
                + ", records said "
                + (f"v{found.anchored_before}" if found.anchored_before else "nothing")
                if found.kind == "alias"
                else f"{found.model}/{found.key}: registered with no registration record"
            )
            result = f"anchored {found.tx_id}" if found.tx_id else f"NOT recorded: {found.error}"
            click.echo(f"  {glyph(found.error is None)} {what} -> {result}")
        for problem in report.problems:
            click.echo(f"  {glyph(False)} {problem}")
        if not report.found and not report.problems:
            click.echo("  nothing to record: every alias and version has its record")
        if report.unfinished:
            click.echo(f"  {report.unfinished} record(s) not uploaded yet (ar-io-mlflow sync)")
    raise SystemExit(EXIT_OK if report.ok else EXIT_CHECK_FAILED)
