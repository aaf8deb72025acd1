"""MLflow write-backs performed once a journaled record is uploaded.

A write-back is data (which tags, on which run / model version / trace, of which
tracking server), journaled with the record, so it survives restarts and is retried until
MLflow accepts it. Values may hold ``{tx_id}`` and ``{url}``, filled in from the record.
:func:`install_handlers` makes this process able to perform them.
"""

from __future__ import annotations

import base64
import json
import threading
from typing import Any

from ario_mlflow.lifecycle.traces import create_trace, decision_time_ns
from ario_mlflow.lifecycle.uris import recorded_uri, usable_uri
from ario_mlflow.lifecycle.witness import decision_files, log_witness_files, window_files
from ario_mlflow.outbox import handlers
from ario_mlflow.outbox.journal import Journal, PendingWriteback, Record, Writeback
from ario_mlflow.outbox.leaves import window_manifest_bytes, window_payloads
from ario_mlflow.tags import (
    ARTIFACT_VERIFIED,
    ARWEAVE_URL,
    DECISION_ID,
    INPUT_HASH,
    MODEL_NAME,
    MODEL_VERSION,
    OUTPUT_HASH,
    PAYLOAD_HASH,
    PAYLOAD_JSON,
    PREDICTION_TX,
    PROOF_STATUS,
)

SET_TAGS = "mlflow.set_tags"
LOG_WITNESS = "mlflow.log_witness"
_TARGETS = ("run", "model_version", "registered_model", "trace")
_clients: dict[tuple[str | None, str | None], Any] = {}
_clients_lock = threading.Lock()
_decisions_lock = threading.Lock()


def set_tags_writeback(
    target: str,
    tags: dict[str, str],
    *,
    tracking_uri: str | None,
    registry_uri: str | None = None,
    delete: tuple[str, ...] = (),
    **ids: str,
) -> Writeback:
    """A write-back that sets ``tags`` (then deletes the tags named in ``delete``).

    Targets and their ids: ``run`` (``run_id=``), ``model_version`` (``name=, version=``),
    ``registered_model`` (``name=``), ``trace`` (``trace_id=``).
    """
    if target not in _TARGETS:
        raise ValueError(f"unknown write-back target {target!r}; expected one of {_TARGETS}")
    spec: dict[str, Any] = {
        "target": target,
        "tags": tags,
        "tracking_uri": recorded_uri(tracking_uri),
        "registry_uri": recorded_uri(registry_uri),
        **ids,
    }
    if delete:
        spec["delete"] = list(delete)
    return Writeback(SET_TAGS, spec)


def witness_writeback(
    run_id: str, files: dict[str, bytes], *, tracking_uri: str | None
) -> Writeback:
    """A write-back that stores witness ``files`` (paths under ``ario/``) on a run.

    It does not wait for the upload: the payload bytes must reach MLflow even if the
    record is never uploaded from this process.
    """
    encoded = {path: base64.b64encode(data).decode("ascii") for path, data in files.items()}
    return Writeback(
        LOG_WITNESS,
        {"run_id": run_id, "files": encoded, "tracking_uri": recorded_uri(tracking_uri)},
        after_upload=False,
    )


def _log_witness(spec: dict[str, Any], record: Record | None, journal: Journal) -> None:
    files = {path: base64.b64decode(data) for path, data in spec["files"].items()}
    log_witness_files(_client(spec.get("tracking_uri"), None), spec["run_id"], files)


def _client(tracking_uri: str | None, registry_uri: str | None) -> Any:
    """A cached client for a journaled (credential-free) pair of URIs."""
    from mlflow.tracking import MlflowClient

    key = (usable_uri(tracking_uri), usable_uri(registry_uri, "registry"))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = MlflowClient(tracking_uri=key[0], registry_uri=key[1])
            _clients[key] = client
        return client


def render(value: str, record: Record | None) -> str:
    """Fill ``{tx_id}`` and ``{url}`` from the uploaded record."""
    if record is None:
        return value
    return value.replace("{tx_id}", record.tx_id).replace("{url}", record.url)


def _apply(spec: dict[str, Any], record: Record | None, journal: Journal) -> None:
    client = _client(spec.get("tracking_uri"), spec.get("registry_uri"))
    target = spec["target"]
    for key, template in spec["tags"].items():
        value = render(str(template), record)
        if target == "run":
            client.set_tag(spec["run_id"], key, value)
        elif target == "model_version":
            client.set_model_version_tag(spec["name"], str(spec["version"]), key, value)
        elif target == "registered_model":
            client.set_registered_model_tag(spec["name"], key, value)
        else:
            client.set_trace_tag(spec["trace_id"], key, value)
    for key in spec.get("delete", ()):
        _delete_tag(client, spec, key)


