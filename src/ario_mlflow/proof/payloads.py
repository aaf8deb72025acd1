"""The one definition of every event's payload and subject, shared by producer and verifier.

A payload is a plain JSON object whose JCS bytes the envelope commits to. Verifiers rebuild
payloads from live MLflow state with these same functions, so a producer and a verifier
can never disagree about the bytes. Schemas are those of ar-io-mlflow 0.3.0 (reference
§2), plus new keys only where stated (``artifact_path``, ``metrics_exact`` and
``metric_history`` in training payloads; the ``alias_changed`` event).
"""

from __future__ import annotations

import json
import logging
import math
import operator
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ario_mlflow.errors import CanonicalizationError
from ario_mlflow.proof.canonical import (
    canonical_json,
    normalize_floats,
)
from ario_mlflow.proof.hashing import sha256_hex

logger = logging.getLogger(__name__)

GENESIS = "GENESIS"

TRAINING = "training_complete"
DATASET = "dataset"
REGISTRATION = "model_registered"
PROMOTION = "stage_transition"
ALIAS = "alias_changed"
PREDICTION = "prediction"
#: One signed window of batched decisions (its payload is the window manifest).
PREDICTION_BATCH = "prediction_batch"

METRIC_PRECISION = 6
LATENCY_PRECISION = 2

#: Caller metadata key consumed by training anchoring, never copied into a payload.
INCLUDE_TRACKING_URI = "include_tracking_uri"

#: Training payload keys added to the 0.3.0 schema: every metric's latest value unrounded,
#: and every point of every metric's history.
METRICS_EXACT = "metrics_exact"
METRIC_HISTORY = "metric_history"

#: MLflow's SQL tracking stores cannot hold infinity: they write +/-inf as +/- this value
#: (``sys.float_info.max``) and read that back, so on those stores it *is* infinity.
SQL_STORE_INFINITY = sys.float_info.max

#: How ``metric_history`` writes the values JSON cannot represent (MLflow keeps NaN points).
NON_FINITE_NAMES = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


# --- validation ---------------------------------------------------------------------------


def normalize_metrics(metrics: Mapping[str, float]) -> dict[str, Any]:
    """Metrics as committed: every float rounded to six decimals."""
    result: dict[str, Any] = normalize_floats(dict(metrics), METRIC_PRECISION)
    return result


def check_metrics(metrics: Mapping[str, Any]) -> None:
    """``ValueError`` naming the first metric that is not a finite number."""
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"metric {key!r} is {value!r}, not a number")
        if not math.isfinite(value):
            raise ValueError(
                f"metric {key!r} is {value!r}; NaN and infinite metrics cannot be committed "
                "(log a finite value, or delete the metric, then anchor again)"
            )
        if abs(value) == SQL_STORE_INFINITY:
            raise ValueError(
                f"metric {key!r} is {value!r}, which is how MLflow's SQL tracking stores save "
                f"{'-' if value < 0 else ''}infinity; NaN and infinite metrics cannot be "
                "committed (log a finite value, or delete the metric, then anchor again)"
            )


def metric_value(key: str, value: Any) -> float | str:
    """A metric value as committed: the float itself (JCS writes its shortest round-trip
    form), or ``"NaN"``, ``"Infinity"``, ``"-Infinity"``, which JSON has no numbers for."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"metric {key!r} has value {value!r}, not a number")
    number = float(value)
    if math.isfinite(number):
        return number
    return NON_FINITE_NAMES[repr(number)]


def exact_metrics(metrics: Mapping[str, Any]) -> dict[str, float | str]:
    """``metrics_exact``: each metric's latest value exactly as MLflow returns it.

    The producer refuses non-finite latest values first (:func:`check_metrics`), so a
    string here only ever appears when a verifier rebuilds a tampered run.
    """
    return {key: metric_value(key, value) for key, value in metrics.items()}


def _point_order(point: tuple[int, int, float]) -> tuple[int, int, int, float]:
    step, timestamp, value = point
    return (step, timestamp, 1, 0.0) if math.isnan(value) else (step, timestamp, 0, value)


def ordered_metric_history(
    history: Mapping[str, Iterable[Sequence[Any]]],
) -> dict[str, list[list[Any]]]:
    """``metric_history``: ``{key: [[step, timestamp_ms, value], ...]}`` for every point.

    ``history`` holds plain ``(step, timestamp_ms, value)`` triples per metric key, in any
    order; they are committed sorted by step, then timestamp, then value (NaN last), with
    non-finite values as strings (:func:`metric_value`). Duplicates are kept.
    """
    result: dict[str, list[list[Any]]] = {}
    for key, points in history.items():
        plain: list[tuple[int, int, float]] = []
        for point in points:
            try:
                step, timestamp, value = point
                triple = (operator.index(step), operator.index(timestamp), value)
            except (TypeError, ValueError):
                raise ValueError(
                    f"metric {key!r} has history point {point!r}, not "
                    "(integer step, integer timestamp_ms, value)"
                ) from None
            metric_value(key, value)  # validates the value
            plain.append((triple[0], triple[1], float(value)))
        plain.sort(key=_point_order)
        result[key] = [[step, ts, metric_value(key, value)] for step, ts, value in plain]
    return result


def check_metadata(metadata: Mapping[str, Any]) -> None:
    """``ValueError`` naming the first metadata key whose value has no canonical JSON form."""
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise ValueError(f"metadata key {key!r} is not a string")
        try:
            canonical_json(value)
        except CanonicalizationError as exc:
            raise ValueError(f"metadata[{key!r}] cannot be committed: {exc}") from None


def merge_metadata(payload: dict[str, Any], metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Add metadata keys that are not structural keys of ``payload`` (structure wins)."""
    for key, value in metadata.items():
        if key in payload:
            logger.debug("metadata key %r collides with a payload field; dropped", key)
            continue
        payload[key] = value
    return payload


