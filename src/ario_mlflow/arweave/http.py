"""What the ar.io Verify and verify-status clients add around a :class:`Transport`.

* :func:`send_with_retries`: 0.3.0's retry policy (429 and 5xx for GET and POST, with
  backoff, ``Retry-After`` obeyed up to :data:`MAX_RETRY_AFTER`; a refused connection
  too), as a bounded loop over single exchanges. A timeout is never retried, so a server
  that accepts and never answers costs one deadline, not one per attempt; an exchange that
  failed after the request may have been read is not repeated either.
* :class:`SessionTransport`: a caller's ``requests.Session`` (0.3.0's ``session=``
  arguments) as a transport, with the body cap and the deadline checked while reading.
* :func:`split_userinfo`: ``user:password@`` in a URL becomes a Basic ``Authorization``
  header (as ``requests`` did), so credentials never reach a request line or a message.
"""

from __future__ import annotations

import base64
import email.utils
import re
import socket
import time
import urllib.parse
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from ario_mlflow.arweave.transport import Request, Response, Transport
from ario_mlflow.errors import DeadlineExceededError, ResponseTooLargeError, TransportError

if TYPE_CHECKING:
    import requests

#: HTTP statuses retried (with backoff, ``Retry-After`` honoured).
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Methods retried on those statuses.
RETRY_METHODS = frozenset({"GET", "POST"})
#: Longest ``Retry-After`` we obey, in seconds, so a server cannot park the caller.
MAX_RETRY_AFTER = 10.0
#: Longest backoff between two attempts, in seconds (urllib3's default).
MAX_BACKOFF = 120.0
_DIGITS = re.compile(r"\s*[0-9]+\s*")
_READ_CHUNK = 64 * 1024


def backoff(failures: int, factor: float) -> float:
    """Seconds to wait after ``failures`` consecutive failures (urllib3's formula: none
    after the first, then ``factor * 2 ** (failures - 1)``)."""
    if failures <= 1:
        return 0.0
    return max(0.0, min(MAX_BACKOFF, factor * 2.0 ** (failures - 1)))


def retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` (seconds or HTTP date) in seconds, at most :data:`MAX_RETRY_AFTER`;
    None when absent, malformed or zero (the caller then backs off as usual)."""
    if value is None:
        return None
    if _DIGITS.fullmatch(value):
        seconds = float(int(value))
    else:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        if parsed[9] is None:  # no zone: read as UTC, as urllib3 does
            parsed = (*parsed[:9], 0)
        seconds = email.utils.mktime_tz(parsed) - time.time()
    seconds = min(seconds, MAX_RETRY_AFTER)
    return seconds if seconds > 0 else None


def _nothing_sent(exc: TransportError) -> bool:
    """True when the connection was refused or the host name did not resolve: the request
    never left, so sending it again cannot repeat it (urllib3 retried these too)."""
    if isinstance(exc, (DeadlineExceededError, ResponseTooLargeError)):
        return False
    return isinstance(exc.__cause__ or exc.__context__, (ConnectionRefusedError, socket.gaierror))


def send_with_retries(
    transport: Transport, request: Request, *, retries: int, backoff_factor: float
) -> Response:
    """Send ``request``, again up to ``retries`` times after a 429/5xx answer (GET and POST)
    or a refused connection; the last answer is returned whatever its status.

    Every attempt has the request's own deadline. Timeouts, oversized answers and other
    transport failures are raised at once.
    """
    failures = 0
    while True:
        try:
            response = transport.send(request)
        except TransportError as exc:
            if failures >= retries or not _nothing_sent(exc):
                raise
            failures += 1
            delay = backoff(failures, backoff_factor)
        else:
            if (
                failures >= retries
                or request.method not in RETRY_METHODS
                or response.status not in RETRY_STATUSES
            ):
                return response
            failures += 1
            delay = retry_after(response.header("Retry-After")) or backoff(failures, backoff_factor)
        if delay > 0:
            time.sleep(delay)


def reason_phrase(status: int) -> str:
    """The standard reason phrase of ``status`` ("" for an unregistered code)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def describe_failure(exc: TransportError) -> str:
    """A transport failure in 0.3.0's words: ``requests`` reported a refused connection
    and a timeout (after retries) as ``ConnectionError``."""
    if isinstance(exc, ResponseTooLargeError):
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, DeadlineExceededError):
        return f"ConnectionError: timed out: {exc}"
    return f"ConnectionError: {exc}"


def split_userinfo(url: str) -> tuple[str, dict[str, str]]:
    """``url`` without ``user:password@``, and the Basic ``Authorization`` header it meant
    (empty when there was none)."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, {}
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    token = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
    header = "Basic " + base64.b64encode(token.encode("latin-1", "replace")).decode("ascii")
    return urllib.parse.urlunsplit(parts._replace(netloc=hostport)), {"Authorization": header}


def _keep_headers(prepared: Any) -> Any:
    """An ``auth`` that changes nothing: it stops ``requests`` from taking credentials
    from ``.netrc`` (which would replace the ``Authorization`` header we set)."""
    return prepared


class SessionTransport:
    """A ``requests.Session`` used as a :class:`Transport` (0.3.0's ``session=``).

    The session is used as is (its adapters, retries and proxy settings). Redirects are
    never followed. The body cap holds while reading; the deadline is checked between
    reads (the session bounds each connect and read by the request's timeout).
    """

    def __init__(self, session: requests.Session) -> None:
        self.session = session

    def send(self, request: Request) -> Response:
        """Send ``request`` through the session; the complete answer within the cap."""
        import requests
        from urllib3.exceptions import HTTPError as Urllib3Error

        deadline = time.monotonic() + request.timeout
        origin = _origin(request.url)
        try:
            with self.session.request(
                request.method,
                request.url,
                data=request.body or None,
                headers=dict(request.headers),
                auth=_keep_headers,
                timeout=(request.connect_timeout or request.timeout, request.timeout),
                allow_redirects=False,
                stream=True,
            ) as answer:
                body = _read_capped(answer, request.max_body, origin, deadline)
                return Response(answer.status_code, dict(answer.headers), body, request.url)
        except requests.Timeout:
            raise DeadlineExceededError(f"{origin}: no complete answer in time") from None
        except (requests.RequestException, Urllib3Error) as exc:  # urllib3's can escape
            raise TransportError(f"{origin}: {type(exc).__name__}: {exc}") from None


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, for messages (never its user-info or path)."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # a malformed port: requests will refuse the URL itself
        port = None
    return f"{parts.scheme}://{parts.hostname or ''}" + (f":{port}" if port else "")


def _read_capped(answer: requests.Response, limit: int, origin: str, deadline: float) -> bytes:
    announced = answer.headers.get("Content-Length", "")
    if announced.strip().isdigit() and int(announced) > limit:
        raise ResponseTooLargeError(
            f"{origin}: answer of {int(announced)} bytes is larger than the {limit}-byte cap"
        )
    parts: list[bytes] = []
    size = 0
    for chunk in answer.iter_content(_READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise ResponseTooLargeError(f"{origin}: answer larger than the {limit}-byte cap")
        if time.monotonic() > deadline:
            raise DeadlineExceededError(f"{origin}: no complete answer in time")
        parts.append(chunk)
    return b"".join(parts)
