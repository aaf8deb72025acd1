"""The whole lifecycle with scikit-learn, in one script.

Train a credit model, anchor its run and dataset, register it with ``ArioMlflowClient``,
point the alias ``champion`` at it, serve a few decisions with ``VerifiedModel``, and
verify the training record, the registration and one decision with the Python API.

Against a local sqlite store and the bundled local gateway (no network):

    ar-io-mlflow gateway --port 8765 &
    export ARIO_MLFLOW_UPLOAD_URL=http://127.0.0.1:8765
    export ARIO_MLFLOW_GATEWAY_HOST=http://127.0.0.1:8765 ARIO_MLFLOW_GATEWAYS=http://127.0.0.1:8765
    python examples/train_and_serve.py --write-csv applicants.csv

Exit status 0 when every verification passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from sklearn.linear_model import LogisticRegression

import ario_mlflow
from ario_mlflow import (
    ArioMlflowClient,
    VerifiedModel,
    verify_proof_by_tx,
    verify_receipt,
    verify_record,
)
from ario_mlflow.arweave import ArweaveAnchor
from ario_mlflow.outbox.sync import sync_journal
from ario_mlflow.proof import canonical_json


def applicants(rows: int, seed: int = 7) -> tuple[pd.DataFrame, pd.Series]:
    """A synthetic loan book: three features and an approve (1) / decline (0) label."""
    rng = np.random.default_rng(seed)
    features = pd.DataFrame(
        {
            "income": rng.normal(60.0, 15.0, rows),
            "debt_ratio": rng.uniform(0.0, 1.0, rows),
            "age": rng.integers(21, 70, rows).astype(float),
        }
    )
    labels = ((features["income"] / 100.0 - features["debt_ratio"]) > 0).astype(int)
    return features, labels


def train_and_anchor(features: pd.DataFrame, labels: pd.Series) -> tuple[str, str, dict]:
    """One MLflow run: log the dataset, params, metric and model, then ``anchor()``."""
    with mlflow.start_run() as run:
        dataset = mlflow.data.from_pandas(
            features, source="s3://bank/applicants.parquet", name="applicants"
        )
        mlflow.log_input(dataset, context="training")
        model = LogisticRegression(max_iter=500).fit(features, labels)
        mlflow.log_param("max_iter", 500)
        mlflow.log_metric("accuracy", float(model.score(features, labels)))
        try:
            info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
        except TypeError:  # MLflow 2 calls it artifact_path
            info = mlflow.sklearn.log_model(
                model, artifact_path="model", pip_requirements=["scikit-learn"]
            )
        proof = ario_mlflow.anchor()  # params, metrics, artifact hashes, dataset inputs
    return run.info.run_id, str(info.model_uri), proof


def register(client: ArioMlflowClient, name: str, alias: str, model_uri: str, run_id: str) -> str:
    """Register a new version, point ``alias`` at it; both events are anchored."""
    with contextlib.suppress(MlflowException):  # it may exist already: we add a version
        client.create_registered_model(name)
    version = str(client.create_model_version(name, model_uri, run_id=run_id).version)
    client.wait_for_anchor("registration", name, version, timeout=60)
    client.set_registered_model_alias(name, alias, version)
    client.wait_for_anchor("alias", name, alias, timeout=60)
    return version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-name", default="credit-scorer")
    parser.add_argument("--alias", default="champion")
    parser.add_argument("--decisions", type=int, default=3, help="Decisions to serve.")
    parser.add_argument(
        "--tracking-uri",
        default=os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"),
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlflow.db).",
    )
    parser.add_argument("--write-csv", metavar="PATH", help="Also save some applicants here.")
    args = parser.parse_args(argv)

    mlflow.set_tracking_uri(args.tracking_uri)
    features, labels = applicants(300)

    # 1. training and datasets
    run_id, model_uri, proof = train_and_anchor(features, labels)
    print(f"run {run_id}: training record {proof['tx_id']}")
    for dataset in proof["dataset_anchors"]:
        print(f"  dataset {dataset['dataset_name']}: record {dataset['tx_id']}")

    # 2. registration and alias
    client = ArioMlflowClient()
    version = register(client, args.model_name, args.alias, model_uri, run_id)
    status = client.anchor_status("registration", args.model_name, version)
    print(f"model {args.model_name}/{version}: registration {status['status']} {status['tx_id']}")

    # 3. serving: the artifacts are re-hashed against the anchored training record first
    scorer = VerifiedModel(f"models:/{args.model_name}@{args.alias}")
    decisions = [scorer.predict(features.iloc[[index]]) for index in range(args.decisions)]
    # Decisions are leaves of a signed window; waiting for one closes its window now.
    decisions[-1].wait_for_anchor(timeout=30)
    for decision in decisions:
        decision.wait_for_anchor(timeout=30)
        print(
            f"decision {decision.decision_id}: approved={bool(decision.prediction[0])} "
            f"{decision.proof_status} {'in window ' if decision.seq else ''}{decision.tx_id}"
        )
    if args.write_csv:
        features.iloc[args.decisions : args.decisions + 5].to_csv(args.write_csv, index=False)
        print(f"wrote {args.write_csv}")

    # 4. verification with the Python API. Finish the journaled MLflow write-backs first
    #    (payload witnesses, prediction traces), as `ar-io-mlflow sync` does: the
    #    background workers would get there too, a moment later.
    sync_journal(ArweaveAnchor().journal)
    tracking = mlflow.MlflowClient()
    training_tx = proof["tx_id"]
    registration_tx = status["tx_id"]
    results = {
        "training": verify_proof_by_tx(
            training_tx,
            mlflow_client=tracking,
            expected_subject={"type": "mlflow_run", "run_id": run_id},
        ),
        "registration": verify_proof_by_tx(
            registration_tx,
            mlflow_client=tracking,
            expected_subject={
                "type": "mlflow_model_version",
                "name": args.model_name,
                "version": version,
            },
            expected_previous=training_tx,  # registration chains to the training record
        ),
    }
    first = decisions[0]
    receipt = first.receipt()  # batch mode: its payload, audit path, the window's record
    if first.tx_id and receipt is not None:
        results["decision"] = verify_receipt(
            receipt, mlflow_client=tracking, expected_model=(args.model_name, version)
        )
        # An auditor without MLflow or a network: the receipt alone.
        offline = verify_record(receipt.to_json(), None)
        print(f"verify_record (offline) decision: overall={offline['overall']}")
        results["decision (offline)"] = offline
    elif first.tx_id:  # ARIO_MLFLOW_DECISIONS=each: a signed record per decision
        results["decision"] = verify_proof_by_tx(
            first.tx_id,
            mlflow_client=tracking,
            expected_subject={"type": "mlflow_prediction", "decision_id": first.decision_id},
            expected_previous=registration_tx,
        )
        envelope = results["decision"]["envelope"]
        offline = verify_record(envelope, canonical_json(first.record))
        print(f"verify_record (offline) decision: overall={offline['overall']}")
        results["decision (offline)"] = offline
    else:
        print(f"decision {first.decision_id} is not anchored yet: {first.anchor_error}")
    for what, result in results.items():
        failing = [k for k, v in result.items() if isinstance(v, dict) and v.get("ok") is False]
        print(f"verify {what}: overall={result['overall']} {failing or ''}".rstrip())
    ok = bool(first.tx_id) and all(r["overall"] is True for r in results.values())
    print("OK" if ok else "ISSUES FOUND")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
