"""The reference side: runs ONLY in the virtualenv holding ar-io-mlflow 0.3.0.

``verify RECORDS OUT`` — the reference verifies records THIS project minted, two ways:

* ``verify_record(envelope, payload_bytes)`` — the reference's auditor primitive
  (signature, spec version and payload hash; no MLflow, no network). Also checks that
  the anchored bytes are exactly the reference kernel's JCS of the envelope.
* ``verify_proof_by_tx(tx_id, mlflow_client=...)`` — the reference's operator flow: fetch
  the envelope by TX, then all four checks against our MLflow store (our witness
  artifacts, tags and traces). The reference's own ``ArweaveAnchor.fetch_proof`` only
  speaks ``https://<host>/raw/<tx>``, and our local gateway serves plain HTTP on
  127.0.0.1, so the fetch goes through a small reader with the same ``fetch_proof``
  contract (the reference documents duck-typed anchors for this argument). Every check
  it runs is the reference's own code.

``mint OUT`` — the reference mints one record of every event type with its real flows
(``anchor()``, ``anchor(dataset=...)``, ``ArioMlflowClient.create_model_version`` /
``transition_model_version_stage``, ``VerifiedModel.predict``) in a fresh sqlite MLflow
store, signing with a fresh key from ``ARIO_MLFLOW_SIGNING_KEY``. Nothing is uploaded: the
anchor is a stand-in that keeps the exact bytes the reference would upload
(``canonical_json(envelope)``) and answers with an Arweave-shaped id, as the reference's
own integration tests do, so the chain links (registration -> training TX, …) are real.

This file must not import ``ario_mlflow`` at module level in a way that could pick up our
package: it is run with the reference venv's interpreter only.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from records import (
    REJECT,
    fake_tx_id,
    read_manifest,
    read_records,
    tampered_envelope,
    tampered_payload,
    verdict,
    write_manifest,
    write_record,
)

MODEL = "interop-reference-scorer"
#: How this side is named in the table, as minter and as verifier.
REFERENCE = "reference 0.3.0"


def _check_reference() -> None:
    """Refuse to run against anything but the installed reference 0.3.0."""
    import importlib.metadata

    import ario_mlflow

    version = importlib.metadata.version("ar-io-mlflow")
    if version != "0.3.0" or "site-packages" not in str(ario_mlflow.__file__):
        raise SystemExit(
            f"reference_side.py needs ar-io-mlflow 0.3.0 installed from the index, got "
            f"{version} at {ario_mlflow.__file__}"
        )


def _public_key_of_signing_key() -> str:
    """The signer's public key, derived from the seed (not read back from a record)."""
    from nacl.signing import SigningKey

    seed = base64.b64decode(os.environ["ARIO_MLFLOW_SIGNING_KEY"])
    return bytes(SigningKey(seed).verify_key).hex()


def _fresh_signing_key() -> None:
    """A fresh Ed25519 seed in the environment: ProofEngine() then writes no key files."""
    os.environ["ARIO_MLFLOW_SIGNING_KEY"] = base64.b64encode(os.urandom(32)).decode()


# --- verify ------------------------------------------------------------------------------


class _LoopbackReader:
    """``fetch_proof(tx_id)`` over plain HTTP from the local gateway (loopback only)."""

    def __init__(self, gateway_url: str) -> None:
        if not gateway_url.startswith(("http://127.0.0.1:", "http://localhost:")):
            raise SystemExit(f"refusing to fetch from a non-loopback gateway {gateway_url}")
        self.gateway_url = gateway_url.rstrip("/")
        self.fetched: dict[str, bytes] = {}
        self.last_error: str | None = None

    def fetch_proof(self, tx_id: str) -> dict[str, Any] | None:
        import requests

        try:
            response = requests.get(f"{self.gateway_url}/raw/{tx_id}", timeout=10)
            response.raise_for_status()
            self.fetched[tx_id] = response.content
            envelope: dict[str, Any] = response.json()
            return envelope
        except (requests.RequestException, ValueError) as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            return None