def _delete_tag(client: Any, spec: dict[str, Any], key: str) -> None:
    from mlflow.exceptions import MlflowException

    target = spec["target"]
    try:
        if target == "run":
            client.delete_tag(spec["run_id"], key)
        elif target == "model_version":
            client.delete_model_version_tag(spec["name"], str(spec["version"]), key)
        elif target == "registered_model":
            client.delete_registered_model_tag(spec["name"], key)
        else:
            client.delete_trace_tag(spec["trace_id"], key)
    except MlflowException as exc:
        # Already gone is fine (deleting is idempotent); anything else must be retried.
        if exc.error_code not in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}:
            raise


# --- prediction traces ------------------------------------------------------------------

DECISION = "mlflow.decision"


#: Spec key of a decision write-back that holds the decision's payload text (the one
#: field a served model's decision write-backs differ in: the spool's template slot).
DECISION_PAYLOAD = "payload"
#: Spec key: the decision's trace is created under the payload's ``mlflow_trace_id``,
#: which ``predict`` chose for it (absent: a new trace, the payload naming none or the
#: caller's own).
PRESET_TRACE = "preset_trace"


def decision_writeback(
    *,
    tracking_uri: str | None,
    run_id: str | None,
    experiment_id: str | None,
    payload: str,
    trace: bool,
    inputs: Any = None,
    outputs: Any = None,
    preset_trace: bool = False,
) -> Writeback:
    """Once a decision is uploaded: its witness files on the run, and its MLflow trace.

    Everything else (the trace's tags, ``proof.json``) is derived from ``payload`` and the
    record when the write-back runs, so the hot path journals as little as possible. The
    trace holds hashes and ids; raw ``inputs``/``outputs`` only if the caller passes them
    (an explicit opt-in, since they are journaled too). With ``preset_trace`` the trace is
    created under the id the payload names (``mlflow_trace_id``), so the signed record
    points at it.
    """
    spec: dict[str, Any] = {
        "tracking_uri": recorded_uri(tracking_uri),
        "run_id": run_id,
        "experiment_id": experiment_id,
        DECISION_PAYLOAD: payload,
        "trace": trace,
    }
    if preset_trace:
        spec[PRESET_TRACE] = True
    if inputs is not None:
        spec["inputs"] = inputs
    if outputs is not None:
        spec["outputs"] = outputs
    return Writeback(DECISION, spec)


def _decision_trace_tags(payload: dict[str, Any], text: str, record: Record) -> dict[str, str]:
    envelope = json.loads(record.envelope)
    tags = {
        PAYLOAD_JSON: text,
        DECISION_ID: str(payload["decision_id"]),
        MODEL_NAME: str(payload.get("model_name")),
        MODEL_VERSION: str(payload.get("model_version")),
        INPUT_HASH: str(payload.get("input_hash")),
        OUTPUT_HASH: str(payload.get("output_hash")),
        PAYLOAD_HASH: str(envelope.get("payload_hash")),
        "ario.run_id": str(payload.get("run_id")),
        PREDICTION_TX: record.tx_id,
        ARWEAVE_URL: record.url,
        PROOF_STATUS: "anchored",
    }
    if payload.get("artifact_verified") is True:
        tags[ARTIFACT_VERIFIED] = "true"
    return tags


def _write_decisions(items: list[PendingWriteback], journal: Journal) -> list[Exception | None]:
    """A window of decisions: one witness upload per run, their traces, one trace flush.

    One window at a time per process: MLflow's trace flush is not made for concurrent
    callers, and a worker that waits here only makes the next window larger.
    """
    with _decisions_lock:
        return _write_decision_window(items, journal)


def _write_decision_window(
    items: list[PendingWriteback], journal: Journal
) -> list[Exception | None]:
    errors: list[Exception | None] = [None] * len(items)
    by_run: dict[tuple[str | None, str], list[int]] = {}
    for index, item in enumerate(items):
        if item.record is None:
            errors[index] = ValueError("a decision write-back belongs to a record")
        elif item.spec.get("run_id"):
            by_run.setdefault((item.spec.get("tracking_uri"), item.spec["run_id"]), []).append(
                index
            )
    for (tracking_uri, run_id), indexes in by_run.items():
        files: dict[str, bytes] = {}
        for index in indexes:
            record, payload = items[index].record, items[index].spec[DECISION_PAYLOAD]
            assert record is not None
            decision_id = str(json.loads(payload)["decision_id"])
            envelope = json.loads(record.envelope)
            files.update(decision_files(decision_id, payload.encode("utf-8"), envelope))
        try:
            log_witness_files(_client(tracking_uri, None), run_id, files)
        except Exception as exc:
            for index in indexes:
                errors[index] = exc
    traced: dict[int, dict[str, Any]] = {}
    started = False
    for index, item in enumerate(items):
        if errors[index] is not None or not item.spec.get("trace"):
            continue
        assert item.record is not None
        if item.record.context.get("trace_id"):
            continue  # created by an earlier attempt
        try:
            text = item.spec[DECISION_PAYLOAD]
            payload = json.loads(text)
            tags = _decision_trace_tags(payload, text, item.record)
            preset = payload.get("mlflow_trace_id") if item.spec.get(PRESET_TRACE) else None
            if preset:
                _create_preset_trace(item.spec, str(preset), tags, payload, item.record)
                traced[item.record.id] = {"trace_id": str(preset)}
            else:
                traced[item.record.id] = {"trace_id": _start_trace(item.spec, tags)}
                started = True
        except Exception as exc:
            errors[index] = exc
    if started:
        _flush_traces()  # a decision is done once its trace is really stored
    if traced:
        journal.update_contexts(traced)
    return errors


