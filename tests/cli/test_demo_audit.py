"""``ar-io-mlflow demo`` and ``ar-io-mlflow audit`` as a user runs them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from ario_mlflow.localgw import LocalGateway
from tests.support.cli import run_cli


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("demo")
    started = time.monotonic()
    result = run_cli("demo", "--workdir", str(workdir), fresh_process=True)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Finished in" in result.stdout
    assert result.stdout.strip().endswith("OK")
    assert "verify run       ✓" in result.stdout
    assert "audit            ✓" in result.stdout
    assert (workdir / "audit-report.html").is_file()
    offline = run_cli(
        "verify-bundle",
        str(workdir / "evidence"),
        env={"ARIO_MLFLOW_HOME": str(workdir / "auditor")},
    )
    assert offline.returncode == 0, offline.stdout
    assert f"ar-io-mlflow verify-bundle {workdir / 'evidence'}" in result.stdout
    said = result.stdout + result.stderr
    assert " INFO " not in said  # MLflow's table-creation and trace-flush lines
    assert "{'" not in said  # no raw dict
    assert "no issuer is pinned" not in said  # the demo pins its own key
    assert elapsed < 90  # "under a minute" on a quiet machine; CI is shared
    return workdir


def _demo_env(workdir: Path, gateway: LocalGateway) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}",
        "ARIO_MLFLOW_HOME": str(workdir / "home"),
        "ARIO_MLFLOW_UPLOAD_URL": gateway.url,
        "ARIO_MLFLOW_GATEWAY_HOST": gateway.url,
        "ARIO_MLFLOW_GATEWAYS": gateway.url,
    }


def test_demo_then_audit_in_every_format(demo_dir: Path, tmp_path: Path) -> None:
    gateway = LocalGateway(demo_dir / "gateway", key_bits=2048).start()
    try:
        env = _demo_env(demo_dir, gateway)
        text = run_cli("audit", "credit-scorer/1", env=env)
        assert text.returncode == 0, text.stdout + text.stderr
        assert "Overall: ✓ All checks passed" in text.stdout
        assert "5 recorded, 5 anchored" in text.stdout
        output = tmp_path / "bundle.json"
        as_json = run_cli(
            "audit", "credit-scorer@champion", "--format", "json", "--output", str(output), env=env
        )
        assert as_json.returncode == 0
        bundle = json.loads(output.read_text())
        assert bundle["schema"] == "ario.mlflow.audit/v1"
        assert [s["stage"] for s in bundle["stages"]] == [
            "training",
            "datasets",
            "registration",
            "alias",
            "alias_current",  # NAME@ALIAS: the alias is backed by its latest record
        ]
        assert all(s["ok"] for s in bundle["stages"])
        assert bundle["decisions"]["verified"] == 5
        assert bundle["decisions"]["completeness"] == "checked"
        assert bundle["artifact_integrity"]["ok"] is True
        assert bundle["decisions"]["sequence_gaps"] == []
        assert bundle["overall_ok"] is True
        html = tmp_path / "audit.html"
        as_html = run_cli(
            "audit", "credit-scorer/1", "--format", "html", "--output", str(html), env=env
        )
        assert as_html.returncode == 0
        assert "credit-scorer" in html.read_text()
        report = tmp_path / "audit.txt"  # text goes to the file too, not nowhere
        as_text = run_cli("audit", "credit-scorer/1", "--output", str(report), env=env)
        assert as_text.returncode == 0
        assert as_text.stdout.strip() == f"audit written to {report} (overall_ok=True)"
        assert "Overall: ✓ All checks passed" in report.read_text()
        for fmt, check in (("html", "<html"), ("json", '"overall": true'), ("text", "✓")):
            path = tmp_path / f"verify.{fmt}"  # verify: the same --format/--output convention
            verified = run_cli(
                "verify",
                "model",
                "credit-scorer/1",
                "--format",
                fmt,
                "--output",
                str(path),
                env=env,
            )
            assert verified.returncode == 0, verified.stdout + verified.stderr
            assert str(path) in verified.stdout
            assert check in path.read_text()
        missing = run_cli("audit", "credit-scorer/9", env=env)
        assert missing.returncode == 2
        assert "Traceback" not in missing.stderr
    finally:
        gateway.stop()


def test_audit_of_a_model_with_nothing_anchored_is_not_ok(
    mlflow_store: str, local_gateway: Any
) -> None:
    import mlflow

    from tests.support.lifecycle import train

    trained = train(anchored=False)
    mlflow.register_model(trained.model_uri, "plain")
    result = run_cli("audit", "plain/1", "--format", "json")
    assert result.returncode == 1
    bundle = json.loads(result.stdout)
    assert bundle["overall_ok"] is False
    assert not any(stage["anchored"] for stage in bundle["stages"])


def test_audit_detects_a_swapped_artifact(demo_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "demo"
    shutil.copytree(demo_dir, copy)
    # the store records absolute artifact paths: point the copy's files at its own tree
    db = copy / "mlflow.db"
    import sqlite3

    with sqlite3.connect(db) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        for table, column in (
            ("runs", "artifact_uri"),
            ("experiments", "artifact_location"),
            ("logged_models", "artifact_location"),  # MLflow 3 only
            ("model_versions", "storage_location"),
            ("model_versions", "source"),
        ):
            if table not in tables:
                continue
            connection.execute(
                f"UPDATE {table} SET {column} = replace({column}, ?, ?)",
                (str(demo_dir), str(copy)),
            )
    # model.skops: MLflow 3's default sklearn format; model.pkl: MLflow 2's
    model = next(p for p in (copy / "artifacts").rglob("model.*") if p.suffix in (".skops", ".pkl"))
    model.write_bytes(model.read_bytes() + b"swap")
    again = run_cli(  # the demo's own hint
        "demo", "--workdir", str(copy), "--audit-again", fresh_process=True
    )
    assert again.returncode == 1, again.stdout + again.stderr
    assert "artifacts CHANGED" in again.stdout
    assert again.stdout.strip().endswith("ISSUES FOUND")
    gateway = LocalGateway(copy / "gateway", key_bits=2048).start()
    try:
        result = run_cli(
            "audit", "credit-scorer/1", "--format", "json", env=_demo_env(copy, gateway)
        )
    finally:
        gateway.stop()
    assert result.returncode == 1, result.stderr[-2000:]
    bundle = json.loads(result.stdout)
    assert bundle["artifact_integrity"]["ok"] is False
    assert bundle["artifact_integrity"]["changed"] == [model.name], bundle["artifact_integrity"]


def test_the_demos_closing_hint_audits_its_data_again(demo_dir: Path, tmp_path: Path) -> None:
    first = run_cli(
        "demo", "--workdir", str(tmp_path / "none"), "--audit-again", fresh_process=True
    )
    assert first.returncode == 2
    assert "holds no demo data" in first.stderr
    hint = f"ar-io-mlflow demo --workdir {demo_dir} --audit-again"
    again = run_cli(*hint.split()[1:], fresh_process=True)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "audit            ✓ 5 stages, 5 decisions, artifacts intact" in again.stdout
    assert again.stdout.strip().endswith("OK")


def test_export_and_verify_bundle_offline(demo_dir: Path, tmp_path: Path) -> None:
    gateway = LocalGateway(demo_dir / "gateway", key_bits=2048).start()
    try:
        env = _demo_env(demo_dir, gateway)
        bundle = tmp_path / "evidence"
        exported = run_cli("export", "credit-scorer@champion", "--output", str(bundle), env=env)
        assert exported.returncode == 0, exported.stdout + exported.stderr
        zipped = tmp_path / "evidence.zip"
        assert (
            run_cli("export", "credit-scorer/1", "--output", str(zipped), env=env).returncode == 0
        )
        online = run_cli("verify-bundle", str(bundle), "--online", env=env)
        assert online.returncode == 0, online.stdout
    finally:
        gateway.stop()
    manifest = json.loads((bundle / "manifest.json").read_text())
    stages = [record["stage"] for record in manifest["records"]]
    assert stages[:4] == ["training", "datasets", "registration", "alias"]
    assert stages.count("window") == 1  # the demo's five decisions, one signed window
    (window,) = [r for r in manifest["records"] if r["stage"] == "window"]
    assert len((bundle / window["decisions"]).read_bytes().splitlines()) == 5
    signer = json.loads((bundle / manifest["records"][0]["envelope"]).read_bytes())["public_key"]

    # offline: no MLflow, no gateway, a fresh home
    offline = {
        "MLFLOW_TRACKING_URI": "sqlite:////nonexistent/x.db",
        "ARIO_MLFLOW_HOME": str(tmp_path / "auditor"),
    }
    passed = run_cli("verify-bundle", str(bundle), "--trusted-key", signer, env=offline)
    assert passed.returncode == 0, passed.stdout
    assert "Overall: ✓ PASS" in passed.stdout
    assert run_cli("verify-bundle", str(zipped), env=offline).returncode == 0
    untrusted = run_cli("verify-bundle", str(bundle), "--trusted-key", "ab" * 32, env=offline)
    assert untrusted.returncode == 1
    assert "untrusted_issuer" in untrusted.stdout
    pinned_by_env = {**offline, "ARIO_MLFLOW_TRUSTED_KEYS": "ab" * 32}
    untrusted = run_cli("verify-bundle", str(bundle), env=pinned_by_env)
    assert untrusted.returncode == 1  # the environment's pins count, as for `verify`
    assert "untrusted_issuer" in untrusted.stdout

    payload = bundle / manifest["records"][2]["payload"]
    payload.write_bytes(payload.read_bytes().replace(b"credit-scorer", b"credit-scorex"))
    tampered = run_cli("verify-bundle", str(bundle), "--format", "json", env=offline)
    assert tampered.returncode == 1
    result = json.loads(tampered.stdout)
    problems = result["records"][2]["problems"]
    assert "payload file differs from the manifest hash" in problems
    assert any("payload_hash_mismatch" in p for p in problems)
    assert not (tmp_path / "auditor").exists()  # a verifier creates no keys or wallets


def _reference_bundle(target: Path) -> Path:
    """An evidence bundle made of the records ar-io-mlflow 0.3.0 minted."""
    import hashlib

    from tests.conftest import VECTORS_DIR

    stages = {
        "training": "training",
        "registration": "registration",
        "promotion": "promotion",
        "prediction-0": "prediction",
        "prediction-1": "prediction",
    }
    records = []
    for folder, stage in stages.items():
        source = VECTORS_DIR / "original-0.3.0" / folder
        tx_id = json.loads((source / "meta.json").read_text())["tx"]
        envelope, payload = (
            (source / "envelope.json").read_bytes(),
            (source / "payload.bin").read_bytes(),
        )
        (target / "records" / tx_id).mkdir(parents=True)
        (target / "records" / tx_id / "envelope.json").write_bytes(envelope)
        (target / "records" / tx_id / "payload.bin").write_bytes(payload)
        records.append(
            {
                "stage": stage,
                "label": folder,
                "tx_id": tx_id,
                "event_type": json.loads(envelope)["event_type"],
                "envelope": f"records/{tx_id}/envelope.json",
                "envelope_sha256": hashlib.sha256(envelope).hexdigest(),
                "payload": f"records/{tx_id}/payload.bin",
                "payload_sha256": hashlib.sha256(payload).hexdigest(),
                "receipt": None,
            }
        )
    manifest = {
        "schema": "ario.mlflow.evidence/v1",
        "model": "iris",
        "version": "1",
        "records": records,
    }
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


def test_reference_records_verify_with_the_cli(tmp_path: Path) -> None:
    bundle = _reference_bundle(tmp_path / "reference")
    signer = "0bbc346a57667c380120bd9c7fd7e51d2c5fdfea37cd2f5bf405b2c6bf6f2d78"
    result = run_cli("verify-bundle", str(bundle), "--trusted-key", signer, env={"NO_COLOR": "1"})
    assert result.returncode == 0, result.stdout
    assert "\033[" not in result.stdout  # NO_COLOR
    assert result.stdout.count("✓ ok") == 5
    broken = json.loads((bundle / "manifest.json").read_text())
    registration = next(r for r in broken["records"] if r["stage"] == "registration")
    promotion = bundle / next(r for r in broken["records"] if r["stage"] == "promotion")["envelope"]
    promotion.write_bytes(promotion.read_bytes().replace(registration["tx_id"].encode(), b"X" * 43))
    failed = run_cli("verify-bundle", str(bundle), "--format", "json")
    assert failed.returncode == 1
    problems = [p for r in json.loads(failed.stdout)["records"] for p in r["problems"]]
    assert any(p.startswith("signature") for p in problems)  # the link is signed


def test_attestation_writes_back_only_at_the_threshold(
    mlflow_store: str, local_gateway: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    from tests.support.lifecycle import train

    trained = train()
    monkeypatch.setenv("ARIO_MLFLOW_ARIO_VERIFY_URL", local_gateway.url)
    result = run_cli("verify", "run", trained.run_id, "--min-level", "4")
    assert result.returncode == 1  # level 3 is the highest: below the asked threshold
    assert "Pending verification" in result.stdout
    tags = mlflow.MlflowClient().get_run(trained.run_id).data.tags
    assert tags["ario.verify_status"] == "anchored"
    ok = run_cli("verify", "run", trained.run_id, "--format", "json")
    assert ok.returncode == 0, ok.stdout
    attestation = json.loads(ok.stdout)["checks"]["ario_attestation"]
    assert attestation["ok"] is True
    assert attestation["data_hash_matches"] is True
    assert attestation["attestation_signature_valid"] is True
    tags = mlflow.MlflowClient().get_run(trained.run_id).data.tags
    assert tags["ario.verify_status"] == "verified"
    assert tags["ario.attestation_level"] == str(attestation["attestation_level"])
