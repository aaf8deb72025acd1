"""Fuzzing ``ar-io-mlflow`` arguments: whatever a user types, the command ends with exit
code 0, 1 or 2 and a message, never a Python traceback.

Most examples run the real entry point (:func:`ario_mlflow.cli.main`) in this process —
a fresh interpreter per example costs seconds because of MLflow's import — so any
exception that would print a traceback fails the test with that traceback. A smaller
batch of commands that do not import MLflow runs through :func:`tests.support.cli.run_cli`
in a real subprocess, checking the user-visible output end to end.

Everything stays on 127.0.0.1: the read gateway is a stub on a loopback port serving a
few fixed records (404 for everything else, so nothing is retried), the upload URL is the
discard port, tracking URIs are a sqlite file in a temporary directory, a closed local
port or schemes MLflow does not know.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import currently_in_test_context, event, given
from hypothesis import strategies as st

from ario_mlflow.errors import EnvelopeParseError
from ario_mlflow.proof.canonical import canonical_json
from ario_mlflow.proof.envelope import parse_json_object
from tests.fuzz.seeds import bundle_files, is_the_signed_record, records, write_bundle
from tests.fuzz.strategies import fuzz_settings, hex_of, mutated_bytes
from tests.support.cli import invoke_cli, run_cli
from tests.support.lifecycle import copy_store
from tests.support.loopback import Answer, Loopback, Reply, Seen

pytestmark = pytest.mark.slow  # many CLI examples

DEAD = "http://127.0.0.1:9"
#: TX ids the stub gateway serves: an honest agent record, junk, and a per-example slot.
HONEST_TX, JUNK_TX, FUZZED_TX = "H" * 43, "J" * 43, "F" * 43
OFFLINE_ENV = {
    "ARIO_MLFLOW_UPLOAD_URL": DEAD,
    "ARIO_MLFLOW_CONNECT_TIMEOUT": "0.5",
    "ARIO_MLFLOW_READ_TIMEOUT": "0.5",
    "ARIO_MLFLOW_ANCHOR_DEADLINE": "0.5",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "2",
    "NO_COLOR": "1",
}


def _agent_record() -> dict[str, Any]:
    """An honest record no MLflow check applies to: it passes ``verify tx`` (exit 0)."""
    return next(envelope for name, envelope, _ in records() if name == "agent")


def _raw_from(served: dict[str, bytes]) -> Answer:
    """The stub gateway: ``/raw/<tx>`` from ``served``; 404 for anything else, GraphQL
    included (never retried)."""

    def answer(seen: Seen) -> Reply:
        path = seen.path
        body = served.get(path.removeprefix("/raw/")) if path.startswith("/raw/") else None
        return Reply(404) if body is None else Reply(200, body)

    return answer


@dataclass(frozen=True)
class World:
    """A temporary directory with an MLflow store, a run, a model version, bundles and a
    loopback gateway stub."""

    root: Path
    tracking_uri: str
    run_id: str
    bundle_dir: Path
    bundle_zip: Path
    gateway: str
    served: dict[str, bytes] = field(default_factory=dict)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, store_template: Path) -> Iterator[World]:
    """Built once per module: the examples only read it (``served`` aside)."""
    import mlflow

    served = {HONEST_TX: canonical_json(_agent_record()), JUNK_TX: b"\xff{"}
    root = tmp_path_factory.mktemp("cli-fuzz")
    (root / "junk.zip").write_bytes(b"junk")
    (root / "dir.zip").mkdir()
    uri = copy_store(store_template, root)
    client = mlflow.MlflowClient(uri)
    run = client.create_run("0")
    client.set_terminated(run.info.run_id)
    client.create_registered_model("fuzz-model")
    client.create_model_version(
        "fuzz-model", f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    )
    with Loopback(fallback=_raw_from(served)) as gateway:
        yield World(
            root=root,
            tracking_uri=uri,
            run_id=run.info.run_id,
            bundle_dir=write_bundle(root / "good", bundle_files(), as_zip=False),
            bundle_zip=write_bundle(root / "good", bundle_files(), as_zip=True),
            gateway=gateway.url,
            served=served,
        )


@pytest.fixture
def offline(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    """Network settings that fail fast on loopback; the world's directory as cwd."""
    for name, value in {**OFFLINE_ENV, **_gateways(world)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", world.tracking_uri)
    monkeypatch.chdir(world.root)
    return world


def _gateways(world: World) -> dict[str, str]:
    return {"ARIO_MLFLOW_GATEWAYS": world.gateway, "ARIO_MLFLOW_GATEWAY_HOST": world.gateway}


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str


def invoke(args: list[str], env: dict[str, str] | None = None) -> Outcome:
    """``ar-io-mlflow ARGS`` through the console-script entry point, in this process.

    An exception escaping :func:`main` (what a user would see as a traceback) propagates
    and fails the test.
    """
    saved = {name: os.environ.get(name) for name in env or {}}
    os.environ.update(env or {})
    try:
        code, stdout, stderr = invoke_cli(args)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return Outcome(code, stdout, stderr)


def _effective_format(args: list[str]) -> str | None:
    """The value click uses for ``--format`` (the last one given), if any."""
    values = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "--format"]
    return values[-1] if values else None


