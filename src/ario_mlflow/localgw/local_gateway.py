"""``LocalGateway``: run the local gateway in-process, on a background thread.

Tests and the demo talk to it over real HTTP at :attr:`LocalGateway.url`; nothing in
the product knows it is local. :meth:`LocalGateway.spawn` runs the same server in a
subprocess instead (for "the gateway dies" scenarios).
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ario_mlflow.arweave.transport import Transport, default_transport
from ario_mlflow.errors import ConfigError
from ario_mlflow.localgw.chain import SyntheticChain
from ario_mlflow.localgw.faults import FaultPlan, FaultsLike, FaultSpec
from ario_mlflow.localgw.in_process import IN_PROCESS_URL, InProcessTransport
from ario_mlflow.localgw.keyfile import load_or_create_wallet
from ario_mlflow.localgw.server import DEFAULT_MAX_ITEM_BYTES, GatewayServer
from ario_mlflow.localgw.store import ItemStore
from ario_mlflow.proof.rsa_pss import derive_operator_address, public_jwk

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

    from ario_mlflow.localgw.process import GatewayProcess

DEFAULT_FINALIZE_AFTER = 2.0


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def format_url(host: str, port: int) -> str:
    """``http://host:port`` with IPv6 literals bracketed."""
    host = host.strip("[]")
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class LocalGateway:
    """Turbo upload + ar.io gateway + Verify stand-in on loopback, backed by SQLite.

    ``LocalGateway(data_dir).start()`` binds (``port=0`` picks a free port), serves on a
    daemon thread and returns ``self``; ``stop()`` (or leaving a ``with`` block) stops
    answering, cuts open connections, releases the port and closes the database.
    Restarting on the same ``data_dir`` keeps every item and the same wallet.
    """

    def __init__(
        self,
        data_dir: str | Path,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        key_bits: int = 4096,
        faults: FaultsLike = None,
        finalize_after: float = DEFAULT_FINALIZE_AFTER,
        max_item_bytes: int = DEFAULT_MAX_ITEM_BYTES,
        allow_remote: bool = False,
        fault_seed: int | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        if not allow_remote and not is_loopback(host):
            raise ConfigError(
                f"refusing to serve on non-loopback host {host!r}: the local gateway is a "
                "development tool (pass allow_remote=True / --allow-remote to override)"
            )
        if finalize_after < 0:
            raise ConfigError("finalize_after must be >= 0 seconds")
        self.data_dir = Path(data_dir)
        self.host = host
        self._requested_port = port
        self.key_bits = key_bits
        self.chain = SyntheticChain(finalize_after=finalize_after)
        self.max_item_bytes = max_item_bytes
        self._faults = FaultPlan(faults, seed=fault_seed)
        self._log = log
        self._server: GatewayServer | None = None
        self._thread: threading.Thread | None = None
        self._store: ItemStore | None = None
        self._key: rsa.RSAPrivateKey | None = None
        self._last_port: int | None = None
        self._lock = threading.Lock()

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> LocalGateway:
        """Bind and serve in the background; returns ``self``."""
        return self._start(listen=True)

    def in_process(self) -> LocalGateway:
        """Serve without a socket, to :attr:`transport` only (at :attr:`url`, which is
        :data:`~ario_mlflow.localgw.in_process.IN_PROCESS_URL`); returns ``self``.

        For unit tests: the same routes, store, receipts and faults, and no port.
        """
        return self._start(listen=False)

    def _start(self, *, listen: bool) -> LocalGateway:
        with self._lock:
            if self._server is not None:
                raise RuntimeError("the local gateway is already running")
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._key = load_or_create_wallet(self.data_dir, key_bits=self.key_bits)
            store = ItemStore(self.data_dir)
            try:
                server = GatewayServer(
                    (self.host.strip("[]"), self._requested_port),
                    store=store,
                    key=self._key,
                    chain=self.chain,
                    faults=self._faults,
                    max_item_bytes=self.max_item_bytes,
                    log=self._log,
                    listen=listen,
                )
            except BaseException:
                store.close()
                raise
            self._store, self._server = store, server
            if not listen:
                return self
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"ario-localgw-{server.server_address[1]}",
                daemon=True,
            )
            self._store, self._server, self._thread = store, server, thread
            self._last_port = int(server.server_address[1])
            thread.start()
            return self

    def stop(self) -> None:
        """Stop answering, close connections, release the port, close SQLite. Idempotent."""
        with self._lock:
            server, thread, store = self._server, self._thread, self._store
            self._server = self._thread = self._store = None
        if server is None:
            return
        server.stopping.set()
        if thread is not None:  # serve_forever runs only for a listening gateway
            server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(5.0)
        if store is not None:
            store.close()

    def __enter__(self) -> LocalGateway:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._server is not None

    # --- where and who -------------------------------------------------------------------

    def _running_server(self) -> GatewayServer:
        if self._server is None:
            raise RuntimeError("the local gateway is not running; call start() first")
        return self._server

    @property
    def port(self) -> int:
        """The bound port; after :meth:`stop`, the last one (before any start: the requested)."""
        if self._server is not None:
            return int(self._server.server_address[1])
        return self._last_port if self._last_port is not None else self._requested_port

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321`` (upload URL and gateway alike).

        Still answers after :meth:`stop` (handy to show a client that the service is gone);
        raises ``RuntimeError`` before the first start.
        """
        if self._server is not None and self._thread is None:
            return IN_PROCESS_URL
        if self._server is None and self._last_port is None:
            raise RuntimeError("the local gateway has not been started; call start() first")
        return format_url(self.host, self.port)

    @property
    def transport(self) -> Transport:
        """A transport to this gateway: in process (no socket) after :meth:`in_process`,
        real HTTP over loopback after :meth:`start`."""
        server = self._running_server()
        if self._thread is None:
            return InProcessTransport(server)
        return default_transport()

    @property
    def db_path(self) -> Path:
        """The SQLite file holding accepted items."""
        return ItemStore.path_in(self.data_dir)

    @property
    def store(self) -> ItemStore:
        """Direct access to the item store (tests inspect it)."""
        self._running_server()
        assert self._store is not None
        return self._store

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        """Public half of the gateway wallet (receipts and attestations verify with it)."""
        self._running_server()
        assert self._key is not None
        return self._key.public_key()

    @property
    def operator_address(self) -> str:
        """Arweave address of the gateway wallet."""
        return derive_operator_address(public_jwk(self.public_key)["n"])

    # --- faults --------------------------------------------------------------------------

    def set_faults(self, faults: FaultsLike = None, **families: FaultSpec | dict[str, Any]) -> None:
        """Replace the active faults, e.g. ``set_faults(upload={"fail_next": 2, "status": 429})``.

        ``set_faults()`` clears every fault. Families: upload, status, read, graphql, verify
        (``all`` for every one). Takes effect for the next request.
        """
        merged: dict[str, FaultSpec | Mapping[str, Any]] = dict(faults or {})
        merged.update(families)
        self._faults.replace(merged)

    @property
    def faults(self) -> dict[str, dict[str, Any]]:
        """The active faults, as JSON-ready data."""
        return self._faults.snapshot()

    # --- subprocess ----------------------------------------------------------------------

    @staticmethod
    def spawn(
        data_dir: str | Path,
        host: str = "127.0.0.1",
        port: int = 0,
        **options: Any,
    ) -> GatewayProcess:
        """Run the gateway in a subprocess; returns once it listens (see :mod:`.process`)."""
        from ario_mlflow.localgw.process import GatewayProcess

        return GatewayProcess.start(data_dir, host, port, **options)
