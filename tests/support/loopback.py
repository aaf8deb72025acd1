"""A real HTTP server on 127.0.0.1 for client tests: scripted replies or replies computed
from the request (a stub gateway, a status agent), a relay to an upstream server (a
hostile gateway that forges some records and passes the rest on); it records every
request."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# --- a scripted loopback server ---------------------------------------------------------


@dataclass
class Reply:
    status: int = 200
    body: Any = b""  # bytes, text, or anything else as JSON
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # accept the request and never answer


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


#: A reply computed from the request (called outside the server's lock, so it may take
#: its time, e.g. to ask an upstream server).
Answer = Callable[[Seen], Reply]


def not_scripted(seen: Seen) -> Reply:
    """The default answer to a request no route was scripted for."""
    return Reply(404, {"error": "not scripted"})


class Loopback:
    """ThreadingHTTPServer on 127.0.0.1 (a free port) answering each route (method and
    path, query included) from a script of replies, each a :class:`Reply` or an
    :data:`Answer`.

    The last reply of a route repeats; requests to unscripted routes go to ``fallback``
    (404 by default). Every request is recorded in ``seen``. Usable as a context manager
    (closed on exit).
    """

    def __init__(self, fallback: Answer = not_scripted) -> None:
        self.routes: dict[tuple[str, str], list[Reply | Answer]] = {}
        self.fallback = fallback
        self.seen: list[Seen] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    def __enter__(self) -> Loopback:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def script(self, method: str, path: str, *replies: Reply | Answer) -> None:
        with self._lock:
            self.routes[(method, path)] = list(replies)

    def requests_to(self, method: str, path: str) -> list[Seen]:
        return [s for s in self.seen if (s.method, s.path) == (method, path)]

    def _next(self, seen: Seen) -> Reply:
        with self._lock:
            self.seen.append(seen)
            replies = self.routes.get((seen.method, seen.path))
            if not replies:
                reply: Reply | Answer = self.fallback
            else:
                reply = replies.pop(0) if len(replies) > 1 else replies[0]
        return reply if isinstance(reply, Reply) else reply(seen)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        loopback = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                reply = loopback._next(Seen(self.command, self.path, dict(self.headers), body))
                if reply.hang:
                    loopback.release.wait(10)
                    return
                payload = reply.body
                if not isinstance(payload, (bytes, str)):
                    payload = json.dumps(payload)
                data = payload.encode() if isinstance(payload, str) else payload
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


# --- a relay ----------------------------------------------------------------------------

#: Headers that describe one hop's framing, never passed on by :func:`relay`.
_HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-encoding", "content-length"}
)


def _end_to_end(name: str) -> bool:
    return name.lower() not in _HOP_HEADERS


def relay(upstream: str, *, keep_header: Callable[[str], bool] = _end_to_end) -> Answer:
    """An answer that sends the request (method, path, body and content type) to the
    server at ``upstream`` and replies with its status, body and the response headers
    ``keep_header`` accepts."""
    import requests

    base = upstream.rstrip("/")

    def answer(seen: Seen) -> Reply:
        content_type = {k: v for k, v in seen.headers.items() if k.lower() == "content-type"}
        response = requests.request(
            seen.method, base + seen.path, data=seen.body or None, headers=content_type, timeout=5
        )
        headers = {k: v for k, v in response.headers.items() if keep_header(k)}
        return Reply(response.status_code, response.content, headers)

    return answer
