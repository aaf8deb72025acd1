"""The webhook receiver against a hostile network client, over real sockets.

A real ``WebhookServer`` (stdlib ``ThreadingHTTPServer``) runs in this process with a real
MLflow store and the local gateway behind its client. Clients send what an attacker or a
broken proxy would: bodies over the cap, lengths that are missing, negative or not numbers,
chunked bodies, nothing at all, non-UTF-8 bytes under a valid signature, JSON that is not a
delivery, huge headers, the same genuine delivery from ten threads at once. After each
attack the receiver must still serve: a genuine delivery (signed by MLflow's own signing
code) is still taken, and nothing the attack sent was journaled.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.client
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from mlflow.webhooks.delivery import _generate_hmac_signature

from ario_mlflow.lifecycle.webhook_server import WebhookReceiver, WebhookServer
from ario_mlflow.lifecycle.webhooks import MAX_BODY_BYTES
from ario_mlflow.outbox.journal import Journal

SECRET = "hostile-tests-shared-secret-0123456789"
ALIAS_KEY = "alias:credit:champion"


def _body(
    data: dict[str, Any] | None = None,
    *,
    entity: str = "model_version_alias",
    action: str = "created",
    sent_at: str | None = None,
    pad: int = 0,
) -> str:
    message: dict[str, Any] = {
        "entity": entity,
        "action": action,
        "timestamp": sent_at or datetime.now(timezone.utc).isoformat(),
        "data": data or {"name": "credit", "alias": "champion", "version": "1"},
    }
    if pad:
        message["padding"] = "x" * pad
    return json.dumps(message)


def _headers(body: str | bytes, delivery_id: str | None = None) -> dict[str, str]:
    """MLflow's headers for ``body`` (a str is signed by MLflow's own function; bytes, which
    MLflow cannot send, by the same formula over the raw bytes)."""
    delivery_id = delivery_id or str(uuid.uuid4())
    stamp = str(int(time.time()))
    if isinstance(body, str):
        signature = _generate_hmac_signature(SECRET, delivery_id, stamp, body)
    else:
        signed = f"{delivery_id}.{stamp}.".encode() + body
        digest = hmac.new(SECRET.encode(), signed, hashlib.sha256).digest()
        signature = "v1," + base64.b64encode(digest).decode()
    return {
        "Content-Type": "application/json",
        "X-MLflow-Delivery-Id": delivery_id,
        "X-MLflow-Timestamp": stamp,
        "X-MLflow-Signature": signature,
    }


def _address(server: WebhookServer) -> tuple[str, int]:
    host, port = server.httpd.server_address[:2]
    return str(host), int(port)


def _post(
    server: WebhookServer, body: str | bytes, headers: dict[str, str], path: str = "/"
) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection(*_address(server), timeout=15)
    try:
        data = body.encode() if isinstance(body, str) else body
        connection.request("POST", path, body=data, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else {}
    finally:
        connection.close()


def _raw(server: WebhookServer, request: bytes, timeout: float = 10.0) -> bytes:
    """Send ``request`` as is on a fresh socket; everything the server answers until it
    closes (b"" if it closed without a word)."""
    with socket.create_connection(_address(server), timeout=timeout) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        chunks = []
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    return b"".join(chunks)


def _handler(server: WebhookServer) -> Any:
    """The server's request handler class (its ``timeout`` is the product's setting)."""
    return server.httpd.RequestHandlerClass


def _status(answer: bytes) -> int:
    """The status of a raw answer (http.server answers a request line it cannot parse
    as HTTP/0.9 would: the error page alone, no status line)."""
    if answer.startswith(b"HTTP/1."):
        return int(answer.split(b" ", 2)[1])
    marker = b"<p>Error code: "
    assert marker in answer, answer[:200]
    return int(answer.split(marker, 1)[1][:3])


def _journaled(home: Path) -> tuple[int, int]:
    """``(tasks, delivery ids)`` in the installation's journal."""
    db = Journal.at_home(home).connection()
    tasks = db.execute("SELECT count(*) FROM writebacks WHERE record_id IS NULL").fetchone()[0]
    onces = db.execute("SELECT count(*) FROM once_keys").fetchone()[0]
    return int(tasks), int(onces)


