"""Every ``ARIO_MLFLOW_*`` setting, read in one place.

Settings are read from the environment each time :func:`load_settings` is called (cheap),
so a process, a test or the CLI can change them without restarting anything. Invalid
values raise :class:`~ario_mlflow.errors.ConfigError` naming the variable.
"""

from __future__ import annotations

import math
import os
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ario_mlflow.errors import ConfigError

#: Turbo's mainnet upload service (the turbo-sdk default).
DEFAULT_UPLOAD_URL = "https://upload.ardrive.io"
#: Host used in ``ario.arweave_url`` and as the first read gateway.
DEFAULT_GATEWAY_HOST = "turbo-gateway.com"
#: Read gateways tried after the primary, in order.
DEFAULT_FALLBACK_GATEWAYS = ("turbo-gateway.com", "ardrive.net")

#: ``ARIO_MLFLOW_BACKGROUND`` values (see ``Settings.background``).
BACKGROUND_MODES = ("process", "thread")
#: ``ARIO_MLFLOW_DECISIONS`` values: ``batch`` (a signed window of many decisions, each
#: with an inclusion receipt) or ``each`` (one signed record per decision, 0.3.0's format).
DECISION_MODES = ("batch", "each")
#: A window closes at this many decisions, or ``DEFAULT_WINDOW_SECONDS`` after its first.
DEFAULT_WINDOW_SIZE = 1000
DEFAULT_WINDOW_SECONDS = 30.0
_FALSE_WORDS = frozenset({"false", "0", "no", "off"})
_TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
_HEX_KEY = re.compile(r"[0-9a-f]{64}")
#: The longest any wait may be set to (seconds): longer is a typo, not a wish.
MAX_SECONDS = 3600.0
_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?")


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
    #: How long a process finishing uploads and write-backs waits at exit (seconds).
    exit_flush: float = 3.0
    #: How decisions are recorded: ``batch`` (windows) or ``each`` (a record apiece).
    decisions: str = "batch"
    #: A window of batched decisions closes at this many decisions ...
    window_size: int = DEFAULT_WINDOW_SIZE
    #: ... or this many seconds after its first decision was journaled.
    window_seconds: float = DEFAULT_WINDOW_SECONDS

    @property
    def keys_dir(self) -> Path:
        """Directory of the Ed25519 signing key files."""
        return self.home / "keys"


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _seconds(
    env: Mapping[str, str], name: str, default: float, *, allow_zero: bool = False
) -> float:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None
    low_ok = value >= 0 if allow_zero else value > 0
    if not (math.isfinite(value) and low_ok and value <= MAX_SECONDS):
        least = "0" if allow_zero else "more than 0"
        raise ConfigError(
            f"{name}={raw!r} must be a number of seconds from {least} to {MAX_SECONDS:g}"
        )
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _text(env, name)
    if raw is None:
        return default
    word = raw.lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise ConfigError(f"{name}={raw!r} must be one of true/false (also 1/0, yes/no, on/off)")


def check_url(name: str, value: str) -> str:
    """``value`` if it is an http(s) URL with a host and nothing odd, else ``ConfigError``.

    User info (``user:password@``) is refused: a secret in a URL ends up in logs, in the
    journal and, for some settings, on chain.
    """
    problem = None
    try:
        parts = urllib.parse.urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError as exc:
        problem = str(exc)
    else:
        if any(c.isspace() or ord(c) < 32 for c in value):
            problem = "it contains white space or control characters"
        elif parts.scheme not in ("http", "https"):
            problem = "it needs an http:// or https:// scheme"
        elif not parts.hostname:
            problem = "it names no host"
        elif parts.username is not None or parts.password is not None:
            problem = "it holds user info (user:password@); pass secrets another way"
        elif parts.fragment:
            problem = "it has a #fragment"
    if problem:
        raise ConfigError(f"{name}={value!r} is not a usable URL: {problem}")
    return value.rstrip("/")


def _gateway(name: str, value: str) -> str:
    if value.startswith(("http://", "https://")):
        return check_url(name, value)
    if not _HOST.fullmatch(value):
        raise ConfigError(
            f"{name} holds {value!r}, which is neither a host name nor an http(s) URL"
        )
    return value


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if not 1 <= value <= 1_000_000:
        raise ConfigError(f"{name}={raw!r} must be a whole number from 1 to 1000000")
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


