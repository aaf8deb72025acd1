"""Training and dataset provenance: ``ario_mlflow.anchor()``.

Inside an active run, ``anchor()`` commits the run's params, metrics, model artifact
hashes and dataset inputs in a signed ``training_complete`` record (plus one ``dataset``
record per logged input). Outside a run, ``anchor(dataset=ds)`` commits one dataset.

Order of work, chosen so that nothing is lost and nothing half-happens:

1. read and validate everything (bad metrics or metadata raise ``ValueError`` before any
   side effect);
2. sign every record and commit it, with its MLflow write-backs, to the journal;
3. store the witness files (exact payload bytes) — itself a journaled task;
4. wait a bounded deadline for the upload; write the run tags for what is known now
   (``anchored``, or ``signed`` plus ``ario.queued_tx``). If the upload completes later,
   the journal's write-backs set the TX tags then, from this process, another one, or
   ``ar-io-mlflow sync``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ario_mlflow import tags as T
from ario_mlflow.errors import ArtifactAccessError
from ario_mlflow.lifecycle.artifacts import (
    artifact_checksums,
    artifact_hash,
    parse_runs_uri,
    resolve_artifact_path,
)
from ario_mlflow.lifecycle.otel import capture_otel_context
from ario_mlflow.lifecycle.uris import portable_uri, recorded_uri
from ario_mlflow.lifecycle.witness import event_files, log_witness_files, proof_json
from ario_mlflow.lifecycle.writebacks import set_tags_writeback, witness_writeback
from ario_mlflow.outbox.journal import Record, Writeback
from ario_mlflow.proof import payloads as P
from ario_mlflow.proof.canonical import canonical_json

logger = logging.getLogger(__name__)

#: Exported name kept from ar-io-mlflow 0.3.0.
TAG_LAST_TRAINING_HASH = T.LAST_TRAINING_HASH

__all__ = [
    "TAG_LAST_TRAINING_HASH",
    "ArtifactAccessError",
    "anchor",
    "artifact_checksums",
    "capture_otel_context",
    "parse_runs_uri",
]

#: How long write-backs of a fresh record are held while ``anchor()`` writes its own tags.
_WRITEBACK_HOLD_SECONDS = 120.0


@dataclass
class Submitted:
    """One signed record handed to the journal."""

    envelope: dict[str, Any]
    payload: dict[str, Any]
    payload_bytes: bytes
    record: Record | None = None
    anchor_result: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tx_id(self) -> str | None:
        """The record's TX id (known at signing; upload may still be pending)."""
        return self.record.tx_id if self.record else None


# --- defaults ---------------------------------------------------------------------------


def default_components(proof_engine: Any, arweave: Any) -> tuple[Any, Any]:
    """``ProofEngine()`` and ``ArweaveAnchor()`` unless given (wallet errors raise here)."""
    if proof_engine is None:
        from ario_mlflow.engine import ProofEngine

        proof_engine = ProofEngine()
    if arweave is None:
        from ario_mlflow.outbox.anchor import ArweaveAnchor

        arweave = ArweaveAnchor()
    return proof_engine, arweave


def submit(
    arweave: Any,
    envelope: dict[str, Any],
    *,
    writebacks: list[Writeback],
    context_key: str | None = None,
    context: dict[str, Any] | None = None,
    hold_writebacks: bool = True,
) -> tuple[Record | None, dict[str, Any] | None]:
    """Journal ``envelope`` (or, for a legacy duck-typed anchor, upload it directly).

    Returns ``(record, anchor_result)``; ``anchor_result`` is set only for legacy anchors,
    journaled records are waited on by the caller.
    """
    if not getattr(arweave, "enabled", True):
        return None, None
    if not hasattr(arweave, "journal_proof"):
        try:
            return None, arweave.upload_proof(envelope)
        except Exception as exc:  # a custom anchor must not break the user's run
            logger.warning("upload failed (%s); record stays signed only", exc)
            return None, None
    record = arweave.journal_proof(
        envelope,
        writebacks=writebacks,
        context_key=context_key,
        context=context,
        writeback_delay=_WRITEBACK_HOLD_SECONDS if hold_writebacks else 0.0,
    )
    return record, None


