"""The local gateway without a socket: a transport that hands each request to the
gateway's own request handler in this process.

The request is written as HTTP/1.1 bytes and read by the same handler class that serves
real connections, and its answer is parsed by ``http.client`` — so routes, faults
(black-holes, trickles, padding, forged receipts) and status codes behave exactly as over
TCP, while unit tests open no port. The transport keeps the contract of
:class:`~ario_mlflow.arweave.transport.HTTPTransport`: a wall-clock deadline per exchange
(:class:`DeadlineExceededError`), a body cap (:class:`ResponseTooLargeError`), redirects
only within the origin, and a refused connection for any other origin.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import os
import threading
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

from ario_mlflow.arweave.transport import Request, Response, send_following_redirects
from ario_mlflow.errors import DeadlineExceededError, ResponseTooLargeError, TransportError

if TYPE_CHECKING:
    from ario_mlflow.localgw.server import GatewayServer

#: Base URL the in-process gateway answers at (no name resolution ever happens).
IN_PROCESS_URL = "http://localgw.in-process"
#: Room for the status line and headers beyond a body cap.
_HEADER_ALLOWANCE = 64 * 1024


class _Connection:
    """What the handler takes for a socket: the request bytes to read, a sink to write
    to (which refuses to grow past ``limit``, as a client that hangs up would), and a
    pipe that becomes readable at end-of-file when the client hangs up (a black-holed
    request waits on it, as it waits on a real socket)."""

    def __init__(self, request: bytes, limit: int) -> None:
        self._request = request
        self._limit = limit
        self.written = bytearray()
        self._gone_read, self._gone_write = os.pipe()

    def fileno(self) -> int:
        return self._gone_read

    def recv(self, size: int) -> bytes:
        return os.read(self._gone_read, size)

    def hang_up(self) -> None:
        """The client gives up: the handler sees end-of-file."""
        with contextlib.suppress(OSError):
            os.close(self._gone_write)

    def shutdown(self, _: int) -> None:
        """The server cuts the connection (it is stopping)."""
        self.hang_up()

    def release(self) -> None:
        """The handler is done with it."""
        self.hang_up()
        with contextlib.suppress(OSError):
            os.close(self._gone_read)

    def makefile(self, mode: str, *_: Any) -> io.BytesIO:
        return io.BytesIO(self._request if "r" in mode else b"")

    def sendall(self, data: bytes) -> None:
        if len(self.written) + len(data) > self._limit:
            raise BrokenPipeError("the client stopped reading: answer over the cap")
        self.written += data

    def settimeout(self, _: float | None) -> None:
        """Deadlines are the transport's (the handler runs on its own thread)."""

    def setsockopt(self, *_: Any) -> None:
        raise OSError("not a socket")

    def getpeername(self) -> tuple[str, int]:
        return ("127.0.0.1", 0)


class _Answer:
    """Feeds the handler's bytes to ``http.client.HTTPResponse``."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def makefile(self, *_: Any) -> io.BytesIO:
        return io.BytesIO(self._data)


def _origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.netloc.lower()


class InProcessTransport:
    """Serves every request to :data:`IN_PROCESS_URL` from ``server`` in this process."""

    def __init__(self, server: GatewayServer, base_url: str = IN_PROCESS_URL) -> None:
        self.server = server
        self.base_url = base_url.rstrip("/")

    def send(self, request: Request) -> Response:
        """One exchange (and same-origin redirects, if the request asks for them)."""
        return send_following_redirects(request, self._exchange)

    def _exchange(self, request: Request, url: str, deadline: float) -> Response:
        if _origin(url) != _origin(self.base_url):
            raise TransportError(f"{url}: cannot connect: no in-process gateway there")
        parts = urllib.parse.urlsplit(url)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        headers = {
            "Host": parts.netloc,
            "Content-Length": str(len(request.body)),
            "Connection": "close",
            **request.headers,
        }
        head = f"{request.method} {target} HTTP/1.1\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in headers.items()
        )
        connection = _Connection(
            head.encode("latin-1") + b"\r\n" + request.body,
            request.max_body + _HEADER_ALLOWANCE,
        )
        worker = threading.Thread(
            target=self._handle,
            args=(connection,),
            name="ario-localgw-in-process",
            daemon=True,
        )
        worker.start()
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():  # black-holed, trickling, or slow: the caller's deadline wins
            connection.hang_up()
            raise DeadlineExceededError(f"{url}: no complete answer within {request.timeout:g}s")
        return self._parse(bytes(connection.written), request, url)

    def _handle(self, connection: _Connection) -> None:
        from ario_mlflow.localgw.server import handler_class

        try:
            handler_class()(connection, ("127.0.0.1", 0), self.server)  # type: ignore[arg-type]
        finally:
            connection.release()

    @staticmethod
    def _parse(data: bytes, request: Request, url: str) -> Response:
        if not data:
            raise TransportError(f"{url}: the gateway closed the connection without an answer")
        answer = http.client.HTTPResponse(_Answer(data))  # type: ignore[arg-type]
        try:
            answer.begin()
            body = answer.read(request.max_body + 1)
        except (http.client.HTTPException, OSError) as exc:
            raise TransportError(f"{url}: {type(exc).__name__}: {exc}") from None
        declared = answer.getheader("Content-Length")
        too_large = len(body) > request.max_body or (
            declared is not None and declared.isdigit() and int(declared) > request.max_body
        )
        if too_large:
            raise ResponseTooLargeError(f"{url}: answer larger than {request.max_body} bytes")
        return Response(answer.status, dict(answer.getheaders()), body, url)
