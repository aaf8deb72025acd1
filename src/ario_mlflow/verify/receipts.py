"""Verifying a batched decision: its inclusion receipt against the anchored window.

A receipt is found in this installation's journal, or rebuilt from the window witness in
MLflow; either way it is only a claim. The trust root is the window record fetched from
the gateways by its TX id: the receipt's envelope must be that record, its manifest must
hash to the record's ``payload_hash``, and the decision's bytes must lead through the
audit path to the manifest's root. MLflow's copy of the window is then compared too
(``source_of_truth``), so that an edited witness is reported, not trusted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from ario_mlflow.errors import NotAnchoredError
from ario_mlflow.lifecycle.witness import WindowWitness, read_window, window_folders
from ario_mlflow.proof.envelope import parse_json_object
from ario_mlflow.proof.hashing import sha256_hex
from ario_mlflow.proof.windows import Receipt, receipt_in_window, receipt_problem, window_subject
from ario_mlflow.verify.checks import (
    DEFAULT_MIN_ATTESTATION_LEVEL,
    check_chain,
    check_issuer,
    check_subject,
    verify_ario_attestation,
    verify_signature,
)

_NEEDED = ("signature", "anchored_bytes", "inclusion")


def receipt_from_window(window: WindowWitness, decision_id: str, envelope: Any) -> Receipt | None:
    """The receipt of ``decision_id`` built from a window witness, if it holds it."""
    needle = f'"decision_id":"{decision_id}"'.encode()
    for index, payload in enumerate(window.payloads):
        if needle in payload and window.tx_id:
            return receipt_in_window(
                window.payloads,
                index,
                manifest_bytes=window.manifest_bytes,
                envelope=envelope if isinstance(envelope, dict) else {},
                tx_id=window.tx_id,
            )
    return None


def _anchored_runs(client: Any) -> list[str]:
    """Runs whose model was anchored (the runs a served model's windows are logged to)."""
    runs: list[str] = []
    experiments = [e.experiment_id for e in client.search_experiments()]
    token = None
    while experiments:
        page = client.search_runs(
            experiments, "tags.`ario.training_tx` != ''", max_results=1000, page_token=token
        )
        runs += [run.info.run_id for run in page]
        token = getattr(page, "token", None)
        if not token:
            break
    return runs


def _mlflow_windows(client: Any) -> Iterator[tuple[str, WindowWitness]]:
    """``(run id, window witness)`` of every window on an anchored run (an auditor with no
    journal: the slow way, a read per window)."""
    for run_id in _anchored_runs(client):
        for stream_id, first, last in window_folders(client, run_id):
            yield run_id, read_window(client, run_id, stream_id, first, last)


def decisions_in_trace(trace_id: str, *, journal: Any, client: Any) -> list[str]:
    """The batched decisions made inside the caller's MLflow trace ``trace_id`` (their
    payloads name it): from the journal, else from the window witnesses in MLflow."""
    needle = f'"mlflow_trace_id":{json.dumps(trace_id)}'
    if journal is not None:
        rows = journal.connection().execute(
            "SELECT decision_id FROM leaves WHERE instr(payload, ?) > 0 ORDER BY stream_id, seq",
            (needle.encode(),),
        )
        found = [str(row[0]) for row in rows]
        if found:
            return found
    if client is None:
        return []
    return [
        str(json.loads(payload).get("decision_id"))
        for _, window in _mlflow_windows(client)
        for payload in window.payloads
        if needle.encode() in payload
    ]


def find_receipt(
    decision_id: str, *, journal: Any, client: Any, anchor: Any
) -> tuple[Receipt, str] | None:
    """``(receipt, where it was found)`` of a batched decision, or None when it is not a
    batched decision known here. ``NotAnchoredError`` while its window is not closed."""
    from ario_mlflow.outbox.leaves import decision_window, receipt_for

    if journal is not None:
        found = decision_window(journal, decision_id)
        if found is not None:
            receipt = receipt_for(journal, decision_id)
            if receipt is None:
                raise NotAnchoredError(
                    f"Decision {decision_id}: spooled, its window is not closed yet "
                    "(run 'ar-io-mlflow sync')"
                )
            return receipt, "journal"
    if client is None:
        return None
    for run_id, window in _mlflow_windows(client):
        if not any(decision_id.encode() in p for p in window.payloads):
            continue
        envelope = anchor.fetch_proof(window.tx_id) if window.tx_id else None
        receipt = receipt_from_window(window, decision_id, envelope)
        if receipt is not None:
            return receipt, f"MLflow run {run_id} {window.folder}"
    return None


def _source_of_truth(receipt: Receipt, client: Any) -> dict[str, Any]:
    """MLflow's copy of the window must hold these exact bytes at this place."""
    if client is None:
        return {"ok": None, "reason": "no_mlflow_client"}
    manifest = receipt.manifest
    run_id = manifest.get("run_id")
    first, last = manifest.get("first_seq"), manifest.get("last_seq")
    if not isinstance(run_id, str) or not isinstance(first, int) or not isinstance(last, int):
        return {"ok": None, "reason": "window_not_on_a_run"}
    try:
        window = read_window(client, run_id, str(manifest.get("stream_id")), first, last)
    except Exception as exc:
        return {"ok": False, "reason": f"window_witness_missing: {exc}"}
    index = receipt.leaf_index
    held = window.payloads[index] if index < len(window.payloads) else None
    if held != receipt.payload_bytes:
        return {
            "ok": False,
            "reason": f"live_mlflow_mismatch: the window witness {window.folder} holds other "
            f"bytes for decision {index + 1} of the window (edited or deleted)",
        }
    if sha256_hex(window.manifest_bytes) != receipt.envelope.get("payload_hash"):
        return {"ok": False, "reason": f"live_mlflow_mismatch: {window.folder}/manifest.json"}
    return {"ok": True, "witness": window.folder}


def _registration_link(receipt: Receipt, client: Any) -> dict[str, Any]:
    """The window's manifest must name the model version's registration record."""
    from ario_mlflow.verify.targets import model_target

    named = receipt.manifest.get("registration_tx")
    if client is None:
        return {"ok": None, "reason": "chain_link_unknown", "registration_tx": named}
    name, version = receipt.manifest.get("model_name"), receipt.manifest.get("model_version")
    try:
        expected = model_target(client, f"{name}/{version}").tx_id
    except Exception as exc:
        return {"ok": None, "reason": f"chain_link_unknown: {exc}", "registration_tx": named}
    if named != expected:
        return {
            "ok": False,
            "reason": f"chain_link_broken: the window names registration {named!r}, model "
            f"version {name}/{version} was registered by {expected!r}",
        }
    return {"ok": True, "registration_tx": named}


def _offline_checks(
    anchored: dict[str, Any],
    receipt: Receipt,
    trusted_keys: Sequence[str],
    expected_model: tuple[str, str] | None,
) -> tuple[dict[str, Any], str | None]:
    """The checks that need no network and no MLflow, of ``receipt`` read against the
    window record ``anchored``; and the inclusion problem (None: included)."""
    same = anchored == receipt.envelope
    on_record = Receipt(**{**receipt.__dict__, "envelope": anchored})
    problem = receipt_problem(on_record)
    manifest = on_record.manifest
    stream = str(manifest.get("stream_id"))
    expected = window_subject(*expected_model, stream) if expected_model else None
    hashed = sha256_hex(receipt.manifest_bytes) == anchored.get("payload_hash")
    bytes_check: dict[str, Any] = {"ok": same and hashed}
    if not same:
        bytes_check["reason"] = "receipt_envelope_differs_from_the_anchored_record"
    elif not hashed:
        bytes_check["reason"] = "payload_hash_mismatch"
    first_window = manifest.get("previous_window_hash") is None
    return {
        "signature": verify_signature(anchored),
        "anchored_bytes": bytes_check,
        "inclusion": {"ok": problem is None, **({"reason": problem} if problem else {})},
        "subject": check_subject(anchored, expected),
        "chain": check_chain(anchored, "GENESIS" if first_window else None),
        "issuer": check_issuer(anchored, tuple(trusted_keys)),
    }, problem


def _overall(result: dict[str, Any]) -> bool | None:
    oks = [check.get("ok") for check in result.values() if isinstance(check, dict)]
    if any(ok is False for ok in oks):
        return False
    return all(result[name]["ok"] is True for name in _NEEDED) or None


def verify_receipt_offline(
    receipt: Receipt,
    *,
    trusted_keys: Sequence[str] = (),
    expected_model: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """A batched decision checked with nothing but its receipt: signature, manifest hash,
    inclusion, subject, first-window link, issuer (``verify_record`` with a receipt)."""
    result, _ = _offline_checks(receipt.envelope, receipt, trusted_keys, expected_model)
    return {**result, "overall": _overall(result)}


def verify_receipt(
    receipt: Receipt,
    *,
    anchor: Any = None,
    mlflow_client: Any = None,
    ario_client: Any = None,
    min_attestation_level: int = DEFAULT_MIN_ATTESTATION_LEVEL,
    trusted_keys: Sequence[str] = (),
    expected_model: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """Every check of a batched decision (see the module docstring); the same result
    shape as ``verify_proof_by_tx``. ``anchor`` reads the gateways (default: the
    configured ones)."""
    if anchor is None:
        from ario_mlflow.outbox.anchor import ArweaveAnchor

        anchor = ArweaveAnchor()
    data = anchor.fetch_envelope_bytes(receipt.tx_id)
    try:
        anchored = parse_json_object(data) if data is not None else None
    except Exception:
        anchored = None
    if anchored is None:
        reason = "no_envelope: the window record is not on any gateway"
        return {
            "proof_found": False,
            "tx_id": receipt.tx_id,
            **{name: {"ok": None, "reason": reason} for name in _NEEDED},
            "overall": None,
            "fetch_error": getattr(anchor, "last_error", None),
        }
    result, problem = _offline_checks(anchored, receipt, trusted_keys, expected_model)
    on_record = Receipt(**{**receipt.__dict__, "envelope": anchored})
    result["source_of_truth"] = _source_of_truth(on_record, mlflow_client)
    result["registration"] = _registration_link(on_record, mlflow_client)
    result["ario_attestation"] = (
        {"ok": None, "reason": "no_ario_client"}
        if ario_client is None
        else verify_ario_attestation(
            anchored,
            ario_client,
            min_attestation_level=min_attestation_level,
            tx_id=receipt.tx_id,
        )
    )
    return {
        "proof_found": True,
        "tx_id": receipt.tx_id,
        "envelope": anchored,
        "receipt": receipt.to_json(),
        "decision": json.loads(receipt.payload_bytes) if problem is None else None,
        **result,
        "overall": _overall(result),
    }
