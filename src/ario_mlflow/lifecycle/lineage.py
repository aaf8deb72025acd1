"""Finding and checking a model's signed lineage, without trusting MLflow state.

The one rule behind the serving gate, ``verify model``, ``audit`` and registration. Tags,
a version's ``source`` and ``run_id`` and the journal only say where to look; the answer
comes from signed records:

* the version's registration record (found from its tag, this installation's journal, or
  the gateways' index by model name and version) names the training TX it chains to;
* the training record (found from there, from the run's tags, the journal, or the index
  by run id) names the run and holds the per-file hashes and the artifact path, and its
  payload witness in the run must hash to the signed ``payload_hash``.

"There is no proof" (``None``) is told apart from "there is a proof and it does not
check out" (``IntegrityError``) and "it cannot be read now" (``ProofUnavailableError``).
Deleting a tag therefore never turns a check off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ario_mlflow import tags
from ario_mlflow.errors import (
    EnvelopeParseError,
    GatewayError,
    IntegrityError,
    ProofUnavailableError,
)
from ario_mlflow.lifecycle.model_location import version_run_id
from ario_mlflow.lifecycle.recorder import REGISTRY_REGISTRATION, registry_key, training_key
from ario_mlflow.lifecycle.witness import read_witness
from ario_mlflow.proof import payloads
from ario_mlflow.proof.checks import issuer_pinned, record_problem
from ario_mlflow.proof.checksums import anchored_artifact_path, anchored_checksums
from ario_mlflow.proof.ed25519 import key_fingerprint
from ario_mlflow.proof.envelope import parse_json_object
from ario_mlflow.proof.hashing import sha256_hex

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingProof:
    """A training record whose envelope, signature and payload bytes all checked out."""

    tx_id: str
    envelope: dict[str, Any]
    payload: dict[str, Any]
    payload_bytes: bytes

    @property
    def artifact_checksums(self) -> dict[str, str]:
        """Per-file SHA-256 of the model as anchored (empty when hashing failed)."""
        return anchored_checksums(self.payload)

    @property
    def artifact_path(self) -> str:
        """The model directory hashed at anchor time (``model`` for 0.3.0 records)."""
        return anchored_artifact_path(self.payload)

    @property
    def signer(self) -> str:
        """Hex public key that signed the record (lowercase)."""
        return str(self.envelope.get("public_key", "")).lower()


@dataclass(frozen=True)
class ModelProof:
    """A model's signed lineage: its training record, and its registration if it has one."""

    training: TrainingProof
    run_id: str
    registration_tx: str | None = None
    registration: dict[str, Any] | None = None
    found_by: str = "run tag"

    @property
    def artifact_path(self) -> str:
        """The model directory the training record hashed."""
        return self.training.artifact_path

    @property
    def signer(self) -> str:
        """The issuer key that signed the lineage."""
        return self.training.signer


# --- hints: where a record may be (never trusted on their own) ----------------------------


def run_training_tx(
    run_tags: Mapping[str, str], journal: Any = None, run_id: str = ""
) -> str | None:
    """The TX a run's training record has, as far as MLflow and this installation know:
    uploaded (tag), signed and queued (tag or journal), or ``None``."""
    tagged = run_tags.get(tags.TRAINING_TX) or run_tags.get(tags.QUEUED_TX)
    if tagged or journal is None or not run_id:
        return tagged
    record = journal.latest_for(training_key(run_id))
    return None if record is None else str(record.tx_id)


def version_registration_tx(
    version_tags: Mapping[str, str], journal: Any = None, name: str = "", version: str = ""
) -> str | None:
    """The TX a version's registration record has, as far as this installation and
    MLflow know: the journal (this installation signed it), else its tags."""
    if journal is not None and name:
        record = journal.latest_for(registry_key(REGISTRY_REGISTRATION, name, version))
        if record is not None:
            return str(record.tx_id)
    return version_tags.get(tags.REGISTRATION_TX) or version_tags.get(tags.QUEUED_TX)


def verified_registration_tx(
    version_tags: Mapping[str, str],
    anchor: Any,
    name: str,
    version: str,
    trusted_keys: Sequence[str] = (),
) -> str | None:
    """The TX of a registration record of ``name/version`` that *verifies*, among those the
    journal and the tags name, or else any gateway's index holds (``None``: none does).

    A tag is only a hint: a bogus ``ario.registration_tx`` must not pass for a record, or
    an insider could keep a version from ever being recorded.
    """
    subject = payloads.model_version_subject(name, version)

    def check(envelope: dict[str, Any]) -> str | None:
        return record_problem(
            envelope, event_type=payloads.REGISTRATION, subject=subject, trusted_keys=trusted_keys
        )

    def verifies(tx_id: str) -> bool:
        try:
            fetch_checked_envelope(tx_id, anchor, check)
        except Exception:
            return False
        return True

    named = version_registration_tx(version_tags, getattr(anchor, "journal", None), name, version)
    if named and verifies(named):
        return named  # the usual case: no index search
    try:
        found = anchor.reader().search_everywhere(
            tags={
                "App-Name": "ar-io-mlflow",
                "Event-Type": payloads.REGISTRATION,
                "Model-Name": name,
                "Model-Version": version,
            }
        )
    except Exception as exc:
        logger.debug("registration search for %s/%s failed: %s", name, version, exc)
        return None
    return next((n.id for n in found.nodes if n.id != named and verifies(n.id)), None)


# --- fetching one checked record ---------------------------------------------------------

EnvelopeCheck = Callable[[dict[str, Any]], "str | None"]


