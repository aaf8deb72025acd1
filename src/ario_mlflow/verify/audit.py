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

from ario_mlflow.arweave.gateway_reader import GatewayReader
from ario_mlflow.errors import ArtifactAccessError, IntegrityError
from ario_mlflow.lifecycle.alias_records import latest_record, model_alias_timelines, pointed_at
from ario_mlflow.lifecycle.lineage import (
    ModelProof,
    fetch_checked_envelope,
    run_training_tx,
)
from ario_mlflow.lifecycle.model_files import check_model_files
from ario_mlflow.lifecycle.model_location import check_version_location, version_run_id
from ario_mlflow.lifecycle.uris import recorded_uri
from ario_mlflow.lifecycle.witness import WITNESS_ROOT, decision_dir, read_artifact
from ario_mlflow.proof.canonical import canonical_json
from ario_mlflow.proof.checks import record_problem
from ario_mlflow.proof.ed25519 import key_fingerprint
from ario_mlflow.proof.envelope import verify_envelope
from ario_mlflow.proof.hashing import sha256_hex
from ario_mlflow.tags import (
    ARTIFACT_HASH,
    PAYLOAD_JSON,
    PREDICTION_TX,
    REGISTRATION_TX,
)
from ario_mlflow.verify.core import verify_proof_by_tx
from ario_mlflow.verify.stages import find_lineage, lineage_stages
from ario_mlflow.verify.targets import model_version, parse_model_ref
from ario_mlflow.verify.window_audit import audit_windows

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


def _no_integrity(ok: bool | None, reason: str) -> dict[str, Any]:
    return {"ok": ok, "reason": reason, "changed": [], "missing": [], "added": []}


def _integrity(
    client: Any, mv: Any, lineage: ModelProof | None, problem: str | None
) -> dict[str, Any]:
    """The version's files, where its signed lineage says they are, against that lineage."""
    if problem is not None:
        return _no_integrity(False, problem)
    if lineage is None:
        if not version_run_id(client, mv):
            return _no_integrity(None, "no_source_run")
        return _no_integrity(False, "no anchored training record")
    if not lineage.training.artifact_checksums:
        return _no_integrity(False, "no anchored artifact checksums")
    try:
        check_version_location(client, mv, lineage.run_id, lineage.artifact_path)
        files = check_model_files(lineage, tracking_uri=client.tracking_uri)
    except (ArtifactAccessError, IntegrityError) as exc:
        return _no_integrity(False, str(exc))
    return {
        "ok": files.ok,
        "reason": "" if files.ok else "artifacts differ from training record",
        "changed": list(files.diff.changed),
        "missing": list(files.diff.missing),
        "added": list(files.diff.added),
        "files": len(files.checksums),
    }


def live_integrity(
    client: Any, anchor: Any, mv: Any, trusted_keys: Sequence[str]
) -> dict[str, Any]:
    """The serving gate's verdict on a version now: lineage, location, files."""
    lineage, problem = find_lineage(client, anchor, mv, trusted_keys)
    return _integrity(client, mv, lineage, problem)


def _decision_traces(client: Any, name: str, version: str) -> list[Any]:
    from ario_mlflow.lifecycle.traces import all_experiment_ids, search_traces

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
            return traces


