"""The end-to-end demo: the whole lifecycle on this machine, with no network and no setup.

A temporary directory holds everything: the MLflow sqlite store, ``$ARIO_MLFLOW_HOME``
(keys, wallet, journal) and the data of a local gateway on a free loopback port. The demo
trains a small credit model, anchors its dataset and run, registers it, promotes it with
an alias, serves a few verified decisions, then verifies and audits everything.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class DemoResult:
    """What the demo produced, for the CLI to print and the tests to check."""

    workdir: Path
    run_id: str = ""
    model: str = "credit-scorer"
    version: str = ""
    decisions: list[str] = field(default_factory=list)
    verifications: dict[str, dict[str, Any]] = field(default_factory=dict)
    audit: dict[str, Any] = field(default_factory=dict)
    report: Path | None = None
    bundle: Path | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Every verification and the audit passed."""
        return bool(self.audit.get("overall_ok")) and all(
            v.get("overall") is True for v in self.verifications.values()
        )


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def _demo_world(root: Path, say: Callable[[str], None]) -> Iterator[None]:
    """The demo's local gateway (on ``root``'s gateway data) and its environment."""
    from ario_mlflow.localgw import LocalGateway

    gateway = LocalGateway(root / "gateway", key_bits=2048).start()
    say(f"Local gateway (Turbo upload + ar.io reads) on {gateway.url}")
    env = {
        "ARIO_MLFLOW_HOME": str(root / "home"),
        "ARIO_MLFLOW_UPLOAD_URL": gateway.url,
        "ARIO_MLFLOW_GATEWAY_HOST": gateway.url,
        "ARIO_MLFLOW_GATEWAYS": gateway.url,
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
    }
    try:
        with _environment(env):
            from ario_mlflow.engine import ProofEngine

            # the demo pins its own issuer key, as a deployment should (see the README)
            with _environment({"ARIO_MLFLOW_TRUSTED_KEYS": ProofEngine().public_key_hex}):
                _quiet_mlflow()
                yield
    finally:
        from ario_mlflow.outbox.workers import stop_all_workers

        stop_all_workers()
        gateway.stop()


def _quiet_mlflow() -> None:
    """MLflow's INFO lines (table creation, trace-queue flush at exit) are not the demo's."""
    import mlflow  # noqa: F401  (MLflow sets its loggers up on import; adjust after it)

    logging.getLogger("mlflow").setLevel(logging.WARNING)


