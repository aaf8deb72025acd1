"""Registry provenance: ``ArioMlflowClient``, a drop-in ``MlflowClient`` that anchors
registrations, stage transitions and alias changes.

Each overridden call returns MLflow's result at once and journals a *task* ("anchor this
event") before returning, so the event is anchored even if the process dies right after:
a bounded pool of background threads (or the next process's workers, or
``ar-io-mlflow sync``) runs the task — read the source run, re-hash the artifacts
against the signed training payload, and record the event through the record pipeline
(:mod:`~ario_mlflow.lifecycle.recorder`). ``anchor_status`` and ``wait_for_anchor`` read
the journal, so they also answer for work queued by an earlier process.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
import weakref
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from mlflow.tracking import MlflowClient

from ario_mlflow.config import load_settings
from ario_mlflow.errors import ArtifactAccessError, IntegrityError, ProofUnavailableError
from ario_mlflow.lifecycle.lineage import (
    find_run_proof,
    run_training_tx,
    verified_registration_tx,
    version_registration_tx,
)
from ario_mlflow.lifecycle.model_files import check_model_files
from ario_mlflow.lifecycle.model_location import source_location, version_run_id
from ario_mlflow.lifecycle.otel import capture_otel_context
from ario_mlflow.lifecycle.recorder import (
    REGISTRY_ALIAS,
    REGISTRY_EVENTS,
    REGISTRY_PROMOTION,
    REGISTRY_REGISTRATION,
    Deadline,
    Event,
    Recorder,
    default_components,
    registry_key,
)
from ario_mlflow.lifecycle.uris import recorded_uri, usable_uri
from ario_mlflow.lifecycle.writebacks import set_tags_writeback
from ario_mlflow.outbox import handlers
from ario_mlflow.outbox.handlers import AbandonTask
from ario_mlflow.outbox.journal import FAILED, UPLOADED, Journal, Record, Writeback
from ario_mlflow.outbox.workers import run_task_now
from ario_mlflow.proof import chain, payloads
from ario_mlflow.proof.envelope import utc_now_iso
from ario_mlflow.tags import (
    ALIAS_TX_PREFIX,
    ANCHORED,
    ARTIFACT_HASH,
    ARTIFACT_VERIFIED,
    ARWEAVE_URL,
    PAYLOAD_HASH,
    PROMOTION_PAYLOAD_HASH,
    PROMOTION_TX,
    PUBLIC_KEY,
    QUEUED_TX,
    REGISTRATION_TX,
    SIGNED,
    VERIFY_STATUS,
    WALLET_MODE,
)

logger = logging.getLogger(__name__)

TASK_KIND = "ario.anchor_registry_event"
#: Kept names (journal keys of registry events are ``<event>:<name>:<version>``).
REGISTRATION = REGISTRY_REGISTRATION
PROMOTION = REGISTRY_PROMOTION
ALIAS = REGISTRY_ALIAS
context_key = registry_key

_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ario-registry")
#: The live clients of this process by key, so that a task runs with the engine and anchor
#: of the client that queued it; a client that is gone leaves no trace here (weak).
_clients: weakref.WeakValueDictionary[str, ArioMlflowClient] = weakref.WeakValueDictionary()
_clients_lock = threading.Lock()


# --- the task handler (runs in any process) ----------------------------------------------


def _recorder_for(spec: dict[str, Any]) -> Recorder:
    """The recorder of the client that queued the task (its engine and anchor), or one
    with the defaults when the task runs in another process."""
    with _clients_lock:
        client = _clients.get(spec.get("components", ""))
    if client is None:
        return Recorder()
    return Recorder(*client._ario_components())


def _client(spec: dict[str, Any]) -> MlflowClient:
    return MlflowClient(
        tracking_uri=usable_uri(spec.get("tracking_uri")),
        registry_uri=usable_uri(spec.get("registry_uri"), "registry"),
    )


def _registration_tx(journal: Journal, client: Any, name: str, version: str) -> str:
    """What a promotion or alias change of the version follows (its registration)."""
    tags = client.get_model_version(name, version).tags
    registration = version_registration_tx(tags, journal, name, version)
    return chain.expected_previous(payloads.ALIAS, registration_tx=registration) or payloads.GENESIS


def _verify_against_training(
    client: Any, anchor: Any, run_id: str, path: str | None
) -> bool | None:
    """Do the registered files match the signed training record? (``None``: no record,
    or it cannot be checked now.)"""
    try:
        proof = find_run_proof(client, anchor, run_id, load_settings().trusted_keys)
    except ProofUnavailableError as exc:
        logger.warning("training proof of run %s cannot be checked now: %s", run_id, exc)
        return None
    except IntegrityError as exc:
        logger.error("training proof of run %s does not check out: %s", run_id, exc)
        return False
    if proof is None or not proof.training.artifact_checksums:
        return None
    if (path or proof.artifact_path).strip("/") != proof.artifact_path:
        logger.error(
            "the version's source is %r of run %s, not its anchored model %r",
            path,
            run_id,
            proof.artifact_path,
        )
        return False
    try:
        files = check_model_files(proof, tracking_uri=client.tracking_uri)
    except ArtifactAccessError as exc:
        logger.warning("cannot re-hash registered artifacts: %s", exc)
        return None
    if not files.ok:
        logger.error(
            "registered artifacts differ from the anchored training payload: %s", files.diff
        )
    return files.ok


def _version_tags(
    spec: dict[str, Any], version: str, tags: dict[str, str], delete: tuple[str, ...] = ()
) -> Writeback:
    """An after-upload write-back of model-version tags."""
    return set_tags_writeback(
        "model_version",
        tags,
        delete=delete,
        tracking_uri=spec.get("tracking_uri"),
        registry_uri=spec.get("registry_uri"),
        name=spec["name"],
        version=version,
    )


def _existing_record(journal: Journal, key: str, task_uid: str) -> Record | None:
    """The record an earlier attempt of this same task already journaled, if any."""
    record = journal.latest_for(key)
    if record is not None and record.context.get("task") == task_uid:
        return record
    return None


def _event(spec: dict[str, Any], event_type: str, subject: dict[str, Any], **fields: Any) -> Event:
    """An event of the task ``spec`` (journal key and task id filled in)."""
    return Event(
        event_type=event_type,
        subject=subject,
        tracking_uri=spec.get("tracking_uri"),
        context_key=registry_key(spec["event"], spec["name"], spec["version"]),
        context={"task": spec["task_uid"]},
        **fields,
    )


def _run_task_of(client: ArioMlflowClient, journal: Journal, task_id: int) -> bool:
    """Run a task this process queued, while the client that queued it stays alive."""
    del client
    return run_task_now(journal, task_id)


def run_registry_task(spec: dict[str, Any], record: Record | None, journal: Journal) -> None:
    """Anchor one journaled registry event (the handler of :data:`TASK_KIND`)."""
    del record  # a task belongs to no record
    key = registry_key(spec["event"], spec["name"], spec["version"])
    if _existing_record(journal, key, spec["task_uid"]) is not None:
        return  # signed and journaled by an earlier attempt; its write-backs finish the job
    handler = {
        REGISTRATION: _anchor_registration,
        PROMOTION: _anchor_promotion,
        ALIAS: _anchor_alias,
    }[spec["event"]]
    handler(spec)


def _registered_elsewhere(client: Any, anchor: Any, name: str, version: str) -> bool:
    """Does the version already have a registration record that verifies (our client's,
    or an earlier observation's)? A webhook or reconciliation then adds nothing."""
    tags = client.get_model_version(name, version).tags or {}
    trusted = load_settings().trusted_keys
    return verified_registration_tx(tags, anchor, name, version, trusted) is not None


def _anchor_registration(spec: dict[str, Any]) -> None:
    from mlflow.exceptions import MlflowException

    client = _client(spec)
    recorder = _recorder_for(spec)
    anchor = recorder.anchor
    name, version, source = spec["name"], spec["version"], spec.get("source")
    if spec.get("observed") and _registered_elsewhere(client, anchor, name, str(version)):
        logger.info("%s/%s already has a registration record; not recorded again", name, version)
        return
    source_run, path = source_location(client, source, spec.get("run_id"))
    explicit_run = spec.get("run_id")
    if explicit_run and source_run and explicit_run != source_run:
        raise AbandonTask(
            f"run_id {explicit_run} differs from the source's run {source_run}; not anchored"
        )
    run_id = explicit_run or source_run
    training_tx, tag_hash, verified = None, None, None
    if run_id:
        try:
            run = client.get_run(run_id)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise AbandonTask(f"Could not load source run {run_id}: {exc}") from None
            raise
        training_tx = run_training_tx(run.data.tags, getattr(anchor, "journal", None), run_id)
        tag_hash = run.data.tags.get(ARTIFACT_HASH)
        verified = _verify_against_training(client, anchor, run_id, path)
    payload = payloads.registration_payload(
        model_name=name,
        model_version=version,
        source_run_id=run_id,
        source=source,
        artifact_verified=verified,
        artifact_hash=tag_hash,
        snapshot=spec.get("snapshot"),
        observed=spec.get("observed"),
    )
    after = [
        _version_tags(
            spec,
            str(version),
            {REGISTRATION_TX: "{tx_id}", ARWEAVE_URL: "{url}", VERIFY_STATUS: ANCHORED},
            delete=(QUEUED_TX,),
        )
    ]
    event = _event(
        spec,
        payloads.REGISTRATION,
        payloads.model_version_subject(name, version),
        payload=payload,
        previous_hash=chain.expected_previous(payloads.REGISTRATION, training_tx=training_tx)
        or payloads.GENESIS,
        witness_run=run_id,
        after_upload=after,
    )
    recorded = recorder.record(event, Deadline(anchor.deadline))
    immediate = {
        VERIFY_STATUS: ANCHORED if recorded.uploaded else SIGNED,
        PUBLIC_KEY: recorded.envelope["public_key"],
        PAYLOAD_HASH: recorded.envelope["payload_hash"],
    }
    if verified is not None:
        immediate[ARTIFACT_VERIFIED] = "true" if verified else "false"
    if recorded.anchor_result:
        immediate[REGISTRATION_TX] = recorded.anchor_result["tx_id"]
        immediate[ARWEAVE_URL] = recorded.anchor_result["url"]
    elif recorded.record is not None:
        immediate[QUEUED_TX] = recorded.record.tx_id
    mode = getattr(anchor, "wallet_mode", None)
    if mode:
        immediate[WALLET_MODE] = str(mode)
    for key, value in immediate.items():
        client.set_model_version_tag(name, str(version), key, value)
    if run_id:
        recorder.write_report(
            client,
            run_id,
            "registration_",
            recorded,
            artifact_hash=tag_hash,
            artifact_verified=verified,
            cli_verify_cmd=f"ar-io-mlflow verify model {name}/{version}",
            wallet_mode=mode,
        )
    recorder.release(recorded)


def _anchor_promotion(spec: dict[str, Any]) -> None:
    client = _client(spec)
    recorder = _recorder_for(spec)
    name, version = spec["name"], spec["version"]
    run_id = version_run_id(client, client.get_model_version(name, version))
    payload = payloads.promotion_payload(
        model_name=name,
        model_version=version,
        from_stage=spec["from_stage"],
        to_stage=spec["to_stage"],
        snapshot=spec.get("snapshot"),
    )
    event = _event(
        spec,
        payloads.PROMOTION,
        payloads.model_version_subject(name, version),
        payload=payload,
        previous_hash=_registration_tx(recorder.anchor.journal, client, name, version),
        witness_run=run_id,
        after_upload=[_version_tags(spec, str(version), {PROMOTION_TX: "{tx_id}"})],
        event_id=str(uuid.uuid4()),
    )
    recorded = recorder.record(event, Deadline(recorder.anchor.deadline))
    client.set_model_version_tag(
        name, str(version), PROMOTION_PAYLOAD_HASH, recorded.envelope["payload_hash"]
    )
    recorder.release(recorded)


def _anchor_alias(spec: dict[str, Any]) -> None:
    client = _client(spec)
    recorder = _recorder_for(spec)
    name, alias = spec["name"], spec["alias"]
    version, previous = spec.get("alias_version"), spec.get("previous_version")
    anchor_version = version if version is not None else previous
    payload = payloads.alias_payload(
        model_name=name,
        alias=alias,
        model_version=version,
        previous_version=previous,
        snapshot=spec.get("snapshot"),
        observed=spec.get("observed"),
    )
    run_id = None
    previous_hash = payloads.GENESIS
    after: list[Writeback] = []
    if anchor_version is not None:
        run_id = version_run_id(client, client.get_model_version(name, anchor_version))
        previous_hash = _registration_tx(recorder.anchor.journal, client, name, str(anchor_version))
        after.append(_version_tags(spec, str(anchor_version), {ALIAS_TX_PREFIX + alias: "{tx_id}"}))
    subject = payloads.model_version_subject(
        name, anchor_version if anchor_version is not None else ""
    )
    event = _event(
        spec,
        payloads.ALIAS,
        subject,
        payload=payload,
        previous_hash=previous_hash,
        witness_run=run_id,
        after_upload=after,
        event_id=str(uuid.uuid4()),
    )
    recorder.release(recorder.record(event, Deadline(recorder.anchor.deadline)))


# --- journaling an event ----------------------------------------------------------------


def journal_registry_event(
    journal: Journal,
    event: str,
    name: str,
    version: str,
    fields: dict[str, Any],
    *,
    snapshot: dict[str, Any] | None = None,
    tracking_uri: str | None = None,
    registry_uri: str | None = None,
    components: str = "",
    once: str | None = None,
    not_before: float = 0.0,
) -> int | None:
    """Journal the task "anchor this registry event" (``version`` is the alias name for
    alias events); ``None`` when a task was already journaled under ``once``.

    The one way an event enters the pipeline, for our client, the webhook receiver and
    reconciliation alike; the task runs in this process, another one, or ``sync``.
    """
    spec = {
        "event": event,
        "name": name,
        "version": str(version),
        "snapshot": snapshot or {},
        "task_uid": str(uuid.uuid4()),
        "components": components,
        "tracking_uri": recorded_uri(tracking_uri),
        "registry_uri": recorded_uri(registry_uri),
        **fields,
    }
    handlers.require([TASK_KIND])
    task = Writeback(TASK_KIND, spec, after_upload=False)
    key = registry_key(event, name, version)
    if once is None:
        return journal.add_task(task, context_key=key, not_before=not_before)
    return journal.add_task_once(task, once, context_key=key, not_before=not_before)


def acting_user() -> tuple[str | None, str | None]:
    """Who is making a change from this process, and how we know: the MLflow user it
    authenticates as, else the operating-system account (``(None, None)``: neither)."""
    import getpass
    import os

    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if user:
        return user, "mlflow_tracking_username"
    try:
        return getpass.getuser(), "os_user"
    except (OSError, KeyError):
        return None, None


def _client_observation() -> dict[str, Any]:
    user, source = acting_user()
    return payloads.observation(
        observed_by=payloads.OBSERVED_BY_CLIENT,
        changed_at=utc_now_iso(),
        changed_by=user,
        changed_by_source=source,
    )


def _logged_model_id(source: str) -> str | None:
    """``m-<id>`` of a ``models:/m-<id>`` source (a LoggedModel), else ``None``."""
    rest = source[len("models:/") :] if source.startswith("models:/") else ""
    return rest if rest.startswith("m-") and "/" not in rest and "@" not in rest else None


def _accepts_model_id() -> bool:
    """Does this MLflow's ``create_model_version`` take ``model_id`` (MLflow 3)?"""
    import inspect

    return "model_id" in inspect.signature(MlflowClient.create_model_version).parameters


# --- the client --------------------------------------------------------------------------


class ArioMlflowClient(MlflowClient):
    """``MlflowClient`` whose registry writes are anchored in the background."""

    def __init__(self, *args: Any, proof_engine: Any = None, anchor: Any = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._ario_engine = proof_engine
        self._ario_anchor = anchor
        self._ario_key = f"client-{uuid.uuid4()}"
        self._ario_futures: dict[str, Any] = {}

    # components are created lazily so subclasses that skip __init__ still work
    def _ario_components(self) -> tuple[Any, Any]:
        if getattr(self, "_ario_key", None) is None:
            self._ario_key = f"client-{uuid.uuid4()}"
            self._ario_futures = {}
        engine, anchor = default_components(
            getattr(self, "_ario_engine", None), getattr(self, "_ario_anchor", None)
        )
        self._ario_engine, self._ario_anchor = engine, anchor
        with _clients_lock:
            _clients[self._ario_key] = self
        return engine, anchor

    def _ario_journal(self) -> Journal:
        _, anchor = self._ario_components()
        journal: Journal | None = getattr(anchor, "journal", None)
        if journal is None:
            raise TypeError("anchor object has no journal; ArioMlflowClient needs ArweaveAnchor")
        return journal

    def _ario_journal_event(
        self,
        event: str,
        name: str,
        version: str,
        fields: dict[str, Any],
        *,
        snapshot: dict[str, Any] | None = None,
        once: str | None = None,
        not_before: float = 0.0,
    ) -> int | None:
        """:func:`journal_registry_event` for this client's stores, engine and anchor
        (also for the webhook receiver and reconciliation, which observe with a client)."""
        self._ario_components()
        return journal_registry_event(
            self._ario_journal(),
            event,
            name,
            version,
            fields,
            snapshot=snapshot,
            tracking_uri=self.tracking_uri,
            registry_uri=getattr(self, "_registry_uri", None),
            components=self._ario_key,
            once=once,
            not_before=not_before,
        )

    def _ario_queue(
        self,
        event: str,
        name: str,
        version: str,
        fields: dict[str, Any],
        *,
        metadata: dict[str, Any] | None,
        capture_otel: bool,
    ) -> None:
        snapshot = {**capture_otel_context(capture_otel), **(metadata or {})}
        payloads.check_metadata(snapshot)
        journal = self._ario_journal()
        task_id = self._ario_journal_event(event, name, version, fields, snapshot=snapshot)
        assert task_id is not None  # no ``once`` key, so always journaled
        # the task holds the client (and so its engine and anchor) until it has run
        key = registry_key(event, name, version)
        self._ario_futures[key] = _executor.submit(_run_task_of, self, journal, task_id)

    def create_model_version(  # type: ignore[override]
        self,
        name: str,
        source: str,
        run_id: str | None = None,
        *,
        metadata: dict[str, Any] | None = None,
        capture_otel: bool = True,
        **kwargs: Any,
    ) -> Any:
        """Create the version (MLflow's result, at once) and anchor its registration.

        A ``models:/m-<id>`` source (MLflow 3's ``log_model`` result) also names its
        LoggedModel in ``model_id`` unless given, as an MLflow 3 server requires."""
        logged = _logged_model_id(source)
        if logged and "model_id" not in kwargs and _accepts_model_id():
            kwargs["model_id"] = logged
        version = super().create_model_version(name, source, run_id=run_id, **kwargs)
        self._ario_queue(
            REGISTRATION,
            name,
            str(version.version),
            {"source": source, "run_id": run_id},
            metadata=metadata,
            capture_otel=capture_otel,
        )
        return version

    def transition_model_version_stage(
        self,
        name: str,
        version: str | int,
        stage: str,
        *,
        metadata: dict[str, Any] | None = None,
        capture_otel: bool = True,
        **kwargs: Any,
    ) -> Any:
        """Transition (MLflow's result, at once) and anchor the stage change."""
        from_stage = self.get_model_version(name, str(version)).current_stage
        result = super().transition_model_version_stage(name, str(version), stage, **kwargs)
        self._ario_queue(
            PROMOTION,
            name,
            str(version),
            {"from_stage": str(from_stage), "to_stage": stage},
            metadata=metadata,
            capture_otel=capture_otel,
        )
        return result

    def _alias_target(self, name: str, alias: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return str(self.get_model_version_by_alias(name, alias).version)
        except MlflowException:
            return None

    def set_registered_model_alias(
        self,
        name: str,
        alias: str,
        version: str | int,
        *,
        metadata: dict[str, Any] | None = None,
        capture_otel: bool = True,
    ) -> None:
        """Point ``alias`` at ``version`` and anchor the change (with the previous target)."""
        previous = self._alias_target(name, alias)
        super().set_registered_model_alias(name, alias, str(version))
        self._ario_queue(
            ALIAS,
            name,
            alias,
            {
                "alias": alias,
                "alias_version": str(version),
                "previous_version": previous,
                "observed": _client_observation(),
            },
            metadata=metadata,
            capture_otel=capture_otel,
        )

    def delete_registered_model_alias(
        self,
        name: str,
        alias: str,
        *,
        metadata: dict[str, Any] | None = None,
        capture_otel: bool = True,
    ) -> None:
        """Delete ``alias`` and anchor that it no longer points anywhere."""
        previous = self._alias_target(name, alias)
        super().delete_registered_model_alias(name, alias)
        self._ario_queue(
            ALIAS,
            name,
            alias,
            {
                "alias": alias,
                "alias_version": None,
                "previous_version": previous,
                "observed": _client_observation(),
            },
            metadata=metadata,
            capture_otel=capture_otel,
        )

    def anchor_model_version(
        self,
        name: str,
        version: str | int,
        *,
        metadata: dict[str, Any] | None = None,
        capture_otel: bool = True,
    ) -> None:
        """Anchor the registration of a version created elsewhere (e.g. by ``log_model``)."""
        mv = self.get_model_version(name, str(version))
        self._ario_queue(
            REGISTRATION,
            name,
            str(mv.version),
            {"source": mv.source, "run_id": mv.run_id or None},
            metadata=metadata,
            capture_otel=capture_otel,
        )

    # --- status ---------------------------------------------------------------------------

    def anchor_status(self, event_type: str, name: str, version: str | int) -> dict[str, Any]:
        """``{"status", "tx_id", "error", "done"}`` of the latest such event (from the journal).

        For ``alias`` events, ``version`` is the alias name.
        """
        if event_type not in REGISTRY_EVENTS:
            raise ValueError(f"event_type must be one of {REGISTRY_EVENTS}, not {event_type!r}")
        journal = self._ario_journal()
        key = registry_key(event_type, name, version)
        record = journal.latest_for(key)
        task = journal.latest_task_for(key)
        future = self._ario_futures.get(key)
        running = future is not None and not future.done()
        if task is not None and task[1] == FAILED:
            return {"status": "failed", "tx_id": None, "error": task[2], "done": True}
        if record is None:
            status = "anchoring" if task is not None else "unknown"
            return {
                "status": status,
                "tx_id": None,
                "error": task[2] if task else None,
                "done": False,
            }
        if record.state == UPLOADED:
            return {"status": "anchored", "tx_id": record.tx_id, "error": None, "done": not running}
        if record.state == "rejected" or record.next_attempt_at > time.time() + 3600 * 24 * 365:
            return {"status": "signed", "tx_id": None, "error": record.last_error, "done": True}
        return {
            "status": "anchoring",
            "tx_id": None,
            "error": record.last_error,
            "done": not running,
        }

    def wait_for_anchor(
        self, event_type: str, name: str, version: str | int, timeout: float | None = None
    ) -> bool:
        """Wait for the event's task (and its bounded upload wait); False if never queued."""
        key = registry_key(event_type, name, version)
        future = self._ario_futures.get(key)
        if future is None:
            journal = self._ario_journal()
            if journal.latest_task_for(key) is None:
                return False
            deadline = None if timeout is None else time.monotonic() + timeout
            while self.anchor_status(event_type, name, version)["status"] == "anchoring":
                if deadline is not None and time.monotonic() > deadline:
                    return False
                time.sleep(0.1)
            return True
        try:
            future.result(timeout=timeout)
        except FutureTimeout:
            return False
        except Exception:  # the task's own errors are recorded in the journal
            return True
        return True


def register_model(
    model_uri: str,
    name: str,
    *,
    metadata: dict[str, Any] | None = None,
    client: ArioMlflowClient | None = None,
    **kwargs: Any,
) -> Any:
    """``mlflow.register_model`` that also anchors the registration (returns the version)."""
    import mlflow

    version = mlflow.register_model(model_uri, name, **kwargs)
    (client or ArioMlflowClient()).anchor_model_version(name, version.version, metadata=metadata)
    return version