def _request(headers: dict[str, str], body: bytes = b"", method: str = "POST") -> bytes:
    head = f"{method} / HTTP/1.1\r\nHost: receiver\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode("latin-1") + b"\r\n" + body


@pytest.fixture
def server(mlflow_store: str, local_gateway: Any) -> Iterator[WebhookServer]:
    running = WebhookServer(WebhookReceiver(SECRET), "127.0.0.1", 0).start()
    try:
        yield running
    finally:
        running.stop(flush_timeout=1.0)


def _still_serves(server: WebhookServer, home: Path) -> None:
    """The receiver survived: it answers health, and a genuine delivery is taken and
    journaled (one more task, one more delivery id)."""
    assert server._thread is not None
    assert server._thread.is_alive()
    connection = http.client.HTTPConnection(*_address(server), timeout=10)
    connection.request("GET", "/health")
    assert connection.getresponse().status == 200
    connection.close()
    before = _journaled(home)
    body = _body()
    status, answer = _post(server, body, _headers(body))
    assert (status, answer["status"]) == (200, "accepted"), answer
    tasks, onces = _journaled(home)
    assert (tasks, onces) == (before[0] + 1, before[1] + 1)


# --- bodies and lengths -------------------------------------------------------------


def test_a_body_over_the_cap_is_refused_unread_and_nothing_is_journaled(
    server: WebhookServer, ario_home: Path
) -> None:
    body = _body(pad=MAX_BODY_BYTES)  # a genuine, signed delivery, just too large
    assert len(body) > MAX_BODY_BYTES
    headers = {**_headers(body), "Content-Length": str(len(body))}
    started = time.monotonic()
    answer = _raw(server, _request(headers))  # the server must not wait for the body
    assert _status(answer) == 413
    assert b"too_large" in answer
    assert time.monotonic() - started < 5
    # and with the body actually sent (the server may reset the socket mid-send)
    answer = _raw(server, _request(headers, body.encode()))
    assert answer == b"" or _status(answer) == 413
    assert _journaled(ario_home) == (0, 0)
    _still_serves(server, ario_home)


def test_a_body_of_exactly_the_cap_is_taken(server: WebhookServer, ario_home: Path) -> None:
    bare = len(_body(pad=1)) - 1
    body = _body(pad=MAX_BODY_BYTES - bare)
    assert len(body.encode()) == MAX_BODY_BYTES
    status, answer = _post(server, body, _headers(body))
    assert (status, answer["status"]) == (200, "accepted"), answer
    assert len(Journal.at_home(ario_home).tasks_for(ALIAS_KEY)) == 1


@pytest.mark.parametrize(
    ("length", "expected"),
    [
        (None, {411}),
        ("", {411}),
        ("abc", {411}),
        ("12abc", {411}),
        ("0x10", {411}),
        ("-1", {400, 411, 413}),
        ("-99999999999999999999", {400, 411, 413}),
        ("99999999999999999999999999", {413}),
    ],
)
def test_a_missing_negative_or_garbled_length_is_refused(
    server: WebhookServer, ario_home: Path, length: str | None, expected: set[int]
) -> None:
    body = _body()
    headers = _headers(body)
    if length is not None:
        headers["Content-Length"] = length
    answer = _raw(server, _request(headers, body.encode()))
    assert _status(answer) in expected, answer[:300]
    assert _journaled(ario_home) == (0, 0)
    _still_serves(server, ario_home)


def test_a_chunked_body_without_a_length_is_refused(server: WebhookServer, ario_home: Path) -> None:
    body = _body().encode()
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    headers = {**_headers(body.decode()), "Transfer-Encoding": "chunked"}
    answer = _raw(server, _request(headers, chunked))
    assert _status(answer) == 411, answer[:300]
    assert _journaled(ario_home) == (0, 0)
    _still_serves(server, ario_home)


