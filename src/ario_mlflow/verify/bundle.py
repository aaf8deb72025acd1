"""Portable evidence bundles: everything needed to re-verify a model's lineage offline.

``export_bundle`` collects, for a model version, the exact anchored envelope bytes, the
exact payload bytes, receipts and TX ids into a directory (or a zip) with a manifest.
``verify_bundle`` checks a bundle with no MLflow and no network: file hashes, canonical
envelope bytes, signatures, payload hashes, subjects and chain links — and, with
``online=True``, that each TX on the gateways holds exactly the bundled envelope.

Layout::

    manifest.json                     schema ario.mlflow.evidence/v1, the record list
    records/<tx_id>/envelope.json     the exact JCS bytes anchored (= GET /raw/<tx_id>)
    records/<tx_id>/payload.bin       the exact canonical payload bytes
    records/<tx_id>/receipt.json      the upload receipt, when this installation has it
    records/<tx_id>/decisions.jsonl   a window's batched decisions (its payload.bin is the
                                      window manifest; see ``bundle_windows.py``)
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ario_mlflow._version import __version__
from ario_mlflow.arweave.gateway_reader import GatewayAnswer, GatewayReader
from ario_mlflow.errors import BundleError, EnvelopeParseError
from ario_mlflow.lifecycle.model_location import version_run_id
from ario_mlflow.lifecycle.witness import payload_paths, read_artifact
from ario_mlflow.proof import chain
from ario_mlflow.proof.canonical import canonical_json
from ario_mlflow.proof.envelope import parse_json_object
from ario_mlflow.proof.hashing import sha256_hex
from ario_mlflow.tags import (
    DECISION_ID,
    PREDICTION_TX,
    REGISTRATION_TX,
    TRAINING_TX,
)
from ario_mlflow.verify.bundle_windows import STAGE as WINDOW_STAGE
from ario_mlflow.verify.bundle_windows import check_links, check_window, export_windows
from ario_mlflow.verify.checks import check_issuer
from ario_mlflow.verify.core import verify_record
from ario_mlflow.verify.stages import find_lineage, lineage_stages
from ario_mlflow.verify.targets import model_version

SCHEMA = "ario.mlflow.evidence/v1"


# --- export ---------------------------------------------------------------------------------


def _payload_for(envelope: dict[str, Any], client: Any, run_id: str | None) -> bytes | None:
    """The record's payload witness, if MLflow still holds bytes that hash to it (a
    dataset's witness is in the training run, which its subject does not name)."""
    from ario_mlflow.verify.checks import witness_candidates

    try:
        named_run, _ = witness_candidates(envelope, client)
    except LookupError:
        named_run = None
    run = named_run or run_id
    if not run:
        return None
    for path in payload_paths(envelope):
        try:
            data = read_artifact(client, run, path)
        except Exception:
            continue
        if sha256_hex(data) == envelope.get("payload_hash"):
            return data
    return None


def _decisions(client: Any, name: str, version: str, limit: int) -> list[tuple[str, str, str]]:
    """Up to ``limit`` decisions with records of their own (``each`` mode), found by their
    traces, a page at a time (MLflow caps one search at 50,000 results)."""
    from ario_mlflow.lifecycle.traces import all_experiment_ids, search_traces

    found: list[tuple[str, str, str]] = []
    experiments = all_experiment_ids(client) if limit > 0 else []
    token = None
    while experiments and len(found) < limit:
        page = search_traces(
            client,
            experiments,
            f"tags.`ario.model_name` = '{name}' and tags.`ario.model_version` = '{version}'",
            max_results=min(limit - len(found), 1000),
            page_token=token,
        )
        for trace in page:
            tags = trace.info.tags or {}
            if tags.get(PREDICTION_TX):
                found.append(("prediction", tags.get(DECISION_ID, ""), tags[PREDICTION_TX]))
        token = getattr(page, "token", None)
        if not token or not page:
            break
    return found[:limit]


