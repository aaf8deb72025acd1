"""The funding wallet: which key signs (and pays for) the data items we upload.

Resolution, in order:

1. A wallet the caller names (argument or ``ARIO_MLFLOW_ARWEAVE_WALLET``) is used as is;
   any problem with it is a :class:`~ario_mlflow.errors.WalletLoadError`. We never pay
   with a wallet the operator did not choose.
2. Otherwise ``$ARIO_MLFLOW_HOME/wallet.json`` is reused if it exists. If it cannot be
   used we warn and fall back to a throw-away wallet, but never overwrite the file: it
   may hold the only copy of a funded key.
3. Otherwise a Solana wallet is generated and saved there (mode 0600), atomically, so
   that processes racing to create it all end up with the one that won.

Accepted formats: an Arweave RSA JWK object; a Solana CLI ``id.json`` (64 ints: seed ‖
public key); a JSON string holding a base58 Solana secret (32-byte seed or 64 bytes).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric import rsa
from nacl.bindings import crypto_sign_keypair

from ario_mlflow._files import ensure_private_dir, write_new_file
from ario_mlflow.arweave.encoding import b58decode, b64url_encode
from ario_mlflow.arweave.signers import ArweaveSigner, Ed25519Signer, Signer
from ario_mlflow.errors import WalletLoadError

logger = logging.getLogger(__name__)

WalletType = Literal["solana", "arweave"]
WalletMode = Literal["user-configured", "persistent", "ephemeral"]

DEFAULT_WALLET_NAME = "wallet.json"
JWK_FIELDS = ("kty", "n", "e", "d", "p", "q", "dp", "dq", "qi")
#: The longest base58 text of a 64-byte Solana secret. Base58 decoding is quadratic in
#: the text length, so longer strings are refused before decoding.
_MAX_BASE58_SECRET_CHARS = 88
#: Wallet files are a few kilobytes; refuse to read anything absurdly larger.
_MAX_WALLET_BYTES = 1 << 20


@dataclass(frozen=True)
class LoadedWallet:
    """A resolved funding wallet and how it was obtained."""

    signer: Signer
    wallet_type: WalletType
    wallet_mode: WalletMode
    path: Path | None


# --- generation ------------------------------------------------------------------------


def generate_solana_wallet() -> list[int]:
    """A fresh Solana keypair in ``id.json`` form: 64 ints, seed ‖ public key."""
    public_key, secret = crypto_sign_keypair()
    return list(secret[:32] + public_key)


def _int_b64url(value: int) -> str:
    return b64url_encode(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def generate_arweave_jwk(bits: int = 4096) -> dict[str, str]:
    """A fresh RSA private JWK (``kty, n, e, d, p, q, dp, dq, qi``), as Arweave wallets are.

    Slow for 4096 bits (seconds); meant for tests and tools.
    """
    numbers = rsa.generate_private_key(public_exponent=65537, key_size=bits).private_numbers()
    public = numbers.public_numbers
    fields = {
        "n": public.n,
        "e": public.e,
        "d": numbers.d,
        "p": numbers.p,
        "q": numbers.q,
        "dp": numbers.dmp1,
        "dq": numbers.dmq1,
        "qi": numbers.iqmp,
    }
    return {"kty": "RSA", **{name: _int_b64url(value) for name, value in fields.items()}}


# --- detection -------------------------------------------------------------------------


def _solana_from_secret(secret: bytes) -> Ed25519Signer | None:
    """Signer for a 32-byte seed or a 64-byte seed ‖ public key; None if inconsistent."""
    if len(secret) not in (32, 64):
        return None
    signer = Ed25519Signer(secret[:32])
    if len(secret) == 64 and secret[32:] != signer.owner:
        return None
    return signer


def _is_byte(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255


def _detect(content: Any, where: str) -> tuple[Signer, WalletType]:
    """Signer for parsed wallet JSON; :class:`WalletLoadError` naming the problem."""
    if isinstance(content, dict):
        missing = [name for name in JWK_FIELDS if name not in content]
        if missing:
            raise WalletLoadError(
                f"{where} is not a complete RSA JWK (missing {', '.join(missing)})"
            )
        try:
            return ArweaveSigner(content), "arweave"
        except ValueError as exc:
            raise WalletLoadError(
                f"{where} is an RSA JWK with invalid key material: {exc}"
            ) from None
    if isinstance(content, list):
        if len(content) == 64 and all(_is_byte(value) for value in content):
            signer = _solana_from_secret(bytes(content))
            if signer is not None:
                return signer, "solana"
            raise WalletLoadError(
                f"{where} is not a valid Solana id.json: its public key does not match "
                "its secret key"
            )
        raise WalletLoadError(f"{where} is not a valid Solana id.json (expected 64 ints 0-255)")
    if isinstance(content, str):
        text = content.strip()
        try:
            solana = (
                _solana_from_secret(b58decode(text))
                if len(text) <= _MAX_BASE58_SECRET_CHARS
                else None
            )
        except ValueError:
            solana = None
        if solana is None:
            raise WalletLoadError(
                f"{where} is not a valid Solana key (expected base58 of a 32- or 64-byte secret)"
            )
        return solana, "solana"
    raise WalletLoadError(
        f"{where} is not a recognized format (expected an Arweave JWK, a Solana id.json "
        "array or a base58 Solana key)"
    )


def _read_wallet(path: Path) -> tuple[Signer, WalletType]:
    """Load and detect the wallet file at ``path``; every failure is WalletLoadError."""
    where = f"funding wallet {str(path)!r}"
    try:
        with path.open("rb") as handle:
            content = handle.read(_MAX_WALLET_BYTES + 1)
    except FileNotFoundError:
        raise WalletLoadError(f"{where} does not exist") from None
    except OSError as exc:
        raise WalletLoadError(f"{where} cannot be read: {exc.strerror or exc}") from None
    except ValueError as exc:  # e.g. "embedded null byte": no file can have this name
        raise WalletLoadError(f"{where} is not a usable file name: {exc}") from None
    if len(content) > _MAX_WALLET_BYTES:
        raise WalletLoadError(f"{where} is too large to be a wallet file")
    try:
        parsed = json.loads(content)
    except (ValueError, RecursionError):
        raise WalletLoadError(f"{where} is not valid JSON") from None
    return _detect(parsed, where)


# --- resolution ------------------------------------------------------------------------


def _ephemeral(reason: str) -> LoadedWallet:
    logger.warning(
        "%s; using a temporary in-memory Solana wallet for this process only "
        "(uploads are signed by an address that is lost at exit)",
        reason,
    )
    seed = os.urandom(32)
    return LoadedWallet(Ed25519Signer(seed), "solana", "ephemeral", None)


def _present(path: Path) -> bool:
    try:
        return path.exists() or path.is_symlink()
    except OSError:
        return True  # cannot tell (e.g. no search permission): let the read say why


def _default_wallet(path: Path) -> LoadedWallet:
    if not _present(path):
        wallet = generate_solana_wallet()
        try:
            ensure_private_dir(path.parent)
            created = write_new_file(path, json.dumps(wallet, separators=(",", ":")).encode())
        except OSError as exc:
            return _ephemeral(f"cannot save a new funding wallet at {str(path)!r} ({exc})")
        if created:
            created_signer = Ed25519Signer(bytes(wallet[:32]))
            logger.info("created Solana funding wallet %s at %s", created_signer.address, path)
            return LoadedWallet(created_signer, "solana", "persistent", path)
        # Another process created it first: use theirs, so we all share one wallet.
    try:
        signer, wallet_type = _read_wallet(path)
    except WalletLoadError as exc:
        return _ephemeral(f"{exc}; the file is left untouched")
    return LoadedWallet(signer, wallet_type, "persistent", path)


def load_wallet(wallet_path: str | os.PathLike[str] | None, *, home: Path) -> LoadedWallet:
    """Resolve the funding wallet (see the module docstring for the order).

    ``wallet_path`` is the caller's choice (argument or ``ARIO_MLFLOW_ARWEAVE_WALLET``);
    an empty string counts as no choice. ``home`` is ``$ARIO_MLFLOW_HOME``.
    """
    if wallet_path is not None and os.fspath(wallet_path) != "":
        try:
            path = Path(wallet_path).expanduser()
        except (RuntimeError, ValueError) as exc:  # "~user/…": no such user, a NUL byte
            raise WalletLoadError(
                f"funding wallet {os.fspath(wallet_path)!r}: cannot expand '~' ({exc})"
            ) from None
        signer, wallet_type = _read_wallet(path)
        return LoadedWallet(signer, wallet_type, "user-configured", path)
    return _default_wallet(Path(home) / DEFAULT_WALLET_NAME)
