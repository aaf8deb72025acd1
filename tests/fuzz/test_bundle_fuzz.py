"""Fuzzing evidence-bundle verification (``verify_bundle``, behind ``ar-io-mlflow
verify-bundle``): a broken bundle is a ``BundleError`` naming what is wrong, never a raw
exception, and a bundle whose envelope or payload bytes were edited never passes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ario_mlflow.errors import BundleError
from ario_mlflow.verify.bundle import SCHEMA, verify_bundle
from tests.fuzz.seeds import bundle_files, bundle_manifest, write_bundle
from tests.fuzz.strategies import (
    fuzz_settings,
    json_values,
    mutated_bytes,
    mutated_object,
    outcome_of,
    plain_json,
)

_ENTRY_KEYS = (
    "stage",
    "label",
    "tx_id",
    "event_type",
    "envelope",
    "envelope_sha256",
    "payload",
    "payload_sha256",
    "receipt",
)


def _verify(path: Path) -> dict[str, Any] | None:
    """``verify_bundle``: a result or ``BundleError`` (with a message), nothing else."""
    result, error = outcome_of(lambda: verify_bundle(path), BundleError)
    if result is None:
        assert str(error), "a BundleError must say what is wrong"
        return None
    assert result["ok"] in (True, False)
    json.dumps(result)  # the CLI prints it as JSON
    for record in result["records"]:
        assert record["ok"] is (not record["problems"])
    return result


def test_the_seed_bundle_passes(tmp_path: Path) -> None:
    """The oracle is not vacuous: the honest bundle verifies, as a folder and as a zip."""
    for as_zip in (False, True):
        result = _verify(write_bundle(tmp_path / str(as_zip), bundle_files(), as_zip))
        assert result is not None
        assert result["ok"], result


@fuzz_settings(150)
@given(
    name=st.sampled_from(sorted(bundle_files())),
    data=st.data(),
    as_zip=st.booleans(),
)
def test_edited_envelope_or_payload_bytes_never_pass(
    tmp_path_factory: pytest.TempPathFactory, name: str, data: st.DataObject, as_zip: bool
) -> None:
    """Any edit of a bundled file: a typed error or a verdict; a pass only if unchanged."""
    files = dict(bundle_files())
    files[name] = data.draw(mutated_bytes(files[name]))
    result = _verify(write_bundle(tmp_path_factory.mktemp("b"), files, as_zip))
    if result is not None and result["ok"] and name != "manifest.json":
        assert files[name] == bundle_files()[name]


@st.composite
def _broken_manifests(draw: st.DrawFn) -> Any:
    manifest = bundle_manifest()
    kind = draw(st.sampled_from(["top", "record", "records", "any"]))
    if kind == "top":
        return draw(mutated_object(manifest, ("schema", "records", "model", "version")))
    if kind == "record":
        index = draw(st.integers(0, len(manifest["records"]) - 1))
        manifest["records"][index] = draw(mutated_object(manifest["records"][index], _ENTRY_KEYS))
        return manifest
    if kind == "records":
        manifest["records"] = draw(
            json_values | st.lists(json_values | st.just(manifest["records"][0]), max_size=3)
        )
        return manifest
    return draw(plain_json)


def _dumpable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


@fuzz_settings(150)
@given(manifest=_broken_manifests().filter(_dumpable), as_zip=st.booleans())
@example(manifest=[], as_zip=False)
@example(manifest={"schema": SCHEMA, "records": "abc"}, as_zip=False)
@example(manifest={"schema": SCHEMA, "records": [1]}, as_zip=False)
@example(manifest={"schema": SCHEMA, "records": [{}]}, as_zip=True)
@example(manifest={"schema": SCHEMA, "records": [{"envelope": 3}]}, as_zip=False)
@example(manifest={"schema": SCHEMA, "records": [{"envelope": "a\x00"}]}, as_zip=False)
@example(manifest={"schema": SCHEMA, "records": {"a": 1}}, as_zip=False)
def test_broken_manifests_are_a_typed_error_or_a_verdict(
    tmp_path_factory: pytest.TempPathFactory, manifest: Any, as_zip: bool
) -> None:
    """Manifests of any shape (wrong types, missing keys, junk records) never crash."""
    files = dict(bundle_files())
    files["manifest.json"] = json.dumps(manifest).encode()
    _verify(write_bundle(tmp_path_factory.mktemp("m"), files, as_zip))


@fuzz_settings(100)
@given(content=st.binary(max_size=300) | st.sampled_from([b"[" * 100_000, b"PK\x03\x04junk"]))
@example(content=b"junk")
def test_junk_files_are_a_typed_error(
    tmp_path_factory: pytest.TempPathFactory, content: bytes
) -> None:
    """A ``.zip`` that is not a zip, a manifest of random bytes, a directory named
    ``.zip``: each is a ``BundleError``."""
    root = tmp_path_factory.mktemp("j")
    (root / "fake.zip").write_bytes(content)
    (root / "folder").mkdir()
    (root / "folder" / "manifest.json").write_bytes(content)
    (root / "dir.zip").mkdir()
    for path in (root / "fake.zip", root / "folder", root / "dir.zip"):
        assert _verify(path) is None
