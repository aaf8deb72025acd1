"""HTML reports: content, escaping, self-containment, and a real headless-Chromium render.

The browser half drives Chromium over the DevTools protocol (a tiny stdlib WebSocket client
below), so it sees what a reader would: console errors, failed loads, the visible status
text, horizontal overflow on a phone-width screen, and the print layout.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from ario_mlflow import report
from ario_mlflow.proof import canonical_json, key_fingerprint
from ario_mlflow.report import (
    generate_verification_html,
    render_audit_report,
    render_verification_report,
)
from tests.support.chromium import Browser, Page, find_chromium

EVIL = "<script>alert(1)</script>"
EVIL_ATTR = '"><img src=x onerror=alert(1)>'
TX = "COumX_fVYkIOll3zUORFsrIrT4jfUJt4EOyYmoL4Hkk"
REG_TX = "St611sFh00GeNVZUvMQwD8qJiH94V-cRv6FKw4TwWZI"
PUBKEY = "0bbc346a57667c380120bd9c7fd7e51d2c5fdfea37cd2f5bf405b2c6bf6f2d78"


# --- sample inputs --------------------------------------------------------------------------


def training_envelope() -> dict[str, Any]:
    """A current nine-key ``ario.mlflow/v1`` training envelope."""
    return {
        "event_id": "2e9ee73c-07e5-4194-8043-d5f972dd397b",
        "event_type": "training_complete",
        "payload_hash": "ea9e5cdc89ad1f3b92d03238b4775da37515edf2ba7a2eb97109d2a698212ac7",
        "previous_hash": "GENESIS",
        "public_key": PUBKEY,
        "signature": "cb" * 64,
        "signed_at": "2026-11-26T17:12:06.841033+00:00",
        "spec_version": "ario.mlflow/v1",
        "subject": {"run_id": "ee7ae36d7dc8431a91e5da876d6254cd", "type": "mlflow_run"},
    }


def registration_envelope() -> dict[str, Any]:
    env = training_envelope()
    env.update(
        event_type="model_registered",
        previous_hash=TX,
        subject={"type": "mlflow_model_version", "name": "iris", "version": "3"},
    )
    return env


def verify_result(overall: bool | None = True, **changes: Any) -> dict[str, Any]:
    """A result dict as the verify code produces it for one model version."""
    env = registration_envelope()
    result: dict[str, Any] = {
        "kind": "model",
        "target": "iris/3",
        "tx_id": REG_TX,
        "url": f"https://gw.example.org/{REG_TX}",
        "event_type": "model_registered",
        "envelope": env,
        "checks": {
            "signature": {"ok": True, "reason": None, "spec_version_status": "supported"},
            "anchored_bytes": {
                "ok": True,
                "computed_hash": env["payload_hash"],
                "stored_hash": env["payload_hash"],
            },
            "source_of_truth": {"ok": True, "reason": None},
            "ario_attestation": {"ok": None, "reason": "ario_verify_not_enabled"},
            "subject": {"ok": True, "reason": None},
            "chain": {"ok": True, "reason": None},
            "issuer": {
                "ok": True,
                "reason": None,
                "public_key": PUBKEY,
                "fingerprint": key_fingerprint(PUBKEY),
                "pinned": True,
            },
        },
        "overall": overall,
        "lineage": [
            {
                "event_type": "training_complete",
                "tx_id": TX,
                "url": f"https://gw.example.org/{TX}",
                "label": "Training run ee7ae36d",
            },
            {"event_type": "model_registered", "tx_id": REG_TX, "url": None, "label": "v3"},
        ],
        "generated_at": "2026-11-26T18:00:00Z",
    }
    result.update(changes)
    return result


def audit_bundle(overall_ok: bool = True) -> dict[str, Any]:
    """An ``ario.mlflow.audit/v1`` bundle with every optional section filled in."""
    checks = {
        "signature": {"ok": True, "reason": ""},
        "anchored_bytes": {"ok": True, "reason": ""},
        "source_of_truth": {"ok": True, "reason": ""},
        "ario_attestation": {"ok": None, "reason": "ario_verify_not_enabled"},
    }
    return {
        "schema": "ario.mlflow.audit/v1",
        "model": "iris",
        "version": "3",
        "generated_at": "2026-11-26T18:00:00.000000Z",
        "tracking_uri": "sqlite:///mlflow.db",
        "run_id": "ee7ae36d7dc8431a91e5da876d6254cd",
        "current_stage": "Production",
        "artifact_hash": "3f694eb865df75d062564f8da221eefbea6f2ca8d03a7ed4ee7b28925200984d",
        "stages": [
            # Deliberately out of order: the report sorts the lineage.
            {
                "stage": "promotion",
                "label": "None → Production",
                "tx_id": "Rhexl4hc73x0gbMDU52murPSmkRMCfs1CMArz_CrmhY",
                "anchored": True,
                "checks": {"signature": {"ok": True, "reason": ""}},
                "ok": True,
            },
            {
                "stage": "training",
                "label": "run ee7ae36d",
                "tx_id": TX,
                "anchored": True,
                "checks": checks,
                "ok": True,
            },
            {
                "stage": "datasets",
                "label": "train_q1",
                "tx_id": None,
                "anchored": False,
                "checks": None,
                "ok": None,
            },
            {
                "stage": "registration",
                "label": "v3",
                "tx_id": REG_TX,
                "anchored": True,
                "checks": copy.deepcopy(checks),
                "ok": True,
            },
            {
                "stage": "alias",
                "label": "@champion",
                "tx_id": None,
                "anchored": False,
                "checks": None,
                "ok": None,
            },
        ],
        "artifact_integrity": {
            "ok": True,
            "reason": "all 3 files match",
            "changed": [],
            "missing": [],
            "added": [],
        },
        "decisions": {
            "count": 120,
            "anchored": 118,
            "pending": 2,
            "streams": 1,
            "sequence_gaps": [],
        },
        "issuers": [{"public_key": PUBKEY, "fingerprint": key_fingerprint(PUBKEY), "pinned": True}],
        "overall_ok": overall_ok,
    }


def poison(value: Any, payload: str = EVIL) -> Any:
    """Every string value prefixed with ``payload`` (keys are left alone)."""
    if isinstance(value, dict):
        return {k: poison(v, payload) for k, v in value.items()}
    if isinstance(value, list):
        return [poison(v, payload) for v in value]
    if isinstance(value, str):
        return payload + value
    return value


# --- parsing helpers -----------------------------------------------------------------------


class _Tags(HTMLParser):
    """Collects every start tag with its attributes, and the text of <pre> blocks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.pre: list[str] = []
        self._in_pre = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "pre":
            self._in_pre = True
            self.pre.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre":
            self._in_pre = False

    def handle_data(self, data: str) -> None:
        if self._in_pre:
            self.pre[-1] += data


