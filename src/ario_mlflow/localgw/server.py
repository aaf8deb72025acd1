"""HTTP front of the local gateway: Turbo upload, ar.io reads, GraphQL, Verify, faults.

Stdlib ``ThreadingHTTPServer`` speaking HTTP/1.1 with keep-alive. Every request is routed
to a route family (``upload``, ``status``, ``read``, ``graphql``, ``verify``) whose faults
are applied first, then to a handler that answers with a status code — bad input gets a
4xx, an unexpected failure a 500; the server itself never dies on input. Open connections
are tracked so that stopping the server really stops answering, keep-alive or not.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import ipaddress
import json
import re
import select
import socket
import sys
import threading
import time
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa

from ario_mlflow._version import __version__
from ario_mlflow.arweave.dataitem import parse_data_item, verify_data_item
from ario_mlflow.arweave.encoding import b64url_encode
from ario_mlflow.arweave.receipt import sign_receipt
from ario_mlflow.errors import DataItemError
from ario_mlflow.localgw.chain import SyntheticChain
from ario_mlflow.localgw.faults import Decision, FaultPlan
from ario_mlflow.localgw.gqlparse import GraphQLError
from ario_mlflow.localgw.graphql import execute
from ario_mlflow.localgw.store import ItemStore
from ario_mlflow.localgw.verify_api import verification_result
from ario_mlflow.proof.rsa_pss import derive_operator_address, public_jwk

#: Turbo upload token -> ANS-104 signature types it may pay for.
TOKEN_SIGNATURE_TYPES: dict[str, frozenset[int]] = {
    "arweave": frozenset({1}),
    "ario": frozenset({1}),
    "solana": frozenset({2}),
    "ed25519": frozenset({2}),
}
#: Turbo's free-tier size (source constant), reported by ``/info``.
FREE_UPLOAD_LIMIT_BYTES = 505 * 1024
DEFAULT_MAX_ITEM_BYTES = 10 * 1024 * 1024
_MAX_JSON_BODY = 1024 * 1024
_TX_ID = re.compile(r"[A-Za-z0-9_-]{43}")
_FAILURE_TEXT = {402: "Insufficient balance", 429: "Too Many Requests"}


@dataclass
class Response:
    """One HTTP answer."""

    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _text(status: int, message: str) -> Response:
    return Response(status, message.encode(), "text/plain; charset=utf-8")


def _json(status: int, value: Any) -> Response:
    return Response(status, json.dumps(value).encode(), "application/json; charset=utf-8")


def owner_address(owner: bytes) -> str:
    """Normalised Arweave address of an item owner: base64url(SHA-256(owner bytes))."""
    return b64url_encode(hashlib.sha256(owner).digest())


class GatewayServer(ThreadingHTTPServer):
    """The listening server plus the state every handler shares."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        *,
        store: ItemStore,
        key: rsa.RSAPrivateKey,
        chain: SyntheticChain,
        faults: FaultPlan,
        max_item_bytes: int = DEFAULT_MAX_ITEM_BYTES,
        log: Callable[[str], None] | None = None,
        listen: bool = True,
    ) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        # listen=False: no socket is bound; requests come through InProcessTransport
        super().__init__(address, _Handler, bind_and_activate=listen)
        self.store = store
        self.key = key
        self.chain = chain
        self.faults = faults
        self.max_item_bytes = max_item_bytes
        self.log = log
        self.stopping = threading.Event()
        self.operator = derive_operator_address(public_jwk(key.public_key())["n"])
        host, port = str(self.server_address[0]), int(self.server_address[1])
        self.label = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._active: dict[socket.socket, threading.Thread] = {}
        self._active_lock = threading.Lock()

    def track(self, connection: socket.socket) -> None:
        with self._active_lock:
            self._active[connection] = threading.current_thread()

    def untrack(self, connection: socket.socket) -> None:
        with self._active_lock:
            self._active.pop(connection, None)

    def close_connections(self, timeout: float = 2.0) -> None:
        """Cut every open connection and wait (bounded) for their handlers to finish."""
        with self._active_lock:
            active = list(self._active.items())
        for connection, _ in active:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for _, thread in active:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that vanished mid-answer is not worth a traceback on stderr.
        if self.log is not None:
            self.log(f"connection from {client_address} ended with an error")


Handler = Callable[["_Handler", list[str], bytes], Response]


