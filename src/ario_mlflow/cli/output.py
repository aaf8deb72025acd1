"""Shared CLI conventions: exit codes and the errors that carry them."""

from __future__ import annotations

import click

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2


class NotFoundError(click.ClickException):
    """The thing asked for does not exist (exit code 2, one line, no traceback)."""

    exit_code = EXIT_USAGE
