"""The model-files rule: what a training record's ``artifact_checksums`` commit to, and
how a set of files is compared with them.

A checksum map goes from each model file's path (relative to the model directory,
``/``-separated on every OS) to the SHA-256 of its bytes; the run tag
``ario.artifact_hash`` is the SHA-256 of the map's canonical JSON. Every gate (serving,
registration, ``verify``, ``audit``) compares files through :func:`compare_checksums`
and finds the model directory through :func:`anchored_artifact_path`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ario_mlflow.proof.canonical import canonical_json
from ario_mlflow.proof.hashing import sha256_hex

#: Where ``mlflow.<flavor>.log_model`` puts a model when no name is given, and what a
#: 0.3.0 training record (which names no directory) hashed.
DEFAULT_ARTIFACT_PATH = "model"


def artifact_hash(checksums: Mapping[str, str]) -> str | None:
    """SHA-256 hex of the canonical JSON of ``checksums``; ``None`` for an empty map.

    This is the value of the ``ario.artifact_hash`` run tag. An empty map has no hash
    because "no files" must never look like a commitment to some files.
    """
    if not checksums:
        return None
    return sha256_hex(canonical_json(dict(checksums)))


def anchored_artifact_path(payload: Mapping[str, Any]) -> str:
    """The model directory a training payload hashed: its ``artifact_path``, or
    ``model`` for 0.3.0 records, which name none."""
    value = payload.get("artifact_path")
    path = value if isinstance(value, str) else ""
    return path.strip("/") or DEFAULT_ARTIFACT_PATH


def anchored_checksums(payload: Mapping[str, Any]) -> dict[str, str]:
    """The per-file hashes a training payload commits to (empty when hashing failed)."""
    value = payload.get("artifact_checksums")
    return dict(value) if isinstance(value, dict) else {}


@dataclass(frozen=True)
class ChecksumDiff:
    """How an actual checksum map differs from the expected one (all lists sorted)."""

    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when both maps hold the same files with the same hashes."""
        return not (self.changed or self.missing or self.added)

    def describe(self, limit: int = 10) -> str:
        """One line naming the differing files, for error messages (``limit`` per kind)."""
        if self.ok:
            return "no differences"
        parts = []
        for label, names in (
            ("changed", self.changed),
            ("missing", self.missing),
            ("added", self.added),
        ):
            if names:
                shown = ", ".join(names[:limit])
                more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
                parts.append(f"{label}: {shown}{more}")
        return "; ".join(parts)

    def __str__(self) -> str:
        """The description, so that a message quoting a diff reads as one."""
        return self.describe()


def compare_checksums(expected: Mapping[str, str], actual: Mapping[str, str]) -> ChecksumDiff:
    """Name the files whose hash changed, that are missing, or that were added."""
    return ChecksumDiff(
        changed=sorted(k for k in expected.keys() & actual.keys() if expected[k] != actual[k]),
        missing=sorted(expected.keys() - actual.keys()),
        added=sorted(actual.keys() - expected.keys()),
    )
