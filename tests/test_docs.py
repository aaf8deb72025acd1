"""The documentation cannot rot.

* Every ``ar-io-mlflow`` command shown in ``docs/*.md`` and ``README.md`` names an existing
  subcommand with existing options (and ``python docs|examples/*.py`` lines name real
  scripts and flags).
* ``docs/standalone_verify.py`` imports nothing of ours, passes an evidence bundle built by
  hand from a real lifecycle's journal and MLflow witnesses, fails every tampered variant,
  and agrees with ``verify_record`` record by record.
* The worked example and the recipe of ``docs/verification.md`` verify; every reason code
  the verifiers emit is documented; the threat model cites tests that exist; the settings
  and modules the docs name exist.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import pytest
from click.testing import CliRunner
from cryptography.exceptions import InvalidSignature

from ario_mlflow.cli import cli
from ario_mlflow.proof.canonical import canonical_json
from ario_mlflow.proof.ed25519 import key_fingerprint, signing_key_from_seed
from ario_mlflow.proof.envelope import envelope_for_signature, sign_envelope
from ario_mlflow.verify import verify_record
from tests.conftest import PROJECT_ROOT

if TYPE_CHECKING:  # imported where used: MLflow and sklearn take seconds to import
    from tests.support.lifecycle import Sandbox

DOCS = PROJECT_ROOT / "docs"
SRC = PROJECT_ROOT / "src" / "ario_mlflow"
SCRIPT = DOCS / "standalone_verify.py"
EXAMPLE = PROJECT_ROOT / "examples" / "train_and_serve.py"
MARKDOWN = [*sorted(DOCS.glob("*.md")), PROJECT_ROOT / "README.md"]
STAGES = {
    "training_complete": "training",
    "dataset": "datasets",
    "model_registered": "registration",
    "stage_transition": "promotion",
    "alias_changed": "alias",
    "prediction": "prediction",
}


# --- a real lifecycle, and an evidence bundle built from it by hand ------------------------


@pytest.fixture(scope="module")
def lifecycle(
    tmp_path_factory: pytest.TempPathFactory, gateway_key_file: Path
) -> Iterator[Sandbox]:
    """``examples/train_and_serve.py`` run once against its own store, home and gateway,
    with a signed record per decision (``each``): the hand-built bundle and the recipe
    below are about such records (batched decisions: ``test_standalone_receipt.py``)."""
    from tests.support.lifecycle import sandbox

    with sandbox(tmp_path_factory, "docs-lifecycle", gateway_key_file) as world:
        ran = subprocess.run(
            [sys.executable, str(EXAMPLE), "--decisions", "2"],
            cwd=world.root,
            env={**world.process_env(), "ARIO_MLFLOW_DECISIONS": "each"},
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-3000:]
        yield world


def build_bundle(lifecycle: Sandbox, output: Path) -> dict[str, Any]:
    """An ``ario.mlflow.evidence/v1`` bundle from the journal and the MLflow witnesses."""
    witnesses = {p.as_posix(): p for p in lifecycle.root.rglob("payload.json")}
    with sqlite3.connect(lifecycle.home / "journal.sqlite3") as db:
        rows = db.execute(
            "SELECT tx_id, event_type, envelope, receipt FROM records ORDER BY id"
        ).fetchall()
    records, model, version = [], None, None
    for tx_id, event_type, envelope_bytes, receipt in rows:
        envelope = json.loads(envelope_bytes)
        if event_type == "prediction":
            wanted = f"ario/predictions/{envelope['subject']['decision_id']}/payload.json"
        else:
            wanted = f"ario/events/{envelope['event_id']}/payload.json"
        (witness,) = [path for name, path in witnesses.items() if name.endswith(wanted)]
        payload = witness.read_bytes()
        if event_type == "model_registered":
            model, version = envelope["subject"]["name"], envelope["subject"]["version"]
        folder = output / "records" / tx_id
        folder.mkdir(parents=True)
        (folder / "envelope.json").write_bytes(bytes(envelope_bytes))
        (folder / "payload.bin").write_bytes(payload)
        if receipt:
            (folder / "receipt.json").write_text(receipt)
        records.append(
            {
                "stage": STAGES[event_type],
                "label": event_type,
                "tx_id": tx_id,
                "event_type": event_type,
                "envelope": f"records/{tx_id}/envelope.json",
                "payload": f"records/{tx_id}/payload.bin",
                "receipt": f"records/{tx_id}/receipt.json" if receipt else None,
                "envelope_sha256": hashlib.sha256(bytes(envelope_bytes)).hexdigest(),
                "payload_sha256": hashlib.sha256(payload).hexdigest(),
            }
        )
    manifest = {
        "schema": "ario.mlflow.evidence/v1",
        "generated_by": "tests/test_docs.py",
        "created_at": "2026-01-01T00:00:00+00:00",
        "model": model,
        "version": version,
        "records": records,
    }
    (output / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


@pytest.fixture(scope="module")
def pristine(lifecycle: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    bundle = tmp_path_factory.mktemp("pristine") / "bundle"
    manifest = build_bundle(lifecycle, bundle)
    stages = sorted({r["stage"] for r in manifest["records"]})
    assert stages == ["alias", "datasets", "prediction", "registration", "training"]
    return bundle


@pytest.fixture
def bundle(pristine: Path, tmp_path: Path) -> Path:
    """A private copy of the honest bundle, to tamper with."""
    return Path(shutil.copytree(pristine, tmp_path / "bundle"))


def manifest_of(bundle: Path) -> dict[str, Any]:
    return json.loads((bundle / "manifest.json").read_text())


def entry_of(bundle: Path, stage: str) -> dict[str, Any]:
    return next(r for r in manifest_of(bundle)["records"] if r["stage"] == stage)


def rehash(bundle: Path) -> None:
    """Make the manifest's file hashes match the files again (a careful forger)."""
    manifest = manifest_of(bundle)
    for record in manifest["records"]:
        for name in ("envelope", "payload"):
            data = (bundle / record[name]).read_bytes()
            record[f"{name}_sha256"] = hashlib.sha256(data).hexdigest()
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2))


