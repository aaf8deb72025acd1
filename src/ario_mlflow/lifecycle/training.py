"""Training and dataset provenance: ``ario_mlflow.anchor()``.

Inside an active run, ``anchor()`` commits the run's params, metrics, model artifact
hashes and dataset inputs in a signed ``training_complete`` record (plus one ``dataset``
record per logged input). Outside a run, ``anchor(dataset=ds)`` commits one dataset.

Order of work, chosen so that nothing is lost, nothing half-happens, and the fixed work
hides behind the hashing of a large model:

1. read and validate everything, while the model files are hashed on other threads (bad
   metrics or metadata raise ``ValueError`` before any side effect); the dataset records,
   which do not depend on the files, go through the record pipeline meanwhile;
2. sign the training record and put it through the pipeline
   (:mod:`~ario_mlflow.lifecycle.recorder`): journal, witness, and a wait for the upload
   bounded by ``ARIO_MLFLOW_ANCHOR_DEADLINE`` for all records together;
3. write the run tags for what is known now (``anchored``, or ``signed`` plus
   ``ario.queued_tx``). If the upload completes later, the journal's write-backs set the
   TX tags then, from this process, another one, or ``ar-io-mlflow sync``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ario_mlflow.errors import ArtifactAccessError
from ario_mlflow.lifecycle.artifacts import (
    artifact_checksums,
    parse_runs_uri,
    resolve_artifact_path,
)
from ario_mlflow.lifecycle.otel import capture_otel_context
from ario_mlflow.lifecycle.recorder import Deadline, Event, Recorded, Recorder, training_key
from ario_mlflow.lifecycle.traces import active_trace_id
from ario_mlflow.lifecycle.uris import portable_uri, recorded_uri
from ario_mlflow.lifecycle.writebacks import set_tags_writeback
from ario_mlflow.proof import payloads
from ario_mlflow.proof.canonical import canonical_json
from ario_mlflow.proof.checksums import artifact_hash
from ario_mlflow.proof.hashing import sha256_hex
from ario_mlflow.tags import (
    ANCHORED,
    ARTIFACT_HASH,
    ARWEAVE_URL,
    DATASET_TX_PREFIX,
    LAST_TRAINING_HASH,
    PAYLOAD_HASH,
    PUBLIC_KEY,
    QUEUED_TX,
    SIGNED,
    TRAINING_TX,
    VERIFY_STATUS,
    WALLET_MODE,
    WALLET_TYPE,
)

logger = logging.getLogger(__name__)

#: Exported name kept from ar-io-mlflow 0.3.0.
TAG_LAST_TRAINING_HASH = LAST_TRAINING_HASH

__all__ = [
    "TAG_LAST_TRAINING_HASH",
    "ArtifactAccessError",
    "anchor",
    "artifact_checksums",
    "capture_otel_context",
    "parse_runs_uri",
]


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
        entry = payloads.dataset_entry(**fields, context=_input_context(dataset_input))
        entries.append((fields["name"], entry))
    return entries


def run_metric_history(client: Any, run: Any) -> dict[str, list[tuple[int, int, float]]]:
    """Every ``(step, timestamp_ms, value)`` point of each of ``run``'s metrics."""
    run_id = run.info.run_id
    return {
        key: [(m.step, m.timestamp, m.value) for m in client.get_metric_history(run_id, key)]
        for key in run.data.metrics
    }


def _dataset_event(entry: Mapping[str, Any], run_id: str | None, tracking_uri: str | None) -> Event:
    """A dataset record (witnessed and tagged on ``run_id`` when there is one)."""
    after = []
    if run_id:
        after.append(
            set_tags_writeback(
                "run",
                {DATASET_TX_PREFIX + entry["name"]: "{tx_id}"},
                tracking_uri=tracking_uri,
                run_id=run_id,
            )
        )
    return Event(
        event_type=payloads.DATASET,
        subject=payloads.dataset_subject(entry["name"], entry["digest"]),
        payload=payloads.dataset_payload(entry),
        previous_hash=payloads.GENESIS,
        witness_run=run_id,
        tracking_uri=tracking_uri,
        after_upload=after,
        hold=False,
    )


def _dataset_result(recorded: Recorded) -> dict[str, Any]:
    return {
        "envelope": recorded.envelope,
        "payload": recorded.payload,
        "payload_bytes": recorded.payload_bytes,
        "payload_hash": recorded.envelope["payload_hash"],
        "previous_hash": payloads.GENESIS,
        "anchor_result": recorded.anchor_result,
        "tx_id": recorded.tx_id,
    }


