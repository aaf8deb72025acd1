"""One HTTP exchange with a hard wall-clock deadline and a cap on the answer's size.

Every client that talks to the network (gateway reads, Turbo uploads and status, the ar.io
Verify and verify-status clients) sends a :class:`Request` through a :class:`Transport`,
so that:

* a hostile or broken server cannot hold a caller: the deadline covers connecting, the
  request, the status line, the headers and the whole body. A server that sends one byte
  every half second is cut off when the deadline passes (a watchdog shuts the socket
  down), where per-read timeouts alone would wait forever;
* a hostile server cannot exhaust memory: a body larger than ``max_body`` is refused as
  soon as it is announced or read, never buffered whole;
* redirects are followed only within the same origin (scheme, host, port), at most
  :data:`MAX_REDIRECTS` times: a gateway cannot send a verifier to another host;
* tests inject a :class:`MockTransport` (a function from request to response) instead of
  patching internals, and an in-process transport can serve the local gateway without
  sockets.

Proxies are taken from the usual environment variables (``HTTPS_PROXY``, ``HTTP_PROXY``,
``NO_PROXY``), as ``requests`` does, unless the transport is made with
``env_proxies=False`` (for a client whose credentials must reach only the named host).
"""

from __future__ import annotations

import contextlib
import heapq
import http.client
import itertools
import json
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from ario_mlflow.errors import DeadlineExceededError, ResponseTooLargeError, TransportError

#: Redirects followed within one origin before giving up.
MAX_REDIRECTS = 3
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_READ_CHUNK = 64 * 1024
_IDLE_PER_ORIGIN = 4


@dataclass(frozen=True)
class Request:
    """What to send, and how long and how much the answer may take."""

    method: str
    url: str
    timeout: float
    max_body: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    connect_timeout: float | None = None
    follow_redirects: bool = False

    @classmethod
    def within(
        cls, method: str, url: str, timeouts: tuple[float, float], **options: Any
    ) -> Request:
        """A request bounded by the settings' ``(connect, read)`` timeouts: connecting may
        take ``connect`` seconds, the whole exchange ``connect + read``."""
        connect, read = timeouts
        return cls(method, url, timeout=connect + read, connect_timeout=connect, **options)


@dataclass(frozen=True)
class Response:
    """A complete answer (its body already read, within the cap)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str

    def header(self, name: str) -> str | None:
        """A header's value, whatever its case."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None

    @property
    def text(self) -> str:
        """The body as text (invalid UTF-8 replaced)."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON (``ValueError`` if it is not)."""
        return json.loads(self.body)


class Transport(Protocol):
    """Sends one request; raises :class:`TransportError` (or a subclass) on failure."""

    def send(self, request: Request) -> Response:
        """Send ``request`` and return the complete response."""
        ...


#: ``exchange(request, url, deadline) -> response``: one HTTP exchange with ``url``.
Exchange = Callable[[Request, str, float], Response]


def send_following_redirects(request: Request, exchange: Exchange) -> Response:
    """``request`` through ``exchange``, following redirects (if the request asks for it)
    only within its origin and at most :data:`MAX_REDIRECTS` times, all within the
    request's one deadline. The rule every transport keeps."""
    deadline = time.monotonic() + request.timeout
    url = request.url
    for _ in range(MAX_REDIRECTS + 1):
        response = exchange(request, url, deadline)
        location = response.header("Location")
        if not (request.follow_redirects and response.status in _REDIRECTS and location):
            return response
        target = urllib.parse.urljoin(url, location)
        if _parse(target)[0] != _parse(url)[0]:
            raise TransportError(
                f"{_origin_text(url)} redirected to another origin ({_origin_text(target)}); "
                "not followed"
            )
        url = target
    raise TransportError(f"{_origin_text(request.url)}: more than {MAX_REDIRECTS} redirects")


class MockTransport:
    """A transport that answers with ``handler(request)`` (for tests and fault injection)."""

    def __init__(self, handler: Callable[[Request], Response]) -> None:
        self.handler = handler

    def send(self, request: Request) -> Response:
        """The handler's answer, with the body cap still enforced."""
        response = self.handler(request)
        if len(response.body) > request.max_body:
            raise ResponseTooLargeError(
                f"{_origin_text(request.url)}: answer larger than {request.max_body} bytes"
            )
        return response


# --- the watchdog that enforces deadlines -------------------------------------------------


