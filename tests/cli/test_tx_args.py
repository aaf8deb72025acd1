"""TX ids that begin with ``-`` (one in 64) work as command arguments, as users paste them."""

from __future__ import annotations

import os
from pathlib import Path

import click
import pytest

from ario_mlflow.cli.journal import discard
from ario_mlflow.cli.tx_args import positional_tx_ids
from ario_mlflow.outbox.anchor import ArweaveAnchor
from ario_mlflow.outbox.journal import DISCARDED, Journal
from tests.support.cli import invoke_cli
from tests.support.lifecycle import journal_one_record

DASHED = "-n" + "A" * 41
PLAIN = "B" * 43


def _dashed_record(arweave: ArweaveAnchor) -> str:
    """Sign records until one's TX id begins with ``-`` (about 64 tries)."""
    for _ in range(2000):
        tx_id = journal_one_record(arweave)
        if tx_id.startswith("-"):
            return tx_id
    raise AssertionError("no TX id began with '-' in 2000 records")


def test_a_dashed_tx_id_is_discarded_like_any_other(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARIO_MLFLOW_UPLOAD_URL", "http://127.0.0.1:9")
    tx_id = _dashed_record(ArweaveAnchor())
    code, out, err = invoke_cli(["outbox", "discard", tx_id, "-y", "--reason", "test"])
    assert code == 0, err
    assert tx_id in out
    journal = Journal.at_home(Path(os.environ["ARIO_MLFLOW_HOME"]))
    record = journal.by_tx(tx_id)
    assert record is not None
    assert record.state == DISCARDED


def test_verify_tx_reads_a_dashed_id_as_the_id_not_as_an_option() -> None:
    code, _, err = invoke_cli(["verify", "tx", DASHED, "--format", "json"])
    assert "No such option" not in err
    assert code != 0  # nothing answers at the closed test port: not verified, not crashed
    assert "Traceback" not in err


def test_a_mistyped_option_is_still_refused() -> None:
    code, _, err = invoke_cli(["verify", "tx", PLAIN, "--formt", "json"])
    assert code == 2
    assert "--formt" in err


def _ctx() -> click.Context:
    return click.Context(discard)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([PLAIN, "-y"], [PLAIN, "-y"]),
        ([DASHED, "-y"], ["-y", "--", DASHED]),
        ([PLAIN, DASHED, "--yes"], [PLAIN, "--yes", "--", DASHED]),
        # an option's value stays the option's
        (["--reason", DASHED, "-y"], ["--reason", DASHED, "-y"]),
        (["--reason", DASHED, DASHED], ["--reason", DASHED, "--", DASHED]),
        # ids already behind '--' keep their order after the moved ones
        ([DASHED, "--", "-x" + "C" * 41], ["--", DASHED, "-x" + "C" * 41]),
        # not a TX id: left to the parser (an unknown option is refused there)
        (["-nope"], ["-nope"]),
    ],
)
def test_dashed_tx_ids_move_behind_double_dash(args: list[str], expected: list[str]) -> None:
    assert positional_tx_ids(discard, _ctx(), args) == expected