def parse(page: str) -> _Tags:
    parser = _Tags()
    parser.feed(page)
    parser.close()
    return parser


def text_of(page: str) -> str:
    """Visible-ish text: tags stripped, entities decoded, whitespace collapsed."""
    body = page.split("</style>", 1)[-1]
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", body)))


def url_attrs(page: str) -> list[tuple[str, str, str]]:
    """(tag, attribute, value) of every attribute that can load or link a URL."""
    found = []
    for tag, attrs in parse(page).tags:
        for name in ("src", "href", "srcset", "action", "poster", "data", "formaction"):
            value = attrs.get(name)
            if value is not None:
                found.append((tag, name, value))
    return found


def assert_self_contained(page: str, allowed_links: set[str]) -> None:
    """No script, no external asset; only the given http(s) URLs as <a href> links."""
    tags = parse(page).tags
    assert not [t for t, _ in tags if t in ("script", "iframe", "object", "embed", "img")]
    for tag, name, value in url_attrs(page):
        if tag == "link":
            assert value == "data:,", (tag, name, value)
            continue
        assert (tag, name) == ("a", "href"), value
        assert value in allowed_links, f"unexpected link {value}"
    css = page.split("<style>", 1)[1].split("</style>", 1)[0]
    assert "@import" not in css
    assert "url(" not in css
    assert 'http-equiv="Content-Security-Policy"' in page


#: Every element the renderers emit; injected markup would add others (img, script …).
OUR_TAGS = {
    "html",
    "head",
    "meta",
    "link",
    "title",
    "style",
    "body",
    "main",
    "header",
    "div",
    "h1",
    "h2",
    "h3",
    "p",
    "section",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "span",
    "code",
    "pre",
    "a",
    "ol",
    "ul",
    "li",
    "strong",
    "br",
    "dl",
    "dt",
    "dd",
    "footer",
}


def assert_escaped(page: str) -> None:
    """Hostile values stayed text: no foreign element, no event-handler attribute."""
    lowered = page.lower()
    assert "<script" not in lowered
    assert "<img" not in lowered
    for tag, attrs in parse(page).tags:
        assert tag in OUR_TAGS, tag
        assert not [name for name in attrs if name.startswith("on")], (tag, attrs)
        href = attrs.get("href") or ""
        assert not href.lower().startswith(("javascript:", "data:text")), href


# --- generate_verification_html (0.3.0 signature) ------------------------------------------


