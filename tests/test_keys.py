"""The signing identity: created once, 0600/0700, loaded forever, never overwritten."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ario_mlflow.engine import ProofEngine
from ario_mlflow.errors import ConfigError, SigningKeyError
from ario_mlflow.keys import (
    default_key_paths,
    load_signing_identity,
)
from ario_mlflow.proof.envelope import verify_envelope

REFERENCE_SEED_FILE = {"seed": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}
REFERENCE_PUBLIC_FILE = {"key": "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="}
REFERENCE_PUBLIC_HEX = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_use_creates_key_files_with_private_modes(ario_home: Path) -> None:
    private, public = default_key_paths()
    assert not private.exists()
    identity = load_signing_identity()
    assert identity is not None
    assert private.parent == ario_home / "keys"
    assert _mode(private.parent) == 0o700
    assert _mode(private) == 0o600
    assert _mode(public) == 0o600
    seed = base64.b64decode(json.loads(private.read_text())["seed"])
    assert len(seed) == 32
    public_key = base64.b64decode(json.loads(public.read_text())["key"])
    assert public_key.hex() == identity.public_key_hex


def test_identity_is_stable_across_calls_and_engines() -> None:
    first = load_signing_identity()
    second = load_signing_identity()
    assert first is not None
    assert second is not None
    assert first.public_key_hex == second.public_key_hex
    assert ProofEngine().public_key_hex == first.public_key_hex
    assert ProofEngine().public_key_hex == first.public_key_hex


def test_constructing_proof_engine_touches_no_files(ario_home: Path) -> None:
    engine = ProofEngine()
    assert ProofEngine.verify_commitment({"not": "signed"})["overall"] is False
    assert engine.verify_commitment(None)["reason"] == "envelope_not_a_json_object"
    assert list(ario_home.iterdir()) == []


def test_show_without_create_never_writes(ario_home: Path) -> None:
    assert load_signing_identity(create=False) is None
    assert list(ario_home.iterdir()) == []


_SUBPROCESS_PRINT_KEY = (
    "from ario_mlflow.proof import ProofEngine; e = ProofEngine();"
    "env = e.create_commitment(event_type='t', subject={}, payload_bytes=b'',"
    " previous_hash='GENESIS');"
    "print(env['public_key'])"
)


def test_a_second_process_reuses_the_first_ones_key(ario_home: Path) -> None:
    env = {**os.environ, "ARIO_MLFLOW_HOME": str(ario_home)}
    first = subprocess.run(
        [sys.executable, "-c", _SUBPROCESS_PRINT_KEY],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    second = subprocess.run(
        [sys.executable, "-c", _SUBPROCESS_PRINT_KEY],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert len(first) == 64
    assert first == second


def test_racing_processes_agree_on_one_key(ario_home: Path) -> None:
    env = {**os.environ, "ARIO_MLFLOW_HOME": str(ario_home)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _SUBPROCESS_PRINT_KEY],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    keys = {proc.communicate(timeout=60)[0].strip() for proc in procs}
    assert all(proc.returncode == 0 for proc in procs)
    assert len(keys) == 1
    assert sorted(p.name for p in (ario_home / "keys").iterdir()) == [
        "ed25519_private.json",
        "ed25519_public.json",
    ]


def test_env_seed_overrides_files(monkeypatch: pytest.MonkeyPatch, ario_home: Path) -> None:
    monkeypatch.setenv("ARIO_MLFLOW_SIGNING_KEY", REFERENCE_SEED_FILE["seed"])
    identity = load_signing_identity()
    assert identity is not None
    assert identity.public_key_hex == REFERENCE_PUBLIC_HEX
    assert identity.source == "env:ARIO_MLFLOW_SIGNING_KEY"
    assert list(ario_home.iterdir()) == []


@pytest.mark.parametrize("value", ["not base64!", base64.b64encode(b"short").decode(), "AAEC"])
def test_malformed_env_seed_is_a_config_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("ARIO_MLFLOW_SIGNING_KEY", value)
    with pytest.raises(SigningKeyError, match="ARIO_MLFLOW_SIGNING_KEY") as info:
        ProofEngine().create_commitment(
            event_type="t", subject={}, payload_bytes=b"", previous_hash="GENESIS"
        )
    assert isinstance(info.value, ConfigError)
    assert value not in str(info.value)  # never echo secret material


def test_reference_key_files_load_unchanged(tmp_path: Path) -> None:
    private, public = tmp_path / "priv.json", tmp_path / "pub.json"
    private.write_text(json.dumps(REFERENCE_SEED_FILE))
    public.write_text(json.dumps(REFERENCE_PUBLIC_FILE))
    before = (private.read_bytes(), public.read_bytes())
    engine = ProofEngine(private, public)
    envelope = engine.create_commitment(
        event_type="t", subject={}, payload_bytes=b"p", previous_hash="GENESIS"
    )
    assert envelope["public_key"] == REFERENCE_PUBLIC_HEX
    assert verify_envelope(envelope, payload_bytes=b"p").ok
    assert (private.read_bytes(), public.read_bytes()) == before


def test_explicit_paths_that_do_not_exist_are_created_once(tmp_path: Path) -> None:
    private, public = tmp_path / "k" / "priv.json", tmp_path / "k" / "pub.json"
    key_hex = ProofEngine(private, public).public_key_hex
    assert _mode(private) == 0o600
    assert ProofEngine(private, public).public_key_hex == key_hex
    assert ProofEngine(private).public_key_hex == key_hex


def test_corrupt_key_file_is_an_error_and_is_left_untouched() -> None:
    private, _ = default_key_paths()
    private.parent.mkdir(parents=True)
    private.write_text("{not json")
    with pytest.raises(SigningKeyError, match="left untouched"):
        ProofEngine().public_key_hex  # noqa: B018
    assert private.read_text() == "{not json"


def test_mismatched_public_file_is_an_error(tmp_path: Path) -> None:
    private, public = tmp_path / "priv.json", tmp_path / "pub.json"
    private.write_text(json.dumps(REFERENCE_SEED_FILE))
    public.write_text(json.dumps({"key": base64.b64encode(bytes(32)).decode()}))
    with pytest.raises(SigningKeyError, match="does not belong"):
        ProofEngine(private, public).public_key_hex  # noqa: B018


def test_world_readable_key_file_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    private = tmp_path / "priv.json"
    private.write_text(json.dumps(REFERENCE_SEED_FILE))
    os.chmod(private, 0o644)
    ProofEngine(private).public_key_hex  # noqa: B018
    assert "chmod 600" in caplog.text


def test_fingerprint_is_short_and_stable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARIO_MLFLOW_SIGNING_KEY", REFERENCE_SEED_FILE["seed"])
    engine = ProofEngine()
    assert engine.fingerprint.startswith("ed25519:")
    assert len(engine.fingerprint) == len("ed25519:") + 16
    assert engine.fingerprint == ProofEngine().fingerprint