def _onchain_decisions(
    anchor: Any, registration_tx: str | None, issuers: set[str]
) -> tuple[dict[str, Any], list[Any]]:
    """Every decision record chained to the registration and signed by the lineage's key,
    combined over *all* gateways: ``(completeness, nodes)``.

    A gateway counts only if it answered and its index holds the registration itself (an
    empty answer from a gateway that indexes nothing proves nothing). Completeness is
    ``None`` when no gateway could say.
    """
    status: dict[str, Any] = {"complete": None, "gateways": [], "unchecked": {}}
    if not registration_tx or not issuers:
        status["unchecked"]["-"] = "no registration record"
        return status, []
    reader = anchor.reader()
    try:
        probe = reader.search_everywhere(ids=[registration_tx])
    except Exception as exc:
        status["unchecked"]["-"] = f"graphql: {exc}"
        return status, []
    indexed = {g for n in probe.nodes for g in n.gateways} if probe.nodes else set()
    status["unchecked"].update(probe.failed)
    for base in probe.answered:
        if base not in indexed:
            status["unchecked"][base] = "its index does not hold the registration record"
    good = [g for g in reader.gateways if g in indexed]
    if not good:
        return status, []
    found = GatewayReader(good, transport=reader.transport, timeout=reader.timeout)
    result = found.search_everywhere(
        tags={
            "App-Name": "ar-io-mlflow",
            "Event-Type": "prediction",
            "Chain-Prev": registration_tx,
            "Signer": sorted(issuers),
        }
    )
    status["unchecked"].update(result.failed)
    status["gateways"] = list(result.answered)
    status["complete"] = bool(result.answered) or None
    return status, result.nodes


def _mirror(tags: dict[str, str]) -> tuple[bytes, dict[str, Any]] | None:
    text = tags.get(PAYLOAD_JSON)
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    data = text.encode("utf-8")
    if not isinstance(value, dict) or canonical_json(value) != data:
        return None
    return data, value


def _decisions(
    client: Any,
    anchor: Any,
    name: str,
    version: str,
    *,
    run_id: str | None,
    chain: dict[str, Any],
) -> dict[str, Any]:
    """What MLflow shows of the version's decisions, each one *verified* against the
    anchored records (its bytes against the record's payload hash), not merely named."""
    registration_tx = chain["registration_tx"]
    completeness, nodes = _onchain_decisions(anchor, registration_tx, chain["issuers"])
    by_decision = {n.tags.get("Decision-Id"): n for n in nodes if n.tags.get("Decision-Id")}
    traces = _decision_traces(client, name, version)
    verified: set[str] = set()  # TX ids whose content MLflow still holds, checked
    unverified: list[dict[str, str]] = []
    streams: dict[str, list[int]] = {}
    for trace in traces:
        tags = trace.info.tags or {}
        tx_id = str(tags.get(PREDICTION_TX) or "")
        mirror = _mirror(tags)
        why = (
            "no canonical payload mirror"
            if mirror is None
            else "not anchored"
            if not tx_id
            else "a second trace of the same decision"
            if tx_id in verified
            else _decision_problem(anchor, tx_id, mirror[0], mirror[1].get("decision_id"), chain)
        )
        if why is not None:
            if tx_id or mirror is not None:
                unverified.append(
                    {"trace_id": str(getattr(trace.info, "trace_id", "")), "why": why}
                )
            continue
        assert mirror is not None
        verified.add(tx_id)
        payload = mirror[1]
        if "stream_id" in payload and isinstance(payload.get("sequence"), int):
            streams.setdefault(payload["stream_id"], []).append(payload["sequence"])
    for decision, node in by_decision.items():  # decisions made without traces
        if node.id in verified:
            continue
        data = _witness(client, run_id, str(decision))
        if data is not None and not _decision_problem(anchor, node.id, data, decision, chain):
            verified.add(node.id)
    gaps = []
    for stream, sequence in sorted(streams.items()):
        seen = set(sequence)
        missing = [n for n in range(1, max(seen) + 1) if n not in seen]
        if missing:
            gaps.append({"stream_id": stream, "missing": missing[:100]})
    anchored = sum(1 for t in traces if (t.info.tags or {}).get(PREDICTION_TX))
    return {
        "count": len(traces),
        "anchored": anchored,
        "pending": len(traces) - anchored,
        "verified": len(verified),
        "unverified": unverified[:100],
        "streams": len(streams),
        "sequence_gaps": gaps,
        "onchain": _missing_from_mlflow(anchor, nodes, verified, chain["issuers"], completeness),
    }


