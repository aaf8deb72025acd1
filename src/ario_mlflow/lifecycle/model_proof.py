"""What the signed records say a model is, and whether MLflow still points at it.

The one rule behind the serving gate, ``verify model``, ``audit`` and registration. MLflow
state (tags, a version's ``source`` and ``run_id``) only says where to look; the answer
comes from signed records:

* the version's registration record (found from its tag, this installation's journal, or
  the gateways' index by model name and version) names the training TX it chains to;
* the training record (found from there, from the run's tags, the journal, or the index
  by run id) names the run and holds the per-file hashes and the artifact path;
* the version's live ``source`` and download location must be a place MLflow serves that
  run's anchored artifact path from, or the files checked would not be the files loaded.

Deleting a tag therefore never turns a check off, and an edited column never redirects
one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ario_mlflow import tags as T
from ario_mlflow.errors import GatewayError, IntegrityError, ProofUnavailableError
from ario_mlflow.lifecycle.artifacts import (
    DEFAULT_ARTIFACT_PATH,
    ChecksumDiff,
    compare_checksums,
    parse_runs_uri,
    run_logged_model,
)
from ario_mlflow.lifecycle.lineage import (
    TRAINING,
    TrainingProof,
    fetch_checked_envelope,
    record_problem,
    training_proof_at,
    training_tx_of,
)
from ario_mlflow.proof import payloads as P
from ario_mlflow.proof.ed25519 import key_fingerprint

logger = logging.getLogger(__name__)

REGISTRATION = "model_registered"


@dataclass(frozen=True)
class ModelProof:
    """A model's signed lineage: its training record, and its registration if it has one."""

    training: TrainingProof
    run_id: str
    artifact_path: str
    registration_tx: str | None = None
    registration: dict[str, Any] | None = None
    found_by: str = "run tag"

    @property
    def signer(self) -> str:
        """The issuer key that signed the lineage."""
        return self.training.signer.lower()


def anchored_path(proof: TrainingProof) -> str:
    """The model directory the training record hashed (``model`` for 0.3.0 records)."""
    return (proof.artifact_path or DEFAULT_ARTIFACT_PATH).strip("/")


def files_match(proof: TrainingProof, actual: dict[str, str]) -> ChecksumDiff:
    """Do these files match the signed training record? (The one comparison.)"""
    return compare_checksums(proof.artifact_checksums, actual)


# --- the run behind a version ------------------------------------------------------------


def source_location(
    client: Any, source: str | None, run_id: str | None = None
) -> tuple[str | None, str | None]:
    """``(run id, artifact path)`` behind a model-version source.

    ``runs:/<run>/<path>`` directly; MLflow 3 ``models:/<model_id>`` through its
    LoggedModel (source run and name); a location inside a run's artifacts
    (``<artifact_uri>/<path>``, which MLflow 2 records for versions registered from
    ``runs:/``) through that run: ``run_id`` if it is that run, else the run named in the
    usual ``…/<run_id>/artifacts/…`` layout. Anything else ``(None, None)``.
    """
    parsed_run, path = parse_runs_uri(source)
    if parsed_run:
        return parsed_run, path
    if not source:
        return None, None
    if source.startswith("models:/"):
        if "/" not in source[len("models:/") :]:
            return _logged_model_source(client, source)
        return None, None
    return _run_artifact_source(client, source, run_id)


def _logged_model_source(client: Any, source: str) -> tuple[str | None, str | None]:
    getter = getattr(client, "get_logged_model", None)
    if getter is None:  # MLflow 2: no LoggedModels
        return None, None
    try:
        model = getter(source[len("models:/") :])
    except Exception as exc:
        logger.debug("could not resolve %s: %s", source, exc)
        return None, None
    return model.source_run_id, model.name


def _run_artifact_source(
    client: Any, source: str, run_id: str | None
) -> tuple[str | None, str | None]:
    parts = source.rstrip("/").split("/")
    named = [parts[i - 1] for i, part in enumerate(parts) if part == "artifacts" and i > 0]
    for candidate in dict.fromkeys([run_id, *named] if run_id else named):
        try:
            root = str(client.get_run(candidate).info.artifact_uri).rstrip("/")
        except Exception as exc:  # not a run (or not readable): not this one
            logger.debug("%s is not the run behind %s: %s", candidate, source, exc)
            continue
        if source.startswith(root + "/"):
            return candidate, source[len(root) + 1 :].strip("/") or None
    return None, None


def version_run_id(client: Any, mv: Any) -> str | None:
    """The run a model version came from: its ``run_id``, else the run its ``source``
    names (``create_model_version(name, "runs:/<run>/model")`` leaves ``run_id`` empty)."""
    if getattr(mv, "run_id", None):
        return str(mv.run_id)
    run_id, _ = source_location(client, getattr(mv, "source", None))
    return run_id


