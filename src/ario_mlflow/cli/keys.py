"""``ar-io-mlflow keys``: show (never create) or explicitly create the signing identity."""

from __future__ import annotations

import json

import click

from ario_mlflow.cli.output import NotFoundError
from ario_mlflow.keys import default_key_paths, load_signing_identity


@click.group()
def keys() -> None:
    """Show or create the Ed25519 signing identity."""


def _describe(create: bool, as_json: bool) -> None:
    identity = load_signing_identity(create=create)
    if identity is None:
        private, _ = default_key_paths()
        raise NotFoundError(
            f"no signing key yet (looked for {private}); "
            "run 'ar-io-mlflow keys init' or set ARIO_MLFLOW_SIGNING_KEY"
        )
    info = {
        "public_key": identity.public_key_hex,
        "fingerprint": identity.fingerprint,
        "source": identity.source,
    }
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    for label, value in info.items():
        click.echo(f"{label + ':':<13}{value}")


@keys.command("show")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def show(fmt: str) -> None:
    """Print the public key that signs this installation's records (creates nothing)."""
    _describe(create=False, as_json=fmt == "json")


@keys.command("init")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
def init(fmt: str) -> None:
    """Create the signing key if it does not exist yet (never overwrites), then show it."""
    _describe(create=True, as_json=fmt == "json")
