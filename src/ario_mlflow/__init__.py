"""ar-io-mlflow: signed, Arweave-anchored provenance for the MLflow lifecycle.

Top-level names are resolved lazily so that ``import ario_mlflow`` stays cheap (MLflow
imports this package through its plugin entry point on every ``mlflow.start_run``).
"""

from __future__ import annotations

import importlib
from typing import Any

from ario_mlflow._version import __version__
from ario_mlflow.proof.spec import SPEC_VERSION

# name -> module that defines it
_LAZY: dict[str, str] = {
    "anchor": "ario_mlflow.lifecycle.training",
    "ArioMlflowClient": "ario_mlflow.lifecycle.registry",
    "register_model": "ario_mlflow.lifecycle.registry",
    "VerifiedModel": "ario_mlflow.lifecycle.serving",
    "VerifiedPrediction": "ario_mlflow.lifecycle.serving",
    "verify_signature": "ario_mlflow.verify",
    "verify_anchored_bytes": "ario_mlflow.verify",
    "verify_source_of_truth": "ario_mlflow.verify",
    "verify_ario_attestation": "ario_mlflow.verify",
    "full_verify": "ario_mlflow.verify",
    "verify_record": "ario_mlflow.verify",
    "verify_proof_by_tx": "ario_mlflow.verify",
    "verify_receipt": "ario_mlflow.verify",
    "Receipt": "ario_mlflow.proof.windows",
    "ArioVerifyClient": "ario_mlflow.arweave.ario_verify",
    "VerifyStatusClient": "ario_mlflow.arweave.agent_status",
    "VerifyStatus": "ario_mlflow.arweave.agent_status",
    "ArioError": "ario_mlflow.errors",
    "ConfigError": "ario_mlflow.errors",
    "SigningKeyError": "ario_mlflow.errors",
    "WalletLoadError": "ario_mlflow.errors",
    "AnchorError": "ario_mlflow.errors",
    "VerificationError": "ario_mlflow.errors",
    "CanonicalizationError": "ario_mlflow.errors",
    "AssetVerificationError": "ario_mlflow.errors",
    "IntegrityError": "ario_mlflow.errors",
    "VerifyStatusError": "ario_mlflow.errors",
    "AssetTamperedError": "ario_mlflow.errors",
    "AssetMissingError": "ario_mlflow.errors",
    "AssetStaleError": "ario_mlflow.errors",
    "AssetUnknownError": "ario_mlflow.errors",
    "VerifyStatusAuthError": "ario_mlflow.errors",
    "VerifyStatusUnknownAssetError": "ario_mlflow.errors",
    "VerifyStatusTransportError": "ario_mlflow.errors",
    "VerifyStatusLicenseError": "ario_mlflow.errors",
}

__all__ = ["SPEC_VERSION", "__version__", *sorted(_LAZY)]  # noqa: PLE0604


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
