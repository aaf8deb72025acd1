"""The ar-io-proof 0.2.0 corpus, reproduced byte for byte; every negative rejected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ario_mlflow.proof.canonical import canonical_json
from ario_mlflow.proof.ed25519 import public_key_hex, signing_key_from_seed
from ario_mlflow.proof.envelope import (
    envelope_for_signature,
    sign_envelope,
    verify_envelope,
    verify_envelope_bytes,
)
from ario_mlflow.proof.hashing import sha256_hex
from ario_mlflow.proof.merkle import (
    audit_path,
    leaf_hash,
    merkle_root,
    tree_with_paths,
    verify_inclusion,
)
from tests.conftest import VECTORS_DIR

CORPUS = VECTORS_DIR / "ar-io-proof-0.2.0"


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _envelope_vectors() -> list[Path]:
    return sorted(CORPUS.glob("envelope-*.json")) + sorted(
        p for p in (CORPUS / "ario.events-v1").glob("events-*.json") if "chain" not in p.name
    )


def _signed_cases() -> list[tuple[str, dict[str, Any]]]:
    """Every (vector id, vector with inputs/expected_outputs), chained windows flattened."""
    cases = [(p.stem, _load(p)) for p in _envelope_vectors()]
    chain = _load(CORPUS / "ario.events-v1" / "events-checkpoint-chain-01.json")
    cases += [(f"{chain['vector_id']}-w{i}", w) for i, w in enumerate(chain["windows"], 1)]
    return cases


SIGNED = _signed_cases()


def _unsigned_envelope(vector: dict[str, Any]) -> dict[str, Any]:
    inputs = vector["inputs"]
    envelope = dict(inputs["envelope_pre_signature"])
    if "event_record" in inputs:  # external commitment: the record stays off-envelope
        envelope["payload_hash"] = sha256_hex(canonical_json(inputs["event_record"]))
    return envelope


def test_corpus_is_present_and_complete() -> None:
    assert len(SIGNED) == 11
    assert len(sorted(CORPUS.glob("merkle-tree-*.json"))) == 7
    assert len(sorted((CORPUS / "negatives").glob("*.json"))) == 5


@pytest.mark.parametrize(("vector_id", "vector"), SIGNED, ids=[c[0] for c in SIGNED])
def test_envelope_vector_reproduced_byte_for_byte(vector_id: str, vector: dict[str, Any]) -> None:
    expected = vector["expected_outputs"]
    key = signing_key_from_seed(bytes.fromhex(vector["fixed_keypair"]["ed25519_seed_hex"]))
    assert public_key_hex(key) == vector["fixed_keypair"]["ed25519_public_hex"]

    inputs = vector["inputs"]
    payload = inputs.get("event_record", inputs["envelope_pre_signature"].get("payload"))
    payload_bytes = canonical_json(payload)
    assert payload_bytes.hex() == expected["payload_jcs_bytes_hex"]
    assert sha256_hex(payload_bytes) == expected["payload_hash_hex"]

    signed = sign_envelope(_unsigned_envelope(vector), key)
    assert signed["payload_hash"] == expected["payload_hash_hex"]
    assert (
        canonical_json(envelope_for_signature(signed)).hex()
        == expected["envelope_for_sig_jcs_bytes_hex"]
    )
    assert signed["signature"] == expected["signature_hex"]
    if "envelope_jcs_bytes_hex" in expected:
        assert canonical_json(signed).hex() == expected["envelope_jcs_bytes_hex"]

    result = verify_envelope(signed, payload_bytes=payload_bytes)
    assert result.ok, result.errors
    assert result.signature_ok
    assert result.payload_hash_ok
    assert result.spec_version_ok


@pytest.mark.parametrize(("vector_id", "vector"), SIGNED, ids=[c[0] for c in SIGNED])
def test_underscore_keys_are_signed_outside_the_mlflow_profile(
    vector_id: str, vector: dict[str, Any]
) -> None:
    key = signing_key_from_seed(bytes.fromhex(vector["fixed_keypair"]["ed25519_seed_hex"]))
    signed = sign_envelope(_unsigned_envelope(vector), key)
    injected = {**signed, "_attacker_routing": "elsewhere"}
    result = verify_envelope(injected)
    assert not result.ok
    assert result.reason == "signature_invalid"


def test_chained_checkpoint_link() -> None:
    chain = _load(CORPUS / "ario.events-v1" / "events-checkpoint-chain-01.json")
    first, second = (w["inputs"]["event_record"] for w in chain["windows"])
    link = sha256_hex(canonical_json(first))
    assert link == chain["chain_link"]["window1_record_hash"]
    assert second["previous_hash"] == link == chain["chain_link"]["window2_previous_hash"]


def _merkle_cases() -> list[tuple[str, list[bytes], dict[str, Any]]]:
    """(id, leaf bytes, tree spec) for the plain trees and the events checkpoints."""
    cases = []
    for path in sorted(CORPUS.glob("merkle-tree-*.json")):
        tree = _load(path)
        leaves = [canonical_json(leaf["leaf_object"]) for leaf in tree["leaves"]]
        cases.append((path.stem, leaves, tree))
    checkpoints = [_load(CORPUS / "ario.events-v1" / "events-checkpoint-01.json")]
    checkpoints += _load(CORPUS / "ario.events-v1" / "events-checkpoint-chain-01.json")["windows"]
    for index, vector in enumerate(checkpoints):
        tree = vector["merkle"]
        leaves = [bytes.fromhex(leaf["envelope_jcs_bytes_hex"]) for leaf in tree["leaves"]]
        cases.append((f"checkpoint-{index}", leaves, tree))
    return cases


MERKLE = _merkle_cases()


@pytest.mark.parametrize(("tree_id", "leaves", "tree"), MERKLE, ids=[c[0] for c in MERKLE])
def test_merkle_vector_reproduced(tree_id: str, leaves: list[bytes], tree: dict[str, Any]) -> None:
    hashes = [leaf_hash(data) for data in leaves]
    for computed, leaf in zip(hashes, tree["leaves"], strict=True):
        if "leaf_hash_hex" in leaf:
            assert computed.hex() == leaf["leaf_hash_hex"]
    root = merkle_root(hashes)
    assert root.hex() == tree["expected_root_hex"]
    all_root, all_paths = tree_with_paths(hashes)
    assert all_root == root
    assert tree["inclusion_proofs"] or not hashes
    for proof in tree["inclusion_proofs"]:
        index = proof["leaf_index"]
        expected_path = [bytes.fromhex(h) for h in proof["audit_path_hex"]]
        assert audit_path(index, hashes) == expected_path
        assert all_paths[index] == expected_path
        assert verify_inclusion(hashes[index], index, len(hashes), expected_path, root)


def _negatives() -> list[tuple[str, dict[str, Any]]]:
    return [(p.stem, _load(p)) for p in sorted((CORPUS / "negatives").glob("*.json"))]


@pytest.mark.parametrize(("vector_id", "vector"), _negatives(), ids=[n[0] for n in _negatives()])
def test_negative_rejected_for_its_category(vector_id: str, vector: dict[str, Any]) -> None:
    assert vector["expect"]["accepts"] is False
    result = verify_envelope_bytes(bytes.fromhex(vector["envelope_bytes_hex"]), allow_legacy=True)
    assert not result.ok
    assert result.reason == vector["expect"]["reason"], result.errors
