"""Batched decisions in an evidence bundle: exported whole, verified offline, and every
way an insider could edit the zip afterwards is caught with its reason."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import pytest

from ario_mlflow.lifecycle.serving import VerifiedModel
from ario_mlflow.outbox.anchor import ArweaveAnchor
from ario_mlflow.proof.canonical import canonical_json
from ario_mlflow.proof.hashing import sha256_hex
from ario_mlflow.verify.bundle import export_bundle, verify_bundle
from tests.support.lifecycle import FEATURES, register, set_alias, sync, train


@pytest.fixture
def bundle(
    mlflow_store: str, local_gateway: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Path:
    """Five decisions of credit/1 in windows of two (three windows), exported."""
    monkeypatch.setenv("ARIO_MLFLOW_WINDOW_SIZE", "2")
    client = register("credit", train())
    set_alias(client, "credit", "champion", "1", wait=False)
    model = VerifiedModel("models:/credit@champion")
    made = [model.predict(FEATURES.iloc[[row]]) for row in range(5)]
    assert made[-1].wait_for_anchor(30)
    assert sync()
    output = tmp_path / "evidence"
    export_bundle("credit@champion", output, client=mlflow.MlflowClient(), anchor=ArweaveAnchor())
    return output


def _windows(bundle: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    manifest = json.loads((bundle / "manifest.json").read_text())
    windows = [r for r in manifest["records"] if r["stage"] == "window"]
    windows.sort(key=lambda r: json.loads((bundle / r["payload"]).read_bytes())["first_seq"])
    return manifest, windows


def _rehash(bundle: Path, manifest: dict[str, Any]) -> None:
    """What a careful attacker does after editing files: fix the bundle's own hashes."""
    for record in manifest["records"]:
        for key in ("envelope", "payload", "decisions"):
            if record.get(key):
                record[f"{key}_sha256"] = sha256_hex((bundle / record[key]).read_bytes())
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2))


def _problems(bundle: Path) -> list[str]:
    result = verify_bundle(bundle)
    assert result["ok"] is False
    assert result["verdict"] == "fail"
    return [p for r in result["records"] for p in r["problems"]]


def test_an_honest_bundle_of_windows_passes_offline(bundle: Path) -> None:
    manifest, windows = _windows(bundle)
    assert len(windows) == 3
    assert manifest["windows_truncated"] is False
    result = verify_bundle(bundle)
    assert result["ok"] is True, [r["problems"] for r in result["records"]]
    assert sum(r["decision_count"] for r in result["records"] if r["stage"] == "window") == 5


def _edit_decision(bundle: Path) -> None:
    manifest, windows = _windows(bundle)
    path = bundle / windows[1]["decisions"]
    lines = path.read_bytes().splitlines()
    payload = json.loads(lines[0])
    payload["output_hash"] = "sha256:" + "f" * 64
    lines[0] = canonical_json(payload)
    path.write_bytes(b"\n".join(lines) + b"\n")
    _rehash(bundle, manifest)


def _delete_decision(bundle: Path) -> None:
    manifest, windows = _windows(bundle)
    path = bundle / windows[0]["decisions"]
    path.write_bytes(path.read_bytes().splitlines(keepends=True)[0])
    _rehash(bundle, manifest)


def _drop_window(bundle: Path) -> None:
    manifest, windows = _windows(bundle)
    manifest["records"] = [r for r in manifest["records"] if r["tx_id"] != windows[1]["tx_id"]]
    _rehash(bundle, manifest)


def _swap_manifests(bundle: Path) -> None:
    manifest, windows = _windows(bundle)
    first, second = (bundle / windows[0]["payload"]), (bundle / windows[1]["payload"])
    a, b = first.read_bytes(), second.read_bytes()
    first.write_bytes(b)
    second.write_bytes(a)
    _rehash(bundle, manifest)


def _reorder_chain(bundle: Path) -> None:
    """Swap the decisions of two windows: each file would still be a valid window."""
    manifest, windows = _windows(bundle)
    first, second = (bundle / windows[0]["decisions"]), (bundle / windows[1]["decisions"])
    a, b = first.read_bytes(), second.read_bytes()
    first.write_bytes(b)
    second.write_bytes(a)
    _rehash(bundle, manifest)


def _edit_envelope(bundle: Path) -> None:
    manifest, windows = _windows(bundle)
    path = bundle / windows[2]["envelope"]
    envelope = json.loads(path.read_bytes())
    envelope["previous_hash"] = "GENESIS"
    path.write_bytes(canonical_json(envelope))
    _rehash(bundle, manifest)


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "a decision edited": (_edit_decision, "window_root_mismatch"),
    "a decision deleted": (_delete_decision, "window_root_mismatch"),
    "a window left out": (_drop_window, "chain_link_broken"),
    "manifests swapped between windows": (_swap_manifests, "anchored_bytes"),
    "decisions swapped between windows (reordered)": (_reorder_chain, "window_root_mismatch"),
    "an envelope field edited": (_edit_envelope, "signature"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_tampered_bundle_of_windows_fails(case: str, bundle: Path) -> None:
    tamper, reason = CASES[case]
    tamper(bundle)
    problems = _problems(bundle)
    assert any(reason in p for p in problems), problems


def test_a_bundle_in_a_zip_is_checked_the_same(bundle: Path, tmp_path: Path) -> None:
    archive = Path(shutil.make_archive(str(tmp_path / "evidence"), "zip", bundle))
    assert verify_bundle(archive)["ok"] is True


def test_an_export_limit_above_mlflows_search_cap_works(bundle: Path, tmp_path: Path) -> None:
    """MLflow refuses a trace search of more than 50,000 results; the export pages."""
    output = tmp_path / "large"
    export_bundle(
        "credit@champion",
        output,
        client=mlflow.MlflowClient(),
        anchor=ArweaveAnchor(),
        decisions=100_000,
    )
    assert verify_bundle(output)["ok"] is True