def run_demo(workdir: Path | None = None, say: Callable[[str], None] = print) -> DemoResult:
    """Run the whole lifecycle in ``workdir`` (a new temporary directory by default)."""
    started = time.monotonic()
    root = Path(workdir or tempfile.mkdtemp(prefix="ario-mlflow-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    say(f"Working directory: {root}")
    result = DemoResult(root)
    with _demo_world(root, say):
        _lifecycle(result, root, say)
    result.seconds = time.monotonic() - started
    return result


class DemoDataError(ValueError):
    """The directory given to audit again holds no demo data."""


def audit_again(workdir: Path, say: Callable[[str], None] = print) -> DemoResult:
    """Audit an earlier demo's data again: its gateway restarted on its own data, its
    store and keys as they are now (so edits made since show up)."""
    started = time.monotonic()
    root = Path(workdir)
    missing = [name for name in ("mlflow.db", "gateway", "home") if not (root / name).exists()]
    if missing:
        raise DemoDataError(
            f"{root} holds no demo data (no {', '.join(missing)}); "
            "run 'ar-io-mlflow demo --workdir DIR' first"
        )
    say(f"Working directory: {root}")
    result = DemoResult(root)
    with _demo_world(root, say):
        _audit(result, root)
    result.seconds = time.monotonic() - started
    return result


def _applicants() -> tuple[Any, Any]:
    """A small synthetic loan book: features and approve/decline labels."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(42)
    features = pd.DataFrame(
        {
            "income": rng.normal(60, 15, 400),
            "debt_ratio": rng.uniform(0, 1, 400),
            "age": rng.integers(21, 70, 400).astype(float),
        }
    )
    labels = ((features["income"] / 100 - features["debt_ratio"]) > 0).astype(int)
    return features, labels


def _model_name_argument(name: str) -> dict[str, str]:
    """``log_model``'s name for the model: ``name=`` on MLflow 3, ``artifact_path=`` on 2."""
    import inspect

    import mlflow.sklearn

    accepted = inspect.signature(mlflow.sklearn.log_model).parameters
    return {"name" if "name" in accepted else "artifact_path": name}


def _train(
    result: DemoResult, root: Path, features: Any, labels: Any
) -> tuple[str, dict[str, Any]]:
    """Train, log the dataset and model, anchor; the model URI and the anchor result."""
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas
    from sklearn.linear_model import LogisticRegression

    from ario_mlflow.lifecycle.training import anchor

    # keep every artifact inside the demo's directory, not in the caller's ./mlruns
    mlflow.create_experiment("credit-demo", artifact_location=(root / "artifacts").as_uri())
    mlflow.set_experiment("credit-demo")
    with mlflow.start_run() as run:
        dataset = from_pandas(
            features, source="s3://bank/loans-2026q3.parquet", name="loans-2026q3"
        )
        mlflow.log_input(dataset, context="training")
        model = LogisticRegression(max_iter=500).fit(features, labels)
        mlflow.log_param("max_iter", 500)
        mlflow.log_metric("accuracy", float(model.score(features, labels)))
        info = mlflow.sklearn.log_model(
            model, **_model_name_argument("model"), pip_requirements=["scikit-learn"]
        )
        anchored = anchor()
    result.run_id = run.info.run_id
    return str(info.model_uri), anchored


def _lifecycle(result: DemoResult, root: Path, say: Callable[[str], None]) -> None:
    import mlflow

    from ario_mlflow.lifecycle.registry import ArioMlflowClient
    from ario_mlflow.lifecycle.serving import VerifiedModel
    from ario_mlflow.outbox.anchor import ArweaveAnchor
    from ario_mlflow.outbox.sync import sync_journal

    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    features, labels = _applicants()
    say("1. Training a credit model and anchoring its dataset and run")
    model_uri, anchored = _train(result, root, features, labels)
    say(
        f"   training record {anchored['tx_id']} "
        f"({'uploaded' if anchored['anchor_result'] else 'queued'})"
    )

    say("2. Registering the model and promoting it with the alias 'champion'")
    client = ArioMlflowClient()
    client.create_registered_model(result.model)
    version = client.create_model_version(result.model, model_uri, run_id=result.run_id)
    result.version = str(version.version)
    client.wait_for_anchor("registration", result.model, result.version, timeout=30)
    client.set_registered_model_alias(result.model, "champion", result.version)
    client.wait_for_anchor("alias", result.model, "champion", timeout=30)
    registered = client.anchor_status("registration", result.model, result.version)
    say(f"   registration record {registered['tx_id']} ({registered['status']})")

    say("3. Serving verified decisions")
    scorer = VerifiedModel(f"models:/{result.model}@champion")
    made = [scorer.predict(features.iloc[[index]]) for index in range(5)]
    made[-1].wait_for_anchor(10)  # closes the window of all five now, not when it is due
    for index, decision in enumerate(made):
        result.decisions.append(decision.decision_id)
        say(
            f"   applicant {index}: approved={bool(decision.prediction[0])} "
            f"decision {decision.decision_id} (#{decision.seq} of stream {decision.stream_id})"
        )
    say(f"   one signed window for all five: {made[-1].tx_id} ({made[-1].proof_status})")
    sync_journal(ArweaveAnchor().journal)  # witnesses and traces written back now

    say("4. Verifying and auditing")
    anchor_client = ArweaveAnchor()
    result.verifications = _verify_all(result, anchor_client)
    _audit(result, root)
    from ario_mlflow.verify.bundle import export_bundle

    result.bundle = root / "evidence"
    export_bundle(
        f"{result.model}@champion",
        result.bundle,
        client=mlflow.MlflowClient(),
        anchor=anchor_client,
    )


def _audit(result: DemoResult, root: Path) -> None:
    """Audit the champion's whole lineage (pinned to the demo's key) and write the report."""
    import mlflow

    from ario_mlflow.report import render_audit_report
    from ario_mlflow.verify.audit import audit_model
    from ario_mlflow.verify.context import VerifyContext

    context = VerifyContext.configured(source="ARIO_MLFLOW_TRUSTED_KEYS")
    result.audit = audit_model(
        f"{result.model}@champion",
        client=mlflow.MlflowClient(),
        anchor=context.anchor,
        trusted_keys=context.trusted_keys,
    )
    result.report = root / "audit-report.html"
    result.report.write_text(render_audit_report(result.audit), encoding="utf-8")


def _verify_all(result: DemoResult, anchor: Any) -> dict[str, dict[str, Any]]:
    import mlflow

    from ario_mlflow.verify.context import VerifyContext
    from ario_mlflow.verify.targets import decision_target, model_target, run_target

    context = VerifyContext.configured(source="ARIO_MLFLOW_TRUSTED_KEYS", anchor=anchor)

    client = mlflow.MlflowClient()
    targets = {
        "run": run_target(client, result.run_id),
        "model": model_target(client, f"{result.model}/{result.version}"),
        "decision": decision_target(client, result.decisions[0], anchor.journal, anchor),
    }
    return {kind: context.verify(target, client) for kind, target in targets.items()}
