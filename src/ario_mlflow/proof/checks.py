"""The pure checks of one record: is it signed, of the expected event type, about the
expected subject, by a pinned issuer. ``verify`` reports them one by one; the gates
(serving, registration, audit) ask :func:`record_problem` for the first that fails.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ario_mlflow.proof.envelope import verify_envelope


def subject_mismatch(envelope: Any, expected: Mapping[str, Any]) -> dict[str, Any] | None:
    """``{key: actual value}`` for every key of ``expected`` the record's subject gets
    wrong (values compared as text), or ``None`` when the subject matches."""
    subject = envelope.get("subject") if isinstance(envelope, dict) else None
    if not isinstance(subject, dict):
        return dict.fromkeys(expected)
    wrong = {k: subject.get(k) for k, v in expected.items() if str(subject.get(k)) != str(v)}
    return wrong or None


def describe_mismatch(wrong: Mapping[str, Any], expected: Mapping[str, Any]) -> str:
    """``record is about k='a' not k='b'``: one line naming what the subject says."""
    said = ", ".join(f"{k}={v!r}" for k, v in wrong.items())
    wanted = ", ".join(f"{k}={expected[k]!r}" for k in wrong)
    return f"record is about {said} not {wanted}"


def issuer_pinned(public_key: Any, trusted_keys: Sequence[str]) -> bool:
    """Is ``public_key`` one of ``trusted_keys``? (Hex keys compare case-insensitively.)"""
    if not isinstance(public_key, str):
        return False
    return public_key.lower() in {k.lower() for k in trusted_keys}


def record_problem(
    envelope: Any,
    *,
    event_type: str,
    subject: Mapping[str, Any],
    trusted_keys: Sequence[str],
) -> str | None:
    """Why ``envelope`` is not a valid ``event_type`` record about ``subject`` signed by a
    pinned key (any key when none is pinned), or ``None`` when it is."""
    if not isinstance(envelope, dict):
        return "record is not a JSON object"
    result = verify_envelope(envelope, allow_legacy=True)
    if not result.ok:
        return f"record does not verify: {result.reason}"
    if envelope.get("event_type") != event_type:
        return f"record is a {envelope.get('event_type')!r} event, not {event_type}"
    wrong = subject_mismatch(envelope, subject)
    if wrong is not None:
        return describe_mismatch(wrong, subject)
    if trusted_keys and not issuer_pinned(envelope.get("public_key"), trusted_keys):
        return (
            f"record is signed by {envelope.get('public_key')}, which is not a trusted key "
            "(ARIO_MLFLOW_TRUSTED_KEYS)"
        )
    return None
