"""``ar-io-mlflow demo``: the whole lifecycle locally, in under a minute, no network."""

from __future__ import annotations

from pathlib import Path

import click

from ario_mlflow.cli.output import EXIT_CHECK_FAILED
from ario_mlflow.cli.panel import glyph


@click.command("demo")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to keep the store, keys and gateway data (default: a new temp dir).",
)
@click.option(
    "--audit-again",
    "again",
    is_flag=True,
    help="Only audit the data an earlier demo left in --workdir (its gateway is restarted "
    "on its own data), e.g. after editing the store to see what the audit catches.",
)
def demo(workdir: Path | None, again: bool) -> None:
    """Train, anchor, register, promote, serve verified decisions, verify and audit —
    against a temporary sqlite MLflow store and a local gateway on loopback."""
    from ario_mlflow.demo import DemoDataError, audit_again, run_demo

    if again:
        if workdir is None:
            raise click.UsageError("--audit-again needs --workdir DIR (an earlier demo's)")
        try:
            result = audit_again(workdir, say=click.echo)
        except DemoDataError as exc:
            raise click.BadParameter(str(exc), param_hint="'--workdir'") from None
    else:
        result = run_demo(workdir, say=click.echo)
    click.echo("")
    for kind, outcome in result.verifications.items():
        failing = [
            name
            for name, check in outcome.items()
            if isinstance(check, dict) and check.get("ok") is False
        ]
        detail = "all checks passed" if outcome.get("overall") else f"failed: {failing}"
        click.echo(f"  verify {kind:<9} {glyph(outcome.get('overall'))} {detail}")
    audit = result.audit
    click.echo(
        f"  audit            {glyph(audit.get('overall_ok'))} "
        f"{len(audit.get('stages', []))} stages, "
        f"{audit.get('decisions', {}).get('count', 0)} decisions, "
        f"artifacts {'intact' if audit.get('artifact_integrity', {}).get('ok') else 'CHANGED'}"
    )
    click.echo(f"\nHTML audit report: {result.report}")
    click.echo(f"Store, keys, journal and gateway data: {result.workdir}")
    if result.bundle is not None:
        click.echo(f"Evidence bundle: {result.bundle}")
        click.echo(f"Verify it yourself, offline:  ar-io-mlflow verify-bundle {result.bundle}")
    click.echo(
        f"Audit this data again later:  ar-io-mlflow demo --workdir {result.workdir} --audit-again"
    )
    click.echo(f"Finished in {result.seconds:.1f} s: {'OK' if result.ok else 'ISSUES FOUND'}")
    if not result.ok:
        raise SystemExit(EXIT_CHECK_FAILED)
