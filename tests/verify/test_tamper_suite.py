"""The tamper suite ("Proving it"): one table of attacks on honest records.

Every row starts from the same honest world — two anchored training runs, two registered
versions (``credit/1`` from run A with the alias ``champion``, ``credit/2`` from run B),
three anchored decisions of ``credit/1`` with their witnesses and trace mirrors, all on a
real sqlite MLflow store and the local gateway — copied per row, applies ONE tamper, and
runs the real command line in this process (``ario_mlflow.cli.main``, ``--format json``,
the honest signer pinned with ``--trusted-key``). A tamper row must exit 1 and report the
named check failing with the named reason; the honest rows must exit 0 with the same
commands, so the table is not vacuous.

Building the world costs seconds (MLflow, sklearn, the signer and the uploader); copying
it costs milliseconds, so it is built once per module and every row gets a private copy
(the store records absolute artifact paths: the copy's store is pointed at its own tree).
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import pytest
import requests

from ario_mlflow.localgw import LocalGateway
from ario_mlflow.outbox.anchor import ArweaveAnchor
from ario_mlflow.proof.canonical import canonical_json
from ario_mlflow.proof.ed25519 import public_key_hex, signing_key_from_seed
from ario_mlflow.proof.envelope import sign_envelope
from tests.support.cli import invoke_cli
from tests.support.lifecycle import (
    Sandbox,
    copy_sandbox,
    copy_store,
    decide,
    inside,
    local_model_dir,
    register,
    sandbox,
    serialized_model,
    set_alias,
    stop_background,
    sync,
    trace_id_of,
    train,
)
from tests.support.loopback import Loopback, Reply, relay

#: Someone with write access to MLflow and the network, without the signing key.
ATTACKER = signing_key_from_seed(bytes(range(1, 33)))

# --- the honest world, built once --------------------------------------------------------


@dataclass(frozen=True)
class World:
    """The pristine environment every row copies; ``ids`` fill the table's templates."""

    sandbox: Sandbox
    ids: dict[str, str]
    decisions: tuple[dict[str, str], ...]  # decision_id, tx_id, trace_id, sequence

    @property
    def gateway(self) -> LocalGateway:
        return self.sandbox.gateway


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, gateway_key_file: Path, store_template: Path
) -> Iterator[World]:
    from ario_mlflow.lifecycle.traces import search_traces

    with (
        sandbox(tmp_path_factory, "tamper-world", gateway_key_file) as box,
        pytest.MonkeyPatch.context() as patch,
    ):
        uri = copy_store(store_template, box.root)
        with inside(box, patch):
            try:
                run_a, run_b = train(), train()
                assert run_a.anchored
                assert run_b.anchored
                client = register("credit", run_a, run_b)
                set_alias(client, "credit", "champion", "1", wait=False)
                predictions = decide("models:/credit/1")
                # a write-back that fails once is retried, by design
                assert sync(attempts=3)  # witnesses, trace mirrors and tags written back
                stop_background()  # nothing may write while rows copy the world
                tracking = mlflow.MlflowClient(uri)
                traces = {
                    t.info.tags.get("ario.decision_id"): trace_id_of(t)
                    for t in search_traces(tracking, ["0"], "tags.`ario.model_name` = 'credit'")
                }
                decisions = tuple(
                    {
                        "decision_id": p.decision_id,
                        "tx_id": str(p.tx_id),
                        "trace_id": traces[p.decision_id],
                        "sequence": str(p.record["sequence"]),
                    }
                    for p in predictions
                )
                versions = {v: tracking.get_model_version("credit", v).tags for v in ("1", "2")}
                assert "ario.alias_tx.champion" in versions["1"]
                ids = {
                    "run_a": run_a.run_id,
                    "run_b": run_b.run_id,
                    "model_a": run_a.model_uri,
                    "training_a": run_a.anchored["tx_id"],
                    "training_b": run_b.anchored["tx_id"],
                    "event_a": run_a.anchored["envelope"]["event_id"],
                    "registration_1": versions["1"]["ario.registration_tx"],
                    "registration_2": versions["2"]["ario.registration_tx"],
                    "signer": run_a.anchored["envelope"]["public_key"],
                    **{f"decision_{n}": d["decision_id"] for n, d in enumerate(decisions, 1)},
                    **{f"trace_{n}": d["trace_id"] for n, d in enumerate(decisions, 1)},
                    **{f"decision_tx_{n}": d["tx_id"] for n, d in enumerate(decisions, 1)},
                }
                assert [d["sequence"] for d in decisions] == ["1", "2", "3"]
                yield World(box, ids, decisions)
            finally:
                stop_background()