class TestCompatPage:
    def test_reads_the_current_envelope(self) -> None:
        env = training_envelope()
        page = generate_verification_html(
            env, {"tx_id": TX, "url": f"https://turbo-gateway.com/{TX}"}
        )
        text = text_of(page)
        assert "<title>ar.io Verification Report</title>" in page
        assert "training_complete" in text
        assert "unknown" not in text
        for field in ("event_id", "payload_hash", "previous_hash", "public_key", "signature"):
            assert env[field] in text, field
        assert env["subject"]["run_id"] in text
        assert env["signed_at"] in text
        assert "ario.mlflow/v1" in text
        assert key_fingerprint(PUBKEY) in text
        # No TX-less placeholder once the subject names the run.
        assert f"ar-io-mlflow verify run {env['subject']['run_id']}" in text
        assert "<run_id>" not in page

    @pytest.mark.parametrize(
        ("verification", "anchor", "badge"),
        [
            ({"attestation_level": 2}, {"tx_id": TX}, "Verified (Level 2)"),
            ({"attestation_level": 3, "attested_by": "gw"}, {"tx_id": TX}, "Verified (Level 3)"),
            (None, {"tx_id": TX}, "Anchored"),
            ({"attestation_level": None}, {"tx_id": TX}, "Anchored"),
            (None, None, "Signed (local)"),
            (None, {}, "Signed (local)"),
        ],
    )
    def test_status_badge(
        self, verification: dict[str, Any] | None, anchor: dict[str, Any] | None, badge: str
    ) -> None:
        page = generate_verification_html(training_envelope(), anchor, verification=verification)
        status_row = re.search(r"<th[^>]*>Status</th><td>(.*?)</td>", page)
        assert status_row is not None
        assert badge in text_of(status_row.group(1))

    def test_tx_from_the_proof_when_no_anchor_result(self) -> None:
        env = {**training_envelope(), "arweave_tx_id": TX}
        page = generate_verification_html(env, None)
        assert "Anchored" in text_of(page)
        assert f"https://turbo-gateway.com/raw/{TX}" in page
        # The extra bookkeeping key is not shown as part of the signed envelope.
        assert "arweave_tx_id" not in text_of(page)

    @pytest.mark.parametrize(
        ("verified", "expected", "absent"),
        [(True, "Verified", "MISMATCH"), (False, "MISMATCH", None), (None, None, "MISMATCH")],
    )
    def test_artifact_integrity_badge(
        self, verified: bool | None, expected: str | None, absent: str | None
    ) -> None:
        page = generate_verification_html(
            training_envelope(), {"tx_id": TX}, artifact_hash="ab" * 32, artifact_verified=verified
        )
        text = text_of(page)
        assert "ab" * 32 in text
        row = re.search(r"<th[^>]*>Artifact integrity</th><td>(.*?)</td>", page)
        if expected is None:
            assert row is None
        else:
            assert row is not None
            assert expected in text_of(row.group(1))
        if absent:
            assert absent not in text

    def test_no_artifact_rows_without_hash(self) -> None:
        page = generate_verification_html(
            training_envelope(), {"tx_id": TX}, artifact_verified=True
        )
        assert "Artifact integrity" not in page
        assert "Artifact hash" not in page

    def test_arweave_and_receipt_rows(self) -> None:
        receipt = {"timestamp": 1764177126000, "owner": "OWNER", "signature": "RSIG"}
        url = f"https://turbo-gateway.com/{TX}"
        page = generate_verification_html(
            training_envelope(), {"tx_id": TX, "url": url, "receipt": receipt}
        )
        text = text_of(page)
        assert f'href="{url}"' in page
        assert "Gateway URL" in text
        assert "1764177126000 ms" in text
        assert "2025-11-26 17:12:06 UTC" in text
        assert "OWNER" in text
        assert "RSIG" in text
        # The proof's own receipt wins, as in 0.3.0.
        page = generate_verification_html(
            {**training_envelope(), "turbo_receipt": {"owner": "FROM-PROOF"}},
            {"tx_id": TX, "receipt": receipt},
        )
        assert "FROM-PROOF" in page
        assert "OWNER" not in page

    def test_verify_table(self) -> None:
        verification = {
            "attestation_level": 2,
            "attested_by": "ar-io.example",
            "attested_at": "2026-11-26T17:12:09.123456+00:00",
            "report_url": "https://verify.example/report/1",
        }
        page = generate_verification_html(
            training_envelope(), {"tx_id": TX}, verification=verification
        )
        text = text_of(page)
        assert "Attestation level" in text
        assert "Level 2" in text
        assert "ar-io.example" in text
        assert "2026-11-26T17:12:09Z" in text
        assert 'href="https://verify.example/report/1"' in page
        assert "Not attested yet" not in text

    def test_cli_nudge_only_with_tx_and_no_verification(self) -> None:
        cmd = "ar-io-mlflow verify model iris/3"
        page = generate_verification_html(
            registration_envelope(), {"tx_id": REG_TX}, cli_verify_cmd=cmd
        )
        assert "Not attested yet" in text_of(page)
        assert cmd in text_of(page)
        page = generate_verification_html(registration_envelope(), {"tx_id": REG_TX})
        assert "ar-io-mlflow verify model iris/3" in text_of(page)
        page = generate_verification_html(registration_envelope(), None, cli_verify_cmd=cmd)
        assert "Not attested yet" not in text_of(page)
        page = generate_verification_html(
            registration_envelope(),
            {"tx_id": REG_TX},
            verification={"attestation_level": 2},
            cli_verify_cmd=cmd,
        )
        assert "Not attested yet" not in text_of(page)

    def test_verify_link_only_when_configured(self, monkeypatch: pytest.MonkeyPatch) -> None:
        page = generate_verification_html(training_envelope(), {"tx_id": TX})
        links = {value for _, name, value in url_attrs(page) if name == "href"} - {"data:,"}
        assert links == {f"https://turbo-gateway.com/{TX}"}

        monkeypatch.setenv("ARIO_MLFLOW_ARIO_VERIFY_URL", "https://ops.example/local/verify/")
        page = generate_verification_html(training_envelope(), {"tx_id": TX})
        assert f'href="https://ops.example/local/verify/{TX}"' in page

        page = generate_verification_html(
            training_envelope(), {"tx_id": TX}, verify_base_url="https://arg.example/v"
        )
        assert f'href="https://arg.example/v/{TX}"' in page
        assert "ops.example" not in page

        page = generate_verification_html(
            training_envelope(), {"tx_id": TX}, verify_base_url="javascript:alert(1)"
        )
        assert "javascript:" not in page

    def test_wallet_banners(self) -> None:
        env, anchor = training_envelope(), {"tx_id": TX}
        page = generate_verification_html(
            env, anchor, wallet_mode="persistent", wallet_type="solana"
        )
        text = text_of(page)
        assert "Auto-generated funding wallet" in text
        assert "Solana wallet" in text
        assert "ARIO_MLFLOW_ARWEAVE_WALLET" in text
        page = generate_verification_html(env, anchor, wallet_mode="persistent")
        assert "plugin's own wallet" in text_of(page)
        page = generate_verification_html(
            env, anchor, wallet_mode="ephemeral", wallet_type="arweave"
        )
        assert "Temporary funding wallet" in text_of(page)
        assert "Arweave wallet" in text_of(page)
        for mode in ("user-configured", None):
            page = generate_verification_html(env, anchor, wallet_mode=mode)
            assert "funding wallet" not in text_of(page)

    @pytest.mark.parametrize(
        ("url", "raw"),
        [
            (None, f"https://turbo-gateway.com/raw/{TX}"),
            (f"https://turbo-gateway.com/{TX}", f"https://turbo-gateway.com/raw/{TX}"),
            (f"https://ardrive.net/{TX}", f"https://ardrive.net/raw/{TX}"),
            (f"http://127.0.0.1:8123/{TX}", f"http://127.0.0.1:8123/raw/{TX}"),
            (f"https://gw.example/ar/{TX}", f"https://gw.example/ar/raw/{TX}"),
            ("not a url", f"https://turbo-gateway.com/raw/{TX}"),
        ],
    )
    def test_recipe_uses_raw_path_on_the_gateway(self, url: str | None, raw: str) -> None:
        page = generate_verification_html(training_envelope(), {"tx_id": TX, "url": url})
        assert f"curl -sS {raw} -o envelope.json" in text_of(page)
        assert f"{TX}/raw" not in page

    def test_recipe_describes_the_real_scheme(self) -> None:
        text = text_of(generate_verification_html(training_envelope(), {"tx_id": TX}))
        for phrase in (
            "RFC 8785",
            "Ed25519",
            "co_signatures",
            "starting with _",
            "payload_hash",
            "previous_hash",
            "ario/events/2e9ee73c-07e5-4194-8043-d5f972dd397b/payload.json",
            "ario/payload.json",
            "SHA-256",
        ):
            assert phrase in text, phrase
        # The obsolete 0.3.0 scheme is gone.
        assert "record_hash" not in text
        assert "Record Hash" not in text

    def test_unanchored_record_recipe(self) -> None:
        text = text_of(generate_verification_html(training_envelope(), None))
        assert "no Arweave TX yet" in text
        assert "curl" not in text

    def test_tolerates_empty_and_legacy_inputs(self) -> None:
        text = text_of(generate_verification_html(None, None))
        assert "Signed (local)" in text
        legacy = {
            "record": {"event_type": "training_complete", "run_id": "r1", "timestamp": "t0"},
            "record_hash": "x",
        }
        text = text_of(generate_verification_html(legacy, {"tx_id": TX}))
        assert "training_complete" in text
        assert "r1" in text

    def test_escapes_every_value(self) -> None:
        env = poison(training_envelope())
        anchor = poison(
            {
                "tx_id": TX,
                "url": f"https://turbo-gateway.com/{TX}",
                "receipt": {"timestamp": "1", "owner": "o", "signature": "s"},
            }
        )
        verification = poison(
            {"attestation_level": "2", "attested_by": "g", "attested_at": "t", "report_url": "u"}
        )
        for extra in (
            {"verification": verification},
            {"cli_verify_cmd": EVIL, "verify_base_url": EVIL},
        ):
            page = generate_verification_html(
                env,
                anchor,
                artifact_hash=EVIL,
                artifact_verified=False,
                wallet_mode="persistent",
                wallet_type=EVIL,
                **extra,
            )
            assert_escaped(page)
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        page = generate_verification_html(
            poison(training_envelope(), EVIL_ATTR), poison({"tx_id": TX, "url": "x"}, EVIL_ATTR)
        )
        assert_escaped(page)

    def test_self_contained(self) -> None:
        url = f"https://turbo-gateway.com/{TX}"
        page = generate_verification_html(
            training_envelope(),
            {"tx_id": TX, "url": url},
            verification={"attestation_level": 2, "report_url": "https://verify.example/r/1"},
        )
        assert_self_contained(
            page, {url, "https://turbo-gateway.com", "https://verify.example/r/1"}
        )