def _anchor_dataset(recorder: Recorder, dataset: Any, deadline: Deadline) -> dict[str, Any]:
    import mlflow

    entry = payloads.dataset_entry(**dataset_fields(dataset), context=None)
    active = mlflow.active_run()
    run_id = active.info.run_id if active is not None else None
    tracking_uri = portable_uri(mlflow.get_tracking_uri()) if run_id else None
    return _dataset_result(recorder.record(_dataset_event(entry, run_id, tracking_uri), deadline))


# --- training ---------------------------------------------------------------------------


def _chain_head(client: Any, run_id: str) -> tuple[str | None, str]:
    """Registered model of this run (if any) and its training chain head."""
    try:
        versions = client.search_model_versions(f"run_id='{run_id}'")
    except Exception as exc:
        logger.debug("chain head lookup failed: %s", exc)
        return None, payloads.GENESIS
    if not versions:
        return None, payloads.GENESIS
    name = versions[0].name
    try:
        head = client.get_registered_model(name).tags.get(LAST_TRAINING_HASH)
    except Exception as exc:
        logger.debug("chain head read failed: %s", exc)
        head = None
    return name, head or payloads.GENESIS


def _hashed(future: Future[dict[str, str]]) -> tuple[dict[str, str], str, str | None]:
    """``(checksums, status, error)`` of the hashing started in the background."""
    try:
        checksums = future.result()
    except ArtifactAccessError as exc:
        logger.warning("artifact hashing failed: %s", exc)
        return {}, "hash_failed", str(exc)
    return checksums, ("hashed" if checksums else "no_artifacts"), None


def _snapshot(
    metadata: Mapping[str, Any] | None, capture_otel: bool
) -> tuple[dict[str, Any], bool]:
    """Caller metadata merged over OTel ids; whether the tracking URI was asked for."""
    caller = dict(metadata or {})
    include_uri = bool(caller.pop(payloads.INCLUDE_TRACKING_URI, False))
    payloads.check_metadata(caller)
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
    """Everything read and validated before the training record is signed."""

    payload: dict[str, Any]
    datasets: list[tuple[str, dict[str, Any]]]
    artifact_path: str
    artifact_status: str
    artifact_error: str | None
    aggregate: str | None
    include_uri: bool
    registered_model: str | None
    previous_hash: str


#: One hashing pass at a time per process (the pass itself uses a bounded thread pool).
_hashing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ario-hash")


def _read_training(  # noqa: PLR0917  (one call site, every argument named there)
    ctx: _RunContext,
    recorder: Recorder,
    artifact_path: str | None,
    metadata: Mapping[str, Any] | None,
    capture_otel: bool,
    allow_empty_dataset_inputs: bool,
) -> tuple[_TrainingState, list[tuple[str, Recorded]]]:
    """Read and validate the run while its model files are hashed in the background;
    journal the dataset records meanwhile (they do not depend on the files)."""
    run = ctx.client.get_run(ctx.run_id)
    artifact_path = resolve_artifact_path(run, artifact_path, client=ctx.client)
    hashing = _hashing.submit(artifact_checksums, ctx.run_id, artifact_path=artifact_path)
    try:
        metrics = dict(run.data.metrics)
        payloads.check_metrics(metrics)
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
                "mlflow.log_input(mlflow.data.from_pandas(df, ...), context='training') "
                "before anchor(), or pass allow_empty_dataset_inputs=True to commit an "
                "empty list"
            )
        registered_model, previous_hash = _chain_head(ctx.client, ctx.run_id)
    except BaseException:
        hashing.cancel()
        _settle_quietly(hashing)
        raise
    dataset_records = [
        (name, recorder.journal(_dataset_event(entry, ctx.run_id, ctx.tracking_uri)))
        for name, entry in datasets
    ]
    checksums, status, error = _hashed(hashing)
    payload = payloads.training_payload(
        run_id=ctx.run_id,
        params=run.data.params,
        metrics=metrics,
        artifact_checksums=checksums,
        source_name=run.data.tags.get("mlflow.source.name", ""),
        git_commit=run.data.tags.get("mlflow.source.git.commit", ""),
        dataset_inputs=payloads.sorted_dataset_entries(entry for _, entry in datasets),
        artifact_path=artifact_path,
        history=history,
        snapshot=snapshot,
    )
    state = _TrainingState(
        payload=payload,
        datasets=datasets,
        artifact_path=artifact_path,
        artifact_status=status,
        artifact_error=error,
        aggregate=artifact_hash(checksums),
        include_uri=include_uri,
        registered_model=registered_model,
        previous_hash=previous_hash,
    )
    return state, dataset_records


