"""The text panel of ``verify`` (reference §6.2 layout, plus our extra rows).

Each row: two spaces, the label left-aligned in 28 columns, a glyph, the text. Colours are
plain ANSI and disappear when ``NO_COLOR`` is set or stdout is not a terminal.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

_GREEN, _RED, _YELLOW = "32", "31", "33"


def _colour(text: str, code: str) -> str:
    if os.environ.get("NO_COLOR") or not sys.stdout.isatty():
        return text
    return f"\033[{code}m{text}\033[0m"


def glyph(ok: bool | None) -> str:
    """✓ / ✗ / ? for a tri-state check result."""
    if ok is True:
        return _colour("✓", _GREEN)
    if ok is False:
        return _colour("✗", _RED)
    return _colour("?", _YELLOW)


def row(label: str, ok: bool | None, text: str) -> str:
    """One panel row."""
    return f"  {label:<28} {glyph(ok)} {text}"


_RECORD_LABEL = {
    "training_complete": "Training Record Matches",
    "model_registered": "Registration Record Matches",
    "prediction": "Decision Record Matches",
}


def _record_row(checks: dict[str, Any], event_type: str | None) -> str:
    label = _RECORD_LABEL.get(str(event_type), "Record Matches")
    anchored, live = checks.get("anchored_bytes", {}), checks.get("source_of_truth", {})
    if anchored.get("ok") is False:
        return row(label, False, anchored.get("reason") or "anchored_bytes_mismatch")
    if live.get("ok") is False:
        return row(label, False, live.get("reason") or "live_mlflow_mismatch")
    if anchored.get("ok") is None or live.get("ok") is None:
        first = anchored if anchored.get("ok") is None else live
        return row(label, None, first.get("reason") or "no_payload_to_compare")
    return row(label, True, "live MLflow matches anchored bytes")


def _check_row(label: str, check: dict[str, Any], passed: str) -> str:
    ok = check.get("ok")
    if ok is True:
        return row(label, True, passed)
    return row(label, ok, check.get("reason") or ("FAILED" if ok is False else "not applicable"))


def _attestation_rows(check: dict[str, Any]) -> list[str]:
    ok = check.get("ok")
    rows = []
    if ok is True:
        rows.append(
            row("ar.io attestation", True, f"Verified by {check.get('attested_by') or 'unknown'}")
        )
    elif check.get("reason") == "attestation_level_below_threshold":
        rows.append(
            row(
                "ar.io attestation",
                None,
                f"Pending verification (by {check.get('attested_by') or 'unknown'})",
            )
        )
        rows.append(
            " " * 31 + f"level {check.get('attestation_level')} < required "
            f"{check.get('min_attestation_level')}"
        )
    else:
        rows.append(row("ar.io attestation", ok, check.get("reason") or "not checked"))
    if check.get("report_url"):
        rows.append(" " * 31 + f"report: {check['report_url']}")
    return rows


def print_panel(report: dict[str, Any], *, fetch_error: str | None = None) -> None:
    """Print the verification panel of a ``verify`` result."""
    click.echo(f"Verifying {report['target']}")
    click.echo(f"  TX: {report['tx_id']}")
    if not report.get("proof_found"):
        click.echo(f"  Could not fetch envelope from ar.io for TX {report['tx_id']}.")
        if fetch_error:
            click.echo(f"  {fetch_error}")
        return
    checks = report["checks"]
    lines = [
        row("Proof Found", True, "envelope retrieved from ar.io"),
        _record_row(checks, report.get("event_type")),
        _check_row("Signature Confirmed", checks.get("signature", {}), "signature valid"),
        _check_row("Subject Bound", checks.get("subject", {}), "record is about this target"),
        _check_row("Chain Link", checks.get("chain", {}), "links to the expected record"),
    ]
    issuer = checks.get("issuer", {})
    if issuer.get("ok") is True:
        lines.append(row("Issuer", True, f"pinned key {issuer.get('fingerprint')}"))
    else:
        lines.append(row("Issuer", issuer.get("ok"), issuer.get("reason") or "unknown"))
    lines += _attestation_rows(checks.get("ario_attestation", {}))
    for line in lines:
        click.echo(line)
    overall = report.get("overall")
    verdict = "All checks passed" if overall is True else "Issues found"
    click.echo(f"  Overall: {glyph(overall is True)} {verdict}")
