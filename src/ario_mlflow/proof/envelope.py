"""Signed envelopes of the ``ario.*`` family: which bytes are signed, signing, verifying.

An envelope commits to a payload by its SHA-256 (``payload_hash``) and is signed with
Ed25519 over the JCS bytes of its *signed scope*: the envelope without ``signature`` and
``co_signatures`` and, for ``ario.mlflow/v1`` and legacy envelopes only, without top-level
keys starting with ``_`` (unsigned annotations such as ``_tx_id``).
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from nacl.signing import SigningKey

from ario_mlflow.errors import (
    CanonicalizationError,
    EnvelopeParseError,
    LoneSurrogateError,
    NonFiniteNumberError,
)
from ario_mlflow.proof.canonical import canonical_json
from ario_mlflow.proof.ed25519 import PreparedKey, public_key_hex, sign, verify_signature
from ario_mlflow.proof.hashing import sha256_hex
from ario_mlflow.proof.spec import (
    SPEC_VERSION,
    spec_major,
    spec_version_supported,
    strips_underscore_keys,
)

#: The nine keys of an ``ario.mlflow/v1`` envelope, in the order they are built.
MLFLOW_ENVELOPE_KEYS = (
    "event_id",
    "event_type",
    "subject",
    "payload_hash",
    "previous_hash",
    "signed_at",
    "spec_version",
    "public_key",
    "signature",
)
_UNSIGNED_KEYS = frozenset({"signature", "co_signatures"})


_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


class _RandomBlocks:
    """OS randomness read 4 KiB at a time and handed out 16 bytes at a time, never twice.

    One ``getrandom`` per 256 UUIDs instead of one each (a system call costs ~10 µs with
    the cold caches of the predict hot path). A forked child drops the block it inherited,
    else parent and child would hand out the same bytes; the lock keeps two threads from
    taking the same slice.
    """

    SIZE = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._block = b""
        self._position = 0
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._block, self._position = b"", 0

    def take16(self) -> bytes:
        with self._lock:
            start = self._position
            if start + 16 > len(self._block):
                self._block, start = os.urandom(self.SIZE), 0
            self._position = start + 16
            return self._block[start : start + 16]


_random = _RandomBlocks()


def random_uuid() -> str:
    """A random (version 4) UUID string, spelled as ``str(uuid.uuid4())`` spells it."""
    value = (int.from_bytes(_random.take16(), "big") & _UUID4_CLEAR) | _UUID4_SET
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


#: ``[(second, "YYYY-MM-DDTHH:MM:SS")]`` of the last call: that part changes once a second.
_last_second: list[tuple[int, str]] = [(-1, "")]


def utc_now_iso() -> str:
    """Wall-clock time as the reference writes it (``datetime.now(timezone.utc)
    .isoformat()``): ``…+00:00``, microseconds if non-zero.

    The date and time of day are formatted once per second; the hot path signs every
    decision and a ``datetime`` per call costs ~20 µs with cold caches.
    """
    return _iso_utc(time.time_ns() // 1000)


def _iso_utc(micros: int) -> str:
    second, fraction = divmod(micros, 1_000_000)
    cached_second, text = _last_second[0]
    if second != cached_second:
        text = datetime.fromtimestamp(second, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        _last_second[0] = (second, text)
    return f"{text}.{fraction:06d}+00:00" if fraction else f"{text}+00:00"


def envelope_for_signature(envelope: dict[str, Any]) -> dict[str, Any]:
    """The signed scope of ``envelope`` (a new dict; the input is not modified)."""
    strip_underscore = strips_underscore_keys(envelope.get("spec_version"))
    return {
        key: value
        for key, value in envelope.items()
        # A non-string key is kept (not stripped): canonicalizing the scope then fails
        # with a typed error instead of an AttributeError escaping a verifier.
        if key not in _UNSIGNED_KEYS
        and not (strip_underscore and isinstance(key, str) and key.startswith("_"))
    }


def signing_message(envelope: dict[str, Any]) -> bytes:
    """The exact bytes the Ed25519 signature covers."""
    return canonical_json(envelope_for_signature(envelope))


def sign_envelope(envelope: dict[str, Any], key: SigningKey) -> dict[str, Any]:
    """Return ``envelope`` plus ``public_key`` and ``signature`` (input not mutated).

    An inline ``payload`` is re-hashed into ``payload_hash``; without one, ``payload_hash``
    must already be present. A ``public_key`` already present must be the signer's.
    """
    if "signature" in envelope:
        raise ValueError("envelope is already signed")
    signed = dict(envelope)
    if "payload" in signed:
        computed = sha256_hex(canonical_json(signed["payload"]))
        if signed.setdefault("payload_hash", computed) != computed:
            raise ValueError("payload_hash does not match the inline payload")
    elif not isinstance(signed.get("payload_hash"), str):
        raise ValueError("envelope needs a payload_hash (or an inline payload)")
    key_hex = public_key_hex(key)
    if signed.setdefault("public_key", key_hex) != key_hex:
        raise ValueError("envelope public_key is not the signing key's")
    signed["signature"] = sign(signing_message(signed), key)
    return signed


def build_mlflow_envelope(
    *,
    event_type: str,
    subject: dict[str, Any],
    payload_bytes: bytes,
    previous_hash: str,
    key: SigningKey | PreparedKey,
    event_id: str | None = None,
    signed_at: str | None = None,
) -> dict[str, Any]:
    """Build and sign an ``ario.mlflow/v1`` envelope committing to ``payload_bytes``."""
    envelope = {
        "event_id": event_id or random_uuid(),
        "event_type": event_type,
        "subject": subject,
        "payload_hash": sha256_hex(payload_bytes),
        "previous_hash": previous_hash,
        "signed_at": signed_at or utc_now_iso(),
        "spec_version": SPEC_VERSION,
        "public_key": public_key_hex(key),
    }
    # A value with no canonical form raises its typed error here.
    envelope["signature"] = sign(signing_message(envelope), key)
    return envelope


def build_mlflow_envelope_json(
    *,
    event_type: str,
    subject: dict[str, Any],
    payload_bytes: bytes,
    previous_hash: str,
    key: SigningKey | PreparedKey,
    event_id: str | None = None,
    signed_at: str | None = None,
) -> tuple[dict[str, Any], bytes]:
    """:func:`build_mlflow_envelope`, plus the envelope's canonical JSON bytes."""
    envelope = build_mlflow_envelope(
        event_type=event_type,
        subject=subject,
        payload_bytes=payload_bytes,
        previous_hash=previous_hash,
        key=key,
        event_id=event_id,
        signed_at=signed_at,
    )
    return envelope, canonical_json(envelope)


