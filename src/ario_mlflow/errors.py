"""The one exception tree of ar-io-mlflow.

Every error we raise on purpose derives from :class:`ArioError`, so callers can catch
"anything from us" in one place. The class names of ar-io-mlflow 0.3.0 are kept, in the
same parent/child relations, so existing ``except`` clauses keep working.

::

    ArioError
    ├── ConfigError                         a setting, key file or wallet is unusable
    │   ├── SigningKeyError                 the Ed25519 signing key cannot be loaded
    │   └── WalletLoadError                 a caller-supplied funding wallet is invalid
    ├── CanonicalizationError (ValueError)  a value has no RFC 8785 form
    │   ├── NonFiniteNumberError            NaN / Infinity
    │   ├── LoneSurrogateError              a string that is not valid Unicode
    │   ├── CanonicalDepthError             nesting deeper than the bound
    │   ├── UnsupportedTypeError            not a JSON type, or a non-string key
    │   └── FingerprintError                a prediction input/output has no fingerprint
    ├── EnvelopeParseError (ValueError)     bytes that are not one JSON object
    ├── AnchorError                         the permanent-storage side failed
    │   ├── DataItemError (ValueError)      malformed ANS-104 bytes or tags
    │   ├── UploadError                     the upload service refused an item
    │   │   └── UnderfundedError            HTTP 402: no credit
    │   ├── ReceiptError                    bad upload receipt
    │   ├── GatewayError                    no gateway returned the bytes
    │   │   └── GatewayUnreachableError     no gateway could even be reached
    │   ├── TransportError                  an HTTP exchange failed (connect, refused URL)
    │   │   ├── DeadlineExceededError       no complete answer before the deadline
    │   │   └── ResponseTooLargeError       the answer is larger than its cap
    │   ├── JournalError                    the local outbox is unusable
    │   └── MissingHandlerError             no handler installed for a write-back kind
    ├── ArtifactAccessError (RuntimeError)  model artifacts could not be read
    ├── TargetNotFoundError (LookupError)   the run, version, trace … asked for is not there
    ├── NotAnchoredError                    it is there, with no anchored record (yet)
    ├── BundleError                         an evidence bundle cannot be written or read
    ├── WebhookRejected                     an MLflow webhook delivery was refused
    ├── ReconcileBusy                       another reconciliation is running here
    └── VerificationError                   a proof did not verify
        ├── LiveRefetchError                live MLflow fields could not be re-read
        └── AssetVerificationError          an asset must not be used
            ├── IntegrityError              artifacts differ from the anchored hashes
            │   └── ProofUnavailableError   a proof exists but cannot be checked now
            └── VerifyStatusError           the agent's verify-status says no
                ├── AssetTamperedError
                ├── AssetMissingError
                ├── AssetStaleError
                ├── AssetUnknownError
                ├── VerifyStatusAuthError
                ├── VerifyStatusUnknownAssetError
                └── VerifyStatusTransportError
                    └── VerifyStatusLicenseError
"""

from __future__ import annotations

from typing import Any


class ArioError(Exception):
    """Base class of every error ar-io-mlflow raises on purpose."""


# --- configuration ---------------------------------------------------------------------


class ConfigError(ArioError):
    """A setting, key file or wallet cannot be used; the message names which and why."""


class SigningKeyError(ConfigError):
    """The Ed25519 signing key (file or ``ARIO_MLFLOW_SIGNING_KEY``) is unusable."""


class WalletLoadError(ConfigError):
    """A caller-supplied funding wallet is missing, unreadable or invalid.

    Raised instead of silently substituting another wallet, so that uploads are never
    paid for (or signed by) a wallet the operator did not choose.
    """


# --- canonical JSON --------------------------------------------------------------------


class CanonicalizationError(ArioError, ValueError):
    """A value cannot be serialized as RFC 8785 canonical JSON.

    ``path`` is a JSONPath-like locator of the offending value (``$.metrics.loss``).
    """

    def __init__(self, message: str, *, path: str = "$") -> None:
        super().__init__(f"{message} at {path}")
        self.path = path


class NonFiniteNumberError(CanonicalizationError):
    """NaN and ±Infinity have no JSON representation."""


class LoneSurrogateError(CanonicalizationError):
    """A string holds an unpaired UTF-16 surrogate and cannot be encoded as UTF-8."""


class CanonicalDepthError(CanonicalizationError):
    """Containers nest deeper than the canonicalizer allows."""


class UnsupportedTypeError(CanonicalizationError):
    """A value is not a JSON type (or an object key is not a string)."""


class FingerprintError(CanonicalizationError):
    """A prediction input or output has no canonical fingerprint.

    ``path`` locates the offending value inside the value given (``$.features[2]``,
    ``$["col a"][0]`` for a DataFrame cell).
    """


class EnvelopeParseError(ArioError, ValueError):
    """Bytes that should hold one JSON object do not.

    ``reason`` is a stable machine-readable code (``invalid_json``, ``lone_surrogate``,
    ``duplicate_key``, ``envelope_not_a_json_object``).
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


# --- anchoring and artifacts -----------------------------------------------------------


class AnchorError(ArioError):
    """Uploading to, or reading from, the permanent-storage side failed."""


class DataItemError(AnchorError, ValueError):
    """Bytes are not a well-formed ANS-104 data item, or tags break the spec's limits."""


