"""Funding wallet resolution: caller wallets, the default wallet, generation, races."""

from __future__ import annotations

import json
import logging
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from ario_mlflow.arweave import wallet as wallet_module
from ario_mlflow.arweave.encoding import b58encode, b64url_decode, b64url_encode
from ario_mlflow.arweave.signers import ArweaveSigner, Ed25519Signer
from ario_mlflow.arweave.wallet import (
    JWK_FIELDS,
    LoadedWallet,
    generate_arweave_jwk,
    generate_solana_wallet,
    load_wallet,
)
from ario_mlflow.errors import ConfigError, WalletLoadError

SEED = bytes(range(32))
PUBLIC = bytes(SigningKey(SEED).verify_key)
ADDRESS = b58encode(PUBLIC)


def _write(path: Path, content: object) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


# --- generators ------------------------------------------------------------------------


def test_generate_solana_wallet():
    wallet = generate_solana_wallet()
    assert len(wallet) == 64
    assert all(isinstance(v, int) and 0 <= v <= 255 for v in wallet)
    assert bytes(SigningKey(bytes(wallet[:32])).verify_key) == bytes(wallet[32:])
    assert generate_solana_wallet() != wallet


def test_generate_arweave_jwk(arweave_jwk):
    assert set(arweave_jwk) == set(JWK_FIELDS)
    assert arweave_jwk["kty"] == "RSA"
    assert arweave_jwk["e"] == "AQAB"
    for name in JWK_FIELDS[1:]:
        value = arweave_jwk[name]
        assert "=" not in value
        assert b64url_encode(b64url_decode(value)) == value
    assert len(b64url_decode(arweave_jwk["n"])) == 512
    ArweaveSigner(arweave_jwk)  # consistent key material


# --- caller-supplied wallets -----------------------------------------------------------


def test_solana_id_json(tmp_path, home):
    path = _write(tmp_path / "id.json", list(SEED + PUBLIC))
    loaded = load_wallet(path, home=home)
    assert loaded == LoadedWallet(loaded.signer, "solana", "user-configured", path)
    assert isinstance(loaded.signer, Ed25519Signer)
    assert loaded.signer.address == ADDRESS
    assert not home.exists()  # a caller wallet never creates the default one