# --- one row's private copy of the world -------------------------------------------------


def _from_x_ar_io(name: str) -> bool:
    """The headers a gateway's reply keeps when the hostile gateway passes it on."""
    return name.lower().startswith("x-ar-io-")


def _forged(body: bytes) -> Reply:
    """``body`` with a digest header that matches it, as a lying gateway would send it."""
    digest = base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=")
    return Reply(200, body, {"X-AR-IO-Digest": digest.decode()})


@dataclass
class Scene:
    """One row's copy of the world, and what an attacker can do to it."""

    world: World
    root: Path
    monkeypatch: pytest.MonkeyPatch
    stack: ExitStack
    hostile: Loopback | None = field(default=None)

    @property
    def ids(self) -> dict[str, str]:
        return {**self.world.ids, "bundle": str(self.bundle)}

    @property
    def bundle(self) -> Path:
        return self.root / "evidence"

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def client(self) -> mlflow.MlflowClient:
        return mlflow.MlflowClient(self.tracking_uri)

    def run_dir(self, run_id: str) -> Path:
        return Path(self.client.get_run(run_id).info.artifact_uri.removeprefix("file://"))

    def model_dir(self) -> Path:
        return local_model_dir(self.ids["model_a"])

    def sql(self, statement: str, *parameters: object) -> None:
        """Write to the tracking store behind MLflow's back (it refuses some edits)."""
        with sqlite3.connect(self.root / "mlflow.db") as connection:
            assert connection.execute(statement, parameters).rowcount > 0, statement

    def raw(self, tx_id: str) -> bytes:
        """The exact bytes of the honest record at ``tx_id``, from the honest gateway."""
        response = requests.get(f"{self.world.gateway.url}/raw/{tx_id}", timeout=5)
        response.raise_for_status()
        return response.content

    def envelope(self, tx_id: str) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.raw(tx_id))
        return parsed

    def upload(self, envelope: dict[str, Any]) -> str:
        """Put bytes on the network as anyone can (a new TX id)."""
        result = ArweaveAnchor(deadline=10).upload_proof(envelope)
        assert result is not None
        return str(result["tx_id"])

    def serve_forged(self, tx_id: str, envelope: dict[str, Any]) -> None:
        """From now on the (only) read gateway answers ``tx_id`` with ``envelope``: a
        gateway that answers chosen TX ids with bytes of its own and relays everything else
        to the honest one."""
        if self.hostile is None:
            honest = relay(self.world.gateway.url, keep_header=_from_x_ar_io)
            self.hostile = self.stack.enter_context(Loopback(fallback=honest))
            self.monkeypatch.setenv("ARIO_MLFLOW_GATEWAYS", self.hostile.url)
            self.monkeypatch.setenv("ARIO_MLFLOW_GATEWAY_HOST", self.hostile.url)
        self.hostile.script("GET", f"/raw/{tx_id}", _forged(canonical_json(envelope)))


@pytest.fixture
def scene(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Scene]:
    copy = copy_sandbox(world.sandbox, tmp_path / "world")
    with inside(copy, monkeypatch), ExitStack() as stack:
        try:
            yield Scene(world, copy.root, monkeypatch, stack)
        finally:
            world.gateway.set_faults(None)


# --- the tampers ---------------------------------------------------------------------------


def no_tamper(scene: Scene) -> None:
    """Honest records."""


def flip_artifact_byte(scene: Scene) -> None:
    model_file = serialized_model(scene.model_dir())
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    model_file.write_bytes(bytes(data))


def add_artifact_file(scene: Scene) -> None:
    (scene.model_dir() / "backdoor.py").write_text("import os\n")


def remove_artifact_file(scene: Scene) -> None:
    (scene.model_dir() / "conda.yaml").unlink()


def rename_artifact_file(scene: Scene) -> None:
    model_file = serialized_model(scene.model_dir())
    model_file.rename(model_file.with_name("weights.bin"))


def edit_param_in_store(scene: Scene) -> None:
    scene.sql(
        "UPDATE params SET value = '100.0' WHERE run_uuid = ? AND key = 'C'", scene.ids["run_a"]
    )