def settle(arweave: Any, record: Record, timeout: float) -> dict[str, Any] | None:
    """Wait for the upload; run the record's write-backs here if it made it in time."""
    from ario_mlflow.outbox.workers import run_writebacks_for

    started = time.monotonic()
    result: dict[str, Any] | None = arweave.wait(record, timeout)
    if result is None:
        return None
    journal = arweave.journal
    journal.release_writebacks(record.id)  # uploaded: nothing to hold back any more
    # Do them here so the caller sees its tags; a worker may hold one for a moment.
    while True:
        run_writebacks_for(journal, record.id)
        if not journal.pending_writebacks_for(record.id):
            break
        if time.monotonic() - started > timeout + 5.0:
            break  # the workers will finish them
        time.sleep(0.05)
    return result


def store_witness_now(arweave: Any, record: Record | None) -> None:
    """Run a record's immediate write-backs (the witness) in this thread, best effort."""
    if record is None:
        return
    from ario_mlflow.outbox.workers import run_writebacks_for

    _, failed = run_writebacks_for(arweave.journal, record.id)
    if failed:
        logger.warning(
            "witness for %s not stored yet; it stays journaled and will be retried", record.tx_id
        )


# --- datasets ---------------------------------------------------------------------------


def dataset_fields(dataset: Any) -> dict[str, Any]:
    """``name, source, source_type, digest, schema`` of a run input or a live dataset.

    Accepts the entity of ``run.inputs.dataset_inputs[i].dataset`` and live
    ``mlflow.data`` datasets (``from_pandas``, ``from_numpy`` …), whose ``to_dict()`` gives
    exactly the fields MLflow stores when the dataset is logged.
    """
    source = getattr(dataset, "source", None)
    if isinstance(source, str):
        fields = {
            "name": dataset.name,
            "source": source,
            "source_type": dataset.source_type,
            "digest": dataset.digest,
            "schema": getattr(dataset, "schema", None),
        }
    elif callable(getattr(dataset, "to_dict", None)):
        as_dict = dataset.to_dict()
        fields = {key: as_dict.get(key) for key in ("name", "source", "source_type", "digest")}
        fields["schema"] = as_dict.get("schema")
    else:
        raise ValueError(
            f"cannot anchor a {type(dataset).__name__}: expected an MLflow dataset "
            "(mlflow.data.from_pandas/from_numpy/…, or run.inputs.dataset_inputs[i].dataset)"
        )
    for key in ("name", "source", "source_type", "digest"):
        if not isinstance(fields[key], str) or not fields[key]:
            raise ValueError(f"dataset {key} is {fields[key]!r}; expected a non-empty string")
    return fields


def _input_context(dataset_input: Any) -> str | None:
    for tag in getattr(dataset_input, "tags", None) or []:
        if tag.key == "mlflow.data.context":
            return str(tag.value)
    return None


def run_dataset_inputs(run: Any) -> list[tuple[str, dict[str, Any]]]:
    """``(dataset name, dataset_inputs entry)`` for every input of ``run``, in logging order."""
    inputs = getattr(getattr(run, "inputs", None), "dataset_inputs", None) or []
    entries = []
    for dataset_input in inputs:
        fields = dataset_fields(dataset_input.dataset)
        entry = P.dataset_entry(**fields, context=_input_context(dataset_input))
        entries.append((fields["name"], entry))
    return entries


def run_metric_history(client: Any, run: Any) -> dict[str, list[tuple[int, int, float]]]:
    """Every ``(step, timestamp_ms, value)`` point of each of ``run``'s metrics."""
    run_id = run.info.run_id
    return {
        key: [(m.step, m.timestamp, m.value) for m in client.get_metric_history(run_id, key)]
        for key in run.data.metrics
    }


def _dataset_record(proof_engine: Any, entry: Mapping[str, Any]) -> Submitted:
    payload = P.dataset_payload(entry)
    payload_bytes = canonical_json(payload)
    envelope = proof_engine.create_commitment(
        event_type=P.DATASET,
        subject=P.dataset_subject(entry["name"], entry["digest"]),
        payload_bytes=payload_bytes,
        previous_hash=P.GENESIS,
    )
    return Submitted(envelope, payload, payload_bytes)


def _dataset_result(item: Submitted) -> dict[str, Any]:
    return {
        "envelope": item.envelope,
        "payload": item.payload,
        "payload_bytes": item.payload_bytes,
        "payload_hash": item.envelope["payload_hash"],
        "previous_hash": P.GENESIS,
        "anchor_result": item.anchor_result,
        "tx_id": item.tx_id,
    }