def pinned_keys(keys: Iterable[Any], *, source: str) -> tuple[str, ...]:
    """Issuer public keys as compared everywhere: 64 lowercase hex, without repeats.

    The one rule for pinned keys, whether they come from ``ARIO_MLFLOW_TRUSTED_KEYS``,
    ``--trusted-key`` or a ``trusted_keys=`` argument (case never matters). A value that
    is not an Ed25519 public key raises ``ConfigError`` naming ``source``.
    """
    if isinstance(keys, str):
        raise ConfigError(f"{source} must be a list of keys, not one string")
    normalized = []
    for key in keys:
        text = key.strip().lower() if isinstance(key, str) else None
        if text is None or not _HEX_KEY.fullmatch(text):
            raise ConfigError(
                f"{source} holds {str(key)[:80]!r}, which is not a 64-hex Ed25519 public key"
            )
        normalized.append(text)
    return tuple(dict.fromkeys(normalized))


def trusted_keys_from_env(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """``ARIO_MLFLOW_TRUSTED_KEYS`` alone (verifiers need nothing else from the settings)."""
    env = os.environ if env is None else env
    return pinned_keys(
        split_list(env.get("ARIO_MLFLOW_TRUSTED_KEYS")), source="ARIO_MLFLOW_TRUSTED_KEYS"
    )


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from ``env`` (default: ``os.environ``)."""
    env = os.environ if env is None else env
    home_raw = _text(env, "ARIO_MLFLOW_HOME")
    try:
        home = Path(home_raw).expanduser() if home_raw else Path.home() / ".ario-mlflow"
    except (RuntimeError, ValueError) as exc:  # "~nosuchuser", a NUL byte, no home dir
        raise ConfigError(f"ARIO_MLFLOW_HOME={home_raw!r}: cannot expand '~' ({exc})") from None
    gateway_host = _text(env, "ARIO_MLFLOW_GATEWAY_HOST") or DEFAULT_GATEWAY_HOST
    gateway_host = _gateway("ARIO_MLFLOW_GATEWAY_HOST", gateway_host)
    upload_url = check_url(
        "ARIO_MLFLOW_UPLOAD_URL", _text(env, "ARIO_MLFLOW_UPLOAD_URL") or DEFAULT_UPLOAD_URL
    )
    verify_url = _text(env, "ARIO_MLFLOW_ARIO_VERIFY_URL")
    if verify_url:
        verify_url = check_url("ARIO_MLFLOW_ARIO_VERIFY_URL", verify_url)
    capture = _flag(env, "ARIO_MLFLOW_CAPTURE_OTEL", True)
    explicit_gateways = tuple(
        _gateway("ARIO_MLFLOW_GATEWAYS", g) for g in split_list(env.get("ARIO_MLFLOW_GATEWAYS"))
    )
    trusted = trusted_keys_from_env(env)
    background = (_text(env, "ARIO_MLFLOW_BACKGROUND") or "process").lower()
    if background not in BACKGROUND_MODES:
        raise ConfigError(
            f"ARIO_MLFLOW_BACKGROUND={background!r} must be one of {', '.join(BACKGROUND_MODES)}"
        )
    decisions = (_text(env, "ARIO_MLFLOW_DECISIONS") or "batch").lower()
    if decisions not in DECISION_MODES:
        raise ConfigError(
            f"ARIO_MLFLOW_DECISIONS={decisions!r} must be one of {', '.join(DECISION_MODES)}"
        )
    return Settings(
        home=home,
        signing_key=_text(env, "ARIO_MLFLOW_SIGNING_KEY"),
        wallet_path=_text(env, "ARIO_MLFLOW_ARWEAVE_WALLET"),
        upload_url=upload_url,
        gateway_host=gateway_host,
        gateways=resolve_gateways(gateway_host, explicit_gateways),
        explicit_gateways=explicit_gateways,
        verify_url=verify_url or None,
        trusted_keys=trusted,
        capture_otel=capture,
        connect_timeout=_seconds(env, "ARIO_MLFLOW_CONNECT_TIMEOUT", 5.0),
        read_timeout=_seconds(env, "ARIO_MLFLOW_READ_TIMEOUT", 30.0),
        anchor_deadline=_seconds(env, "ARIO_MLFLOW_ANCHOR_DEADLINE", 5.0),
        max_attempts=_positive_int(env, "ARIO_MLFLOW_MAX_ATTEMPTS", 20),
        background=background,
        exit_flush=_seconds(env, "ARIO_MLFLOW_EXIT_FLUSH", 3.0, allow_zero=True),
        decisions=decisions,
        window_size=_positive_int(env, "ARIO_MLFLOW_WINDOW_SIZE", DEFAULT_WINDOW_SIZE),
        window_seconds=_seconds(env, "ARIO_MLFLOW_WINDOW_SECONDS", DEFAULT_WINDOW_SECONDS),
    )