def edit_metric_in_store(scene: Scene) -> None:
    """accuracy 0.93 -> 0.99 in both of the store's metric tables."""
    for table in ("metrics", "latest_metrics"):
        scene.sql(
            f"UPDATE {table} SET value = ? WHERE run_uuid = ? AND key = 'accuracy'",
            0.99,
            scene.ids["run_a"],
        )


def _training_witnesses(scene: Scene) -> list[Path]:
    ario = scene.run_dir(scene.ids["run_a"]) / "ario"
    return [ario / "events" / scene.ids["event_a"] / "payload.json", ario / "payload.json"]


def edit_training_witness(scene: Scene) -> None:
    """Both copies of the training payload, so that either path would be read."""
    for witness in _training_witnesses(scene):
        witness.write_bytes(witness.read_bytes().replace(b"0.93", b"0.99"))


def delete_event_witness_edit_legacy_copy(scene: Scene) -> None:
    """The never-overwritten per-event witness is gone; the 0.3.0 path is read instead."""
    event, legacy = _training_witnesses(scene)
    event.unlink()
    legacy.write_bytes(legacy.read_bytes().replace(b"0.93", b"0.99"))


def edit_decision_witness(scene: Scene) -> None:
    witness = (
        scene.run_dir(scene.ids["run_a"])
        / "ario/predictions"
        / scene.ids["decision_1"]
        / "payload.json"
    )
    payload = json.loads(witness.read_bytes())
    payload["output_hash"] = "0" * 64
    witness.write_bytes(canonical_json(payload))


def _forge_consistent_training_payload(scene: Scene) -> bytes:
    """The metric edited in the store and in both witnesses, so they agree; the payload."""
    edit_metric_in_store(scene)
    forged = json.loads(_training_witnesses(scene)[0].read_bytes())
    forged["metrics"]["accuracy"] = 0.99
    payload = canonical_json(forged)
    for witness in _training_witnesses(scene):
        witness.write_bytes(payload)
    return payload


def serve_edited_envelope(scene: Scene) -> None:
    """Edit a metric and the witness, and have a gateway serve the training record with
    ``payload_hash`` changed to match: everything agrees except the signature."""
    payload = _forge_consistent_training_payload(scene)
    envelope = scene.envelope(scene.ids["training_a"])
    envelope["payload_hash"] = hashlib.sha256(payload).hexdigest()
    scene.serve_forged(scene.ids["training_a"], envelope)


def gateway_flips_a_byte(scene: Scene) -> None:
    """The local gateway's ``tamper`` fault: one byte changed, the original digest header."""
    scene.world.gateway.set_faults(read={"tamper": True})


def swap_signature(scene: Scene) -> None:
    """Run A's record served with the (valid, same-key) signature of run B's record."""
    envelope = scene.envelope(scene.ids["training_a"])
    envelope["signature"] = scene.envelope(scene.ids["training_b"])["signature"]
    scene.serve_forged(scene.ids["training_a"], envelope)


def swap_public_key(scene: Scene) -> None:
    """Run A's record with the attacker's key in it, uploaded, and the run's tag moved."""
    envelope = scene.envelope(scene.ids["training_a"])
    envelope["public_key"] = public_key_hex(ATTACKER)
    scene.client.set_tag(scene.ids["run_a"], "ario.training_tx", scene.upload(envelope))


def resign_with_another_key(scene: Scene) -> None:
    """Edit the metric, re-sign an honest-looking payload with the attacker's key, upload
    it, rewrite both witnesses and move the tag: only the signer gives it away."""
    payload = _forge_consistent_training_payload(scene)
    honest = scene.envelope(scene.ids["training_a"])
    unsigned = {k: v for k, v in honest.items() if k not in ("signature", "public_key")}
    unsigned["payload_hash"] = hashlib.sha256(payload).hexdigest()
    tx_id = scene.upload(sign_envelope(unsigned, ATTACKER))
    scene.client.set_tag(scene.ids["run_a"], "ario.training_tx", tx_id)


def point_run_at_another_runs_proof(scene: Scene) -> None:
    scene.client.set_tag(scene.ids["run_a"], "ario.training_tx", scene.ids["training_b"])


