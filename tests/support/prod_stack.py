"""The production stack on loopback: PostgreSQL, an S3 store and ``mlflow server``.

``ProdStack.start()`` starts, on 127.0.0.1, each on a free port, in a temporary directory
of its own:

* **PostgreSQL** from the distribution's packages (Debian's ``postgresql``: ``initdb`` and
  ``postgres`` from ``/usr/lib/postgresql/<version>/bin``, the newest found, else from
  ``PATH``), with a database ``mlflow``, trust authentication on 127.0.0.1 and its unix
  socket inside the directory. PostgreSQL refuses to run as root: as root, ``initdb`` and
  ``postgres`` run as the ``postgres`` system user, in a data directory it owns;
* an **S3-compatible store**: ``moto``'s standalone server (``python -m moto.server``)
  with dummy credentials, and a bucket made with ``boto3``;
* **``mlflow server``** with ``--backend-store-uri postgresql://…/mlflow``,
  ``--artifacts-destination s3://BUCKET/artifacts`` and ``--serve-artifacts`` (clients
  reach the artifacts through the server), run by :class:`~tests.support.mlflow_server.MlflowServer`
  with the S3 endpoint and credentials, and MLflow's registry webhooks allowed to reach
  loopback receivers (``MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https``,
  ``MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true``, a 1 s webhook cache) with a fixed
  ``MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY``: without one, every server process encrypts the
  webhook secrets it stores with a random key of its own, and a restarted server cannot
  read them any more.

Each process runs in a process group of its own and is stopped through its handle (its
PID), never by name: :meth:`ProdStack.stop` stops the three in reverse order and removes
the directory it created. Whatever does not come up fails at once with its log's tail; a
missing PostgreSQL or moto raises :class:`StackUnavailable` naming what to install
(``scripts/setup-dev`` installs both).

The handle gives ``tracking_uri``, ``pg_dsn``/``pg_port``, ``psql(sql)`` (the real ``psql``
client), ``s3()`` (a ``boto3`` client on the S3 endpoint), ``bucket``, ``env`` (what a
client process exports: ``MLFLOW_TRACKING_URI``, ``MLFLOW_S3_ENDPOINT_URL``, ``AWS_*``),
:meth:`~ProdStack.restart_mlflow` and :meth:`~ProdStack.stop`.

``python -m tests.support.prod_stack`` (``scripts/prod-stack``) runs the same stack for a
user until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.mlflow_server import HOST, MlflowServer, free_port

#: Where Debian's ``postgresql-<version>`` packages put the server binaries.
DEBIAN_POSTGRES = Path("/usr/lib/postgresql")
#: The system user PostgreSQL runs as when this process is root.
POSTGRES_USER = "postgres"
#: The database MLflow's tables go in.
DATABASE = "mlflow"
#: Dummy credentials: moto accepts any; they must only be present and consistent.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "ario-prod-stack",
    "AWS_SECRET_ACCESS_KEY": "ario-prod-stack-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
#: AWS settings of the caller's environment that would point boto3 elsewhere (a named
#: profile that does not exist here, a session token of real credentials).
AWS_UNSET = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
#: MLflow's registry webhooks may call a receiver on loopback over plain HTTP (a test's
#: or a developer's), and see a new webhook within a second.
WEBHOOK_ENV = {
    "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
    "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
    "MLFLOW_WEBHOOK_CACHE_TTL": "1",
}
#: What to install, per missing piece (``scripts/setup-dev`` installs them all).
INSTALL_POSTGRES = (
    "PostgreSQL's server binaries (initdb, postgres) were not found under "
    f"{DEBIAN_POSTGRES}/*/bin or on PATH: install Debian's `postgresql` package "
    "(`apt-get install -y postgresql`; scripts/setup-dev does it)"
)
INSTALL_PYTHON = (
    "the Python package{s} {names} {verb} not installed: `pip install -e '.[test]'` "
    "(scripts/setup-dev does it)"
)
#: Python modules the stack needs, and the distribution that provides each.
PYTHON_NEEDS = {
    "moto": "moto[server]",
    "flask_cors": "moto[server]",
    "boto3": "boto3",
    "psycopg2": "psycopg2-binary",
}


class StackUnavailable(RuntimeError):
    """A piece of the stack is not installed; the message says what to install."""


class StackError(RuntimeError):
    """A piece of the stack did not come up; the message holds its log's tail."""


