"""MLflow ``RunContextProvider``: tags every fluent run with ``ario.enabled``/``ario.version``.

MLflow loads this through the ``mlflow.run_context_provider`` entry point whenever the
package is installed, so it must stay import-light and must never raise.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from mlflow.tracking.context.abstract_context import RunContextProvider


def installed_version() -> str:
    """Version of the installed ``ar-io-mlflow`` distribution, or ``unknown``."""
    try:
        return version("ar-io-mlflow")
    except PackageNotFoundError:
        return "unknown"


class ArioContextProvider(RunContextProvider):
    """Marks runs as provenance-enabled so auditors can tell which runs to expect proofs for."""

    def in_context(self) -> bool:
        return True

    def tags(self) -> dict[str, str]:
        return {"ario.enabled": "true", "ario.version": installed_version()}