# --- render_verification_report -------------------------------------------------------------


def banner_of(page: str) -> str:
    match = re.search(r'<section class="banner (\w+)"[^>]*>(.*?)</section>', page, re.S)
    assert match is not None
    return f"{match.group(1)}: {text_of(match.group(2)).strip()}"


class TestVerificationReport:
    @pytest.mark.parametrize(
        ("overall", "banner"),
        [(True, "pass: ✓ PASSED"), (False, "fail: ✗ FAILED"), (None, "warn: ? INCOMPLETE")],
    )
    def test_banner(self, overall: bool | None, banner: str) -> None:
        assert banner_of(render_verification_report(verify_result(overall))).startswith(banner)

    def test_banner_derived_when_overall_missing(self) -> None:
        result = verify_result()
        del result["overall"]
        result["checks"]["ario_attestation"] = {"ok": True}
        assert "PASSED" in banner_of(render_verification_report(result))
        result["checks"]["chain"] = {"ok": False, "reason": "broken"}
        assert "FAILED" in banner_of(render_verification_report(result))

    def test_banner_names_the_culprits(self) -> None:
        result = verify_result(False)
        result["checks"]["chain"] = {"ok": False, "reason": "broken"}
        result["checks"]["source_of_truth"] = {"ok": False}
        assert banner_of(render_verification_report(result)).endswith(
            "Failed: Live MLflow state, Chain link."
        )
        result = verify_result(None)
        result["checks"]["anchored_bytes"] = {"ok": None, "reason": "no_mlflow_client"}
        assert banner_of(render_verification_report(result)).endswith(
            "Not checked: Anchored payload, ar.io attestation."
        )

    def test_one_row_per_check_with_glyph_and_reason(self) -> None:
        result = verify_result(False)
        result["checks"]["chain"] = {"ok": False, "reason": "previous_hash_not_training_tx"}
        result["checks"]["custom_check"] = {"ok": True, "reason": "fine"}
        page = render_verification_report(result)
        rows = re.findall(r'<tr><td class="c-status">(.*?)</tr>', page, re.S)
        assert len(rows) == len(result["checks"])
        joined = " | ".join(text_of(r) for r in rows)
        assert "✓ Pass Signature" in joined
        assert "✗ Fail Chain link previous_hash_not_training_tx" in joined
        assert "? Not checked ar.io attestation ario_verify_not_enabled" in joined
        assert "✓ Pass Custom check fine" in joined
        # Failing byte check shows both hashes.
        result["checks"]["anchored_bytes"] = {
            "ok": False,
            "computed_hash": "aa" * 32,
            "stored_hash": "bb" * 32,
        }
        text = text_of(render_verification_report(result))
        assert "aa" * 32 in text
        assert "bb" * 32 in text
        assert "failed (no reason given)" in text

    def test_pinned_issuer(self) -> None:
        text = text_of(render_verification_report(verify_result()))
        assert f"Signed by {key_fingerprint(PUBKEY)} — pinned" in text
        assert "NOT pinned" not in text

    def test_unpinned_issuer_warning(self) -> None:
        result = verify_result()
        result["checks"]["issuer"] = {
            "ok": None,
            "reason": "no trusted keys configured",
            "public_key": PUBKEY,
            "fingerprint": key_fingerprint(PUBKEY),
            "pinned": False,
        }
        page = render_verification_report(result)
        text = text_of(page)
        assert (
            f"Signed by {key_fingerprint(PUBKEY)} — NOT pinned (anyone can sign; pin with "
            "--trusted-key / ARIO_MLFLOW_TRUSTED_KEYS)"
        ) in text
        assert '<div class="note warn">' in page

    def test_foreign_key_with_pinning_fails_loudly(self) -> None:
        result = verify_result(False)
        result["checks"]["issuer"] = {
            "ok": False,
            "reason": "signed by an unpinned key",
            "public_key": "ab" * 32,
            "fingerprint": key_fingerprint("ab" * 32),
            "pinned": False,
        }
        page = render_verification_report(result)
        assert '<div class="note fail">' in page
        assert "NOT pinned" in text_of(page)
        assert "signed by an unpinned key" in text_of(page)

    def test_issuer_falls_back_to_envelope_key(self) -> None:
        result = verify_result()
        del result["checks"]["issuer"]
        text = text_of(render_verification_report(result))
        assert f"Signed by {key_fingerprint(PUBKEY)} — NOT pinned" in text

    def test_lineage_and_links(self) -> None:
        page = render_verification_report(verify_result())
        assert f'href="https://gw.example.org/{TX}"' in page
        # A lineage item without a URL links through the result's gateway.
        assert f'href="https://gw.example.org/{REG_TX}"' in page
        text = text_of(page)
        assert "Training run ee7ae36d" in text
        assert f"curl -sS https://gw.example.org/raw/{REG_TX} -o envelope.json" in text

    def test_envelope_fields_and_recipe(self) -> None:
        env = registration_envelope()
        text = text_of(render_verification_report(verify_result()))
        for field in ("event_id", "payload_hash", "public_key", "signature", "signed_at"):
            assert env[field] in text, field
        assert "iris version 3" in text
        assert "Arweave TX of the previous record" in text
        assert "ario/registration_payload.json" in text
        assert "Generated 2026-11-26T18:00:00Z" in text

    def test_tolerates_missing_keys(self) -> None:
        page = render_verification_report({})
        assert "INCOMPLETE" in banner_of(page)
        assert "No checks were run." in text_of(page)
        assert "envelope could not be retrieved" in text_of(page)
        page = render_verification_report({"kind": "tx", "checks": {"signature": None}})
        assert "INCOMPLETE" in banner_of(page)

    def test_attestation_details(self) -> None:
        result = verify_result()
        result["checks"]["ario_attestation"] = {
            "ok": True,
            "attestation_level": 3,
            "attested_by": "gw.example",
            "report_url": "https://verify.example/report/9",
        }
        page = render_verification_report(result)
        assert 'href="https://verify.example/report/9"' in page
        assert "gw.example" in text_of(page)

    def test_escapes_every_value(self) -> None:
        for payload in (EVIL, EVIL_ATTR):
            result = poison(verify_result(), payload)
            result["checks"][payload] = {"ok": False, "reason": payload}
            page = render_verification_report(result)
            assert_escaped(page)
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in render_verification_report(
            poison(verify_result())
        )

    def test_only_http_links(self) -> None:
        result = verify_result()
        result["url"] = "javascript:alert(1)"
        result["lineage"][0]["url"] = "javascript:alert(2)"
        result["checks"]["ario_attestation"]["report_url"] = "data:text/html,x"
        page = render_verification_report(result)
        assert "javascript:" not in page
        assert 'href="data:text' not in page

    def test_self_contained(self) -> None:
        page = render_verification_report(verify_result())
        allowed = {
            f"https://gw.example.org/{TX}",
            f"https://gw.example.org/{REG_TX}",
            "https://gw.example.org",
        }
        assert_self_contained(page, allowed)

    def test_deterministic(self) -> None:
        assert render_verification_report(verify_result()) == render_verification_report(
            verify_result()
        )


