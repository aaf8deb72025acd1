"""Start, stop, restart: the port is released, items and wallet persist, loopback only."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
from pathlib import Path

import pytest
import requests

from ario_mlflow.arweave.receipt import verify_receipt
from ario_mlflow.arweave.signers import Ed25519Signer
from ario_mlflow.errors import ConfigError
from ario_mlflow.localgw import LocalGateway
from ario_mlflow.localgw.keyfile import WALLET_FILENAME, load_or_create_wallet
from tests.localgw._support import make_item, upload


def test_items_and_wallet_survive_a_restart(
    data_dir: Path, http: requests.Session, signer: Ed25519Signer
) -> None:
    item = make_item(signer, b"persist me")
    with LocalGateway(data_dir, key_bits=2048) as first:
        receipt = upload(http, first.url, item).json()
        port = first.port
    with LocalGateway(data_dir, port=port, key_bits=2048) as second:
        assert second.port == port  # the port was released
        assert http.get(f"{second.url}/raw/{item.id}", timeout=5).content == b"persist me"
        assert upload(http, second.url, item).status_code == 202
        fresh = upload(http, second.url, make_item(signer)).json()
        assert fresh["public"] == receipt["public"]  # same wallet
        assert verify_receipt(fresh) is True
        assert second.store.count() == 2


def test_stop_releases_the_port_and_is_idempotent(data_dir: Path) -> None:
    gateway = LocalGateway(data_dir, key_bits=2048).start()
    port = gateway.port
    gateway.stop()
    gateway.stop()
    assert not gateway.running
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/health", timeout=2)


def test_stop_cuts_keep_alive_connections(data_dir: Path) -> None:
    gateway = LocalGateway(data_dir, key_bits=2048).start()
    url = gateway.url
    with requests.Session() as http:
        assert http.get(f"{url}/health", timeout=5).status_code == 200
        gateway.stop()
        with pytest.raises(requests.ConnectionError):
            http.get(f"{url}/health", timeout=2)


def test_concurrent_uploads(
    gateway: LocalGateway, signer: Ed25519Signer, other_signer: Ed25519Signer
) -> None:
    items = [make_item(signer if i % 2 else other_signer) for i in range(40)]
    codes: list[int] = []
    lock = threading.Lock()

    def send(chunk: list) -> None:  # type: ignore[type-arg]
        with requests.Session() as http:
            for item in chunk:
                code = upload(http, gateway.url, item).status_code
                with lock:
                    codes.append(code)

    threads = [threading.Thread(target=send, args=(items[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert codes == [200] * 40
    assert gateway.store.count() == 40


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "example.com"])
def test_non_loopback_hosts_are_refused(tmp_path: Path, host: str) -> None:
    with pytest.raises(ConfigError, match="non-loopback"):
        LocalGateway(tmp_path, host)


def test_allow_remote_is_explicit(tmp_path: Path) -> None:
    # Constructed only: tests never bind anything but loopback.
    gateway = LocalGateway(tmp_path, "0.0.0.0", allow_remote=True)
    assert not gateway.running


def test_ipv6_loopback(data_dir: Path) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        gateway = LocalGateway(data_dir, "::1", key_bits=2048).start()
    except OSError:
        pytest.skip("::1 not available")
    with gateway:
        assert gateway.url.startswith("http://[::1]:")
        assert requests.get(f"{gateway.url}/health", timeout=5).ok


def test_wallet_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    first = load_or_create_wallet(tmp_path, key_bits=2048)
    path = tmp_path / WALLET_FILENAME
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = load_or_create_wallet(tmp_path, key_bits=4096)  # stored key wins
    assert again.private_numbers() == first.private_numbers()
    assert json.loads(path.read_text())["kty"] == "RSA"


def test_corrupt_wallet_is_an_error_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / WALLET_FILENAME
    path.write_text('{"kty": "RSA", "n": "AQAB"}')
    with pytest.raises(ConfigError, match="unreadable"):
        load_or_create_wallet(tmp_path, key_bits=2048)
    assert path.read_text() == '{"kty": "RSA", "n": "AQAB"}'
    with pytest.raises(ConfigError):
        LocalGateway(tmp_path, key_bits=2048).start()


def test_tiny_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="2048"):
        load_or_create_wallet(tmp_path, key_bits=1024)


def test_url_before_start_and_after_stop(data_dir: Path) -> None:
    gateway = LocalGateway(data_dir, port=0, key_bits=2048)
    assert gateway.port == 0
    with pytest.raises(RuntimeError):
        _ = gateway.url
    gateway.start()
    url, port = gateway.url, gateway.port
    gateway.stop()
    assert (gateway.url, gateway.port) == (url, port)  # still names the dead service