def _summary(result: dict[str, Any]) -> str:
    parts = []
    for name in ("signature", "anchored_bytes", "source_of_truth", "ario_attestation"):
        check = result.get(name)
        if isinstance(check, dict) and check.get("ok") is not True:
            if name == "ario_attestation" and check.get("ok") is None:
                continue  # no ar.io Verify service here: neutral by design
            why = " ".join(str(check[k]) for k in ("reason", "detail") if check.get(k))
            parts.append(f"{name}={check.get('ok')}{(' ' + why) if why else ''}")
    return "; ".join(parts)


def verify(records_dir: Path, out: Path) -> list[dict[str, Any]]:
    """Every record of ``records_dir`` through the reference's verifiers; rows to ``out``."""
    import mlflow

    from ario_mlflow.proof import ProofEngine, canonical_json
    from ario_mlflow.verify import verify_proof_by_tx, verify_record

    _fresh_signing_key()
    engine = ProofEngine()
    manifest = read_manifest(records_dir)
    mlflow.set_tracking_uri(manifest["tracking_uri"])
    client = mlflow.MlflowClient(tracking_uri=manifest["tracking_uri"])
    reader = _LoopbackReader(manifest["gateway_url"])
    rows = []
    for record in read_records(records_dir):
        envelope = json.loads(record["envelope_bytes"])
        result = verify_record(envelope, record["payload_bytes"] or b"", proof_engine=engine)
        detail = _summary(result)
        ok = result["overall"]
        if canonical_json(envelope) != record["envelope_bytes"]:
            ok, detail = False, f"anchored bytes are not the reference's JCS; {detail}"
        rows.append(verdict(record, REFERENCE, "verify_record", ok, detail))
        if record["tamper"]:
            continue  # the operator flow fetches by TX, and the gateway holds the original
        by_tx = verify_proof_by_tx(
            record["tx_id"], anchor=reader, proof_engine=engine, mlflow_client=client
        )
        ok, detail = by_tx["overall"], _summary(by_tx)
        if not by_tx.get("proof_found"):
            ok, detail = False, f"not fetched: {reader.last_error}"
        elif reader.fetched.get(record["tx_id"]) != record["envelope_bytes"]:
            ok, detail = False, "gateway bytes differ from the exported envelope"
        rows.append(verdict(record, REFERENCE, "verify_proof_by_tx", ok, detail))
    out.write_text(json.dumps(rows, indent=2) + "\n")
    return rows


# --- mint --------------------------------------------------------------------------------


class _KeepingAnchor:
    """Stands in for ``ArweaveAnchor``: keeps the bytes the reference would upload."""

    enabled = True
    wallet_mode = "user-configured"
    wallet_type = "arweave"
    gateway_host = "127.0.0.1"

    def __init__(self) -> None:
        from ario_mlflow.proof import canonical_json

        self._canonical = canonical_json
        self.uploaded: dict[str, bytes] = {}
        self.last_error: str | None = None

    def upload_proof(
        self, proof: dict[str, Any], tags: Any = None, extra_tags: Any = None
    ) -> dict[str, Any]:
        data = self._canonical(proof)
        tx_id = fake_tx_id(data)
        self.uploaded[tx_id] = data
        return {"tx_id": tx_id, "url": f"http://127.0.0.1/{tx_id}", "receipt": None}

    def fetch_proof(self, tx_id: str) -> dict[str, Any] | None:
        data = self.uploaded.get(tx_id)
        return json.loads(data) if data is not None else None


def _artifact(run_id: str, path: str) -> bytes:
    """The exact bytes of a run artifact (the reference's witness files)."""
    import mlflow

    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path)
    return Path(local).read_bytes()