# --- render_audit_report --------------------------------------------------------------------


class TestAuditReport:
    def test_passed(self) -> None:
        page = render_audit_report(audit_bundle())
        assert banner_of(page).startswith("pass: ✓ PASSED")
        text = text_of(page)
        for value in ("iris", "Production", "sqlite:///mlflow.db", "ario.mlflow.audit/v1"):
            assert value in text
        assert "No sequence gaps" in text
        assert "Artifacts match" in text
        assert "Generated 2026-11-26T18:00:00.000000Z" in text
        assert "ar-io-mlflow audit iris/3" in text

    def test_lineage_order_and_states(self) -> None:
        page = render_audit_report(audit_bundle())
        timeline = page.split('<ol class="timeline">', 1)[1].split("</ol>", 1)[0]
        labels = re.findall(r"<strong>(\w+)</strong>", timeline)
        assert labels == ["Training", "Datasets", "Registration", "Promotion", "Alias"]
        text = text_of(timeline)
        assert "Training run ee7ae36d ✓ Verified" in text
        assert "Datasets train_q1 – Not anchored" in text
        assert f'href="https://turbo-gateway.com/{TX}"' in timeline

    def test_failed_stage_and_checks(self) -> None:
        bundle = audit_bundle(False)
        bundle["stages"][3]["ok"] = False
        bundle["stages"][3]["checks"]["source_of_truth"] = {
            "ok": False,
            "reason": "live_mlflow_mismatch",
        }
        page = render_audit_report(bundle)
        assert banner_of(page) == "fail: ✗ FAILED Issues found: Registration (v3) failed."
        text = text_of(page)
        assert "Registration v3 ✗ Failed" in text
        assert "✗ Fail Live MLflow state live_mlflow_mismatch" in text
        assert "Registration checks" in text

    def test_nothing_anchored_is_not_ok(self) -> None:
        bundle = audit_bundle(False)
        for stage in bundle["stages"]:
            stage.update(tx_id=None, anchored=False, checks=None, ok=None)
        page = render_audit_report(bundle)
        assert "Nothing is anchored" in banner_of(page)

    def test_gaps_and_integrity_problems_highlighted(self) -> None:
        bundle = audit_bundle(False)
        bundle["decisions"]["sequence_gaps"] = [{"stream_id": "stream-a", "missing": [4, 5]}]
        bundle["decisions"]["pending"] = 0
        bundle["artifact_integrity"] = {
            "ok": False,
            "reason": "model.pkl differs",
            "changed": ["model.pkl"],
            "missing": ["MLmodel"],
            "added": [f"extra/{i}.bin" for i in range(60)],
        }
        page = render_audit_report(bundle)
        assert banner_of(page).endswith(
            "Issues found: model artifacts changed since training; "
            "1 decision stream(s) have sequence gaps."
        )
        text = text_of(page)
        assert "✗ Sequence gaps" in text
        assert "stream-a : 2 missing (sequence 4, 5)" in text
        assert '<div class="note fail">' in page
        assert "✗ Artifacts changed model.pkl differs" in text
        assert "Changed files (1)" in text
        assert "Missing files (1)" in text
        assert "Added files (60)" in text
        assert "… and 10 more" in text
        assert "not uploaded yet" not in text

    def test_pending_decisions_and_unpinned_issuers(self) -> None:
        bundle = audit_bundle()
        bundle["issuers"].append({"public_key": "ab" * 32, "fingerprint": None, "pinned": False})
        text = text_of(render_audit_report(bundle))
        assert "2 decision record(s) are signed and journaled but not uploaded yet" in text
        assert "An issuer is NOT pinned (anyone can sign; pin with --trusted-key" in text
        assert key_fingerprint("ab" * 32) in text

    def test_gateway_and_stage_urls(self) -> None:
        bundle = audit_bundle()
        bundle["gateway"] = "http://127.0.0.1:9000"
        bundle["stages"][0]["url"] = "http://127.0.0.1:9000/custom"
        page = render_audit_report(bundle)
        assert f'href="http://127.0.0.1:9000/{TX}"' in page
        assert 'href="http://127.0.0.1:9000/custom"' in page
        assert "curl -sS http://127.0.0.1:9000/raw/&lt;tx_id&gt;" in page

    def test_reference_shaped_bundle(self) -> None:
        """A 0.3.0 bundle (three stages, no new sections) still renders."""
        bundle = {
            "schema": "ario.mlflow.audit/v1",
            "model": "iris",
            "version": "1",
            "generated_at": "2026-01-01T00:00:00.000000Z",
            "tracking_uri": "./mlruns",
            "run_id": None,
            "current_stage": "None",
            "artifact_hash": None,
            "stages": [
                {
                    "stage": "training",
                    "tx_id": TX,
                    "anchored": True,
                    "ok": False,
                    "checks": {"signature": {"ok": None}, "anchored_bytes": {"ok": None}},
                },
                {
                    "stage": "registration",
                    "tx_id": None,
                    "anchored": False,
                    "checks": None,
                    "ok": None,
                },
                {
                    "stage": "promotion",
                    "tx_id": None,
                    "anchored": False,
                    "checks": None,
                    "ok": None,
                },
            ],
            "overall_ok": False,
        }
        page = render_audit_report(bundle)
        assert "Issues found: Training failed." in banner_of(page)
        assert "This bundle does not list issuer keys." in text_of(page)
        bundle["issuers"] = []
        assert "No signed records, so no issuers." in text_of(render_audit_report(bundle))
        assert render_audit_report({}).count("INCOMPLETE") >= 1

    def test_escapes_every_value(self) -> None:
        for payload in (EVIL, EVIL_ATTR):
            bundle = poison(audit_bundle(False), payload)
            bundle["stages"][1]["checks"][payload] = {"ok": False, "reason": payload}
            bundle["decisions"]["sequence_gaps"] = [{"stream_id": payload, "missing": [payload, 3]}]
            bundle["artifact_integrity"]["changed"] = [payload]
            bundle["decisions"]["pending"] = 5
            page = render_audit_report(bundle)
            assert_escaped(page)

    def test_self_contained(self) -> None:
        page = render_audit_report(audit_bundle())
        allowed = {
            f"https://turbo-gateway.com/{TX}",
            f"https://turbo-gateway.com/{REG_TX}",
            "https://turbo-gateway.com/Rhexl4hc73x0gbMDU52murPSmkRMCfs1CMArz_CrmhY",
        }
        assert_self_contained(page, allowed)