def test_a_body_shorter_than_its_length_times_out_without_blocking_others(
    server: WebhookServer, ario_home: Path
) -> None:
    handler = _handler(server)
    assert handler.timeout == 10  # the product's setting ...
    handler.timeout = 1  # ... shortened here so the test does not wait 10 s
    body = _body().encode()
    headers = {**_headers(body.decode()), "Content-Length": str(len(body) + 100)}
    with socket.create_connection(_address(server), timeout=10) as slow:
        slow.sendall(_request(headers, body))  # 100 bytes short, then silence
        _still_serves(server, ario_home)  # others are served meanwhile
        started = time.monotonic()
        leftover = slow.recv(65536)
        # the server gave up on the slow client and closed it, journaling nothing from it
        assert leftover == b"" or _status(leftover) >= 400
        assert time.monotonic() - started < 8
    assert _journaled(ario_home) == (1, 1)  # only _still_serves' delivery


def test_a_client_that_connects_and_says_nothing_holds_nobody_up(
    server: WebhookServer, ario_home: Path
) -> None:
    handler = _handler(server)
    assert handler.timeout == 10
    handler.timeout = 1
    idle = [socket.create_connection(_address(server), timeout=10) for _ in range(20)]
    try:
        _still_serves(server, ario_home)
        started = time.monotonic()
        for sock in idle:
            leftover = sock.recv(65536)
            assert leftover == b"" or _status(leftover) == 408
        assert time.monotonic() - started < 8  # each was dropped after its timeout
    finally:
        for sock in idle:
            sock.close()
    _still_serves(server, ario_home)


# --- signed bodies that are not deliveries ----------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe\x00garbage\x80\x81",  # not UTF-8 (nor UTF-16: odd length)
        b'{"entity": "model_version_alias", "action": "created", "data": {"name": "\xc3"}}',
        b"\xed\xa0\x80",  # an encoded surrogate: invalid UTF-8
        b"",
    ],
    ids=["garbage", "truncated-utf8", "surrogate", "empty"],
)
def test_signed_bytes_that_are_not_utf8_json_are_malformed(
    server: WebhookServer, ario_home: Path, body: bytes
) -> None:
    status, answer = _post(server, body, _headers(body))
    assert (status, answer.get("reason")) == (400, "malformed"), answer
    assert _journaled(ario_home) == (0, 0)
    _still_serves(server, ario_home)


NOT_DELIVERIES = [
    "[]",
    '[{"entity": "model_version_alias", "action": "created", "data": {}}]',
    '"model_version_alias.created"',
    "null",
    "42",
    "true",
    '{"entity": "model_version_alias", "action": "created", "data": []}',
    '{"entity": "model_version_alias", "action": "created", "data": null}',
    '{"entity": "model_version_alias", "action": "created"}',
    '{"entity": "model_version_alias", "action": "created", "data": '
    '{"name": "credit", "alias": "champion", "version": true}}',
    '{"entity": "model_version_alias", "action": "created", "data": '
    '{"name": "credit", "alias": "champion", "version": 1.5}}',
    '{"entity": "model_version_alias", "action": "created", "data": '
    '{"name": "credit", "alias": "champion", "version": NaN}}',
    '{"entity": "model_version_alias", "action": "created", "data": '
    '{"name": "", "alias": "champion", "version": "1"}}',
    '{"entity": "model_version_alias", "action": "created", "data": '
    '{"name": ["credit"], "alias": "champion", "version": "1"}}',
]


def test_signed_json_that_is_not_a_delivery_is_malformed(
    server: WebhookServer, ario_home: Path
) -> None:
    for body in NOT_DELIVERIES:
        status, answer = _post(server, body, _headers(body))
        assert (status, answer.get("reason")) == (400, "malformed"), (body, answer)
    assert _journaled(ario_home) == (0, 0)
    _still_serves(server, ario_home)


def test_signed_deeply_nested_json_is_answered_as_malformed(
    server: WebhookServer, ario_home: Path
) -> None:
    """Under the size cap, 100 000 nested arrays make ``json.loads`` raise RecursionError,
    which is not a ValueError: the receiver must still answer (400), not drop the
    connection with a traceback."""
    nested = "[" * 100_000 + "]" * 100_000
    body = (
        '{"entity": "model_version_alias", "action": "created", "data": {"name": "credit", '
        f'"alias": "champion", "version": "1", "deep": {nested}}}}}'
    )
    assert len(body) < MAX_BODY_BYTES
    answer = _raw(
        server, _request({**_headers(body), "Content-Length": str(len(body))}, body.encode())
    )
    assert _journaled(ario_home) == (0, 0)
    _still_serves(server, ario_home)  # the server survives it ...
    # ... but the sender must be told
    assert answer, "the receiver closed the connection without answering"
    assert _status(answer) == 400
    assert b"malformed" in answer


