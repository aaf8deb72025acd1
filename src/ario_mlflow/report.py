"""Self-contained HTML reports: one verified record, a model audit, and the 0.3.0-style page.

Auditors open these files years later, offline, often from an MLflow artifact viewer, so
each page is one HTML5 document with inline CSS, no script and no external asset, and a
Content-Security-Policy that forbids loading anything at all. Every dynamic value passes
through :func:`html.escape`; links are emitted only for ``http(s)`` URLs. Rendering is pure
(no MLflow, no network, no files): callers pass plain dicts and write the string wherever
they like. The recipe each report prints describes the real scheme — JCS envelope from
``/raw/<tx>``, Ed25519 over the envelope minus ``signature``, SHA-256 payload commitment —
so that a reader can check the record without this package.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlsplit

from ario_mlflow._version import __version__

__all__ = [
    "DEFAULT_GATEWAY_URL",
    "generate_verification_html",
    "render_audit_report",
    "render_verification_report",
]

#: Where the recipe points when the caller knows no gateway (the reference's default host).
DEFAULT_GATEWAY_URL = "https://turbo-gateway.com"
_TRUST_HINT = "anyone can sign; pin with --trusted-key / ARIO_MLFLOW_TRUSTED_KEYS"

_EVENT_LABELS = {
    "training_complete": "Training run",
    "dataset": "Dataset",
    "model_registered": "Model registration",
    "stage_transition": "Stage promotion",
    "alias_changed": "Alias change",
    "prediction": "Prediction",
}
_KIND_LABELS = {
    "run": "Training run",
    "model": "Model version",
    "trace": "Trace",
    "decision": "Decision",
    "dataset": "Dataset",
    "tx": "Arweave TX",
}
#: Check name → (row label, what a pass establishes). Unknown checks get a generic label.
_CHECKS: dict[str, tuple[str, str]] = {
    "signature": (
        "Signature",
        "Ed25519 signature over the canonical envelope is valid for its public key",
    ),
    "issuer": ("Issuer key", "the signing key is one of the pinned, trusted keys"),
    "subject": ("Subject binding", "the envelope is about the object being verified"),
    "anchored_bytes": (
        "Anchored payload",
        "SHA-256 of the payload witness in MLflow equals payload_hash",
    ),
    "source_of_truth": ("Live MLflow state", "current MLflow state rebuilds the same bytes"),
    "chain": ("Chain link", "previous_hash points at the expected earlier record"),
    "ario_attestation": ("ar.io attestation", "an ar.io gateway attested the anchored data"),
}
_STAGE_LABELS = {
    "training": "Training",
    "datasets": "Datasets",
    "registration": "Registration",
    "promotion": "Promotion",
    "alias": "Alias",
}
_STAGE_ORDER = {"training": 0, "datasets": 1, "registration": 2, "promotion": 3, "alias": 3}
#: Extra fields of a check result worth showing (never byte blobs).
_DETAIL_KEYS = (
    ("computed_hash", "computed"),
    ("stored_hash", "anchored"),
    ("expected", "expected"),
    ("actual", "actual"),
    ("detail", "detail"),
    ("spec_version_status", "spec version"),
    ("attestation_level", "level"),
    ("min_attestation_level", "required level"),
    ("attested_by", "attested by"),
    ("attested_at", "attested at"),
)
_MAX_LIST = 50


# --- primitives ---------------------------------------------------------------------------


def _e(value: Any) -> str:
    """Escaped text of any value (``None`` → empty)."""
    return "" if value is None else html.escape(str(value), quote=True)


def _map(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else an empty one (tolerates missing/malformed keys)."""
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    """``value`` as a list when it is a non-string sequence, else empty."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        return []
    return list(value)


def _http_url(value: Any) -> str | None:
    """``value`` when it is an absolute http(s) URL safe to put in ``href``; else None.

    Anything else (``javascript:``, relative paths, whitespace tricks) is shown as text.
    """
    if not isinstance(value, str) or not value:
        return None
    if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in value):
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return value


def _link(url: Any, text: Any = None) -> str:
    """An outbound link, or plain escaped text when ``url`` is not a safe http(s) URL."""
    label = _e(url if text is None else text)
    safe = _http_url(url)
    if safe is None:
        return label
    # Printed copies lose the href; show it after the text when the text is not the URL.
    cls = ' class="ext"' if text is not None and str(text) != safe else ""
    return f'<a{cls} href="{_e(safe)}" rel="noopener noreferrer">{label}</a>'


def _mono(value: Any) -> str:
    """Monospace, wrap-anywhere rendering for hashes, keys and ids."""
    if value is None or value == "":
        return _dash()
    return f'<code class="hash">{_e(value)}</code>'


def _dash() -> str:
    return '<span class="muted">—</span>'


def _text(value: Any) -> str:
    """Escaped text, or a dash for an absent value."""
    return _dash() if value is None or value == "" else _e(value)


def _chip(state: str, glyph: str, label: Any) -> str:
    """A status pill; colour is decoration, the glyph and words carry the meaning."""
    return (
        f'<span class="chip {state}"><span class="g" aria-hidden="true">{glyph}</span>'
        f"{_e(label)}</span>"
    )


def _tri(ok: Any) -> tuple[str, str, str]:
    """(css state, glyph, word) for a tri-state ``ok``."""
    if ok is True:
        return "pass", "✓", "Pass"
    if ok is False:
        return "fail", "✗", "Fail"
    return "warn", "?", "Not checked"


def _kv(rows: Sequence[tuple[str, str]]) -> str:
    """Two-column table; labels are static, values already-escaped HTML."""
    body = "".join(
        f'<tr><th scope="row">{label}</th><td>{value}</td></tr>' for label, value in rows
    )
    return f'<table class="kv">{body}</table>'


def _card(title: str, body: str) -> str:
    """A titled section (``title`` is static or already escaped)."""
    return f'<section class="card"><h2>{title}</h2>{body}</section>'


def _note(state: str, body: str) -> str:
    return f'<div class="note {state}">{body}</div>'


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fingerprint(public_key: Any) -> str | None:
    """Display label of an Ed25519 key, the same as ``ario_mlflow.proof.key_fingerprint``.

    Recomputed here so the renderer stays dependency-free; a test keeps the two equal.
    """
    if not isinstance(public_key, str) or not public_key:
        return None
    try:
        raw = bytes.fromhex(public_key)
    except ValueError:
        raw = public_key.encode("utf-8", "replace")
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def _gateway_base(url: Any, tx_id: Any) -> str:
    """Gateway root of a TX URL: ``<scheme>://<host>[/prefix]/<tx>`` without the ``/<tx>``."""
    safe = _http_url(url)
    if safe is None:
        return DEFAULT_GATEWAY_URL
    parts = urlsplit(safe)
    path = parts.path.rstrip("/")
    if isinstance(tx_id, str) and tx_id and path.endswith("/" + tx_id):
        path = path[: -len(tx_id) - 1]
    elif isinstance(tx_id, str) and tx_id and path.endswith("/raw/" + tx_id):
        path = path[: -len(tx_id) - 5]
    else:
        path = ""
    return f"{parts.scheme}://{parts.netloc}{path}"


def _tx_url(base: str, tx_id: Any) -> str:
    return f"{base}/{quote(str(tx_id), safe='')}"


def _raw_url(base: str, tx_id: Any) -> str:
    return f"{base}/raw/{quote(str(tx_id), safe='')}"


# --- the envelope -------------------------------------------------------------------------