# --- what is installed ------------------------------------------------------------------


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path.parent.parent.name)) or (0,)


def postgres_bin_dir() -> Path | None:
    """The directory of ``initdb``/``postgres``/``psql``: the newest
    ``/usr/lib/postgresql/<version>/bin`` holding ``initdb``, else ``initdb``'s on PATH."""
    found = sorted(DEBIAN_POSTGRES.glob("*/bin/initdb"), key=_version_key)
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def missing() -> list[str]:
    """What is not installed, one install instruction per piece (empty: all there)."""
    problems: list[str] = []
    bin_dir = postgres_bin_dir()
    if bin_dir is None or not all((bin_dir / n).exists() for n in ("postgres", "psql")):
        problems.append(INSTALL_POSTGRES)
    absent = sorted(
        {dist for module, dist in PYTHON_NEEDS.items() if importlib.util.find_spec(module) is None}
    )
    if absent:
        plural = len(absent) > 1
        problems.append(
            INSTALL_PYTHON.format(
                s="s" if plural else "", names=", ".join(absent), verb="are" if plural else "is"
            )
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(POSTGRES_USER)
        except KeyError:
            problems.append(
                f"running as root, PostgreSQL needs the `{POSTGRES_USER}` system user, which "
                "Debian's `postgresql` package creates (`apt-get install -y postgresql`)"
            )
    return problems


# --- processes ------------------------------------------------------------------------------


def _tail(path: Path, size: int = 3000) -> str:
    try:
        return path.read_bytes()[-size:].decode(errors="replace")
    except OSError:
        return ""


def _stop_group(process: subprocess.Popen[bytes], first: int, timeout: float) -> None:
    """Send ``first`` to the process (the leader of a group it was started in), wait up to
    ``timeout`` s, then SIGKILL its whole group; reap it."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(process.pid, first)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # the group we created, nothing else
    process.wait()


def _http_ok(url: str, timeout: float = 2.0) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only
    try:
        with opener.open(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _clean_env(extra: Mapping[str, str] = {}) -> dict[str, str]:
    """This environment without libpq's ``PG*`` and the AWS settings that point elsewhere."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PG") and k not in AWS_UNSET and k not in ("MLFLOW_TRACKING_URI",)
    }
    env.update(extra)
    return env


@dataclass
class _RunAs:
    """Who runs PostgreSQL's programs: this user, or ``postgres`` when this one is root."""

    uid: int | None = None
    gid: int | None = None

    @classmethod
    def for_postgres(cls) -> _RunAs:
        if os.geteuid() != 0:
            return cls()
        entry = pwd.getpwnam(POSTGRES_USER)
        return cls(entry.pw_uid, entry.pw_gid)

    def popen_options(self) -> dict[str, Any]:
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def can_reach(self, path: Path) -> bool:
        """Whether this user may enter ``path`` and each directory above it."""
        if self.uid is None:
            return True
        for directory in [path, *path.parents]:
            info = directory.stat()
            if info.st_uid == self.uid:
                bit = stat.S_IXUSR
            elif info.st_gid == self.gid:
                bit = stat.S_IXGRP
            else:
                bit = stat.S_IXOTH
            if not info.st_mode & bit:
                return False
        return True

    def own(self, path: Path) -> None:
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)