def point_version_at_another_versions_proof(scene: Scene) -> None:
    scene.client.set_model_version_tag(
        "credit", "2", "ario.registration_tx", scene.ids["registration_1"]
    )


def point_decision_trace_at_another_decision(scene: Scene) -> None:
    scene.client.set_trace_tag(
        scene.ids["trace_1"], "ario.prediction_tx", scene.world.decisions[1]["tx_id"]
    )


def relink_the_registration(scene: Scene) -> None:
    """A registration record that links to the wrong training record (made with the
    signing key, as a buggy or compromised producer would, uploaded, tag moved): every
    other check passes, so the chain check alone must catch it."""
    from ario_mlflow.keys import load_signing_identity

    identity = load_signing_identity(create=False)
    assert identity is not None
    assert identity.public_key_hex == scene.ids["signer"]
    honest = scene.envelope(scene.ids["registration_1"])
    unsigned = {k: v for k, v in honest.items() if k not in ("signature", "public_key")}
    unsigned["previous_hash"] = scene.ids["training_b"]
    tx_id = scene.upload(sign_envelope(unsigned, identity.key))
    scene.client.set_model_version_tag("credit", "1", "ario.registration_tx", tx_id)


def edit_trace_mirror(scene: Scene) -> None:
    """A different output on the decision's trace, still canonical JSON with every key."""
    trace = scene.client.get_trace(scene.ids["trace_1"])
    mirror = json.loads(trace.info.tags["ario.payload_json"])
    mirror["output_hash"] = "0" * 64
    scene.client.set_trace_tag(
        scene.ids["trace_1"], "ario.payload_json", canonical_json(mirror).decode()
    )


def _delete_trace(scene: Scene, trace_id: str) -> int:
    """``delete_traces`` of one trace: ``trace_ids=`` on MLflow 3, ``request_ids=`` on 2."""
    try:
        return int(scene.client.delete_traces("0", trace_ids=[trace_id]))
    except TypeError:
        return int(scene.client.delete_traces("0", request_ids=[trace_id]))


def delete_a_decision(scene: Scene) -> None:
    """The second of three decisions disappears from MLflow."""
    assert _delete_trace(scene, scene.ids["trace_2"]) == 1


def delete_the_last_decision(scene: Scene) -> None:
    """The newest decision of the stream disappears from MLflow, trace and witness: no
    gap is left behind."""
    assert _delete_trace(scene, scene.ids["trace_3"]) == 1
    witness = scene.run_dir(scene.ids["run_a"]) / "ario/predictions" / scene.ids["decision_3"]
    shutil.rmtree(witness)


def redirect_version_source(scene: Scene) -> None:
    """One column: credit/1's ``source`` points at run B's model (other files)."""
    other = scene.client.get_model_version("credit", "2").source
    scene.sql("UPDATE model_versions SET source = ? WHERE name = 'credit' AND version = 1", other)


def delete_run_tags_and_flip_artifact(scene: Scene) -> None:
    """The run's ``ario.*`` tags are deleted, then the model file changed: the signed
    lineage (the registration's chain link) still names the training record."""
    run_id = scene.ids["run_a"]
    for key in [k for k in scene.client.get_run(run_id).data.tags if k.startswith("ario.")]:
        scene.client.delete_tag(run_id, key)
    flip_artifact_byte(scene)


def move_alias_with_the_plain_client(scene: Scene) -> None:
    """@champion moved to the other anchored version, bypassing ``ArioMlflowClient``."""
    scene.client.set_registered_model_alias("credit", "champion", "2")


def trace_borrows_another_decisions_record(scene: Scene) -> None:
    """Trace 1 pointed at decision 2's TX, its own decision id deleted."""
    scene.client.set_trace_tag(
        scene.ids["trace_1"], "ario.prediction_tx", scene.ids["decision_tx_2"]
    )
    scene.client.delete_trace_tag(scene.ids["trace_1"], "ario.decision_id")


def junk_in_a_deleted_decisions_witness(scene: Scene) -> None:
    """The newest decision's trace deleted, its witness payload replaced by junk."""
    assert _delete_trace(scene, scene.ids["trace_3"]) == 1
    witness = scene.run_dir(scene.ids["run_a"]) / "ario/predictions" / scene.ids["decision_3"]
    (witness / "payload.json").write_bytes(b'{"decision_id": "junk"}')


