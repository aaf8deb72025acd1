"""The ANS-104 tags of a record's data item (reference §5.3, plus our lineage tags)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ario_mlflow._version import __version__
from ario_mlflow.arweave.dataitem import Tag

logger = logging.getLogger(__name__)

APP_NAME = "ar-io-mlflow"
_BASELINE_TAGS = ("Content-Type", "App-Name", "App-Version", "Event-Type", "Event-Id", "Chain-Prev")


def proof_tags(proof: Mapping[str, Any], extra_tags: Mapping[str, str] | None = None) -> list[Tag]:
    """The data-item tags of reference §5.3, then our lineage tags, then ``extra_tags``.

    Legacy record-bearing proofs (no ``payload_hash``) take the event fields from
    ``proof["record"]``. Extra tags that collide with a baseline name are ignored.
    """
    source: Mapping[str, Any] = proof
    if "payload_hash" not in proof and isinstance(proof.get("record"), Mapping):
        source = proof["record"]
    event_id = source.get("event_id") or source.get("decision_id") or "unknown"
    tags = [
        Tag("Content-Type", "application/json"),
        Tag("App-Name", APP_NAME),
        Tag("App-Version", __version__),
        Tag("Event-Type", str(source.get("event_type") or "unknown")),
        Tag("Event-Id", str(event_id)),
        Tag("Chain-Prev", str(proof.get("previous_hash") or "GENESIS")),
    ]
    # Additions for lineage walking over GraphQL (all public, none of them secret).
    for name, key in (
        ("Spec-Version", "spec_version"),
        ("Payload-Hash", "payload_hash"),
        ("Signer", "public_key"),
    ):
        value = proof.get(key)
        if isinstance(value, str) and value:
            tags.append(Tag(name, value))
    subject = proof.get("subject")
    if isinstance(subject, Mapping) and isinstance(subject.get("type"), str):
        tags.append(Tag("Subject-Type", subject["type"]))
        # What the record is about, so that it can be found with no MLflow tag at all
        # (a deleted tag must not make a proof disappear).
        about = [("Decision-Id", "decision_id"), ("Run-Id", "run_id")]
        if subject["type"] in ("mlflow_model_version", "mlflow_prediction_batch"):
            about += [("Model-Name", "name"), ("Model-Version", "version")]
        if subject["type"] == "mlflow_prediction_batch":
            about.append(("Stream-Id", "stream_id"))
        for name, key in about:
            value = subject.get(key)
            if isinstance(value, str) and value:
                tags.append(Tag(name, value))
    taken = {tag.name for tag in tags}
    for name, value in (extra_tags or {}).items():
        if name in _BASELINE_TAGS or name in taken:
            logger.warning("extra tag %r collides with a built-in tag; ignored", name)
            continue
        tags.append(Tag(str(name), str(value)))
    return tags
