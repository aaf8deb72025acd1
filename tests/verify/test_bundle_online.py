"""``verify-bundle --online`` (issue 13): a gateway that cannot be asked is not a gateway
that holds other bytes. Down, refusing or silent gateways make the online check "not
checked" (exit 1, saying it could not run); a reachable gateway serving other bytes fails
the record as tampered; an honest bundle with the gateway up passes.

Real parts: a sqlite MLflow store, the local gateway over HTTP, real sockets for the
closed and the silent gateway, the command line in a subprocess.
"""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ario_mlflow.lifecycle.registry import ArioMlflowClient
from ario_mlflow.proof.canonical import canonical_json
from ario_mlflow.proof.ed25519 import signing_key_from_seed
from ario_mlflow.proof.envelope import sign_envelope
from tests.support.cli import run_cli
from tests.support.lifecycle import train

#: Someone who can edit the bundle, without the signing key.
ATTACKER = signing_key_from_seed(bytes(range(7, 39)))
#: What the old code said whenever the gateways did not return the bytes.
OLD_TAMPER_TEXT = "does not hold these exact bytes"


@pytest.fixture
def bundle(mlflow_store: str, local_gateway: Any, tmp_path: Path) -> Path:
    """An exported evidence bundle of ``credit/1`` (trained, registered, aliased)."""
    trained = train()
    client = ArioMlflowClient()
    client.create_registered_model("credit")
    client.create_model_version("credit", trained.model_uri, run_id=trained.run_id)
    assert client.wait_for_anchor("registration", "credit", "1", timeout=30)
    client.set_registered_model_alias("credit", "champion", "1")
    assert client.wait_for_anchor("alias", "credit", "champion", timeout=30)
    output = tmp_path / "evidence"
    exported = run_cli("export", "credit/1", "--output", str(output))
    assert exported.returncode == 0, exported.stdout + exported.stderr
    return output


def _closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def silent_gateway() -> Iterator[str]:
    """A gateway that accepts connections and never answers (every read times out)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def _gateways(*urls: str) -> dict[str, str]:
    return {"ARIO_MLFLOW_GATEWAYS": ",".join(urls), "ARIO_MLFLOW_GATEWAY_HOST": urls[0]}


def _verify_json(bundle: Path, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    result = run_cli("verify-bundle", str(bundle), "--online", "--format", "json", env=env)
    report: dict[str, Any] = json.loads(result.stdout)
    return result.returncode, report


def test_unreachable_gateways_make_the_online_check_unchecked_not_tampered(
    bundle: Path, local_gateway: Any
) -> None:
    local_gateway.stop()
    closed = f"http://127.0.0.1:{_closed_port()}"
    env = _gateways(closed, local_gateway.url)

    text = run_cli("verify-bundle", str(bundle), "--online", env=env)
    assert text.returncode == 1, text.stdout + text.stderr
    assert OLD_TAMPER_TEXT not in text.stdout
    assert "serves other bytes" not in text.stdout
    assert "online check could not run" in text.stdout
    assert f"could not reach {closed} (cannot connect: Connection refused)" in text.stdout
    assert "Overall: ? UNCHECKED" in text.stdout

    code, report = _verify_json(bundle, env)
    assert code == 1
    assert report["verdict"] == "unchecked"
    assert report["ok"] is False
    assert report["online"]["unchecked"] == len(report["records"]) > 0
    for record in report["records"]:
        assert record["ok"] is None, record  # offline checks passed; online unknown
        assert record["problems"] == []
        assert record["online"]["state"] == "unchecked"
        assert record["online"]["ok"] is None
        reason = record["online"]["reason"]
        assert f"could not reach {closed}" in reason
        assert f"could not reach {local_gateway.url}" in reason
        assert "\n" not in reason
        assert [a["reached"] for a in record["online"]["answers"]] == [False, False]
        assert [a["same_bytes"] for a in record["online"]["answers"]] == [None, None]


def test_a_silent_gateway_is_asked_once_and_reported_unchecked(
    bundle: Path, silent_gateway: str
) -> None:
    """A gateway that times out is not waited for again for every record."""
    started = time.monotonic()
    code, report = _verify_json(bundle, _gateways(silent_gateway))
    elapsed = time.monotonic() - started
    assert code == 1
    assert report["verdict"] == "unchecked"
    assert all(r["online"]["state"] == "unchecked" for r in report["records"])
    assert all(
        f"could not reach {silent_gateway}" in r["online"]["reason"] for r in report["records"]
    )
    # read timeout 2 s (fast_network): one wait, not one per record
    assert elapsed < 2 * 5 + 10, elapsed


def _resign_training_record(bundle: Path) -> str:
    """Replace the bundled training envelope by the same record signed with another key,
    and keep the manifest's hashes consistent: every offline check still passes (without a
    pinned key), only the gateways can tell. Returns the record's TX id."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    entry = next(r for r in manifest["records"] if r["stage"] == "training")
    honest = json.loads((bundle / entry["envelope"]).read_bytes())
    unsigned = {k: v for k, v in honest.items() if k not in ("signature", "public_key")}
    forged = canonical_json(sign_envelope(unsigned, ATTACKER))
    (bundle / entry["envelope"]).write_bytes(forged)
    entry["envelope_sha256"] = hashlib.sha256(forged).hexdigest()
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2))
    tx_id: str = entry["tx_id"]
    return tx_id


