"""``ar-io-mlflow verify run|model|trace|decision|dataset|tx``: thin wrappers over
:mod:`ario_mlflow.verify`. Exit 0 when every check passed, 1 when one failed (or the
target is not anchored), 2 for usage errors and targets that do not exist."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import click

from ario_mlflow.cli.output import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    deliver,
    write_output,
)
from ario_mlflow.cli.panel import print_panel
from ario_mlflow.cli.tx_args import TxIdCommand

_COMMON = [
    click.option(
        "--format",
        "fmt",
        type=click.Choice(["text", "json", "html"]),
        default="text",
        help="Output: a readable panel, the full result as JSON, or a self-contained HTML report.",
    ),
    click.option(
        "--output",
        type=click.Path(dir_okay=False),
        default=None,
        help="Write the result (in the chosen --format) to this file instead of stdout; "
        "html defaults to verify-KIND-TXID.html.",
    ),
    click.option(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: MLFLOW_TRACKING_URI / MLflow's default).",
    ),
    click.option(
        "--trusted-key",
        "trusted_keys",
        multiple=True,
        metavar="HEX",
        help="Issuer public key to pin (repeatable; adds to ARIO_MLFLOW_TRUSTED_KEYS).",
    ),
    click.option(
        "--min-level", default=2, show_default=True, help="Minimum ar.io Verify attestation level."
    ),
    click.option(
        "--html",
        "html_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="Also write the HTML report to this file (kept for older scripts; "
        "prefer --format html --output FILE).",
        hidden=True,
    ),
]


def _options(function: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_COMMON):
        function = option(function)
    return function


@click.group()
def verify() -> None:
    """Verify an anchored record: signature, committed bytes, live MLflow state,
    subject, chain link, issuer and (if configured) the ar.io attestation."""


def _run(
    kind: str,
    resolve: Callable[[Any, Any], Any],
    *,
    fmt: str,
    output: str | None,
    tracking_uri: str | None,
    trusted_keys: tuple[str, ...],
    min_level: int,
    html_path: str | None,
) -> None:
    from ario_mlflow.cli.store import not_found, open_client
    from ario_mlflow.errors import NotAnchoredError, TargetNotFoundError
    from ario_mlflow.verify.context import VerifyContext

    context = VerifyContext.configured(trusted_keys)
    client, store = open_client(tracking_uri)
    anchor = context.anchor
    try:
        target = resolve(client, anchor)
    except TargetNotFoundError as exc:
        raise not_found(exc, store) from None
    except NotAnchoredError as exc:
        if fmt == "json":
            click.echo(
                json.dumps(
                    {"kind": kind, "anchored": False, "reason": str(exc), "overall": False},
                    indent=2,
                )
            )
        else:
            click.echo(str(exc))
        raise SystemExit(EXIT_CHECK_FAILED) from None
    result = context.verify(target, client, min_attestation_level=min_level)
    envelope = result.pop("envelope", None)
    report = {
        "kind": kind,
        "target": target.label,
        "tx_id": target.tx_id,
        "url": anchor.url_for(target.tx_id),
        "event_type": envelope.get("event_type") if envelope else None,
        "subject": envelope.get("subject") if envelope else None,
        "envelope": envelope,
        "checks": {
            k: _jsonable(v)
            for k, v in result.items()
            if isinstance(v, dict) and k not in ("receipt", "decision")
        },
        **({"receipt": result["receipt"]} if "receipt" in result else {}),
        "overall": result["overall"],
        "proof_found": result["proof_found"],
        # why no gateway gave a usable record (None when one did): the text panel prints it
        "fetch_error": result.get("fetch_error"),
        "generated_at": datetime.now(timezone.utc).isoformat(),
    }
    from ario_mlflow.report import render_verification_report

    verdict = f"overall={result['overall']}"
    if fmt == "json":
        content: str | Callable[[], None] = json.dumps(report, indent=2, default=str) + "\n"
        summary = f"verification written to {output} ({verdict})"
    elif fmt == "html":
        content = render_verification_report(report)
        output = output or f"verify-{kind}-{target.tx_id}.html"
        summary = f"verification report written to {output} ({verdict})"
    else:
        content = lambda: print_panel(report, fetch_error=result.get("fetch_error"))  # noqa: E731
        summary = f"verification written to {output} ({verdict})"
    deliver(content, output, summary)
    if html_path:
        write_output(html_path, render_verification_report(report), "--html")
        if fmt == "text":
            click.echo(f"  HTML report: {html_path}")
    _write_back(client, target, result.get("ario_attestation") or {}, fmt)
    raise SystemExit(EXIT_OK if result["overall"] is True else EXIT_CHECK_FAILED)


def _jsonable(check: dict[str, Any]) -> dict[str, Any]:
    """A check without raw bytes (they can be large and are not JSON)."""
    return {k: v for k, v in check.items() if not isinstance(v, bytes)}


def _write_back(client: Any, target: Any, attestation: dict[str, Any], fmt: str) -> None:
    """Record the attestation on the MLflow object — only if it reached the threshold."""
    if attestation.get("ok") is not True or not target.writeback:
        return
    tags = {
        "ario.verify_status": "verified",
        "ario.attestation_level": str(attestation.get("attestation_level")),
    }
    for key in ("report_url", "attested_by", "attested_at"):
        if attestation.get(key):
            tags[f"ario.{key}"] = str(attestation[key])
    spec = target.writeback
    written = 0
    for key, value in tags.items():
        try:
            if spec["target"] == "run":
                client.set_tag(spec["run_id"], key, value)
            elif spec["target"] == "model_version":
                client.set_model_version_tag(spec["name"], spec["version"], key, value)
            else:
                client.set_trace_tag(spec["trace_id"], key, value)
            written += 1
        except Exception as exc:
            click.echo(f"  ! failed to set tag {key}: {exc}", err=True)
    if fmt == "text" and written:
        click.echo(f"  -> updated {written} MLflow tag(s) on {spec['target'].replace('_', ' ')}")


@verify.command("run")
@click.argument("run_id")
@_options
def verify_run(run_id: str, **options: Any) -> None:
    """Verify the training record of RUN_ID."""
    from ario_mlflow.verify.targets import run_target

    _run("run", lambda client, _: run_target(client, run_id), **options)


@verify.command("model")
@click.argument("model_ref", metavar="NAME/VERSION|NAME@ALIAS")
@_options
def verify_model(model_ref: str, **options: Any) -> None:
    """Verify the registration record of a model version."""
    from ario_mlflow.verify.targets import model_target, parse_model_ref

    try:
        parse_model_ref(model_ref)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="NAME/VERSION") from None
    _run("model", lambda client, _: model_target(client, model_ref), **options)


@verify.command("trace")
@click.argument("trace_id")
@_options
def verify_trace(trace_id: str, **options: Any) -> None:
    """Verify the decision record mirrored on MLflow trace TRACE_ID."""
    from ario_mlflow.verify.targets import trace_target

    _run("trace", lambda client, anchor: trace_target(client, trace_id, anchor), **options)


@verify.command("decision")
@click.argument("decision_id")
@_options
def verify_decision(decision_id: str, **options: Any) -> None:
    """Verify one decision (prediction) by its decision id."""
    from ario_mlflow.verify.targets import decision_target

    _run(
        "decision",
        lambda client, anchor: decision_target(client, decision_id, anchor.journal, anchor),
        **options,
    )


@verify.command("dataset")
@click.argument("run_id")
@click.argument("name")
@_options
def verify_dataset(run_id: str, name: str, **options: Any) -> None:
    """Verify the dataset record NAME anchored with run RUN_ID."""
    from ario_mlflow.verify.targets import dataset_target

    _run("dataset", lambda client, _: dataset_target(client, run_id, name), **options)


def _tx_id(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from ario_mlflow.arweave.gateway_reader import TX_ID

    if not TX_ID.fullmatch(value):
        raise click.BadParameter(f"{value!r} is not an Arweave transaction id (43 base64url chars)")
    return value


@verify.command("tx", cls=TxIdCommand)
@click.argument("tx_id", callback=_tx_id)
@_options
def verify_tx(tx_id: str, **options: Any) -> None:
    """Verify whatever record TX_ID holds (no expectations about its subject)."""
    from ario_mlflow.verify.targets import Target

    _run("tx", lambda client, _: Target("tx", f"TX {tx_id}", tx_id), **options)