@pytest.mark.parametrize(
    "sent_at",
    [
        (datetime.now(timezone.utc) - timedelta(days=30)).isoformat(),
        (datetime.now(timezone.utc) + timedelta(days=3650)).isoformat(),
        "yesterday",
    ],
    ids=["a-month-ago", "ten-years-ahead", "not-a-time"],
)
def test_a_delivery_cannot_date_its_change_outside_the_freshness_window(
    server: WebhookServer, ario_home: Path, sent_at: str
) -> None:
    """The freshness window is checked on the header's timestamp, but the record's
    ``changed_at`` (the time the history sorts by) comes from the payload's own
    ``timestamp``. A delivery fresh by its header but dated a month back (or ten years
    ahead, or not a time at all) must be refused, or its change dated within the window."""
    body = _body(sent_at=sent_at)
    status, answer = _post(server, body, _headers(body))
    if status == 200:
        ((_, _, spec),) = Journal.at_home(ario_home).tasks_for(ALIAS_KEY)
        changed_at = spec["observed"]["changed_at"]
        from ario_mlflow.proof.alias_history import parse_time

        try:
            moment = parse_time(changed_at)
        except ValueError:
            pytest.fail(f"anchored a changed_at the history cannot read: {changed_at!r}")
        assert abs((moment - datetime.now(timezone.utc)).total_seconds()) <= 300, (
            f"a delivery fresh by its header was anchored as changed at {changed_at}"
        )
    else:
        assert status == 400, answer
        assert _journaled(ario_home) == (0, 0)


# --- headers ----------------------------------------------------------------------


def test_huge_headers_are_refused_without_harm(server: WebhookServer, ario_home: Path) -> None:
    body = _body()
    # one header line over http.server's 64 KiB line limit
    long_line = {**_headers(body), "X-Junk": "a" * 70_000, "Content-Length": str(len(body))}
    answer = _raw(server, _request(long_line, body.encode()))
    assert answer == b"" or _status(answer) in (400, 413, 431)
    # more headers than http.server takes (100)
    many = {**_headers(body), "Content-Length": str(len(body))}
    many.update({f"X-Junk-{n}": "x" for n in range(150)})
    answer = _raw(server, _request(many, body.encode()))
    assert answer == b"" or _status(answer) in (400, 413, 431)
    # a signature header of 60 KB of candidates (under the line limit): checked, refused
    garbage = " ".join(["v1," + base64.b64encode(bytes(32)).decode()] * 1300)
    assert 55_000 < len(garbage) < 65_000
    forged = {**_headers(body), "X-MLflow-Signature": garbage}
    started = time.monotonic()
    status, answer_json = _post(server, body, forged)
    assert (status, answer_json.get("reason")) == (401, "forged")
    assert time.monotonic() - started < 5
    # the real signature hidden among junk candidates is still found
    genuine = _headers(body)
    genuine["X-MLflow-Signature"] = "v2,abc v1,@@@ " + genuine["X-MLflow-Signature"]
    status, answer_json = _post(server, body, genuine)
    assert (status, answer_json["status"]) == (200, "accepted")
    assert _journaled(ario_home) == (1, 1)
    _still_serves(server, ario_home)


def test_a_genuine_delivery_with_a_very_long_id_is_taken_once(
    server: WebhookServer, ario_home: Path
) -> None:
    body = _body()
    headers = _headers(body, delivery_id="d" * 30_000)
    assert _post(server, body, headers)[0] == 200
    assert _post(server, body, headers)[0] == 409
    assert len(Journal.at_home(ario_home).tasks_for(ALIAS_KEY)) == 1


# --- replays --------------------------------------------------------------------------