# --- cross-cutting -------------------------------------------------------------------------


def test_fingerprint_matches_the_kernel() -> None:
    for key in (PUBKEY, "ab" * 32, "not hex"):
        assert report._fingerprint(key) == key_fingerprint(key)
    assert report._fingerprint(None) is None


def test_no_hard_coded_hosts() -> None:
    source = Path(report.__file__).read_text(encoding="utf-8")
    assert "vilenarios" not in source.lower()
    hosts = set(re.findall(r"https?://([A-Za-z0-9.-]+)", source))
    assert hosts == {"turbo-gateway.com"}, hosts
    pages = [
        generate_verification_html(training_envelope(), {"tx_id": TX}),
        render_verification_report(verify_result()),
        render_audit_report(audit_bundle()),
    ]
    for page in pages:
        assert "vilenarios" not in page.lower()
        assert set(re.findall(r"https?://([A-Za-z0-9.-]+)", page)) <= {
            "turbo-gateway.com",
            "gw.example.org",
        }


def _recipe_script(page: str) -> str:
    blocks = [b for b in parse(page).pre if "VerifyKey" in b]
    assert len(blocks) == 1
    return blocks[0]


@pytest.mark.parametrize("vector", ["training", "registration", "prediction-0", "promotion"])
def test_recipe_code_verifies_a_real_record(vectors_dir: Path, tmp_path: Path, vector: str) -> None:
    """The printed Python recipe, run as printed, accepts a real record and rejects tampering."""
    folder = vectors_dir / "original-0.3.0" / vector
    envelope = json.loads((folder / "envelope.json").read_text(encoding="utf-8"))
    script = _recipe_script(generate_verification_html(envelope, {"tx_id": TX}))
    (tmp_path / "check.py").write_text(script, encoding="utf-8")
    (tmp_path / "envelope.json").write_bytes(canonical_json(envelope))
    (tmp_path / "payload.json").write_bytes((folder / "payload.bin").read_bytes())

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "check.py"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    ok = run()
    assert ok.returncode == 0, ok.stderr
    assert "signature and payload OK" in ok.stdout

    (tmp_path / "payload.json").write_bytes((folder / "payload.bin").read_bytes() + b" ")
    assert "payload changed" in run().stderr

    forged = {**envelope, "signed_at": "2030-01-01T00:00:00+00:00"}
    (tmp_path / "envelope.json").write_bytes(canonical_json(forged))
    (tmp_path / "payload.json").write_bytes((folder / "payload.bin").read_bytes())
    assert "BadSignatureError" in run().stderr

    # Unsigned annotations are ignored for ario.mlflow/v1, as the recipe says.
    annotated = {**envelope, "_tx_id": TX}
    (tmp_path / "envelope.json").write_bytes(canonical_json(annotated))
    assert run().returncode == 0


