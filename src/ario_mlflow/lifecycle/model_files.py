"""Do the model's files still match its signed training record? The one comparison,
used by the serving gate, registration, ``verify model`` and ``audit``.

The files checked are those MLflow serves at the *anchored* run and artifact path (the
signed lineage says where, :mod:`~ario_mlflow.lifecycle.lineage`), compared with the
per-file hashes of the signed payload (:func:`~ario_mlflow.proof.checksums.compare_checksums`).
Whoever loads the model after the check passes ``copy_to``: the files are then hashed as
they are copied into that private directory, and the copy is what gets loaded, so the
bytes loaded are the bytes hashed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ario_mlflow.lifecycle.artifacts import artifact_checksums, copy_run_artifacts
from ario_mlflow.proof.checksums import ChecksumDiff, compare_checksums

if TYPE_CHECKING:
    from ario_mlflow.lifecycle.lineage import ModelProof


@dataclass(frozen=True)
class FilesCheck:
    """The verdict on a model's files: how they differ from the signed checksums, their
    actual per-file hashes, and (with ``copy_to``) the private model directory holding
    them."""

    diff: ChecksumDiff
    checksums: dict[str, str]
    copy: Path | None = None

    @property
    def ok(self) -> bool:
        """The files are exactly those the training record signed."""
        return self.diff.ok


def check_model_files(
    proof: ModelProof, *, tracking_uri: str | None, copy_to: Path | None = None
) -> FilesCheck:
    """Hash the files MLflow serves at ``runs:/<proof.run_id>/<proof.artifact_path>``
    (copying them into ``copy_to`` when given) and compare them with the signed record.

    Raises :class:`~ario_mlflow.errors.ArtifactAccessError` when they cannot be read.
    """
    copy: Path | None = None
    if copy_to is not None:
        copy, actual = copy_run_artifacts(
            proof.run_id, proof.artifact_path, copy_to, tracking_uri=tracking_uri
        )
    else:
        actual = artifact_checksums(
            proof.run_id, artifact_path=proof.artifact_path, tracking_uri=tracking_uri
        )
    diff = compare_checksums(proof.training.artifact_checksums, actual)
    return FilesCheck(diff, actual, copy)