def _norm(uri: str | None) -> str:
    return str(uri or "").rstrip("/")


def anchored_locations(client: Any, run_id: str, artifact_path: str) -> set[str]:
    """Every URI under which MLflow serves ``runs:/<run_id>/<artifact_path>``."""
    path = artifact_path.strip("/")
    places = {f"runs:/{run_id}/{path}"}
    run = client.get_run(run_id)
    places.add(f"{_norm(run.info.artifact_uri)}/{path}")
    model = run_logged_model(client, run, path) if "/" not in path else None
    if model is not None:  # the one MLflow serves runs:/<run>/<path> from
        places.add(f"models:/{model.model_id}")
        places.add(str(model.artifact_location))
    return {_norm(place) for place in places}


def check_version_location(client: Any, mv: Any, proof: ModelProof) -> None:
    """Refuse a version whose live ``source``, ``run_id`` or download location is not
    where MLflow serves the anchored run's anchored artifact path."""
    where = f"{mv.name}/{mv.version}"
    if getattr(mv, "run_id", None) and str(mv.run_id) != proof.run_id:
        raise IntegrityError(
            f"model version {where} names run {mv.run_id}, but its signed lineage is run "
            f"{proof.run_id}"
        )
    legit = anchored_locations(client, proof.run_id, proof.artifact_path)
    anchored = f"runs:/{proof.run_id}/{proof.artifact_path}"
    if _norm(mv.source) not in legit:
        raise IntegrityError(
            f"model version {where} has source {mv.source!r}, which is not where MLflow "
            f"serves the anchored model {anchored}; the version was redirected"
        )
    download = _norm(client.get_model_version_download_uri(mv.name, str(mv.version)))
    if download not in legit:
        raise IntegrityError(
            f"model version {where} is stored at {download!r}, which is not the anchored "
            f"model {anchored}"
        )


def check_runs_uri(model_uri: str, proof: ModelProof) -> None:
    """A ``runs:/`` URI must name the anchored artifact path of the anchored run."""
    run_id, path = parse_runs_uri(model_uri)
    if run_id != proof.run_id or (path or "").strip("/") != proof.artifact_path:
        raise IntegrityError(
            f"{model_uri} is not the anchored model runs:/{proof.run_id}/{proof.artifact_path}"
        )


# --- finding the signed records ------------------------------------------------------------


def _search(anchor: Any, tags: dict[str, Any], trusted: Sequence[str]) -> list[str]:
    """TX ids the gateways index under ``tags`` (signed by a pinned key when any is)."""
    reader = getattr(anchor, "reader", None)
    if reader is None:
        return []
    wanted = {"App-Name": "ar-io-mlflow", **tags}
    if trusted:
        wanted["Signer"] = list(trusted)
    try:
        result = reader().search_everywhere(tags=wanted, limit=50)
    except (GatewayError, ValueError) as exc:
        logger.info("gateway search for %s failed: %s", tags, exc)
        return []
    return [node.id for node in result.nodes]


def _candidates(*sources: Sequence[str | None]) -> list[str]:
    return list(dict.fromkeys(tx for source in sources for tx in source if tx))


def _journal_tx(anchor: Any, key: str) -> str | None:
    journal = getattr(anchor, "journal", None)
    record = journal.latest_for(key) if journal is not None else None
    return None if record is None else str(record.tx_id)


def _first_valid(
    candidates: list[str], anchor: Any, check: Any, what: str
) -> tuple[str, dict[str, Any]] | None:
    """The first candidate that is a valid record; ``None`` if there were none at all.

    Candidates that are not valid are reported; when every candidate fails, the proof
    exists but does not check out (``IntegrityError``), or cannot be read now
    (``ProofUnavailableError``).
    """
    problems: list[str] = []
    unavailable = True
    valid: list[tuple[str, dict[str, Any]]] = []
    for tx_id in candidates:
        try:
            valid.append((tx_id, fetch_checked_envelope(tx_id, anchor, check)))
        except ProofUnavailableError as exc:
            problems.append(str(exc))
        except IntegrityError as exc:
            unavailable = False
            problems.append(str(exc))
    signers = {str(e.get("public_key", "")).lower() for _, e in valid}
    if len(signers) > 1:
        names = ", ".join(sorted(key_fingerprint(k) for k in signers))
        raise IntegrityError(
            f"{what} is claimed by records of several issuers ({names}); pin the issuer "
            "(ARIO_MLFLOW_TRUSTED_KEYS) to say which one you trust"
        )
    if valid:
        if problems:  # a tag or journal entry pointing elsewhere: someone edited it
            logger.warning(
                "%s: ignored records that do not check out: %s", what, " | ".join(problems)
            )
        return valid[0]
    if not candidates:
        return None
    error = ProofUnavailableError if unavailable else IntegrityError
    raise error(f"{what} has records, none of which checks out: " + " | ".join(problems))


