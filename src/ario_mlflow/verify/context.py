"""What every verifier is wired with: the pinned issuer keys, the Arweave client that
reads the records, and the ar.io Verify client when one is configured.

One factory for ``verify``, ``audit``, ``export``, ``verify-bundle`` and the demo, so
that they pin the same keys the same way: ``ARIO_MLFLOW_TRUSTED_KEYS`` plus the keys the
caller names (``--trusted-key``), validated and compared case-insensitively.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ario_mlflow.config import Settings, load_settings, pinned_keys


@dataclass
class VerifyContext:
    """The pinned keys, and the clients built on first use from the same settings."""

    trusted_keys: tuple[str, ...]
    settings: Settings = field(repr=False)
    given_anchor: Any = field(default=None, repr=False)

    @classmethod
    def configured(
        cls, extra_keys: Sequence[str] = (), *, source: str = "--trusted-key", anchor: Any = None
    ) -> VerifyContext:
        """The context the settings describe, with ``extra_keys`` pinned as well
        (``ConfigError`` naming ``source`` when one is not an Ed25519 public key)."""
        settings = load_settings()
        pinned = pinned_keys((*settings.trusted_keys, *extra_keys), source=source)
        return cls(pinned, settings, anchor)

    @cached_property
    def anchor(self) -> Any:
        """The Arweave client (``ArweaveAnchor`` over the configured gateways)."""
        if self.given_anchor is not None:
            return self.given_anchor
        from ario_mlflow.outbox.anchor import ArweaveAnchor

        return ArweaveAnchor(settings=self.settings)

    @cached_property
    def ario_client(self) -> Any:
        """The ar.io Verify client, or ``None`` when ``ARIO_MLFLOW_ARIO_VERIFY_URL`` is
        not set (the attestation check then reports that it did not run)."""
        if not self.settings.verify_url:
            return None
        from ario_mlflow.arweave.ario_verify import ArioVerifyClient

        return ArioVerifyClient()

    def verify(self, target: Any, client: Any, *, min_attestation_level: int = 2) -> dict[str, Any]:
        """Every check of a resolved target (``verify.targets``): a batched decision by
        its inclusion receipt, any other record by its TX."""
        if target.receipt is not None:
            from ario_mlflow.verify.receipts import verify_receipt

            return verify_receipt(
                target.receipt,
                anchor=self.anchor,
                mlflow_client=client,
                ario_client=self.ario_client,
                min_attestation_level=min_attestation_level,
                trusted_keys=self.trusted_keys,
            )
        from ario_mlflow.verify.core import verify_proof_by_tx

        return verify_proof_by_tx(
            target.tx_id,
            anchor=self.anchor,
            mlflow_client=client,
            ario_client=self.ario_client,
            min_attestation_level=min_attestation_level,
            trusted_keys=self.trusted_keys,
            expected_subject=target.expected_subject,
            expected_previous=target.expected_previous,
        )
