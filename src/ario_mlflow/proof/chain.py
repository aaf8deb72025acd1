"""The lineage's shape: which record each record follows (its ``previous_hash``), and the
stage each event type is in a model version's lineage.

::

    dataset (GENESIS)     training ◄── registration ◄── promotion / alias / prediction
                                                     ┆
                          window 1 (GENESIS) ◄── window 2 ◄── …   (one chain per stream;
                                                 each window's manifest names the
                                                 registration TX)

A registration follows its run's training record (the TX, uploaded or still queued);
promotions, alias changes and decisions follow the version's registration; a record
with nothing to follow carries ``GENESIS``. A training record follows the registered
model's previous training payload (reference §2.1), which verifiers do not re-derive.
Producers and verifiers both take the expected link from :func:`expected_previous`.
"""

from __future__ import annotations

from ario_mlflow.proof.payloads import (
    ALIAS,
    DATASET,
    GENESIS,
    PREDICTION,
    PREDICTION_BATCH,
    PROMOTION,
    REGISTRATION,
    TRAINING,
)

__all__ = ["EVENT_STAGES", "GENESIS", "STAGE_EVENTS", "expected_previous"]

#: Event type of each stage of a model version's lineage (audit and bundle stage names).
STAGE_EVENTS: dict[str, str] = {
    "training": TRAINING,
    "datasets": DATASET,
    "registration": REGISTRATION,
    "promotion": PROMOTION,
    "alias": ALIAS,
    "prediction": PREDICTION,
}
#: The stage of each event type (the inverse of :data:`STAGE_EVENTS`).
EVENT_STAGES: dict[str, str] = {event: stage for stage, event in STAGE_EVENTS.items()}

_FOLLOWS_REGISTRATION = frozenset({PROMOTION, ALIAS, PREDICTION})


def expected_previous(
    event_type: str,
    *,
    training_tx: str | None = None,
    registration_tx: str | None = None,
    previous_window_tx: str | None = None,
) -> str | None:
    """The ``previous_hash`` a record of ``event_type`` must carry, given the TX ids of the
    version's training record (uploaded or queued) and registration record (or, for a
    window of batched decisions, its stream's previous window), or ``None`` when the link
    is not checked (training records, unknown event types)."""
    if event_type == PREDICTION_BATCH:
        return previous_window_tx or GENESIS
    if event_type == DATASET:
        return GENESIS
    if event_type == REGISTRATION:
        return training_tx or GENESIS
    if event_type in _FOLLOWS_REGISTRATION:
        return registration_tx or GENESIS
    return None
