"""``VerifiedModel``: load a model only if it is the anchored one; sign every decision.

Loading: the optional agent verify-status gate runs first (before any MLflow access), then
the integrity gate re-hashes the artifacts and compares them with the *signed, anchored*
training payload — before ``mlflow.pyfunc.load_model`` ever touches the files. A
mismatch names the differing files; a proof that exists but cannot be checked refuses
the load (fail closed); no proof at all loads with ``artifact_verified=None`` and a
warning (or raises with ``require_proof=True``).

Predicting: the hot path is the model call, the input/output fingerprints, the signed
record and one append to the decision spool (or, with ``background="thread"``, one
journal commit). The payload witness, the MLflow trace and the upload are done later by
the companion process or by bounded background workers.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import time
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ario_mlflow.arweave.gateway_reader import gateway_base
from ario_mlflow.config import BACKGROUND_MODES, DECISION_MODES, load_settings, pinned_keys
from ario_mlflow.errors import (
    ArtifactAccessError,
    IntegrityError,
    ProofUnavailableError,
    VerifyStatusError,
    exception_for_status,
)
from ario_mlflow.lifecycle.alias_records import check_alias_target
from ario_mlflow.lifecycle.artifacts import private_directory, remove_tree
from ario_mlflow.lifecycle.decision_sink import LeafSink, decision_sink
from ario_mlflow.lifecycle.lineage import (
    ModelProof,
    find_run_proof,
    find_version_proof,
    version_registration_tx,
)
from ario_mlflow.lifecycle.model_files import check_model_files
from ario_mlflow.lifecycle.model_location import (
    check_runs_uri,
    check_version_location,
    source_location,
    version_run_id,
)
from ario_mlflow.lifecycle.otel import capture_otel_context, no_span_can_be_active
from ario_mlflow.lifecycle.recorder import decision_key, default_components
from ario_mlflow.lifecycle.traces import active_trace_id, new_trace_id, preset_trace_ids
from ario_mlflow.lifecycle.uris import portable_uri
from ario_mlflow.lifecycle.writebacks import decision_writeback, window_writeback
from ario_mlflow.outbox.journal import Writeback
from ario_mlflow.outbox.leaves import receipt_for
from ario_mlflow.proof import chain, payloads
from ario_mlflow.proof.decisions import DecisionLeaves, DecisionSigner
from ario_mlflow.proof.ed25519 import key_fingerprint
from ario_mlflow.proof.envelope import random_uuid, utc_now_iso
from ario_mlflow.proof.fingerprint import (
    input_fingerprint,
    model_input,
    output_fingerprint,
    to_canonical,
)
from ario_mlflow.proof.windows import Receipt

logger = logging.getLogger(__name__)

ON_FAILURE_MODES = ("raise", "fail_closed", "fail_open")
UNKNOWN = "unknown"


@dataclass
class VerifiedPrediction:
    """A model output and the signed record of the decision that produced it."""

    prediction: Any
    decision_id: str
    proof_status: str
    record: dict[str, Any]
    tx_id: str | None = None
    anchor_error: str | None = None
    #: ``batch`` decisions: the stream, the decision's sequence number in it, and the
    #: RFC 9162 leaf hash of its payload (hex); ``tx_id`` is then its window's TX.
    stream_id: str | None = None
    seq: int | None = None
    leaf_hash: str | None = None
    _wait: Any = field(default=None, repr=False, compare=False)
    _journal: Any = field(default=None, repr=False, compare=False)

    def wait_for_anchor(self, timeout: float | None = None) -> bool:
        """Wait until the decision is uploaded (a batched decision: its window, closed
        now rather than when due); True once it is (or anchoring is off)."""
        if self._wait is None:
            return True
        return bool(self._wait(self, timeout))

    def receipt(self) -> Receipt | None:
        """A batched decision's inclusion receipt, once its window is closed (None
        before, and for ``each`` decisions, whose record is their own proof)."""
        if self._journal is None:
            return None
        return receipt_for(self._journal, self.decision_id)


@dataclass(frozen=True)
class _Resolved:
    name: str = UNKNOWN
    version: str = UNKNOWN
    run_id: str = UNKNOWN
    source: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    kind: str = "other"  # "version" (registry), "run" (runs:/), "logged" (models:/m-...)
    entity: Any = None  # the ModelVersion or LoggedModel behind the URI


def _stage_version(client: Any, name: str, stage: str) -> Any:
    try:
        found = client.search_model_versions(f"name='{name}' and current_stage='{stage}'")
    except Exception:
        found = [
            v for v in client.search_model_versions(f"name='{name}'") if v.current_stage == stage
        ]
        found.sort(key=lambda v: int(v.version), reverse=True)
    if not found:
        raise LookupError(f"no version of {name!r} in stage {stage!r}")
    return found[0]


def resolve_model_uri(client: Any, model_uri: str) -> _Resolved:
    """Model name, version, source run and source behind a ``models:/`` or ``runs:/`` URI."""
    if model_uri.startswith("runs:/"):
        run_id, _ = source_location(client, model_uri)
        if not run_id:
            return _Resolved()
        return _Resolved(run_id=run_id, source=model_uri, kind="run")
    if not model_uri.startswith("models:/"):
        return _Resolved()
    rest = model_uri[len("models:/") :]
    if "@" in rest:
        name, alias = rest.split("@", 1)
        mv = client.get_model_version_by_alias(name, alias)
    elif "/" in rest:
        name, selector = rest.split("/", 1)
        mv = (
            client.get_model_version(name, selector)
            if selector.isdigit()
            else _stage_version(client, name, selector)
        )
    else:
        model = client.get_logged_model(rest)
        return _Resolved(
            name=model.name,
            version=model.model_id,
            run_id=model.source_run_id or UNKNOWN,
            source=model_uri,
            kind="logged",
            entity=model,
        )
    return _Resolved(
        name=mv.name,
        version=str(mv.version),
        run_id=version_run_id(client, mv) or UNKNOWN,
        source=mv.source,
        tags=dict(mv.tags or {}),
        kind="version",
        entity=mv,
    )


class VerifiedModel:
    """A pyfunc model whose artifacts were checked against their anchored training proof."""

    def __init__(
        self,
        model_uri: str,
        proof_engine: Any = None,
        anchor: Any = None,
        *,
        asset_id: str | None = None,
        verify_status_client: Any = None,
        on_failure: str = "raise",
        recheck_per_predict: bool = False,
        recheck_max_cache_age: float | None = None,
        require_proof: bool = False,
        trusted_keys: tuple[str, ...] | None = None,
        trace_predictions: bool = True,
        trace_raw_io: bool = False,
        background: str | None = None,
        decisions: str | None = None,
    ) -> None:
        if on_failure not in ON_FAILURE_MODES:
            raise ValueError(f"on_failure must be one of {ON_FAILURE_MODES}, not {on_failure!r}")
        if (asset_id is None) != (verify_status_client is None):
            raise ValueError("pass both asset_id and verify_status_client, or neither")
        if recheck_per_predict and verify_status_client is None:
            raise ValueError("recheck_per_predict needs a verify_status_client and asset_id")
        if background not in (None, *BACKGROUND_MODES):
            raise ValueError(f"background must be one of {BACKGROUND_MODES}, not {background!r}")
        if decisions not in (None, *DECISION_MODES):
            raise ValueError(f"decisions must be one of {DECISION_MODES}, not {decisions!r}")
        self.model_uri = model_uri
        self.asset_id = asset_id
        self.on_failure = on_failure
        self._status_client = verify_status_client
        self.recheck_per_predict = recheck_per_predict
        self.recheck_max_cache_age = recheck_max_cache_age
        self.trace_predictions = trace_predictions
        self.trace_raw_io = trace_raw_io
        #: ``each`` decisions name their trace when they are made (MLflow 3): the id is in
        #: the signed payload, and the write-back creates the trace under it.
        self._preset_traces = trace_predictions and preset_trace_ids()
        self._gate("load", None)  # before any MLflow access

        import mlflow
        from mlflow.tracking import MlflowClient

        self._engine, self._anchor = default_components(proof_engine, anchor)
        self._tracking_uri = portable_uri(mlflow.get_tracking_uri())
        self._client = MlflowClient(tracking_uri=self._tracking_uri)
        try:
            resolved = resolve_model_uri(self._client, model_uri)
        except Exception as exc:
            logger.warning("could not resolve %s (%s); loading it unverified", model_uri, exc)
            resolved = _Resolved()
        self.model_name, self.model_version, self.run_id = (
            resolved.name,
            resolved.version,
            resolved.run_id,
        )
        settings = load_settings()
        self._trusted = (
            pinned_keys(trusted_keys, source="trusted_keys")
            if trusted_keys
            else settings.trusted_keys
        )
        self._capture_otel = settings.capture_otel
        self._copy: Path | None = None
        self._registration_tx: str | None = None
        self._artifact_verified = self._integrity_gate(
            resolved, require_proof or bool(self._trusted)
        )
        # A checked model is loaded from the private copy whose bytes were hashed.
        self._model = mlflow.pyfunc.load_model(str(self._copy) if self._copy else model_uri)
        self._previous_hash = self._chain_head(resolved)
        self._experiment_id = self._experiment_of(self.run_id)
        self.decisions = decisions or settings.decisions
        self._background = background or settings.background
        self._open_sinks()

    # --- gates ------------------------------------------------------------------------------

    def _gate(self, phase: str, max_cache_age: float | None) -> None:
        if self._status_client is None:
            return
        status = None
        try:
            status = self._status_client.get(self.asset_id, max_cache_age=max_cache_age)
            error = exception_for_status(status)
        except VerifyStatusError as exc:
            error = exc
        if error is None:
            return
        if self.on_failure in ("raise", "fail_closed"):
            raise error
        what = "model load" if phase == "load" else "prediction"
        logger.warning(
            "verify-status gate failed; fail_open continues with the %s: asset_id=%s "
            "phase=%s error=%s outcome=%s",
            what,
            self.asset_id,
            phase,
            type(error).__name__,
            getattr(status, "outcome", None),
            extra={
                "ario_verify_status": {
                    "asset_id": self.asset_id,
                    "phase": phase,
                    "error": type(error).__name__,
                    "outcome": getattr(status, "outcome", None),
                    "stale": getattr(status, "stale", None),
                    "policy_hash": getattr(status, "policy_hash", None),
                    "current_tx_id": getattr(status, "current_tx_id", None),
                }
            },
        )

    def _integrity_gate(self, resolved: _Resolved, require_proof: bool) -> bool | None:
        """Find the signed lineage without trusting tags, check that MLflow still points at
        it, then copy the files privately, hashing as they are copied."""
        proof = self._find_proof(resolved)
        if proof is None:
            why = (
                f"{self.model_uri} does not name a run"
                if resolved.run_id == UNKNOWN
                else f"run {resolved.run_id} has no anchored training record"
            )
            self._no_proof(why, require_proof)
            return None
        if not proof.training.artifact_checksums:
            raise ProofUnavailableError(
                f"the training record of run {proof.run_id} ({proof.training.tx_id}) holds no "
                "artifact checksums (hashing failed when it was anchored); re-anchor the run"
            )
        if not self._trusted:
            logger.warning(
                "no issuer is pinned (ARIO_MLFLOW_TRUSTED_KEYS): %s is checked against its "
                "lineage signed by %s; pin it with ARIO_MLFLOW_TRUSTED_KEYS=%s",
                self.model_uri,
                key_fingerprint(proof.signer),
                proof.signer,
            )
        private = private_directory()
        self._cleanup = weakref.finalize(self, remove_tree, private)
        try:
            files = check_model_files(proof, tracking_uri=self._tracking_uri, copy_to=private)
        except ArtifactAccessError as exc:
            raise ProofUnavailableError(f"cannot copy the model's artifacts: {exc}") from exc
        if not files.ok:
            raise IntegrityError(
                f"artifacts of {self.model_uri} differ from the anchored training record "
                f"{proof.training.tx_id}: {files.diff.describe()}"
            )
        self._copy = files.copy
        self.run_id = proof.run_id
        self._registration_tx = proof.registration_tx
        return True

    def _find_proof(self, resolved: _Resolved) -> ModelProof | None:
        client, trusted = self._client, self._trusted
        if resolved.kind == "version":
            proof = find_version_proof(client, self._anchor, resolved.entity, trusted)
            if proof is not None:
                check_version_location(client, resolved.entity, proof.run_id, proof.artifact_path)
                self._alias_gate(resolved)
            return proof
        if resolved.run_id == UNKNOWN:
            return None
        proof = find_run_proof(client, self._anchor, resolved.run_id, trusted)
        if proof is None:
            return None
        if resolved.kind == "run":
            check_runs_uri(self.model_uri, proof.run_id, proof.artifact_path)
        elif resolved.kind == "logged" and resolved.entity.name != proof.artifact_path:
            raise IntegrityError(
                f"{self.model_uri} is the logged model {resolved.entity.name!r} of run "
                f"{proof.run_id}, not its anchored model {proof.artifact_path!r}"
            )
        return proof

    def _alias_gate(self, resolved: _Resolved) -> None:
        """``models:/NAME@ALIAS`` is served only if the alias's records put it on this
        version: an alias moved in MLflow's database with no record is refused."""
        rest = self.model_uri[len("models:/") :] if self.model_uri.startswith("models:/") else ""
        if "@" not in rest:
            return
        alias = rest.split("@", 1)[1]
        tx = check_alias_target(
            self._client,
            self._anchor,
            resolved.name,
            alias,
            resolved.version,
            trusted_keys=self._trusted,
        )
        if tx is None:
            logger.warning(
                "%s: no alias_changed record says @%s points at v%s; serving it on MLflow's "
                "word (run the webhook receiver or `ar-io-mlflow reconcile` to record moves)",
                self.model_uri,
                alias,
                resolved.version,
            )

    def _no_proof(self, why: str, require_proof: bool) -> None:
        if require_proof:
            raise IntegrityError(f"{why}; refusing to load (require_proof=True)")
        logger.warning("%s; loading %s with artifact_verified=None", why, self.model_uri)

    def _chain_head(self, resolved: _Resolved) -> str:
        """What this model's decisions follow: the version's registration (the verified
        one when the gate found it), else ``GENESIS``."""
        registration = self._registration_tx
        if registration is None and resolved.version != UNKNOWN:
            journal = getattr(self._anchor, "journal", None)
            registration = version_registration_tx(
                resolved.tags, journal, resolved.name, resolved.version
            )
        self._registration_tx = registration
        return (
            chain.expected_previous(payloads.PREDICTION, registration_tx=registration)
            or payloads.GENESIS
        )

    def _open_sinks(self) -> None:
        self._sink = None
        self._leaf_sink: LeafSink | None = None
        self._anchoring = bool(
            getattr(self._anchor, "enabled", True) and hasattr(self._anchor, "journal_proof")
        )
        if self.decisions == "batch":
            self._open_stream()
            return
        self.stream_id = uuid.uuid4().hex
        self._sequence = itertools.count(1)
        self._decisions = DecisionSigner(
            key=self._engine.prepared_key,
            previous_hash=self._previous_hash,
            **self._stream_fields(),
        )
        if self._anchoring:
            self._sink = decision_sink(self._anchor, self._background, self._decision_writeback(""))

    def _stream_fields(self) -> dict[str, Any]:
        """What every decision of this model's current stream says about the model."""
        return {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "run_id": self.run_id,
            "model_uri": self.model_uri,
            "artifact_verified": self._artifact_verified,
            "stream_id": self.stream_id,
        }

    def _open_stream(self) -> None:
        """A new ``batch`` stream: at load, and in a forked child (a stream is one
        process's: two writers of one stream would collide on sequence numbers)."""
        self.stream_id = uuid.uuid4().hex
        self._sequence = itertools.count(1)
        self._stream_pid = os.getpid()
        self._leaves = DecisionLeaves(**self._stream_fields())
        if not self._anchoring:
            return
        anchor = self._anchor
        run_id = self.run_id if self.run_id != UNKNOWN else None
        header = {
            "stream_id": self.stream_id,
            "public_key": self._engine.public_key_hex,
            "writer": f"{socket.gethostname()}~{self._stream_pid}",
            "model_name": self.model_name,
            "model_version": self.model_version,
            "model_uri": self.model_uri,
            "run_id": self.run_id,
            "registration_tx": self._registration_tx,
            "upload_url": anchor.upload_url,
            "gateway_base": gateway_base(anchor.gateway_host),
            "writebacks": [
                [w.kind, w.spec, w.after_upload]
                for w in (
                    [window_writeback(tracking_uri=self._tracking_uri, run_id=run_id)]
                    if run_id
                    else []
                )
            ],
        }
        in_process = self._background == "thread" or not _installation_key(self._engine)
        self._leaf_sink = LeafSink(anchor, header, pump_engine=self._engine if in_process else None)

    def _experiment_of(self, run_id: str) -> str | None:
        if run_id == UNKNOWN:
            return None
        try:
            return str(self._client.get_run(run_id).info.experiment_id)
        except Exception:
            return None

    def close(self) -> None:
        """Remove the private copy of the model now (also done when this object is freed)."""
        cleanup = getattr(self, "_cleanup", None)
        if cleanup is not None:
            cleanup()

    @property
    def artifact_verified(self) -> bool | None:
        """True when the load-time integrity gate passed; None when there was no proof."""
        return self._artifact_verified

    # --- predictions ------------------------------------------------------------------------

    def predict(
        self,
        input_data: Any,
        *,
        metadata: Mapping[str, Any] | None = None,
        capture_otel: bool = True,
    ) -> VerifiedPrediction:
        """Run the model and record the decision (a leaf of the stream's next window, or
        with ``decisions="each"`` a signed record of its own); never waits for the
        network."""
        if self.recheck_per_predict:
            self._gate("predict", self.recheck_max_cache_age)
        if self.decisions == "batch":
            return self._predict_batched(input_data, metadata, capture_otel)
        prediction, input_hash, latency_ms, decision_id, trace_id, extra = self._run_model(
            input_data, metadata, capture_otel
        )
        own_trace = None
        sink = self._sink
        if (
            trace_id is None
            and sink is not None
            and self._preset_traces
            and not (extra and "mlflow_trace_id" in extra)
        ):
            own_trace = new_trace_id()  # its trace is created under it, after the upload
        signed = self._decisions.sign(
            decision_id=decision_id,
            input_hash=input_hash,
            output_hash=output_fingerprint(prediction),
            latency_ms=latency_ms,
            sequence=next(self._sequence),
            extra=extra,
            trace_id=trace_id,
            mlflow_trace_id=own_trace,
        )
        result = VerifiedPrediction(prediction, decision_id, "disabled", signed.payload)
        if sink is not None:
            payload_text = signed.payload_bytes.decode("utf-8")
            writeback: Writeback | str = payload_text  # the sink's base write-back
            raw_io = self.trace_predictions and self.trace_raw_io
            if raw_io or (own_trace is None and self._preset_traces):
                raw = (to_canonical(input_data), to_canonical(prediction)) if raw_io else ()
                writeback = self._decision_writeback(
                    payload_text, *raw, preset_trace=own_trace is not None
                )
            wait = sink.commit(
                signed.envelope, signed.envelope_json, decision_key(decision_id), writeback
            )
            result.proof_status = "anchoring"
            result._wait = _waiter(wait)
        return result

    def _run_model(
        self, input_data: Any, metadata: Mapping[str, Any] | None, capture_otel: bool
    ) -> tuple[Any, str, float, str, str | None, dict[str, Any] | None]:
        """What every decision starts with: ``(prediction, input hash, latency in ms,
        decision id, the caller's MLflow trace id or None, the payload's extra fields)``
        — the caller's trace and OpenTelemetry ids and its metadata, checked."""
        input_hash = input_fingerprint(input_data)  # unfingerprintable input: refuse first
        shaped = model_input(input_data)
        started = time.perf_counter()
        prediction = self._model.predict(shaped)
        latency_ms = (time.perf_counter() - started) * 1000.0
        decision_id = random_uuid()
        trace_id = None
        extra = dict(metadata) if metadata else None
        if not no_span_can_be_active():
            trace_id = active_trace_id()  # the caller's trace: recorded, not created
            otel = capture_otel_context(capture_otel, configured=self._capture_otel)
            traced = {"mlflow_trace_id": trace_id} if trace_id else {}
            extra = {**traced, **otel, **(extra or {})}
        if extra:
            payloads.check_metadata(extra)
        return prediction, input_hash, latency_ms, decision_id, trace_id, extra

    def _predict_batched(
        self, input_data: Any, metadata: Mapping[str, Any] | None, capture_otel: bool
    ) -> VerifiedPrediction:
        """The ``batch`` hot path: model call, fingerprints, the payload's bytes and leaf
        hash, one spool append. No signature, lock, SQLite, network or MLflow call."""
        if os.getpid() != self._stream_pid:
            self._open_stream()
        prediction, input_hash, latency_ms, decision_id, _, extra = self._run_model(
            input_data, metadata, capture_otel
        )
        seq = next(self._sequence)
        leaf = self._leaves.leaf(
            decision_id=decision_id,
            input_hash=input_hash,
            output_hash=output_fingerprint(prediction),
            latency_ms=latency_ms,
            sequence=seq,
            decided_at=utc_now_iso(),
            extra=extra,
        )
        sink = self._leaf_sink
        result = VerifiedPrediction(
            prediction,
            decision_id,
            "disabled",
            leaf.payload,
            stream_id=self.stream_id,
            seq=seq,
            leaf_hash=leaf.leaf_hash.hex(),
        )
        if sink is not None:
            sink.append(leaf.payload_bytes)
            result.proof_status = "pending"
            result._wait = _waiter(sink.waiter(decision_id, seq))
            result._journal = self._anchor.journal
        return result

    def _decision_writeback(
        self,
        payload_text: str,
        raw_input: Any = None,
        raw_output: Any = None,
        *,
        preset_trace: bool | None = None,
    ) -> Writeback:
        """A decision's write-back (``preset_trace``: whether its trace is created under
        the payload's ``mlflow_trace_id``; by default, as this model's decisions are)."""
        return decision_writeback(
            tracking_uri=self._tracking_uri,
            run_id=self.run_id if self.run_id != UNKNOWN else None,
            experiment_id=self._experiment_id,
            payload=payload_text,
            trace=self.trace_predictions,
            inputs=raw_input,
            outputs=raw_output,
            preset_trace=self._preset_traces if preset_trace is None else preset_trace,
        )


def _installation_key(engine: Any) -> bool:
    """Whether ``engine`` signs with the installation's key (the companion's and
    ``sync``'s), so that they can close this process's windows."""
    from ario_mlflow.engine import ProofEngine

    if (
        type(engine) is ProofEngine
        and engine._private_key_path is None
        and engine._identity is None
    ):
        return True
    try:
        return bool(engine.public_key_hex == ProofEngine().public_key_hex)
    except Exception:  # no installation key can be loaded: close in this process
        return False


def _waiter(wait: Any) -> Any:
    def wait_for(result: VerifiedPrediction, timeout: float | None) -> bool:
        tx_id, error = wait(timeout if timeout is not None else load_settings().anchor_deadline)
        if tx_id is None:
            result.anchor_error = error
            return False
        result.tx_id, result.proof_status, result.anchor_error = tx_id, "anchored", None
        return True

    return wait_for
