"""Fuzzing funding-wallet loading: a caller-named wallet that is unusable is a
``WalletLoadError`` naming the file, never a raw KeyError/ValueError/TypeError/binascii
traceback; a default wallet that is unusable is left untouched and replaced in memory."""

from __future__ import annotations

import json
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ario_mlflow.arweave.encoding import b58decode, b58encode
from ario_mlflow.arweave.signers import Ed25519Signer, verify_item_signature
from ario_mlflow.arweave.wallet import (
    DEFAULT_WALLET_NAME,
    JWK_FIELDS,
    LoadedWallet,
    generate_arweave_jwk,
    generate_solana_wallet,
    load_wallet,
)
from ario_mlflow.errors import WalletLoadError
from tests.fuzz.strategies import (
    fuzz_settings,
    mutated_bytes,
    mutated_object,
    outcome_of,
    plain_json,
)

_MESSAGE = b"m" * 48


@lru_cache(maxsize=1)
def _jwk() -> dict[str, str]:
    """One RSA-4096 JWK for the module (generation takes about a second)."""
    return generate_arweave_jwk()


_SOLANA = generate_solana_wallet()


def _check_loaded(wallet: LoadedWallet) -> None:
    """A wallet that loads must sign items that verify under its own owner bytes."""
    signer = wallet.signer
    assert wallet.wallet_type in ("solana", "arweave")
    assert verify_item_signature(
        signer.signature_type, signer.owner, _MESSAGE, signer.sign(_MESSAGE)
    )


def _load(path: Path, home: Path) -> LoadedWallet | None:
    """``load_wallet`` of a caller-chosen path: a wallet or ``WalletLoadError`` only."""
    wallet, error = outcome_of(lambda: load_wallet(path, home=home), WalletLoadError)
    if wallet is None:
        assert "funding wallet" in str(error), str(error)
        return None
    _check_loaded(wallet)
    assert wallet.wallet_mode == "user-configured"
    return wallet


def _write(tmp_path_factory: pytest.TempPathFactory, content: bytes) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("wallet")
    path = directory / "wallet.json"
    path.write_bytes(content)
    return path, directory / "home"


_jwk_shaped = st.fixed_dictionaries(
    {},
    optional={
        name: st.text(max_size=20) | st.integers() | st.none() | st.lists(st.integers(), max_size=2)
        for name in JWK_FIELDS
    },
)
_solana_arrays = (
    st.lists(st.integers(0, 255), min_size=0, max_size=70)
    | st.lists(st.integers(-300, 300), min_size=64, max_size=64)
    | st.lists(
        st.integers(0, 255) | st.booleans() | st.floats(0, 255) | st.text(max_size=2),
        min_size=64,
        max_size=64,
    )
)
_base58_strings = st.binary(max_size=70).map(b58encode) | st.text(max_size=90)


@fuzz_settings(200)
@given(
    st.binary(max_size=300)
    | plain_json.map(lambda v: json.dumps(v).encode())
    | _jwk_shaped.map(lambda v: json.dumps(v).encode())
    | _solana_arrays.map(lambda v: json.dumps(v).encode())
    | _base58_strings.map(lambda v: json.dumps(v).encode())
)
@example(b"\xef\xbb\xbf" + json.dumps(_SOLANA).encode())
@example(json.dumps([*_SOLANA[:32], *([0] * 32)]).encode())
@example(json.dumps(b58encode(bytes(_SOLANA[:31]))).encode())
@example(b"[" * 100_000)
def test_arbitrary_wallet_files_are_a_wallet_or_a_typed_error(
    tmp_path_factory: pytest.TempPathFactory, content: bytes
) -> None:
    """Any file content: a usable wallet or ``WalletLoadError``, nothing else."""
    path, home = _write(tmp_path_factory, content)
    _load(path, home)


