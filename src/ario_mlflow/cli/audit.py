"""``ar-io-mlflow audit NAME/VERSION|NAME@ALIAS``: the whole lineage of a model version."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from ario_mlflow.cli.history import print_timeline
from ario_mlflow.cli.output import EXIT_CHECK_FAILED, EXIT_OK, deliver
from ario_mlflow.cli.panel import glyph

_RULE = "=" * 50


@click.command("audit")
@click.argument("model_ref", metavar="NAME/VERSION|NAME@ALIAS")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "html"]), default="text")
@click.option(
    "--output",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the audit (in the chosen --format) to this file instead of stdout; "
    "html defaults to audit-NAME-vVERSION.html.",
)
@click.option("--tracking-uri", default=None, help="MLflow tracking URI.")
@click.option(
    "--trusted-key",
    "trusted_keys",
    multiple=True,
    metavar="HEX",
    help="Issuer public key to pin (repeatable).",
)
@click.option(
    "--accept-unchecked-completeness",
    is_flag=True,
    help="Pass even if no gateway could be searched for deleted decisions (the verdict "
    "says the completeness was not checked).",
)
def audit(  # noqa: PLR0917 - click passes options positionally
    model_ref: str,
    fmt: str,
    output: str | None,
    tracking_uri: str | None,
    trusted_keys: tuple[str, ...],
    accept_unchecked_completeness: bool,
) -> None:
    """Verify training, datasets, registration, promotions and aliases of a model
    version, re-check its artifacts now, and count its decisions. Exit 1 if not ok."""
    from ario_mlflow.cli.store import not_found, open_client
    from ario_mlflow.errors import TargetNotFoundError
    from ario_mlflow.verify.audit import audit_model
    from ario_mlflow.verify.context import VerifyContext
    from ario_mlflow.verify.targets import parse_model_ref

    try:
        parse_model_ref(model_ref)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="NAME/VERSION") from None
    context = VerifyContext.configured(trusted_keys)
    client, store = open_client(tracking_uri)
    try:
        bundle = audit_model(
            model_ref,
            client=client,
            anchor=context.anchor,
            ario_client=context.ario_client,
            trusted_keys=context.trusted_keys,
            accept_unchecked_completeness=accept_unchecked_completeness,
        )
    except TargetNotFoundError as exc:
        raise not_found(exc, store) from None
    verdict = f"overall_ok={bundle['overall_ok']}"
    if fmt == "json":
        content: str | Callable[[], None] = json.dumps(bundle, indent=2) + "\n"
        summary = f"audit bundle written to {output} ({len(bundle['stages'])} stages, {verdict})"
    elif fmt == "html":
        from ario_mlflow.report import render_audit_report

        content = render_audit_report(bundle)
        output = output or f"audit-{bundle['model']}-v{bundle['version']}.html"
        summary = f"audit report written to {output} ({verdict})"
    else:
        content = lambda: _print(bundle)  # noqa: E731
        summary = f"audit written to {output} ({verdict})"
    deliver(content, output, summary)
    raise SystemExit(EXIT_OK if bundle["overall_ok"] else EXIT_CHECK_FAILED)


def _print(bundle: dict[str, Any]) -> None:
    click.echo(f"Auditing model lineage: {bundle['model']}/v{bundle['version']}")
    click.echo(_RULE)
    for stage in bundle["stages"]:
        click.echo(f"\n{stage['stage'].capitalize()} ({stage['label']}):")
        if not stage["anchored"]:
            click.echo("  Not anchored.")
            continue
        click.echo(f"  TX: {stage['tx_id']}")
        for name, check in stage["checks"].items():
            text = "passed" if check["ok"] else (check["reason"] or "not checked")
            click.echo(f"  {name:<28} {glyph(check['ok'])} {text}")
    integrity = bundle["artifact_integrity"]
    click.echo("\nArtifact integrity (re-hashed now):")
    click.echo(
        f"  {'Matches training record':<28} {glyph(integrity['ok'])} "
        f"{'all files match' if integrity['ok'] else integrity['reason']}"
    )
    for label in ("changed", "missing", "added"):
        for path in integrity.get(label, []):
            click.echo(f"    {label}: {path}")
    decisions = bundle["decisions"]
    click.echo("\nDecisions:")
    click.echo(
        f"  {decisions['count']} recorded, {decisions['anchored']} anchored, "
        f"{decisions['pending']} pending, {decisions['streams']} stream(s); "
        f"{decisions.get('verified', 0)} verified against their anchored records"
    )
    for bad in decisions.get("unverified", []):
        click.echo(f"  {glyph(False)} trace {bad['trace_id']}: {bad['why']}")
    for gap in decisions["sequence_gaps"]:
        click.echo(
            f"  {glyph(False)} stream {gap['stream_id']}: missing sequence numbers {gap['missing']}"
        )
    batched = decisions.get("batched") or {}
    for stream in batched.get("streams", []):
        click.echo(
            f"  {glyph(not stream['problems'])} stream {stream['stream_id']}: "
            f"{stream['decisions']} batched decision(s) in {stream['windows']} window(s), "
            f"{stream['verified']} verified against the signed roots"
        )
        for problem in stream["problems"]:
            click.echo(f"      {problem['reason']}: {problem['detail']}")
    onchain = decisions.get("onchain") or {}
    if onchain.get("onchain") is not None:
        missing = ", ".join(onchain["missing"])
        click.echo(
            f"  {glyph(onchain['ok'])} {onchain['onchain']} anchored on Arweave for this version"
            + (f"; missing from MLflow: {missing}" if missing else "")
        )
    elif onchain:
        click.echo(f"  {glyph(None)} on-chain count unavailable ({onchain.get('reason')})")
    if decisions.get("completeness"):
        click.echo(f"  completeness: {decisions['completeness']}")
    for issuer in bundle["issuers"]:
        state = "pinned" if issuer["pinned"] else "NOT pinned"
        click.echo(f"  issuer {issuer['fingerprint']} ({state})")
    for alias, history in (bundle.get("alias_history") or {}).items():
        click.echo(f"\nAlias history (@{alias}):")
        print_timeline(history)
    click.echo("\n" + _RULE)
    verdict = "All checks passed" if bundle["overall_ok"] else "Issues found"
    click.echo(f"Overall: {glyph(bundle['overall_ok'])} {verdict}")