@dataclass(frozen=True)
class _Route:
    family: str | None  # None: never faulted (the control route)
    handler: Handler
    args: list[str]
    reads_body: bool = False
    #: Largest body accepted; ``None`` means the server's data item limit.
    max_body: int | None = _MAX_JSON_BODY


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"ar-io-mlflow-localgw/{__version__}"
    server: GatewayServer
    timeout = 120  # idle keep-alive connections are dropped after this
    decision = Decision()  # the faults drawn for the request being handled

    # --- plumbing ----------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without NODELAY, Nagle + delayed ACK
        # would add ~40 ms to every keep-alive response.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.log is not None:
            self.server.log(f"{self.client_address[0]} {format % args}")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_OPTIONS(self) -> None:
        self._dispatch("OPTIONS")

    def _dispatch(self, method: str) -> None:
        if self.server.stopping.is_set():
            self.close_connection = True
            return
        try:
            route = _route(method, self.path)
            if isinstance(route, Response):
                self._discard_body()
                self._send(route, method)
                return
            decision = self.server.faults.decide(route.family) if route.family else Decision()
            if decision.blackhole:
                self._hold(str(route.family))
                return
            if decision.latency and self.server.stopping.wait(decision.latency):
                self.close_connection = True
                return
            if decision.redirect is not None:
                self._discard_body()
                self._send(Response(302, headers={"Location": decision.redirect}), method)
                return
            body = b""
            if route.reads_body or decision.fail_status is not None:
                limit = route.max_body
                read = self._read_body(self.server.max_item_bytes if limit is None else limit)
                if isinstance(read, Response):
                    self._send(read, method)
                    return
                body = read
            if decision.fail_status is not None:
                self._send(_failure(decision), method)
                return
            self.decision = decision
            response = route.handler(self, route.args, body)
            if route.family == "read" and response.status == 200:
                if decision.tamper:
                    response.body = _flip_one_byte(response.body)
                if decision.pad_bytes or decision.trickle:
                    self._send_hostile(response, method, decision)
                    return
            self._send(response, method)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # the server must answer, never die, on any input
            # A bug, not bad input: always say so, in one line.
            (self.server.log or _stderr)(f"internal error on {method} {self.path}: {exc!r}")
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._send(_json(500, {"error": "internal error"}), method)

    def _read_body(self, limit: int) -> bytes | Response:
        if self.headers.get("Transfer-Encoding", "").lower() not in ("", "identity"):
            self.close_connection = True
            return _text(411, "Length Required: chunked bodies are not supported")
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b""
        try:
            length = int(length_text)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            return _text(400, "Invalid Content-Length")
        if length > limit:
            self.close_connection = True
            return _text(413, f"Request body exceeds {limit} bytes")
        return self.rfile.read(length)

    def _discard_body(self) -> None:
        length_text = self.headers.get("Content-Length")
        if length_text and length_text.isdigit() and int(length_text) <= _MAX_JSON_BODY:
            self.rfile.read(int(length_text))
        elif length_text not in (None, "0"):
            self.close_connection = True

    def _hold(self, family: str) -> None:
        """Black hole: keep the connection open, answer nothing, until released."""
        self.close_connection = True
        connection = self.connection
        while not self.server.stopping.is_set() and self.server.faults.blackholed(family):
            try:
                readable, _, _ = select.select([connection], [], [], 0.1)
                if readable and not connection.recv(65536):
                    return  # the client gave up
            except (OSError, ValueError):
                return

    def _send(self, response: Response, method: str) -> None:
        self.send_response(response.status)
        if response.content_type is not None:
            self.send_header("Content-Type", response.content_type)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if "Content-Length" not in response.headers:
            self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if method != "HEAD" and response.body:
            self.wfile.write(response.body)
        self.wfile.flush()

    def _send_hostile(self, response: Response, method: str, decision: Decision) -> None:
        """A read answered slowly (one byte per ``trickle`` s) and/or padded with zeros."""
        self.close_connection = True
        length = len(response.body) + decision.pad_bytes
        headers = {**response.headers, "Content-Length": str(length)}
        self._send(Response(response.status, b"", response.content_type, headers), method)
        if method == "HEAD":
            return
        if decision.trickle:
            for byte in response.body + b"\0" * min(decision.pad_bytes, 1 << 16):
                if self.server.stopping.wait(decision.trickle):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            return
        self.wfile.write(response.body)
        chunk = b"\0" * (1 << 20)
        left = decision.pad_bytes
        while left > 0 and not self.server.stopping.is_set():
            self.wfile.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)

    # --- routes ------------------------------------------------------------------------

    def info(self, args: list[str], body: bytes) -> Response:
        return _json(
            200,
            {
                "version": __version__,
                "service": "ar-io-mlflow local gateway",
                "addresses": {"arweave": self.server.operator},
                "gateway": self.server.label,
                "freeUploadLimitBytes": FREE_UPLOAD_LIMIT_BYTES,
                "items": self.server.store.count(),
            },
        )

    def health(self, args: list[str], body: bytes) -> Response:
        return _json(200, {"status": "ok", "version": __version__})

    def upload(self, args: list[str], body: bytes) -> Response:
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != "application/octet-stream":
            return _text(400, "Invalid Content Type")
        token = args[0].lower() if args else None
        if token is not None and token not in TOKEN_SIGNATURE_TYPES:
            return _text(400, f"Token {args[0]!r} is not supported")
        try:
            item = parse_data_item(body)
        except DataItemError:
            return _text(400, "Invalid Data Item!")
        if not verify_data_item(item):
            return _text(400, "Invalid Data Item!")
        if token is not None and item.signature_type not in TOKEN_SIGNATURE_TYPES[token]:
            return _text(
                400,
                f"Invalid Data Item! signature type {item.signature_type} cannot be paid "
                f"for with token {token!r}",
            )
        received_at = time.time()
        owner = owner_address(item.owner)
        lie = self.decision
        if lie.drop:
            return Response(202)
        if lie.forge_receipt:
            forged = sign_receipt(
                data_item_id=item.id,
                owner_address=owner,
                key=self.server.key,
                timestamp_ms=int(received_at * 1000),
                deadline_height=self.server.chain.deadline_height(0),
                data_caches=(self.server.label,),
                fast_finality_indexes=(self.server.label,),
            )
            forged["signature"] = b64url_encode(b"\x01" * 512)
            return _json(200, forged)
        stored = self.server.store.add(
            item, owner_address=owner, token=token, received_at=received_at
        )
        if stored is None:
            return Response(202)
        receipt = sign_receipt(
            data_item_id=item.id,
            owner_address=owner,
            key=self.server.key,
            timestamp_ms=int(received_at * 1000),
            deadline_height=self.server.chain.deadline_height(stored.seq),
            data_caches=(self.server.label,),
            fast_finality_indexes=(self.server.label,),
        )
        self.server.store.set_receipt(item.id, receipt)
        return _json(200, receipt)

    def status(self, args: list[str], body: bytes) -> Response:
        item = self.server.store.get(args[0]) if _TX_ID.fullmatch(args[0]) else None
        if item is None:
            return _text(404, "TX doesn't exist")
        return _json(200, self.server.chain.status(item, time.time()))

    def raw(self, args: list[str], body: bytes) -> Response:
        tx_id = args[0]
        if not _TX_ID.fullmatch(tx_id):
            return _text(400, "Invalid transaction id")
        item = self.server.store.get(tx_id)
        if item is None:
            return _text(404, "Not Found")
        # Headers describe the data as accepted (its recorded digest), not as stored now,
        # so that corruption on disk or a tamper fault is detectable by the client.
        digest = bytes.fromhex(item.digest)
        return Response(
            200,
            item.data,
            item.content_type or "application/octet-stream",
            {
                "Content-Length": str(len(item.data)),
                "X-AR-IO-Digest": b64url_encode(digest),
                "Content-Digest": f"sha-256=:{b64encode(digest).decode()}:",
                "ETag": f'"{b64url_encode(digest)}"',
                "X-AR-IO-Data-Id": item.id,
                "X-AR-IO-Verified": "true",
                "X-AR-IO-Stable": str(self.server.chain.is_final(item, time.time())).lower(),
                "X-AR-IO-Trusted": "true",
                "X-AR-IO-Hops": "0",
                "Cache-Control": "public, max-age=2592000, immutable",
            },
        )

    def graphql(self, args: list[str], body: bytes) -> Response:
        try:
            request = json.loads(body) if body else None
        except (ValueError, RecursionError):
            return _json(400, {"errors": [{"message": "Body must be a JSON object."}]})
        if not isinstance(request, dict):
            return _json(400, {"errors": [{"message": "Body must be a JSON object."}]})
        try:
            result = execute(
                request.get("query"),
                store=self.server.store,
                chain=self.server.chain,
                variables=request.get("variables"),
                operation_name=request.get("operationName"),
            )
        except GraphQLError as exc:
            return _json(400, {"errors": [{"message": str(exc)}]})
        except RecursionError:
            return _json(400, {"errors": [{"message": "Query is too deeply nested."}]})
        return _json(200, result)

    def verify(self, args: list[str], body: bytes) -> Response:
        try:
            request = json.loads(body) if body else None
        except (ValueError, RecursionError):
            request = None
        tx_id = request.get("txId") if isinstance(request, dict) else None
        if not isinstance(tx_id, str) or not _TX_ID.fullmatch(tx_id):
            return _json(400, {"error": "txId must be a 43-character base64url transaction id"})
        result = verification_result(
            tx_id,
            self.server.store.get(tx_id),
            key=self.server.key,
            gateway=self.server.label,
            chain=self.server.chain,
            now=time.time(),
        )
        self.server.store.save_verification(result["verificationId"], tx_id, result)
        return _json(200, result)

    def verification(self, args: list[str], body: bytes) -> Response:
        result = self.server.store.get_verification(args[0])
        if result is None:
            return _json(404, {"error": "Verification not found"})
        return _json(200, result)

    def verification_page(self, args: list[str], body: bytes) -> Response:
        result = self.server.store.get_verification(args[0])
        if result is None:
            return _text(404, "Verification not found")
        rows = "".join(
            f"<tr><th>{html.escape(name)}</th><td>{html.escape(json.dumps(result.get(name)))}</td></tr>"
            for name in ("txId", "level", "existence", "authenticity", "owner", "timestamp")
        )
        page = (
            "<!doctype html><meta charset='utf-8'><title>Verification</title>"
            f"<h1>Local gateway verification</h1><table>{rows}</table>"
        )
        return Response(200, page.encode(), "text/html; charset=utf-8")

    def verification_pdf(self, args: list[str], body: bytes) -> Response:
        return _json(501, {"error": "the local gateway does not produce PDF reports"})

    def faults(self, args: list[str], body: bytes) -> Response:
        if not ipaddress.ip_address(self.client_address[0].split("%")[0]).is_loopback:
            return _json(403, {"error": "fault control is loopback-only"})
        if self.command == "POST":
            try:
                config = json.loads(body) if body else {}
                self.server.faults.replace(config)
            except (ValueError, RecursionError) as exc:
                return _json(400, {"error": f"invalid faults: {exc}"})
        return _json(200, {"faults": self.server.faults.snapshot()})


