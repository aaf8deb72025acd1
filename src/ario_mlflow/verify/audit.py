"""A model version's whole lineage, verified now: training → datasets → registration →
promotions and aliases → artifact integrity re-checked → decision statistics.

The result is the ``ario.mlflow.audit/v1`` bundle of ar-io-mlflow 0.3.0 (same keys), with
more stages and sections. A model with nothing anchored, or any failing stage, is not ok.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from ario_mlflow import tags as T
from ario_mlflow.errors import ArtifactAccessError, IntegrityError
from ario_mlflow.proof.ed25519 import key_fingerprint
from ario_mlflow.proof.envelope import verify_envelope
from ario_mlflow.verify.core import verify_proof_by_tx
from ario_mlflow.verify.targets import model_version

SCHEMA = "ario.mlflow.audit/v1"
_CHECKS = (
    "signature",
    "anchored_bytes",
    "source_of_truth",
    "ario_attestation",
    "subject",
    "chain",
    "issuer",
)


def _stage(stage: str, label: str, tx_id: str | None, verify: Any) -> dict[str, Any]:
    if not tx_id:
        return {
            "stage": stage,
            "label": label,
            "tx_id": None,
            "anchored": False,
            "checks": None,
            "ok": None,
        }
    result = verify(tx_id)
    checks = {
        name: {"ok": result[name].get("ok"), "reason": result[name].get("reason") or ""}
        for name in _CHECKS
    }
    envelope = result.get("envelope") or {}
    return {
        "stage": stage,
        "label": label,
        "tx_id": tx_id,
        "anchored": True,
        "checks": checks,
        "ok": result["overall"] is True,
        "event_type": envelope.get("event_type"),
        "signed_at": envelope.get("signed_at"),
        "public_key": envelope.get("public_key"),
    }


def _integrity(client: Any, anchor: Any, mv: Any, trusted: Sequence[str]) -> dict[str, Any]:
    from ario_mlflow.artifacts import artifact_checksums, compare_checksums
    from ario_mlflow.lineage import load_training_proof
    from ario_mlflow.registry import source_location

    if not mv.run_id:
        return {"ok": None, "reason": "no_source_run", "changed": [], "missing": [], "added": []}
    try:
        proof = load_training_proof(client, mv.run_id, arweave=anchor, trusted_keys=trusted)
    except IntegrityError as exc:
        return {"ok": False, "reason": str(exc), "changed": [], "missing": [], "added": []}
    if proof is None or not proof.artifact_checksums:
        return {
            "ok": False,
            "reason": "no anchored artifact checksums",
            "changed": [],
            "missing": [],
            "added": [],
        }
    run_id, path = source_location(client, mv.source)
    try:
        actual = artifact_checksums(
            run_id or mv.run_id,
            artifact_path=path or proof.artifact_path or "model",
            tracking_uri=client.tracking_uri,
        )
    except ArtifactAccessError as exc:
        return {"ok": False, "reason": str(exc), "changed": [], "missing": [], "added": []}
    diff = compare_checksums(proof.artifact_checksums, actual)
    return {
        "ok": diff.ok,
        "reason": "" if diff.ok else "artifacts differ from training record",
        "changed": list(diff.changed),
        "missing": list(diff.missing),
        "added": list(diff.added),
        "files": len(actual),
    }


def _decisions(client: Any, name: str, version: str) -> tuple[dict[str, Any], set[str]]:
    from ario_mlflow.traces import all_experiment_ids, search_traces

    experiments = all_experiment_ids(client)
    traces: list[Any] = []
    token = None
    while True:
        page = search_traces(
            client,
            experiments,
            f"tags.`ario.model_name` = '{name}' and tags.`ario.model_version` = '{version}'",
            max_results=500,
            page_token=token,
        )
        traces.extend(page)
        token = getattr(page, "token", None)
        if not token:
            break
    streams: dict[str, list[int]] = {}
    anchored = 0
    recorded: set[str] = set()  # TX ids and decision ids MLflow still shows
    for trace in traces:
        tags = trace.info.tags or {}
        anchored += bool(tags.get(T.PREDICTION_TX))
        recorded.update(str(tags.get(key) or "") for key in (T.PREDICTION_TX, T.DECISION_ID))
        try:
            payload = json.loads(tags.get(T.PAYLOAD_JSON) or "{}")
        except ValueError:
            continue
        if "stream_id" in payload and isinstance(payload.get("sequence"), int):
            streams.setdefault(payload["stream_id"], []).append(payload["sequence"])
    gaps = []
    for stream, sequence in sorted(streams.items()):
        seen = set(sequence)
        missing = [n for n in range(1, max(seen) + 1) if n not in seen]
        if missing:
            gaps.append({"stream_id": stream, "missing": missing[:100]})
    summary = {
        "count": len(traces),
        "anchored": anchored,
        "pending": len(traces) - anchored,
        "streams": len(streams),
        "sequence_gaps": gaps,
    }
    return summary, recorded


def _witnessed_decisions(client: Any, run_id: str | None) -> set[str]:
    """Decision ids with a payload witness on the run (decisions made without traces)."""
    if not run_id:
        return set()
    try:
        folders = client.list_artifacts(run_id, "ario/predictions")
    except Exception:  # no witnesses readable: only the traces count
        return set()
    return {str(f.path).rsplit("/", 1)[-1] for f in folders if f.is_dir}


def _missing_from_mlflow(
    anchor: Any, registration_tx: str | None, recorded: set[str], issuers: set[str]
) -> dict[str, Any]:
    """Decisions anchored on Arweave (chained to this version's registration, signed by
    the lineage's key) that MLflow no longer shows — what a sequence gap cannot reveal
    when the *newest* decisions were deleted.

    A decision whose write-back is still pending in this installation's journal is not
    missing, only late. Without a reachable GraphQL endpoint the check is ``None``.
    """
    if not registration_tx or not issuers:
        return {"ok": None, "onchain": None, "missing": [], "reason": "no registration record"}
    try:
        nodes = list(
            anchor.reader().find_transactions(
                tags={
                    "App-Name": "ar-io-mlflow",
                    "Event-Type": "prediction",
                    "Chain-Prev": registration_tx,
                    "Signer": sorted(issuers),
                }
            )
        )
    except Exception as exc:  # an unreachable or GraphQL-less gateway: unknown, not failed
        return {"ok": None, "onchain": None, "missing": [], "reason": f"graphql: {exc}"}
    journal = getattr(anchor, "journal", None)
    missing = []
    for node in nodes:
        if node.id in recorded or node.tags.get("Decision-Id") in recorded:
            continue
        if journal is not None:
            record = journal.by_tx(node.id)
            if record is not None and journal.pending_writebacks_for(record.id):
                continue  # written back later by the companion or sync
        envelope = anchor.fetch_proof(node.id)  # a forged tag proves nothing: verify it
        if (
            isinstance(envelope, dict)
            and envelope.get("public_key") in issuers
            and verify_envelope(envelope).signature_ok
        ):
            missing.append(node.id)
    return {"ok": not missing, "onchain": len(nodes), "missing": missing[:100], "reason": None}


def audit_model(
    ref: str,
    *,
    client: Any,
    anchor: Any,
    ario_client: Any = None,
    trusted_keys: Sequence[str] = (),
    min_attestation_level: int = 2,
) -> dict[str, Any]:
    """Verify every anchored stage of a model version's lineage; the audit bundle."""
    mv = model_version(client, ref)
    name = str(mv.name)
    version = str(mv.version)
    mv_tags = mv.tags or {}
    run_tags = client.get_run(mv.run_id).data.tags if mv.run_id else {}
    training_tx = run_tags.get(T.TRAINING_TX)
    registration_tx = mv_tags.get(T.REGISTRATION_TX)
    subject_mv = {"type": "mlflow_model_version", "name": name, "version": version}

    def verifier(subject: dict[str, str] | None, previous: str | None) -> Any:
        return lambda tx: verify_proof_by_tx(
            tx,
            anchor=anchor,
            mlflow_client=client,
            ario_client=ario_client,
            min_attestation_level=min_attestation_level,
            trusted_keys=trusted_keys,
            expected_subject=subject,
            expected_previous=previous,
        )

    stages = [
        _stage(
            "training",
            f"run {mv.run_id or 'unknown'}",
            training_tx,
            verifier({"type": "mlflow_run", "run_id": mv.run_id}, None),
        )
    ]
    for key in sorted(k for k in run_tags if k.startswith(T.DATASET_TX_PREFIX)):
        dataset = key[len(T.DATASET_TX_PREFIX) :]
        stages.append(
            _stage(
                "datasets",
                f"dataset {dataset}",
                run_tags[key],
                verifier({"type": "mlflow_dataset", "name": dataset}, "GENESIS"),
            )
        )
    stages.append(
        _stage(
            "registration",
            f"v{version}",
            registration_tx,
            verifier(subject_mv, training_tx or "GENESIS"),
        )
    )
    if mv_tags.get(T.PROMOTION_TX):
        stages.append(
            _stage(
                "promotion",
                str(mv.current_stage),
                mv_tags[T.PROMOTION_TX],
                verifier(subject_mv, registration_tx),
            )
        )
    for key in sorted(k for k in mv_tags if k.startswith(T.ALIAS_TX_PREFIX)):
        stages.append(
            _stage(
                "alias",
                "@" + key[len(T.ALIAS_TX_PREFIX) :],
                mv_tags[key],
                verifier(subject_mv, registration_tx),
            )
        )

    integrity = _integrity(client, anchor, mv, trusted_keys)
    decisions, recorded = _decisions(client, name, version)
    recorded |= _witnessed_decisions(client, mv.run_id)
    keys = {s["public_key"] for s in stages if s.get("public_key")}
    decisions["onchain"] = _missing_from_mlflow(anchor, registration_tx, recorded, keys)
    issuers = [
        {"public_key": k, "fingerprint": key_fingerprint(k), "pinned": k in set(trusted_keys)}
        for k in sorted(keys)
    ]
    core_anchored = bool(training_tx and registration_tx)
    overall = (
        core_anchored
        and all(s["ok"] is not False for s in stages)
        and integrity["ok"] is True
        and not decisions["sequence_gaps"]
        and decisions["onchain"]["ok"] is not False
    )
    return {
        "schema": SCHEMA,
        "model": name,
        "version": version,
        "generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "tracking_uri": os.environ.get("MLFLOW_TRACKING_URI", "./mlruns"),
        "run_id": mv.run_id or None,
        "current_stage": str(mv.current_stage),
        "artifact_hash": run_tags.get(T.ARTIFACT_HASH),
        "stages": stages,
        "artifact_integrity": integrity,
        "decisions": decisions,
        "issuers": issuers,
        "gateway": anchor.url_for("").rstrip("/"),
        "overall_ok": bool(overall),
    }