def _witness(client: Any, run_id: str | None, decision: str) -> bytes | None:
    """The run's payload witness of ``decision``, if it has one."""
    if not run_id:
        return None
    try:
        return read_artifact(
            client, run_id, f"{WITNESS_ROOT}/{decision_dir(decision)}/payload.json"
        )
    except Exception:
        return None


def _decision_problem(
    anchor: Any, tx_id: str, data: bytes, decision: Any, chain: dict[str, Any]
) -> str | None:
    """Why the payload bytes MLflow shows for ``decision`` are not those of the signed
    decision record ``tx_id`` of this version's lineage (``None``: they are)."""

    def check(envelope: dict[str, Any]) -> str | None:
        problem = record_problem(
            envelope,
            event_type="prediction",
            subject={"type": "mlflow_prediction"},
            trusted_keys=sorted(chain["issuers"]),
        )
        if problem is not None:
            return problem
        if envelope.get("previous_hash") != chain["registration_tx"]:
            return "not a decision record of this version"
        return None

    try:
        envelope = fetch_checked_envelope(tx_id, anchor, check)
    except IntegrityError as exc:  # ProofUnavailableError included
        return f"its TX does not check out ({exc})"
    if (envelope.get("subject") or {}).get("decision_id") != decision:
        return "the TX records another decision"
    if envelope.get("payload_hash") != sha256_hex(data):
        return "mirror bytes differ from the anchored payload"
    return None


def _missing_from_mlflow(
    anchor: Any,
    nodes: list[Any],
    verified: set[str],
    issuers: set[str],
    completeness: dict[str, Any],
) -> dict[str, Any]:
    """Decisions anchored on Arweave that MLflow no longer shows (or shows altered) — what
    a sequence gap cannot reveal when the *newest* decisions were deleted.

    A decision whose write-back is still pending in this installation's journal is late,
    not missing. A forged index entry proves nothing: each is fetched and verified.
    """
    base = {
        "gateways": completeness["gateways"],
        "unchecked": completeness["unchecked"],
    }
    if completeness["complete"] is None:
        reasons = "; ".join(f"{k}: {v}" for k, v in completeness["unchecked"].items())
        return {"ok": None, "onchain": None, "missing": [], "reason": reasons or "unknown", **base}
    journal = getattr(anchor, "journal", None)
    missing = []
    for node in nodes:
        if node.id in verified:
            continue
        if journal is not None:
            record = journal.by_tx(node.id)
            if record is not None and journal.pending_writebacks_for(record.id):
                continue  # written back later by the companion or sync
        envelope = anchor.fetch_proof(node.id)
        if (
            isinstance(envelope, dict)
            and envelope.get("public_key") in issuers
            and verify_envelope(envelope).signature_ok
        ):
            missing.append(node.id)
    return {
        "ok": not missing,
        "onchain": len(nodes),
        "missing": missing[:100],
        "reason": None,
        **base,
    }


def _alias_stage(alias: str, version: str, timeline: dict[str, Any]) -> dict[str, Any]:
    """``NAME@ALIAS`` is only as good as the record that moved the alias there: the
    alias's verified history must end with a record pointing it at this version."""
    stage: dict[str, Any] = {"stage": "alias_current", "label": f"@{alias}", "anchored": True}

    def verdict(ok: bool, reason: str, tx: str | None) -> dict[str, Any]:
        checks = {"alias_current": {"ok": ok, "reason": reason}}
        return {**stage, "ok": ok, "reason": reason, "tx_id": tx, "checks": checks}

    if timeline["problems"]:
        return verdict(False, "alias_record_invalid: " + " | ".join(timeline["problems"]), None)
    last = latest_record(timeline)
    if last is None:
        reason = (
            f"alias_unrecorded: @{alias} points at v{version}, and no alias_changed record says so"
        )
        return verdict(False, reason, None)
    if last["version"] != version or timeline["periods"][-1] is not last:
        reason = (
            f"alias_unrecorded: @{alias} points at v{version}, but its latest alias_changed "
            f"record ({last['tx_id']}, {last['from']}) points it at {pointed_at(last['version'])}"
        )
        return verdict(False, reason, last["tx_id"])
    return {**verdict(True, "", last["tx_id"]), "signed_at": last["from"]}


