"""Transaction ids as command arguments, even those that begin with ``-``.

An Arweave TX id is 43 base64url characters, so one in 64 begins with ``-`` and a parser
would read ``verify tx -nAb…`` as the unknown option ``-n``: the user's id, copied from a
tag or a receipt, would be refused with a baffling error. A 43-character base64url token
cannot be one of our options (no option is that long, and none has a glued short value of
that shape), so :class:`TxIdCommand` passes such tokens as positional arguments.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import click

_DASHED_TX_ID = re.compile(r"-[A-Za-z0-9_-]{42}")


def _takes_value(command: click.Command, ctx: click.Context, token: str) -> bool:
    """Whether ``token`` is one of ``command``'s options that reads the next token."""
    for param in command.get_params(ctx):
        if isinstance(param, click.Option) and token in (*param.opts, *param.secondary_opts):
            return not (param.is_flag or param.count)
    return False


def positional_tx_ids(command: click.Command, ctx: click.Context, args: Sequence[str]) -> list[str]:
    """``args`` with every TX id that begins with ``-`` moved behind ``--``, in order.

    Only for commands whose positional arguments are all TX ids: moving them keeps their
    meaning. The value of an option (``--reason -x…``) stays where it is."""
    kept: list[str] = []
    moved: list[str] = []
    tokens = list(args)
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token == "--":
            moved.extend(tokens[index + 1 :])
            break
        if _DASHED_TX_ID.fullmatch(token):
            moved.append(token)
        else:
            kept.append(token)
            if _takes_value(command, ctx, token) and index + 1 < len(tokens):
                kept.append(tokens[index + 1])
                index += 1
        index += 1
    return [*kept, "--", *moved] if moved else kept


class TxIdCommand(click.Command):
    """A command whose positional arguments are TX ids (see the module docstring)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, positional_tx_ids(self, ctx, args))
