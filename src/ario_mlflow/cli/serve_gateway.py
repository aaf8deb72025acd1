"""``ar-io-mlflow gateway``: run the local Turbo upload + ar.io gateway in the foreground."""

from __future__ import annotations

import click

from ario_mlflow.config import load_settings
from ario_mlflow.localgw.local_gateway import DEFAULT_FINALIZE_AFTER
from ario_mlflow.localgw.runner import (
    FAULT_OPTION_HELP,
    build_gateway,
    combine_faults,
    serve,
)
from ario_mlflow.localgw.server import DEFAULT_MAX_ITEM_BYTES


@click.command("gateway")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="0 picks a free port.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where items (SQLite) and the gateway wallet are kept "
    "[default: $ARIO_MLFLOW_HOME/gateway].",
)
@click.option(
    "--key-bits",
    type=click.IntRange(2048),
    default=4096,
    show_default=True,
    help="Size of a newly generated gateway wallet.",
)
@click.option(
    "--finalize-after",
    type=click.FloatRange(0),
    default=DEFAULT_FINALIZE_AFTER,
    show_default=True,
    help="Seconds before an item reports FINALIZED.",
)
@click.option(
    "--max-item-bytes",
    type=click.IntRange(1),
    default=DEFAULT_MAX_ITEM_BYTES,
    show_default=True,
    help="Largest data item accepted.",
)
@click.option("--fault", "fault_options", multiple=True, metavar="SPEC", help=FAULT_OPTION_HELP)
@click.option(
    "--faults",
    "faults_json",
    metavar="JSON",
    help='Faults as JSON, e.g. \'{"read": {"tamper": true}}\' (as POST /__faults).',
)
@click.option("--fault-seed", type=int, default=None, help="Seed for fail_rate draws.")
@click.option("--allow-remote", is_flag=True, help="Allow binding a non-loopback address.")
@click.option("--log-requests", is_flag=True, help="Log every request to stderr.")
def gateway(
    *,
    host: str,
    port: int,
    data_dir: str | None,
    key_bits: int,
    finalize_after: float,
    max_item_bytes: int,
    fault_options: tuple[str, ...],
    faults_json: str | None,
    fault_seed: int | None,
    allow_remote: bool,
    log_requests: bool,
) -> None:
    """Run a local Turbo upload + ar.io gateway on loopback until SIGINT/SIGTERM.

    Prints one line, ``ar-io-mlflow gateway listening on http://HOST:PORT``, once ready.
    Point ARIO_MLFLOW_UPLOAD_URL and ARIO_MLFLOW_GATEWAYS at that URL.
    """
    try:
        faults = combine_faults(faults_json, fault_options)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--fault/--faults") from None
    if data_dir is None:
        data_dir = str(load_settings().home / "gateway")
    instance = build_gateway(
        data_dir=data_dir,
        host=host,
        port=port,
        key_bits=key_bits,
        finalize_after=finalize_after,
        faults=faults,
        fault_seed=fault_seed,
        allow_remote=allow_remote,
        max_item_bytes=max_item_bytes,
        log=(lambda line: click.echo(line, err=True)) if log_requests else None,
    )
    try:
        serve(instance, announce=click.echo, describe=lambda line: click.echo(line, err=True))
    except OSError as exc:
        raise click.ClickException(f"cannot serve on {host}:{port}: {exc}") from None