def _anchor_dataset(
    proof_engine: Any, arweave: Any, dataset: Any, deadline: float
) -> dict[str, Any]:
    import mlflow

    fields = dataset_fields(dataset)
    entry = P.dataset_entry(**fields, context=None)
    item = _dataset_record(proof_engine, entry)
    active = mlflow.active_run()
    writebacks: list[Writeback] = []
    if active is not None:
        run_id = active.info.run_id
        tracking_uri = portable_uri(mlflow.get_tracking_uri())
        writebacks = [
            witness_writeback(
                run_id, event_files(item.envelope, item.payload_bytes), tracking_uri=tracking_uri
            ),
            set_tags_writeback(
                "run",
                {T.DATASET_TX_PREFIX + fields["name"]: "{tx_id}"},
                tracking_uri=tracking_uri,
                run_id=run_id,
            ),
        ]
    item.record, item.anchor_result = submit(
        arweave, item.envelope, writebacks=writebacks, hold_writebacks=False
    )
    store_witness_now(arweave, item.record)
    if item.record is not None:
        item.anchor_result = settle(arweave, item.record, deadline)
    return _dataset_result(item)


# --- training ---------------------------------------------------------------------------


def active_trace_id() -> str | None:
    """The id of the MLflow trace whose span is active here, if any.

    MLflow 3 has ``mlflow.get_active_trace_id``; MLflow 2 only the active span, whose
    ``request_id`` is the trace's id.
    """
    import mlflow

    try:
        getter = getattr(mlflow, "get_active_trace_id", None)
        if getter is not None:
            trace_id = getter()
        else:
            span = mlflow.get_current_active_span()
            trace_id = getattr(span, "request_id", None) if span is not None else None
    except Exception:  # tracing is optional context, never a reason to fail
        return None
    return str(trace_id) if trace_id else None


def _chain_head(client: Any, run_id: str) -> tuple[str | None, str]:
    """Registered model of this run (if any) and its training chain head."""
    try:
        versions = client.search_model_versions(f"run_id='{run_id}'")
    except Exception as exc:
        logger.debug("chain head lookup failed: %s", exc)
        return None, P.GENESIS
    if not versions:
        return None, P.GENESIS
    name = versions[0].name
    try:
        head = client.get_registered_model(name).tags.get(T.LAST_TRAINING_HASH)
    except Exception as exc:
        logger.debug("chain head read failed: %s", exc)
        head = None
    return name, head or P.GENESIS


def _hash_artifacts(run_id: str, artifact_path: str) -> tuple[dict[str, str], str, str | None]:
    try:
        checksums = artifact_checksums(run_id, artifact_path=artifact_path)
    except ArtifactAccessError as exc:
        logger.warning("artifact hashing failed: %s", exc)
        return {}, "hash_failed", str(exc)
    return checksums, ("hashed" if checksums else "no_artifacts"), None


def _snapshot(
    metadata: Mapping[str, Any] | None, capture_otel: bool
) -> tuple[dict[str, Any], bool]:
    """Caller metadata merged over OTel ids; whether the tracking URI was asked for."""
    caller = dict(metadata or {})
    include_uri = bool(caller.pop(P.INCLUDE_TRACKING_URI, False))
    P.check_metadata(caller)
    return {**capture_otel_context(capture_otel), **caller}, include_uri


@dataclass(frozen=True)
class _RunContext:
    """Where the run lives, as write-backs must find it from any process."""

    run_id: str
    tracking_uri: str | None
    registry_uri: str | None
    client: Any


@dataclass(frozen=True)
class _TrainingState:
    """Everything read and validated before any side effect."""

    payload: dict[str, Any]
    payload_bytes: bytes
    datasets: list[tuple[str, dict[str, Any]]]
    artifact_path: str
    artifact_status: str
    artifact_error: str | None
    aggregate: str | None
    include_uri: bool


def _read_training(
    ctx: _RunContext,
    artifact_path: str | None,
    metadata: Mapping[str, Any] | None,
    capture_otel: bool,
    allow_empty_dataset_inputs: bool,
) -> _TrainingState:
    run = ctx.client.get_run(ctx.run_id)
    artifact_path = resolve_artifact_path(run, artifact_path, client=ctx.client)
    metrics = dict(run.data.metrics)
    P.check_metrics(metrics)
    history = run_metric_history(ctx.client, run)
    snapshot, include_uri = _snapshot(metadata, capture_otel)
    trace_id = active_trace_id()
    if trace_id:
        snapshot = {"mlflow_trace_id": trace_id, **snapshot}
    if include_uri and ctx.tracking_uri:
        snapshot = {"mlflow_tracking_uri": recorded_uri(ctx.tracking_uri), **snapshot}
    datasets = run_dataset_inputs(run)
    if not datasets and not allow_empty_dataset_inputs:
        raise ValueError(
            "this run has no dataset inputs: log the training data with "
            "mlflow.log_input(mlflow.data.from_pandas(df, ...), context='training') before "
            "anchor(), or pass allow_empty_dataset_inputs=True to commit an empty list"
        )
    checksums, status, error = _hash_artifacts(ctx.run_id, artifact_path)
    payload = P.training_payload(
        run_id=ctx.run_id,
        params=run.data.params,
        metrics=metrics,
        artifact_checksums=checksums,
        source_name=run.data.tags.get("mlflow.source.name", ""),
        git_commit=run.data.tags.get("mlflow.source.git.commit", ""),
        dataset_inputs=P.sorted_dataset_entries(entry for _, entry in datasets),
        artifact_path=artifact_path,
        history=history,
        snapshot=snapshot,
    )
    return _TrainingState(
        payload=payload,
        payload_bytes=canonical_json(payload),
        datasets=datasets,
        artifact_path=artifact_path,
        artifact_status=status,
        artifact_error=error,
        aggregate=artifact_hash(checksums),
        include_uri=include_uri,
    )


