"""Client for the ar.io Verify API: a gateway sidecar that re-checks a transaction.

``ArioVerifyClient`` keeps the reference (ar-io-mlflow 0.3.0) API and results, and adds
what the reference left out: it verifies the operator's signed attestation (RSA-PSS over
canonical JSON, see :mod:`ario_mlflow.proof.rsa_pss`) and compares the attested data hash
with the hash of the envelope bytes we anchored. Server misbehaviour never raises: calls
return ``None`` and leave a short reason in ``last_error``.

Requests go through a :class:`~ario_mlflow.arweave.transport.Transport`: each exchange
has a wall-clock deadline (the health or submit timeout) and a cap on the answer's size
(:data:`MAX_ANSWER_BYTES`); 429/5xx answers are retried with backoff.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import re
import time
from typing import TYPE_CHECKING, Any

from ario_mlflow.arweave.http import (
    SessionTransport,
    describe_failure,
    reason_phrase,
    send_with_retries,
    split_userinfo,
)
from ario_mlflow.arweave.transport import Request, Response, Transport, default_transport
from ario_mlflow.config import load_settings
from ario_mlflow.errors import ArioError, TransportError
from ario_mlflow.proof.canonical import canonical_json
from ario_mlflow.proof.hashing import is_sha256_hex, sha256_hex
from ario_mlflow.proof.rsa_pss import derive_operator_address, verify_rsa_pss_sha256

if TYPE_CHECKING:
    import requests

logger = logging.getLogger(__name__)

#: Largest answer read from the Verify API (a verification result is a few KiB).
MAX_ANSWER_BYTES = 256 * 1024

_NOT_ENABLED = "ar.io Verify client not enabled"
_NETWORK = "submit_verification network/HTTP error: "
_PARSE = "submit_verification response parse error: "
_USERINFO = re.compile(r"(?<=//)[^/@\s]+@")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_B64URL_DIGEST = re.compile(r"[A-Za-z0-9_-]{43}=?")


def _redact(text: str) -> str:
    """Drop ``user:password@`` from any URL in ``text`` before it is logged or stored."""
    return _USERINFO.sub("***@", text)


def _describe(exc: BaseException) -> str:
    return _redact(f"{type(exc).__name__}: {exc}")


def _as_object(body: dict[str, Any], key: str) -> dict[str, Any]:
    """A sub-object of the response; ``null`` or absent is empty, another type is bad."""
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{key!r} is a {type(value).__name__}, not an object")
    return value


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _level(value: Any) -> int | None:
    return value if type(value) is int else None


def _digest(value: Any) -> bytes | None:
    """The 32 bytes of a SHA-256 digest given as hex or as base64url; None if neither."""
    if not isinstance(value, str):
        return None
    if _HEX64.fullmatch(value):
        return bytes.fromhex(value)
    if _B64URL_DIGEST.fullmatch(value):
        return base64.urlsafe_b64decode(value.rstrip("=") + "=")
    return None


def verify_operator_attestation(attestation: Any, *, tx_id: str, level: int | None) -> bool | None:
    """Check an operator attestation in the project's signed form.

    Returns ``None`` when there is no signed attestation (absent, ``null`` or without a
    ``signature``), otherwise True only if the RSA-PSS signature verifies over
    ``canonical_json(payload)`` with ``operatorPublicKey``, ``payloadHash`` (when given)
    is the SHA-256 of those bytes, both operator fields name the key's address, and the
    payload speaks of ``tx_id`` at the reported ``level``.
    """
    if not isinstance(attestation, dict) or attestation.get("signature") is None:
        return None
    payload = attestation.get("payload")
    jwk = attestation.get("operatorPublicKey")
    if not isinstance(payload, dict) or not isinstance(jwk, dict):
        return False
    try:
        message = canonical_json(payload)
        operator = derive_operator_address(jwk["n"])
    except (ArioError, KeyError, TypeError, ValueError):  # binascii.Error is a ValueError
        return False
    payload_hash = attestation.get("payloadHash")
    checks = (
        payload_hash is None
        or (isinstance(payload_hash, str) and payload_hash.lower() == sha256_hex(message)),
        attestation.get("operator") == operator,
        payload.get("operator") == operator,
        payload.get("tx_id") == tx_id,
        level is not None and type(payload.get("level")) is int and payload["level"] == level,
    )
    if not all(checks):
        return False
    return verify_rsa_pss_sha256(message, attestation["signature"], jwk)


def _hash_matches(expected: str | None, attested: Any) -> bool | None:
    if expected is None or attested is None:
        return None
    digest = _digest(attested)
    return digest is not None and hmac.compare_digest(digest, bytes.fromhex(expected))


class ArioVerifyClient:
    """Ask an ar.io Verify sidecar to verify a transaction and read back its verdict.

    The base URL comes from ``base_url`` or ``ARIO_MLFLOW_ARIO_VERIFY_URL``; without one
    the client is disabled. The constructor probes ``GET <base>/health`` once and enables
    the client only on HTTP 200. Requests go through ``transport`` (default: the shared
    :func:`~ario_mlflow.arweave.transport.default_transport`) and are retried up to
    ``max_retries`` times on 429/5xx. ``session``, 0.3.0's alternative, is a
    ``requests.Session`` used as is instead (its own retries, none added).
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        max_retries: int = 2,
        retry_backoff_factor: float = 0.5,
        health_timeout: float = 5.0,
        submit_timeout: float = 30.0,
        session: requests.Session | None = None,
        transport: Transport | None = None,
    ) -> None:
        if session is not None and transport is not None:
            raise ValueError("give a session or a transport, not both")
        raw = base_url or load_settings().verify_url or ""
        self.base_url: str = raw.rstrip("/")
        self.submit_timeout = submit_timeout
        self.last_error: str | None = None
        self.enabled = False
        self._session = session
        self.transport: Transport
        if session is not None:
            self.transport = SessionTransport(session)
            self._retries = 0  # the caller's session is used as is
        else:
            self.transport = transport or default_transport()
            self._retries = max_retries
        self._backoff_factor = retry_backoff_factor
        # user:password@ in the URL is sent as Basic auth, never in a request line
        self._endpoint, self._auth = split_userinfo(self.base_url)
        if self.base_url:
            self.enabled = self._health_check(health_timeout)

    def _send(self, method: str, path: str, timeout: float, body: bytes = b"") -> Response:
        headers = {"Accept": "application/json", **self._auth}
        if body:
            headers["Content-Type"] = "application/json"
        request = Request(
            method,
            f"{self._endpoint}{path}",
            timeout=timeout,
            max_body=MAX_ANSWER_BYTES,
            body=body,
            headers=headers,
            follow_redirects=True,  # within the same origin only, as every transport does
        )
        return send_with_retries(
            self.transport, request, retries=self._retries, backoff_factor=self._backoff_factor
        )

    def _health_check(self, timeout: float) -> bool:
        try:
            response = self._send("GET", "/health", timeout)
        except TransportError as exc:
            self.last_error = f"health check network error: {_redact(describe_failure(exc))}"
        else:
            if response.status == 200:
                return True
            self.last_error = f"health check failed: HTTP {response.status}"
        logger.warning(
            "ar.io Verify at %s is unavailable (%s); attestation checks are off",
            _redact(self.base_url),
            self.last_error,
        )
        return False

    def submit_verification(
        self, tx_id: str, *, expected_data_hash: str | None = None
    ) -> dict[str, Any] | None:
        """Run one verification of ``tx_id``; the normalized result, or None on failure.

        ``expected_data_hash`` is the SHA-256 hex of the exact bytes we anchored; when
        given, ``data_hash_matches`` says whether the server attests the same bytes.
        """
        if not isinstance(tx_id, str) or not tx_id:
            raise ValueError("tx_id must be a non-empty string")
        if expected_data_hash is not None and not (
            isinstance(expected_data_hash, str) and is_sha256_hex(expected_data_hash.lower())
        ):
            raise ValueError("expected_data_hash must be a 64-character SHA-256 hex digest")
        self.last_error = None
        if not self.enabled:
            self.last_error = _NOT_ENABLED
            return None
        try:
            response = self._send(
                "POST",
                "/api/v1/verify",
                self.submit_timeout,
                json.dumps({"txId": tx_id}).encode(),
            )
        except TransportError as exc:
            self._fail(_NETWORK + _redact(describe_failure(exc)))
            return None
        if response.status != 200:
            reason = reason_phrase(response.status)
            self._fail(f"{_NETWORK}HTTP {response.status}{' ' + reason if reason else ''}")
            return None
        try:
            body = json.loads(response.body)
            if not isinstance(body, dict):
                raise ValueError(f"body is a {type(body).__name__}, not an object")
            return self._normalize(body, tx_id, expected_data_hash)
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            self._fail(_PARSE + _describe(exc))
            return None

    def _fail(self, message: str) -> None:
        """Record why a call returned None (the caller then returns None)."""
        self.last_error = message
        logger.warning("ar.io Verify: %s", message)

    def _link(self, value: Any) -> str | None:
        if not isinstance(value, str) or not value:
            return None
        if value.lower().startswith(("http://", "https://")):
            return value
        return f"{self.base_url}{'' if value.startswith('/') else '/'}{value}"

    def _normalize(
        self, body: dict[str, Any], tx_id: str, expected_data_hash: str | None
    ) -> dict[str, Any]:
        existence = _as_object(body, "existence")
        authenticity = _as_object(body, "authenticity")
        links = _as_object(body, "links")
        attestation = _as_object(body, "attestation") or None
        level = _level(body.get("level"))
        signature_valid = verify_operator_attestation(attestation, tx_id=tx_id, level=level)
        if signature_valid and attestation is not None:
            attested_hash = attestation["payload"].get("data_hash")
        else:
            attested_hash = authenticity.get("dataHash")
        expected = expected_data_hash.lower() if expected_data_hash else None
        return {
            "verification_id": _text_or_none(body.get("verificationId")),
            "status": _text_or_none(existence.get("status")) or "unknown",
            "attestation_level": level,
            "report_url": self._link(links.get("dashboard")),
            "pdf_url": self._link(links.get("pdf")),
            "attested_by": _text_or_none((attestation or {}).get("gateway")),
            "attested_at": _text_or_none((attestation or {}).get("attestedAt")),
            "data_hash": _text_or_none(authenticity.get("dataHash")),
            "attestation": attestation,
            "attestation_signature_valid": signature_valid,
            "data_hash_matches": _hash_matches(expected, attested_hash),
        }

    def poll_attestation(
        self,
        tx_id: str,
        *,
        target_level: int = 2,
        timeout: float = 120.0,
        interval: float = 5.0,
        expected_data_hash: str | None = None,
    ) -> dict[str, Any] | None:
        """Submit until the level reaches ``target_level`` or ``timeout`` seconds pass.

        Returns the first result at or above the target, else the last result obtained
        (None if every submit failed). At least one submit always happens.
        """
        if not self.enabled:
            self.last_error = _NOT_ENABLED
            return None
        deadline = time.monotonic() + timeout
        last: dict[str, Any] | None = None
        while True:
            result = self.submit_verification(tx_id, expected_data_hash=expected_data_hash)
            if result is not None:
                last = result
                level = result["attestation_level"]
                if level is not None and level >= target_level:
                    return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return last
            time.sleep(min(interval, remaining))
