"""Tracking and registry URIs as we keep them: absolute, and without credentials.

A URI is recorded in journals (write-backs), on chain (``include_tracking_uri``) and in
reports, all of which outlive the process and some of which are public and permanent. So
what is recorded never holds user info (``http://user:pass@host``) or a query parameter
whose name says it is a secret; the credentials stay in this process's memory, and a
later process (``sync``, the companion) takes them from its own ``MLFLOW_TRACKING_URI`` /
``MLFLOW_REGISTRY_URI`` when those name the same server.
"""

from __future__ import annotations

import os
import re
import threading
from functools import lru_cache
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: Query parameter names that carry a secret (matched anywhere in the name).
_SECRET_NAME = re.compile(r"pass|pwd|secret|token|key|sig|auth|cred|session", re.IGNORECASE)
_ENV_FOR = {
    "tracking": ("MLFLOW_TRACKING_URI",),
    "registry": ("MLFLOW_REGISTRY_URI", "MLFLOW_TRACKING_URI"),
}

#: ``scheme://user:secret@`` inside free text (an error message that quotes a URL).
_USERINFO_IN_TEXT = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@'\"]+@")

_credentials: dict[str, str] = {}
_credentials_lock = threading.Lock()


def portable_uri(uri: str | None) -> str | None:
    """A tracking/registry URI that means the same from any working directory.

    ``sqlite:///relative.db``, ``file:relative`` and bare relative paths are made absolute,
    so a write-back journaled by a script can be performed later by ``ar-io-mlflow sync``
    run from elsewhere.
    """
    if not uri:
        return uri
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return "sqlite:///" + os.path.abspath(uri[len("sqlite:///") :])
    if uri.startswith("file://"):
        return uri
    if uri.startswith("file:"):
        return "file://" + os.path.abspath(uri[len("file:") :])
    if "://" not in uri and ":" not in uri.split("/", 1)[0]:
        return os.path.abspath(uri)
    return uri


@lru_cache(maxsize=64)
def public_uri(uri: str) -> str:
    """``uri`` without user info and without secret-looking query parameters."""
    if "://" not in uri:
        return uri
    parts = urlsplit(uri)
    netloc = parts.netloc.rpartition("@")[2]
    query = parts.query
    if query:
        kept = [
            (k, v)
            for k, v in parse_qsl(query, keep_blank_values=True)
            if not _SECRET_NAME.search(k)
        ]
        query = urlencode(kept)
    if netloc == parts.netloc and query == parts.query:
        return uri
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def recorded_uri(uri: str | None) -> str | None:
    """The form of ``uri`` to write down; its credentials are remembered in this process."""
    portable = portable_uri(uri)
    if not portable:
        return portable
    public = public_uri(portable)
    if public != portable:
        with _credentials_lock:
            _credentials[public] = portable
    return public


def usable_uri(recorded: str | None, kind: str = "tracking") -> str | None:
    """The URI to connect to for a ``recorded`` one: with the credentials it had, if known.

    First this process's memory, then the environment's URI if it names the same server;
    else the recorded form (MLflow then takes credentials from ``MLFLOW_TRACKING_USERNAME`` /
    ``MLFLOW_TRACKING_PASSWORD`` or a token, as it would for any URI).
    """
    if not recorded:
        return recorded
    with _credentials_lock:
        known = _credentials.get(recorded)
    if known:
        return known
    for variable in _ENV_FOR[kind]:
        configured = portable_uri(os.environ.get(variable))
        if configured and public_uri(configured) == recorded:
            return configured
    return recorded


def redacted_text(text: str) -> str:
    """``text`` (e.g. an error message kept in the journal) with URL user info removed."""
    return _USERINFO_IN_TEXT.sub(r"\g<scheme>", text)
