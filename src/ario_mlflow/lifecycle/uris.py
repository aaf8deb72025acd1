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
import threading

from ario_mlflow.redaction import public_uri

_ENV_FOR = {
    "tracking": ("MLFLOW_TRACKING_URI",),
    "registry": ("MLFLOW_REGISTRY_URI", "MLFLOW_TRACKING_URI"),
}


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
