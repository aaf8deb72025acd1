"""Ed25519 and Arweave RSA-4096 signers, and the never-raising signature check."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from nacl.signing import VerifyKey

from ario_mlflow.arweave.encoding import b58encode, b64url_decode, b64url_encode
from ario_mlflow.arweave.signers import (
    ArweaveSigner,
    Ed25519Signer,
    Signer,
    verify_item_signature,
)
from ario_mlflow.arweave.wallet import generate_arweave_jwk

SEED = bytes(range(32))
# Public key of seed 00..1f (reference §5.1 example).
SEED_PUBLIC_KEY = base64.b64decode("A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=")
MESSAGE = hashlib.sha384(b"a deep hash stands in here").digest()


@pytest.fixture(scope="module")
def rsa_signer(arweave_jwk: dict[str, str]) -> ArweaveSigner:
    return ArweaveSigner(arweave_jwk)


def _b64int(value: str) -> int:
    return int.from_bytes(b64url_decode(value), "big")


def _intb64(value: int) -> str:
    return b64url_encode(value.to_bytes((value.bit_length() + 7) // 8, "big"))


# --- Ed25519 ---------------------------------------------------------------------------


def test_ed25519_signer_properties():
    signer = Ed25519Signer(SEED)
    assert isinstance(signer, Signer)
    assert signer.signature_type == 2
    assert signer.signature_length == 64
    assert signer.token == "solana"
    assert signer.owner == SEED_PUBLIC_KEY
    assert signer.address == b58encode(SEED_PUBLIC_KEY)
    assert signer.address == "FAe4sisG95oZ42w7buUn5qEE4TAnfTTFPiguZUHmhiF"
    assert signer.seed == SEED


def test_ed25519_signature_is_raw_ed25519_over_the_message():
    signer = Ed25519Signer(SEED)
    signature = signer.sign(MESSAGE)
    assert len(signature) == 64
    VerifyKey(SEED_PUBLIC_KEY).verify(MESSAGE, signature)  # raises if wrong
    assert signer.sign(MESSAGE) == signature  # deterministic
    assert verify_item_signature(2, signer.owner, MESSAGE, signature)


@pytest.mark.parametrize("seed", [b"", bytes(31), bytes(33), bytearray(32), "0" * 32])
def test_ed25519_signer_rejects_bad_seeds(seed):
    with pytest.raises(ValueError, match="32 bytes"):
        Ed25519Signer(seed)


def test_ed25519_repr_hides_the_secret():
    text = repr(Ed25519Signer(SEED))
    assert "FAe4sisG95oZ42w7buUn5qEE4TAnfTTFPiguZUHmhiF" in text
    assert SEED.hex() not in text


# --- Arweave RSA -----------------------------------------------------------------------


def test_arweave_signer_properties(rsa_signer, arweave_jwk):
    assert isinstance(rsa_signer, Signer)
    assert rsa_signer.signature_type == 1
    assert rsa_signer.signature_length == 512
    assert rsa_signer.token == "arweave"
    n = b64url_decode(arweave_jwk["n"])
    assert rsa_signer.owner == n
    assert len(rsa_signer.owner) == 512
    assert rsa_signer.address == b64url_encode(hashlib.sha256(n).digest())
    assert len(rsa_signer.address) == 43
    assert arweave_jwk["d"] not in repr(rsa_signer)


def test_arweave_signature_is_pss_sha256_with_max_salt(rsa_signer, arweave_jwk):
    signature = rsa_signer.sign(MESSAGE)
    assert len(signature) == 512
    public = rsa.RSAPublicNumbers(65537, _b64int(arweave_jwk["n"])).public_key()
    # 4096-bit key, SHA-256: the maximal salt is 512 - 32 - 2 = 478 bytes.
    public.verify(
        signature,
        MESSAGE,
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=478),
        hashes.SHA256(),
    )
    with pytest.raises(InvalidSignature):
        public.verify(
            signature,
            MESSAGE,
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
            hashes.SHA256(),
        )
    assert rsa_signer.sign(MESSAGE) != signature  # PSS is randomized
    assert verify_item_signature(1, rsa_signer.owner, MESSAGE, signature)


def test_arweave_verify_accepts_other_salt_lengths(rsa_signer, arweave_jwk):
    # Other Arweave clients sign with salt 32 or 0; arbundles accepts them, so do we.
    private = rsa.RSAPrivateNumbers(
        _b64int(arweave_jwk["p"]),
        _b64int(arweave_jwk["q"]),
        _b64int(arweave_jwk["d"]),
        _b64int(arweave_jwk["dp"]),
        _b64int(arweave_jwk["dq"]),
        _b64int(arweave_jwk["qi"]),
        rsa.RSAPublicNumbers(65537, _b64int(arweave_jwk["n"])),
    ).private_key()
    for salt in (0, 32):
        signature = private.sign(
            MESSAGE,
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt),
            hashes.SHA256(),
        )
        assert verify_item_signature(1, rsa_signer.owner, MESSAGE, signature)
    pkcs1 = private.sign(MESSAGE, padding.PKCS1v15(), hashes.SHA256())
    assert not verify_item_signature(1, rsa_signer.owner, MESSAGE, pkcs1)


@pytest.mark.parametrize(
    ("field", "change", "message"),
    [
        ("q", lambda v: v + 2, "p\\*q must equal modulus"),
        ("n", lambda v: v + 2, "inconsistent RSA key material"),
        ("d", lambda v: v ^ 2, "inconsistent RSA key material"),
        ("dp", lambda v: v + 2, "inconsistent RSA key material"),
        ("qi", lambda v: v + 1, "inconsistent RSA key material"),
        ("e", lambda v: 3, "exponent is 3"),
        ("n", lambda v: v >> 8, "modulus is 4088 bits"),
    ],
)
def test_arweave_signer_rejects_invalid_key_material(arweave_jwk, field, change, message):
    jwk = dict(arweave_jwk)
    jwk[field] = _intb64(change(_b64int(jwk[field])))
    with pytest.raises(ValueError, match=message):
        ArweaveSigner(jwk)


def test_arweave_signer_rejects_malformed_jwks(arweave_jwk):
    for field in ("n", "d", "qi"):
        jwk = {k: v for k, v in arweave_jwk.items() if k != field}
        with pytest.raises(ValueError, match=f"'{field}' is not a base64url string"):
            ArweaveSigner(jwk)
    with pytest.raises(ValueError, match="'p' is not a base64url string"):
        ArweaveSigner({**arweave_jwk, "p": "not base64url!"})
    with pytest.raises(ValueError, match="'e' is not a base64url string"):
        ArweaveSigner({**arweave_jwk, "e": 65537})
    with pytest.raises(ValueError, match="not RSA"):
        ArweaveSigner({**arweave_jwk, "kty": "EC"})
    with pytest.raises(ValueError, match="JWK object"):
        ArweaveSigner([arweave_jwk])  # type: ignore[arg-type]


def test_arweave_signer_rejects_2048_bit_keys():
    with pytest.raises(ValueError, match="modulus is 2048 bits"):
        ArweaveSigner(generate_arweave_jwk(bits=2048))


# --- verify_item_signature -------------------------------------------------------------


def test_verify_rejects_tampering_for_both_types(rsa_signer):
    for signer in (Ed25519Signer(SEED), rsa_signer):
        kind = signer.signature_type
        signature = signer.sign(MESSAGE)
        assert verify_item_signature(kind, signer.owner, MESSAGE, signature)
        assert not verify_item_signature(kind, signer.owner, MESSAGE[:-1] + b"\0", signature)
        bad = bytes([signature[0] ^ 1]) + signature[1:]
        assert not verify_item_signature(kind, signer.owner, MESSAGE, bad)
        other_owner = bytes([signer.owner[5] ^ 1]).join([signer.owner[:5], signer.owner[6:]])
        assert not verify_item_signature(kind, other_owner, MESSAGE, signature)
        other_type = 1 if kind == 2 else 2
        assert not verify_item_signature(other_type, signer.owner, MESSAGE, signature)


@pytest.mark.parametrize(
    "args",
    [
        (2, bytes(31), MESSAGE, bytes(64)),
        (2, bytes(32), MESSAGE, bytes(63)),
        (2, bytes(32), MESSAGE, bytes(64)),  # small-order key, zero signature
        (1, bytes(512), MESSAGE, bytes(512)),  # modulus zero
        (1, b"\xff" * 512, MESSAGE, bytes(512)),
        (1, bytes(511), MESSAGE, bytes(512)),
        (3, bytes(65), MESSAGE, bytes(65)),
        (0, b"", b"", b""),
        ("2", bytes(32), MESSAGE, bytes(64)),
        (2, "owner", MESSAGE, bytes(64)),
        (2, bytes(32), None, bytes(64)),
        (2, bytes(32), MESSAGE, bytearray(64)),
        (None, None, None, None),
    ],
)
def test_verify_never_raises(args):
    assert verify_item_signature(*args) is False