def _lifecycle(out: Path, engine: Any, anchor: _KeepingAnchor) -> dict[str, Any]:
    """The reference's own flows, one per event type; returns the handles to collect."""
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow.data.pandas_dataset import from_pandas
    from sklearn.linear_model import LogisticRegression

    from ario_mlflow import ArioMlflowClient, VerifiedModel
    from ario_mlflow import anchor as ref_anchor

    mlflow.set_tracking_uri(f"sqlite:///{out / 'mlflow.db'}")
    mlflow.create_experiment("interop-ref", artifact_location=(out / "artifacts").as_uri())
    mlflow.set_experiment("interop-ref")
    rng = np.random.default_rng(3)
    features = pd.DataFrame(rng.random((60, 3)), columns=["income", "debt", "age"])
    labels = (features["income"] > features["debt"]).astype(int)
    with mlflow.start_run() as run:
        mlflow.log_input(
            from_pandas(features, source="s3://bank/train.parquet", name="train"),
            context="training",
        )
        model = LogisticRegression().fit(features, labels)
        mlflow.log_param("C", 1.0)
        mlflow.log_metric("accuracy", float(model.score(features, labels)))
        mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
        training = ref_anchor(proof_engine=engine, arweave=anchor)
    # 0.3.0 anchors entity-shaped datasets only: take one from a run's inputs
    with mlflow.start_run() as evaluation:
        holdout = from_pandas(features.tail(20), source="s3://bank/holdout.parquet", name="holdout")
        mlflow.log_input(holdout, context="evaluation")
    inputs = mlflow.MlflowClient().get_run(evaluation.info.run_id).inputs
    if inputs is None or not inputs.dataset_inputs:
        raise RuntimeError("the evaluation run has no dataset input")
    standalone = ref_anchor(
        proof_engine=engine, arweave=anchor, dataset=inputs.dataset_inputs[0].dataset
    )

    client = ArioMlflowClient(proof_engine=engine, anchor=anchor)
    client.create_registered_model(MODEL)
    mv = client.create_model_version(
        MODEL, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id
    )
    version = str(mv.version)
    _settle(client, "registration", version)
    client.transition_model_version_stage(MODEL, version, "Staging")
    _settle(client, "promotion", version)
    scorer = VerifiedModel(f"models:/{MODEL}/{version}", proof_engine=engine, anchor=anchor)
    decisions = []
    for index in range(2):
        decision = scorer.predict(features.iloc[[index]])
        if not decision.wait_for_anchor(30) or decision.tx_id is None:
            raise RuntimeError(f"reference prediction not anchored: {decision.anchor_error}")
        decisions.append(decision)
    return {
        "run_id": run.info.run_id,
        "version": version,
        "training": training,
        "standalone": standalone,
        "mv": mlflow.MlflowClient().get_model_version(MODEL, version),
        "decisions": decisions,
    }


def _settle(client: Any, event: str, version: str) -> None:
    if not client.wait_for_anchor(event, MODEL, version, timeout=60):
        raise RuntimeError(f"reference {event} anchoring did not finish")
    status = client.anchor_status(event, MODEL, version)
    if status["status"] != "anchored":
        raise RuntimeError(f"reference {event} not anchored: {status}")


