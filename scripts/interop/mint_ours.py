"""Mint one record of every event type with THIS package, for the reference to verify.

Runs a real lifecycle in a scratch directory: a sqlite MLflow store, our local gateway on
loopback (the caller starts it and passes its URL), a fresh ``$ARIO_MLFLOW_HOME`` (so a
fresh signing key). Training (with its implicit dataset record), a standalone dataset,
registration, a stage promotion and two ``each`` predictions are anchored, then exported with
``export_bundle`` — the product's own evidence path — so the records handed over are
exactly the bytes stored on the gateway and the payload bytes stored in MLflow.

Run by ``run.py``; ``python mint_ours.py OUT_DIR GATEWAY_URL`` runs it on its own.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from records import (
    REJECT,
    tampered_envelope,
    tampered_payload,
    write_manifest,
    write_record,
)

MODEL = "interop-scorer"
MINTED_BY = "ours"


def _environment(workdir: Path, gateway_url: str) -> dict[str, str]:
    return {
        "ARIO_MLFLOW_HOME": str(workdir / "home"),
        "ARIO_MLFLOW_UPLOAD_URL": gateway_url,
        "ARIO_MLFLOW_GATEWAY_HOST": gateway_url,
        "ARIO_MLFLOW_GATEWAYS": gateway_url,
        "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}",
    }


def _data() -> tuple[Any, Any]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    features = pd.DataFrame(rng.random((60, 3)), columns=["income", "debt", "age"])
    return features, (features["income"] > features["debt"]).astype(int)


def _lifecycle(workdir: Path) -> dict[str, Any]:
    """Every event type through the public API; returns what the export needs."""
    import inspect

    import mlflow
    from mlflow.data.pandas_dataset import from_pandas
    from sklearn.linear_model import LogisticRegression

    from ario_mlflow import ArioMlflowClient, VerifiedModel, anchor
    from ario_mlflow.outbox.anchor import ArweaveAnchor
    from ario_mlflow.outbox.sync import sync_journal

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    mlflow.create_experiment("interop", artifact_location=(workdir / "artifacts").as_uri())
    mlflow.set_experiment("interop")
    features, labels = _data()
    name_arg = (
        "name"
        if "name" in inspect.signature(mlflow.sklearn.log_model).parameters
        else "artifact_path"
    )
    with mlflow.start_run() as run:
        mlflow.log_input(
            from_pandas(features, source="s3://bank/train.parquet", name="train"),
            context="training",
        )
        model = LogisticRegression().fit(features, labels)
        mlflow.log_param("C", 1.0)
        mlflow.log_metric("accuracy", float(model.score(features, labels)))
        mlflow.sklearn.log_model(model, **{name_arg: "model"}, pip_requirements=["scikit-learn"])
        training = anchor()
    holdout = from_pandas(features.tail(20), source="s3://bank/holdout.parquet", name="holdout")
    standalone = anchor(dataset=holdout)

    client = ArioMlflowClient()
    client.create_registered_model(MODEL)
    source = f"runs:/{run.info.run_id}/model"
    version = str(client.create_model_version(MODEL, source, run_id=run.info.run_id).version)
    client.wait_for_anchor("registration", MODEL, version, timeout=60)
    client.transition_model_version_stage(MODEL, version, "Staging")
    client.wait_for_anchor("promotion", MODEL, version, timeout=60)

    # One signed record per decision: the 0.3.0 wire format, the one the reference reads
    # (a batched decision is a leaf of a prediction_batch window, which 0.3.0 predates).
    scorer = VerifiedModel(f"models:/{MODEL}/{version}", decisions="each")
    for index in range(2):
        decision = scorer.predict(features.iloc[[index]])
        decision.wait_for_anchor(30)
    sync_journal(ArweaveAnchor().journal)  # witnesses and trace tags written back now
    return {
        "run_id": run.info.run_id,
        "version": version,
        "training": training,
        "standalone": standalone,
    }


def _expected_subject(stage: str, envelope: dict[str, Any], version: str) -> dict[str, str]:
    subject = envelope.get("subject") or {}
    if stage in ("registration", "promotion"):
        return {"type": "mlflow_model_version", "name": MODEL, "version": version}
    return {k: subject[k] for k in ("type", "run_id", "name", "decision_id") if k in subject}


def mint(out: Path, gateway_url: str) -> dict[str, Any]:
    """Run the lifecycle in ``out`` and write every record (and two tampered ones) there."""
    import mlflow

    from ario_mlflow.outbox.anchor import ArweaveAnchor
    from ario_mlflow.verify.bundle import export_bundle

    out.mkdir(parents=True, exist_ok=True)
    os.environ.update(_environment(out, gateway_url))
    minted = _lifecycle(out)
    reader = ArweaveAnchor()
    manifest_out = export_bundle(
        f"{MODEL}/{minted['version']}",
        out / "evidence",
        client=mlflow.MlflowClient(),
        anchor=reader,
    )
    by_stage: dict[str, str] = {}
    labels: list[str] = []
    counts: dict[str, int] = {}
    for entry in manifest_out["records"]:
        stage = entry["stage"]
        counts[stage] = counts.get(stage, 0) + 1
        label = "dataset-implicit" if stage == "datasets" else stage
        if stage == "prediction":
            label = f"prediction-{counts[stage] - 1}"
        by_stage.setdefault(stage, entry["tx_id"])
        envelope_bytes = (out / "evidence" / entry["envelope"]).read_bytes()
        payload_bytes = (
            (out / "evidence" / entry["payload"]).read_bytes() if entry["payload"] else None
        )
        envelope = json.loads(envelope_bytes)
        write_record(
            out / "records",
            label,
            envelope_bytes,
            payload_bytes,
            {
                "event_type": envelope["event_type"],
                "minted_by": MINTED_BY,
                "tx_id": entry["tx_id"],
                "expected_subject": _expected_subject(stage, envelope, minted["version"]),
                "stage": stage,
            },
        )
        labels.append(label)

    standalone = minted["standalone"]
    tx_id = standalone["tx_id"]
    envelope_bytes = reader.fetch_envelope_bytes(tx_id)
    if envelope_bytes is None:
        raise RuntimeError(f"standalone dataset record {tx_id} not on the gateway")
    write_record(
        out / "records",
        "dataset-standalone",
        envelope_bytes,
        standalone["payload_bytes"],
        {
            "event_type": "dataset",
            "minted_by": MINTED_BY,
            "tx_id": tx_id,
            "expected_subject": {"type": "mlflow_dataset", "name": "holdout"},
            "stage": "datasets",
        },
    )
    labels.append("dataset-standalone")
    labels += _tampered(out / "records")
    manifest = {
        "minted_by": MINTED_BY,
        "tracking_uri": os.environ["MLFLOW_TRACKING_URI"],
        "gateway_url": gateway_url,
        "model": MODEL,
        "version": minted["version"],
        "run_id": minted["run_id"],
        "chain": by_stage,
        "records": labels,
    }
    write_manifest(out / "records", manifest)
    return manifest


def _tampered(records: Path) -> list[str]:
    """Two records that every verifier must reject: a changed payload, a changed envelope."""
    training = records / "training"
    write_record(
        records,
        "training-payload-tampered",
        (training / "envelope.json").read_bytes(),
        tampered_payload((training / "payload.bin").read_bytes()),
        {**json.loads((training / "meta.json").read_text()), "expect": REJECT, "tamper": "payload"},
    )
    registration = records / "registration"
    write_record(
        records,
        "registration-envelope-tampered",
        tampered_envelope(
            (registration / "envelope.json").read_bytes(), "previous_hash", "GENESIS"
        ),
        (registration / "payload.bin").read_bytes(),
        {
            **json.loads((registration / "meta.json").read_text()),
            "expect": REJECT,
            "tamper": "envelope previous_hash",
        },
    )
    return ["training-payload-tampered", "registration-envelope-tampered"]


if __name__ == "__main__":
    print(json.dumps(mint(Path(sys.argv[1]), sys.argv[2]), indent=2))