def _journal_datasets(
    proof_engine: Any, arweave: Any, ctx: _RunContext, state: _TrainingState
) -> list[tuple[str, Submitted]]:
    items = []
    for name, entry in state.datasets:
        item = _dataset_record(proof_engine, entry)
        item.record, item.anchor_result = submit(
            arweave,
            item.envelope,
            writebacks=[
                witness_writeback(
                    ctx.run_id,
                    event_files(item.envelope, item.payload_bytes),
                    tracking_uri=ctx.tracking_uri,
                ),
                set_tags_writeback(
                    "run",
                    {T.DATASET_TX_PREFIX + name: "{tx_id}"},
                    tracking_uri=ctx.tracking_uri,
                    run_id=ctx.run_id,
                ),
            ],
            hold_writebacks=False,
        )
        items.append((name, item))
    return items


def _journal_training(
    proof_engine: Any, arweave: Any, ctx: _RunContext, state: _TrainingState
) -> tuple[Submitted, str | None, str]:
    """Sign and journal the training record; ``(item, registered model, previous hash)``."""
    registered_model, previous_hash = _chain_head(ctx.client, ctx.run_id)
    envelope = proof_engine.create_commitment(
        event_type=P.TRAINING,
        subject=P.run_subject(
            ctx.run_id, recorded_uri(ctx.tracking_uri) if state.include_uri else None
        ),
        payload_bytes=state.payload_bytes,
        previous_hash=previous_hash,
    )
    witness = {
        "payload.json": state.payload_bytes,
        "proof.json": proof_json(envelope),
        **event_files(envelope, state.payload_bytes),
    }
    writebacks = [
        witness_writeback(ctx.run_id, witness, tracking_uri=ctx.tracking_uri),
        set_tags_writeback(
            "run",
            {T.TRAINING_TX: "{tx_id}", T.ARWEAVE_URL: "{url}", T.VERIFY_STATUS: T.ANCHORED},
            delete=(T.QUEUED_TX,),
            tracking_uri=ctx.tracking_uri,
            run_id=ctx.run_id,
        ),
    ]
    if registered_model:
        writebacks.append(
            set_tags_writeback(
                "registered_model",
                {T.LAST_TRAINING_HASH: envelope["payload_hash"]},
                tracking_uri=ctx.tracking_uri,
                registry_uri=ctx.registry_uri,
                name=registered_model,
            )
        )
    training = Submitted(envelope, state.payload, state.payload_bytes)
    training.record, training.anchor_result = submit(
        arweave, envelope, writebacks=writebacks, context_key=f"training:{ctx.run_id}"
    )
    return training, registered_model, previous_hash