class _Watchdog:
    """One daemon thread that shuts sockets down when their deadline passes."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._heap: list[tuple[float, int, socket.socket]] = []
        self._cancelled: set[int] = set()
        self._fired: set[int] = set()
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    @contextmanager
    def armed(self, deadline: float, sock: socket.socket) -> Iterator[Callable[[], bool]]:
        """Shut ``sock`` down at ``deadline`` (monotonic) unless the block ended first;
        yields a function telling whether it fired."""
        with self._lock:
            handle = next(self._ids)
            heapq.heappush(self._heap, (deadline, handle, sock))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="ario-http-deadline", daemon=True
                )
                self._thread.start()
            self._lock.notify()
        try:
            yield lambda: handle in self._fired
        finally:
            with self._lock:
                if handle in self._fired:
                    self._fired.discard(handle)  # already off the heap
                else:
                    self._cancelled.add(handle)

    def _run(self) -> None:
        while True:
            with self._lock:
                while self._heap and self._heap[0][1] in self._cancelled:
                    self._cancelled.discard(heapq.heappop(self._heap)[1])
                if not self._heap:
                    self._lock.wait(30.0)
                    if not self._heap:
                        self._thread = None
                        return
                    continue
                deadline, handle, sock = self._heap[0]
                remaining = deadline - time.monotonic()
                if remaining > 0:
                    self._lock.wait(remaining)
                    continue
                heapq.heappop(self._heap)
                self._fired.add(handle)
            with contextlib.suppress(OSError):  # already closed: the exchange ended on its own
                sock.shutdown(socket.SHUT_RDWR)


_WATCHDOG = _Watchdog()


# --- the real transport -------------------------------------------------------------------


@dataclass(frozen=True)
class _Origin:
    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


def _parse(url: str) -> tuple[_Origin, str]:
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TransportError(f"{url!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TransportError(f"{url!r} is not an http(s) URL with a host")
    if any(c.isspace() for c in url):
        raise TransportError(f"{url!r} contains white space")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    default = 443 if parts.scheme == "https" else 80
    return _Origin(parts.scheme, parts.hostname, port or default), target


def _origin_text(url: str) -> str:
    try:
        return str(_parse(url)[0])
    except TransportError:
        return url[:80]


class HTTPTransport:
    """HTTP/1.1 over ``http.client`` with keep-alive, deadlines and body caps.

    ``env_proxies=False`` connects directly whatever the environment's proxy variables say.
    """

    def __init__(
        self, *, ssl_context: ssl.SSLContext | None = None, env_proxies: bool = True
    ) -> None:
        self._ssl = ssl_context
        self._env_proxies = env_proxies
        self._idle: dict[_Origin, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def send(self, request: Request) -> Response:
        """Send ``request``; follow same-origin redirects if asked."""
        return send_following_redirects(request, self._exchange)

    def _exchange(self, request: Request, url: str, deadline: float) -> Response:
        origin, target = _parse(url)
        connection, reused = self._connection(origin, request, deadline)
        try:
            return self._over(connection, origin, target, request, url, deadline)
        except TransportError:
            connection.close()
            raise
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            if reused and not isinstance(exc, socket.timeout):
                # a kept-alive connection the server closed meanwhile: one fresh try
                connection, _ = self._connection(origin, request, deadline, fresh=True)
                try:
                    return self._over(connection, origin, target, request, url, deadline)
                except (OSError, http.client.HTTPException) as again:
                    connection.close()
                    raise self._failure(origin, again, deadline) from None
            raise self._failure(origin, exc, deadline) from None

    def _failure(self, origin: _Origin, exc: BaseException, deadline: float) -> TransportError:
        if time.monotonic() >= deadline or isinstance(exc, socket.timeout):
            return DeadlineExceededError(f"{origin}: no complete answer in time")
        return TransportError(f"{origin}: {type(exc).__name__}: {exc}")

    def _over(  # noqa: PLR0917 - private helper, one call site
        self,
        connection: http.client.HTTPConnection,
        origin: _Origin,
        target: str,
        request: Request,
        url: str,
        deadline: float,
    ) -> Response:
        sock = connection.sock
        assert sock is not None
        late = DeadlineExceededError(f"{origin}: no complete answer within {request.timeout:g}s")
        with _WATCHDOG.armed(deadline, sock) as fired:
            try:
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                path = url if self._via_plain_proxy(origin) else target
                headers = {"Host": _host_header(origin), **request.headers}
                connection.request(request.method, path, body=request.body or None, headers=headers)
                answer = connection.getresponse()
                body = _read_capped(answer, request.max_body, origin)
            except (OSError, http.client.HTTPException, TransportError) as exc:
                if fired():
                    raise late from None
                raise exc
            if fired():  # the socket was shut down under a read that then saw "end of data"
                raise late
        response = Response(answer.status, dict(answer.getheaders()), body, url)
        if answer.will_close:
            connection.close()
        else:
            self._release(origin, connection)
        return response

    # --- connections ------------------------------------------------------------------

    def _connection(
        self, origin: _Origin, request: Request, deadline: float, *, fresh: bool = False
    ) -> tuple[http.client.HTTPConnection, bool]:
        if not fresh:
            with self._lock:
                idle = self._idle.get(origin)
                if idle:
                    return idle.pop(), True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceededError(f"{origin}: no time left to connect")
        limit = min(remaining, request.connect_timeout or remaining)
        connection = self._new_connection(origin, limit)
        try:
            connection.connect()
        except OSError as exc:
            connection.close()
            if isinstance(exc, socket.timeout):
                raise DeadlineExceededError(f"{origin}: could not connect in time") from None
            raise TransportError(f"{origin}: cannot connect: {exc}") from None
        return connection, False

    def _proxy(self, origin: _Origin) -> _Origin | None:
        return _proxy_for(origin) if self._env_proxies else None

    def _new_connection(self, origin: _Origin, timeout: float) -> http.client.HTTPConnection:
        proxy = self._proxy(origin)
        if origin.scheme == "https":
            context = self._ssl or _default_ssl_context()
            if proxy is None:
                return http.client.HTTPSConnection(
                    origin.host, origin.port, timeout=timeout, context=context
                )
            connection = http.client.HTTPSConnection(
                proxy.host, proxy.port, timeout=timeout, context=context
            )
            connection.set_tunnel(origin.host, origin.port)
            return connection
        if proxy is None:
            return http.client.HTTPConnection(origin.host, origin.port, timeout=timeout)
        return http.client.HTTPConnection(proxy.host, proxy.port, timeout=timeout)

    def _via_plain_proxy(self, origin: _Origin) -> bool:
        return origin.scheme == "http" and self._proxy(origin) is not None

    def _release(self, origin: _Origin, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < _IDLE_PER_ORIGIN:
                idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()


def _host_header(origin: _Origin) -> str:
    default = 443 if origin.scheme == "https" else 80
    host = f"[{origin.host}]" if ":" in origin.host else origin.host
    return host if origin.port == default else f"{host}:{origin.port}"


def _read_capped(answer: http.client.HTTPResponse, limit: int, origin: _Origin) -> bytes:
    announced = answer.getheader("Content-Length")
    if announced is not None and announced.strip().isdigit() and int(announced) > limit:
        raise ResponseTooLargeError(
            f"{origin}: answer of {int(announced)} bytes is larger than the {limit}-byte cap"
        )
    parts: list[bytes] = []
    size = 0
    while chunk := answer.read(min(_READ_CHUNK, limit + 1 - size) or 1):
        size += len(chunk)
        if size > limit:
            raise ResponseTooLargeError(f"{origin}: answer larger than the {limit}-byte cap")
        parts.append(chunk)
    if announced is not None and announced.strip().isdigit() and size != int(announced):
        raise TransportError(f"{origin}: answer cut short ({size} of {int(announced)} bytes)")
    return b"".join(parts)


_SSL_LOCK = threading.Lock()
_SSL_CONTEXT: list[ssl.SSLContext] = []


def _default_ssl_context() -> ssl.SSLContext:
    """The system's trust store, or certifi's when it is installed (as ``requests``)."""
    with _SSL_LOCK:
        if not _SSL_CONTEXT:
            try:
                import certifi

                _SSL_CONTEXT.append(ssl.create_default_context(cafile=certifi.where()))
            except ImportError:  # pragma: no cover - certifi comes with requests
                _SSL_CONTEXT.append(ssl.create_default_context())
        return _SSL_CONTEXT[0]


def _proxy_for(origin: _Origin) -> _Origin | None:
    """The proxy the environment names for ``origin`` (None: connect directly)."""
    if origin.host in ("127.0.0.1", "localhost", "::1"):
        return None
    if urllib.request.proxy_bypass(origin.host):
        return None
    proxy = urllib.request.getproxies().get(origin.scheme)
    if not proxy:
        return None
    if "://" not in proxy:
        proxy = "http://" + proxy
    try:
        parts = urllib.parse.urlsplit(proxy)
        if not parts.hostname:
            return None
        return _Origin("http", parts.hostname, parts.port or 8080)
    except ValueError:
        return None


_DEFAULT: list[HTTPTransport] = []
_DEFAULT_LOCK = threading.Lock()


def default_transport() -> HTTPTransport:
    """The process-wide :class:`HTTPTransport` (one keep-alive pool for every client)."""
    with _DEFAULT_LOCK:
        if not _DEFAULT:
            _DEFAULT.append(HTTPTransport())
        return _DEFAULT[0]