def export_bundle(
    ref: str,
    output: Path,
    *,
    client: Any,
    anchor: Any,
    decisions: int = 100,
    trusted_keys: Sequence[str] = (),
    force: bool = False,
) -> dict[str, Any]:
    """Write the evidence bundle of model version ``ref`` to ``output`` (dir or ``.zip``).

    The version is first checked as the serving gate checks it (its signed lineage, where
    MLflow says the model is, its files): a bundle of records about a model that is no
    longer the anchored one would mislead, so that refuses unless ``force``, and the
    result is recorded in the manifest (``live_check``) either way.
    """
    from ario_mlflow.verify.audit import live_integrity

    mv = model_version(client, ref)
    name = str(mv.name)
    lineage, _ = find_lineage(client, anchor, mv, trusted_keys)
    live = live_integrity(client, anchor, mv, trusted_keys)
    if live["ok"] is False and not force:
        raise BundleError(
            f"{name}/{mv.version} fails the live check ({live['reason']}); refusing to export "
            "(--force exports anyway and records the failure in the manifest)"
        )
    staging = Path(tempfile.mkdtemp(prefix="ario-bundle-"))
    try:
        records = []
        run_id = lineage.run_id if lineage else version_run_id(client, mv)
        run_tags = client.get_run(run_id).data.tags if run_id else {}
        stages = lineage_stages(
            mv,
            run_id=run_id,
            run_tags=run_tags,
            training_tx=lineage.training.tx_id if lineage else run_tags.get(TRAINING_TX),
            registration_tx=(lineage.registration_tx if lineage else None)
            or (mv.tags or {}).get(REGISTRATION_TX),
        )
        entries = [(s.stage, s.label, s.tx_id) for s in stages if s.tx_id]
        entries += _decisions(client, name, str(mv.version), decisions)
        for entry in entries:
            records.append(
                _export_record(staging, entry, client=client, anchor=anchor, run_id=run_id)
            )
        windows, truncated = export_windows(
            staging, client=client, anchor=anchor, run_id=run_id, limit=decisions
        )
        records += windows
        manifest = {
            "schema": SCHEMA,
            "generated_by": f"ar-io-mlflow {__version__}",
            "created_at": datetime.now(timezone.utc).isoformat(),
            "model": name,
            "version": str(mv.version),
            "run_id": run_id or None,
            "live_check": {k: live.get(k) for k in ("ok", "reason", "changed", "missing", "added")},
            "records": records,
            "windows_truncated": truncated,
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        _publish(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _export_record(
    staging: Path, found: tuple[str, str, str], *, client: Any, anchor: Any, run_id: str | None
) -> dict[str, Any]:
    stage, label, tx_id = found
    data = anchor.fetch_envelope_bytes(tx_id)
    journal_record = anchor.journal.by_tx(tx_id)
    if data is None and journal_record is not None:
        data = journal_record.envelope
    if data is None:
        raise BundleError(f"cannot fetch the {stage} record {tx_id}: {anchor.last_error}")
    try:
        envelope = parse_json_object(data)
    except EnvelopeParseError as exc:
        raise BundleError(f"{stage} record {tx_id} is not an envelope: {exc}") from None
    payload = _payload_for(envelope, client, run_id)
    folder = staging / "records" / tx_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "envelope.json").write_bytes(data)
    entry: dict[str, Any] = {
        "stage": stage,
        "label": label,
        "tx_id": tx_id,
        "event_type": envelope.get("event_type"),
        "envelope": f"records/{tx_id}/envelope.json",
        "envelope_sha256": sha256_hex(data),
        "payload": None,
        "payload_sha256": None,
        "receipt": None,
    }
    if payload is not None:
        (folder / "payload.bin").write_bytes(payload)
        entry["payload"] = f"records/{tx_id}/payload.bin"
        entry["payload_sha256"] = sha256_hex(payload)
    if journal_record is not None and journal_record.receipt:
        (folder / "receipt.json").write_text(json.dumps(journal_record.receipt, indent=2))
        entry["receipt"] = f"records/{tx_id}/receipt.json"
    return entry


def _publish(staging: Path, output: Path) -> None:
    try:
        _copy_out(staging, output)
    except OSError as exc:  # a file where a directory must be, no permission, disk full
        raise BundleError(f"cannot write the bundle to {output}: {exc.strerror or exc}") from None


def _copy_out(staging: Path, output: Path) -> None:
    if output.suffix == ".zip":
        output.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(staging.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(staging).as_posix())
        return
    if output.exists() and any(output.iterdir()):
        raise BundleError(f"{output} exists and is not empty")
    output.mkdir(parents=True, exist_ok=True)
    for path in staging.rglob("*"):
        target = output / path.relative_to(staging)
        if path.is_dir():
            target.mkdir(exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


# --- verification ------------------------------------------------------------------------------


class _Bundle:
    """Read access to a bundle directory or zip, by relative path."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._zip = zipfile.ZipFile(path) if path.suffix == ".zip" else None
        except (OSError, zipfile.BadZipFile) as exc:
            raise BundleError(f"{path} is not a readable zip archive: {exc}") from None

    def read(self, relative: str) -> bytes:
        if ".." in Path(relative).parts or relative.startswith("/"):
            raise BundleError(f"manifest path {relative!r} leaves the bundle")
        try:
            if self._zip is not None:
                return self._zip.read(relative)
            return (self.path / relative).read_bytes()
        except (KeyError, OSError) as exc:
            raise BundleError(f"bundle file {relative} is missing: {exc}") from None
        except (ValueError, EOFError, RuntimeError, zipfile.BadZipFile, zlib.error) as exc:
            # a NUL in the path, a corrupt or encrypted zip member
            raise BundleError(f"bundle file {relative!r} cannot be read: {exc}") from None


def _manifest_records(manifest: Any) -> list[dict[str, Any]]:
    """The record entries of a parsed manifest, checked for the fields verification reads."""
    if not isinstance(manifest, dict):
        raise BundleError(f"manifest.json holds a JSON {type(manifest).__name__}, not an object")
    if manifest.get("schema") != SCHEMA:
        raise BundleError(f"not an evidence bundle (schema {manifest.get('schema')!r})")
    records = manifest.get("records", [])
    if not isinstance(records, list):
        raise BundleError("manifest.json: 'records' is not a list")
    for index, entry in enumerate(records):
        if not isinstance(entry, dict):
            raise BundleError(f"manifest.json: record {index} is not an object")
        for name in ("stage", "tx_id", "envelope"):
            if not isinstance(entry.get(name), str) or not entry[name]:
                raise BundleError(f"manifest.json: record {index} has no {name!r} string")
        if entry.get("payload") is not None and not isinstance(entry["payload"], str):
            raise BundleError(f"manifest.json: record {index} 'payload' is not a path string")
    return records


def _verify_entry(
    bundle: _Bundle, entry: dict[str, Any], manifest: dict[str, Any], trusted: Sequence[str]
) -> dict[str, Any]:
    problems: list[str] = []
    envelope_bytes = bundle.read(entry["envelope"])
    if sha256_hex(envelope_bytes) != entry.get("envelope_sha256"):
        problems.append("envelope file differs from the manifest hash")
    payload_bytes = bundle.read(entry["payload"]) if entry.get("payload") else None
    if payload_bytes is not None and sha256_hex(payload_bytes) != entry.get("payload_sha256"):
        problems.append("payload file differs from the manifest hash")
    try:
        envelope = parse_json_object(envelope_bytes)
    except EnvelopeParseError as exc:
        return {**entry, "ok": False, "problems": [f"envelope: {exc.reason}"]}
    if canonical_json(envelope) != envelope_bytes:
        problems.append("envelope bytes are not canonical JCS")
    subject = {
        "type": "mlflow_model_version",
        "name": str(manifest.get("model")),
        "version": str(manifest.get("version")),
    }
    expected = subject if entry["stage"] in ("registration", "promotion", "alias") else None
    result = verify_record(envelope, payload_bytes, trusted_keys=trusted, expected_subject=expected)
    for name in ("signature", "anchored_bytes", "subject", "issuer"):
        if result[name].get("ok") is False:
            problems.append(f"{name}: {result[name].get('reason')}")
    if payload_bytes is None and entry.get("event_type") != "dataset":
        problems.append("no payload bytes in the bundle")
    try:
        payload = parse_json_object(payload_bytes) if payload_bytes is not None else {}
    except EnvelopeParseError:
        payload = {}  # its hash is checked above; the links below then find nothing in it
    return {
        **entry,
        "ok": not problems,
        "problems": problems,
        "envelope_obj": envelope,
        "payload_obj": payload,
        "issuer": result["issuer"],
    }


def verify_bundle(
    path: Path, *, trusted_keys: Sequence[str] = (), online: bool = False, anchor: Any = None
) -> dict[str, Any]:
    """Check a bundle offline (and, with ``online``, against the gateways).

    ``verdict`` is ``pass``, ``fail`` (a check failed: the record is not what it claims)
    or ``unchecked`` (every offline check passed but, with ``online``, no gateway could be
    asked about some record: unreachable is not tampering); ``ok`` is True only for
    ``pass``, since an online check that was asked for and could not run proves nothing.
    ``online`` counts the records per online state, with the first reason a record was
    not checked (None without ``online``).
    """
    bundle = _Bundle(path)
    try:
        manifest = json.loads(bundle.read("manifest.json"))
    except (ValueError, RecursionError) as exc:
        raise BundleError(f"manifest.json is not JSON: {exc}") from None
    results = [
        _verify_entry(bundle, entry, manifest, trusted_keys)
        for entry in _manifest_records(manifest)
    ]
    by_stage: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        by_stage.setdefault(result["stage"], []).append(result)
    # A lineage without its training or registration record proves nothing about the model.
    bundle_problems = [
        f"the bundle needs exactly one {stage} record, it has {len(by_stage.get(stage, []))}"
        for stage in ("training", "registration")
        if len(by_stage.get(stage, [])) != 1
    ]
    live = manifest.get("live_check")
    if isinstance(live, dict) and live.get("ok") is False:
        bundle_problems.append(
            f"exported with --force although the model failed the live check: {live.get('reason')}"
        )
    training_record = by_stage.get("training", [{}])[0]
    registration_record = by_stage.get("registration", [{}])[0]
    reader: GatewayReader | None = None
    down: dict[str, str] = {}  # gateways that gave no answer, and why
    for result in results:
        _check_links(result, manifest, training_record, registration_record, bundle.read)
        if online:
            if reader is None:
                if anchor is None:
                    from ario_mlflow.outbox.anchor import ArweaveAnchor

                    anchor = ArweaveAnchor()
                reader = anchor.reader()
            _check_online(result, bundle.read(result["envelope"]), reader, down)
    check_links(
        [r for r in results if r["stage"] == WINDOW_STAGE and "envelope_obj" in r],
        bool(manifest.get("windows_truncated")),
    )
    keys = sorted(
        {r["issuer"]["public_key"] for r in results if r.get("issuer", {}).get("public_key")}
    )
    for result in results:
        result.pop("envelope_obj", None)
        result.pop("payload_obj", None)
    if not results or bundle_problems or any(r["ok"] is False for r in results):
        verdict = "fail"
    elif any(r["ok"] is None for r in results):
        verdict = "unchecked"  # every offline check passed; the gateways could not be asked
    else:
        verdict = "pass"
    return {
        "bundle": str(path),
        "model": manifest.get("model"),
        "version": manifest.get("version"),
        "records": results,
        "problems": bundle_problems,
        "issuers": [check_issuer({"public_key": k}, trusted_keys) for k in keys],
        "verdict": verdict,
        "ok": verdict == "pass",
        "online": _online_summary(results) if online else None,
    }


def _check_links(
    result: dict[str, Any],
    manifest: dict[str, Any],
    training_record: dict[str, Any],
    registration_record: dict[str, Any],
    read: Any,
) -> None:
    """What binds ``result`` to the rest of the bundle: its chain link, its subject and,
    for a window, its decisions, model version and registration (flags ``result``)."""
    envelope = result.get("envelope_obj") or {}
    training, registration = training_record.get("tx_id"), registration_record.get("tx_id")
    problems = []
    event_type = chain.STAGE_EVENTS.get(result["stage"])
    expected = event_type and chain.expected_previous(
        event_type, training_tx=training, registration_tx=registration
    )
    if expected and envelope.get("previous_hash") != expected:
        problems.append(
            f"chain_link_broken: previous_hash {envelope.get('previous_hash')!r}, "
            f"expected {expected!r}"
        )
    problem = _subject_problem(result, manifest, training_record, registration_record)
    if problem:
        problems.append(problem)
    if result["stage"] == WINDOW_STAGE and "envelope_obj" in result:
        problems += check_window(
            result,
            read,
            model=(str(manifest.get("model")), str(manifest.get("version"))),
            registration_tx=registration,
        )
    if problems:
        result["ok"] = False
        result["problems"] += problems


def _online_summary(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """How many records each online state has, and why the first unchecked one was not
    checked: the bundle-wide line a reader needs when the gateways were down."""
    states = [r.get("online", {}).get("state", "unchecked") for r in results]
    counts = {s: states.count(s) for s in ("verified", "differs", "missing", "unchecked")}
    reason = next(
        (r["online"]["reason"] for r in results if r.get("online", {}).get("ok") is None), None
    )
    return {**counts, "unchecked_reason": reason}


def _check_online(
    result: dict[str, Any], bundled: bytes, reader: GatewayReader, down: dict[str, str]
) -> None:
    """Ask the gateways whether ``result``'s TX holds exactly the bundled envelope bytes.

    Sets ``result["online"]`` (see :func:`_online_verdict`). Only an answer about the TX
    (other bytes, or "not found" from every gateway) fails the record; when no gateway
    could be asked the record is not checked online (``ok`` None unless an offline check
    failed), which is no tamper verdict. ``down`` keeps the gateways that gave no answer,
    so the records after the first are not made to wait out every timeout again.
    """
    from ario_mlflow.arweave.gateway_reader import check_tx_id
    from ario_mlflow.errors import GatewayError

    try:
        check_tx_id(result["tx_id"])
    except GatewayError as exc:  # no gateway can hold it: asking would prove nothing more
        reason = f"no gateway can hold this TX: {exc}"
        result["online"] = {"state": "missing", "ok": False, "reason": reason, "answers": []}
        result["ok"] = False
        result["problems"].append(f"online: {reason}")
        return
    answers: list[GatewayAnswer] = []
    for base in reader.gateways:
        if base in down:
            answers.append(GatewayAnswer(base, reached=False, error=down[base]))
            continue
        answer = reader.answer_from(base, result["tx_id"])
        if not answer.reached:
            down[base] = answer.error or "no answer"
        answers.append(answer)
        if answer.data == bundled:
            break
    online = _online_verdict(answers, bundled)
    result["online"] = online
    if online["ok"] is False:
        result["ok"] = False
        result["problems"].append(f"online: {online['reason']}")
    elif online["ok"] is None and result["ok"] is True:
        result["ok"] = None


def _online_verdict(answers: Sequence[GatewayAnswer], bundled: bytes) -> dict[str, Any]:
    """``state`` ``verified`` (a gateway serves these bytes), ``differs`` (a gateway serves
    other bytes for the TX: the bundled record is not the anchored one), ``missing``
    (every gateway answered "not found") or ``unchecked`` (no gateway gave an answer about
    the TX: unreachable, timed out, an error); ``ok`` True, False, False, None."""
    per_gateway = [
        {
            "gateway": a.gateway,
            "reached": a.reached,
            "status": a.status,
            "same_bytes": None if a.data is None else a.data == bundled,
            "error": a.error,
        }
        for a in answers
    ]
    verdict: dict[str, Any] = {"answers": per_gateway}
    served = next((a.gateway for a in answers if a.data == bundled), None)
    if served is not None:
        return {"state": "verified", "ok": True, "reason": None, "gateway": served, **verdict}
    other = [a.gateway for a in answers if a.data is not None]
    if other:
        reason = (
            f"{', '.join(other)} {'serves' if len(other) == 1 else 'serve'} other bytes for "
            "this TX: the bundled record is not the one anchored"
        )
        return {"state": "differs", "ok": False, "reason": reason, **verdict}
    if answers and all(a.status == 404 for a in answers):
        reason = f"no gateway holds this TX (HTTP 404 from {', '.join(a.gateway for a in answers)})"
        return {"state": "missing", "ok": False, "reason": reason, **verdict}
    if not answers:
        why = "no gateways configured (ARIO_MLFLOW_GATEWAYS)"
    else:
        why = "; ".join(_why_unanswered(a) for a in answers)
    return {"state": "unchecked", "ok": None, "reason": f"not checked: {why}", **verdict}


def _why_unanswered(answer: GatewayAnswer) -> str:
    """One gateway's non-answer as a short phrase: "could not reach URL (why)"."""
    error = re.sub(r"^[a-z]+://\S+?: ", "", answer.error or "no answer", count=1)
    error = re.sub(r"\[Errno -?\d+\] ", "", error)
    if not answer.reached:
        return f"could not reach {answer.gateway} ({error})"
    if answer.status == 404:
        return f"{answer.gateway} does not have it (HTTP 404)"
    return f"{answer.gateway} answered with an error ({error})"


def _subject_problem(
    result: dict[str, Any],
    manifest: dict[str, Any],
    training: dict[str, Any],
    registration: dict[str, Any],
) -> str | None:
    """The training record must be about the registration's source run, and a decision
    about this model version and that run (another run's or version's valid record, filed
    under this lineage's TX ids, passes every per-record check)."""
    stage = result["stage"]
    subject = (result.get("envelope_obj") or {}).get("subject") or {}
    if stage == "training":
        source_run = (registration.get("payload_obj") or {}).get("source_run_id")
        if subject.get("type") != "mlflow_run" or subject.get("run_id") != source_run:
            return (
                f"subject_mismatch: training record is about run_id={subject.get('run_id')!r} "
                f"not run_id={source_run!r} (the registration's source run)"
            )
    if stage == "prediction":
        payload = result.get("payload_obj") or {}
        training_run = ((training.get("envelope_obj") or {}).get("subject") or {}).get("run_id")
        name, version = str(manifest.get("model")), str(manifest.get("version"))
        if (
            subject.get("type") != "mlflow_prediction"
            or subject.get("model_run_id") != training_run
            or payload.get("decision_id") != subject.get("decision_id")
            or str(payload.get("model_name")) != name
            or str(payload.get("model_version")) != version
        ):
            return (
                f"subject_mismatch: decision {subject.get('decision_id')!r} is not about "
                f"{name}/{version} and run {training_run!r}"
            )
    return None