# --- datasets -----------------------------------------------------------------------------


def schema_hash(schema: str | None) -> str:
    """Hash of a dataset schema: of its canonical JSON if it parses, else of its text."""
    if not schema:
        return ""
    try:
        return sha256_hex(canonical_json(json.loads(schema)))
    except (ValueError, CanonicalizationError):
        return sha256_hex(schema.encode("utf-8"))


def dataset_entry(
    *,
    name: str,
    source: str,
    source_type: str,
    digest: str,
    schema: str | None,
    context: str | None,
) -> dict[str, Any]:
    """One element of a training payload's ``dataset_inputs`` (schema only as a hash)."""
    return {
        "name": name,
        "source": source,
        "source_type": source_type,
        "digest": digest,
        "schema_hash": schema_hash(schema),
        "context": context,
    }


def sorted_dataset_entries(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries in the committed order (independent of logging order)."""

    def key(entry: dict[str, Any]) -> tuple[str, str, str, str]:
        return (
            entry.get("name") or "",
            entry.get("source") or "",
            entry.get("context") or "",
            entry.get("digest") or "",
        )

    return sorted(entries, key=key)


def dataset_payload(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Standalone ``dataset`` event payload for a dataset entry (no ``context``)."""
    return {
        "event_type": DATASET,
        "name": entry["name"],
        "source": entry["source"],
        "source_type": entry["source_type"],
        "digest": entry["digest"],
        "schema_hash": entry["schema_hash"],
    }


def dataset_subject(name: str, digest: str) -> dict[str, Any]:
    """Subject of a ``dataset`` event."""
    return {"type": "mlflow_dataset", "name": name, "digest": digest}


# --- training -----------------------------------------------------------------------------


def training_payload(
    *,
    run_id: str,
    params: Mapping[str, str],
    metrics: Mapping[str, float],
    artifact_checksums: Mapping[str, str],
    source_name: str,
    git_commit: str,
    dataset_inputs: list[dict[str, Any]],
    artifact_path: str | None = None,
    history: Mapping[str, Iterable[Sequence[Any]]] | None = None,
    snapshot: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Training payload; ``snapshot`` holds trace/OTel ids and caller metadata.

    ``artifact_path`` (new in this implementation) records which model directory was
    hashed, so verifiers re-hash the same files. ``history`` (new: the
    ``(step, timestamp_ms, value)`` points of every metric) adds ``metrics_exact`` (the
    latest values unrounded, since ``metrics`` keeps six decimals) and ``metric_history``
    (:func:`ordered_metric_history`). Each is omitted when not given, so that payloads
    rebuilt for 0.3.0 records keep their exact bytes.
    """
    payload: dict[str, Any] = {
        "event_type": TRAINING,
        "run_id": run_id,
        "params": dict(params),
        "metrics": normalize_metrics(metrics),
        "artifact_checksums": dict(artifact_checksums),
        "source_name": source_name,
        "git_commit": git_commit,
        "dataset_inputs": dataset_inputs,
    }
    if artifact_path is not None:
        payload["artifact_path"] = artifact_path
    if history is not None:
        payload[METRICS_EXACT] = exact_metrics(metrics)
        payload[METRIC_HISTORY] = ordered_metric_history(history)
    return merge_metadata(payload, snapshot or {})


def run_subject(run_id: str, tracking_uri: str | None = None) -> dict[str, Any]:
    """Subject of a training event."""
    subject: dict[str, Any] = {"type": "mlflow_run", "run_id": run_id}
    if tracking_uri:
        subject["tracking_uri"] = tracking_uri
    return subject


# --- registry -----------------------------------------------------------------------------


def model_version_subject(name: str, version: str | int) -> dict[str, Any]:
    """Subject of registration, promotion and alias events."""
    return {"type": "mlflow_model_version", "name": name, "version": str(version)}


def registration_payload(
    *,
    model_name: str,
    model_version: str | int,
    source_run_id: str | None,
    source: str | None,
    artifact_verified: bool | None,
    artifact_hash: str | None,
    snapshot: Mapping[str, Any] | None = None,
    observed: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``model_registered`` payload (``observed``: how a registration made outside our
    client was seen, from :func:`observation`)."""
    payload: dict[str, Any] = {
        "event_type": REGISTRATION,
        "model_name": model_name,
        "model_version": str(model_version),
        "source_run_id": source_run_id,
        "source": source,
        "artifact_verified": artifact_verified,
        "artifact_hash": artifact_hash,
        **(observed or {}),
    }
    return merge_metadata(payload, snapshot or {})


def promotion_payload(
    *,
    model_name: str,
    model_version: str | int,
    from_stage: str,
    to_stage: str,
    snapshot: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``stage_transition`` payload (``to_stage`` exactly as the caller passed it)."""
    payload: dict[str, Any] = {
        "event_type": PROMOTION,
        "model_name": model_name,
        "model_version": str(model_version),
        "from_stage": from_stage,
        "to_stage": to_stage,
    }
    return merge_metadata(payload, snapshot or {})


#: Who saw a registry change and recorded it (payload key ``observed_by``): the client
#: that made it, MLflow's webhook delivery, or a reconciliation that found it afterwards.
OBSERVED_BY_CLIENT = "client"
OBSERVED_BY_WEBHOOK = "webhook"
OBSERVED_BY_RECONCILE = "reconcile"
OBSERVERS = (OBSERVED_BY_CLIENT, OBSERVED_BY_WEBHOOK, OBSERVED_BY_RECONCILE)


def observation(
    *,
    observed_by: str,
    changed_at: str | None = None,
    changed_by: str | None = None,
    changed_by_source: str | None = None,
    found_at: str | None = None,
    previous_known: bool = True,
    delivery: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The payload keys saying how a registry change was observed, and what is unknown.

    ``changed_at`` is when the change happened (``None``: not known, only that it happened
    before ``found_at``); ``changed_by`` is who made it (``None``: not known — MLflow's
    webhooks do not name the user); ``previous_version_known`` is false when the observer
    could not see what the alias pointed at before.
    """
    if observed_by not in OBSERVERS:
        raise ValueError(f"observed_by must be one of {OBSERVERS}, not {observed_by!r}")
    fields: dict[str, Any] = {
        "observed_by": observed_by,
        "changed_at": changed_at,
        "changed_by": changed_by,
        "previous_version_known": previous_known,
    }
    if changed_by_source is not None:
        fields["changed_by_source"] = changed_by_source
    if found_at is not None:
        fields["found_at"] = found_at
    if delivery is not None:
        fields["webhook_delivery"] = dict(delivery)
    return fields


def alias_payload(
    *,
    model_name: str,
    alias: str,
    model_version: str | int | None,
    previous_version: str | int | None,
    snapshot: Mapping[str, Any] | None = None,
    observed: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``alias_changed`` payload: where an alias points now (``None``: deleted) and before,
    and (``observed``, from :func:`observation`) how the change was seen."""
    payload: dict[str, Any] = {
        "event_type": ALIAS,
        "model_name": model_name,
        "alias": alias,
        "model_version": None if model_version is None else str(model_version),
        "previous_version": None if previous_version is None else str(previous_version),
        **(observed or {}),
    }
    return merge_metadata(payload, snapshot or {})


# --- predictions --------------------------------------------------------------------------


def prediction_payload(
    *,
    decision_id: str,
    model_name: str,
    model_version: str,
    run_id: str,
    model_uri: str,
    input_hash: str,
    output_hash: str,
    latency_ms: float,
    artifact_verified: bool | None,
    snapshot: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``prediction`` payload (``artifact_verified`` is true or null, never false)."""
    payload: dict[str, Any] = {
        "event_type": PREDICTION,
        "decision_id": decision_id,
        "model_name": model_name,
        "model_version": model_version,
        "run_id": run_id,
        "model_uri": model_uri,
        "input_hash": input_hash,
        "output_hash": output_hash,
        "latency_ms": round(latency_ms, LATENCY_PRECISION),
        "artifact_verified": True if artifact_verified else None,
    }
    return merge_metadata(payload, snapshot or {})


def prediction_subject(decision_id: str, run_id: str, trace_id: str | None) -> dict[str, Any]:
    """Subject of a ``prediction`` event."""
    subject: dict[str, Any] = {
        "type": "mlflow_prediction",
        "decision_id": decision_id,
        "model_run_id": run_id,
    }
    if trace_id:
        subject["trace_id"] = trace_id
    return subject
