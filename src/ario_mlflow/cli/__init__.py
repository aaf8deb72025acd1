"""``ar-io-mlflow`` command line: thin click commands over the library, loaded lazily.

Subcommands live in their own modules and are imported only when invoked, so
``ar-io-mlflow --help`` never imports MLflow. Errors we raise on purpose (``ArioError``)
become one clear line on stderr and exit code 2; no traceback for user mistakes.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from ario_mlflow._version import __version__

# command name -> (module, attribute, one-line help shown by --help without importing)
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "keys": ("ario_mlflow.cli.keys", "keys", "Show or create the Ed25519 signing identity."),
    "gateway": (
        "ario_mlflow.cli.serve_gateway",
        "gateway",
        "Run a local Turbo upload + ar.io gateway on loopback.",
    ),
    "verify": (
        "ario_mlflow.cli.verify",
        "verify",
        "Verify an anchored run, model, trace, decision.",
    ),
    "demo": ("ario_mlflow.cli.demo", "demo", "Run the whole lifecycle locally (no network)."),
    "audit": ("ario_mlflow.cli.audit", "audit", "Verify the whole lineage of a model version."),
    "export": ("ario_mlflow.cli.bundle", "export", "Write a portable evidence bundle."),
    "verify-bundle": (
        "ario_mlflow.cli.bundle",
        "verify_bundle_command",
        "Verify an evidence bundle offline.",
    ),
    "sync": (
        "ario_mlflow.cli.journal",
        "sync",
        "Upload journaled records and finish write-backs now.",
    ),
    "outbox": ("ario_mlflow.cli.journal", "outbox", "List records and write-backs not done yet."),
    "history": (
        "ario_mlflow.cli.history",
        "history",
        "The verified timeline of NAME@ALIAS (--at TIME).",
    ),
    "reconcile": (
        "ario_mlflow.cli.reconcile",
        "reconcile",
        "Anchor registry changes that no record covers yet.",
    ),
    "webhooks": (
        "ario_mlflow.cli.webhooks",
        "webhooks",
        "Receive MLflow registry webhooks and anchor them.",
    ),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = _COMMANDS.get(cmd_name)
        if entry is None:
            return None
        command: click.Command = getattr(importlib.import_module(entry[0]), entry[1])
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Listed from the table, so top-level --help imports none of the subcommands.
        rows = [(name, entry[2]) for name, entry in sorted(_COMMANDS.items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ar-io-mlflow")
def cli() -> None:
    """Verifiable, Arweave-anchored provenance for MLflow runs, models and predictions."""


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point."""
    from ario_mlflow.errors import ArioError

    try:
        return cli.main(args=argv, prog_name="ar-io-mlflow", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except ArioError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except Exception as exc:
        # MLflow's own errors (no tracking server, bad URI …) are user-facing: one line.
        # Subclasses too (UnsupportedModelRegistryStoreURIException for an unknown scheme).
        if not any(cls.__name__ == "MlflowException" for cls in type(exc).__mro__):
            raise
        from ario_mlflow.cli.store import mlflow_error_line

        click.echo(f"error: {mlflow_error_line(exc)}", err=True)
        sys.exit(2)
