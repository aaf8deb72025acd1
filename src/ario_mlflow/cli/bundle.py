"""``ar-io-mlflow export`` and ``ar-io-mlflow verify-bundle``: portable evidence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ario_mlflow.cli.output import EXIT_CHECK_FAILED, EXIT_OK, one_line
from ario_mlflow.cli.panel import glyph


@click.command("export")
@click.argument("model_ref", metavar="NAME/VERSION|NAME@ALIAS")
@click.option(
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="A new directory, or a path ending in .zip.",
)
@click.option(
    "--decisions",
    default=100,
    show_default=True,
    help="How many of the version's decisions to include.",
)
@click.option("--tracking-uri", default=None, help="MLflow tracking URI.")
@click.option(
    "--force",
    is_flag=True,
    help="Export even if the version fails the live check (recorded in the manifest).",
)
def export(
    model_ref: str, output: Path, decisions: int, tracking_uri: str | None, force: bool
) -> None:
    """Write a portable evidence bundle (envelopes, exact payload bytes, receipts)."""
    from ario_mlflow.cli.store import not_found, open_client
    from ario_mlflow.errors import BundleError, TargetNotFoundError
    from ario_mlflow.verify.bundle import export_bundle
    from ario_mlflow.verify.context import VerifyContext
    from ario_mlflow.verify.targets import parse_model_ref

    try:
        parse_model_ref(model_ref)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="NAME/VERSION") from None
    context = VerifyContext.configured()
    client, store = open_client(tracking_uri)
    try:
        manifest = export_bundle(
            model_ref,
            output,
            client=client,
            anchor=context.anchor,
            decisions=decisions,
            trusted_keys=context.trusted_keys,
            force=force,
        )
    except TargetNotFoundError as exc:
        raise not_found(exc, store) from None
    except BundleError as exc:
        raise click.ClickException(str(exc)) from None
    stages = [record["stage"] for record in manifest["records"]]
    click.echo(
        f"evidence bundle written to {output}: {len(stages)} record(s) "
        f"({', '.join(sorted(set(stages))) or 'none'})"
    )


@click.command("verify-bundle")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--trusted-key",
    "trusted_keys",
    multiple=True,
    metavar="HEX",
    help="Issuer public key to pin (repeatable; added to ARIO_MLFLOW_TRUSTED_KEYS).",
)
@click.option(
    "--online",
    is_flag=True,
    help="Also check that the gateways serve each TX's exact bytes (UNCHECKED, not FAIL, "
    "when no gateway can be asked; both exit 1).",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def verify_bundle_command(
    path: Path, trusted_keys: tuple[str, ...], online: bool, fmt: str
) -> None:
    """Verify an evidence bundle offline: no MLflow, no network (unless --online)."""
    from ario_mlflow.errors import BundleError
    from ario_mlflow.verify.bundle import verify_bundle
    from ario_mlflow.verify.context import VerifyContext

    context = VerifyContext.configured(trusted_keys)
    try:
        result = verify_bundle(
            path,
            trusted_keys=list(context.trusted_keys),
            online=online,
            anchor=context.anchor if online else None,
        )
    except BundleError as exc:
        raise click.ClickException(str(exc)) from None
    if fmt == "json":
        click.echo(json.dumps(result, indent=2))
    else:
        _print_text(path, result)
    # UNCHECKED exits 1 like FAIL (0 means verified): the verdict and the JSON tell them apart
    raise SystemExit(EXIT_OK if result["ok"] else EXIT_CHECK_FAILED)


def _record_text(record: dict[str, Any]) -> str:
    """One record's line: its problems, or why it is only checked offline."""
    online = record.get("online") or {}
    if record["ok"] is None:  # offline checks passed, no gateway answered about the TX
        return "offline checks ok; online: not checked (no gateway could be asked)"
    text = "ok" if record["ok"] else "; ".join(record["problems"])
    if record["ok"] is False and online.get("state") == "unchecked":
        text += "; online: not checked (no gateway could be asked)"
    return text


def _print_text(path: Path, result: dict[str, Any]) -> None:
    """The human report; with --online, one line saying whether the online check ran."""
    click.echo(f"Evidence bundle {path} — {result['model']}/v{result['version']}")
    for record in result["records"]:
        text = _record_text(record)
        click.echo(f"  {record['stage']:<13} {record['tx_id']} {glyph(record['ok'])} {text}")
    for problem in result.get("problems", []):
        click.echo(f"  {glyph(False)} {problem}")
    for issuer in result["issuers"]:
        click.echo(
            f"  issuer {issuer['fingerprint']}: {'pinned' if issuer['ok'] else issuer['reason']}"
        )
    online = result.get("online")
    if online is not None:
        total = len(result["records"])
        failed = online["differs"] + online["missing"]
        if online["unchecked"]:
            click.echo(
                f"  {glyph(None)} online check could not run for {online['unchecked']} of "
                f"{total} record(s): the bytes were not compared with the gateways "
                "(this is not a sign of tampering)"
            )
            click.echo(f"    {one_line(online['unchecked_reason'], limit=300)}")
        if failed:
            click.echo(
                f"  {glyph(False)} online: {failed} of {total} record(s) differ from or are "
                "missing on the gateways"
            )
        if online["verified"] == total and total:
            click.echo(f"  {glyph(True)} online: the gateways serve every record's exact bytes")
    verdict = result["verdict"]
    shown = {"pass": True, "fail": False}.get(verdict)
    click.echo(f"Overall: {glyph(shown)} {verdict.upper()}")
    if verdict == "unchecked":
        click.echo(
            "  every offline check passed, but the online check asked for could not run, so "
            "it is not known whether the gateways hold these records"
        )