def gateway_search_fails(scene: Scene) -> None:
    """Every GraphQL search errors: the audit cannot say that no decision was deleted."""
    scene.world.gateway.set_faults(graphql={"fail_rate": 1.0})


def export_bundle(scene: Scene) -> dict[str, Any]:
    """``ar-io-mlflow export credit/1`` of the honest world; its manifest."""
    code, stdout, stderr = invoke_cli(["export", "credit/1", "--output", str(scene.bundle)])
    assert code == 0, stdout + stderr
    manifest: dict[str, Any] = json.loads((scene.bundle / "manifest.json").read_bytes())
    assert {"training", "registration", "prediction"} <= {r["stage"] for r in manifest["records"]}
    return manifest


def _rewrite_manifest(scene: Scene, manifest: dict[str, Any]) -> None:
    """Recompute every file hash in the manifest: the tamperer keeps the bundle consistent."""
    for entry in manifest["records"]:
        for name in ("envelope", "payload"):
            if entry.get(name):
                data = (scene.bundle / entry[name]).read_bytes()
                entry[f"{name}_sha256"] = hashlib.sha256(data).hexdigest()
    (scene.bundle / "manifest.json").write_text(json.dumps(manifest, indent=2))


def _entry(manifest: dict[str, Any], stage: str) -> dict[str, Any]:
    found: dict[str, Any] = next(r for r in manifest["records"] if r["stage"] == stage)
    return found


def edit_bundle_payload(scene: Scene) -> None:
    manifest = export_bundle(scene)
    payload = scene.bundle / _entry(manifest, "registration")["payload"]
    payload.write_bytes(
        payload.read_bytes().replace(b'"artifact_verified":true', b'"artifact_verified":false')
    )
    _rewrite_manifest(scene, manifest)


def swap_bundle_training_record(scene: Scene) -> None:
    """Run B's (valid) training record and payload filed under run A's training TX id."""
    manifest = export_bundle(scene)
    training = _entry(manifest, "training")
    other = scene.envelope(scene.ids["training_b"])
    witness = scene.run_dir(scene.ids["run_b"]) / "ario/events" / other["event_id"] / "payload.json"
    (scene.bundle / training["envelope"]).write_bytes(scene.raw(scene.ids["training_b"]))
    (scene.bundle / training["payload"]).write_bytes(witness.read_bytes())
    _rewrite_manifest(scene, manifest)


def drop_bundle_training_record(scene: Scene) -> None:
    """The training record is left out of the bundle (and of its manifest)."""
    manifest = export_bundle(scene)
    manifest["records"] = [r for r in manifest["records"] if r["stage"] != "training"]
    _rewrite_manifest(scene, manifest)


