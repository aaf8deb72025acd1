"""The Ed25519 signing identity: the only code that reads or writes key files.

One identity per installation: generated once, on first need, under
``$ARIO_MLFLOW_HOME/keys`` (files 0600, directory 0700) and loaded on every later call.
Nothing here ever overwrites a key file: creation publishes with a hard link, which fails
if another process got there first, and the loser loads the winner's key.
``ARIO_MLFLOW_SIGNING_KEY`` (base64 of the 32-byte seed) overrides the files.

File format (that of ar-io-mlflow 0.3.0, so existing files load unchanged): private
``{"seed": "<base64 seed>"}``, public ``{"key": "<base64 verify key>"}``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from nacl.signing import SigningKey

from ario_mlflow._files import ensure_private_dir, write_new_file
from ario_mlflow.config import Settings, load_settings
from ario_mlflow.errors import SigningKeyError
from ario_mlflow.proof.ed25519 import (
    SEED_BYTES,
    generate_signing_key,
    key_fingerprint,
    public_key_hex,
    signing_key_from_seed,
)

logger = logging.getLogger(__name__)

PRIVATE_KEY_FILE = "ed25519_private.json"
PUBLIC_KEY_FILE = "ed25519_public.json"
ENV_SIGNING_KEY = "ARIO_MLFLOW_SIGNING_KEY"


@dataclass(frozen=True)
class SigningIdentity:
    """A loaded signing key and how to name it."""

    key: SigningKey
    source: str  # "env:ARIO_MLFLOW_SIGNING_KEY" or the private key file's path

    @property
    def public_key_hex(self) -> str:
        """The 64-hex verify key, as it appears in envelopes."""
        return public_key_hex(self.key)

    @property
    def fingerprint(self) -> str:
        """Short display label of the public key."""
        return key_fingerprint(self.public_key_hex)


def default_key_paths(settings: Settings | None = None) -> tuple[Path, Path]:
    """``(private, public)`` key file paths under ``$ARIO_MLFLOW_HOME/keys``."""
    keys_dir = (settings or load_settings()).keys_dir
    return keys_dir / PRIVATE_KEY_FILE, keys_dir / PUBLIC_KEY_FILE


def key_from_env_value(value: str) -> SigningKey:
    """Decode ``ARIO_MLFLOW_SIGNING_KEY``; a malformed value names the variable."""
    try:
        seed = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SigningKeyError(
            f"{ENV_SIGNING_KEY} is not valid base64 (expected the base64 of a 32-byte seed)"
        ) from None
    if len(seed) != SEED_BYTES:
        raise SigningKeyError(
            f"{ENV_SIGNING_KEY} decodes to {len(seed)} bytes; an Ed25519 seed is {SEED_BYTES}"
        )
    return signing_key_from_seed(seed)


def _read_json_field(path: Path, field: str, what: str) -> bytes:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        encoded = document[field]
        raw = base64.b64decode(encoded, validate=True)
    except OSError as exc:
        raise SigningKeyError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError, KeyError, binascii.Error):
        raise SigningKeyError(
            f"{what} {path} is not in the expected format "
            f'({{"{field}": "<base64 of 32 bytes>"}}); it was left untouched'
        ) from None
    if len(raw) != SEED_BYTES:
        raise SigningKeyError(f"{what} {path} holds {len(raw)} bytes, expected {SEED_BYTES}")
    return raw


def _warn_if_readable_by_others(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning(
            "signing key %s is readable by other users (mode %o); run: chmod 600 %s",
            path,
            stat.S_IMODE(mode),
            path,
        )


def read_key_files(private_path: Path, public_path: Path | None) -> SigningKey:
    """Load a private key file and, if given and present, check its public key file."""
    key = signing_key_from_seed(_read_json_field(private_path, "seed", "private key file"))
    _warn_if_readable_by_others(private_path)
    if public_path is not None and public_path.exists():
        public = _read_json_field(public_path, "key", "public key file")
        if public != bytes(key.verify_key):
            raise SigningKeyError(
                f"public key file {public_path} does not belong to private key {private_path}"
            )
    return key


def _key_documents(key: SigningKey) -> tuple[str, str]:
    seed = base64.b64encode(bytes(key)).decode("ascii")
    public = base64.b64encode(bytes(key.verify_key)).decode("ascii")
    return json.dumps({"seed": seed}), json.dumps({"key": public})


def load_or_create_key_files(private_path: Path, public_path: Path | None) -> SigningKey:
    """Load the key at ``private_path``; create it there first if it does not exist."""
    if not private_path.exists():
        try:
            ensure_private_dir(private_path.parent)
        except OSError as exc:
            raise SigningKeyError(
                f"cannot create key directory {private_path.parent}: {exc}"
            ) from None
        candidate = generate_signing_key()
        private_doc, _ = _key_documents(candidate)
        try:
            created = write_new_file(private_path, private_doc.encode())
        except OSError as exc:
            raise SigningKeyError(f"cannot write signing key {private_path}: {exc}") from None
        if created:
            logger.info(
                "created signing key %s (%s)",
                private_path,
                key_fingerprint(public_key_hex(candidate)),
            )
    key = read_key_files(private_path, None)
    if public_path is not None:
        if not public_path.exists():
            try:
                ensure_private_dir(public_path.parent)
                write_new_file(public_path, _key_documents(key)[1].encode())
            except OSError as exc:
                raise SigningKeyError(f"cannot write public key {public_path}: {exc}") from None
        read_key_files(private_path, public_path)
    return key


def load_signing_identity(
    private_key_path: str | os.PathLike[str] | None = None,
    public_key_path: str | os.PathLike[str] | None = None,
    *,
    create: bool = True,
    settings: Settings | None = None,
) -> SigningIdentity | None:
    """The signing identity, by precedence: env seed, explicit paths, default files.

    With ``create=False`` nothing is ever written and ``None`` means "no key yet".
    """
    settings = settings or load_settings()
    if settings.signing_key:
        return SigningIdentity(key_from_env_value(settings.signing_key), f"env:{ENV_SIGNING_KEY}")
    if private_key_path is not None:
        private = Path(private_key_path).expanduser()
        public = Path(public_key_path).expanduser() if public_key_path is not None else None
    else:
        private, public = default_key_paths(settings)
    if not create:
        if not private.exists():
            return None
        return SigningIdentity(read_key_files(private, public), str(private))
    return SigningIdentity(load_or_create_key_files(private, public), str(private))