# --- headless Chromium ---------------------------------------------------------------------


def test_missing_chromium_fails_with_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARIO_MLFLOW_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(pytest.fail.Exception, match=r"apt-get install -y chromium"):
        find_chromium()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    chromium = Browser(find_chromium(), tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield chromium
    finally:
        chromium.stop()


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[[], Page]]:
    opened: list[tuple[Page, str]] = []

    def factory() -> Page:
        page, target = browser.new_page()
        opened.append((page, target))
        return page

    yield factory
    for page, target in opened:
        browser.close_page(page, target)


def _shot_dir(tmp_path: Path) -> Path:
    """Screenshots go to $ARIO_MLFLOW_REPORT_SCREENSHOTS when set (to look at them)."""
    configured = os.environ.get("ARIO_MLFLOW_REPORT_SCREENSHOTS")
    folder = Path(configured) if configured else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _cases() -> list[Any]:
    failing = verify_result(False)
    failing["checks"]["chain"] = {"ok": False, "reason": "previous_hash_not_training_tx"}
    failing["checks"]["issuer"]["pinned"] = False
    incomplete = verify_result(None)
    incomplete["checks"]["anchored_bytes"] = {"ok": None, "reason": "no_mlflow_client"}
    gaps = audit_bundle(False)
    gaps["decisions"]["sequence_gaps"] = [{"stream_id": "s-1", "missing": [7, 8]}]
    gaps["artifact_integrity"] = {"ok": False, "reason": "1 file changed", "changed": ["m.pkl"]}
    cases = [
        (
            "compat-anchored",
            lambda: generate_verification_html(
                training_envelope(),
                {"tx_id": TX, "url": f"https://turbo-gateway.com/{TX}"},
                artifact_hash="ab" * 32,
                artifact_verified=True,
                wallet_mode="persistent",
                wallet_type="solana",
            ),
            "Anchored",
        ),
        (
            "compat-verified",
            lambda: generate_verification_html(
                registration_envelope(), {"tx_id": REG_TX}, verification={"attestation_level": 2}
            ),
            "Verified (Level 2)",
        ),
        (
            "compat-local",
            lambda: generate_verification_html(training_envelope(), None),
            "Signed (local)",
        ),
        ("verify-passed", lambda: render_verification_report(verify_result(True)), "PASSED"),
        ("verify-failed", lambda: render_verification_report(failing), "FAILED"),
        ("verify-incomplete", lambda: render_verification_report(incomplete), "INCOMPLETE"),
        ("audit-passed", lambda: render_audit_report(audit_bundle(True)), "PASSED"),
        ("audit-failed", lambda: render_audit_report(gaps), "FAILED"),
        ("escaped", lambda: render_verification_report(poison(verify_result(False))), "FAILED"),
    ]
    return [pytest.param(*case, id=case[0]) for case in cases]