@dataclass
class Postgres:
    """One ``postgres`` server (its postmaster's process handle) and how to reach it."""

    bin_dir: Path
    directory: Path
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def dsn(self) -> str:
        """The libpq connection URI (``psql DSN``)."""
        return f"postgresql://{POSTGRES_USER}@{HOST}:{self.port}/{DATABASE}"

    @property
    def sqlalchemy_uri(self) -> str:
        """The same, naming the driver: SQLAlchemy 2.1 maps a bare ``postgresql://`` to
        psycopg 3, not to the psycopg2 installed here."""
        return self.dsn.replace("postgresql://", "postgresql+psycopg2://", 1)

    @classmethod
    def start(cls, directory: Path, timeout: float = 60.0) -> Postgres:
        """``initdb`` a cluster in ``directory/data`` and start it on a free port (another
        port if the chosen one was taken meanwhile); the database ``mlflow`` exists."""
        bin_dir = postgres_bin_dir()
        if bin_dir is None:
            raise StackUnavailable(INSTALL_POSTGRES)
        run_as = _RunAs.for_postgres()
        directory.mkdir(parents=True, exist_ok=True)
        socket_dir = directory / "socket"
        socket_dir.mkdir(exist_ok=True)
        for path in (directory, socket_dir):
            run_as.own(path)
            path.chmod(0o700)
        log_path = directory / "postgres.log"
        data = directory / "data"
        with open(log_path, "ab") as log:
            initdb = subprocess.run(
                [
                    str(bin_dir / "initdb"),
                    "--pgdata",
                    str(data),
                    "--username",
                    POSTGRES_USER,
                    "--auth",
                    "trust",
                    "--encoding",
                    "UTF8",
                    "--locale",
                    "C",
                    "--no-sync",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=directory,
                env=_clean_env(),
                check=False,
                timeout=120,
                **run_as.popen_options(),
            )
        if initdb.returncode != 0:
            raise StackError(f"initdb failed ({initdb.returncode}); {log_path}:\n{_tail(log_path)}")
        for _ in range(3):
            server = cls._launch(bin_dir, directory, free_port(), log_path, run_as)
            try:
                server._wait(timeout)
            except StackError as exc:
                if "could not bind" not in str(exc) and "already in use" not in str(exc):
                    raise
                continue
            server.psql(f"CREATE DATABASE {DATABASE}", database="postgres")
            return server
        raise StackError(f"postgres found no free port; {log_path}:\n{_tail(log_path)}")

    @classmethod
    def _launch(
        cls, bin_dir: Path, directory: Path, port: int, log_path: Path, run_as: _RunAs
    ) -> Postgres:
        command = [
            str(bin_dir / "postgres"),
            "-D",
            str(directory / "data"),
            "-p",
            str(port),
            "-k",
            str(directory / "socket"),
            # a throwaway server: loopback only, durability traded for speed
            "-c",
            f"listen_addresses={HOST}",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ]
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=directory,
                env=_clean_env(),
                start_new_session=True,
                **run_as.popen_options(),
            )
        return cls(bin_dir, directory, port, process, log_path)

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            ready = subprocess.run(
                [str(self.bin_dir / "pg_isready"), "-q", "-h", HOST, "-p", str(self.port)],
                check=False,
                env=_clean_env(),
                timeout=10,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        self.stop()
        raise StackError(
            f"postgres on port {self.port} did not come up (exit status "
            f"{self.process.returncode}); {self.log_path}:\n{_tail(self.log_path)}"
        )

    def psql(self, sql: str, *, database: str = DATABASE) -> str:
        """Run ``sql`` with the ``psql`` client (unaligned, tuples only, stop at the first
        error); its output. Raises ``RuntimeError`` with psql's message on failure."""
        result = subprocess.run(
            [
                str(self.bin_dir / "psql"),
                "--no-psqlrc",
                "--quiet",
                "--no-align",
                "--tuples-only",
                "--set",
                "ON_ERROR_STOP=1",
                "--host",
                HOST,
                "--port",
                str(self.port),
                "--username",
                POSTGRES_USER,
                "--dbname",
                database,
                "--command",
                sql,
            ],
            capture_output=True,
            text=True,
            check=False,
            env=_clean_env(),
            timeout=60,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed ({result.returncode}) on {sql!r}: {result.stderr}")
        return result.stdout

    def stop(self, timeout: float = 15.0) -> None:
        """Fast shutdown (SIGINT: disconnect the clients, then exit), then SIGKILL."""
        _stop_group(self.process, signal.SIGINT, timeout)


@dataclass
class S3Server:
    """moto's standalone server (its process handle) and its endpoint."""

    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    @classmethod
    def start(cls, directory: Path, timeout: float = 60.0) -> S3Server:
        if importlib.util.find_spec("moto") is None:
            raise StackUnavailable(INSTALL_PYTHON.format(s="", names="moto[server]", verb="is"))
        log_path = directory / "s3.log"
        for _ in range(3):
            port = free_port()
            with open(log_path, "ab") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=directory,
                    env=_clean_env({**AWS_ENV, "PYTHONUNBUFFERED": "1"}),
                    start_new_session=True,
                )
            server = cls(port, process, log_path)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and process.poll() is None:
                if _http_ok(f"{server.endpoint}/moto-api/"):
                    return server
                time.sleep(0.1)
            server.stop()
            if "address already in use" not in _tail(log_path).lower():
                break
        raise StackError(f"moto's S3 server did not come up; {log_path}:\n{_tail(log_path)}")

    def client(self) -> Any:
        import boto3

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
            region_name=AWS_ENV["AWS_DEFAULT_REGION"],
        )

    def stop(self, timeout: float = 10.0) -> None:
        _stop_group(self.process, signal.SIGTERM, timeout)


