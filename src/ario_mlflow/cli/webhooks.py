"""``ar-io-mlflow webhooks serve|create``: anchor registry changes made outside our client."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Any

import click

SECRET_VARIABLE = "ARIO_MLFLOW_WEBHOOK_SECRET"
#: What MLflow is asked to send (the events the receiver anchors).
EVENTS = ("model_version.created", "model_version_alias.created", "model_version_alias.deleted")


def _secret() -> str:
    from ario_mlflow.errors import ConfigError

    secret = os.environ.get(SECRET_VARIABLE, "")
    if len(secret) < 16:
        raise ConfigError(
            f"{SECRET_VARIABLE} must hold the webhook's shared secret (16 characters or "
            "more), the same one given to MLflow's create_webhook"
        )
    return secret


@click.group("webhooks")
def webhooks() -> None:
    """Receive MLflow's registry webhooks and anchor the changes they report."""


@webhooks.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8787, show_default=True, type=int, help="0: any free port.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI (the server).")
@click.option(
    "--tolerance",
    default=300.0,
    show_default=True,
    type=float,
    help="Seconds a delivery's timestamp may be off before it is refused as stale.",
)
@click.option(
    "--flush-timeout",
    default=10.0,
    show_default=True,
    type=float,
    help="On SIGTERM/SIGINT, seconds to finish uploads (the rest stays journaled).",
)
def serve(
    host: str, port: int, tracking_uri: str | None, tolerance: float, flush_timeout: float
) -> None:
    """Listen for MLflow webhook deliveries (secret: ARIO_MLFLOW_WEBHOOK_SECRET).

    Each delivery is checked (signature, timestamp, never seen before), journaled, then
    anchored as a model_registered or alias_changed record. Forged, stale and replayed
    deliveries are refused and logged.
    """
    from ario_mlflow.lifecycle.webhook_server import WebhookReceiver, WebhookServer

    secret = _secret()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log = logging.getLogger("ario_mlflow.webhooks")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    from ario_mlflow.lifecycle.alias_records import last_recorded_target
    from ario_mlflow.verify.context import VerifyContext

    try:
        receiver = WebhookReceiver(secret, tracking_uri=tracking_uri, tolerance=tolerance)
        context = VerifyContext.configured(anchor=receiver.anchor)
        receiver.last_target = last_recorded_target(
            receiver.client, receiver.anchor, context.trusted_keys
        )
        server = WebhookServer(receiver, host, port)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
    stopping = threading.Event()

    def stop(signum: int, frame: Any) -> None:
        del frame
        if not stopping.is_set():
            stopping.set()
            log.info("%s: no new deliveries; finishing", signal.Signals(signum).name)
            threading.Thread(target=server.httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    click.echo(f"listening on {server.url} (give MLflow this URL in create_webhook)")
    sys.stdout.flush()
    server.serve_forever()
    server.httpd.server_close()
    server.receiver.close(flush_timeout)
    click.echo("stopped")


@webhooks.command("create")
@click.argument("url")
@click.option("--name", default="ar-io-mlflow", show_default=True, help="The webhook's name.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI (the server).")
def create(url: str, name: str, tracking_uri: str | None) -> None:
    """Register the receiver at URL with the MLflow server (its registry events, signed
    with ARIO_MLFLOW_WEBHOOK_SECRET)."""
    from ario_mlflow.cli.store import open_client

    secret = _secret()
    client, store = open_client(tracking_uri)
    hook = client.create_webhook(name=name, url=url, events=list(EVENTS), secret=secret)
    click.echo(f"webhook {hook.webhook_id} on {store}: {', '.join(EVENTS)} -> {url}")
