"""Fixtures shared by the ANS-104, signer and wallet tests."""

from __future__ import annotations

import pytest

from ario_mlflow.arweave.wallet import generate_arweave_jwk


@pytest.fixture(scope="session")
def arweave_jwk() -> dict[str, str]:
    """One RSA-4096 Arweave JWK per test session (generating one takes about a second)."""
    return generate_arweave_jwk()