def anchor(  # noqa: PLR0917  (positional order of ar-io-mlflow 0.3.0)
    proof_engine: Any = None,
    arweave: Any = None,
    artifact_path: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    capture_otel: bool = True,
    allow_empty_dataset_inputs: bool = False,
    *,
    dataset: Any = None,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Sign and anchor the active run's training record, or one dataset.

    Returns within ``deadline`` seconds of signing (default ``ARIO_MLFLOW_ANCHOR_DEADLINE``)
    whether or not the network answers; see the module docstring for what happens next.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    proof_engine, arweave = default_components(proof_engine, arweave)
    wait = deadline if deadline is not None else getattr(arweave, "deadline", 5.0)
    if dataset is not None:
        return _anchor_dataset(proof_engine, arweave, dataset, wait)

    active = mlflow.active_run()
    if active is None:
        raise RuntimeError(
            "ario_mlflow.anchor() must be called inside an active MLflow run "
            "(with mlflow.start_run(): ...), or with dataset=..."
        )
    tracking_uri = portable_uri(mlflow.get_tracking_uri())
    ctx = _RunContext(
        run_id=active.info.run_id,
        tracking_uri=tracking_uri,
        registry_uri=portable_uri(mlflow.get_registry_uri()),
        client=MlflowClient(tracking_uri=tracking_uri),
    )
    # 1. read and validate: nothing is written if this raises
    state = _read_training(ctx, artifact_path, metadata, capture_otel, allow_empty_dataset_inputs)
    # 2. sign and journal every record
    dataset_items = _journal_datasets(proof_engine, arweave, ctx, state)
    training, registered_model, previous_hash = _journal_training(proof_engine, arweave, ctx, state)
    # 3. witnesses now (journaled, so a failure here is retried later)
    for item in [*(item for _, item in dataset_items), training]:
        store_witness_now(arweave, item.record)
    # 4. bounded wait, then the tags we can write honestly now
    started = time.monotonic()
    for item in [training, *(item for _, item in dataset_items)]:
        if item.record is not None:
            remaining = max(0.0, wait - (time.monotonic() - started))
            item.anchor_result = settle(arweave, item.record, remaining)
    written = _write_training_tags(ctx.client, arweave, ctx.run_id, training, state.aggregate)
    write_report_files(
        ctx.client,
        ctx.run_id,
        "",
        training.envelope,
        training.anchor_result,
        artifact_hash=state.aggregate,
        wallet_mode=written.get(T.WALLET_MODE),
        wallet_type=written.get(T.WALLET_TYPE),
    )

    return {
        "envelope": training.envelope,
        "payload": state.payload,
        "payload_bytes": state.payload_bytes,
        "payload_hash": training.envelope["payload_hash"],
        "previous_hash": previous_hash,
        "registered_model": registered_model,
        "anchor_result": training.anchor_result,
        "tx_id": training.tx_id,
        "tags": written,
        "artifact_path": state.artifact_path,
        "artifact_status": state.artifact_status,
        "artifact_error": state.artifact_error,
        "dataset_anchors": [
            {**_dataset_result(item), "dataset_name": name} for name, item in dataset_items
        ],
    }


def _write_training_tags(
    client: Any, arweave: Any, run_id: str, training: Submitted, aggregate: str | None
) -> dict[str, str]:
    """The run tags known now, in the reference's order; the rest come by write-back."""
    uploaded = training.anchor_result is not None
    written: dict[str, str] = {T.PUBLIC_KEY: training.envelope["public_key"]}
    if not uploaded:
        written[T.VERIFY_STATUS] = T.SIGNED
    else:
        written[T.VERIFY_STATUS] = T.ANCHORED
    written[T.PAYLOAD_HASH] = training.envelope["payload_hash"]
    if aggregate:
        written[T.ARTIFACT_HASH] = aggregate
    if uploaded and training.anchor_result is not None:
        written[T.TRAINING_TX] = training.anchor_result["tx_id"]
        written[T.ARWEAVE_URL] = training.anchor_result["url"]
    elif training.tx_id:
        written[T.QUEUED_TX] = training.tx_id
    for name in ("wallet_mode", "wallet_type"):
        value = getattr(arweave, name, None) if getattr(arweave, "enabled", True) else None
        if value:
            written[f"ario.{name}"] = str(value)
    for key, value in written.items():
        client.set_tag(run_id, key, value)
    if training.record is not None and not uploaded:
        arweave.journal.release_writebacks(training.record.id)
    return written


def write_report_files(
    client: Any,
    run_id: str,
    prefix: str,
    envelope: Mapping[str, Any],
    anchor_result: Mapping[str, Any] | None,
    **details: Any,
) -> None:
    """Best effort: ``ario/<prefix>verification.html`` and, if uploaded, the receipt.

    Neither is evidence (the journal keeps the receipt, and the report is a rendering),
    so failing to write them only logs a warning.
    """
    from ario_mlflow.report import generate_verification_html

    files = {
        f"{prefix}verification.html": generate_verification_html(
            dict(envelope), dict(anchor_result) if anchor_result else None, **details
        ).encode("utf-8")
    }
    if anchor_result and anchor_result.get("receipt"):
        files[f"{prefix}receipt.json"] = json.dumps(anchor_result["receipt"], indent=2).encode()
    try:
        log_witness_files(client, run_id, files)
    except Exception as exc:
        logger.warning("could not store the verification report of run %s: %s", run_id, exc)