@dataclass
class VerificationResult:
    """Outcome of :func:`verify_envelope`; ``reason`` is the first failure's code."""

    ok: bool
    spec_version_ok: bool
    payload_hash_ok: bool | None
    signature_ok: bool
    legacy_envelope: bool
    content_hash_ok: bool | None = None
    content_role: str | None = None
    reason: str | None = None
    errors: list[str] = field(default_factory=list)


def _fail(result: VerificationResult, reason: str, message: str) -> None:
    result.errors.append(message)
    if result.reason is None:
        result.reason = reason


def verify_envelope(
    envelope: Any,
    *,
    payload_bytes: bytes | None = None,
    allow_legacy: bool = False,
) -> VerificationResult:
    """Check spec version, payload binding and signature of ``envelope``. Never raises.

    ``ok`` is true only when the spec version is accepted (or legacy and allowed), the
    signature verifies with the embedded key, a ``payload_hash`` string is present, and
    no supplied payload (inline or ``payload_bytes``) contradicts it.
    """
    if not isinstance(envelope, dict):
        result = VerificationResult(False, False, False, False, False)
        _fail(result, "envelope_not_a_json_object", "envelope is not a JSON object")
        return result

    legacy = envelope.get("spec_version") is None
    result = VerificationResult(False, False, None, False, legacy)
    if legacy:
        result.spec_version_ok = allow_legacy
        if not allow_legacy:
            _fail(result, "legacy_envelope_not_allowed", "envelope has no spec_version")
    elif spec_version_supported(envelope["spec_version"]):
        result.spec_version_ok = True
    else:
        _fail(
            result,
            "unsupported_spec_version",
            f"spec_version {envelope['spec_version']!r} is not an accepted profile",
        )

    stored = envelope.get("payload_hash")
    if not isinstance(stored, str):
        result.payload_hash_ok = False
        _fail(result, "missing_payload_hash", "envelope has no payload_hash string")
    else:
        candidates: list[bytes] = []
        try:
            if "payload" in envelope:
                candidates.append(canonical_json(envelope["payload"]))
        except CanonicalizationError as exc:
            result.payload_hash_ok = False
            _fail(result, "payload_not_canonicalizable", f"inline payload: {exc}")
        if payload_bytes is not None:
            candidates.append(payload_bytes)
        if candidates and result.payload_hash_ok is None:
            result.payload_hash_ok = all(sha256_hex(data) == stored for data in candidates)
            if not result.payload_hash_ok:
                _fail(result, "payload_hash_mismatch", "payload bytes do not hash to payload_hash")

    try:
        message = signing_message(envelope)
    except CanonicalizationError as exc:
        _fail(result, _canonical_reason(exc), f"envelope cannot be canonicalized: {exc}")
    else:
        result.signature_ok = verify_signature(
            message, envelope.get("signature"), envelope.get("public_key")
        )
        if not result.signature_ok:
            _fail(result, "signature_invalid", "Ed25519 signature does not verify")

    result.ok = (
        result.spec_version_ok and result.signature_ok and result.payload_hash_ok is not False
    )
    return result