def mint(out: Path) -> dict[str, Any]:
    """Mint with the reference into ``out``; write records (and two tampered) to ``out/records``."""

    from ario_mlflow.proof import ProofEngine

    out.mkdir(parents=True, exist_ok=True)
    _fresh_signing_key()
    engine = ProofEngine()
    anchor = _KeepingAnchor()
    made = _lifecycle(out, engine, anchor)
    run_id, version, mv = made["run_id"], made["version"], made["mv"]
    training_tx = made["training"]["anchor_result"]["tx_id"]
    registration_tx = mv.tags["ario.registration_tx"]
    model_subject = {"type": "mlflow_model_version", "name": MODEL, "version": version}
    records: list[tuple[str, str, bytes, dict[str, Any], str | None]] = []

    def add(
        label: str, tx_id: str, payload: bytes, subject: dict[str, Any], previous: str | None
    ) -> None:
        records.append((label, tx_id, payload, subject, previous))

    add(
        "training",
        training_tx,
        made["training"]["payload_bytes"],
        {"type": "mlflow_run", "run_id": run_id},
        "GENESIS",  # no registered model pointed at the run when it was anchored
    )
    implicit = made["training"]["dataset_anchors"][0]
    add(
        "dataset-implicit",
        implicit["anchor_result"]["tx_id"],
        implicit["payload_bytes"],
        {"type": "mlflow_dataset", "name": "train"},
        "GENESIS",
    )
    standalone = made["standalone"]
    add(
        "dataset-standalone",
        standalone["anchor_result"]["tx_id"],
        standalone["payload_bytes"],
        {"type": "mlflow_dataset", "name": "holdout"},
        "GENESIS",
    )
    add(
        "registration",
        registration_tx,
        _artifact(run_id, "ario/registration_payload.json"),
        model_subject,
        training_tx,
    )
    promotion_tx = mv.tags["ario.promotion_tx"]
    promotion_event = json.loads(anchor.uploaded[promotion_tx])["event_id"]
    add(
        "promotion",
        promotion_tx,
        _artifact(run_id, f"ario/promotions/{promotion_event}/payload.json"),
        model_subject,
        registration_tx,
    )
    for index, decision in enumerate(made["decisions"]):
        add(
            f"prediction-{index}",
            decision.tx_id,
            _artifact(run_id, f"ario/predictions/{decision.decision_id}/payload.json"),
            {"type": "mlflow_prediction", "decision_id": decision.decision_id},
            registration_tx,
        )

    folder = out / "records"
    labels = []
    for label, tx_id, payload, subject, previous in records:
        envelope_bytes = anchor.uploaded[tx_id]
        write_record(
            folder,
            label,
            envelope_bytes,
            payload,
            {
                "event_type": json.loads(envelope_bytes)["event_type"],
                "minted_by": REFERENCE,
                "tx_id": tx_id,
                "expected_subject": subject,
                "expected_previous": previous,
            },
        )
        labels.append(label)
    labels += _tampered(folder)
    manifest = {
        "minted_by": REFERENCE,
        "tracking_uri": f"sqlite:///{out / 'mlflow.db'}",
        "public_key": _public_key_of_signing_key(),
        "model": MODEL,
        "version": version,
        "run_id": run_id,
        "records": labels,
    }
    write_manifest(folder, manifest)
    return manifest


def _tampered(folder: Path) -> list[str]:
    """Two records any verifier must reject: a changed payload byte, a changed subject."""
    training = folder / "training"
    meta = json.loads((training / "meta.json").read_text())
    write_record(
        folder,
        "training-payload-tampered",
        (training / "envelope.json").read_bytes(),
        tampered_payload((training / "payload.bin").read_bytes()),
        {**meta, "expect": REJECT, "tamper": "payload"},
    )
    prediction = folder / "prediction-0"
    meta = json.loads((prediction / "meta.json").read_text())
    envelope = json.loads((prediction / "envelope.json").read_bytes())
    subject = {**envelope["subject"], "decision_id": "00000000-0000-4000-8000-000000000000"}
    write_record(
        folder,
        "prediction-envelope-tampered",
        tampered_envelope((prediction / "envelope.json").read_bytes(), "subject", subject),
        (prediction / "payload.bin").read_bytes(),
        {**meta, "expect": REJECT, "tamper": "envelope subject", "expected_subject": None},
    )
    return ["training-payload-tampered", "prediction-envelope-tampered"]


def main(argv: list[str]) -> int:
    """``verify RECORDS_DIR OUT_JSON`` or ``mint OUT_DIR``."""
    _check_reference()
    if len(argv) == 3 and argv[0] == "verify":
        verify(Path(argv[1]), Path(argv[2]))
        return 0
    if len(argv) == 2 and argv[0] == "mint":
        mint(Path(argv[1]))
        return 0
    print(__doc__.split("\n\n")[0] + "\nusage: reference_side.py verify RECORDS OUT | mint OUT")
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