def _event_label(event_type: Any) -> str:
    """``Training run · training_complete`` (escaped)."""
    if not event_type:
        return _dash()
    friendly = _EVENT_LABELS.get(str(event_type))
    code = f'<code class="hash">{_e(event_type)}</code>'
    return f"{_e(friendly)} · {code}" if friendly else code


def _subject_rows(subject: Any) -> list[tuple[str, str]]:
    """Human rows for the envelope's ``subject`` (what the record is about)."""
    subj = _map(subject)
    if not subj:
        return [("Subject", _dash())]
    kind = subj.get("type")
    rows: list[tuple[str, str]] = []
    if kind == "mlflow_run":
        rows.append(("Run ID", _mono(subj.get("run_id"))))
        if subj.get("tracking_uri"):
            rows.append(("Tracking URI", _mono(subj.get("tracking_uri"))))
    elif kind == "mlflow_model_version":
        rows.append(
            (
                "Model",
                f'{_e(subj.get("name"))} <span class="muted">version</span> '
                f"{_e(subj.get('version'))}",
            )
        )
    elif kind == "mlflow_prediction":
        rows.append(("Decision ID", _mono(subj.get("decision_id"))))
        rows.append(("Model run ID", _mono(subj.get("model_run_id"))))
        if subj.get("trace_id"):
            rows.append(("Trace ID", _mono(subj.get("trace_id"))))
    elif kind == "mlflow_dataset":
        rows.append(("Dataset", _text(subj.get("name"))))
        rows.append(("Dataset digest", _mono(subj.get("digest"))))
    else:
        for key, value in subj.items():
            if key != "type":
                rows.append((_e(key), _mono(value)))
    rows.append(("Subject type", _mono(kind)))
    return rows


def _subject_summary(subject: Any) -> str:
    """One-line plain-text description of a subject (escaped by the caller)."""
    subj = _map(subject)
    kind = subj.get("type")
    if kind == "mlflow_run":
        return f"run {subj.get('run_id')}"
    if kind == "mlflow_model_version":
        return f"model {subj.get('name')} version {subj.get('version')}"
    if kind == "mlflow_prediction":
        return f"decision {subj.get('decision_id')}"
    if kind == "mlflow_dataset":
        return f"dataset {subj.get('name')} ({subj.get('digest')})"
    return ""


def _previous_hash(value: Any, base: str) -> str:
    """``previous_hash`` with what kind of link it is (and a link when it is a TX)."""
    if value is None or value == "":
        return _dash()
    text = str(value)
    if text == "GENESIS":
        return f'{_mono(text)} <span class="muted">first record of its chain</span>'
    if len(text) == 43:
        link = _link(_tx_url(base, text), text)
        note = '<span class="muted">Arweave TX of the previous record</span>'
        return f'<code class="hash">{link}</code> {note}'
    if len(text) == 64:
        return (
            f'{_mono(text)} <span class="muted">payload hash of the previous training record</span>'
        )
    return _mono(text)


def _envelope_rows(env: Mapping[str, Any], base: str) -> list[tuple[str, str]]:
    """All nine envelope fields, then any other key flagged as outside the standard set."""
    spec = env.get("spec_version")
    spec_html = (
        _mono(spec)
        if spec
        else '<span class="chip warn"><span class="g" aria-hidden="true">!</span>'
        "legacy envelope (no spec_version)</span>"
    )
    key = env.get("public_key")
    fingerprint = _fingerprint(key)
    key_html = _mono(key)
    if fingerprint:
        key_html += f' <span class="muted">fingerprint</span> {_mono(fingerprint)}'
    rows = [
        ("Event type", _event_label(env.get("event_type"))),
        ("Event ID", _mono(env.get("event_id"))),
        *_subject_rows(env.get("subject")),
        ("Signed at", _text(env.get("signed_at"))),
        ("Payload hash", _mono(env.get("payload_hash"))),
        ("Previous hash", _previous_hash(env.get("previous_hash"), base)),
        ("Public key", key_html),
        ("Signature", _mono(env.get("signature"))),
        ("Spec version", spec_html),
    ]
    standard = {
        "event_id",
        "event_type",
        "subject",
        "payload_hash",
        "previous_hash",
        "signed_at",
        "spec_version",
        "public_key",
        "signature",
    }
    for name, value in env.items():
        if name not in standard:
            rows.append((f'{_e(name)} <span class="muted">(extra key)</span>', _mono(value)))
    return rows


def _witness_hint(env: Mapping[str, Any]) -> str:
    """Where the exact payload bytes of this event live in MLflow (escaped HTML)."""
    event_type = env.get("event_type")
    event_id = env.get("event_id") or "<event_id>"
    subj = _map(env.get("subject"))
    per_event = f"<code>ario/events/{_e(event_id)}/payload.json</code>"
    if event_type == "training_complete":
        return (
            f"{per_event} (also <code>ario/payload.json</code>) in the artifacts of run "
            f"{_mono(subj.get('run_id'))}"
        )
    if event_type == "model_registered":
        return (
            f"{per_event} (also <code>ario/registration_payload.json</code>) in the artifacts "
            "of the model version's source run"
        )
    if event_type == "stage_transition":
        return (
            f"<code>ario/promotions/{_e(event_id)}/payload.json</code> in the artifacts of "
            "the model version's source run"
        )
    if event_type == "alias_changed":
        return (
            f"<code>ario/aliases/{_e(event_id)}/payload.json</code> in the artifacts of the "
            "model version's source run"
        )
    if event_type == "prediction":
        decision = subj.get("decision_id") or "<decision_id>"
        return (
            f"<code>ario/predictions/{_e(decision)}/payload.json</code> in the artifacts of "
            f"run {_mono(subj.get('model_run_id'))}, or the <code>ario.payload_json</code> "
            "tag of its trace"
        )
    if event_type == "dataset":
        return (
            "no stored file: rebuild it from the training payload's "
            "<code>dataset_inputs</code> entry (drop <code>context</code>, add "
            '<code>"event_type": "dataset"</code>, canonicalize with RFC 8785)'
        )
    return "the event's <code>payload.json</code> witness under <code>ario/</code> in MLflow"


_SNIPPET = """\
import hashlib, json
import rfc8785  # pip install rfc8785 pynacl
from nacl.signing import VerifyKey

env = json.load(open("envelope.json", encoding="utf-8"))
version = env.get("spec_version")
strip_underscore = version in (None, "ario.mlflow/v1") or version.startswith("ario.mlflow/v1.")
scope = {
    k: v for k, v in env.items()
    if k not in ("signature", "co_signatures") and not (strip_underscore and k.startswith("_"))
}
message = rfc8785.dumps(scope)  # RFC 8785 canonical bytes
VerifyKey(bytes.fromhex(env["public_key"])).verify(message, bytes.fromhex(env["signature"]))
payload = open("payload.json", "rb").read()  # the exact witness bytes from MLflow
assert hashlib.sha256(payload).hexdigest() == env["payload_hash"], "payload changed"
print("signature and payload OK; previous record:", env["previous_hash"])
"""


