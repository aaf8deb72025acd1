"""Every ``ARIO_MLFLOW_*`` setting, read in one place.

Settings are read from the environment each time :func:`load_settings` is called (cheap),
so a process, a test or the CLI can change them without restarting anything. Invalid
values raise :class:`~ario_mlflow.errors.ConfigError` naming the variable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ario_mlflow.errors import ConfigError

#: Turbo's mainnet upload service (the turbo-sdk default).
DEFAULT_UPLOAD_URL = "https://upload.ardrive.io"
#: Host used in ``ario.arweave_url`` and as the first read gateway.
DEFAULT_GATEWAY_HOST = "turbo-gateway.com"
#: Read gateways tried after the primary, in order.
DEFAULT_FALLBACK_GATEWAYS = ("turbo-gateway.com", "ardrive.net")

#: ``ARIO_MLFLOW_BACKGROUND`` values (see ``Settings.background``).
BACKGROUND_MODES = ("process", "thread")
_FALSE_WORDS = frozenset({"false", "0", "no", "off"})
_HEX_KEY = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Settings:
    """A snapshot of the ``ARIO_MLFLOW_*`` environment."""

    home: Path
    signing_key: str | None = None
    wallet_path: str | None = None
    upload_url: str = DEFAULT_UPLOAD_URL
    gateway_host: str = DEFAULT_GATEWAY_HOST
    gateways: tuple[str, ...] = DEFAULT_FALLBACK_GATEWAYS
    explicit_gateways: tuple[str, ...] = ()
    verify_url: str | None = None
    trusted_keys: tuple[str, ...] = field(default_factory=tuple)
    capture_otel: bool = True
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    anchor_deadline: float = 5.0
    #: Automatic upload attempts per record before it waits for ``ar-io-mlflow sync``.
    max_attempts: int = 20
    #: Where a predicting process's decisions are uploaded and written back from:
    #: ``process`` (a companion process) or ``thread`` (worker threads of the process).
    background: str = "process"

    @property
    def keys_dir(self) -> Path:
        """Directory of the Ed25519 signing key files."""
        return self.home / "keys"


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"{name}={raw!r} must be a positive, finite number of seconds")
    return value


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value < 1:
        raise ConfigError(f"{name}={raw!r} must be at least 1")
    return value


def split_list(raw: str | None) -> tuple[str, ...]:
    """Split a comma-separated setting, trimming blanks and dropping duplicates."""
    if not raw:
        return ()
    items = (part.strip() for part in raw.split(","))
    return tuple(dict.fromkeys(item for item in items if item))


def resolve_gateways(primary: str, configured: tuple[str, ...]) -> tuple[str, ...]:
    """Ordered read gateways: an explicit list wins, else primary then the defaults."""
    if configured:
        return configured
    return tuple(dict.fromkeys((primary, *DEFAULT_FALLBACK_GATEWAYS)))


def trusted_keys_from_env(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """``ARIO_MLFLOW_TRUSTED_KEYS`` alone (verifiers need nothing else from the settings)."""
    env = os.environ if env is None else env
    trusted = tuple(k.lower() for k in split_list(env.get("ARIO_MLFLOW_TRUSTED_KEYS")))
    for key in trusted:
        if not _HEX_KEY.fullmatch(key):
            raise ConfigError(
                f"ARIO_MLFLOW_TRUSTED_KEYS holds {key!r}, which is not a 64-hex Ed25519 public key"
            )
    return trusted


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from ``env`` (default: ``os.environ``)."""
    env = os.environ if env is None else env
    home_raw = _text(env, "ARIO_MLFLOW_HOME")
    try:
        home = Path(home_raw).expanduser() if home_raw else Path.home() / ".ario-mlflow"
    except (RuntimeError, ValueError) as exc:  # "~nosuchuser", a NUL byte, no home dir
        raise ConfigError(f"ARIO_MLFLOW_HOME={home_raw!r}: cannot expand '~' ({exc})") from None
    gateway_host = _text(env, "ARIO_MLFLOW_GATEWAY_HOST") or DEFAULT_GATEWAY_HOST
    upload_url = (_text(env, "ARIO_MLFLOW_UPLOAD_URL") or DEFAULT_UPLOAD_URL).rstrip("/")
    if not upload_url.startswith(("http://", "https://")):
        raise ConfigError(
            f"ARIO_MLFLOW_UPLOAD_URL={upload_url!r} must be a URL with scheme, "
            "e.g. https://upload.ardrive.io"
        )
    verify_url = _text(env, "ARIO_MLFLOW_ARIO_VERIFY_URL")
    capture = (_text(env, "ARIO_MLFLOW_CAPTURE_OTEL") or "true").lower() not in _FALSE_WORDS
    explicit_gateways = split_list(env.get("ARIO_MLFLOW_GATEWAYS"))
    trusted = trusted_keys_from_env(env)
    background = (_text(env, "ARIO_MLFLOW_BACKGROUND") or "process").lower()
    if background not in BACKGROUND_MODES:
        raise ConfigError(
            f"ARIO_MLFLOW_BACKGROUND={background!r} must be one of {', '.join(BACKGROUND_MODES)}"
        )
    return Settings(
        home=home,
        signing_key=_text(env, "ARIO_MLFLOW_SIGNING_KEY"),
        wallet_path=_text(env, "ARIO_MLFLOW_ARWEAVE_WALLET"),
        upload_url=upload_url,
        gateway_host=gateway_host,
        gateways=resolve_gateways(gateway_host, explicit_gateways),
        explicit_gateways=explicit_gateways,
        verify_url=verify_url.rstrip("/") if verify_url else None,
        trusted_keys=trusted,
        capture_otel=capture,
        connect_timeout=_positive_float(env, "ARIO_MLFLOW_CONNECT_TIMEOUT", 5.0),
        read_timeout=_positive_float(env, "ARIO_MLFLOW_READ_TIMEOUT", 30.0),
        anchor_deadline=_positive_float(env, "ARIO_MLFLOW_ANCHOR_DEADLINE", 5.0),
        max_attempts=_positive_int(env, "ARIO_MLFLOW_MAX_ATTEMPTS", 20),
        background=background,
    )