class UploadError(AnchorError):
    """The upload service refused or never acknowledged a data item."""


class UnderfundedError(UploadError):
    """The upload service answered 402: the funding wallet has no credit for this item."""


class ReceiptError(AnchorError):
    """An upload receipt is malformed or its signature does not verify."""


class GatewayError(AnchorError):
    """No configured gateway returned the expected bytes."""


class GatewayUnreachableError(GatewayError):
    """No gateway could be reached: each one failed before answering (no connection, no
    complete answer before the deadline). Nothing was learnt about the bytes, so a verifier
    reports "not checked", never "tampered"."""


class TransportError(AnchorError):
    """One HTTP exchange failed: no connection, a refused URL or redirect, a broken answer."""


class DeadlineExceededError(TransportError):
    """The server did not give a complete answer before the exchange's wall-clock deadline."""


class ResponseTooLargeError(TransportError):
    """The answer is larger than the cap set for what was asked (envelope, receipt, …)."""


class JournalError(AnchorError):
    """The local journal (outbox) cannot be opened or written."""


class MissingHandlerError(AnchorError):
    """A write-back of a kind no handler in this process performs: journaling it would
    leave it pending with nobody to do it (see :mod:`ario_mlflow.outbox.handlers`)."""


class ArtifactAccessError(ArioError, RuntimeError):
    """Model artifacts of a run could not be downloaded or read."""


# --- what was asked for ------------------------------------------------------------------


class TargetNotFoundError(ArioError, LookupError):
    """The run, model version, trace or decision asked for does not exist (exit code 2)."""


class NotAnchoredError(ArioError):
    """The target exists but carries no anchored record (yet)."""


class BundleError(ArioError):
    """An evidence bundle cannot be written or read (not a failed check: a broken file)."""


# --- verification ----------------------------------------------------------------------


class WebhookRejected(ArioError):
    """An MLflow webhook delivery was refused: unsigned, forged, stale, replayed or
    malformed (``reason`` is that word; the message says what was wrong)."""

    def __init__(self, reason: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


class ReconcileBusy(ArioError):
    """Another ``reconcile`` holds this installation's lock (two would record a change
    twice); run again later."""


class VerificationError(ArioError):
    """A proof, record or asset did not verify."""


class LiveRefetchError(VerificationError):
    """Fields needed to rebuild a payload from live MLflow state could not be read."""


class AssetVerificationError(VerificationError):
    """An asset (model artifacts, a deployed file) must not be used."""


class IntegrityError(AssetVerificationError):
    """Model artifacts differ from the hashes in the signed, anchored training payload."""


class ProofUnavailableError(IntegrityError):
    """A proof exists but cannot be read or checked now, so integrity is unproven.

    A subclass of ``IntegrityError`` so that code refusing tampered models also refuses
    models whose proof cannot be checked (fail closed).
    """


class VerifyStatusError(AssetVerificationError):
    """The ar-io-agent verify-status endpoint did not vouch for the asset."""

    def __init__(self, message: str, *, asset_id: str | None = None, status: Any = None) -> None:
        super().__init__(message)
        self.asset_id = asset_id
        self.status = status


class AssetTamperedError(VerifyStatusError):
    """The agent observed content that differs from the registered baseline."""


class AssetMissingError(VerifyStatusError):
    """The agent could not find the asset at its registered location."""


class AssetStaleError(VerifyStatusError):
    """The last verification is too old (or the agent could not verify at all)."""


class AssetUnknownError(VerifyStatusError):
    """The agent reported an outcome we do not recognise."""


class VerifyStatusAuthError(VerifyStatusError):
    """The verify-status endpoint rejected our credentials (HTTP 401)."""


class VerifyStatusUnknownAssetError(VerifyStatusError):
    """The asset id is not in the agent's policy (HTTP 404)."""


class VerifyStatusTransportError(VerifyStatusError):
    """Network failure, malformed body or unexpected HTTP status from verify-status."""


class VerifyStatusLicenseError(VerifyStatusTransportError):
    """The agent's license gate refused the request (HTTP 503)."""

    def __init__(
        self,
        message: str,
        *,
        asset_id: str | None = None,
        status: Any = None,
        upgrade_url: str | None = None,
    ) -> None:
        if upgrade_url:
            message = f"{message} (upgrade: {upgrade_url})"
        super().__init__(message, asset_id=asset_id, status=status)
        self.upgrade_url = upgrade_url


_OUTCOME_ERRORS: dict[str, type[VerifyStatusError]] = {
    "tampered": AssetTamperedError,
    "missing": AssetMissingError,
    "unavailable": AssetStaleError,
}


def exception_for_status(status: Any) -> VerifyStatusError | None:
    """Map a verify-status answer to the error it implies, or ``None`` when it is good.

    Only ``outcome == "verified"`` with ``stale`` false is good; any outcome we do not
    know is treated as unknown, never as good.
    """
    outcome = getattr(status, "outcome", None)
    stale = bool(getattr(status, "stale", False))
    asset_id = getattr(status, "asset_id", None)
    if outcome == "verified":
        if not stale:
            return None
        return AssetStaleError(
            f"asset {asset_id!r}: last verification is stale", asset_id=asset_id, status=status
        )
    error_class = _OUTCOME_ERRORS.get(str(outcome), AssetUnknownError)
    return error_class(f"asset {asset_id!r}: outcome {outcome!r}", asset_id=asset_id, status=status)