def resign(bundle: Path, stage: str, key: Any, **changes: Any) -> None:
    """Re-sign one record with ``key`` after applying ``changes`` (``None`` deletes a key)."""
    entry = entry_of(bundle, stage)
    path = bundle / entry["envelope"]
    envelope = json.loads(path.read_bytes())
    for name in ("signature", "public_key"):
        envelope.pop(name)
    for name, value in changes.items():
        if value is None:
            envelope.pop(name, None)
        else:
            envelope[name] = value
    path.write_bytes(canonical_json(sign_envelope(envelope, key)))
    rehash(bundle)


def attacker_key() -> Any:
    return signing_key_from_seed(bytes(range(100, 132)))


def run_script(bundle: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The standalone script in a fresh interpreter where ``ario_mlflow`` cannot be imported."""
    code = (
        "import runpy, sys; sys.modules['ario_mlflow'] = None; sys.argv = sys.argv[1:]; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    return subprocess.run(
        [sys.executable, "-c", code, str(SCRIPT), str(bundle), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def script_json(bundle: Path, *args: str) -> tuple[int, dict[str, Any]]:
    ran = run_script(bundle, "--json", *args)
    assert ran.stdout, ran.stderr
    return ran.returncode, json.loads(ran.stdout)


# --- the standalone script ----------------------------------------------------------------


def test_standalone_script_needs_only_cryptography_and_rfc8785() -> None:
    tree = ast.parse(SCRIPT.read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"__future__"}
    assert third_party == {"cryptography", "rfc8785"}


def test_hand_built_bundle_passes(lifecycle: Sandbox, bundle: Path) -> None:
    records = manifest_of(bundle)["records"]
    ran = run_script(bundle)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    lines = ran.stdout.splitlines()
    assert sum(line.startswith("ok ") for line in lines) == len(records)
    assert lines[-1].startswith(f"PASS: {len(records)} record(s) of credit-scorer/1")
    assert "NOT pinned" in ran.stdout

    key = lifecycle.signing_key()
    real = bytes(key.verify_key).hex()
    pinned = run_script(bundle, "--trusted-key", real, "--gateway", lifecycle.gateway.url)
    assert pinned.returncode == 0, pinned.stdout + pinned.stderr
    assert f"signer {real}: pinned" in pinned.stdout


def test_a_flipped_payload_byte_fails(bundle: Path) -> None:
    entry = entry_of(bundle, "training")
    payload = bundle / entry["payload"]
    data = bytearray(payload.read_bytes())
    data[len(data) // 2] ^= 0x01
    payload.write_bytes(bytes(data))
    ran = run_script(bundle)
    assert ran.returncode == 1
    assert "payload.bin does not match payload_sha256" in ran.stdout
    assert ran.stdout.splitlines()[-1].startswith("FAIL")

    rehash(bundle)  # the forger also fixes the manifest: the signed payload_hash still holds
    ran = run_script(bundle)
    assert ran.returncode == 1
    assert "payload_hash: SHA-256 of payload.bin differs from payload_hash" in ran.stdout


def test_a_record_resigned_by_another_key_fails_when_pinned(
    lifecycle: Sandbox, bundle: Path
) -> None:
    """A forger edits a decision's payload and re-signs it with their own key."""
    entry = entry_of(bundle, "prediction")
    payload_path = bundle / entry["payload"]
    payload = json.loads(payload_path.read_bytes())
    payload["output_hash"] = "0" * 64
    forged = canonical_json(payload)
    payload_path.write_bytes(forged)
    resign(bundle, "prediction", attacker_key(), payload_hash=hashlib.sha256(forged).hexdigest())
    attacker = bytes(attacker_key().verify_key).hex()
    real = bytes(lifecycle.signing_key().verify_key).hex()

    unpinned = run_script(bundle)
    assert unpinned.returncode == 0, unpinned.stdout  # valid signature, unknown signer...
    assert f"signer {attacker}: NOT pinned" in unpinned.stdout  # ...which is reported
    pinned = run_script(bundle, "--trusted-key", real)
    assert pinned.returncode == 1
    assert f"issuer: signed by {attacker}, which is not a trusted key" in pinned.stdout
    online = run_script(bundle, "--gateway", lifecycle.gateway.url)
    assert online.returncode == 1
    assert f"/raw/{entry['tx_id']} serves other bytes" in online.stdout


def test_chain_and_subject_tampering_fail(lifecycle: Sandbox, bundle: Path) -> None:
    key = lifecycle.signing_key()  # even with the real key, links and subjects must hold
    resign(bundle, "registration", key, previous_hash="GENESIS")
    ran = run_script(bundle)
    assert ran.returncode == 1
    assert "chain: previous_hash is 'GENESIS', expected" in ran.stdout

    manifest = manifest_of(bundle)
    manifest["version"] = "2"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    assert "subject: record is about" in run_script(bundle).stdout

    manifest["version"] = "1"
    alias = entry_of(bundle, "alias")
    subject = json.loads((bundle / alias["envelope"]).read_bytes())["subject"]
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    resign(bundle, "alias", key, subject={**subject, "version": "99"})
    ran = run_script(bundle)
    assert ran.returncode == 1
    assert "'version': '99'" in ran.stdout

    manifest = manifest_of(bundle)
    manifest["records"] = [r for r in manifest["records"] if r["stage"] != "training"]
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    ran = run_script(bundle)
    assert ran.returncode == 1
    assert "needs exactly one training record, it has 0" in ran.stdout


def _expected_subject(stage: str, manifest: dict[str, Any], bundle: Path) -> dict[str, str]:
    """What each record must be about, as the script checks it record by record."""

    def payload(stage_name: str) -> dict[str, Any]:
        return json.loads((bundle / entry_of(bundle, stage_name)["payload"]).read_bytes())

    if stage in ("registration", "promotion", "alias"):
        return {
            "type": "mlflow_model_version",
            "name": manifest["model"],
            "version": manifest["version"],
        }
    if stage == "training":
        return {"type": "mlflow_run", "run_id": payload("registration")["source_run_id"]}
    if stage == "prediction":
        training = json.loads((bundle / entry_of(bundle, "training")["envelope"]).read_bytes())
        return {"type": "mlflow_prediction", "model_run_id": training["subject"]["run_id"]}
    return {"type": "mlflow_dataset"}


_PER_RECORD = ("files", "canonical", "envelope", "spec_version", "signature", "payload_hash")


def _agreement(bundle: Path, pins: tuple[str, ...]) -> list[bool]:
    """Per record: the script's verdict; asserts ``verify_record`` reaches the same one."""
    args = [arg for key in pins for arg in ("--trusted-key", key)]
    _, report = script_json(bundle, *args)
    manifest = manifest_of(bundle)
    verdicts = []
    for entry, result in zip(manifest["records"], report["records"], strict=True):
        kinds = {problem.split(":", 1)[0] for problem in result["problems"]}
        script_ok = not kinds & {*_PER_RECORD, "issuer", "subject"}
        ours = verify_record(
            json.loads((bundle / entry["envelope"]).read_bytes()),
            (bundle / entry["payload"]).read_bytes(),
            trusted_keys=pins,
            expected_subject=_expected_subject(entry["stage"], manifest, bundle),
        )
        assert (ours["overall"] is True) == script_ok, (entry["stage"], result, ours)
        verdicts.append(script_ok)
    return verdicts


def test_standalone_agrees_with_verify_record(lifecycle: Sandbox, pristine: Path) -> None:
    key = lifecycle.signing_key()
    real = bytes(key.verify_key).hex()

    def variant(name: str) -> Path:
        return Path(shutil.copytree(pristine, pristine.parent / f"variant-{name}"))

    assert all(_agreement(pristine, ()))
    assert all(_agreement(pristine, (real,)))

    flipped = variant("flipped")
    entry = entry_of(flipped, "registration")
    data = (flipped / entry["payload"]).read_bytes()
    (flipped / entry["payload"]).write_bytes(data.replace(b'"1"', b'"2"', 1))
    rehash(flipped)
    assert not all(_agreement(flipped, ()))

    bad_signature = variant("signature")
    entry = entry_of(bad_signature, "alias")
    envelope = json.loads((bad_signature / entry["envelope"]).read_bytes())
    envelope["signature"] = envelope["signature"][:-2] + (
        "00" if envelope["signature"][-2:] != "00" else "01"
    )
    (bad_signature / entry["envelope"]).write_bytes(canonical_json(envelope))
    rehash(bad_signature)
    assert not all(_agreement(bad_signature, ()))

    foreign = variant("foreign")
    resign(foreign, "prediction", attacker_key())
    assert all(_agreement(foreign, ()))  # both: valid, by an unpinned key
    assert not all(_agreement(foreign, (real,)))  # both: not the pinned key

    for name, changes in {
        "unsupported": {"spec_version": "ario.mlflow/v2"},
        "subject": {"subject": {"type": "mlflow_model_version", "name": "other", "version": "1"}},
    }.items():
        tampered = variant(name)
        resign(tampered, "registration", key, **changes)
        assert not all(_agreement(tampered, (real,))), name

    legacy = variant("legacy")  # no spec_version: a 0.3.0-style record still verifies
    resign(legacy, "training", key, spec_version=None)
    assert all(_agreement(legacy, (real,)))
    assert "legacy envelope" in run_script(legacy).stdout


def test_an_exported_bundle_verifies_standalone(lifecycle: Sandbox, tmp_path: Path) -> None:
    exported = tmp_path / "evidence"
    ran = subprocess.run(
        [
            sys.executable,
            "-m",
            "ario_mlflow.cli",
            "export",
            "credit-scorer/1",
            "--output",
            str(exported),
        ],
        cwd=lifecycle.root,
        env=lifecycle.process_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    manifest = manifest_of(exported)
    with sqlite3.connect(lifecycle.home / "journal.sqlite3") as db:
        journaled = {row[0] for row in db.execute("SELECT tx_id FROM records")}
    stages = [r["stage"] for r in manifest["records"]]
    assert {"training", "registration"} <= set(stages)
    assert {r["tx_id"] for r in manifest["records"]} <= journaled
    real = bytes(lifecycle.signing_key().verify_key).hex()
    checked = run_script(exported, "--trusted-key", real, "--gateway", lifecycle.gateway.url)
    assert checked.returncode == 0, checked.stdout + checked.stderr


# --- docs/verification.md -------------------------------------------------------------------


def _verification_md() -> str:
    return (DOCS / "verification.md").read_text(encoding="utf-8")


def _marked_block(text: str, marker: str, language: str) -> str:
    match = re.search(rf"<!-- {marker} -->\n```{language}\n(.*?)```", text, re.S)
    assert match, f"no block marked {marker}"
    return match[1]


def _recipe() -> Any:
    namespace: dict[str, Any] = {}
    exec(_marked_block(_verification_md(), "recipe", "python"), namespace)
    return namespace["verify_envelope"]


def test_worked_example_verifies_with_the_recipe() -> None:
    text = _verification_md()
    envelope_bytes = _marked_block(text, "example:envelope", "json").rstrip("\n").encode()
    payload_bytes = _marked_block(text, "example:payload", "json").rstrip("\n").encode()
    verify = _recipe()
    envelope = verify(envelope_bytes, payload_bytes)
    # the numbers the prose states are those of these bytes
    assert f"{len(envelope_bytes)} bytes" in text
    assert f"{len(payload_bytes)} bytes" in text
    assert hashlib.sha256(envelope_bytes).hexdigest() in text
    assert f"signed scope is {len(canonical_json(envelope_for_signature(envelope)))} bytes" in text
    assert key_fingerprint(envelope["public_key"]) in text
    assert envelope["previous_hash"] in text
    # and the full verifier agrees
    result = verify_record(
        envelope,
        payload_bytes,
        trusted_keys=(envelope["public_key"],),
        expected_subject={"type": "mlflow_model_version", "name": "credit-scorer", "version": "1"},
    )
    assert result["overall"] is True
    with pytest.raises(ValueError, match="payload_hash"):
        verify(envelope_bytes, payload_bytes.replace(b"true", b"false"))
    with pytest.raises(InvalidSignature):
        verify(envelope_bytes.replace(b'"version":"1"', b'"version":"2"'), payload_bytes)


def test_recipe_agrees_on_every_record(pristine: Path, bundle: Path) -> None:
    verify = _recipe()
    for entry in manifest_of(pristine)["records"]:
        verify(
            (pristine / entry["envelope"]).read_bytes(), (pristine / entry["payload"]).read_bytes()
        )
    entry = entry_of(bundle, "prediction")
    data = bytearray((bundle / entry["payload"]).read_bytes())
    data[-2] ^= 0x01
    with pytest.raises(ValueError, match="payload_hash"):
        verify((bundle / entry["envelope"]).read_bytes(), bytes(data))


def _reason_codes() -> set[str]:
    """Every reason code the verification code can put in a result."""
    files = ["verify/checks.py", "verify/core.py", "proof/envelope.py", "proof/commitment.py"]
    codes: set[str] = set()

    def take(node: ast.AST) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        elif isinstance(node, ast.JoinedStr) and isinstance(node.values[0], ast.Constant):
            text = str(node.values[0].value)
        elif isinstance(node, ast.BinOp):
            take(node.left)
            return
        else:
            return
        match = re.match(r"[a-z][a-z_]+", text)
        if match:
            codes.add(match[0])

    for name in files:
        tree = ast.parse((SRC / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "reason":
                        take(value)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id == "_NOT_EXPECTED":
                        assert isinstance(node.value, ast.Dict)
                        for value in node.value.values:
                            take(value)
                    if isinstance(target, ast.Subscript) and (
                        isinstance(target.slice, ast.Constant) and target.slice.value == "reason"
                    ):
                        take(node.value)
            elif isinstance(node, ast.Call):
                func = node.func
                called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if called == "_fail":
                    take(node.args[1])
                if called == "LookupError" and node.args:
                    take(node.args[0])
                for keyword in node.keywords:
                    if keyword.arg == "reason":
                        take(keyword.value)
            elif isinstance(node, ast.FunctionDef) and node.name == "_canonical_reason":
                for inner in ast.walk(node):
                    if isinstance(inner, ast.Return) and inner.value is not None:
                        take(inner.value)
    return codes


def test_every_reason_code_is_documented() -> None:
    codes = _reason_codes()
    assert len(codes) >= 40, sorted(codes)  # the extraction itself must keep working
    text = _verification_md()
    missing = sorted(code for code in codes if not re.search(rf"`{code}[`:]", text))
    assert not missing, f"reason codes not in docs/verification.md: {missing}"


# --- every command shown exists -------------------------------------------------------------


_SEPARATORS = {"|", "||", "&&", ";", "&", ">", ">>", "2>", "<"}


def _code_lines(text: str) -> list[str]:
    lines = []
    for block in re.findall(r"```(?:bash|sh|shell|console)\n(.*?)```", text, re.S):
        for raw in block.replace("\\\n", " ").splitlines():
            line = raw.strip()
            lines.append(line[2:] if line.startswith("$ ") else line)
    return lines


def _commands(line: str) -> list[list[str]]:
    """Each command of a shell line, without leading ``VAR=value`` assignments."""
    tokens = shlex.split(line, comments=True)
    commands, current = [], []
    for token in [*tokens, ";"]:
        if token in _SEPARATORS:
            while current and re.match(r"[A-Za-z_][A-Za-z0-9_]*=", current[0]):
                current.pop(0)
            if current:
                commands.append(current)
            current = []
        else:
            current.append(token)
    return commands


def _check_cli(tokens: list[str], *, complete: bool) -> tuple[str, ...]:
    """The subcommand path of an ``ar-io-mlflow ...`` command; asserts options and arity."""
    command: click.Command = cli
    path: list[str] = []
    rest = tokens[1:]
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.get_command(click.Context(command), rest[0])
        assert sub is not None, f"no subcommand {rest[0]!r} in {' '.join(tokens)!r}"
        command, path, rest = sub, [*path, rest[0]], rest[1:]
    options = {name: p for p in command.params for name in (*p.opts, *p.secondary_opts)}
    positional = 0
    index = 0
    while index < len(rest):
        token = rest[index]
        if token.startswith("-") and token != "-":
            name = token.split("=", 1)[0]
            if name in ("-h", "--help"):
                return tuple(path)
            assert name in options, f"{' '.join(tokens)!r}: no option {name} on {path}"
            param = options[name]
            takes_value = not getattr(param, "is_flag", False) and "=" not in token
            index += 2 if takes_value else 1
            continue
        positional += 1
        index += 1
    if complete:
        runs_alone = isinstance(command, click.Group) and command.invoke_without_command
        assert runs_alone or not isinstance(command, click.Group), (
            f"{' '.join(tokens)!r} names a group"
        )
        arguments = [p for p in command.params if isinstance(p, click.Argument)]
        required = sum(p.nargs for p in arguments if p.required and p.nargs > 0)
        variadic = any(p.nargs < 0 for p in arguments)
        most = float("inf") if variadic else sum(p.nargs for p in arguments)
        assert required <= positional <= most, (
            f"{' '.join(tokens)!r}: {positional} argument(s) for {path}"
        )
    return tuple(path)


def _script_flags(script: Path) -> set[str]:
    tree = ast.parse(script.read_text(encoding="utf-8"))
    return {
        arg.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument"
        for arg in node.args
        if isinstance(arg, ast.Constant) and str(arg.value).startswith("-")
    } | {"-h", "--help"}


def _docstring_lines(script: Path) -> list[str]:
    """The indented command lines of a script's docstring (its usage examples)."""
    docstring = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or ""
    return [line.strip() for line in docstring.splitlines() if line.startswith("    ")]


def test_every_command_in_the_docs_exists() -> None:
    paths: set[tuple[str, ...]] = set()
    scripts = 0
    examples = sorted((PROJECT_ROOT / "examples").glob("*.py"))
    sources = [
        *((d, _code_lines(d.read_text(encoding="utf-8"))) for d in MARKDOWN),
        *((e, _docstring_lines(e)) for e in examples),
    ]
    for document, lines in sources:
        text = document.read_text(encoding="utf-8")
        for line in lines:
            for tokens in _commands(line):
                if tokens[0] == "ar-io-mlflow":
                    paths.add(_check_cli(tokens, complete=True))
                elif tokens[0] in ("python", "python3") and tokens[1].endswith(".py"):
                    script = PROJECT_ROOT / tokens[1]
                    assert script.is_file(), f"{document.name}: {tokens[1]} does not exist"
                    flags = _script_flags(script)
                    used = {t.split("=", 1)[0] for t in tokens[2:] if t.startswith("-")}
                    assert used <= flags, f"{document.name}: {used - flags} not in {tokens[1]}"
                    scripts += 1
        # commands named inline in the prose must exist too (groups allowed)
        for inline in re.findall(r"`(ar-io-mlflow(?: [^`]*)?)`", text):
            paths.add(_check_cli(shlex.split(inline), complete=False))
    assert len(paths) >= 12, sorted(paths)  # the parser must keep finding the commands
    assert scripts >= 5
    runner = CliRunner()
    for path in sorted(paths):
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)


# --- threat model, settings, modules ------------------------------------------------------


def test_threat_model_cites_tests_that_exist() -> None:
    text = (DOCS / "threat-model.md").read_text(encoding="utf-8")
    cited = re.findall(r"`(tests/[\w/]+\.py)::(test_\w+)`", text)
    assert len(cited) >= 30
    for path, name in cited:
        source = (PROJECT_ROOT / path).read_text(encoding="utf-8")
        assert re.search(rf"^\s*def {name}\(", source, re.M), f"{path}::{name} does not exist"


def test_settings_and_modules_named_in_the_docs_exist() -> None:
    readers = [*SRC.rglob("*.py"), PROJECT_ROOT / "tests" / "conftest.py"]
    source = "\n".join(p.read_text(encoding="utf-8") for p in readers)
    for document in MARKDOWN:
        for variable in set(re.findall(r"ARIO_MLFLOW_[A-Z_]*[A-Z]", document.read_text())):
            assert variable in source, f"{document.name} names {variable}, which nothing reads"
    architecture = (DOCS / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`([a-z_/]+(?:\.py|/))`", architecture))
    assert len(named) >= 30
    for relative in named - {"src/ario_mlflow/"}:
        where = PROJECT_ROOT if relative.startswith("tests/") else SRC
        assert (where / relative).exists(), f"architecture.md names {relative}, which is not there"
    for dotted in set(re.findall(r"`([a-z_]+)\.([a-z_]+)`", architecture)):
        module, function = dotted
        if function != "py" and (SRC / f"{module}.py").is_file():
            text = (SRC / f"{module}.py").read_text(encoding="utf-8")
            assert re.search(rf"^(def|class) {function}\b|^{function} =", text, re.M), dotted
