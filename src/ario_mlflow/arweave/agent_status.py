"""Consumer of the ar-io-agent's ``GET /v1/verify-status/<asset_id>`` endpoint.

The agent watches deployed model files and says whether each still matches its
registered baseline. :class:`VerifyStatusClient` asks it, turns every failure into a
typed :class:`~ario_mlflow.errors.VerifyStatusError`, and never lets the management
secret leave the configured host: redirects are not followed, environment proxies and
``.netrc`` are ignored, and the secret is kept out of messages and logs. Each request
goes through a :class:`~ario_mlflow.arweave.transport.Transport`, with a wall-clock
deadline (the client's timeout) and a cap on the answer's size (:data:`MAX_ANSWER_BYTES`).
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ario_mlflow.arweave.http import SessionTransport, describe_failure, split_userinfo
from ario_mlflow.arweave.transport import HTTPTransport, Request, Transport
from ario_mlflow.errors import (
    TransportError,
    VerifyStatusAuthError,
    VerifyStatusLicenseError,
    VerifyStatusTransportError,
    VerifyStatusUnknownAssetError,
)

if TYPE_CHECKING:
    import requests

logger = logging.getLogger(__name__)

#: Largest answer read from the agent (a verify-status is a few hundred bytes).
MAX_ANSWER_BYTES = 64 * 1024

#: Outcomes the agent may report; anything else is read as ``"unknown"``.
OUTCOMES = frozenset({"verified", "tampered", "missing", "unavailable", "unknown"})

_SECRET_HEADER = "X-Ario-Management-Secret"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_USERINFO = re.compile(r"(?<=//)[^/@\s]+@")
_TRUE_WORDS = {"true": True, "false": False}

_DIRECT: list[HTTPTransport] = []
_DIRECT_LOCK = threading.Lock()


def _direct_transport() -> HTTPTransport:
    """The process-wide transport that ignores environment proxies (no proxy may see the
    credential); ``http.client`` never reads ``.netrc``."""
    with _DIRECT_LOCK:
        if not _DIRECT:
            _DIRECT.append(HTTPTransport(env_proxies=False))
        return _DIRECT[0]


@dataclass(frozen=True)
class VerifyStatus:
    """One verify-status answer, with the agent's field names and checked types."""

    asset_id: str
    tenant_id: str
    agent_id: str
    outcome: str
    last_verified_at: str | None
    max_age: int
    stale: bool
    policy_hash: str
    current_tx_id: str | None


def _encode_asset_id(asset_id: str) -> str:
    """Percent-encode every character outside RFC 3986's unreserved set (``/`` too)."""
    return quote(asset_id, safe="")


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("is a boolean, not a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("is not finite")
    if isinstance(value, (int, float, str)):
        return int(value)
    raise TypeError(f"is a {type(value).__name__}, not a number")


def _as_bool(value: Any) -> bool:
    """Booleans, 0/1 and "true"/"false"; never ``bool("false")``, which is True."""
    if isinstance(value, bool):
        return value
    if type(value) is int and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS:
        return _TRUE_WORDS[value.strip().lower()]
    raise TypeError(f"{value!r:.40} is not a boolean")


def _as_text(value: Any, *, nullable: bool = False) -> Any:
    if isinstance(value, str) or (nullable and value is None):
        return value
    raise TypeError(f"is a {type(value).__name__}, not a string")


_PARSERS: dict[str, Any] = {
    "asset_id": _as_text,
    "tenant_id": _as_text,
    "agent_id": _as_text,
    "outcome": _as_text,
    "last_verified_at": lambda value: _as_text(value, nullable=True),
    "max_age": _as_int,
    "stale": _as_bool,
    "policy_hash": _as_text,
    "current_tx_id": lambda value: _as_text(value, nullable=True),
}


def parse_verify_status(body: Any) -> VerifyStatus:
    """Build a :class:`VerifyStatus` from a decoded JSON body.

    Raises ``ValueError`` / ``TypeError`` for a body that is not an object, lacks a
    required field or holds a field of the wrong type. Unknown fields are ignored; an
    unknown outcome becomes ``"unknown"`` with a warning.
    """
    if not isinstance(body, dict):
        raise TypeError(f"body is a {type(body).__name__}, not an object")
    fields: dict[str, Any] = {}
    for name, parse in _PARSERS.items():
        if name not in body:
            raise ValueError(f"missing field {name!r}")
        try:
            fields[name] = parse(body[name])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"field {name!r} {exc}") from None
    if fields["outcome"] not in OUTCOMES:
        logger.warning(
            "verify-status returned unrecognized outcome %.64r for asset %.200r; "
            "treating it as 'unknown'",
            fields["outcome"],
            fields["asset_id"],
        )
        fields["outcome"] = "unknown"
    return VerifyStatus(**fields)


