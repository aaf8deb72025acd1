"""What "verify run X / model N/V / trace T / decision D / dataset S" means in MLflow terms:
which TX to fetch, what the record must be about, and what it must chain to."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ario_mlflow.errors import NotAnchoredError, TargetNotFoundError
from ario_mlflow.tags import (
    DATASET_TX_PREFIX,
    DECISION_ID,
    LEGACY_PREDICTION_TX,
    PAYLOAD_JSON,
    PREDICTION_TX,
    QUEUED_TX,
    REGISTRATION_TX,
    TRAINING_TX,
)


@dataclass(frozen=True)
class Target:
    """A resolved verification target."""

    kind: str
    label: str
    tx_id: str
    expected_subject: dict[str, str] | None = None
    expected_previous: str | None = None
    writeback: dict[str, Any] = field(default_factory=dict)
    #: A batched decision: its inclusion receipt (``tx_id`` is its window's record).
    receipt: Any = None


def _missing(exc: Exception) -> bool:
    return getattr(exc, "error_code", "") in {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"}


def run_target(client: Any, run_id: str) -> Target:
    """The training record of a run."""
    try:
        run = client.get_run(run_id)
    except Exception as exc:
        if _missing(exc):
            raise TargetNotFoundError(f"run {run_id} not found") from None
        raise
    tags = run.data.tags
    tx_id = tags.get(TRAINING_TX)
    if not tx_id:
        queued = tags.get(QUEUED_TX)
        suffix = f" (signed, queued as {queued}; run 'ar-io-mlflow sync')" if queued else ""
        raise NotAnchoredError(
            f"Run {run_id}: no ario.training_tx tag found. Not anchored.{suffix}"
        )
    return Target(
        "run",
        f"training run {run_id}",
        tx_id,
        {"type": "mlflow_run", "run_id": run_id},
        writeback={"target": "run", "run_id": run_id},
    )


def _version(client: Any, name: str, version: str) -> Any:
    try:
        if version.startswith("@"):
            return client.get_model_version_by_alias(name, version[1:])
        return client.get_model_version(name, version)
    except Exception as exc:
        if _missing(exc) or "not found" in str(exc).lower():
            raise TargetNotFoundError(f"model version {name}/{version} not found") from None
        raise


def parse_model_ref(ref: str) -> tuple[str, str]:
    """``name/version`` or ``name@alias`` (returned as ``(name, "@alias")``)."""
    if "@" in ref:
        name, alias = ref.rsplit("@", 1)
        if name and alias:
            return name, "@" + alias
    elif "/" in ref:
        name, version = ref.rsplit("/", 1)
        if name and version:
            return name, version
    raise ValueError(f"expected NAME/VERSION or NAME@ALIAS, got {ref!r}")


def model_version(client: Any, ref: str) -> Any:
    """The model version named by ``NAME/VERSION`` or ``NAME@ALIAS``."""
    name, selector = parse_model_ref(ref)
    return _version(client, name, selector)


def model_target(client: Any, ref: str) -> Target:
    """The registration record of a model version, chained to its run's training TX."""
    mv = model_version(client, ref)
    name = mv.name
    version = str(mv.version)
    tx_id = (mv.tags or {}).get(REGISTRATION_TX)
    if not tx_id:
        raise NotAnchoredError(
            f"Model {name}/v{version}: no ario.registration_tx tag found. Not anchored."
        )
    from ario_mlflow.lifecycle.lineage import run_training_tx
    from ario_mlflow.lifecycle.model_location import version_run_id
    from ario_mlflow.proof import chain, payloads

    previous = None
    run_id = version_run_id(client, mv)
    if run_id:
        try:
            training_tx = run_training_tx(client.get_run(run_id).data.tags)
        except Exception:  # the run cannot be read: the link is not checked
            training_tx = None
        else:
            previous = chain.expected_previous(payloads.REGISTRATION, training_tx=training_tx)
    return Target(
        "model",
        f"model registration {name}/v{version}",
        tx_id,
        {"type": "mlflow_model_version", "name": name, "version": version},
        expected_previous=previous,
        writeback={"target": "model_version", "name": name, "version": version},
    )