def _stderr(line: str) -> None:
    print(f"ar-io-mlflow gateway: {line}", file=sys.stderr, flush=True)


def _failure(decision: Decision) -> Response:
    status = int(decision.fail_status or 500)
    message = _FAILURE_TEXT.get(status) or HTTPStatus(status).phrase
    response = _text(status, message)
    if decision.retry_after is not None:
        response.headers["Retry-After"] = decision.retry_after
    return response


def _flip_one_byte(data: bytes) -> bytes:
    if not data:
        return data
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]


_FIXED_ROOTS = frozenset({"", "info", "health", "graphql", "__faults", "tx", "raw"})


def _route(method: str, target: str) -> _Route | Response:
    """Map a request to its route, or to the 404/405 answer."""
    route = _match(method, target)
    if route is not None:
        return route
    if any(_match(other, target) is not None for other in ("GET", "POST") if other != method):
        return _text(405, "Method Not Allowed")
    return _text(404, "Not Found")


def _match(method: str, target: str) -> _Route | None:
    path = urlsplit(target).path
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    parts = path.split("/")[1:] if path.startswith("/") else [path]
    read = method in ("GET", "HEAD")
    post = method == "POST"
    if parts[:1] == ["v1"] and parts[1:2] in (["tx"], ["info"], ["health"]):
        parts = parts[1:]  # Turbo serves its routes at root and under /v1
    match parts:
        case [""] | ["info"] if read:
            return _Route("upload", _Handler.info, [])
        case ["health"] if read:
            return _Route("verify", _Handler.health, [])
        case ["tx"] if post:
            return _Route("upload", _Handler.upload, [], True, None)
        case ["tx", token] if post:
            return _Route("upload", _Handler.upload, [token], True, None)
        case ["tx", tx_id, "status"] if read:
            return _Route("status", _Handler.status, [tx_id])
        case ["raw", tx_id] if read:
            return _Route("read", _Handler.raw, [tx_id])
        case ["graphql"] if post:
            return _Route("graphql", _Handler.graphql, [], True)
        case ["api", "v1", "verify"] if post:
            return _Route("verify", _Handler.verify, [], True)
        case ["api", "v1", "verify", verification_id] if read:
            return _Route("verify", _Handler.verification, [verification_id])
        case ["api", "v1", "verify", verification_id, "pdf"] if read:
            return _Route("verify", _Handler.verification_pdf, [verification_id])
        case ["verify", verification_id] if read:
            return _Route("verify", _Handler.verification_page, [verification_id])
        case ["__faults"] if read or post:
            return _Route(None, _Handler.faults, [], post)
        case [tx_id] if read and tx_id not in _FIXED_ROOTS:
            return _Route("read", _Handler.raw, [tx_id])
    return None


def handler_class() -> type[BaseHTTPRequestHandler]:
    """The request handler every connection gets (the in-process transport uses it too)."""
    return _Handler
