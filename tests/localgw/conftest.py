"""Fixtures for the local gateway tests: one shared 2048-bit gateway wallet, fresh dirs."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from ario_mlflow.arweave.signers import ArweaveSigner, Ed25519Signer
from ario_mlflow.localgw import LocalGateway
from ario_mlflow.localgw.keyfile import WALLET_FILENAME, load_or_create_wallet


@pytest.fixture(scope="session")
def wallet_text(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 2048-bit gateway wallet, generated once and copied into every data dir."""
    directory = tmp_path_factory.mktemp("wallet")
    load_or_create_wallet(directory, key_bits=2048)
    return (directory / WALLET_FILENAME).read_text()


@pytest.fixture
def data_dir(tmp_path: Path, wallet_text: str) -> Path:
    """A gateway data dir that already holds the shared wallet."""
    directory = tmp_path / "gateway"
    directory.mkdir()
    path = directory / WALLET_FILENAME
    path.write_text(wallet_text)
    os.chmod(path, 0o600)
    return directory


@pytest.fixture
def gateway(data_dir: Path) -> Iterator[LocalGateway]:
    """A running in-process gateway that finalizes items after 0.3 s."""
    with LocalGateway(data_dir, key_bits=2048, finalize_after=0.3) as running:
        yield running


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture(scope="session")
def signer() -> Ed25519Signer:
    return Ed25519Signer(bytes(range(32)))


@pytest.fixture(scope="session")
def other_signer() -> Ed25519Signer:
    return Ed25519Signer(bytes(range(32, 64)))


@pytest.fixture(scope="session")
def arweave_signer(arweave_jwk: dict[str, str]) -> ArweaveSigner:
    return ArweaveSigner(arweave_jwk)


def wallet_modulus(wallet: str) -> str:
    return str(json.loads(wallet)["n"])