def audit_model(
    ref: str,
    *,
    client: Any,
    anchor: Any,
    ario_client: Any = None,
    trusted_keys: Sequence[str] = (),
    min_attestation_level: int = 2,
    accept_unchecked_completeness: bool = False,
) -> dict[str, Any]:
    """Verify every anchored stage of a model version's lineage; the audit bundle.

    For ``NAME@ALIAS`` the alias itself is a stage. Decisions are counted only when their
    bytes match an anchored record; the search for deleted ones combines every gateway,
    and an audit whose search could not run is not ok unless
    ``accept_unchecked_completeness`` (the verdict says so either way).
    """
    mv = model_version(client, ref)
    name = str(mv.name)
    version = str(mv.version)
    mv_tags = mv.tags or {}
    lineage, problem = find_lineage(client, anchor, mv, trusted_keys)
    run_id = lineage.run_id if lineage else version_run_id(client, mv)
    run_tags = client.get_run(run_id).data.tags if run_id else {}
    # The signed lineage says which records to verify; hints only where it has nothing.
    journal = getattr(anchor, "journal", None)
    training_tx = (
        lineage.training.tx_id if lineage else run_training_tx(run_tags, journal, run_id or "")
    )
    registration_tx = (lineage.registration_tx if lineage else None) or mv_tags.get(REGISTRATION_TX)

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
            record.stage,
            record.label,
            record.tx_id,
            verifier(record.expected_subject, record.expected_previous),
        )
        for record in lineage_stages(
            mv,
            run_id=run_id,
            run_tags=run_tags,
            training_tx=training_tx,
            registration_tx=registration_tx,
        )
    ]

    timelines = model_alias_timelines(client, anchor, name, version, tuple(trusted_keys))
    selector = parse_model_ref(ref)[1]
    if selector.startswith("@"):
        alias = selector[1:]
        stages.append(_alias_stage(alias, version, timelines[alias]))
    integrity = _integrity(client, mv, lineage, problem)
    keys = {s["public_key"] for s in stages if s.get("public_key")}
    decisions = _decisions(
        client,
        anchor,
        name,
        version,
        run_id=run_id,
        chain={"registration_tx": registration_tx, "issuers": keys},
    )
    batched = audit_windows(
        client,
        anchor,
        name=name,
        version=version,
        run_id=run_id,
        registration_tx=registration_tx,
        issuers=keys,
        journal=journal,
    )
    decisions["batched"] = batched
    decisions["verified"] += batched["verified"]
    decisions["count"] += batched["decisions"]  # in windows, so anchored (or flagged)
    decisions["anchored"] += batched["decisions"]
    completeness_unchecked = decisions["onchain"]["ok"] is None or (
        bool(batched["windows"]) and batched["ok"] is None
    )
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
        and (accept_unchecked_completeness or not completeness_unchecked)
        and not decisions["unverified"]
        and batched["ok"] is not False
        and not any(t["problems"] for t in timelines.values())
    )
    decisions["completeness"] = (
        "checked"
        if not completeness_unchecked
        else "unchecked, accepted by the user"
        if accept_unchecked_completeness
        else "unchecked: the audit cannot say that no decision was deleted"
    )
    return {
        "schema": SCHEMA,
        "model": name,
        "version": version,
        "generated_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "tracking_uri": recorded_uri(os.environ.get("MLFLOW_TRACKING_URI", "./mlruns")),
        "run_id": run_id or None,
        "current_stage": str(mv.current_stage),
        "artifact_hash": run_tags.get(ARTIFACT_HASH),
        "stages": stages,
        "artifact_integrity": integrity,
        "decisions": decisions,
        "issuers": issuers,
        "alias_history": timelines,
        "gateway": anchor.url_for("").rstrip("/"),
        "overall_ok": bool(overall),
    }