def find_training(
    client: Any, anchor: Any, run_id: str, trusted: Sequence[str], *, tx_hint: str | None = None
) -> TrainingProof | None:
    """The checked training proof of ``run_id``: from ``tx_hint`` (a registration's
    chain link), the run's tags, the journal, or the gateways' index by run id."""
    tags = client.get_run(run_id).data.tags
    candidates = _candidates(
        [tx_hint, training_tx_of(tags), _journal_tx(anchor, f"training:{run_id}")]
    )
    if not candidates:
        candidates = _search(anchor, {"Event-Type": TRAINING, "Run-Id": run_id}, trusted)
    subject = {"type": "mlflow_run", "run_id": run_id}

    def check(envelope: dict[str, Any]) -> str | None:
        return record_problem(envelope, event_type=TRAINING, subject=subject, trusted_keys=trusted)

    found = _first_valid(candidates, anchor, check, f"the training of run {run_id}")
    if found is None:
        return None
    return training_proof_at(client, run_id, found[0], arweave=anchor, trusted_keys=trusted)


def find_registration(
    anchor: Any, mv: Any, trusted: Sequence[str]
) -> tuple[str, dict[str, Any]] | None:
    """The version's valid registration record ``(tx_id, envelope)``, or ``None``."""
    name, version = str(mv.name), str(mv.version)
    from ario_mlflow.lifecycle.registry import REGISTRATION as JOURNALED_AS
    from ario_mlflow.lifecycle.registry import context_key

    tags = dict(getattr(mv, "tags", None) or {})
    candidates = _candidates(
        [
            tags.get(T.REGISTRATION_TX),
            _journal_tx(anchor, context_key(JOURNALED_AS, name, version)),
            tags.get(T.QUEUED_TX),
        ]
    )
    if not candidates:
        search = {"Event-Type": REGISTRATION, "Model-Name": name, "Model-Version": version}
        candidates = _search(anchor, search, trusted)
    subject = P.model_version_subject(name, version)

    def check(envelope: dict[str, Any]) -> str | None:
        return record_problem(
            envelope, event_type=REGISTRATION, subject=subject, trusted_keys=trusted
        )

    return _first_valid(candidates, anchor, check, f"the registration of {name}/{version}")


def find_version_proof(
    client: Any, anchor: Any, mv: Any, trusted: Sequence[str]
) -> ModelProof | None:
    """The signed lineage of a model version, found without trusting any MLflow tag.

    ``None`` only when no record of the version or its run exists anywhere we can look.
    """
    registration = find_registration(anchor, mv, trusted)
    run_id = version_run_id(client, mv)
    hint: str | None = None
    if registration is not None:
        previous = str(registration[1].get("previous_hash") or "")
        if previous and previous != P.GENESIS:
            hint = previous
    if run_id is None:
        if registration is None or hint is None:
            return None  # nothing anchored, or registered from a run never anchored
        raise IntegrityError(
            f"model version {mv.name}/{mv.version} has a registration record but its source "
            f"{mv.source!r} names no run"
        )
    training = find_training(client, anchor, run_id, trusted, tx_hint=hint)
    if training is None:
        return None
    if hint is not None and training.tx_id != hint:
        raise IntegrityError(
            f"the registration of {mv.name}/{mv.version} chains to training record {hint}, "
            f"not to {training.tx_id} of run {run_id}"
        )
    if registration is not None:
        reg_signer = str(registration[1].get("public_key", "")).lower()
        if reg_signer != training.signer.lower():
            raise IntegrityError(
                f"the registration of {mv.name}/{mv.version} is signed by "
                f"{key_fingerprint(reg_signer)}, its training record by "
                f"{key_fingerprint(training.signer)}: one lineage has one issuer"
            )
    return ModelProof(
        training=training,
        run_id=run_id,
        artifact_path=anchored_path(training),
        registration_tx=registration[0] if registration else None,
        registration=registration[1] if registration else None,
        found_by="registration record" if registration else "training record",
    )


def find_run_proof(
    client: Any, anchor: Any, run_id: str, trusted: Sequence[str]
) -> ModelProof | None:
    """The signed training lineage of a run (for ``runs:/`` and ``models:/m-…`` URIs)."""
    training = find_training(client, anchor, run_id, trusted)
    if training is None:
        return None
    return ModelProof(training=training, run_id=run_id, artifact_path=anchored_path(training))