def test_the_same_delivery_from_ten_threads_is_taken_exactly_once(
    server: WebhookServer, ario_home: Path
) -> None:
    body = _body()
    headers = _headers(body)
    start = threading.Barrier(10)
    results: list[tuple[int, dict[str, Any]]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def deliver() -> None:
        try:
            start.wait(10)
            result = _post(server, body, headers)
        except BaseException as exc:
            with lock:
                errors.append(exc)
            return
        with lock:
            results.append(result)

    threads = [threading.Thread(target=deliver) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] + [409] * 9, results
    assert all(a["reason"] == "replayed" for s, a in results if s == 409)
    assert len(Journal.at_home(ario_home).tasks_for(ALIAS_KEY)) == 1
    assert _journaled(ario_home) == (1, 1)
    _still_serves(server, ario_home)


def test_ten_different_deliveries_at_once_are_all_taken(
    server: WebhookServer, ario_home: Path
) -> None:
    deliveries = []
    for version in range(1, 11):
        body = _body({"name": "credit", "alias": "champion", "version": str(version)})
        deliveries.append((body, _headers(body)))
    start = threading.Barrier(10)
    statuses: list[int] = []
    lock = threading.Lock()

    def deliver(body: str, headers: dict[str, str]) -> None:
        start.wait(10)
        status = _post(server, body, headers)[0]
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=deliver, args=d) for d in deliveries]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert statuses == [200] * 10
    tasks = Journal.at_home(ario_home).tasks_for(ALIAS_KEY)
    assert sorted(int(spec["alias_version"]) for _, _, spec in tasks) == list(range(1, 11))


def test_a_replay_to_a_restarted_receiver_is_still_refused(
    mlflow_store: str, local_gateway: Any, ario_home: Path
) -> None:
    body = _body()
    headers = _headers(body)
    first = WebhookServer(WebhookReceiver(SECRET), "127.0.0.1", 0).start()
    try:
        assert _post(first, body, headers)[0] == 200
    finally:
        first.stop(flush_timeout=1.0)
    second = WebhookServer(WebhookReceiver(SECRET), "127.0.0.1", 0).start()
    try:
        status, answer = _post(second, body, headers, path="/some/other/path")
        assert (status, answer.get("reason")) == (409, "replayed")
    finally:
        second.stop(flush_timeout=1.0)
    assert len(Journal.at_home(ario_home).tasks_for(ALIAS_KEY)) == 1


# --- other methods and paths -----------------------------------------------------------


ELSEWHERE = [
    ("GET", "/", 200),
    ("GET", "/health", 200),
    ("GET", "/admin", 404),
    ("GET", "/../../etc/passwd", 404),
    ("GET", "/health/../../etc/passwd", 404),
    ("GET", "/%00", 404),
    ("GET", "/health?x=" + "y" * 5000, 404),
    ("PUT", "/", 501),
    ("DELETE", "/", 501),
    ("HEAD", "/", 501),
    ("OPTIONS", "/", 501),
]


def test_other_methods_and_paths_are_answered_and_harmless(
    server: WebhookServer, ario_home: Path
) -> None:
    for method, path, expected in ELSEWHERE:
        connection = http.client.HTTPConnection(*_address(server), timeout=10)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            response.read()
            assert response.status == expected, (method, path[:40])
        finally:
            connection.close()
    assert _journaled(ario_home) == (0, 0)
    _still_serves(server, ario_home)


GARBAGE = [
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64),  # a TLS ClientHello
    b"GARBAGE\r\n\r\n",
    b"POST / HTTP/9.9\r\n\r\n",
    b"POST " + b"/" * 70_000 + b" HTTP/1.1\r\n\r\n",
    b"\r\n" * 1000,
    b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 999999999\r\n\r\nhello",
]


def test_protocol_garbage_does_not_stop_the_receiver(
    server: WebhookServer, ario_home: Path
) -> None:
    _handler(server).timeout = 1  # the TLS hello waits for a line end
    for request in GARBAGE:
        answer = _raw(server, request)
        assert answer == b"" or _status(answer) >= 400, request[:40]
    assert _journaled(ario_home) == (0, 0)
    _still_serves(server, ario_home)
