"""The public surface, pinned (in the manner of httpx's ``test_exported_members``): every
documented import path keeps its names, every name resolves, and every public error is
one of the one tree's."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import ario_mlflow
from ario_mlflow import errors

_ERRORS_AT_TOP = {
    "AnchorError", "ArioError", "AssetMissingError", "AssetStaleError", "AssetTamperedError",
    "AssetUnknownError", "AssetVerificationError", "CanonicalizationError", "ConfigError",
    "IntegrityError", "SigningKeyError", "VerificationError", "VerifyStatusAuthError",
    "VerifyStatusError", "VerifyStatusLicenseError", "VerifyStatusTransportError",
    "VerifyStatusUnknownAssetError", "WalletLoadError",
}  # fmt: skip

#: Documented import paths (the 0.3.0 reference's README and ours) and their names.
SURFACE: dict[str, set[str]] = {
    "ario_mlflow": {
        "SPEC_VERSION", "__version__", "ArioMlflowClient", "ArioVerifyClient", "VerifiedModel",
        "VerifiedPrediction", "VerifyStatus", "VerifyStatusClient", "anchor", "full_verify",
        "register_model", "verify_anchored_bytes", "verify_ario_attestation",
        "verify_proof_by_tx", "verify_record", "verify_signature", "verify_source_of_truth",
        "Receipt", "verify_receipt",
        *_ERRORS_AT_TOP,
    },
    "ario_mlflow.proof": {
        "ACCEPTED_SPEC_VERSIONS", "SPEC_VERSION", "ProofEngine", "VerificationResult",
        "canonical_json", "envelope_for_signature", "hash_data", "key_fingerprint",
        "normalize_floats", "parse_json_object", "sha256_hex", "sign_envelope",
        "spec_version_status", "spec_version_supported", "verify_commitment",
        "verify_envelope", "verify_envelope_bytes", "verify_signature",
    },
    "ario_mlflow.arweave": {"ArioVerifyClient", "ArweaveAnchor", "WalletLoadError"},
    "ario_mlflow.anchoring": {
        "TAG_LAST_TRAINING_HASH", "ArtifactAccessError", "anchor", "artifact_checksums",
        "capture_otel_context", "parse_runs_uri",
    },
    "ario_mlflow.model": {"ON_FAILURE_MODES", "VerifiedModel", "VerifiedPrediction"},
    "ario_mlflow.registry": {"ArioMlflowClient", "register_model"},
    "ario_mlflow.verify": {
        "DEFAULT_MIN_ATTESTATION_LEVEL", "LiveRefetchError", "check_chain", "check_issuer",
        "check_subject", "full_verify", "overall_ok", "verify_anchored_bytes",
        "verify_ario_attestation", "verify_proof_by_tx", "verify_record", "verify_signature",
        "verify_source_of_truth", "verify_receipt",
    },
    "ario_mlflow.report": {
        "DEFAULT_GATEWAY_URL", "generate_verification_html", "render_audit_report",
        "render_verification_report",
    },
    "ario_mlflow.verify_status_client": {"OUTCOMES", "VerifyStatus", "VerifyStatusClient"},
    "ario_mlflow.plugin": {"ArioContextProvider"},
    "ario_mlflow.arweave.uploader": {"stop_all_workers", "sync_journal", "writeback_kinds"},
}  # fmt: skip

#: Exceptions outside the tree on purpose: signals and parse errors that never reach a
#: caller of the library (each is caught where it is raised, or is click's own).
INTERNAL_EXCEPTIONS = {
    "ario_mlflow.outbox.handlers.AbandonTask",  # a handler tells its worker "do not retry"
    "ario_mlflow.localgw.gqlparse.GraphQLError",  # the local gateway answers it as a 400
    "ario_mlflow.cli.output.NotFoundError",  # a click.ClickException: one line, exit 2
    "ario_mlflow.demo.DemoDataError",  # the demo's own data check, reported by the demo
}


@pytest.mark.parametrize("module", sorted(SURFACE))
def test_documented_paths_export_exactly_their_names(module: str) -> None:
    imported = importlib.import_module(module)
    assert set(imported.__all__) == SURFACE[module]
    for name in imported.__all__:
        assert getattr(imported, name) is not None, f"{module}.{name}"


def test_top_level_names_are_lazy_and_resolve_to_their_homes() -> None:
    assert ario_mlflow.VerifiedModel.__module__ == "ario_mlflow.lifecycle.serving"
    assert ario_mlflow.ArioMlflowClient.__module__ == "ario_mlflow.lifecycle.registry"
    assert ario_mlflow.anchor.__module__ == "ario_mlflow.lifecycle.training"
    assert importlib.import_module("ario_mlflow.anchoring").ArtifactAccessError is (
        errors.ArtifactAccessError
    )
    assert sorted(dir(ario_mlflow)) == dir(ario_mlflow)


def _all_modules() -> list[str]:
    names = ["ario_mlflow"]
    for info in pkgutil.walk_packages(ario_mlflow.__path__, "ario_mlflow."):
        if not info.name.endswith("__main__"):
            names.append(info.name)
    return names


def test_every_public_error_is_in_the_one_tree() -> None:
    """``ArioError`` subclasses are defined in ``errors.py`` only (modules re-export
    them), and no other public exception escapes the tree unannounced."""
    outside = set()
    for name in _all_modules():
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if not (inspect.isclass(value) and issubclass(value, BaseException)):
                continue
            if value.__module__ != name or attr.startswith("_"):
                continue  # re-exported, or private
            if name != "ario_mlflow.errors" or not issubclass(value, errors.ArioError):
                outside.add(f"{name}.{attr}")
    assert outside == INTERNAL_EXCEPTIONS