# --- the table -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """``check`` must report ``ok`` with a reason starting with ``reason`` (both formatted
    with the world's ids); ``detail``, if given, must appear in the check's JSON."""

    check: str
    reason: str
    ok: bool | None = False
    detail: str | None = None


@dataclass(frozen=True)
class Case:
    id: str
    tamper: Callable[[Scene], object]  # its return value is ignored
    args: tuple[str, ...]
    expect: Expect | None  # None: honest, exit 0


RUN_A = ("verify", "run", "{run_a}")
MODEL_1 = ("verify", "model", "credit/1")
DECISION_1 = ("verify", "decision", "{decision_1}")
TRACE_1 = ("verify", "trace", "{trace_1}")
AUDIT_1 = ("audit", "credit@champion")
BUNDLE = ("verify-bundle", "{bundle}")
ARTIFACTS = "live_mlflow_mismatch: artifact_checksums"

CASES = [
    Case("honest run", no_tamper, RUN_A, None),
    Case("honest model", no_tamper, MODEL_1, None),
    Case("honest decision", no_tamper, DECISION_1, None),
    Case("honest trace", no_tamper, TRACE_1, None),
    Case("honest tx", no_tamper, ("verify", "tx", "{training_a}"), None),
    Case("honest audit", no_tamper, AUDIT_1, None),
    Case("artifact byte flipped", flip_artifact_byte, RUN_A, Expect("source_of_truth", ARTIFACTS)),
    Case(
        "artifact file added",
        add_artifact_file,
        MODEL_1,
        Expect("source_of_truth", "live_mlflow_mismatch: artifact_hash, artifact_verified"),
    ),
    Case(
        "artifact file removed",
        remove_artifact_file,
        AUDIT_1,
        Expect(
            "audit:artifact_integrity", "artifacts differ from training record", detail="conda.yaml"
        ),
    ),
    Case(
        "artifact file renamed", rename_artifact_file, RUN_A, Expect("source_of_truth", ARTIFACTS)
    ),
    Case(
        "param edited in the store",
        edit_param_in_store,
        RUN_A,
        Expect("source_of_truth", "live_mlflow_mismatch: params"),
    ),
    Case(
        "metric edited in the store",
        edit_metric_in_store,
        RUN_A,
        Expect("source_of_truth", "live_mlflow_mismatch: metric_history, metrics, metrics_exact"),
    ),
    Case(
        "training payload witness edited",
        edit_training_witness,
        RUN_A,
        Expect("anchored_bytes", "payload_hash_mismatch", detail="ario/events/"),
    ),
    Case(
        "per-event witness deleted, 0.3.0 copy edited",
        delete_event_witness_edit_legacy_copy,
        RUN_A,
        Expect("anchored_bytes", "payload_hash_mismatch", detail='"path": "ario/payload.json"'),
    ),
    Case(
        "decision payload witness edited",
        edit_decision_witness,
        DECISION_1,
        Expect("anchored_bytes", "payload_hash_mismatch"),
    ),
    Case(
        "envelope payload_hash edited (served by a gateway)",
        serve_edited_envelope,
        RUN_A,
        Expect("signature", "signature_invalid"),
    ),
    Case(
        "gateway flips a byte, keeps the digest header",
        gateway_flips_a_byte,
        RUN_A,
        Expect("signature", "no_envelope", ok=None, detail="bytes do not match X-AR-IO-Digest"),
    ),
    Case(
        "signature swapped",
        swap_signature,
        ("verify", "tx", "{training_a}"),
        Expect("signature", "signature_invalid"),
    ),
    Case("public key swapped", swap_public_key, RUN_A, Expect("signature", "signature_invalid")),
    Case(
        "re-signed by another key, tags moved",
        resign_with_another_key,
        RUN_A,
        Expect("issuer", "untrusted_issuer: signed by an unpinned key ed25519:"),
    ),
    Case(
        "proof of another run",
        point_run_at_another_runs_proof,
        RUN_A,
        Expect(
            "subject", "subject_mismatch: record is about run_id='{run_b}' not run_id='{run_a}'"
        ),
    ),
    Case(
        "proof of another model version",
        point_version_at_another_versions_proof,
        ("verify", "model", "credit/2"),
        Expect("subject", "subject_mismatch: record is about version='1' not version='2'"),
    ),
    Case(
        "proof of another decision",
        point_decision_trace_at_another_decision,
        TRACE_1,
        Expect("subject", "subject_mismatch: record is about decision_id='{decision_2}'"),
    ),
    Case(
        "chain: run tag moved under the registration",
        point_run_at_another_runs_proof,  # the registration no longer links to the tag's TX
        MODEL_1,
        Expect(
            "chain",
            "chain_link_broken: previous_hash is '{training_a}', expected '{training_b}'",
        ),
    ),
    Case(
        "chain: registration re-linked",
        relink_the_registration,
        MODEL_1,
        Expect(
            "chain",
            "chain_link_broken: previous_hash is '{training_b}', expected '{training_a}'",
        ),
    ),
    Case(
        "trace mirror edited",
        edit_trace_mirror,
        TRACE_1,
        Expect("source_of_truth", "live_mlflow_mismatch: output_hash"),
    ),
    Case("honest bundle", export_bundle, BUNDLE, None),
    Case(
        "bundle: payload edited, manifest re-hashed",
        edit_bundle_payload,
        BUNDLE,
        Expect("bundle:registration", "anchored_bytes: payload_hash_mismatch"),
    ),
    Case(
        "bundle: another run's training record swapped in",
        swap_bundle_training_record,
        BUNDLE,
        Expect("bundle:training", "subject_mismatch: training record is about run_id='{run_b}'"),
    ),
    Case(
        "bundle: training record left out",
        drop_bundle_training_record,
        BUNDLE,
        Expect("bundle", "the bundle needs exactly one training record, it has 0"),
    ),
    Case(
        "decision deleted (sequence gap)",
        delete_a_decision,
        AUDIT_1,
        Expect("audit:sequence_gaps", "missing sequence numbers [2]"),
    ),
    Case(
        # no gap is left behind: the decisions anchored on Arweave are the count
        "decision deleted at the end of its stream",
        delete_the_last_decision,
        AUDIT_1,
        Expect("audit:onchain", "anchored but not in MLflow: ['{decision_tx_3}']"),
    ),
    Case(
        "source redirected",
        redirect_version_source,
        MODEL_1,
        Expect("source_of_truth", "live_mlflow_mismatch: source"),
    ),
    Case(
        "source redirected (audit)",
        redirect_version_source,
        AUDIT_1,
        Expect(
            "audit:artifact_integrity",
            "model version credit/1 has source",
            detail="the version was redirected",
        ),
    ),
    Case(
        "run tags deleted, artifact changed",
        delete_run_tags_and_flip_artifact,
        AUDIT_1,
        Expect("audit:artifact_integrity", "artifacts differ from training record"),
    ),
    Case(
        "alias moved without a record",
        move_alias_with_the_plain_client,
        AUDIT_1,
        Expect("audit:stage:alias_current", "alias_unrecorded: @champion points at v2"),
    ),
    Case(
        "trace borrows another decision's record",
        trace_borrows_another_decisions_record,
        TRACE_1,
        Expect("subject", "subject_mismatch: record is about decision_id='{decision_2}'"),
    ),
    Case(
        "junk left in a deleted decision's witness",
        junk_in_a_deleted_decisions_witness,
        AUDIT_1,
        Expect("audit:onchain", "anchored but not in MLflow: ['{decision_tx_3}']"),
    ),
    Case(
        "gateway search fails",
        gateway_search_fails,
        AUDIT_1,
        Expect("audit:completeness", "unchecked: the audit cannot say", ok=None),
    ),
]


def _observe(report: dict[str, Any], check: str) -> tuple[bool | None, list[str], Any]:
    """``(ok, reasons, the check's JSON)`` of one check of a command's JSON report."""
    if check == "audit:artifact_integrity":
        found = report["artifact_integrity"]
        return found["ok"], [found["reason"]], found
    if check == "audit:sequence_gaps":
        gaps = report["decisions"]["sequence_gaps"]
        return not gaps, [f"missing sequence numbers {g['missing']}" for g in gaps], gaps
    if check == "audit:onchain":
        onchain = report["decisions"]["onchain"]
        return onchain["ok"], [f"anchored but not in MLflow: {onchain['missing']}"], onchain
    if check == "audit:completeness":
        decisions = report["decisions"]
        return decisions["onchain"]["ok"], [decisions["completeness"]], decisions["onchain"]
    if check.startswith("audit:stage:"):
        stage = next(s for s in report["stages"] if s["stage"] == check.split(":")[2])
        return stage["ok"], [stage["reason"] or ""], stage
    if check == "bundle":
        return report["ok"], list(report.get("problems", [])), report.get("problems")
    if check.startswith("bundle:"):
        record = next(r for r in report["records"] if r["stage"] == check.split(":")[1])
        return record["ok"], record["problems"], record
    found = report["checks"][check]
    return found["ok"], [found.get("reason") or ""], found


def _passed(report: dict[str, Any]) -> bool:
    return any(report.get(key) is True for key in ("overall", "overall_ok", "ok"))


@pytest.mark.parametrize(
    "case",
    [pytest.param(case, id=case.id) for case in CASES],
)
def test_tamper(case: Case, scene: Scene) -> None:
    case.tamper(scene)
    ids = scene.ids
    args = [part.format(**ids) for part in case.args]
    code, stdout, stderr = invoke_cli([*args, "--format", "json", "--trusted-key", ids["signer"]])
    assert stdout, stderr
    report = json.loads(stdout)
    if case.expect is None:
        assert (code, _passed(report)) == (0, True), json.dumps(report, indent=2)[-4000:]
        return
    assert code == 1, json.dumps(report, indent=2)[-4000:]
    assert not _passed(report)
    ok, reasons, found = _observe(report, case.expect.check)
    reason = case.expect.reason.format(**ids)
    assert ok is case.expect.ok, found
    assert any(r.startswith(reason) for r in reasons), (reason, found)
    if case.expect.detail is not None:
        assert case.expect.detail in json.dumps(found) + str(report.get("fetch_error")), found