def _create_preset_trace(
    spec: dict[str, Any],
    trace_id: str,
    tags: dict[str, str],
    payload: dict[str, Any],
    record: Record,
) -> None:
    """The decision's trace under the id its signed payload names, stored before this
    returns (no flush needed), timed as the decision was."""
    start_ns, duration_ns = decision_time_ns(
        json.loads(record.envelope).get("signed_at"), payload.get("latency_ms")
    )
    create_trace(
        usable_uri(spec.get("tracking_uri")),
        trace_id,
        experiment_id=spec.get("experiment_id"),
        tags=tags,
        start_ns=start_ns,
        duration_ns=duration_ns,
        inputs=spec.get("inputs"),
        outputs=spec.get("outputs"),
    )


def _start_trace(spec: dict[str, Any], tags: dict[str, str]) -> str:
    """Create and end a decision's trace (not flushed); its id."""
    client = _client(spec.get("tracking_uri"), None)
    span = client.start_trace(
        "VerifiedModel.predict",
        inputs=spec.get("inputs"),
        tags=tags,
        experiment_id=spec.get("experiment_id"),
    )
    trace_id = getattr(span, "trace_id", None) or getattr(span, "request_id", None)
    client.end_trace(trace_id, outputs=spec.get("outputs"))
    return str(trace_id)


# Journals written by 0.1 hold per-decision trace write-backs of these two kinds.
TRACE_CREATE = "mlflow.prediction_trace"
TRACE_TAGS = "mlflow.prediction_trace_tags"


def _create_trace(spec: dict[str, Any], record: Record | None, journal: Journal) -> None:
    if record is None:
        raise ValueError("a prediction trace belongs to a record")
    if record.context.get("trace_id"):
        return  # created by an earlier attempt
    trace_id = _start_trace(spec, spec["tags"])
    _flush_traces()
    journal.update_context(record.id, {"trace_id": trace_id})


def _flush_traces() -> None:
    import mlflow

    flush = getattr(mlflow, "flush_trace_async_logging", None)
    if flush is not None:
        flush()


def _tag_trace(spec: dict[str, Any], record: Record | None, journal: Journal) -> None:
    if record is None:
        raise ValueError("a prediction trace belongs to a record")
    current = journal.get(record.id)
    trace_id = (current.context if current else record.context).get("trace_id")
    if not trace_id:
        raise RuntimeError("trace not created yet; retrying later")
    client = _client(spec.get("tracking_uri"), None)
    for key, value in spec["tags"].items():
        client.set_trace_tag(trace_id, key, render(str(value), record))


# --- windows of batched decisions -------------------------------------------------------

WINDOW = "mlflow.window"


def window_writeback(*, tracking_uri: str | None, run_id: str) -> Writeback:
    """The write-back every window of a stream gets: its witness on the model's run (the
    window closer adds the stream and sequence range). It does not wait for the upload:
    the decisions must reach MLflow even if the window is never uploaded from here."""
    return Writeback(
        WINDOW, {"tracking_uri": recorded_uri(tracking_uri), "run_id": run_id}, after_upload=False
    )


def _log_window(spec: dict[str, Any], record: Record | None, journal: Journal) -> None:
    if record is None:
        raise ValueError("a window witness belongs to a record")
    manifest = window_manifest_bytes(journal, record.tx_id)
    if manifest is None:
        raise RuntimeError(f"window {record.tx_id} is not in this journal")
    files = window_files(
        stream_id=str(spec["stream_id"]),
        first_seq=int(spec["first_seq"]),
        last_seq=int(spec["last_seq"]),
        payloads=window_payloads(journal, record.tx_id),
        manifest_bytes=manifest,
        envelope=json.loads(record.envelope),
        tx_id=record.tx_id,
    )
    log_witness_files(_client(spec.get("tracking_uri"), None), spec["run_id"], files)


def install_handlers() -> None:
    """Install this module's handlers (see :mod:`ario_mlflow.lifecycle.handlers`)."""
    handlers.install(SET_TAGS, _apply)
    handlers.install(TRACE_CREATE, _create_trace)
    handlers.install(TRACE_TAGS, _tag_trace)
    handlers.install(LOG_WITNESS, _log_witness)
    handlers.install(WINDOW, _log_window)
    handlers.install_batch(DECISION, _write_decisions)