def check(args: list[str], outcome: Outcome) -> None:
    """The contract of every command: 0/1/2, a reason for a failure, no traceback, and a
    verdict asked for as JSON is pure JSON."""
    shown = shlex.join(args)
    sub = args[1] if len(args) > 1 and args[0] in ("verify", "keys") else ""
    usage = " (usage)" if "Usage:" in outcome.stderr else ""
    if currently_in_test_context():  # statistics: --hypothesis-show-statistics
        event(f"{args[0]} {sub if sub.isidentifier() else '?'}: exit {outcome.code}{usage}")
    assert outcome.code in (0, 1, 2), (shown, outcome)
    assert "Traceback" not in outcome.stdout + outcome.stderr, (shown, outcome)
    if outcome.code == 2:
        assert outcome.stderr.strip(), (shown, "exit 2 without a message")
    if outcome.code == 1 and not outcome.stdout:
        assert outcome.stderr.strip(), (shown, "exit 1 without a verdict or a message")
    if outcome.code in (0, 1) and outcome.stdout and _effective_format(args) == "json":
        json.loads(outcome.stdout)  # a verdict asked for as JSON is only JSON


# --- argument strategies --------------------------------------------------------------------

#: What argv can hold: no NUL, no lone surrogates.
_arg = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30)


def _mostly(valid: st.SearchStrategy[str], junk: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """``valid`` nine times in ten: junk everywhere would stop every run at click's parser."""
    return st.integers(0, 9).flatmap(lambda n: junk if n == 0 else valid)


_tx_ids = _mostly(
    st.sampled_from([HONEST_TX, JUNK_TX, "../graphql", "?x=1", "%00", "a/b"])
    | st.text("abcdefABCDEF0123456789-_", min_size=43, max_size=43),
    _arg | st.just(""),
)
_formats = _mostly(st.sampled_from(["text", "json"]), _arg)
_ints = _mostly(
    st.integers(-5, 10**6).map(str) | st.sampled_from([str(2**63), str(10**30)]),
    _arg,
)


def _uris(world: World) -> st.SearchStrategy[str]:
    return _mostly(
        st.just(world.tracking_uri),
        st.sampled_from(
            [
                f"sqlite:///{world.root / 'no-such-dir' / 'x.db'}",
                DEAD,
                "zz-unknown-scheme://x",
                "",
            ]
        )
        | _arg.map(lambda t: f"zz-{t.replace('/', '')}://x"),
    )


def _paths(world: World) -> st.SearchStrategy[str]:
    """Output paths confined to the world's directory (tests run as any user, maybe root)."""
    contained = _arg.map(lambda t: str(world.root / "out" / t.replace("..", "_").lstrip("/")))
    return contained | st.sampled_from(
        [
            str(world.root),  # a directory
            str(world.root / "mlflow.db"),  # an existing file
            str(world.root / "missing" / "deeper" / "report.html"),
            str(world.root / "mlflow.db" / "under-a-file.html"),
            str(world.root / "out.zip"),
            str(world.root / "mlflow.db" / "x.zip"),
            "",
        ]
    )


@st.composite
def _options(draw: st.DrawFn, pool: dict[str, st.SearchStrategy[str] | None]) -> list[str]:
    """Some of the command's options (flags when the value strategy is None), any order,
    repeats allowed, plus the occasional unknown option or stray argument."""
    args: list[str] = []
    for name in draw(st.lists(st.sampled_from(sorted(pool)), max_size=5)):
        strategy = pool[name]
        args += [name] if strategy is None else [name, draw(strategy)]
    if draw(st.integers(0, 19)) == 0:
        args.append(draw(st.sampled_from(["--bogus", "-x", "--format", "extra"]) | _arg))
    return args


@st.composite
def verify_args(draw: st.DrawFn, world: World) -> list[str]:
    sub = draw(st.sampled_from(["tx", "run", "decision", "model", "trace", "dataset"]))
    positional = {
        "tx": [draw(_tx_ids)],
        "run": [draw(_mostly(st.just(world.run_id), _arg))],
        "decision": [draw(_arg)],
        "model": [
            draw(_mostly(st.sampled_from(["fuzz-model/1", "fuzz-model/9", "fuzz-model@x"]), _arg))
        ],
        "trace": [draw(_arg)],
        "dataset": [draw(_mostly(st.just(world.run_id), _arg)), draw(_arg)],
    }[sub]
    options = draw(
        _options(
            {
                "--format": _formats,
                "--tracking-uri": _uris(world),
                "--trusted-key": _mostly(hex_of(32), _arg),
                "--min-level": _ints,
                "--html": _paths(world),
            }
        )
    )
    return ["verify", sub, *positional, *options]


@st.composite
def export_args(draw: st.DrawFn, world: World) -> list[str]:
    ref = draw(_mostly(st.sampled_from(["fuzz-model/1", "fuzz-model/2", "fuzz-model@none"]), _arg))
    options = draw(_options({"--decisions": _ints, "--tracking-uri": _uris(world)}))
    if draw(st.integers(0, 9)):  # --output is required
        options += ["--output", draw(_paths(world))]
    return ["export", ref, *options]


@st.composite
def bundle_args(draw: st.DrawFn, world: World) -> list[str]:
    path = draw(
        _mostly(
            st.sampled_from(
                [
                    str(world.bundle_dir),
                    str(world.bundle_zip),
                    str(world.root / "mlflow.db"),
                    str(world.root),
                    str(world.root / "junk.zip"),
                    str(world.root / "dir.zip"),
                ]
            ),
            _arg,
        )
    )
    options = draw(
        _options(
            {"--trusted-key": _mostly(hex_of(32), _arg), "--format": _formats, "--online": None}
        )
    )
    return ["verify-bundle", path, *options]


@st.composite
def outbox_args(draw: st.DrawFn) -> list[str]:
    return ["outbox", *draw(_options({"--limit": _ints, "--format": _formats}))]


@st.composite
def keys_args(draw: st.DrawFn) -> list[str]:
    sub = draw(_mostly(st.sampled_from(["show", "init"]), _arg))
    return ["keys", sub, *draw(_options({"--format": _formats}))]


@st.composite
def env_overrides(draw: st.DrawFn, world: World) -> dict[str, str]:
    """Our settings, sometimes garbage (never anything that reaches past loopback)."""
    values: dict[str, st.SearchStrategy[str]] = {
        "ARIO_MLFLOW_TRUSTED_KEYS": hex_of(32) | _arg,
        "ARIO_MLFLOW_SIGNING_KEY": _arg,
        "ARIO_MLFLOW_ARWEAVE_WALLET": _paths(world)
        | st.sampled_from(["~no-such-user-ario/w.json", str(world.root / "mlflow.db")]),
        "ARIO_MLFLOW_CONNECT_TIMEOUT": st.sampled_from(["0", "-1", "nan", "inf", "x", "0.2"]),
        "ARIO_MLFLOW_MAX_ATTEMPTS": _ints,
    }
    if draw(st.integers(0, 3)):
        return {}
    names = draw(st.lists(st.sampled_from(sorted(values)), min_size=1, max_size=2, unique=True))
    return {name: draw(values[name]) for name in names}


# --- in-process fuzzing -------------------------------------------------------------------------


@fuzz_settings(120, fixtures_are_per_test=True)  # fixtures only set env and cwd
@given(data=st.data())
def test_verify_commands_never_crash(offline: World, data: st.DataObject) -> None:
    """``verify tx|run|decision|model|trace|dataset`` with any arguments and options."""
    args = data.draw(verify_args(offline), label="args")
    env = data.draw(env_overrides(offline), label="env")
    check(args, invoke(args, env))


@fuzz_settings(60, fixtures_are_per_test=True)
@given(data=st.data())
def test_export_never_crashes(offline: World, data: st.DataObject) -> None:
    """``export`` with any model reference, output path and decision count."""
    args = data.draw(export_args(offline), label="args")
    check(args, invoke(args))


@fuzz_settings(150, fixtures_are_per_test=True)
@given(data=st.data())
def test_verify_bundle_never_crashes(offline: World, data: st.DataObject) -> None:
    """``verify-bundle`` on folders, zips, files and junk paths with any options."""
    args = data.draw(bundle_args(offline), label="args")
    outcome = invoke(args)
    check(args, outcome)
    if args[1] in (str(offline.bundle_dir), str(offline.bundle_zip)) and outcome.code == 0:
        assert "PASS" in outcome.stdout or '"ok": true' in outcome.stdout


@fuzz_settings(100, fixtures_are_per_test=True)
@given(data=st.data())
def test_outbox_and_keys_never_crash(offline: World, data: st.DataObject) -> None:
    """``outbox`` and ``keys show|init`` with any options and any signing-key setting."""
    args = data.draw(outbox_args() | keys_args(), label="args")
    env = data.draw(env_overrides(offline), label="env")
    check(args, invoke(args, env))


@fuzz_settings(80, fixtures_are_per_test=True)
@given(data=st.data())
def test_verify_tx_passes_only_the_signed_bytes(offline: World, data: st.DataObject) -> None:
    """``verify tx`` of a record a gateway serves flipped, cut or extended: exit 1 (or 2),
    never 0, unless the edit left the signed content intact."""
    offline.served[FUZZED_TX] = mutated = data.draw(mutated_bytes(offline.served[HONEST_TX]))
    args = ["verify", "tx", FUZZED_TX, "--format", data.draw(st.sampled_from(["json", "text"]))]
    outcome = invoke(args)
    check(args, outcome)
    if outcome.code == 0:
        try:
            parsed = parse_json_object(mutated)
        except EnvelopeParseError:
            parsed = None
        assert is_the_signed_record(_agent_record(), parsed), (mutated, outcome)


def test_the_honest_record_passes(offline: World) -> None:
    """Sanity for the oracle above: the unmutated record verifies (exit 0), junk does not."""
    assert invoke(["verify", "tx", HONEST_TX]).code == 0
    outcome = invoke(["verify", "tx", JUNK_TX, "--format", "json"])
    assert outcome.code == 1
    assert json.loads(outcome.stdout)["proof_found"] is False


@pytest.mark.parametrize(
    "args",
    [
        ["outbox", "--limit", str(10**30)],
        ["outbox", "--limit", str(2**63)],
        ["verify", "tx", "A" * 43, "--html", "{root}/missing/deeper/report.html"],
        ["verify", "tx", "A" * 43, "--html", "{root}/mlflow.db/under-a-file.html"],
        ["export", "fuzz-model/1", "--output", "{root}/mlflow.db"],
        ["export", "fuzz-model/1", "--output", "{root}/mlflow.db/x.zip"],
        ["verify", "tx", "A" * 43, "--tracking-uri", "zz-unknown-scheme://x"],
        ["verify-bundle", "{root}/junk.zip"],
        ["verify-bundle", "{root}/dir.zip"],
    ],
)
def test_regressions(offline: World, args: list[str]) -> None:
    """Inputs that once ended in a traceback (found by the fuzzers above)."""
    args = [arg.replace("{root}", str(offline.root)) for arg in args]
    outcome = invoke(args)
    check(args, outcome)
    assert outcome.code != 0


@pytest.mark.parametrize(
    "env",
    [
        {"ARIO_MLFLOW_ARWEAVE_WALLET": "~no-such-user-ario/w.json"},
        {"ARIO_MLFLOW_ARWEAVE_WALLET": "{root}/mlflow.db"},
    ],
)
def test_wallet_regressions(offline: World, env: dict[str, str]) -> None:
    """A caller-named wallet that cannot be loaded is one ``error:`` line, exit 2."""
    env = {k: v.replace("{root}", str(offline.root)) for k, v in env.items()}
    args = ["verify", "tx", "A" * 43]
    outcome = invoke(args, env)
    check(args, outcome)
    assert outcome.code == 2
    assert outcome.stderr.startswith("error:")


# --- the real process -----------------------------------------------------------------------------


@fuzz_settings(8, fixtures_are_per_test=True)
@given(data=st.data())
def test_real_process_output_has_no_traceback(offline: World, data: st.DataObject) -> None:
    """The same contract through a real ``ar-io-mlflow`` process (commands that do not
    import MLflow, so each run takes a fraction of a second)."""
    args = data.draw(outbox_args() | keys_args() | bundle_args(offline), label="args")
    env = {**OFFLINE_ENV, **_gateways(offline), **data.draw(env_overrides(offline), label="env")}
    result = run_cli(*args, env=env, timeout=60)
    check(args, Outcome(result.returncode, result.stdout, result.stderr))


def test_bundle_of_the_world_is_honest(offline: World) -> None:
    """Sanity for the oracle above: the prepared bundles pass through the real CLI."""
    for path in (offline.bundle_dir, offline.bundle_zip):
        outcome = invoke(["verify-bundle", str(path), "--format", "json"])
        assert outcome.code == 0, outcome
        assert json.loads(outcome.stdout)["ok"] is True