def test_other_bytes_on_a_reachable_gateway_fail_as_tampered(
    bundle: Path, local_gateway: Any
) -> None:
    tx_id = _resign_training_record(bundle)
    offline = run_cli("verify-bundle", str(bundle))
    assert offline.returncode == 0, offline.stdout  # the edit is invisible offline

    code, report = _verify_json(bundle)
    assert code == 1
    assert report["verdict"] == "fail"
    training = next(r for r in report["records"] if r["tx_id"] == tx_id)
    assert training["ok"] is False
    assert training["online"]["state"] == "differs"
    assert training["online"]["reason"].startswith(f"{local_gateway.url} serves other bytes")
    assert [a["same_bytes"] for a in training["online"]["answers"]] == [False]
    assert any(p.startswith("online: ") and "serves other bytes" in p for p in training["problems"])
    others = [r for r in report["records"] if r["tx_id"] != tx_id]
    assert others
    assert all(r["online"]["state"] == "verified" for r in others)
    assert report["online"]["differs"] == 1
    assert report["online"]["unchecked"] == 0

    text = run_cli("verify-bundle", str(bundle), "--online")
    assert text.returncode == 1
    assert "serves other bytes for this TX" in text.stdout
    assert "could not run" not in text.stdout
    assert "Overall: ✗ FAIL" in text.stdout


@pytest.mark.parametrize(
    ("tx_id", "reason"),
    [
        ("A" * 43, "no gateway holds this TX (HTTP 404 from {url})"),
        ("not-a-tx-id", "no gateway can hold this TX: 'not-a-tx-id' is not an Arweave TX id"),
    ],
)
def test_a_record_no_gateway_has_fails(
    bundle: Path, local_gateway: Any, tx_id: str, reason: str
) -> None:
    """A record filed under a TX id the gateways do not have ("not found" from all, or not
    a TX id at all) is missing: a failure, never "not checked" and never a traceback."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    entry = next(r for r in manifest["records"] if r["stage"] == "alias")
    entry["tx_id"] = tx_id
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2))
    code, report = _verify_json(bundle)
    assert code == 1
    assert report["verdict"] == "fail"
    record = next(r for r in report["records"] if r["tx_id"] == tx_id)
    assert record["ok"] is False
    assert record["online"]["state"] == "missing"
    assert record["online"]["reason"].startswith(reason.format(url=local_gateway.url))


def test_an_honest_bundle_passes_online(bundle: Path, local_gateway: Any) -> None:
    code, report = _verify_json(bundle)
    assert code == 0, report
    assert report["verdict"] == "pass"
    assert report["online"]["verified"] == len(report["records"])
    assert all(r["online"]["gateway"] == local_gateway.url for r in report["records"])
    text = run_cli("verify-bundle", str(bundle), "--online")
    assert text.returncode == 0, text.stdout
    assert "the gateways serve every record's exact bytes" in text.stdout
    assert "Overall: ✓ PASS" in text.stdout
