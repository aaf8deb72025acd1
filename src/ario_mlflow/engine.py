"""``ProofEngine``: mint and verify commitments with this installation's signing identity.

Constructing a ``ProofEngine`` has no side effects. The signing key is loaded (or, the
very first time, created) when something is signed or the public key is asked for, so
verifiers, the CLI and ``ProofEngine()`` in a verifier's script never touch key files.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from ario_mlflow.keys import SigningIdentity, load_signing_identity
from ario_mlflow.proof.commitment import verify_commitment
from ario_mlflow.proof.ed25519 import PreparedKey
from ario_mlflow.proof.envelope import build_mlflow_envelope


class ProofEngine:
    """Signs ``ario.mlflow/v1`` envelopes; verifies any ``ario.*`` envelope."""

    def __init__(
        self,
        private_key_path: str | os.PathLike[str] | None = None,
        public_key_path: str | os.PathLike[str] | None = None,
        *,
        identity: SigningIdentity | None = None,
    ) -> None:
        self._private_key_path = private_key_path
        self._public_key_path = public_key_path
        self._identity = identity
        self._prepared: PreparedKey | None = None
        self._lock = threading.Lock()

    @property
    def identity(self) -> SigningIdentity:
        """The signing identity, loaded (or created once per installation) on first use."""
        if self._identity is None:
            with self._lock:
                if self._identity is None:
                    identity = load_signing_identity(self._private_key_path, self._public_key_path)
                    assert identity is not None  # create=True always yields one
                    self._identity = identity
        return self._identity

    @property
    def public_key_hex(self) -> str:
        """Hex Ed25519 public key that signs this engine's envelopes."""
        return self.identity.public_key_hex

    @property
    def fingerprint(self) -> str:
        """Short display label of :attr:`public_key_hex`."""
        return self.identity.fingerprint

    @property
    def prepared_key(self) -> PreparedKey:
        """The signing key, prepared for repeated signing (the predict hot path's)."""
        if self._prepared is None:
            self._prepared = PreparedKey.of(self.identity.key)
        return self._prepared

    def create_commitment(
        self,
        *,
        event_type: str,
        subject: dict[str, Any],
        payload_bytes: bytes,
        previous_hash: str,
        event_id: str | None = None,
        signed_at: str | None = None,
    ) -> dict[str, Any]:
        """Build and sign the nine-key envelope committing to ``payload_bytes``."""
        return build_mlflow_envelope(
            event_type=event_type,
            subject=subject,
            payload_bytes=payload_bytes,
            previous_hash=previous_hash,
            key=self.prepared_key,
            event_id=event_id,
            signed_at=signed_at,
        )

    @staticmethod
    def verify_commitment(envelope: Any, payload_bytes: bytes | None = None) -> dict[str, Any]:
        """Verify ``envelope`` (and ``payload_bytes`` if given); see ``verify_commitment``."""
        return verify_commitment(envelope, payload_bytes)