def fetch_checked_envelope(tx_id: str, anchor: Any, check: EnvelopeCheck) -> dict[str, Any]:
    """The record at ``tx_id`` that passes ``check``, from this installation's journal
    (signed here, maybe not uploaded yet) or else from any gateway.

    Every source is tried after any bad answer (wrong bytes, parse error, bad signature,
    another subject), so one hostile gateway cannot hide a genuine record. Raises
    ``IntegrityError`` when records were found and none passes (naming who said what),
    ``ProofUnavailableError`` when none could be read at all.
    """
    trail: list[str] = []
    journal = getattr(anchor, "journal", None)
    record = journal.by_tx(tx_id) if journal is not None else None
    if record is not None:
        try:
            envelope = parse_json_object(bytes(record.envelope))
        except EnvelopeParseError as exc:
            trail.append(f"journal: not a JSON object ({exc.reason})")
        else:
            problem = check(envelope)
            if problem is None:
                return envelope
            trail.append(f"journal: {problem}")
    fetcher = getattr(anchor, "fetch_envelope", None)
    if fetcher is None:  # a minimal anchor double: bytes only, then the same check
        data = anchor.fetch_envelope_bytes(tx_id)
        if data is None:
            why = anchor.last_error
            raise ProofUnavailableError(f"record {tx_id} could not be fetched: {why}")
        try:
            envelope = parse_json_object(bytes(data))
        except EnvelopeParseError as exc:
            raise IntegrityError(f"record {tx_id} is not a valid envelope: {exc}") from None
        problem = check(envelope)
        if problem is not None:
            raise IntegrityError(f"record {tx_id}: {problem}")
        return envelope
    try:
        fetched = fetcher(tx_id, check=check)
    except (GatewayError, ValueError) as exc:
        if trail:
            raise IntegrityError(f"record {tx_id}: {' | '.join(trail)}; {exc}") from None
        raise ProofUnavailableError(f"record {tx_id} could not be fetched: {exc}") from None
    if fetched.accepted:
        return dict(fetched.value)
    said = " | ".join([*trail, *fetched.trail])
    raise IntegrityError(f"record {tx_id} does not check out: {said}")


def _with_witness(client: Any, run_id: str, tx_id: str, envelope: dict[str, Any]) -> TrainingProof:
    """The training proof once its payload witness in the run hashes to the record."""
    payload_bytes, _ = read_witness(client, run_id, envelope)
    if sha256_hex(payload_bytes) != envelope.get("payload_hash"):
        raise IntegrityError(
            f"payload witness of run {run_id} does not match the anchored payload_hash"
        )
    try:
        payload = parse_json_object(payload_bytes)
    except EnvelopeParseError as exc:
        raise IntegrityError(f"payload witness of run {run_id} is not JSON: {exc}") from None
    return TrainingProof(tx_id, envelope, payload, payload_bytes)


# --- finding the lineage -------------------------------------------------------------------


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
    run_tags = client.get_run(run_id).data.tags
    journaled = _journal_tx(anchor, training_key(run_id))
    candidates = _candidates([tx_hint, run_training_tx(run_tags), journaled])
    if not candidates:
        search = {"Event-Type": payloads.TRAINING, "Run-Id": run_id}
        candidates = _search(anchor, search, trusted)
    subject = payloads.run_subject(run_id)

    def check(envelope: dict[str, Any]) -> str | None:
        return record_problem(
            envelope, event_type=payloads.TRAINING, subject=subject, trusted_keys=trusted
        )

    found = _first_valid(candidates, anchor, check, f"the training of run {run_id}")
    if found is None:
        return None
    return _with_witness(client, run_id, found[0], found[1])


def find_registration(
    anchor: Any, mv: Any, trusted: Sequence[str]
) -> tuple[str, dict[str, Any]] | None:
    """The version's valid registration record ``(tx_id, envelope)``, or ``None``."""
    name, version = str(mv.name), str(mv.version)
    version_tags = dict(getattr(mv, "tags", None) or {})
    candidates = _candidates(
        [
            version_tags.get(tags.REGISTRATION_TX),
            _journal_tx(anchor, registry_key(REGISTRY_REGISTRATION, name, version)),
            version_tags.get(tags.QUEUED_TX),
        ]
    )
    if not candidates:
        search = {"Event-Type": payloads.REGISTRATION, "Model-Name": name, "Model-Version": version}
        candidates = _search(anchor, search, trusted)
    subject = payloads.model_version_subject(name, version)

    def check(envelope: dict[str, Any]) -> str | None:
        return record_problem(
            envelope, event_type=payloads.REGISTRATION, subject=subject, trusted_keys=trusted
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
        if previous and previous != payloads.GENESIS:
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
        # Two issuers in one lineage (a webhook receiver on its own host registered what
        # a trainer anchored) only when both are pinned: unpinned, a second key is anyone's.
        both_pinned = issuer_pinned(reg_signer, trusted) and issuer_pinned(training.signer, trusted)
        if reg_signer != training.signer and not both_pinned:
            raise IntegrityError(
                f"the registration of {mv.name}/{mv.version} is signed by "
                f"{key_fingerprint(reg_signer)}, its training record by "
                f"{key_fingerprint(training.signer)}: one lineage has one issuer unless both "
                f"are pinned (ARIO_MLFLOW_TRUSTED_KEYS={training.signer},{reg_signer})"
            )
    return ModelProof(
        training=training,
        run_id=run_id,
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
    return ModelProof(training=training, run_id=run_id)
