"""The local gateway's own RSA wallet: signs upload receipts and operator attestations.

Generated once (4096 bits like Turbo's wallet, smaller on request for fast tests) and
stored in the data dir as an Arweave JWK keyfile with mode 0600, then reused, so receipts
and attestations from one data dir always name the same key. A corrupt file is an error,
never silently replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ario_mlflow.arweave.encoding import b64url_decode, b64url_encode
from ario_mlflow.errors import ConfigError

WALLET_FILENAME = "gateway-wallet.json"
_EXPONENT = 65537
_FIELDS = ("n", "e", "d", "p", "q", "dp", "dq", "qi")


def _encode(value: int) -> str:
    return b64url_encode(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))


def _to_jwk(key: rsa.RSAPrivateKey) -> dict[str, str]:
    numbers = key.private_numbers()
    public = numbers.public_numbers
    values = (public.n, public.e, numbers.d, numbers.p, numbers.q)
    values_crt = (numbers.dmp1, numbers.dmq1, numbers.iqmp)
    pairs = zip(_FIELDS, (*values, *values_crt), strict=True)
    return {"kty": "RSA", **{name: _encode(value) for name, value in pairs}}


def _from_jwk(jwk: object) -> rsa.RSAPrivateKey:
    if not isinstance(jwk, dict) or jwk.get("kty") != "RSA":
        raise ValueError("not an RSA JWK")
    n, e, d, p, q, dp, dq, qi = (
        int.from_bytes(b64url_decode(jwk[name]), "big") for name in _FIELDS
    )
    if e != _EXPONENT:
        raise ValueError(f"public exponent {e} is not 65537")
    if p * q != n:
        raise ValueError("p * q does not equal n")
    public = rsa.RSAPublicNumbers(e, n)
    # Full validation (primality) costs ~0.1 s per start; a sign/verify probe catches any
    # corruption of our own file just as surely.
    key = rsa.RSAPrivateNumbers(p, q, d, dp, dq, qi, public).private_key(
        unsafe_skip_rsa_key_validation=True
    )
    probe = b"ario-mlflow local gateway wallet check"
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=0)
    try:
        key.public_key().verify(key.sign(probe, pss, hashes.SHA256()), probe, pss, hashes.SHA256())
    except InvalidSignature:
        raise ValueError("private and public key do not match") from None
    return key


def load_or_create_wallet(data_dir: str | Path, *, key_bits: int = 4096) -> rsa.RSAPrivateKey:
    """The wallet stored in ``data_dir``, generating (and storing) it the first time."""
    path = Path(data_dir) / WALLET_FILENAME
    if not path.exists():
        if key_bits < 2048:
            raise ConfigError(f"key_bits={key_bits}: the gateway wallet needs at least 2048 bits")
        _create(path, key_bits)
    try:
        return _from_jwk(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"local gateway wallet {path} is unreadable ({exc}); move it away to create a new one"
        ) from None


def _create(path: Path, key_bits: int) -> None:
    """Write a new wallet, unless another process wins the race (then its wallet stays)."""
    key = rsa.generate_private_key(public_exponent=_EXPONENT, key_size=key_bits)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(_to_jwk(key), handle)
        os.chmod(temporary, 0o600)
        with contextlib.suppress(FileExistsError):  # another process won the race
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