@fuzz_settings(40)
@given(st.data())
def test_mutated_jwks_are_a_working_wallet_or_a_typed_error(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """A real Arweave JWK with fields dropped, replaced by any JSON, or text flipped."""
    mutated = data.draw(mutated_object(_jwk(), JWK_FIELDS).filter(_json_dumpable))
    path, home = _write(tmp_path_factory, json.dumps(mutated).encode())
    wallet = _load(path, home)
    if wallet is not None:  # only edits that keep the key material intact may load
        assert all(mutated[name] == _jwk()[name] for name in JWK_FIELDS[1:])


@fuzz_settings(150)
@given(st.data())
def test_mutated_wallet_bytes_are_a_working_wallet_or_a_typed_error(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """Bit flips, truncation and extension of valid Solana and JWK wallet files."""
    original = data.draw(
        st.sampled_from(
            [
                json.dumps(_SOLANA).encode(),
                json.dumps(b58encode(bytes(_SOLANA))).encode(),
                json.dumps(_jwk()).encode(),
            ]
        )
    )
    path, home = _write(tmp_path_factory, data.draw(mutated_bytes(original)))
    wallet = _load(path, home)
    if wallet is not None and wallet.wallet_type == "solana":
        # an edited Solana secret loads only if its public half still matches its seed
        parsed = json.loads(path.read_bytes())
        secret = bytes(parsed) if isinstance(parsed, list) else b58decode(parsed.strip())
        assert wallet.signer.owner == Ed25519Signer(secret[:32]).owner
        assert len(secret) == 32 or secret[32:] == wallet.signer.owner


@fuzz_settings(150, fixtures_are_per_test=True)  # monkeypatch only changes directory
@given(
    st.text(max_size=40)
    | st.sampled_from(["~", "~nobody-here/w.json", "~~", "/", ".", "..", "/dev/null", "/proc"])
    | st.text(max_size=10).map(lambda t: f"~{t}/wallet.json")
)
@example("wallet\x00.json")
@example("~no-such-user-ario/wallet.json")
@example("~\x00")
def test_arbitrary_wallet_paths_are_a_typed_error(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """A wallet path that cannot be a wallet file (NUL bytes, unknown ``~user``, a
    directory, nothing there) is a ``WalletLoadError``; an empty path means "no choice"."""
    directory = tmp_path_factory.mktemp("paths")
    monkeypatch.chdir(directory)
    home = directory / "home"
    wallet, error = outcome_of(lambda: load_wallet(name, home=home), WalletLoadError)
    if wallet is None:
        assert "funding wallet" in str(error), str(error)
        return
    _check_loaded(wallet)
    if name == "":
        assert wallet.wallet_mode == "persistent"
        assert wallet.path == home / DEFAULT_WALLET_NAME


@fuzz_settings(150)
@given(
    st.binary(max_size=200)
    | plain_json.map(lambda v: json.dumps(v).encode())
    | _solana_arrays.map(lambda v: json.dumps(v).encode())
)
def test_a_broken_default_wallet_is_never_touched(
    tmp_path_factory: pytest.TempPathFactory, content: bytes
) -> None:
    """An unusable ``$ARIO_MLFLOW_HOME/wallet.json`` does not raise: a throw-away wallet
    is used and the file (maybe the only copy of a funded key) keeps its bytes."""
    home = tmp_path_factory.mktemp("home")
    path = home / DEFAULT_WALLET_NAME
    path.write_bytes(content)
    wallet = load_wallet(None, home=home)
    _check_loaded(wallet)
    assert wallet.wallet_mode in ("persistent", "ephemeral")
    assert path.read_bytes() == content


def test_a_huge_base58_string_is_rejected_quickly(tmp_path: Path) -> None:
    """Regression: base58 decoding is quadratic; a 200 000-character string took ~16 s
    to reject. Anything longer than a 64-byte secret's encoding is refused up front."""
    path = tmp_path / "wallet.json"
    path.write_text(json.dumps("2" * 200_000))
    started = time.perf_counter()
    with pytest.raises(WalletLoadError, match="base58"):
        load_wallet(path, home=tmp_path / "home")
    assert time.perf_counter() - started < 1.0


def _json_dumpable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