class VerifyStatusClient:
    """Read the agent's verify-status for an asset.

    ``base_url`` is the agent's management port (``http://127.0.0.1:9847``) or an API
    guard in front of it. Give exactly one credential: ``secret`` (sent as
    ``X-Ario-Management-Secret``) or ``api_key`` (``Authorization: Bearer``).

    Requests go through ``transport`` (default: a shared transport that ignores the
    environment's proxies); ``session``, 0.3.0's alternative, is a ``requests.Session``
    used as is instead. Redirects are never followed and nothing is retried.
    """

    def __init__(
        self,
        base_url: str,
        secret: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 5.0,
        session: requests.Session | None = None,
        transport: Transport | None = None,
    ) -> None:
        if session is not None and transport is not None:
            raise ValueError("give a session or a transport, not both")
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http:// or https:// URL")
        if bool(secret) == bool(api_key):
            raise ValueError("give exactly one non-empty credential: secret or api_key")
        credential = secret or api_key
        if (
            not isinstance(credential, str)
            or not credential.isascii()
            or _CONTROL.search(credential)
        ):
            # HTTP headers carry ASCII; CR/LF would let the value inject headers.
            raise ValueError("the credential must be printable ASCII")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._credential = credential
        # user:password@ in the URL is sent as Basic auth (as requests did), unless the
        # api_key takes the Authorization header; it never appears in a request line.
        self._endpoint, basic = split_userinfo(self.base_url)
        self._headers = {"Accept": "application/json"}
        if secret:
            self._headers.update(basic)
            self._headers[_SECRET_HEADER] = secret
        else:
            self._headers["Authorization"] = f"Bearer {credential}"
        self._session = session
        self.transport: Transport
        if session is not None:
            self.transport = SessionTransport(session)  # never lets .netrc replace a header
        else:
            self.transport = transport or _direct_transport()
        self._cache: dict[str, tuple[float, VerifyStatus]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self._scrub(self.base_url)!r})"

    def _scrub(self, text: str) -> str:
        """``text`` without the credential or URL user-info, safe to log or raise."""
        return _USERINFO.sub("***@", text.replace(self._credential, "***"))

    def _transport_error(self, message: str, asset_id: str) -> VerifyStatusTransportError:
        return VerifyStatusTransportError(self._scrub(message), asset_id=asset_id)

    def get(self, asset_id: str, *, max_cache_age: float | None = None) -> VerifyStatus:
        """The current status of ``asset_id``.

        With ``max_cache_age`` set, an answer younger than that many seconds is returned
        without a request. Raises a :class:`~ario_mlflow.errors.VerifyStatusError`
        subclass (carrying ``asset_id``) when there is no trustworthy answer.
        """
        if not isinstance(asset_id, str) or not asset_id:
            raise ValueError("asset_id must be a non-empty string")
        if asset_id in (".", ".."):
            # Unreserved, so requests sends them bare and URL normalizers eat the segment.
            raise ValueError(f"asset_id {asset_id!r} cannot be addressed in a URL path")
        if max_cache_age is not None:
            with self._lock:
                cached = self._cache.get(asset_id)
            if cached is not None and time.monotonic() - cached[0] < max_cache_age:
                return cached[1]
        status = self._fetch(asset_id)
        with self._lock:
            self._cache[asset_id] = (time.monotonic(), status)
        return status

    def _fetch(self, asset_id: str) -> VerifyStatus:
        request = Request(
            "GET",
            f"{self._endpoint}/v1/verify-status/{_encode_asset_id(asset_id)}",
            timeout=self.timeout,
            max_body=MAX_ANSWER_BYTES,
            headers=self._headers,
            follow_redirects=False,  # the credential must reach only the configured host
        )
        try:
            response = self.transport.send(request)
        except TransportError as exc:
            raise self._transport_error(
                f"verify-status request for {asset_id!r} failed: {describe_failure(exc)}",
                asset_id,
            ) from None
        code = response.status
        content = response.body
        if code == 200:
            try:
                status = parse_verify_status(json.loads(content))
            except (ValueError, TypeError, RecursionError) as exc:
                raise self._transport_error(
                    f"verify-status body for {asset_id!r} is malformed: {exc}", asset_id
                ) from None
            if status.asset_id != asset_id:
                raise self._transport_error(
                    f"verify-status answered for asset {status.asset_id!r}, not {asset_id!r}",
                    asset_id,
                )
            return status
        if code == 401:
            raise VerifyStatusAuthError(
                f"verify-status rejected the credential (HTTP 401) for asset {asset_id!r}",
                asset_id=asset_id,
            )
        if code == 404:
            raise VerifyStatusUnknownAssetError(
                f"asset {asset_id!r} is not in the agent's policy (HTTP 404)", asset_id=asset_id
            )
        if code == 503:
            raise VerifyStatusLicenseError(
                f"verify-status refused by the agent's license gate (HTTP 503) for {asset_id!r}",
                asset_id=asset_id,
                upgrade_url=self._upgrade_url(content),
            )
        if 300 <= code < 400:
            raise self._transport_error(f"HTTP {code}: redirect not followed", asset_id)
        raise self._transport_error(f"HTTP {code}: {response.text[:200]}", asset_id)

    def _upgrade_url(self, content: bytes) -> str | None:
        try:
            body = json.loads(content)
        except (ValueError, RecursionError):
            return None
        url = body.get("upgrade_url") if isinstance(body, dict) else None
        if isinstance(url, str) and url.startswith(("http://", "https://")):
            return self._scrub(url)
        return None