def test_caller_path_as_string_and_tilde(tmp_path, home, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    _write(tmp_path / "id.json", list(SEED + PUBLIC))
    assert load_wallet(str(tmp_path / "id.json"), home=home).signer.address == ADDRESS
    loaded = load_wallet("~/id.json", home=home)
    assert loaded.signer.address == ADDRESS
    assert loaded.path == tmp_path / "id.json"


@pytest.mark.parametrize("secret", [SEED + PUBLIC, SEED])
def test_base58_string(tmp_path, home, secret):
    path = _write(tmp_path / "key.json", f"  {json.dumps(b58encode(secret))}\n")
    loaded = load_wallet(path, home=home)
    assert (loaded.wallet_type, loaded.wallet_mode) == ("solana", "user-configured")
    assert loaded.signer.address == ADDRESS


def test_arweave_jwk(tmp_path, home, arweave_jwk):
    path = _write(tmp_path / "jwk.json", arweave_jwk)
    loaded = load_wallet(path, home=home)
    assert (loaded.wallet_type, loaded.wallet_mode, loaded.path) == (
        "arweave",
        "user-configured",
        path,
    )
    assert isinstance(loaded.signer, ArweaveSigner)
    assert loaded.signer.owner == b64url_decode(arweave_jwk["n"])


def test_missing_file(tmp_path, home):
    with pytest.raises(WalletLoadError, match=r"nope\.json' does not exist"):
        load_wallet(tmp_path / "nope.json", home=home)
    assert not home.exists()


def test_unreadable_file(tmp_path, home):
    directory = tmp_path / "dir.json"
    directory.mkdir()
    with pytest.raises(WalletLoadError, match="cannot be read"):
        load_wallet(directory, home=home)


@pytest.mark.parametrize(
    "content", [b"", b"{", b"[1, 2,]", b"\xff\xfe not utf-8", b"[" * 100_000, b"solana"]
)
def test_not_valid_json(tmp_path, home, content):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(WalletLoadError, match="is not valid JSON"):
        load_wallet(path, home=home)


def test_too_large(tmp_path, home):
    path = tmp_path / "big.json"
    path.write_bytes(b" " * (2 << 20))
    with pytest.raises(WalletLoadError, match="too large"):
        load_wallet(path, home=home)


def test_incomplete_jwk(tmp_path, home, arweave_jwk):
    partial = {k: v for k, v in arweave_jwk.items() if k not in ("dp", "qi")}
    path = _write(tmp_path / "jwk.json", partial)
    with pytest.raises(WalletLoadError, match=r"not a complete RSA JWK \(missing dp, qi\)"):
        load_wallet(path, home=home)
    public_only = _write(tmp_path / "pub.json", {"kty": "RSA", "n": "AQAB", "e": "AQAB"})
    with pytest.raises(WalletLoadError, match="not a complete RSA JWK"):
        load_wallet(public_only, home=home)


def _tweak(jwk: dict[str, str], field: str, delta: int) -> dict[str, str]:
    value = int.from_bytes(b64url_decode(jwk[field]), "big") + delta
    return {**jwk, field: b64url_encode(value.to_bytes((value.bit_length() + 7) // 8, "big"))}


@pytest.mark.parametrize(("field", "delta"), [("q", 2), ("n", 2), ("d", 2), ("qi", 1)])
def test_complete_jwk_with_invalid_key_material(tmp_path, home, arweave_jwk, field, delta):
    # The reference silently disabled anchoring here (§10.1 item 14); we refuse loudly.
    path = _write(tmp_path / "jwk.json", _tweak(arweave_jwk, field, delta))
    with pytest.raises(WalletLoadError, match="RSA JWK with invalid key material"):
        load_wallet(path, home=home)


def test_jwk_with_wrong_size_or_type(tmp_path, home, arweave_jwk):
    small = _write(tmp_path / "small.json", generate_arweave_jwk(bits=2048))
    with pytest.raises(WalletLoadError, match="modulus is 2048 bits"):
        load_wallet(small, home=home)
    not_rsa = _write(tmp_path / "ec.json", {**arweave_jwk, "kty": "EC"})
    with pytest.raises(WalletLoadError, match=r"invalid key material.*not RSA"):
        load_wallet(not_rsa, home=home)
    garbage = _write(tmp_path / "garbage.json", {**arweave_jwk, "d": "***"})
    with pytest.raises(WalletLoadError, match="'d' is not a base64url string"):
        load_wallet(garbage, home=home)


@pytest.mark.parametrize(
    "content",
    [
        [],
        list(range(63)),
        [*range(63), 256],
        [*range(63), -1],
        [*range(63), 1.0],
        [True] * 64,
        [str(v) for v in range(64)],
        [*SEED, *PUBLIC, 0],
        [[1]] * 64,
    ],
)
def test_bad_solana_array(tmp_path, home, content):
    path = _write(tmp_path / "id.json", content)
    with pytest.raises(WalletLoadError, match=r"not a valid Solana id\.json"):
        load_wallet(path, home=home)


def test_solana_array_with_mismatched_public_key(tmp_path, home):
    path = _write(tmp_path / "id.json", list(SEED + bytes(32)))
    with pytest.raises(WalletLoadError, match="public key does not match"):
        load_wallet(path, home=home)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0OIl",  # not base58 characters
        b58encode(bytes(range(1, 33)) + bytes(1)),  # 33 bytes
        b58encode(SEED + bytes(32)),  # 64 bytes, public key does not match
        b58encode(b"\x01" * 16),
    ],
)
def test_bad_solana_string(tmp_path, home, text):
    path = _write(tmp_path / "key.json", json.dumps(text))
    with pytest.raises(WalletLoadError, match="not a valid Solana key"):
        load_wallet(path, home=home)


@pytest.mark.parametrize("content", ["42", "null", "true", "1.5"])
def test_unrecognized_format(tmp_path, home, content):
    path = _write(tmp_path / "w.json", content)
    with pytest.raises(WalletLoadError, match="not a recognized format"):
        load_wallet(path, home=home)


def test_wallet_load_error_is_a_config_error(tmp_path, home):
    with pytest.raises(ConfigError):
        load_wallet(tmp_path / "missing.json", home=home)


def test_messages_never_contain_key_material(tmp_path, home, arweave_jwk):
    path = _write(tmp_path / "jwk.json", _tweak(arweave_jwk, "q", 2))
    with pytest.raises(WalletLoadError) as caught:
        load_wallet(path, home=home)
    for field in ("d", "p", "q"):
        assert arweave_jwk[field][:16] not in str(caught.value)


# --- the default wallet ----------------------------------------------------------------


@pytest.mark.parametrize("given", [None, ""])
def test_generates_and_persists_a_solana_wallet(home, given):
    loaded = load_wallet(given, home=home)
    path = home / "wallet.json"
    assert (loaded.wallet_type, loaded.wallet_mode, loaded.path) == ("solana", "persistent", path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    content = json.loads(path.read_text())
    assert len(content) == 64
    assert bytes(content[32:]) == loaded.signer.owner
    assert [p.name for p in home.iterdir()] == ["wallet.json"]  # no temp files left
    again = load_wallet(None, home=home)
    assert again.wallet_mode == "persistent"
    assert again.signer.address == loaded.signer.address
    assert json.loads(path.read_text()) == content


def test_reuses_an_existing_default_wallet(home, arweave_jwk):
    home.mkdir()
    _write(home / "wallet.json", list(SEED + PUBLIC))
    loaded = load_wallet(None, home=home)
    assert (loaded.wallet_type, loaded.wallet_mode) == ("solana", "persistent")
    assert loaded.signer.address == ADDRESS
    _write(home / "wallet.json", arweave_jwk)
    loaded = load_wallet(None, home=home)
    assert (loaded.wallet_type, loaded.wallet_mode) == ("arweave", "persistent")


@pytest.mark.parametrize("content", [b"{corrupt", b"[1, 2, 3]", b'{"kty": "RSA"}', b"null"])
def test_never_overwrites_a_corrupt_default_wallet(home, caplog, content):
    home.mkdir()
    path = home / "wallet.json"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="ario_mlflow.arweave.wallet"):
        first = load_wallet(None, home=home)
        second = load_wallet(None, home=home)
    assert (first.wallet_type, first.wallet_mode, first.path) == ("solana", "ephemeral", None)
    assert first.signer.address != second.signer.address  # in memory, per call
    assert path.read_bytes() == content
    assert any("left untouched" in r.getMessage() for r in caplog.records)
    assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_default_wallet_that_is_a_directory(home):
    (home / "wallet.json").mkdir(parents=True)
    loaded = load_wallet(None, home=home)
    assert loaded.wallet_mode == "ephemeral"
    assert (home / "wallet.json").is_dir()


def test_default_wallet_that_cannot_be_checked(home, monkeypatch):
    def denied(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "exists", denied)
    loaded = load_wallet(None, home=home)
    assert (loaded.wallet_mode, loaded.path) == ("ephemeral", None)


def test_unwritable_home_falls_back_to_ephemeral(tmp_path, caplog):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with caplog.at_level(logging.WARNING):
        loaded = load_wallet(None, home=not_a_dir / "home")
    assert (loaded.wallet_mode, loaded.path) == ("ephemeral", None)
    assert "cannot save a new funding wallet" in caplog.text
    assert not_a_dir.read_text() == "x"


def test_losing_the_creation_race_uses_the_winners_wallet(home, monkeypatch):
    real_write = wallet_module.write_new_file

    def other_process_wins(path, content, mode=0o600):
        # Another process publishes its wallet between our check and our write.
        assert real_write(path, json.dumps(list(SEED + PUBLIC)).encode(), mode)
        return real_write(path, content, mode)

    monkeypatch.setattr(wallet_module, "write_new_file", other_process_wins)
    loaded = load_wallet(None, home=home)
    assert (loaded.wallet_mode, loaded.path) == ("persistent", home / "wallet.json")
    assert loaded.signer.address == ADDRESS


_RACER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from ario_mlflow.arweave.wallet import load_wallet
    home, start = Path(sys.argv[1]), float(sys.argv[2])
    time.sleep(max(0.0, start - time.time()))
    loaded = load_wallet(None, home=home)
    print(loaded.signer.address, loaded.wallet_mode)
    """
)


def test_processes_racing_to_create_the_default_wallet_agree(home):
    start = time.time() + 1.5  # every racer is imported and waiting by then
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, str(home), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    outputs = []
    for racer in racers:
        stdout, stderr = racer.communicate(timeout=60)
        assert racer.returncode == 0, stderr
        outputs.append(stdout.split())
    addresses = {address for address, _mode in outputs}
    assert len(addresses) == 1, outputs
    assert {mode for _address, mode in outputs} == {"persistent"}
    stored = json.loads((home / "wallet.json").read_text())
    assert b58encode(bytes(stored[32:])) == addresses.pop()
    assert [p.name for p in home.iterdir()] == ["wallet.json"]
