"""Shared CLI conventions: exit codes and the errors that carry them."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable

import click

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2


class NotFoundError(click.ClickException):
    """The thing asked for does not exist (exit code 2, one line, no traceback)."""

    exit_code = EXIT_USAGE


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def write_output(path: str, text: str, option: str = "--output") -> None:
    """Write a report (``text``, without colour codes) to ``path``, or fail in one line."""
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(_ANSI.sub("", text))
    except OSError as exc:  # no such directory, a directory in the way, no permission, full
        raise click.BadParameter(
            f"cannot write {path!r}: {exc.strerror or exc}", param_hint=f"'{option}'"
        ) from None


def printed(render: Callable[[], None]) -> str:
    """What ``render`` prints to stdout, as a string (to write a text report to a file)."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        render()
    return buffer.getvalue()


def deliver(content: str | Callable[[], None], output: str | None, summary: str) -> None:
    """The one ``--format``/``--output`` convention: ``content`` (text, or a function that
    prints it) goes to stdout, or to the file ``output`` with ``summary`` (one line saying
    what was written) on stdout."""
    if output is None:
        if callable(content):
            content()
        else:
            click.echo(content, nl=not content.endswith("\n"))
        return
    write_output(output, content if isinstance(content, str) else printed(content))
    click.echo(summary)


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