def _canonical_reason(exc: CanonicalizationError) -> str:
    if isinstance(exc, LoneSurrogateError):
        return "lone_surrogate"
    if isinstance(exc, NonFiniteNumberError):
        return "non_finite_number"
    return "not_canonicalizable"


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise EnvelopeParseError(f"duplicate key {key!r}", reason="duplicate_key")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise EnvelopeParseError(f"{name} is not valid JSON", reason="invalid_json")


def parse_json_object(data: bytes) -> dict[str, Any]:
    """Parse bytes that must hold exactly one JSON object, strictly.

    Rejects invalid UTF-8, NaN/Infinity literals, duplicate keys (which would let two
    readers see different envelopes), unpaired surrogate escapes, and non-objects.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EnvelopeParseError(f"not UTF-8: {exc}", reason="invalid_json") from None
    try:
        value = json.loads(
            text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
    except json.JSONDecodeError as exc:
        raise EnvelopeParseError(f"not JSON: {exc}", reason="invalid_json") from None
    except RecursionError:
        raise EnvelopeParseError("JSON nests too deeply", reason="invalid_json") from None
    if not isinstance(value, dict):
        raise EnvelopeParseError("not a JSON object", reason="envelope_not_a_json_object")
    try:
        canonical_json(value)
    except CanonicalizationError as exc:
        raise EnvelopeParseError(str(exc), reason=_canonical_reason(exc)) from None
    return value


def verify_envelope_bytes(
    data: bytes, *, payload_bytes: bytes | None = None, allow_legacy: bool = False
) -> VerificationResult:
    """Parse ``data`` strictly, then :func:`verify_envelope`. Never raises.

    Bytes that do not parse fail with the parse reason (``lone_surrogate``,
    ``duplicate_key``, ``invalid_json``, ``envelope_not_a_json_object``).
    """
    try:
        envelope = parse_json_object(data)
    except EnvelopeParseError as exc:
        result = VerificationResult(False, False, False, False, False)
        _fail(result, exc.reason, str(exc))
        return result
    return verify_envelope(envelope, payload_bytes=payload_bytes, allow_legacy=allow_legacy)


def is_mlflow_profile(envelope: dict[str, Any]) -> bool:
    """True for envelopes of the profile this package mints (any ``ario.mlflow/v1.x``)."""
    return spec_major(envelope.get("spec_version")) == SPEC_VERSION
