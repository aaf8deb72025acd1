"""Re-reading the fields of a payload from live MLflow state (check 3).

Each refetcher returns the fields that live MLflow state determines, built with the same
payload functions the producer used; the caller overlays them on the anchored payload
and compares exact bytes. A refetcher raises ``LiveRefetchError`` when state it needs is
missing (that is a failure, not "not applicable").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ario_mlflow.errors import ArtifactAccessError, IntegrityError, LiveRefetchError
from ario_mlflow.proof import payloads
from ario_mlflow.proof.canonical import canonical_json

Refetcher = Callable[[dict[str, Any], Any, Any], dict[str, Any]]


def _training(original: dict[str, Any], client: Any, anchor: Any) -> dict[str, Any]:
    from ario_mlflow.lifecycle.artifacts import artifact_checksums, resolve_artifact_path
    from ario_mlflow.lifecycle.training import run_dataset_inputs, run_metric_history

    run_id = original.get("run_id")
    if not run_id:
        raise LiveRefetchError("payload has no run_id")
    run = client.get_run(run_id)
    path = original.get("artifact_path")
    if not isinstance(path, str):  # 0.3.0 records: resolve as the reference did
        try:
            path = resolve_artifact_path(run, None, client=client)
        except ValueError:
            path = "model"
    try:
        checksums = artifact_checksums(run_id, artifact_path=path, tracking_uri=client.tracking_uri)
    except ArtifactAccessError:
        checksums = {}
    fresh: dict[str, Any] = {
        "params": dict(run.data.params),
        "metrics": payloads.normalize_metrics(run.data.metrics),
        "source_name": run.data.tags.get("mlflow.source.name", ""),
        "git_commit": run.data.tags.get("mlflow.source.git.commit", ""),
        "artifact_checksums": checksums,
    }
    if "dataset_inputs" in original:
        fresh["dataset_inputs"] = payloads.sorted_dataset_entries(
            entry for _, entry in run_dataset_inputs(run)
        )
    # Newer records also commit exact values and every history point; 0.3.0 ones do not,
    # and must rebuild without them.
    if payloads.METRICS_EXACT in original:
        fresh[payloads.METRICS_EXACT] = payloads.exact_metrics(run.data.metrics)
    if payloads.METRIC_HISTORY in original:
        fresh[payloads.METRIC_HISTORY] = payloads.ordered_metric_history(
            run_metric_history(client, run)
        )
    return fresh


def _registration(original: dict[str, Any], client: Any, anchor: Any) -> dict[str, Any]:
    """The version as MLflow shows it now: its source, its run, and its files hashed where
    the signed lineage says the model is (a redirected version fails here)."""
    from ario_mlflow.lifecycle.artifacts import artifact_checksums
    from ario_mlflow.lifecycle.lineage import find_version_proof
    from ario_mlflow.lifecycle.model_files import check_model_files
    from ario_mlflow.lifecycle.model_location import check_version_location, version_run_id
    from ario_mlflow.proof.checksums import DEFAULT_ARTIFACT_PATH, artifact_hash

    name, version = original.get("model_name"), original.get("model_version")
    if not name or not version:
        raise LiveRefetchError("payload names no model version")
    try:
        mv = client.get_model_version(str(name), str(version))
    except Exception as exc:
        raise LiveRefetchError(f"model version {name}/{version} cannot be read: {exc}") from None
    live_run = version_run_id(client, mv)
    # A record whose run was not named (0.3.0, registered from a bare runs:/ source) keeps
    # its null; the run is then the one the source names.
    committed_run = original.get("source_run_id")
    fresh: dict[str, Any] = {
        "source": mv.source,
        "source_run_id": live_run if committed_run is not None else None,
    }
    if fresh["source"] != original.get("source") or fresh["source_run_id"] != committed_run:
        return fresh  # the comparison names the edited field
    if not live_run:
        return fresh
    from ario_mlflow.config import trusted_keys_from_env

    try:
        proof = find_version_proof(client, anchor, mv, trusted_keys_from_env()) if anchor else None
        if proof is not None:
            check_version_location(client, mv, proof.run_id, proof.artifact_path)
    except IntegrityError as exc:
        raise LiveRefetchError(str(exc)) from None
    try:
        if proof is not None:
            files = check_model_files(proof, tracking_uri=client.tracking_uri)
            current, matches = files.checksums, files.ok
        else:
            current = artifact_checksums(
                live_run, artifact_path=DEFAULT_ARTIFACT_PATH, tracking_uri=client.tracking_uri
            )
            matches = None
    except ArtifactAccessError as exc:
        raise LiveRefetchError(f"cannot re-hash the registered artifacts: {exc}") from None
    if original.get("artifact_hash") is not None:
        fresh["artifact_hash"] = artifact_hash(current)
    if original.get("artifact_verified") is not None and anchor is not None:
        if matches is None:
            raise LiveRefetchError("the source run has no training proof any more")
        fresh["artifact_verified"] = matches
    return fresh


def find_decision_trace(client: Any, original: dict[str, Any]) -> Any:
    """The MLflow trace of a decision: by ``mlflow_trace_id``, else by its decision id tag."""
    trace_id = original.get("mlflow_trace_id")
    if trace_id:
        return client.get_trace(trace_id)
    decision = original.get("decision_id")
    if not decision:
        raise LiveRefetchError("payload has neither mlflow_trace_id nor decision_id")
    experiment_ids = None
    run_id = original.get("run_id")
    if run_id and run_id != "unknown":
        experiment_ids = [client.get_run(run_id).info.experiment_id]
    from ario_mlflow.lifecycle.traces import search_traces

    found = search_traces(
        client,
        experiment_ids or ["0"],
        f"tags.`ario.decision_id` = '{decision}'",
        max_results=2,
    )
    if not found:
        raise LiveRefetchError(f"no MLflow trace carries ario.decision_id={decision}")
    return found[0]


def _prediction(original: dict[str, Any], client: Any, anchor: Any) -> dict[str, Any]:
    import json

    trace = find_decision_trace(client, original)
    info = getattr(trace, "info", trace)
    tags = getattr(info, "tags", None) or {}
    mirror = tags.get("ario.payload_json")
    if not mirror:
        raise LiveRefetchError("trace has no ario.payload_json tag")
    try:
        mirrored = json.loads(mirror)
    except ValueError as exc:
        raise LiveRefetchError(f"ario.payload_json is not JSON: {exc}") from None
    if not isinstance(mirrored, dict):
        raise LiveRefetchError("ario.payload_json is a non-object")
    if mirror.encode("utf-8") != canonical_json(mirrored):
        raise LiveRefetchError("ario.payload_json is not canonical JSON (edited by hand?)")
    # The reference merged one-way, so deleting keys from the mirror passed (§10.1 item 5).
    missing, extra = sorted(set(original) - set(mirrored)), sorted(set(mirrored) - set(original))
    if missing or extra:
        raise LiveRefetchError(f"trace mirror differs in keys: missing {missing}, extra {extra}")
    return mirrored


REFETCHERS: dict[str, Refetcher] = {
    payloads.TRAINING: _training,
    payloads.REGISTRATION: _registration,
    payloads.PREDICTION: _prediction,
}
