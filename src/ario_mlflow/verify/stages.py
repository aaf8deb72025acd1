"""The records of a model version's lineage, stage by stage, with what each must be about
and what it must follow. Shared by ``audit`` and ``export``.

The signed lineage (found by :mod:`~ario_mlflow.lifecycle.lineage`) names the training and
registration records; tags name the rest (datasets, promotions, aliases), and each of
those is then verified against the subject and chain link given here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ario_mlflow import tags
from ario_mlflow.errors import IntegrityError
from ario_mlflow.lifecycle.lineage import ModelProof, find_version_proof
from ario_mlflow.proof import chain, payloads


@dataclass(frozen=True)
class StageRecord:
    """One record of the lineage: its stage, a label, its TX (``None``: not anchored),
    the subject it must be about and the ``previous_hash`` it must carry."""

    stage: str
    label: str
    tx_id: str | None
    expected_subject: dict[str, str]
    expected_previous: str | None


def lineage_stages(
    mv: Any,
    *,
    run_id: str | None,
    run_tags: Mapping[str, str],
    training_tx: str | None,
    registration_tx: str | None,
) -> list[StageRecord]:
    """training, datasets, registration, promotion, aliases — in that order."""
    name, version = str(mv.name), str(mv.version)
    version_tags = mv.tags or {}
    of_version = payloads.model_version_subject(name, version)

    def previous(stage: str) -> str | None:
        return chain.expected_previous(
            chain.STAGE_EVENTS[stage], training_tx=training_tx, registration_tx=registration_tx
        )

    stages = [
        StageRecord(
            "training",
            f"run {run_id or 'unknown'}",
            training_tx,
            payloads.run_subject(run_id or ""),
            previous("training"),
        )
    ]
    for key in sorted(k for k in run_tags if k.startswith(tags.DATASET_TX_PREFIX)):
        dataset = key[len(tags.DATASET_TX_PREFIX) :]
        stages.append(
            StageRecord(
                "datasets",
                f"dataset {dataset}",
                run_tags[key],
                {"type": "mlflow_dataset", "name": dataset},
                previous("datasets"),
            )
        )
    stages.append(
        StageRecord(
            "registration", f"v{version}", registration_tx, of_version, previous("registration")
        )
    )
    if version_tags.get(tags.PROMOTION_TX):
        stages.append(
            StageRecord(
                "promotion",
                str(mv.current_stage),
                version_tags[tags.PROMOTION_TX],
                of_version,
                previous("promotion"),
            )
        )
    for key in sorted(k for k in version_tags if k.startswith(tags.ALIAS_TX_PREFIX)):
        stages.append(
            StageRecord(
                "alias",
                "@" + key[len(tags.ALIAS_TX_PREFIX) :],
                version_tags[key],
                of_version,
                previous("alias"),
            )
        )
    return stages


def find_lineage(
    client: Any, anchor: Any, mv: Any, trusted_keys: Sequence[str]
) -> tuple[ModelProof | None, str | None]:
    """The version's signed lineage, or ``None`` with why it does not check out (``None``
    and no reason: nothing is anchored). Not proven is not ok: the reason fails the audit."""
    try:
        return find_version_proof(client, anchor, mv, trusted_keys), None
    except IntegrityError as exc:  # ProofUnavailableError included
        return None, str(exc)