# --- the stack ----------------------------------------------------------------------------


@dataclass
class ProdStack:
    """A running stack (see the module's docstring); stop it with :meth:`stop`."""

    root: Path
    postgres: Postgres
    s3_server: S3Server
    mlflow: MlflowServer
    bucket: str
    server_env: dict[str, str | None]
    _removable: list[Path] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        directory: str | os.PathLike[str] | None = None,
        *,
        bucket: str = "mlflow",
        mlflow_port: int | None = None,
        startup_timeout: float = 120.0,
    ) -> ProdStack:
        """Start the three in ``directory`` (a new temporary directory by default, removed
        by :meth:`stop`; a given one must be empty or absent, and is kept)."""
        problems = missing()
        if problems:
            raise StackUnavailable("the production stack cannot start: " + "; ".join(problems))
        removable: list[Path] = []
        if directory is None:
            root = Path(tempfile.mkdtemp(prefix="ario-prod-stack-"))
            removable.append(root)
        else:
            root = Path(directory).resolve()
            if root.exists() and any(root.iterdir()):
                raise StackError(f"{root} is not empty: give the stack an empty directory")
            root.mkdir(parents=True, exist_ok=True)
        pg_dir = cls._postgres_directory(root, removable)
        pool = ThreadPoolExecutor(2)  # PostgreSQL and the S3 server boot side by side
        boots = [
            pool.submit(Postgres.start, pg_dir, startup_timeout),
            pool.submit(S3Server.start, root, startup_timeout),
        ]
        try:
            postgres, s3_server = boots[0].result(), boots[1].result()
            s3_server.client().create_bucket(Bucket=bucket)
            server_env = cls._server_env(s3_server)
            mlflow = MlflowServer.start(  # killed by start itself if it does not come up
                postgres.sqlalchemy_uri,
                f"s3://{bucket}/artifacts",
                port=mlflow_port,
                env=server_env,
                workdir=root,
                log_path=root / "mlflow-server.log",
                startup_timeout=startup_timeout,
            )
        except BaseException:  # a failure, or Ctrl-C/SIGTERM while booting
            pool.shutdown(wait=True)  # whatever was still booting has come up or failed
            for boot in reversed(boots):
                if boot.exception() is None:
                    boot.result().stop()
            for path in removable:
                shutil.rmtree(path, ignore_errors=True)
            raise
        finally:
            pool.shutdown(wait=False)
        return cls(root, postgres, s3_server, mlflow, bucket, server_env, removable)

    @staticmethod
    def _postgres_directory(root: Path, removable: list[Path]) -> Path:
        """``root/postgres``, or — when root runs this and the ``postgres`` user cannot
        enter ``root`` (a 0700 directory of root's, such as pytest's) — a directory of its
        own in the system's temporary directory."""
        run_as = _RunAs.for_postgres()
        if run_as.uid is not None and removable and removable[0] == root:
            root.chmod(0o711)  # ours: let postgres through, without listing it
        if run_as.can_reach(root):
            return root / "postgres"
        own = Path(tempfile.mkdtemp(prefix="ario-prod-stack-pg-", dir="/tmp"))
        own.chmod(0o711)
        removable.append(own)
        return own / "postgres"

    @staticmethod
    def _server_env(s3_server: S3Server) -> dict[str, str | None]:
        from cryptography.fernet import Fernet

        return {
            **AWS_ENV,
            **dict.fromkeys(AWS_UNSET),
            "MLFLOW_S3_ENDPOINT_URL": s3_server.endpoint,
            **WEBHOOK_ENV,
            # one key for the stack's lifetime: webhook secrets survive restart_mlflow()
            "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        }

    # --- what tests and users need -----------------------------------------------------

    @property
    def tracking_uri(self) -> str:
        """The ``mlflow server``'s URL (MLflow's tracking and registry URI)."""
        return self.mlflow.url

    @property
    def pg_port(self) -> int:
        return self.postgres.port

    @property
    def pg_dsn(self) -> str:
        """``postgresql://postgres@127.0.0.1:PORT/mlflow`` (trust authentication)."""
        return self.postgres.dsn

    @property
    def backend_store_uri(self) -> str:
        """What ``mlflow server --backend-store-uri`` was given (the driver named)."""
        return self.postgres.sqlalchemy_uri

    @property
    def s3_endpoint(self) -> str:
        return self.s3_server.endpoint

    @property
    def env(self) -> dict[str, str]:
        """What a client process exports to use the stack: the tracking URI, the S3
        endpoint (MLflow reads artifacts from S3 itself when a location is ``s3://``) and
        the dummy AWS credentials."""
        return {
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint,
            **AWS_ENV,
        }

    def psql(self, sql: str) -> str:
        """Run ``sql`` on the ``mlflow`` database with the real ``psql`` client; its
        output (unaligned, tuples only)."""
        return self.postgres.psql(sql)

    def s3(self) -> Any:
        """A ``boto3`` S3 client on the stack's endpoint."""
        return self.s3_server.client()

    def restart_mlflow(self, timeout: float = 120.0) -> None:
        """Stop ``mlflow server`` and start it again on the same port (same database,
        bucket and webhook key)."""
        port = self.mlflow.port
        self.mlflow.stop()
        self.mlflow = MlflowServer.start(
            self.backend_store_uri,
            f"s3://{self.bucket}/artifacts",
            port=port,
            env=self.server_env,
            workdir=self.root,
            log_path=self.mlflow.log_path,
            startup_timeout=timeout,
        )

    def alive(self) -> list[str]:
        """Which of the three have exited (empty: all running)."""
        processes = {
            "postgres": self.postgres.process,
            "s3": self.s3_server.process,
            "mlflow server": self.mlflow.process,
        }
        return [name for name, process in processes.items() if process.poll() is not None]

    def stop(self) -> None:
        """Stop mlflow server, the S3 server and PostgreSQL (in that order, each by its
        process handle), then remove the directories the stack created."""
        try:
            self.mlflow.stop()
        finally:
            try:
                self.s3_server.stop()
            finally:
                self.postgres.stop()
                for path in self._removable:
                    shutil.rmtree(path, ignore_errors=True)

    def __enter__(self) -> ProdStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- scripts/prod-stack -----------------------------------------------------------------------


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/prod-stack",
        description=(
            "Run MLflow as in production on this machine's loopback: PostgreSQL (backend "
            "store), an S3-compatible store (moto; artifacts) and `mlflow server` in front "
            "of both, until Ctrl-C or SIGTERM, which stop all three."
        ),
    )
    parser.add_argument(
        "--dir",
        help="an empty (or new) directory for the data and logs, kept afterwards "
        "(default: a temporary directory, removed afterwards)",
    )
    parser.add_argument(
        "--port", type=int, default=0, help="mlflow server's port (default, 0: a free one)"
    )
    parser.add_argument("--bucket", default="mlflow", help="the S3 bucket (default: mlflow)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    with _sigterm_as_interrupt():
        try:
            stack = ProdStack.start(args.dir, bucket=args.bucket, mlflow_port=args.port or None)
        except (StackUnavailable, StackError) as exc:
            print(f"prod-stack: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130
        try:
            _announce(stack, time.monotonic() - started)
            while not (dead := stack.alive()):
                time.sleep(1)
            print(f"prod-stack: {', '.join(dead)} exited; stopping the rest", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\nprod-stack: stopping", flush=True)
            return 0
        finally:
            stack.stop()


def _announce(stack: ProdStack, seconds: float) -> None:
    lines = [
        f"MLflow tracking server: {stack.tracking_uri}  (up in {seconds:.1f} s)",
        f"  backend store:  {stack.backend_store_uri}  (psql {stack.pg_dsn})",
        f"  artifacts:      s3://{stack.bucket}/artifacts on {stack.s3_endpoint} (moto)",
        f"  data and logs:  {stack.root}",
        "",
        "In another shell:",
        *(f"export {name}={value}" for name, value in stack.env.items()),
        "",
        "Press Ctrl-C to stop.",
    ]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