@pytest.mark.parametrize(("name", "render", "status"), _cases())
def test_renders_in_chromium(
    open_page: Callable[[], Page],
    tmp_path: Path,
    name: str,
    render: Callable[[], str],
    status: str,
) -> None:
    html_file = tmp_path / f"{name}.html"
    html_file.write_text(render(), encoding="utf-8")
    shots = _shot_dir(tmp_path)
    page = open_page()

    page.load(html_file)
    assert page.problems() == []
    shown = page.evaluate("document.body.innerText")
    assert status in shown
    if name.startswith(("verify", "audit", "escaped")):
        banner = page.evaluate("document.querySelector('.banner .verdict').innerText")
        assert banner == status
    assert page.evaluate("document.scripts.length") == 0
    # Injected markup stayed text.
    assert page.evaluate("document.querySelectorAll('img, script, iframe').length") == 0
    assert page.evaluate("performance.getEntriesByType('resource').length") == 0
    page.screenshot(shots / f"{name}-desktop.png")

    # Phone width: nothing may force horizontal scrolling (long hashes must wrap).
    page.load(html_file, width=375, height=800)
    assert page.problems() == []
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{name} overflows a 375 px screen by {overflow} px"
    if os.environ.get("ARIO_MLFLOW_REPORT_SCREENSHOTS"):
        page.screenshot(shots / f"{name}-phone.png")

    # Print layout: still the status text, still no problems, and a PDF can be produced.
    page.load(html_file, width=800, media="print")
    assert page.problems() == []
    assert status in page.evaluate("document.body.innerText")
    if os.environ.get("ARIO_MLFLOW_REPORT_SCREENSHOTS"):
        page.screenshot(shots / f"{name}-print.png")
    pdf = page.call("Page.printToPDF", printBackground=True)
    assert base64.b64decode(pdf["data"]).startswith(b"%PDF")


def test_console_problems_are_detected(open_page: Callable[[], Page], tmp_path: Path) -> None:
    """Control: the harness really sees errors, so an empty list above means something."""
    broken = tmp_path / "broken.html"
    broken.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>x</title></head><body>"
        "<p>hi</p><script>console.error('boom'); missingFunction();</script></body></html>",
        encoding="utf-8",
    )
    page = open_page()
    page.load(broken)
    problems = " ".join(page.problems())
    assert "boom" in problems
    assert "missingFunction" in problems

    # A report-style page (with our CSP) that tries to load an asset is caught too.
    leaky = tmp_path / "leaky.html"
    leaky.write_text(
        generate_verification_html(training_envelope(), None).replace(
            "</main>", '<img src="https://example.invalid/x.png"></main>'
        ),
        encoding="utf-8",
    )
    page.load(leaky)
    assert any("Content Security Policy" in p for p in page.problems()), page.problems()
