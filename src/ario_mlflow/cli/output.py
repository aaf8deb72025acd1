"""Shared CLI conventions: exit codes and the errors that carry them."""

from __future__ import annotations

import re

import click

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2


class NotFoundError(click.ClickException):
    """The thing asked for does not exist (exit code 2, one line, no traceback)."""

    exit_code = EXIT_USAGE


_CAUSE = re.compile(
    r"HTTP(?:S)?ConnectionPool\(host='(?P<host>[^']*)', port=(?P<port>\d+)\): "
    r"Max retries exceeded with url: (?P<url>\S+).*?\(Caused by (?P<kind>\w+)\((?P<rest>.*)",
    re.S,
)
_REASON = re.compile(
    r"(\[Errno -?\d+\] [^'\")]+|Connection refused|timed out|Name or service "
    r"not known|Remote end closed connection without response)"
)


def one_line(error: str | None, limit: int = 160) -> str:
    """An error message as one readable line: urllib3's retry dumps become "cannot reach
    host:port (reason)", and anything else is its first line, shortened."""
    if not error:
        return ""
    match = _CAUSE.search(error)
    if match:
        reason = _REASON.search(match["rest"])
        why = reason.group(0) if reason else match["kind"]
        prefix = error[: match.start()].strip().rstrip(":")
        text = f"cannot reach {match['host']}:{match['port']} ({why})"
        error = f"{prefix}: {text}" if prefix else text
    first = error.strip().splitlines()[0] if error.strip() else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"
