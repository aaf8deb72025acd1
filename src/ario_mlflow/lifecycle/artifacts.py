"""Model artifacts: find them in MLflow and hash them, file by file.

The training payload commits to ``artifact_checksums``: a map from each model file's path
(relative to the model directory, ``/``-separated on every OS) to the SHA-256 of its
bytes, and the run tag ``ario.artifact_hash`` is the SHA-256 of that map's canonical JSON.
This module computes both, for models of any size:

* **streaming** in fixed 1 MiB chunks, so memory does not grow with the model; files are
  hashed **in parallel** on a bounded thread pool (hashlib releases the GIL while it
  hashes), and the result does not depend on which file finishes first;
* **in place** when the artifact store is a local directory (no copy at all); otherwise
  through ``mlflow.artifacts.download_artifacts`` into a private temporary directory that
  is removed afterwards, on success and on error;
* over **the same files MLflow hands out** for ``runs:/<run_id>/<path>``: on MLflow 3 the
  run's own ``artifacts/<path>`` merged with the artifact location of the LoggedModel
  named ``<path>`` that the run produced (model files win, as in MLflow's
  ``RunsArtifactRepository``); on MLflow 2 the run's artifacts only;
* with a ``rich`` progress bar on a terminal for large models, and an optional
  ``progress(done_bytes, total_bytes)`` callback for everybody else.

:func:`model_uri_checksums` gives the same map for a model URI (``models:/m-<id>``,
``models:/<name>/<version>``, ``@alias``, ``runs:/``), which is what MLflow 3 records as a
model version's ``source``.

Every failure is an :class:`~ario_mlflow.errors.ArtifactAccessError` whose message names
the run, the artifact path and the cause. MLflow is imported inside functions only, so
importing this module (and ``ario_mlflow``) stays cheap.

Differences from the reference (ar-io-mlflow 0.3.0), on purpose:

* map keys use ``/`` on every OS (the reference used the OS separator; §10.1 item 9);
* an ``artifact_path`` naming a single file is hashed under its basename (the reference
  returned ``{}``, i.e. committed to nothing); ``legacy_single_file=True`` restores the
  old answer for verifiers rebuilding a 0.3.0 payload;
* ``artifact_path=None`` means ``"model"`` rather than "the whole run".
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import stat
import sys
import tempfile
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ario_mlflow.errors import ArtifactAccessError
from ario_mlflow.proof.checksums import (
    DEFAULT_ARTIFACT_PATH,
    ChecksumDiff,
    artifact_hash,
    compare_checksums,
)

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_ARTIFACT_PATH",
    "EXCLUDED_BASENAMES",
    "LOG_MODEL_HISTORY_TAG",
    "PROGRESS_BAR_MIN_BYTES",
    "ChecksumDiff",
    "ProgressCallback",
    "artifact_checksums",
    "artifact_hash",
    "compare_checksums",
    "hash_directory",
    "logged_model_paths",
    "model_uri_checksums",
    "parse_runs_uri",
    "resolve_artifact_path",
]

logger = logging.getLogger(__name__)

#: Basenames never hashed, at any depth: MLflow writes ``registered_model_meta`` into
#: downloaded registered/logged model directories, so it is bookkeeping, not the model.
EXCLUDED_BASENAMES: frozenset[str] = frozenset({"registered_model_meta"})
#: Read buffer per file being hashed (one per worker thread at a time).
CHUNK_SIZE = 1 << 20
#: A terminal progress bar is shown only for models at least this large.
PROGRESS_BAR_MIN_BYTES = 256 << 20
#: Upper bound on hashing threads (SHA-256 is CPU bound; more threads only add contention).
MAX_WORKERS = 8
#: MLflow 2 run tag listing the models logged in the run (JSON list of dicts).
LOG_MODEL_HISTORY_TAG = "mlflow.log-model.history"

#: ``progress(done_bytes, total_bytes)``; called from hashing threads, one call at a time.
ProgressCallback = Callable[[int, int], None]

_RUNS_SCHEME = "runs:/"


# --- URIs and artifact-path resolution ---------------------------------------------------


def parse_runs_uri(source: str | None) -> tuple[str | None, str | None]:
    """Split ``runs:/<run_id>/<artifact_path>`` into ``(run_id, artifact_path)``.

    Anything that is not a ``runs:/`` URI gives ``(None, None)``; a missing part is
    ``None``. Slashes right after the scheme are ignored (``runs:///abc/m``).
    """
    if not isinstance(source, str) or not source.startswith(_RUNS_SCHEME):
        return None, None
    rest = source[len(_RUNS_SCHEME) :].lstrip("/")
    run_id, _, artifact_path = rest.partition("/")
    return run_id or None, artifact_path or None


def logged_model_paths(run: Any, *, client: Any = None) -> list[str]:
    """Artifact paths of the models logged in ``run``, without repeats.

    MLflow 2 lists them in the run tag ``mlflow.log-model.history``; MLflow 3 records
    LoggedModels in ``run.outputs.model_outputs``, whose *names* are the paths that
    ``runs:/<run_id>/<name>`` resolves. The MLflow 3 lookup is used only when the tag
    yields nothing, and stops at the first model that cannot be read. Order: the tag's
    (logging order) on MLflow 2, ``run.outputs`` order (not logging order) on MLflow 3.
    """
    paths = _history_paths(run)
    if not paths:
        paths = _logged_model_names(run, client)
    return list(dict.fromkeys(paths))


def resolve_artifact_path(run: Any, artifact_path: str | None = None, *, client: Any = None) -> str:
    """The artifact path to hash for ``run``: the caller's, the one logged model's, or "model".

    Raises ``ValueError`` (naming the paths) when the run logged several models and the
    caller did not say which one is meant: guessing would commit to the wrong files.
    """
    if artifact_path:
        return artifact_path
    paths = logged_model_paths(run, client=client)
    if len(paths) > 1:
        run_id = getattr(getattr(run, "info", None), "run_id", "?")
        listed = ", ".join(repr(p) for p in paths)
        raise ValueError(
            f"run {run_id} has multiple model artifact paths ({listed}); "
            "pass artifact_path= to choose the one to hash"
        )
    return paths[0] if paths else DEFAULT_ARTIFACT_PATH


def _history_paths(run: Any) -> list[str]:
    tags = getattr(getattr(run, "data", None), "tags", None) or {}
    raw = tags.get(LOG_MODEL_HISTORY_TAG)
    if not raw:
        return []
    try:
        history = json.loads(raw)
    except (TypeError, ValueError):
        return []
    if not isinstance(history, list):
        return []
    return [
        str(entry["artifact_path"])
        for entry in history
        if isinstance(entry, dict) and entry.get("artifact_path")
    ]


def _logged_model_names(run: Any, client: Any) -> list[str]:
    outputs = getattr(run, "outputs", None)
    model_outputs = getattr(outputs, "model_outputs", None) or []
    names: list[str] = []
    for output in model_outputs:
        model_id = getattr(output, "model_id", None)
        if not model_id:
            continue
        try:
            if client is None:
                from mlflow.tracking import MlflowClient

                client = MlflowClient()
            name = client.get_logged_model(model_id).name
        except Exception as exc:  # an unreadable model ends the search, as in 0.3.0
            logger.debug("cannot read LoggedModel %s: %s", model_id, exc)
            break
        if name:
            names.append(str(name))
    return names


# --- local hashing core ------------------------------------------------------------------


@dataclass(frozen=True)
class _File:
    key: str
    path: Path
    size: int


def hash_directory(
    path: str | os.PathLike[str],
    *,
    progress: ProgressCallback | None = None,
    workers: int | None = None,
    show_progress: bool | None = None,
) -> dict[str, str]:
    """SHA-256 of every regular file under ``path``, keyed by ``/``-separated relative path.

    The pure local core (no MLflow needed). Symbolic links are followed, as a copy by
    MLflow's local artifact repository follows them (a link back to an ancestor
    directory, i.e. a cycle, is not followed), files
    named in :data:`EXCLUDED_BASENAMES` and non-regular files are skipped. A ``path``
    that is a single file gives ``{basename: hash}``. ``workers`` bounds the threads
    (default ``min(8, cpu_count)``); ``show_progress`` forces the terminal bar on or off
    (default: on when stderr is a terminal and the files total at least 256 MiB).
    Raises :class:`ArtifactAccessError` naming the path and the cause.
    """
    files = _collect(Path(path))
    return _hash_files(files, progress=progress, workers=workers, show_progress=show_progress)


def _collect(root: Path) -> list[_File]:
    """The files to hash under ``root`` (a directory, or one file keyed by its name)."""
    try:
        info = root.stat()
    except FileNotFoundError:
        raise ArtifactAccessError(f"{root} does not exist") from None
    except OSError as exc:
        raise ArtifactAccessError(f"cannot access {root}: {_reason(exc)}") from exc
    if stat.S_ISREG(info.st_mode):
        if root.name in EXCLUDED_BASENAMES:
            return []
        return [_File(root.name, root, info.st_size)]
    if not stat.S_ISDIR(info.st_mode):
        raise ArtifactAccessError(f"{root} is neither a regular file nor a directory")
    files: list[_File] = []
    # Each pending directory carries its key prefix and the identities of its ancestors,
    # so a symlink cycle is cut while a directory linked twice is still hashed twice
    # (as a download would copy it twice).
    pending: list[tuple[Path, tuple[str, ...], frozenset[tuple[int, int]]]] = [
        (root, (), frozenset({(info.st_dev, info.st_ino)}))
    ]
    while pending:
        directory, prefix, ancestors = pending.pop()
        try:
            with os.scandir(directory) as scan:
                entries = list(scan)
        except OSError as exc:
            raise ArtifactAccessError(f"cannot list {directory}: {_reason(exc)}") from exc
        for entry in entries:
            try:
                entry_info = entry.stat()  # follows symbolic links
            except FileNotFoundError:
                if entry.is_symlink():
                    logger.debug("skipping dangling symbolic link %s", entry.path)
                    continue
                raise ArtifactAccessError(f"{entry.path} disappeared while listing") from None
            except OSError as exc:
                raise ArtifactAccessError(f"cannot access {entry.path}: {_reason(exc)}") from exc
            parts = (*prefix, entry.name)
            if stat.S_ISDIR(entry_info.st_mode):
                identity = (entry_info.st_dev, entry_info.st_ino)
                if identity in ancestors:
                    logger.debug("skipping symbolic link cycle at %s", entry.path)
                    continue
                pending.append((Path(entry.path), parts, ancestors | {identity}))
            elif stat.S_ISREG(entry_info.st_mode):
                if entry.name not in EXCLUDED_BASENAMES:
                    files.append(_File("/".join(parts), Path(entry.path), entry_info.st_size))
            else:
                logger.debug("skipping non-regular file %s", entry.path)
    return files


def _hash_files(
    files: Iterable[_File],
    *,
    progress: ProgressCallback | None,
    workers: int | None,
    show_progress: bool | None,
) -> dict[str, str]:
    # Largest first: the longest jobs start early, so the pool finishes together.
    ordered = sorted(files, key=lambda f: (-f.size, f.key))
    total = sum(f.size for f in ordered)
    threads = _worker_count(workers, len(ordered))
    results: dict[str, str] = {}
    cancelled = threading.Event()
    with _Progress(total, progress, _want_bar(total, show_progress)) as reporter:
        if threads <= 1:
            for item in ordered:
                results[item.key] = _hash_file(item, reporter.advance, cancelled)
        else:
            with ThreadPoolExecutor(threads, thread_name_prefix="ario-hash") as pool:
                futures: dict[Future[str], _File] = {
                    pool.submit(_hash_file, item, reporter.advance, cancelled): item
                    for item in ordered
                }
                try:
                    done, _ = wait(futures, return_when=FIRST_EXCEPTION)
                    for future in done:
                        if future.exception() is not None:
                            future.result()  # raises the first failure
                except BaseException:
                    # Stop the others now (Ctrl-C included) instead of hashing on.
                    cancelled.set()
                    for future in futures:
                        future.cancel()
                    raise
                for future, item in futures.items():
                    results[item.key] = future.result()
    return {key: results[key] for key in sorted(results)}


def _worker_count(workers: int | None, files: int) -> int:
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    limit = workers if workers is not None else min(MAX_WORKERS, os.cpu_count() or 1)
    return max(1, min(limit, files))


class _Cancelled(Exception):
    """Internal: another file failed, stop reading this one."""


def _hash_file(item: _File, advance: Callable[[int], None], cancelled: threading.Event) -> str:
    """Stream one file through SHA-256 in CHUNK_SIZE reads (constant memory)."""
    digest = hashlib.sha256()
    buffer = memoryview(bytearray(CHUNK_SIZE))
    try:
        with open(item.path, "rb", buffering=0) as handle:
            _advise_sequential(handle.fileno())
            while True:
                if cancelled.is_set():
                    raise _Cancelled
                count = handle.readinto(buffer)
                if not count:
                    break
                digest.update(buffer[:count])
                advance(count)
    except OSError as exc:
        raise ArtifactAccessError(
            f"cannot read {item.key!r} ({item.path}): {_reason(exc)}"
        ) from exc
    finally:
        buffer.release()
    return digest.hexdigest()


def _advise_sequential(fd: int) -> None:
    advise = getattr(os, "posix_fadvise", None)
    if advise is not None:
        with suppress(OSError):
            advise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _want_bar(total: int, show_progress: bool | None) -> bool:
    if show_progress is not None:
        return show_progress
    if total < PROGRESS_BAR_MIN_BYTES:
        return False
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class _Progress:
    """Counts hashed bytes; forwards them to the callback and the terminal bar."""

    def __init__(self, total: int, callback: ProgressCallback | None, bar: bool) -> None:
        self.total = total
        self.done = 0
        self._callback = callback
        self._reported = -1
        self._lock = threading.Lock()
        self._bar: Any = None
        self._task: Any = None
        if bar:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._bar = Progress(
                TextColumn("hashing artifacts"),
                BarColumn(),
                DownloadColumn(binary_units=True),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._task = self._bar.add_task("hash", total=total)

    def __enter__(self) -> _Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def advance(self, count: int) -> None:
        with self._lock:
            self.done += count
            if self._callback is not None:
                self._callback(self.done, self.total)
                self._reported = self.done
            if self._bar is not None:
                self._bar.update(self._task, completed=self.done)

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        if self._bar is not None:
            self._bar.stop()
        if exc_type is None and self._callback is not None and self._reported != self.done:
            self._callback(self.done, self.total)  # always a final call, even for 0 bytes


# --- MLflow runs -------------------------------------------------------------------------


def artifact_checksums(
    run_id_or_client: Any,
    run_id: str | None = None,
    artifact_path: str | None = DEFAULT_ARTIFACT_PATH,
    *,
    tracking_uri: str | None = None,
    progress: ProgressCallback | None = None,
    workers: int | None = None,
    show_progress: bool | None = None,
    legacy_single_file: bool = False,
) -> dict[str, str]:
    """Per-file SHA-256 map of the artifacts at ``artifact_path`` of a run.

    Call as ``artifact_checksums(run_id, artifact_path=...)`` or, as in 0.3.0,
    ``artifact_checksums(client, run_id, ...)`` (the client is ignored). Hashes in place
    when the artifacts are in a local directory, otherwise downloads them into a
    temporary directory that is always removed. The files are those MLflow serves for
    ``runs:/<run_id>/<artifact_path>`` (MLflow 3 LoggedModel artifacts included).
    ``legacy_single_file=True`` returns ``{}`` for a single-file path, as 0.3.0 did.
    Raises :class:`ArtifactAccessError` naming the run, the path and the cause, and
    ``TypeError`` for ``artifact_checksums(run_id, "some/path")`` (the second positional
    argument is a run id, so the path would silently be ignored).
    """
    if isinstance(run_id_or_client, str):
        if run_id is not None and run_id != run_id_or_client:
            raise TypeError(
                f"artifact_checksums({run_id_or_client!r}, {run_id!r}): the second argument "
                "is a run id (0.3.0 signature); pass the path as artifact_path="
            )
        rid: str | None = run_id_or_client
    else:
        rid = run_id
    requested = DEFAULT_ARTIFACT_PATH if artifact_path is None else artifact_path

    def failure(cause: object) -> ArtifactAccessError:
        return ArtifactAccessError(
            f"cannot hash artifacts of run {rid!r} at path {requested!r}: {cause}"
        )

    if not rid:
        raise failure("no run id given")
    client, run, parts = _open_run(rid, requested, tracking_uri, failure)
    relative = "/".join(parts)

    options: dict[str, Any] = {
        "progress": progress,
        "workers": workers,
        "show_progress": show_progress,
    }
    try:
        sources = _local_sources(client, run, parts)
        if sources is not None:
            files = _collect_merged(sources, relative, legacy_single_file)
            return _hash_files(files, **options)
        if _missing_remotely(rid, relative, tracking_uri):
            raise ArtifactAccessError(f"no artifacts at {relative!r}")
        with _private_temp_dir() as scratch:
            request = {"run_id": rid, "artifact_path": relative}
            root = Path(_download(request, scratch, tracking_uri))
            if legacy_single_file and root.is_file():
                return {}
            return _hash_files(_collect(root), **options)
    except ArtifactAccessError as exc:
        raise failure(exc) from exc


def copy_run_artifacts(
    run_id: str,
    artifact_path: str,
    destination: Path,
    *,
    tracking_uri: str | None = None,
) -> tuple[Path, dict[str, str]]:
    """Copy what MLflow serves for ``runs:/<run_id>/<artifact_path>`` into the private
    directory ``destination``, hashing every byte as it is written.

    Returns ``(model directory, per-file SHA-256 map)``; the map has the keys of
    :func:`artifact_checksums`. Loading from the copy loads exactly the bytes that were
    hashed: a file swapped where it lies, even mid-read, cannot reach the loader unseen.
    Remote stores are downloaded into ``destination`` (the download is the copy).
    """

    def failure(cause: object) -> ArtifactAccessError:
        return ArtifactAccessError(
            f"cannot copy artifacts of run {run_id!r} at path {artifact_path!r}: {cause}"
        )

    client, run, parts = _open_run(run_id, artifact_path, tracking_uri, failure)
    relative = "/".join(parts)
    try:
        sources = _local_sources(client, run, parts)
        if sources is None:
            request = {"run_id": run_id, "artifact_path": relative}
            root = Path(_download(request, destination, tracking_uri))
            return root, _hash_files(
                _collect(root), progress=None, workers=None, show_progress=None
            )
        root = destination / "model"
        checksums = {}
        for item in sorted(_collect_merged(sources, relative, False), key=lambda f: f.key):
            checksums[item.key] = _copy_hashing(item, root / item.key)
        return root, checksums
    except ArtifactAccessError as exc:
        raise failure(exc) from exc


def _copy_hashing(item: _File, target: Path) -> str:
    """Copy one file, returning the SHA-256 of the bytes written (one read of the source)."""
    digest = hashlib.sha256()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(item.path, "rb", buffering=0) as source, open(target, "xb") as copy:
            while chunk := source.read(CHUNK_SIZE):
                digest.update(chunk)
                copy.write(chunk)
    except OSError as exc:
        raise ArtifactAccessError(
            f"cannot copy {item.key!r} ({item.path}): {_reason(exc)}"
        ) from exc
    return digest.hexdigest()


def private_directory(prefix: str = "ario-mlflow-model-") -> Path:
    """A new directory only this user can enter (the caller removes it: :func:`remove_tree`)."""
    return Path(tempfile.mkdtemp(prefix=prefix))


def _open_run(
    run_id: str,
    artifact_path: str,
    tracking_uri: str | None,
    failure: Callable[[object], ArtifactAccessError],
) -> tuple[Any, Any, tuple[str, ...]]:
    """``(client, run, path parts)`` for reading ``runs:/<run_id>/<artifact_path>``;
    ``failure(cause)`` for a path that leaves the run or a run that cannot be loaded."""
    try:
        parts = _artifact_path_parts(artifact_path)
    except ValueError as exc:
        raise failure(exc) from None
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri)
        return client, client.get_run(run_id), parts
    except Exception as exc:
        raise failure(f"cannot load the run: {exc}") from exc


def _artifact_path_parts(artifact_path: str) -> tuple[str, ...]:
    """Split a run-relative artifact path; refuse anything that could leave the run."""
    if not isinstance(artifact_path, str):
        raise ValueError(f"artifact path must be a string, not {type(artifact_path).__name__}")
    if "\x00" in artifact_path:
        raise ValueError("artifact path contains a NUL character")
    parts = tuple(p for p in artifact_path.split("/") if p not in ("", "."))
    if any(p == ".." for p in parts) or (
        os.name == "nt" and any("\\" in p or ":" in p for p in parts)
    ):
        raise ValueError("artifact path must stay inside the run's artifacts")
    return parts


def _local_path(uri: str | None) -> Path | None:
    """The local directory behind an artifact URI, or ``None`` if it is not local."""
    if not uri:
        return None
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            return None  # a file URI on another host (UNC share): let MLflow handle it
        return Path(urllib.request.url2pathname(parsed.path))
    if parsed.scheme == "" or (os.name == "nt" and len(parsed.scheme) == 1):
        return Path(uri)
    return None  # s3:, gs:, http:, mlflow-artifacts: ... (the latter lives on the server)


def _local_sources(client: Any, run: Any, parts: tuple[str, ...]) -> list[Path] | None:
    """Local paths whose union MLflow would serve for ``runs:/<run>/<parts>``.

    ``None`` means "not all local, or not sure": the caller then downloads, and MLflow
    resolves everything itself.
    """
    run_root = _local_path(run.info.artifact_uri)
    if run_root is None:
        return None
    sources = [run_root.joinpath(*parts)]
    if not parts:
        return sources
    try:
        model = run_logged_model(client, run, parts[0])
        location = None if model is None else str(model.artifact_location)
    except Exception as exc:
        logger.debug("LoggedModel lookup failed, falling back to download: %s", exc)
        return None
    if location is not None:
        model_root = _local_path(location)
        if model_root is None:
            return None
        sources.append(model_root.joinpath(*parts[1:]))
    return sources


def run_logged_model(client: Any, run: Any, name: str) -> Any:
    """The LoggedModel ``name`` produced by ``run`` (MLflow 3), or ``None``.

    Same query and same first-match rule as MLflow's ``RunsArtifactRepository``, so this
    is the model whose files a download of ``runs:/<run>/<name>`` would contain.
    """
    search = getattr(client, "search_logged_models", None)
    if search is None:  # MLflow 2: no LoggedModels
        return None
    run_id = run.info.run_id
    token: str | None = None
    while True:
        page = search(
            experiment_ids=[run.info.experiment_id],
            filter_string=f"name = '{name}'",
            page_token=token,
        )
        for model in page:
            if model.source_run_id == run_id:
                return model
        token = getattr(page, "token", None)
        if not token:
            return None


def _collect_merged(sources: list[Path], relative: str, legacy_single_file: bool) -> list[_File]:
    merged: dict[str, _File] = {}
    found = False
    single_file = True
    for source in sources:
        if not source.exists():
            continue
        found = True
        single_file = single_file and source.is_file()
        for item in _collect(source):
            merged[item.key] = item  # later sources (the LoggedModel) win, as in MLflow
    if not found:
        raise ArtifactAccessError(f"no artifacts at {relative!r} (looked in {_join(sources)})")
    if legacy_single_file and single_file:
        return []
    return list(merged.values())


def _missing_remotely(run_id: str, relative: str, tracking_uri: str | None) -> bool:
    """True only if MLflow lists nothing at ``runs:/<run_id>/<relative>``, file or directory.

    Asked before a download because MLflow 2's artifact proxy answers a missing path with
    HTTP 500, which its client retries for minutes. A failed listing says nothing: the
    download then reports the cause.
    """
    if not relative:
        return False
    import mlflow.artifacts

    parent, _, name = relative.rpartition("/")
    try:
        listed = mlflow.artifacts.list_artifacts(
            artifact_uri=f"runs:/{run_id}/{relative}", tracking_uri=tracking_uri
        )
        if listed:
            return False
        if parent:
            siblings = mlflow.artifacts.list_artifacts(
                artifact_uri=f"runs:/{run_id}/{parent}", tracking_uri=tracking_uri
            )
        else:  # "runs:/<run_id>" alone is not a valid URI
            siblings = mlflow.artifacts.list_artifacts(run_id=run_id, tracking_uri=tracking_uri)
    except Exception as exc:
        logger.debug("cannot list %s of run %s: %s", relative, run_id, exc)
        return False
    return not any(item.path.rstrip("/").rpartition("/")[2] == name for item in siblings)


def _join(paths: Iterable[Path]) -> str:
    return ", ".join(str(p) for p in paths)


#: MLflow fetches a file a server hands out as a presigned URL (``mlflow server`` with S3
#: behind it) in byte ranges, each held whole in memory, 100 MiB by default: a smaller
#: range keeps the download of a large model in bounded memory (a few ranges in flight).
#: Set only when the user has not chosen one (``MLFLOW_MULTIPART_DOWNLOAD_CHUNK_SIZE``).
DOWNLOAD_RANGE_BYTES = 2 << 20


def _download(request: dict[str, str], scratch: Path, tracking_uri: str | None) -> str:
    """``mlflow.artifacts.download_artifacts(**request)`` into ``scratch``; typed errors."""
    os.environ.setdefault("MLFLOW_MULTIPART_DOWNLOAD_CHUNK_SIZE", str(DOWNLOAD_RANGE_BYTES))
    try:
        import mlflow.artifacts

        kwargs: dict[str, Any] = dict(request, dst_path=str(scratch))
        if tracking_uri:
            kwargs["tracking_uri"] = tracking_uri
        return str(mlflow.artifacts.download_artifacts(**kwargs))
    except Exception as exc:
        raise ArtifactAccessError(f"download failed: {exc}") from exc


# --- model URIs (registry sources, LoggedModels) -------------------------------------------

_MODELS_SCHEME = "models:/"


def model_uri_checksums(
    model_uri: str,
    *,
    tracking_uri: str | None = None,
    progress: ProgressCallback | None = None,
    workers: int | None = None,
    show_progress: bool | None = None,
) -> dict[str, str]:
    """Per-file SHA-256 map of the model a URI names, with the same keys as a run's map.

    For registry sources and ``VerifiedModel`` URIs, which on MLflow 3 are usually
    ``models:/m-<id>`` (``log_model(registered_model_name=...)`` and
    ``mlflow.register_model("runs:/...")`` both record that), not ``runs:/``:

    * ``runs:/<run_id>/<path>`` is :func:`artifact_checksums` (path default ``"model"``);
    * ``models:/m-<id>``, ``models:/<name>/<version>``, ``models:/<name>@<alias>`` are
      resolved to their storage location and hashed in place when it is local;
    * anything else (stages, sub-paths, ``s3://…``) is downloaded by MLflow into a
      temporary directory that is always removed.

    Raises :class:`ArtifactAccessError` naming the URI and the cause.
    """
    options: dict[str, Any] = {
        "progress": progress,
        "workers": workers,
        "show_progress": show_progress,
    }

    def failure(cause: object) -> ArtifactAccessError:
        return ArtifactAccessError(f"cannot hash the model at {model_uri!r}: {cause}")

    if not isinstance(model_uri, str) or not model_uri.strip():
        raise failure("no model URI given")
    run_id, path = parse_runs_uri(model_uri)
    if run_id:
        return artifact_checksums(
            run_id,
            artifact_path=path or DEFAULT_ARTIFACT_PATH,
            tracking_uri=tracking_uri,
            **options,
        )
    try:
        location = _model_location(model_uri, tracking_uri)
    except Exception as exc:  # MLflow may still resolve it (or explain why not)
        logger.debug("cannot resolve %s locally, downloading: %s", model_uri, exc)
        location = None
    run_id, path = parse_runs_uri(location)
    if run_id:  # a version registered from runs:/ keeps pointing there
        return artifact_checksums(
            run_id,
            artifact_path=path or DEFAULT_ARTIFACT_PATH,
            tracking_uri=tracking_uri,
            **options,
        )
    try:
        local = _local_path(location)
        if local is not None:
            return _hash_files(_collect(local), **options)
        with _private_temp_dir() as scratch:
            root = Path(_download({"artifact_uri": model_uri}, scratch, tracking_uri))
            return _hash_files(_collect(root), **options)
    except ArtifactAccessError as exc:
        raise failure(exc) from exc


def _model_location(model_uri: str, tracking_uri: str | None) -> str | None:
    """Storage URI behind a model URI, or ``None`` to let MLflow resolve it."""
    if not model_uri.startswith(_MODELS_SCHEME):
        return model_uri  # already a location: a path, file://, s3://, ...
    body = model_uri[len(_MODELS_SCHEME) :]
    if body.startswith("/"):
        return None  # models://<profile>/... (Databricks): MLflow's business
    segments = body.split("/")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    if len(segments) == 1 and "@" in segments[0]:
        name, _, alias = segments[0].rpartition("@")
        version = client.get_model_version_by_alias(name, alias).version
        return _version_location(client, name, str(version))
    if len(segments) == 1 and segments[0].startswith("m-"):
        return str(client.get_logged_model(segments[0]).artifact_location)
    if len(segments) == 2 and segments[1].isdigit():
        return _version_location(client, segments[0], segments[1])
    return None


def _version_location(client: Any, name: str, version: str) -> str | None:
    location = str(client.get_model_version_download_uri(name, version))
    if location.startswith(_MODELS_SCHEME):
        model_id = location[len(_MODELS_SCHEME) :]
        if model_id.startswith("m-") and "/" not in model_id:
            return str(client.get_logged_model(model_id).artifact_location)
        return None
    return location


@contextmanager
def _private_temp_dir() -> Iterator[Path]:
    """A fresh temporary directory, removed on exit whatever happened inside."""
    path = private_directory("ario-mlflow-artifacts-")
    try:
        yield path
    finally:
        remove_tree(path)


def remove_tree(path: Path) -> None:
    """``rmtree`` that also clears read-only bits left by a download, then says if it failed."""

    def retry(function: Callable[..., Any], name: str, *_exc: object) -> None:
        try:
            os.chmod(os.path.dirname(name) or ".", stat.S_IRWXU)
            if os.path.lexists(name) and not os.path.islink(name):
                os.chmod(name, stat.S_IRWXU)
            function(name)
        except OSError:
            pass

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=retry)
    else:
        shutil.rmtree(path, onerror=retry)
    if path.exists():  # pragma: no cover - only when the OS refuses twice
        logger.warning("could not remove temporary artifact copy %s", path)
