"""The MLflow store a read-only command (``verify``, ``audit``, ``export``) reads.

MLflow creates the store it is pointed at when it does not exist. With no
``MLFLOW_TRACKING_URI``, MLflow 3 uses ``sqlite:///mlflow.db`` in the current directory
(``./mlruns`` when that holds data; MLflow 2 always ``./mlruns``), so a verification run in
the wrong directory would leave an empty ``mlflow.db`` there and answer only "not found".
Read-only commands check the store first, create nothing, and name the store they searched.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from ario_mlflow.cli.output import NotFoundError, one_line

#: The store this command opened (named in MLflow's error messages): one per CLI process.
_opened: list[str] = []

_NO_UTF8 = re.compile(r"Could not decode to UTF-8 column '(?P<column>[^']*)'")


def _local_path(uri: str) -> tuple[Path, str] | None:
    """``(path, kind)`` of a store MLflow would create on disk: a sqlite file or a
    file-store directory; None for servers and databases we cannot check."""
    if uri.startswith("sqlite:"):
        rest = uri[len("sqlite:") :]
        if not rest.startswith("///"):
            return None
        path = unquote(rest[3:].split("?", 1)[0])
        return (Path(path), "sqlite") if path and path != ":memory:" else None
    if uri.startswith("file:"):
        return Path(unquote(urlparse(uri).path)), "directory"
    if "://" not in uri and not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", uri):
        return Path(uri), "directory"  # a plain path: MLflow's file store
    return None


def _is_mlflow_sqlite(path: Path) -> bool:
    try:
        with sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True) as db:
            row = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'experiments'"
            ).fetchone()
    except sqlite3.Error:
        return False
    return row is not None


def check_store(uri: str, *, defaulted: bool = False) -> None:
    """``NotFoundError`` (naming ``uri``) if it is a local store that does not exist (or a
    sqlite file that is not an MLflow store): MLflow would create one."""
    local = _local_path(uri)
    if local is None:
        return
    path, kind = local
    hint = (
        " (MLflow's default in this directory; set MLFLOW_TRACKING_URI or pass --tracking-uri)"
        if defaulted
        else ""
    )
    if kind == "sqlite":
        if not path.is_file():
            raise NotFoundError(f"no MLflow store at {uri}: {path} does not exist{hint}")
        if not _is_mlflow_sqlite(path):
            raise NotFoundError(f"{uri} is not an MLflow store: {path} has no MLflow tables{hint}")
    elif not path.is_dir():
        raise NotFoundError(f"no MLflow store at {uri}: {path} does not exist{hint}")


def open_client(tracking_uri: str | None) -> tuple[Any, str]:
    """An ``MlflowClient`` on an existing store, and that store's URI (for messages).

    ``tracking_uri`` is the command's ``--tracking-uri`` (None: MLflow's resolution,
    ``MLFLOW_TRACKING_URI`` or its default). The model registry is checked too when
    ``MLFLOW_REGISTRY_URI`` names another store.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    # MLflow logs every failed database query with a traceback before raising it; the
    # command reports the error itself, in one line (see ``mlflow_error_line``).
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    defaulted = tracking_uri is None and not os.environ.get("MLFLOW_TRACKING_URI")
    uri = tracking_uri or mlflow.get_tracking_uri()
    check_store(uri, defaulted=defaulted)
    registry = os.environ.get("MLFLOW_REGISTRY_URI")
    if registry and registry != uri:
        check_store(registry)
    _opened[:] = [uri]
    return MlflowClient(tracking_uri=uri), uri


def not_found(exc: Exception, store: str) -> NotFoundError:
    """A target that does not exist, and the store that was searched."""
    return NotFoundError(f"{one_line(str(exc), limit=300).rstrip('.')} (MLflow store: {store})")


def mlflow_error_line(exc: BaseException) -> str:
    """One clear line for an error MLflow raised (no urllib3 dump, no SQL noise)."""
    text = str(exc).strip()
    where = f" (MLflow store: {_opened[0]})" if _opened else ""
    bad_text = _NO_UTF8.search(text)
    if bad_text:
        return (
            f"MLflow cannot read a record: the store holds text that is not valid UTF-8 "
            f"(column {bad_text['column']!r}; e.g. a param or tag value written as raw "
            f"bytes){where}"
        )
    return f"MLflow: {one_line(text, limit=300) or repr(exc)}{where}"