def _recipe(tx_id: Any, base: str, envelope: Mapping[str, Any] | None) -> str:
    """Step-by-step independent verification of one record (or of any record, generic)."""
    env = _map(envelope)
    tx = str(tx_id) if tx_id else None
    if tx:
        raw = _raw_url(base, tx)
        fetch = (
            "<li><strong>Fetch the anchored envelope</strong> from any ar.io gateway:"
            f"<pre>curl -sS {_e(raw)} -o envelope.json</pre>"
            "The body is the complete signed envelope as RFC 8785 (JCS) canonical JSON, "
            "byte for byte what was anchored on Arweave.</li>"
        )
    elif envelope is not None:
        fetch = (
            "<li><strong>This record has no Arweave TX yet</strong> (signed locally, not "
            "anchored). Take the envelope from its <code>proof.json</code> witness in MLflow; "
            "that file is pretty-printed, so canonicalize it with RFC 8785 before checking.</li>"
        )
    else:
        fetch = (
            "<li><strong>Fetch each anchored envelope</strong> from any ar.io gateway:"
            f"<pre>curl -sS {_e(base)}/raw/&lt;tx_id&gt; -o envelope.json</pre>"
            "The body is the complete signed envelope as RFC 8785 (JCS) canonical JSON.</li>"
        )
    payload_hash = env.get("payload_hash")
    expected = f" ({_mono(payload_hash)})" if payload_hash else ""
    witness = (
        _witness_hint(env) if env else "the event's <code>payload.json</code> witness in MLflow"
    )
    prev = env.get("previous_hash")
    prev_html = f" Here it is {_mono(prev)}." if prev else ""
    steps = [
        fetch,
        "<li><strong>Check the signature.</strong> Remove <code>signature</code> and "
        "<code>co_signatures</code> — and, for <code>ario.mlflow/v1</code> and legacy "
        "envelopes, every top-level key starting with <code>_</code> — serialize the rest "
        "with RFC 8785 and verify the Ed25519 signature (hex) over those bytes with "
        "<code>public_key</code> (hex). The key is inside the signed bytes, so it cannot be "
        "swapped.</li>",
        "<li><strong>Check the issuer.</strong> A valid signature only proves that the holder "
        "of <code>public_key</code> signed. Compare it with the key your organisation trusts "
        "(pin it with <code>--trusted-key</code> or <code>ARIO_MLFLOW_TRUSTED_KEYS</code>).</li>",
        "<li><strong>Check the payload.</strong> The envelope commits to the data by hash "
        f"only. Take the exact bytes of {witness} and compute their SHA-256: it must equal "
        f"<code>payload_hash</code>{expected}. Then compare the payload's fields with what "
        "MLflow shows today.</li>",
        "<li><strong>Follow the chain.</strong> <code>previous_hash</code> is "
        "<code>GENESIS</code> for a first record, the 43-character Arweave TX of the previous "
        "record (repeat from step 1 with it), or, for training, the payload hash of the "
        f"previous training record.{prev_html}</li>",
    ]
    cli = f"ar-io-mlflow verify tx {tx}" if tx else "ar-io-mlflow verify tx <tx_id>"
    return (
        '<ol class="steps">' + "".join(steps) + "</ol>"
        "<p>Steps 2 and 4 in Python (save the witness as <code>payload.json</code>):</p>"
        f"<pre>{_e(_SNIPPET)}</pre>"
        f"<p>Or run every check at once with this package: <code>{_e(cli)}</code></p>"
    )


# --- page frame ---------------------------------------------------------------------------

_CSS = """
:root{--fg:#1b1f24;--muted:#57606a;--line:#d5dce3;--bg:#f4f6f8;--card:#fff;--accent:#1f3a8a;
--pass:#0f5f27;--pass-bg:#dcf5e3;--pass-line:#1f883d;--fail:#9f1020;--fail-bg:#ffe5e5;
--fail-line:#cf222e;--warn:#6f4400;--warn-bg:#fff2c2;--warn-line:#bf8700;--info:#0a3069;
--info-bg:#e3f1ff;--info-line:#0969da;--neutral:#3d444d;--neutral-bg:#eef1f4;
--neutral-line:#8c959f;--mono:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",
"DejaVu Sans Mono",monospace}
*{box-sizing:border-box}
html{color-scheme:light;-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.55 system-ui,-apple-system,
"Segoe UI",Roboto,"Helvetica Neue",Arial,"Liberation Sans","DejaVu Sans",sans-serif}
.page{max-width:940px;margin:0 auto;padding:28px 20px 40px}
.brand{font-size:12px;font-weight:700;letter-spacing:.09em;text-transform:uppercase;
color:var(--accent)}
h1{font-size:26px;line-height:1.25;margin:4px 0 2px;letter-spacing:-.01em}
.sub{color:var(--muted);margin:0;overflow-wrap:anywhere}
h2{font-size:15px;margin:0 0 12px;letter-spacing:.01em}
h3{font-size:14px;margin:18px 0 8px}
a{color:var(--info-line);text-decoration:underline;text-underline-offset:2px;
overflow-wrap:anywhere}
p{margin:8px 0}
.muted{color:var(--muted);font-size:13px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;
padding:18px 20px;margin:14px 0;box-shadow:0 1px 2px rgba(27,31,36,.04)}
.banner{display:flex;gap:16px;align-items:center;border:1px solid;border-left-width:8px;
border-radius:10px;padding:16px 20px;margin:18px 0}
.banner .icon{flex:none;width:44px;height:44px;border-radius:50%;display:flex;
align-items:center;justify-content:center;font-size:24px;font-weight:800;color:#fff}
.banner .verdict{font-size:21px;font-weight:800;letter-spacing:.06em;margin:0}
.banner p{margin:2px 0 0}
.banner.pass{background:var(--pass-bg);border-color:var(--pass-line);color:var(--pass)}
.banner.pass .icon{background:var(--pass-line)}
.banner.fail{background:var(--fail-bg);border-color:var(--fail-line);color:var(--fail)}
.banner.fail .icon{background:var(--fail-line)}
.banner.warn{background:var(--warn-bg);border-color:var(--warn-line);color:var(--warn)}
.banner.warn .icon{background:var(--warn-line)}
.chip{display:inline-flex;align-items:center;gap:6px;padding:1px 10px 1px 8px;
border-radius:999px;border:1px solid;font-size:13px;font-weight:650;line-height:1.6;
white-space:nowrap;vertical-align:baseline}
.chip .g{font-weight:800}
.pass.chip{background:var(--pass-bg);color:var(--pass);border-color:var(--pass-line)}
.fail.chip{background:var(--fail-bg);color:var(--fail);border-color:var(--fail-line)}
.warn.chip{background:var(--warn-bg);color:var(--warn);border-color:var(--warn-line)}
.info.chip{background:var(--info-bg);color:var(--info);border-color:var(--info-line)}
.neutral.chip{background:var(--neutral-bg);color:var(--neutral);border-color:var(--neutral-line)}
.note{border:1px solid;border-left-width:5px;border-radius:8px;padding:10px 14px;margin:12px 0}
.note.warn{background:var(--warn-bg);border-color:var(--warn-line);color:var(--warn)}
.note.fail{background:var(--fail-bg);border-color:var(--fail-line);color:var(--fail)}
.note.info{background:var(--info-bg);border-color:var(--info-line);color:var(--info)}
.note.pass{background:var(--pass-bg);border-color:var(--pass-line);color:var(--pass)}
.note code,.note .hash{background:rgba(255,255,255,.6)}
table{width:100%;border-collapse:collapse;table-layout:fixed}
th,td{text-align:left;vertical-align:top;padding:8px 10px 8px 0}
tr+tr>th,tr+tr>td{border-top:1px solid var(--line)}
table.kv th{width:168px;color:var(--muted);font-weight:600;font-size:13.5px}
td{overflow-wrap:anywhere}
table.checks thead th{font-size:12px;text-transform:uppercase;letter-spacing:.06em;
color:var(--muted);border-bottom:2px solid var(--line)}
table.checks .c-status{width:150px}
table.checks .c-name{width:190px;font-weight:600}
table.issuers .c-name{width:230px}
.reason{display:block}
.desc{display:block;color:var(--muted);font-size:13px}
dl.details{margin:4px 0 0;display:grid;grid-template-columns:max-content 1fr;gap:2px 10px;
font-size:13px}
dl.details dt{color:var(--muted)}
dl.details dd{margin:0;min-width:0}
code,pre,.hash{font-family:var(--mono);font-size:12.5px}
code{background:var(--neutral-bg);border-radius:4px;padding:1px 5px;overflow-wrap:anywhere}
code.hash{word-break:break-all}
pre{background:#f6f8fa;color:#1b1f24;border:1px solid var(--line);border-radius:8px;
padding:12px 14px;margin:8px 0;white-space:pre-wrap;overflow-wrap:anywhere;line-height:1.45}
ol.steps{padding-left:22px;margin:6px 0}
ol.steps li{margin:0 0 10px}
.timeline{list-style:none;margin:4px 0 0;padding:0}
.timeline li{position:relative;padding:0 0 18px 44px;min-height:44px}
.timeline li::before{content:"";position:absolute;left:14px;top:32px;bottom:0;width:2px;
background:var(--line)}
.timeline li:last-child::before{display:none}
.timeline .dot{position:absolute;left:0;top:0;width:30px;height:30px;border-radius:50%;
border:2px solid;display:flex;align-items:center;justify-content:center;font-weight:800;
font-size:15px}
.dot.pass{background:var(--pass-bg);color:var(--pass);border-color:var(--pass-line)}
.dot.fail{background:var(--fail-bg);color:var(--fail);border-color:var(--fail-line)}
.dot.warn{background:var(--warn-bg);color:var(--warn);border-color:var(--warn-line)}
.dot.neutral{background:var(--neutral-bg);color:var(--neutral);border-color:var(--neutral-line)}
.tl-head{display:flex;flex-wrap:wrap;gap:6px 10px;align-items:center;padding-top:3px}
.tl-head strong{font-size:15px}
.stats{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:10px;
margin:4px 0 8px}
.stat{border:1px solid var(--line);border-radius:8px;padding:10px 12px}
.stat .n{display:block;font-size:22px;font-weight:750;line-height:1.2}
.stat .l{color:var(--muted);font-size:12.5px}
ul.paths{margin:4px 0 8px;padding-left:20px}
footer{color:var(--muted);font-size:12.5px;margin-top:24px;border-top:1px solid var(--line);
padding-top:12px}
@media (max-width:640px){
.page{padding:18px 12px 28px}
h1{font-size:22px}
.card{padding:14px}
.banner{padding:12px 14px;gap:12px}
.banner .icon{width:36px;height:36px;font-size:20px}
table.kv,table.kv tbody,table.kv tr,table.kv th,table.kv td{display:block;width:auto}
table.kv th{padding:8px 0 0}
table.kv td{padding:2px 0 8px;border-top:0}
table.checks thead{display:none}
table.checks,table.checks tbody{display:block}
table.checks tr{display:flex;flex-wrap:wrap;gap:4px 10px;padding:8px 0}
table.checks tr+tr{border-top:1px solid var(--line)}
table.checks td{display:block;padding:0;border:0;width:auto}
table.checks td.c-reason{flex-basis:100%}
}
@media print{
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}
@page{margin:14mm}
body{background:#fff;font-size:10.5pt}
.page{max-width:none;padding:0}
.card{box-shadow:none;break-inside:avoid;page-break-inside:avoid}
.banner,.note,.timeline li,tr{break-inside:avoid;page-break-inside:avoid}
h2{break-after:avoid}
a{color:inherit}
a.ext[href]::after{content:" (" attr(href) ")";color:var(--muted);font-size:9pt}
}
"""

