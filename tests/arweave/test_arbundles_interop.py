"""Cross-check our ANS-104 items against @dha-team/arbundles 1.0.4 (what Turbo runs).

Both directions: items we build must verify in arbundles with the same ids (and tampered
ones must not); items arbundles builds must parse and verify here with identical fields.
Needs Node and ``npm ci --prefix tests/arweave/interop``; without them this test fails
rather than skips, because it is the only proof that Turbo accepts what we upload.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ario_mlflow.arweave.dataitem import (
    DataItem,
    Tag,
    create_data_item,
    parse_data_item,
    verify_data_item,
)
from ario_mlflow.arweave.encoding import b64url_encode
from ario_mlflow.arweave.signers import ArweaveSigner, Ed25519Signer

INTEROP_DIR = Path(__file__).parent / "interop"
SCRIPT = INTEROP_DIR / "interop.js"
SEED = bytes(range(100, 132))
TARGET = bytes(range(200, 232))
ANCHOR = bytes(range(50, 82))
TAGS = (
    Tag("Content-Type", "application/json"),
    Tag("App-Name", "ar-io-mlflow"),
    Tag("Ünïcödé ✓", "値 😀"),
)

pytestmark = pytest.mark.slow  # Node.js checks every item


@pytest.fixture(scope="module")
def node() -> str:
    executable = shutil.which("node")
    if executable is None:
        pytest.fail("node is not on PATH; the arbundles interop test needs Node 18+")
    if not (INTEROP_DIR / "node_modules" / "@dha-team" / "arbundles").is_dir():
        pytest.fail(
            "arbundles is not installed for the interop test: "
            "run `npm ci --prefix tests/arweave/interop`"
        )
    return executable


def _run(node: str, *args: str) -> list[dict]:
    completed = subprocess.run(
        [node, str(SCRIPT), *args],
        cwd=INTEROP_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def _arbundles_verify(node: str, directory: Path, items: dict[str, bytes]) -> dict[str, dict]:
    files = []
    for name, raw in items.items():
        path = directory / f"{name}.bin"
        path.write_bytes(raw)
        files.append(str(path))
    results = _run(node, "verify", *files)
    return {Path(result["file"]).stem: result for result in results}


def _flip(raw: bytes, position: int) -> bytes:
    flipped = bytearray(raw)
    flipped[position] ^= 0x01
    return bytes(flipped)


def _our_items(rsa_signer: ArweaveSigner) -> dict[str, DataItem]:
    ed = Ed25519Signer(SEED)
    binary = bytes(range(256)) * 4
    return {
        "ed_tags": create_data_item(b'{"event":"training"}', ed, TAGS),
        "ed_empty": create_data_item(b"", ed),
        "ed_binary": create_data_item(binary, ed, [("a", "b")], target=TARGET),
        "ed_unicode": create_data_item("ünïcödé 😀".encode(), ed, TAGS[2:], anchor=ANCHOR),
        "ed_max_tags": create_data_item(b"x", ed, [(f"n{i}", "v" * 20) for i in range(128)]),
        "rsa_tags": create_data_item(b'{"event":"training"}', rsa_signer, TAGS),
        "rsa_empty": create_data_item(b"", rsa_signer, target=TARGET),
        "rsa_binary": create_data_item(binary, rsa_signer, [("bin", "ary")]),
    }


def test_arbundles_verifies_our_items(node, tmp_path, arweave_jwk):
    items = _our_items(ArweaveSigner(arweave_jwk))
    raws = {name: item.raw for name, item in items.items()}
    for name, item in items.items():
        tags_start = len(item.raw) - len(item.data) - len(item.raw_tags())
        raws[f"{name}-sig"] = _flip(item.raw, 2)
        raws[f"{name}-tag"] = _flip(item.raw, tags_start) if item.tags else None
        raws[f"{name}-data"] = _flip(item.raw, len(item.raw) - 1) if item.data else None
    results = _arbundles_verify(
        node, tmp_path, {name: raw for name, raw in raws.items() if raw is not None}
    )
    for name, item in items.items():
        assert results[name]["valid"] is True, (name, results[name])
        assert results[name]["id"] == item.id, name
        for tampered in ("sig", "tag", "data"):
            key = f"{name}-{tampered}"
            if key in results:
                assert results[key]["valid"] is False, (key, results[key])
                assert not verify_data_item(raws[key]), key


def _expected(item: DataItem) -> dict:
    return {
        "id": item.id,
        "signature_type": item.signature_type,
        "owner": b64url_encode(item.owner),
        "target": b64url_encode(item.target or b""),
        "anchor": (item.anchor or b"").hex(),
        "tags": [{"name": tag.name, "value": tag.value} for tag in item.tags],
        "data_b64": base64.b64encode(item.data).decode(),
    }


def test_we_accept_arbundles_items(node, tmp_path, arweave_jwk):
    ed_signer = {"ed25519_seed_hex": SEED.hex()}
    rsa_signer = {"jwk": arweave_jwk}
    tags = [{"name": tag.name, "value": tag.value} for tag in TAGS]
    data = base64.b64encode(bytes(range(256))).decode()
    specs = []
    for signer_name, signer in (("ed", ed_signer), ("rsa", rsa_signer)):
        for target in (None, TARGET):
            for anchor in (None, ANCHOR):
                spec = {
                    "name": f"{signer_name}-t{int(bool(target))}-a{int(bool(anchor))}",
                    "signer": signer,
                    "data_b64": data,
                    "tags": tags,
                }
                if target:
                    spec["target_b64url"] = b64url_encode(target)
                if anchor:
                    spec["anchor_hex"] = anchor.hex()
                specs.append(spec)
    specs.append({"name": "ed-bare", "signer": ed_signer, "data_b64": "", "tags": []})
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(specs))
    created = _run(node, "create", str(spec_file), str(tmp_path / "out"))
    assert [entry["name"] for entry in created] == [spec["name"] for spec in specs]

    ed = Ed25519Signer(SEED)
    rsa = ArweaveSigner(arweave_jwk)
    for entry, spec in zip(created, specs, strict=True):
        raw = Path(entry["file"]).read_bytes()
        assert entry["valid"] is True, entry
        item = parse_data_item(raw)
        assert verify_data_item(item), entry["name"]
        assert verify_data_item(raw), entry["name"]
        reported = {key: entry[key] for key in _expected(item)}
        assert _expected(item) == reported, entry["name"]
        signer = ed if spec["signer"] is ed_signer else rsa
        assert item.owner == signer.owner
        assert item.target == (TARGET if "target_b64url" in spec else None)
        assert item.anchor == (ANCHOR if "anchor_hex" in spec else None)
        assert item.tags == (TAGS if spec["tags"] else ())
        # Ed25519 is deterministic: with the same anchor our bytes are theirs exactly.
        if signer is ed and item.anchor is not None:
            ours = create_data_item(
                item.data, ed, item.tags, target=item.target, anchor=item.anchor
            )
            assert ours.raw == raw, entry["name"]
        assert not verify_data_item(_flip(raw, len(raw) - 1) if item.data else raw + b"\0")
