"""``ar-io-mlflow history NAME@ALIAS [--at TIME]``: the verified timeline of an alias."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from ario_mlflow.cli.output import EXIT_CHECK_FAILED, EXIT_OK, deliver
from ario_mlflow.cli.panel import glyph
from ario_mlflow.report import alias_target, observed_label, period_targets


def _who(period: dict[str, Any]) -> str:
    user = period.get("changed_by")
    return f"{observed_label(period.get('observed_by'))}, user {user if user else 'unknown'}"


def print_timeline(history: dict[str, Any], indent: str = "  ") -> None:
    """The periods of an alias history, one line each (gaps marked as gaps)."""
    for period in history["periods"]:
        span = f"{period['from'] or '(unknown)'} → {period['to'] or 'now'}"
        if period["from"] and period["from"] == period["to"]:
            span = f"at {period['from']} (until a time no record gives)"
        if period["kind"] == "recorded":
            confirmed = len(period["confirmed_by"])
            extra = f", also seen by {confirmed} more record(s)" if confirmed else ""
            click.echo(
                f"{indent}{glyph(True)} {span}  {alias_target(period['version'])}  "
                f"({_who(period)}{extra})  TX {period['tx_id']}"
            )
        else:
            label = "GAP" if period["kind"] == "uncertain" else "BEFORE RECORDS"
            maybe = period_targets(period)
            click.echo(f"{indent}{glyph(None)} {span}  {maybe}  {label}: {period['note']}")
    for problem in history["problems"]:
        click.echo(f"{indent}{glyph(False)} {problem}")


def _print(history: dict[str, Any]) -> None:
    click.echo(f"History of {history['model']}@{history['alias']}")
    print_timeline(history)
    records = sum(1 for r in history["records"] if r["verified"])
    click.echo(
        f"\n{records} verified record(s), {history['gaps']} gap(s); the registry says "
        f"{alias_target(history['current_version'])} now"
    )
    if not history["index_searched"]:
        click.echo(
            f"{glyph(None)} gateway index not searched ({history['index_problem']}): only "
            "records named by MLflow tags or this journal were found"
        )
    for issuer in history["issuers"]:
        state = "pinned" if issuer["pinned"] else "NOT pinned"
        click.echo(f"issuer {issuer['fingerprint']} ({state})")
    if "at" in history:
        status = history["at_status"]
        if status == "version":
            answer = f"v{history['version']} (record {history['at_record']})"
        elif status == "absent":
            answer = "no version (the alias did not exist)"
        elif status == "uncertain":
            answer = "uncertain: " + " or ".join(alias_target(v) for v in history["candidates"])
        else:
            answer = "not recorded: no record covers that time"
        click.echo(f"\nAt {history['at']}: @{history['alias']} = {answer}")
    click.echo(f"Overall: {glyph(history['ok'])} {'verified' if history['ok'] else 'FAILED'}")


@click.command("history")
@click.argument("ref", metavar="NAME@ALIAS")
@click.option("--at", "at", default=None, metavar="TIME", help="ISO 8601 time (UTC if no offset).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "html"]), default="text")
@click.option("--output", type=click.Path(dir_okay=False), default=None, help="Write to a file.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI.")
@click.option("--trusted-key", "trusted_keys", multiple=True, metavar="HEX", help="Pin an issuer.")
def history(  # noqa: PLR0917 - click passes options positionally
    ref: str,
    at: str | None,
    fmt: str,
    output: str | None,
    tracking_uri: str | None,
    trusted_keys: tuple[str, ...],
) -> None:
    """Which version NAME@ALIAS pointed to, from when to when, who moved it (when known),
    each move with its verified record; gaps no record covers are shown as gaps.

    Exit 1 if a record fails verification, or if --at cannot be answered for certain.
    """
    from ario_mlflow.cli.store import not_found, open_client
    from ario_mlflow.errors import TargetNotFoundError
    from ario_mlflow.lifecycle.alias_records import alias_history
    from ario_mlflow.proof.alias_history import parse_time
    from ario_mlflow.verify.context import VerifyContext

    name, sep, alias = ref.rpartition("@")
    if not sep or not name or not alias:
        raise click.BadParameter(f"{ref!r} is not NAME@ALIAS", param_hint="NAME@ALIAS")
    moment = None
    if at is not None:
        try:
            moment = parse_time(at)
        except ValueError:
            raise click.BadParameter(
                f"{at!r} is not an ISO 8601 time (e.g. 2026-11-03T14:00Z)", param_hint="'--at'"
            ) from None
    context = VerifyContext.configured(trusted_keys)
    client, store = open_client(tracking_uri)
    try:
        result = alias_history(
            client, context.anchor, name, alias, trusted_keys=context.trusted_keys, at=moment
        )
    except TargetNotFoundError as exc:
        raise not_found(exc, store) from None
    ok = result["ok"] and result.get("at_status", "version") in ("version", "absent")
    if fmt == "json":
        content: str | Callable[[], None] = json.dumps(result, indent=2) + "\n"
    elif fmt == "html":
        from ario_mlflow.report import render_alias_history

        content = render_alias_history(result)
        output = output or f"history-{name}-{alias}.html"
    else:
        content = lambda: _print(result)  # noqa: E731
    deliver(content, output, f"history written to {output} (ok={ok})")
    raise SystemExit(EXIT_OK if ok else EXIT_CHECK_FAILED)