_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'"
)


def _page(title: str, heading: str, subtitle: str, body: str, generated_at: Any) -> str:
    """Wrap ``body`` in the document frame (title/heading/subtitle are already escaped)."""
    footer = (
        f"<footer>Generated {_e(generated_at or _now_iso())} by ar-io-mlflow "
        f"{_e(__version__)}. MLflow holds the data; Arweave holds the signed commitment. "
        "This page loads nothing from the network.</footer>"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="referrer" content="no-referrer">'
        '<link rel="icon" href="data:,">'
        f"<title>{title}</title><style>{_CSS}</style></head>"
        f'<body><main class="page"><header><div class="brand">ar.io · MLflow provenance</div>'
        f'<h1>{heading}</h1><p class="sub">{subtitle}</p></header>'
        f"{body}{footer}</main></body></html>\n"
    )


def _banner(state: str, verdict: str, message: str) -> str:
    glyph = {"pass": "✓", "fail": "✗"}.get(state, "?")
    return (
        f'<section class="banner {state}" role="status">'
        f'<div class="icon" aria-hidden="true">{glyph}</div>'
        f'<div><p class="verdict">{_e(verdict)}</p><p>{message}</p></div></section>'
    )


# --- checks -------------------------------------------------------------------------------


def _ordered_checks(checks: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """Known checks in a fixed, meaningful order, then any others as given."""
    known = [(name, _map(checks[name])) for name in _CHECKS if name in checks]
    others = [(str(name), _map(value)) for name, value in checks.items() if name not in _CHECKS]
    return known + others


def _check_details(check: Mapping[str, Any]) -> str:
    items: list[str] = []
    for key, label in _DETAIL_KEYS:
        value = check.get(key)
        if value is None or value == "" or isinstance(value, (bytes, bytearray, dict, list)):
            continue
        items.append(f"<dt>{_e(label)}</dt><dd>{_mono(value)}</dd>")
    if check.get("legacy_envelope") is True:
        items.append("<dt>note</dt><dd>legacy envelope (no spec_version)</dd>")
    report = _http_url(check.get("report_url"))
    if report:
        items.append(f"<dt>report</dt><dd>{_link(report)}</dd>")
    return f'<dl class="details">{"".join(items)}</dl>' if items else ""


def _checks_table(checks: Mapping[str, Any]) -> str:
    """One row per check: status chip (✓/✗/?), name, reason and details."""
    rows = []
    for name, check in _ordered_checks(checks):
        label, description = _CHECKS.get(name, (name.replace("_", " ").capitalize(), ""))
        state, glyph, word = _tri(check.get("ok"))
        reason = check.get("reason")
        if reason:
            text = f'<span class="reason">{_e(reason)}</span>'
        elif check.get("ok") is True:
            text = f'<span class="reason">{_e(description or "passed")}</span>'
        elif check.get("ok") is False:
            text = '<span class="reason">failed (no reason given)</span>'
        else:
            text = '<span class="reason">not run or not applicable</span>'
        if description and reason:
            text += f'<span class="desc">checks that {_e(description)}</span>'
        rows.append(
            f'<tr><td class="c-status">{_chip(state, glyph, word)}</td>'
            f'<td class="c-name">{_e(label)}</td>'
            f'<td class="c-reason">{text}{_check_details(check)}</td></tr>'
        )
    if not rows:
        return '<p class="muted">No checks were run.</p>'
    return (
        '<table class="checks"><thead><tr><th class="c-status">Result</th>'
        '<th class="c-name">Check</th><th class="c-reason">Reason</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _derived_overall(checks: Mapping[str, Any]) -> bool | None:
    """Verdict from the checks alone, for results that carry no ``overall``."""
    oks = [_map(c).get("ok") for c in checks.values()]
    if any(ok is False for ok in oks):
        return False
    if oks and all(ok is True for ok in oks):
        return True
    return None


def _check_names(checks: Mapping[str, Any], ok: bool | None) -> str:
    """Comma-separated labels of the checks whose ``ok`` is ``ok`` (escaped)."""
    names = [
        _CHECKS.get(name, (name.replace("_", " ").capitalize(), ""))[0]
        for name, check in _ordered_checks(checks)
        if check.get("ok") is ok
    ]
    return _e(", ".join(names))


def _overall_state(overall: Any, checks: Mapping[str, Any]) -> tuple[str, str, str]:
    """(css state, verdict, message HTML) for the status banner; names the culprits."""
    if overall is True:
        return "pass", "PASSED", "Every check that applies to this record passed."
    if overall is False:
        failed = _check_names(checks, False)
        detail = f" Failed: {failed}." if failed else ""
        return "fail", "FAILED", f"Do not rely on this record.{detail}"
    missing = _check_names(checks, None)
    detail = f" Not checked: {missing}." if missing else ""
    return "warn", "INCOMPLETE", f"This record is not verified: some checks could not run.{detail}"


def _issuer_block(issuer: Mapping[str, Any], envelope: Mapping[str, Any]) -> str:
    """Who signed, and whether that key is one the reader has pinned."""
    key = issuer.get("public_key") or envelope.get("public_key")
    fingerprint = issuer.get("fingerprint") or _fingerprint(key)
    if not fingerprint:
        return _note("warn", "No issuer key is known for this record.")
    who = f"Signed by {_mono(fingerprint)}"
    if issuer.get("pinned") is True and issuer.get("ok") is not False:
        verdict = _note(
            "pass",
            f"{_chip('pass', '✓', 'pinned')} {who} — pinned: this is one of your trusted keys.",
        )
    else:
        reason = issuer.get("reason")
        state = "fail" if issuer.get("ok") is False else "warn"
        extra = f"<br>{_e(reason)}" if reason else ""
        verdict = _note(
            state,
            f"{_chip(state, '!', 'NOT pinned')} {who} — NOT pinned ({_e(_TRUST_HINT)}){extra}",
        )
    return verdict + _kv([("Fingerprint", _mono(fingerprint)), ("Public key", _mono(key))])


def _lineage(items: Sequence[Any], base: str) -> str:
    """Earlier records this one builds on, oldest first, each with its TX link."""
    entries = []
    for raw in items:
        item = _map(raw)
        tx = item.get("tx_id")
        url = item.get("url") or (_tx_url(base, tx) if tx else None)
        label = item.get("label") or _EVENT_LABELS.get(str(item.get("event_type")), "Record")
        tx_html = (
            f'<code class="hash">{_link(url, tx)}</code>'
            if tx
            else '<span class="muted">not anchored</span>'
        )
        event = item.get("event_type")
        event_html = f' <span class="muted">{_e(event)}</span>' if event else ""
        dot_state = "pass" if tx else "neutral"
        dot_glyph = "●" if tx else "○"
        entries.append(
            f'<li><div class="dot {dot_state}" aria-hidden="true">{dot_glyph}</div>'
            f'<div class="tl-head"><strong>{_e(label)}</strong>{event_html}</div>'
            f"<div>{tx_html}</div></li>"
        )
    if not entries:
        return '<p class="muted">No linked records.</p>'
    return f'<ol class="timeline">{"".join(entries)}</ol>'


# --- public API ---------------------------------------------------------------------------


def render_verification_report(result: Mapping[str, Any]) -> str:
    """HTML report for one verified record, from the verify code's result dict.

    Missing keys are tolerated: the page says what is unknown instead of failing, because
    a report is most needed exactly when verification could not complete.
    """
    res = _map(result)
    envelope = _map(res.get("envelope"))
    checks = _map(res.get("checks"))
    tx_id = res.get("tx_id")
    url = res.get("url")
    base = _gateway_base(url, tx_id)
    if tx_id and not _http_url(url):
        url = _tx_url(base, tx_id)
    kind = res.get("kind")
    kind_label = _KIND_LABELS.get(str(kind), str(kind or "Record"))
    target = res.get("target") or _subject_summary(envelope.get("subject")) or tx_id or ""
    event_type = res.get("event_type") or envelope.get("event_type")

    overall = res["overall"] if "overall" in res else _derived_overall(checks)
    state, verdict, message = _overall_state(overall, checks)
    issuer = _map(checks.get("issuer"))
    summary_rows = [
        ("Verified object", f"{_e(kind_label)} {_mono(target) if target else _dash()}"),
        ("Event type", _event_label(event_type)),
        (
            "Arweave TX",
            f'<code class="hash">{_link(url, tx_id)}</code>'
            if tx_id
            else _chip("warn", "?", "not anchored"),
        ),
        ("Gateway", _link(base) if tx_id else _dash()),
        ("Signed at", _text(envelope.get("signed_at"))),
    ]
    fingerprint = issuer.get("fingerprint") or _fingerprint(
        issuer.get("public_key") or envelope.get("public_key")
    )
    if fingerprint:
        pinned = issuer.get("pinned") is True and issuer.get("ok") is not False
        chip = _chip("pass", "✓", "pinned") if pinned else _chip("warn", "!", "NOT pinned")
        summary_rows.append(("Issuer", f"{_mono(fingerprint)} {chip}"))

    body = [
        _banner(state, verdict, message),
        _card("Summary", _kv(summary_rows)),
        _card("Checks", _checks_table(checks)),
        _card("Issuer", _issuer_block(issuer, envelope)),
    ]
    lineage = _list(res.get("lineage"))
    if lineage:
        body.append(_card("Lineage", _lineage(lineage, base)))
    if envelope:
        body.append(_card("Signed envelope", _kv(_envelope_rows(envelope, base))))
    else:
        body.append(_card("Signed envelope", _note("warn", "The envelope could not be retrieved.")))
    body.append(_card("How to verify independently", _recipe(tx_id, base, envelope or None)))

    heading = "Verification report"
    subtitle = f"{_e(kind_label)} {_e(target)}"
    title = f"{verdict} · {_e(kind_label)} {_e(target)} · ar.io verification report"
    return _page(title, heading, subtitle, "".join(body), res.get("generated_at"))


def _stage_status(stage: Mapping[str, Any]) -> tuple[str, str, str]:
    """(css state, glyph, words) of one audit stage."""
    anchored = stage.get("anchored")
    if anchored is None:
        anchored = bool(stage.get("tx_id"))
    if not anchored:
        return "neutral", "–", "Not anchored"
    ok = stage.get("ok")
    if ok is True:
        return "pass", "✓", "Verified"
    if ok is False:
        return "fail", "✗", "Failed"
    return "warn", "?", "Not fully checked"


def _integrity(section: Mapping[str, Any], artifact_hash: Any) -> str:
    state, glyph, word = _tri(section.get("ok"))
    word = {"pass": "Artifacts match", "fail": "Artifacts changed"}.get(state, "Not checked")
    parts = [
        f"<p>{_chip(state, glyph, word)} {_e(section.get('reason') or '')}</p>",
        _kv([("Anchored artifact hash", _mono(artifact_hash))]),
    ]
    for key, title in (("changed", "Changed"), ("missing", "Missing"), ("added", "Added")):
        paths = [str(p) for p in _list(section.get(key))]
        if not paths:
            continue
        shown = "".join(f"<li>{_mono(p)}</li>" for p in paths[:_MAX_LIST])
        more = (
            f'<li class="muted">… and {len(paths) - _MAX_LIST} more</li>'
            if len(paths) > _MAX_LIST
            else ""
        )
        parts.append(f'<h3>{title} files ({len(paths)})</h3><ul class="paths">{shown}{more}</ul>')
    return "".join(parts)


def _decisions(section: Mapping[str, Any]) -> str:
    streams = section.get("streams")
    stream_count = len(streams) if isinstance(streams, (list, tuple)) else streams
    stats = [
        ("Decisions", section.get("count")),
        ("Anchored", section.get("anchored")),
        ("Pending upload", section.get("pending")),
        ("Streams", stream_count),
    ]
    grid = "".join(
        f'<div class="stat"><span class="n">{_text(value)}</span>'
        f'<span class="l">{label}</span></div>'
        for label, value in stats
    )
    parts = [f'<div class="stats">{grid}</div>']
    gaps = [_map(g) for g in _list(section.get("sequence_gaps"))]
    gaps = [g for g in gaps if g]
    if gaps:
        items = []
        for gap in gaps:
            missing = [str(m) for m in _list(gap.get("missing"))]
            shown = ", ".join(_e(m) for m in missing[:_MAX_LIST])
            if len(missing) > _MAX_LIST:
                shown += f", … and {len(missing) - _MAX_LIST} more"
            items.append(
                f"<li>stream {_mono(gap.get('stream_id'))}: {len(missing)} missing "
                f"(sequence {shown})</li>"
            )
        parts.append(
            _note(
                "fail",
                f"{_chip('fail', '✗', 'Sequence gaps')} Some decisions in a stream have no "
                f'record: they were lost or deleted.<ul class="paths">{"".join(items)}</ul>',
            )
        )
    else:
        parts.append(f"<p>{_chip('pass', '✓', 'No sequence gaps')}</p>")
    pending = section.get("pending")
    if isinstance(pending, int) and pending > 0:
        parts.append(
            _note(
                "warn",
                f"{_e(pending)} decision record(s) are signed and journaled but not "
                "uploaded yet; run <code>ar-io-mlflow sync</code>.",
            )
        )
    parts.append(_batched(_map(section.get("batched"))))
    return "".join(parts)


def _batched(batched: Mapping[str, Any]) -> str:
    """Streams of batched decisions: windows, counts and every completeness finding."""
    rows = []
    for stream in (_map(s) for s in _list(batched.get("streams"))):
        problems = [_map(p) for p in _list(stream.get("problems"))]
        state = _chip("fail", "✗", "Incomplete") if problems else _chip("pass", "✓", "Complete")
        found = "".join(
            f"<li>{_mono(p.get('reason'))}: {_e(p.get('detail'))}</li>" for p in problems
        )
        rows.append(
            f"<tr><td>{_mono(stream.get('stream_id'))}</td><td>{_text(stream.get('windows'))}"
            f"</td><td>{_text(stream.get('decisions'))}</td><td>{_text(stream.get('verified'))}"
            f"</td><td>{state}{f'<ul class=paths>{found}</ul>' if found else ''}</td></tr>"
        )
    if not rows:
        return ""
    return (
        "<h3>Batched decisions</h3><table><thead><tr><th>Stream</th><th>Windows</th>"
        "<th>Decisions</th><th>Verified</th><th>Completeness</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _issuers_table(issuers: Sequence[Any] | None) -> str:
    if issuers is None:
        return '<p class="muted">This bundle does not list issuer keys.</p>'
    rows = []
    any_unpinned = False
    for raw in issuers:
        item = _map(raw)
        pinned = item.get("pinned") is True
        any_unpinned = any_unpinned or not pinned
        chip = _chip("pass", "✓", "pinned") if pinned else _chip("warn", "!", "NOT pinned")
        fingerprint = item.get("fingerprint") or _fingerprint(item.get("public_key"))
        rows.append(
            f'<tr><td class="c-status">{chip}</td><td class="c-name">{_mono(fingerprint)}</td>'
            f'<td class="c-reason">{_mono(item.get("public_key"))}</td></tr>'
        )
    if not rows:
        return '<p class="muted">No signed records, so no issuers.</p>'
    note = _note("warn", f"An issuer is NOT pinned ({_e(_TRUST_HINT)}).") if any_unpinned else ""
    return (
        f'{note}<table class="checks issuers"><thead><tr><th class="c-status">Trust</th>'
        '<th class="c-name">Fingerprint</th><th class="c-reason">Public key</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _audit_verdict(
    data: Mapping[str, Any], stages: Sequence[Mapping[str, Any]]
) -> tuple[str, str, str]:
    """(css state, verdict, message) of an audit, naming what went wrong."""
    overall = data.get("overall_ok")
    if overall is True:
        return "pass", "PASSED", "Every anchored stage of this model version verified."
    if overall is not False:
        return "warn", "INCOMPLETE", "The audit did not reach a verdict."
    if not any(_stage_status(s)[0] != "neutral" for s in stages):
        return "fail", "FAILED", "Nothing is anchored for this model version, so nothing verifies."
    issues = []
    for stage in stages:
        if _stage_status(stage)[0] == "fail":
            name = str(stage.get("stage") or "")
            label = _STAGE_LABELS.get(name, name.capitalize() or "a stage")
            detail = f" ({stage.get('label')})" if stage.get("label") else ""
            issues.append(f"{label}{detail} failed")
    if _map(data.get("artifact_integrity")).get("ok") is False:
        issues.append("model artifacts changed since training")
    gaps = _list(_map(data.get("decisions")).get("sequence_gaps"))
    if gaps:
        issues.append(f"{len(gaps)} decision stream(s) have sequence gaps")
    listed = "; ".join(issues) if issues else "see the sections below"
    return "fail", "FAILED", f"Issues found: {_e(listed)}."


_OBSERVED_LABELS = {
    "client": "by ArioMlflowClient",
    "webhook": "by MLflow's webhook (user not in MLflow's payload)",
    "reconcile": "found by reconciliation (exact time unknown)",
}


def observed_label(observed_by: Any) -> str:
    """Who saw an alias move, in words (records before ``observed_by`` are a client's)."""
    return _OBSERVED_LABELS.get(str(observed_by), "by the client (0.3.0 record)")


def alias_target(version: Any) -> str:
    """What an alias names, in words: ``v3``, or no alias."""
    return "no alias" if version is None else f"v{version}"


def period_targets(period: Mapping[str, Any]) -> str:
    """What an alias may have named in a period no record covers: ``v1 or v2``."""
    versions = _list(period.get("candidates")) or [period.get("version")]
    return " or ".join(alias_target(v) for v in versions)


def _alias_timeline(history: Mapping[str, Any], base: str) -> str:
    """The periods of one alias's history as a table; gaps are rows of their own."""
    rows = []
    for period in (_map(p) for p in _list(history.get("periods"))):
        span = f"{_text(period.get('from') or 'unknown')} → {_text(period.get('to') or 'now')}"
        if period.get("kind") == "recorded":
            tx = period.get("tx_id")
            observed = observed_label(period.get("observed_by"))
            who = period.get("changed_by") or "unknown"
            status = _chip("pass", "✓", "Verified")
            what = (
                f"{_e(alias_target(period.get('version')))}"
                f'<div class="muted">{_e(observed)}; moved by {_e(who)}</div>'
                f'<div><code class="hash">{_link(_tx_url(base, tx), tx)}</code></div>'
            )
        else:
            maybe = period_targets(period)
            status = _chip("warn", "?", "Gap: no record")
            what = f'{_e(maybe)}<div class="muted">{_e(period.get("note"))}</div>'
        rows.append(f"<tr><td>{span}</td><td>{what}</td><td>{status}</td></tr>")
    problems = "".join(
        _note("fail", f"✗ {_e(problem)}") for problem in _list(history.get("problems"))
    )
    table = (
        '<table class="checks"><thead><tr><th scope="col">When</th><th scope="col">Pointed at'
        f'</th><th scope="col">Evidence</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
        if rows
        else '<p class="muted">No record of this alias.</p>'
    )
    return problems + table


def render_alias_history(history: Mapping[str, Any]) -> str:
    """HTML rendering of an ``ario.mlflow.alias-history/v1`` result."""
    data = _map(history)
    base = DEFAULT_GATEWAY_URL
    ref = f"{data.get('model')}@{data.get('alias')}"
    ok = data.get("ok") is True
    gaps = int(data.get("gaps") or 0)
    message = (
        f"{gaps} gap(s) where no record covers a change." if gaps else "Every change is recorded."
    )
    state, verdict = ("pass", "VERIFIED") if ok else ("fail", "FAILED")
    if ok and gaps:
        state, verdict = "warn", "VERIFIED, WITH GAPS"
    body = [
        _banner(state, verdict, _e(message)),
        _card(
            "Alias",
            _kv(
                [
                    ("Alias", _mono(ref)),
                    ("Registry says now", _text(alias_target(data.get("current_version")))),
                    ("Schema", _mono(data.get("schema"))),
                ]
            ),
        ),
        _card("Timeline", _alias_timeline(data, base)),
        _card("Issuers", _issuers_table(_list(data.get("issuers")))),
    ]
    if "at" in data:
        answer = (
            alias_target(data.get("version"))
            if data.get("at_status") in ("version", "absent")
            else f"{data.get('at_status')}: "
            + " or ".join(alias_target(v) for v in _list(data.get("candidates")))
        )
        body.insert(1, _card("Question", _kv([(f"At {_e(data.get('at'))}", _e(answer))])))
    title = f"{verdict} · history of {_e(ref)} · ar.io"
    return _page(title, "Alias history", _e(ref), "".join(body), data.get("generated_at"))


def render_audit_report(audit: Mapping[str, Any]) -> str:
    """HTML rendering of an ``ario.mlflow.audit/v1`` bundle (a model version's lineage).

    Optional extras: ``stages[i]["url"]`` or a top-level ``gateway`` base URL make the TX
    links point at the gateway actually used; otherwise the default public gateway.
    """
    data = _map(audit)
    gateway = _http_url(data.get("gateway"))
    base = gateway.rstrip("/") if gateway else DEFAULT_GATEWAY_URL
    model, version = data.get("model"), data.get("version")
    stages = [_map(s) for s in _list(data.get("stages"))]
    stages = sorted(
        (s for s in stages if s), key=lambda s: _STAGE_ORDER.get(str(s.get("stage")), 4)
    )
    state, verdict, message = _audit_verdict(data, stages)

    summary = _kv(
        [
            ("Model", f'{_text(model)} <span class="muted">version</span> {_text(version)}'),
            ("Current stage", _text(data.get("current_stage"))),
            ("Source run", _mono(data.get("run_id"))),
            ("Tracking URI", _mono(data.get("tracking_uri"))),
            ("Artifact hash", _mono(data.get("artifact_hash"))),
            ("Bundle schema", _mono(data.get("schema"))),
        ]
    )

    timeline = []
    for stage in stages:
        st, glyph, words = _stage_status(stage)
        name = str(stage.get("stage") or "")
        label = _STAGE_LABELS.get(name, name.capitalize() or "Stage")
        detail = stage.get("label")
        tx = stage.get("tx_id")
        url = (
            stage.get("url") if _http_url(stage.get("url")) else (_tx_url(base, tx) if tx else None)
        )
        tx_html = (
            f'<div><span class="muted">TX</span> <code class="hash">{_link(url, tx)}</code></div>'
            if tx
            else ""
        )
        detail_html = f'<span class="muted">{_e(detail)}</span>' if detail else ""
        timeline.append(
            f'<li><div class="dot {st}" aria-hidden="true">{glyph}</div>'
            f'<div class="tl-head"><strong>{_e(label)}</strong>{detail_html}'
            f"{_chip(st, glyph, words)}</div>{tx_html}</li>"
        )
    timeline_html = (
        f'<ol class="timeline">{"".join(timeline)}</ol>'
        if timeline
        else '<p class="muted">No stages recorded.</p>'
    )

    stage_cards = []
    for stage in stages:
        checks = stage.get("checks")
        if not isinstance(checks, Mapping):
            continue
        name = str(stage.get("stage") or "")
        label = _STAGE_LABELS.get(name, name.capitalize() or "Stage")
        detail = stage.get("label")
        title = f"{_e(label)} checks" + (
            f' <span class="muted">{_e(detail)}</span>' if detail else ""
        )
        stage_cards.append(_card(title, _checks_table(checks)))

    body = [
        _banner(state, verdict, message),
        _card("Model version", summary),
        _card("Lineage", timeline_html),
        *stage_cards,
    ]
    integrity = data.get("artifact_integrity")
    if isinstance(integrity, Mapping):
        body.append(_card("Artifact integrity", _integrity(integrity, data.get("artifact_hash"))))
    decisions = data.get("decisions")
    if isinstance(decisions, Mapping):
        body.append(_card("Decisions", _decisions(decisions)))
    for alias, history in _map(data.get("alias_history")).items():
        body.append(
            _card(
                f'Alias history <span class="muted">@{_e(alias)}</span>',
                _alias_timeline(_map(history), base),
            )
        )
    issuers = data.get("issuers")
    body.append(_card("Issuers", _issuers_table(None if issuers is None else _list(issuers))))
    name_version = f"{model}/{version}" if model is not None else "NAME/VERSION"
    body.append(
        _card(
            "How to verify independently",
            _recipe(None, base, None)
            + f"<p>Re-run this audit: <code>{_e(f'ar-io-mlflow audit {name_version}')}</code></p>",
        )
    )
    heading = "Model audit"
    subtitle = f"{_e(model)} version {_e(version)}"
    title = f"{verdict} · audit of {_e(model)} v{_e(version)} · ar.io"
    return _page(title, heading, subtitle, "".join(body), data.get("generated_at"))


def _default_cli(subject: Mapping[str, Any], tx_id: Any) -> str:
    """The verify command that matches the record's subject."""
    kind = subject.get("type")
    if kind == "mlflow_run" and subject.get("run_id"):
        return f"ar-io-mlflow verify run {subject['run_id']}"
    if kind == "mlflow_model_version" and subject.get("name"):
        return f"ar-io-mlflow verify model {subject['name']}/{subject.get('version')}"
    if kind == "mlflow_prediction" and subject.get("trace_id"):
        return f"ar-io-mlflow verify trace {subject['trace_id']}"
    if kind == "mlflow_prediction" and subject.get("decision_id"):
        return f"ar-io-mlflow verify decision {subject['decision_id']}"
    if tx_id:
        return f"ar-io-mlflow verify tx {tx_id}"
    return "ar-io-mlflow verify run <run_id>"


def _receipt_rows(receipt: Mapping[str, Any]) -> list[tuple[str, str]]:
    rows = []
    stamp = receipt.get("timestamp")
    if stamp is not None:
        when = ""
        if isinstance(stamp, (int, float)) and not isinstance(stamp, bool):
            try:
                moment = datetime.fromtimestamp(stamp / 1000, tz=timezone.utc)
                when = f' <span class="muted">{_e(moment.strftime("%Y-%m-%d %H:%M:%S UTC"))}</span>'
            except (OverflowError, OSError, ValueError):
                when = ""
        rows.append(("Turbo timestamp", f"{_e(stamp)} ms{when}"))
    if receipt.get("owner"):
        rows.append(("Turbo owner", _mono(receipt.get("owner"))))
    if receipt.get("signature"):
        rows.append(("Turbo signature", _mono(receipt.get("signature"))))
    return rows


def _wallet_note(wallet_mode: str | None, wallet_type: str | None) -> str:
    """Banner about the funding wallet when it was not chosen by the user."""
    kind = f"{wallet_type.capitalize()} " if wallet_type else ""
    if wallet_mode == "persistent":
        return _note(
            "warn",
            "<strong>Auto-generated funding wallet.</strong> The upload was paid by the "
            f"plugin's own {_e(kind)}wallet in <code>$ARIO_MLFLOW_HOME/wallet.json</code> "
            "(default <code>~/.ario-mlflow</code>). Set <code>ARIO_MLFLOW_ARWEAVE_WALLET</code> "
            "to use your organisation's wallet. The record's identity is the Ed25519 signing "
            "key below, not this wallet.",
        )
    if wallet_mode == "ephemeral":
        return _note(
            "fail",
            "<strong>Temporary funding wallet.</strong> The upload was paid by an in-memory "
            f"{_e(kind)}wallet that changes on every restart, because no wallet file could be "
            "read or written. Set <code>ARIO_MLFLOW_ARWEAVE_WALLET</code> to a wallet file.",
        )
    return ""


def _attestation_card(ver: Mapping[str, Any]) -> str:
    """The ar.io Verify result (level, attester, time, report link)."""
    level = ver.get("attestation_level")
    attested_at = ver.get("attested_at")
    if isinstance(attested_at, str) and len(attested_at) >= 19:
        attested_at = attested_at[:19] + "Z"
    level_html = _chip("pass", "✓", f"Level {level}") if level else _chip("warn", "?", "no level")
    report = ver.get("report_url")
    rows = [
        ("Attestation level", level_html),
        ("Attested by", _text(ver.get("attested_by"))),
        ("Attested at", _text(attested_at)),
        ("Report", _link(report) if report else _dash()),
    ]
    return _card("ar.io Verify", _kv(rows))


def _configured_verify_url() -> str | None:
    """``ARIO_MLFLOW_ARIO_VERIFY_URL`` as the settings read it (a report is a rendering:
    an unusable setting only leaves the link out)."""
    from ario_mlflow.config import load_settings
    from ario_mlflow.errors import ConfigError

    try:
        return load_settings().verify_url
    except ConfigError:
        return None


def _cli_nudge(command: str, tx_id: Any, verify_base_url: str | None) -> str:
    """Tell the reader how to check an anchored, not yet attested record."""
    verify_base = _http_url(verify_base_url or _configured_verify_url())
    link = ""
    if verify_base:
        target = f"{verify_base.rstrip('/')}/{quote(str(tx_id), safe='')}"
        link = f"<p>Or open it in ar.io Verify: {_link(target)}</p>"
    return _note(
        "info",
        "<strong>Not attested yet.</strong> Check this record against MLflow and Arweave "
        f"yourself:<pre>{_e(command)}</pre>{link}",
    )


def _record_card(
    env: Mapping[str, Any],
    event_type: Any,
    status: str,
    artifact_hash: str | None,
    artifact_verified: bool | None,
) -> str:
    subject = _map(env.get("subject"))
    legacy = _map(env.get("record"))
    if subject:
        who = _subject_rows(subject)
    else:
        who = [("Run ID", _mono(legacy.get("run_id") or legacy.get("source_run_id")))]
    rows = [
        ("Status", status),
        ("Event type", _event_label(event_type)),
        *who,
        ("Signed at", _text(env.get("signed_at") or legacy.get("timestamp"))),
    ]
    if artifact_hash:
        if artifact_verified is True:
            rows.append(("Artifact integrity", _chip("pass", "✓", "Verified")))
        elif artifact_verified is False:
            rows.append(("Artifact integrity", _chip("fail", "✗", "MISMATCH")))
        rows.append(("Artifact hash", _mono(artifact_hash)))
    return _card("Record", _kv(rows))


#: Keys the 0.3.0 page read from ``proof`` that are not part of the signed envelope.
_PROOF_EXTRAS = ("record", "turbo_receipt", "arweave_tx_id", "arweave_url")


def generate_verification_html(  # noqa: PLR0917 - positional signature kept from 0.3.0
    proof: Mapping[str, Any] | None,
    anchor_result: Mapping[str, Any] | None,
    artifact_hash: str | None = None,
    artifact_verified: bool | None = None,
    verification: Mapping[str, Any] | None = None,
    cli_verify_cmd: str | None = None,
    verify_base_url: str | None = None,
    wallet_mode: str | None = None,
    wallet_type: str | None = None,
) -> str:
    """The ``ario/verification.html`` page written next to a training or registration record.

    Same signature and meaning as ar-io-mlflow 0.3.0, but it reads the current nine-key
    envelope (the reference still read an obsolete shape) and its recipe describes the
    real scheme. The only external verify link comes from ``verify_base_url`` or
    ``ARIO_MLFLOW_ARIO_VERIFY_URL``.
    """
    env = _map(proof)
    anchor = _map(anchor_result)
    legacy = _map(env.get("record"))
    event_type = env.get("event_type") or legacy.get("event_type") or "unknown"
    signed_at = env.get("signed_at") or legacy.get("timestamp")
    tx_id = anchor.get("tx_id") or env.get("arweave_tx_id") or env.get("_tx_id")
    url = anchor.get("url") or env.get("arweave_url")
    base = _gateway_base(url, tx_id)
    if tx_id and not _http_url(url):
        url = _tx_url(base, tx_id)
    ver = _map(verification)
    level = ver.get("attestation_level")
    if level:
        status = _chip("pass", "✓", f"Verified (Level {level})")
    elif tx_id:
        status = _chip("pass", "✓", "Anchored")
    else:
        status = _chip("warn", "!", "Signed (local)")

    body = [
        _wallet_note(wallet_mode, wallet_type),
        _record_card(env, event_type, status, artifact_hash, artifact_verified),
    ]
    if tx_id:
        rows = [
            ("Arweave TX", f'<code class="hash">{_link(url, tx_id)}</code>'),
            ("Gateway URL", _link(url)),
        ]
        receipt = _map(env.get("turbo_receipt")) or _map(anchor.get("receipt"))
        body.append(_card("Arweave", _kv(rows + _receipt_rows(receipt))))
    if ver:
        body.append(_attestation_card(ver))
    elif tx_id:
        command = cli_verify_cmd or _default_cli(_map(env.get("subject")), tx_id)
        body.append(_cli_nudge(command, tx_id, verify_base_url))
    if env:
        signed = {k: v for k, v in env.items() if k not in _PROOF_EXTRAS}
        body.append(_card("Signed envelope", _kv(_envelope_rows(signed, base))))
    body.append(_card("How to verify independently", _recipe(tx_id, base, env)))

    title = "ar.io Verification Report"
    subtitle = f"{_e(event_type)} — {_e(signed_at or '')}"
    return _page(title, title, subtitle, "".join(body), None)
