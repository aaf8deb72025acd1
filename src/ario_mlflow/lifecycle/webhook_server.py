"""The webhook receiver: an HTTP endpoint MLflow's registry webhooks post to.

Each authentic, fresh, first-seen delivery becomes a journaled registry task *before* the
receiver answers 200, so a delivery MLflow was told we took is never lost (a crash after
that leaves the task for the next receiver, ``sync`` or ``reconcile``); a delivery we
could not journal gets a 503, which MLflow retries. Rejections (401/400/409) are never
retried by MLflow, and each one is logged with its reason.
"""

from __future__ import annotations

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ario_mlflow.errors import ArioError, WebhookRejected
from ario_mlflow.lifecycle.registry import ArioMlflowClient
from ario_mlflow.lifecycle.webhooks import (
    DEFAULT_TOLERANCE,
    MAX_BODY_BYTES,
    TargetLookup,
    check_delivery,
    delivery_once_key,
    registry_event,
)
from ario_mlflow.outbox.workers import run_task_now

logger = logging.getLogger("ario_mlflow.webhooks")


class WebhookReceiver:
    """Checks deliveries and journals the registry events they report."""

    def __init__(
        self,
        secret: str,
        *,
        tracking_uri: str | None = None,
        registry_uri: str | None = None,
        tolerance: float = DEFAULT_TOLERANCE,
        last_target: TargetLookup | None = None,
    ) -> None:
        from ario_mlflow.lifecycle.handlers import install

        if not secret:
            raise ValueError("a webhook secret is required")
        install()
        self.secret = secret
        self.tolerance = tolerance
        self.last_target = last_target
        self.client = ArioMlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)
        _, self.anchor = self.client._ario_components()
        self.journal = self.client._ario_journal()
        self.anchor.wake_workers()  # they also run tasks scheduled for later
        self._tasks = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ario-webhook")
        self._scheduled: list[int] = []

    def handle(self, headers: dict[str, str], body: bytes, peer: str) -> tuple[int, dict[str, Any]]:
        """``(HTTP status, JSON answer)`` for one delivery."""
        try:
            delivery = check_delivery(headers, body, self.secret, tolerance=self.tolerance)
            event = registry_event(delivery, self.journal, self.last_target)
        except WebhookRejected as exc:
            logger.warning("REJECTED %s delivery from %s: %s", exc.reason, peer, exc)
            return exc.status, {"status": "rejected", "reason": exc.reason, "detail": str(exc)}
        if event is None:
            logger.info("ignored %s (delivery %s)", delivery.event, delivery.delivery_id)
            return 200, {"status": "ignored", "event": delivery.event}
        try:
            task_id = self.client._ario_journal_event(
                event.event,
                event.name,
                event.key,
                event.fields,
                once=delivery_once_key(delivery.delivery_id),
                not_before=event.not_before,
            )
        except ArioError as exc:  # the journal is unusable (full disk …): MLflow retries
            logger.error("could not journal delivery %s: %s", delivery.delivery_id, exc)
            return 503, {"status": "error", "detail": str(exc)}
        if task_id is None:
            logger.warning(
                "REJECTED replayed delivery from %s: %s was already taken",
                peer,
                delivery.delivery_id,
            )
            return 409, {"status": "rejected", "reason": "replayed"}
        logger.info(
            "accepted %s: %s (delivery %s)", delivery.event, event.describe(), delivery.delivery_id
        )
        if event.not_before:
            self._scheduled.append(task_id)  # the upload workers run it when due
        else:
            self._tasks.submit(run_task_now, self.journal, task_id)
        return 200, {"status": "accepted", "task": task_id}

    def close(self, timeout: float) -> None:
        """Finish the tasks started here, then give the upload workers ``timeout`` s."""
        self._tasks.shutdown(wait=True)
        for task_id in self._scheduled:  # due later: run them now rather than on next start
            run_task_now(self.journal, task_id)
        unfinished = self.anchor.flush(timeout)
        if unfinished:
            logger.warning(
                "%d record(s) not uploaded yet; they stay journaled (ar-io-mlflow sync)",
                unfinished,
            )


def _handler_for(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "ar-io-mlflow-webhooks"
        timeout = 10  # seconds a client may take to send its request (no slow-drip holds)

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/") in ("", "/health"):
                self._answer(200, {"status": "ok"})
            else:
                self._answer(404, {"status": "not_found"})

        def do_POST(self) -> None:
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self._answer(411, {"status": "rejected", "reason": "malformed"})
                return
            if length < 0 or length > MAX_BODY_BYTES:
                self._answer(413, {"status": "rejected", "reason": "too_large"})
                return
            body = self.rfile.read(length)
            status, answer = receiver.handle(
                dict(self.headers.items()), body, self.address_string()
            )
            self._answer(status, answer)

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("%s " + format, self.address_string(), *args)

    return Handler


class WebhookServer:
    """A :class:`WebhookReceiver` behind a threaded HTTP server."""

    def __init__(self, receiver: WebhookReceiver, host: str = "127.0.0.1", port: int = 0) -> None:
        self.receiver = receiver
        self.httpd = ThreadingHTTPServer((host, port), _handler_for(receiver))
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}/"

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def start(self) -> WebhookServer:
        """Serve in a background thread (tests, embedding)."""
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self, flush_timeout: float = 10.0) -> None:
        """Stop taking deliveries, then finish what was taken (bounded by ``flush_timeout``)."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.receiver.close(flush_timeout)
