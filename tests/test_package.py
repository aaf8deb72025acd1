"""Package surface: version, lazy names, entry points, the error tree."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import entry_points, version

import pytest

import ario_mlflow
from ario_mlflow import errors
from tests.conftest import PROJECT_ROOT


def test_version_matches_distribution_and_pyproject() -> None:
    assert ario_mlflow.__version__ == version("ar-io-mlflow")
    assert re.fullmatch(r"\d+\.\d+\.\d+", ario_mlflow.__version__)


def test_spec_version_constant() -> None:
    assert ario_mlflow.SPEC_VERSION == "ario.mlflow/v1"


def test_lazy_names_resolve_and_unknown_names_raise() -> None:
    assert ario_mlflow.IntegrityError is errors.IntegrityError
    assert ario_mlflow.WalletLoadError is errors.WalletLoadError
    with pytest.raises(AttributeError):
        ario_mlflow.no_such_name  # noqa: B018


def test_documented_import_paths() -> None:
    from ario_mlflow.arweave import WalletLoadError
    from ario_mlflow.proof import ACCEPTED_SPEC_VERSIONS, ProofEngine, canonical_json, hash_data

    assert WalletLoadError is errors.WalletLoadError
    assert ProofEngine.__module__ == "ario_mlflow.engine"
    assert (
        hash_data(canonical_json({}))
        == "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    )
    assert {"ario.mlflow/v1", "ario.agent/v1", "ario.events/v1"} == ACCEPTED_SPEC_VERSIONS


def test_reference_error_hierarchy_is_kept() -> None:
    assert issubclass(errors.IntegrityError, errors.AssetVerificationError)
    assert issubclass(errors.AssetVerificationError, errors.VerificationError)
    assert issubclass(errors.VerificationError, errors.ArioError)
    for name in [
        "AssetTamperedError",
        "AssetMissingError",
        "AssetStaleError",
        "AssetUnknownError",
        "VerifyStatusAuthError",
        "VerifyStatusUnknownAssetError",
        "VerifyStatusTransportError",
    ]:
        assert issubclass(getattr(errors, name), errors.VerifyStatusError)
    assert issubclass(errors.VerifyStatusLicenseError, errors.VerifyStatusTransportError)
    assert issubclass(errors.WalletLoadError, errors.ConfigError)
    assert issubclass(errors.ArtifactAccessError, RuntimeError)
    assert issubclass(errors.LiveRefetchError, errors.ArioError)
    error = errors.VerifyStatusLicenseError("gated", asset_id="a", upgrade_url="https://u")
    assert error.asset_id == "a"
    assert error.upgrade_url == "https://u"
    assert "https://u" in str(error)


class _Status:
    def __init__(self, outcome: str, stale: bool = False) -> None:
        self.outcome, self.stale, self.asset_id = outcome, stale, "models/x"


@pytest.mark.parametrize(
    ("outcome", "stale", "expected"),
    [
        ("verified", False, None),
        ("verified", True, errors.AssetStaleError),
        ("tampered", False, errors.AssetTamperedError),
        ("missing", False, errors.AssetMissingError),
        ("unavailable", False, errors.AssetStaleError),
        ("unknown", False, errors.AssetUnknownError),
        ("something-new", False, errors.AssetUnknownError),
    ],
)
def test_exception_for_status(outcome: str, stale: bool, expected: type | None) -> None:
    error = errors.exception_for_status(_Status(outcome, stale))
    if expected is None:
        assert error is None
    else:
        assert type(error) is expected
        assert error.asset_id == "models/x"


def test_entry_points_are_registered() -> None:
    import mlflow  # noqa: F401  (MLflow loads the provider itself while importing)

    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts["ar-io-mlflow"] == "ario_mlflow.cli:main"
    providers = {ep.name: ep for ep in entry_points(group="mlflow.run_context_provider")}
    provider = providers["ario"].load()()
    assert provider.in_context() is True
    assert provider.tags() == {"ario.enabled": "true", "ario.version": ario_mlflow.__version__}


def test_importing_the_package_and_kernel_does_not_import_mlflow() -> None:
    code = (
        "import ario_mlflow, ario_mlflow.proof, ario_mlflow.cli, sys;print('mlflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_proof_kernel_is_pure() -> None:
    """The proof/ core imports neither MLflow nor any I/O or network module."""
    forbidden = (
        "mlflow",
        "requests",
        "urllib",
        "socket",
        "sqlite3",
        "subprocess",
        "ario_mlflow.keys",
        "ario_mlflow.arweave",
        "pathlib",
        "tempfile",
    )
    for path in (PROJECT_ROOT / "src" / "ario_mlflow" / "proof").glob("*.py"):
        source = path.read_text()
        for module in forbidden:
            assert not re.search(rf"^\s*(import|from)\s+{re.escape(module)}\b", source, re.M), (
                f"{path.name} imports {module}"
            )