def trace_target(client: Any, trace_id: str, anchor: Any = None) -> Target:
    """The decision record mirrored on an MLflow trace; or a batched decision made inside
    the caller's trace (its payload names the trace)."""
    try:
        trace = client.get_trace(trace_id)
    except Exception as exc:
        raise TargetNotFoundError(f"Could not load trace {trace_id}: {exc}") from None
    if trace is None:
        raise TargetNotFoundError(f"Trace {trace_id} not found.")
    tags = trace.info.tags or {}
    tx_id = tags.get(PREDICTION_TX) or tags.get(LEGACY_PREDICTION_TX)
    if not tx_id and anchor is not None:
        from ario_mlflow.verify.receipts import decisions_in_trace

        journal = getattr(anchor, "journal", None)
        named = decisions_in_trace(trace_id, journal=journal, client=client)
        if named:
            target = decision_target(client, named[0], journal, anchor)
            more = f", 1 of {len(named)} decisions in it" if len(named) > 1 else ""
            return Target(
                "trace",
                f"trace {trace_id} ({target.label}{more})",
                target.tx_id,
                receipt=target.receipt,
            )
    if not tx_id:
        raise NotAnchoredError(
            f"Trace {trace_id}: no ario.prediction_tx tag found. Not anchored yet."
        )
    decision = _bound_decision(trace_id, tags)
    expected = {"type": "mlflow_prediction", "decision_id": decision}
    return Target(
        "trace",
        f"trace {trace_id}",
        tx_id,
        expected,
        writeback={"target": "trace", "trace_id": trace_id},
    )


def _bound_decision(trace_id: str, tags: dict[str, str]) -> str:
    """The decision this trace is about: its ``ario.decision_id`` tag and the decision id
    inside its payload mirror, which must agree. A record is only accepted for the trace
    if it is about that decision, so a TX copied from another decision does not verify."""
    import json

    mirrored = None
    mirror = tags.get(PAYLOAD_JSON)
    if mirror:
        try:
            value = json.loads(mirror)
        except ValueError:
            value = None
        mirrored = value.get("decision_id") if isinstance(value, dict) else None
    tagged = tags.get(DECISION_ID)
    if tagged and mirrored and tagged != mirrored:
        raise NotAnchoredError(
            f"Trace {trace_id}: ario.decision_id {tagged} and the payload mirror's decision "
            f"{mirrored} disagree; the trace was edited"
        )
    decision = tagged or mirrored
    if not decision:
        raise NotAnchoredError(
            f"Trace {trace_id}: neither ario.decision_id nor ario.payload_json says which "
            "decision it records, so no record can be bound to it"
        )
    return str(decision)


def decision_target(
    client: Any, decision_id: str, journal: Any = None, anchor: Any = None
) -> Target:
    """A decision by id: a batched one by its receipt (from this installation's journal,
    else from its window's witness in MLflow); one with a record of its own from the
    journal, else from its MLflow trace."""
    from ario_mlflow.verify.receipts import find_receipt

    if anchor is not None:
        found = find_receipt(decision_id, journal=journal, client=None, anchor=anchor)
        if found is not None:
            return _batched(decision_id, *found)
    tx_id = None
    if journal is not None:
        record = journal.latest_for(f"prediction:{decision_id}")
        if record is not None:
            tx_id = record.tx_id
    if tx_id is None:
        from ario_mlflow.lifecycle.traces import all_experiment_ids, search_traces

        found = search_traces(
            client,
            all_experiment_ids(client),
            f"tags.`ario.decision_id` = '{decision_id}'",
            max_results=1,
        )
        if not found and anchor is not None:
            batched = find_receipt(decision_id, journal=None, client=client, anchor=anchor)
            if batched is not None:
                return _batched(decision_id, *batched)
        if not found:
            raise TargetNotFoundError(f"decision {decision_id} not found")
        tags = found[0].info.tags or {}
        tx_id = tags.get(PREDICTION_TX)
        if not tx_id:
            raise NotAnchoredError(f"Decision {decision_id}: not anchored yet.")
    return Target(
        "decision",
        f"decision {decision_id}",
        tx_id,
        {"type": "mlflow_prediction", "decision_id": decision_id},
    )


def _batched(decision_id: str, receipt: Any, where: str) -> Target:
    return Target(
        "decision",
        f"decision {decision_id} (batched; receipt from {where})",
        receipt.tx_id,
        receipt=receipt,
    )


def dataset_target(client: Any, run_id: str, name: str) -> Target:
    """A dataset record tagged on a run (``ario.dataset_anchor_tx.<name>``)."""
    try:
        tags = client.get_run(run_id).data.tags
    except Exception as exc:
        if _missing(exc):
            raise TargetNotFoundError(f"run {run_id} not found") from None
        raise
    tx_id = tags.get(DATASET_TX_PREFIX + name)
    if not tx_id:
        raise NotAnchoredError(f"Run {run_id}: no anchored dataset named {name!r}.")
    return Target(
        "dataset",
        f"dataset {name} of run {run_id}",
        tx_id,
        {"type": "mlflow_dataset", "name": name},
    )