def _settle_quietly(future: Future[Any]) -> None:
    """Wait for a background pass we no longer need (its error is not ours to raise)."""
    try:
        future.result()
    except Exception as exc:
        logger.debug("discarded hashing pass: %s", exc)


def _training_event(ctx: _RunContext, state: _TrainingState) -> Event:
    after = [
        set_tags_writeback(
            "run",
            {TRAINING_TX: "{tx_id}", ARWEAVE_URL: "{url}", VERIFY_STATUS: ANCHORED},
            delete=(QUEUED_TX,),
            tracking_uri=ctx.tracking_uri,
            run_id=ctx.run_id,
        )
    ]
    if state.registered_model:
        after.append(
            set_tags_writeback(
                "registered_model",
                {LAST_TRAINING_HASH: sha256_hex(canonical_json(state.payload))},
                tracking_uri=ctx.tracking_uri,
                registry_uri=ctx.registry_uri,
                name=state.registered_model,
            )
        )
    return Event(
        event_type=payloads.TRAINING,
        subject=payloads.run_subject(
            ctx.run_id, recorded_uri(ctx.tracking_uri) if state.include_uri else None
        ),
        payload=state.payload,
        previous_hash=state.previous_hash,
        witness_run=ctx.run_id,
        tracking_uri=ctx.tracking_uri,
        after_upload=after,
        context_key=training_key(ctx.run_id),
    )


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

    ``arweave`` is the Arweave client (an ``ArweaveAnchor``; the name is 0.3.0's).
    Returns within ``deadline`` seconds (default ``ARIO_MLFLOW_ANCHOR_DEADLINE``) of the
    model files being hashed, whether or not the network answers; see the module
    docstring for what happens next.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    recorder = Recorder(proof_engine, arweave)
    seconds = deadline if deadline is not None else getattr(recorder.anchor, "deadline", 5.0)
    if dataset is not None:
        return _anchor_dataset(recorder, dataset, Deadline(seconds))

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
    # 1. read and validate (nothing of the training record is written if this raises)
    state, dataset_records = _read_training(
        ctx, recorder, artifact_path, metadata, capture_otel, allow_empty_dataset_inputs
    )
    # 2. the training record through the pipeline; one deadline for every upload
    training = recorder.journal(_training_event(ctx, state))
    wait = Deadline(seconds)
    for recorded in [training, *(recorded for _, recorded in dataset_records)]:
        recorder.settle(recorded, wait)
    # 3. the tags we can write honestly now
    written = _write_training_tags(ctx.client, recorder, ctx.run_id, training, state.aggregate)
    recorder.write_report(
        ctx.client,
        ctx.run_id,
        "",
        training,
        artifact_hash=state.aggregate,
        wallet_mode=written.get(WALLET_MODE),
        wallet_type=written.get(WALLET_TYPE),
    )
    return {
        "envelope": training.envelope,
        "payload": state.payload,
        "payload_bytes": training.payload_bytes,
        "payload_hash": training.envelope["payload_hash"],
        "previous_hash": state.previous_hash,
        "registered_model": state.registered_model,
        "anchor_result": training.anchor_result,
        "tx_id": training.tx_id,
        "tags": written,
        "artifact_path": state.artifact_path,
        "artifact_status": state.artifact_status,
        "artifact_error": state.artifact_error,
        "dataset_anchors": [
            {**_dataset_result(recorded), "dataset_name": name}
            for name, recorded in dataset_records
        ],
    }


def _write_training_tags(
    client: Any, recorder: Recorder, run_id: str, training: Recorded, aggregate: str | None
) -> dict[str, str]:
    """The run tags known now, in the reference's order (one MLflow call); the rest come
    by write-back, released once these are written."""
    from mlflow.entities import RunTag

    written: dict[str, str] = {PUBLIC_KEY: training.envelope["public_key"]}
    written[VERIFY_STATUS] = ANCHORED if training.uploaded else SIGNED
    written[PAYLOAD_HASH] = training.envelope["payload_hash"]
    if aggregate:
        written[ARTIFACT_HASH] = aggregate
    if training.anchor_result is not None:
        written[TRAINING_TX] = training.anchor_result["tx_id"]
        written[ARWEAVE_URL] = training.anchor_result["url"]
    elif training.tx_id:
        written[QUEUED_TX] = training.tx_id
    anchor = recorder.anchor
    for name in ("wallet_mode", "wallet_type"):
        value = getattr(anchor, name, None) if getattr(anchor, "enabled", True) else None
        if value:
            written[f"ario.{name}"] = str(value)
    client.log_batch(run_id, tags=[RunTag(key, value) for key, value in written.items()])
    recorder.release(training)
    return written
