"""``ArweaveAnchor``: put signed envelopes on Arweave through Turbo, and read them back.

Compatible with ar-io-mlflow 0.3.0's class (constructor, attributes, ``upload_proof`` /
``fetch_proof`` / ``check_status`` and their ``last_error`` strings), with one difference
that matters: an envelope is signed into an ANS-104 item and **committed to the journal
before any network call**. ``upload_proof`` then waits at most the anchor deadline for
the background workers; if the service is slow or down it returns ``None`` (the record is
"signed", not lost) and the workers — or a later process, or ``ar-io-mlflow sync`` —
finish the upload and the write-backs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from ario_mlflow.arweave.dataitem import Tag, create_data_item
from ario_mlflow.arweave.gateway_reader import (
    FetchedObject,
    GatewayReader,
    ObjectCheck,
    gateway_base,
)
from ario_mlflow.arweave.item_tags import APP_NAME, proof_tags
from ario_mlflow.arweave.transport import Transport, default_transport
from ario_mlflow.arweave.turbo import fetch_status
from ario_mlflow.arweave.wallet import LoadedWallet, load_wallet
from ario_mlflow.config import Settings, load_settings, resolve_gateways
from ario_mlflow.errors import ArioError, GatewayError
from ario_mlflow.outbox import handlers
from ario_mlflow.outbox.journal import UPLOADED, NewRecord, Record, Writeback
from ario_mlflow.outbox.journal import Journal as _Journal
from ario_mlflow.outbox.workers import UploadTarget, UploadWorkers, workers_for
from ario_mlflow.proof.canonical import canonical_json

logger = logging.getLogger(__name__)

__all__ = ["APP_NAME", "ArweaveAnchor", "proof_tags"]


class ArweaveAnchor:
    """Anchor envelopes through Turbo (via the journal) and fetch them from gateways."""

    def __init__(
        self,
        wallet_path: str | os.PathLike[str] | None = None,
        gateway_host: str | None = None,
        *,
        gateways: Sequence[str] | None = None,
        max_retries: int = 2,
        retry_backoff_factor: float = 0.5,
        upload_url: str | None = None,
        deadline: float | None = None,
        journal: _Journal | None = None,
        transport: Transport | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        self.gateway_host = gateway_host or self.settings.gateway_host
        self.gateways = (
            list(gateways)
            if gateways is not None
            else list(resolve_gateways(self.gateway_host, self.settings.explicit_gateways))
        )
        self.upload_url = (upload_url or self.settings.upload_url).rstrip("/")
        self.deadline = self.settings.anchor_deadline if deadline is None else deadline
        self.timeout = (self.settings.connect_timeout, self.settings.read_timeout)
        self.enabled = True
        self.last_error: str | None = None
        self._journal = journal
        # max_retries / retry_backoff_factor are kept for 0.3.0 callers: retrying is the
        # journal workers' job (uploads) and the next gateway's (reads).
        del max_retries, retry_backoff_factor
        self.transport = transport or default_transport()
        self._wallet_path = wallet_path or self.settings.wallet_path
        self._wallet: LoadedWallet | None = None
        if self._wallet_path:
            # A wallet the caller chose must be usable now: WalletLoadError, never a
            # silent substitute and never a surprise at the first upload.
            self._wallet = load_wallet(self._wallet_path, home=self.settings.home)

    # --- identity ----------------------------------------------------------------------

    @property
    def wallet(self) -> LoadedWallet:
        """The funding wallet (the default one is loaded or created on first need)."""
        if self._wallet is None:
            self._wallet = load_wallet(None, home=self.settings.home)
        return self._wallet

    @property
    def wallet_mode(self) -> str:
        """``user-configured`` / ``persistent`` / ``ephemeral``."""
        return self.wallet.wallet_mode

    @property
    def wallet_type(self) -> str:
        """``solana`` / ``arweave``."""
        return self.wallet.wallet_type

    @property
    def journal(self) -> _Journal:
        """The installation's journal (opened on first use)."""
        if self._journal is None:
            self._journal = _Journal.at_home(self.settings.home)
        return self._journal

    def url_for(self, tx_id: str) -> str:
        """``<primary gateway>/<tx_id>``, as written to ``ario.arweave_url``."""
        return f"{gateway_base(self.gateway_host)}/{tx_id}"

    # --- writing -----------------------------------------------------------------------

    def journal_proof(
        self,
        proof: Mapping[str, Any],
        *,
        writebacks: Sequence[Writeback] = (),
        context_key: str | None = None,
        context: Mapping[str, Any] | None = None,
        tags: Sequence[Mapping[str, str]] | None = None,
        extra_tags: Mapping[str, str] | None = None,
        writeback_delay: float = 0.0,
    ) -> Record:
        """Sign ``proof`` into a data item and commit it to the journal (no network).

        The returned record's ``tx_id`` is final: it is the data item's id. Background
        workers are woken to upload it and then perform ``writebacks``, whose kinds must
        have a handler installed in this process (``MissingHandlerError`` otherwise).
        """
        handlers.require(w.kind for w in writebacks)
        data = canonical_json(dict(proof))
        item_tags = (
            [Tag(t["name"], t["value"]) for t in tags]
            if tags is not None
            else proof_tags(proof, extra_tags)
        )
        wallet = self.wallet
        item = create_data_item(data, wallet.signer, item_tags)
        record = self.journal.enqueue(
            NewRecord(
                tx_id=item.id,
                envelope=data,
                item=item.raw,
                upload_url=self.upload_url,
                token=wallet.signer.token,
                gateway_base=gateway_base(self.gateway_host),
                event_id=str(proof.get("event_id")) if proof.get("event_id") else None,
                event_type=str(proof.get("event_type")) if proof.get("event_type") else None,
                context_key=context_key,
                context=dict(context or {}),
                writebacks=writebacks,
                writeback_delay=writeback_delay,
            )
        )
        self._workers().track(record.id)
        return record

    def wake_workers(self) -> None:
        """Have this process's upload workers look at the journal now (records that
        somebody else journaled here, e.g. windows of batched decisions)."""
        self._workers().wake()

    def flush(self, timeout: float) -> int:
        """Give this process's records up to ``timeout`` s to be uploaded and written back;
        how many are unfinished (they stay journaled)."""
        return self._workers().flush(timeout)

    def _workers(self) -> UploadWorkers:
        target = UploadTarget(self.upload_url, tuple(self.gateways), self.timeout, self.transport)
        return workers_for(self.journal, target=target, max_attempts=self.settings.max_attempts)

    def wait(self, record: Record, timeout: float | None = None) -> dict[str, Any] | None:
        """Wait up to ``timeout`` (default: the anchor deadline) for ``record``'s upload.

        Returns ``{"tx_id", "url", "receipt"}`` once the service holds the item, else
        ``None`` with ``last_error`` saying why (the record stays journaled).
        """
        timeout = self.deadline if timeout is None else timeout
        outcome = self._workers().wait_for(record.id, timeout)
        stored = self.journal.get(record.id)
        if stored is not None and stored.state == UPLOADED:
            return {
                "tx_id": stored.tx_id,
                "url": self.url_for(stored.tx_id),
                "receipt": stored.receipt,
            }
        if outcome is not None and outcome.error:
            self.last_error = f"{outcome.error} (record {record.tx_id} kept in the journal)"
        else:
            self.last_error = (
                f"upload not confirmed within {timeout:g}s; record {record.tx_id} is "
                "journaled and will be retried (ar-io-mlflow sync)"
            )
        return None

    def upload_proof(
        self,
        proof: Mapping[str, Any],
        tags: Sequence[Mapping[str, str]] | None = None,
        extra_tags: Mapping[str, str] | None = None,
    ) -> dict[str, Any] | None:
        """Journal ``proof``, then wait up to the deadline for its upload. Never raises.

        ``None`` means "signed and journaled, not confirmed yet" (see ``last_error``).
        """
        self.last_error = None
        if not self.enabled:
            self.last_error = "anchor disabled"
            return None
        try:
            record = self.journal_proof(proof, tags=tags, extra_tags=extra_tags)
        except ArioError as exc:
            self.last_error = f"upload unexpected error: {type(exc).__name__}: {exc}"
            return None
        return self.wait(record)

    # --- reading -----------------------------------------------------------------------

    def reader(self) -> GatewayReader:
        """A gateway reader over this anchor's gateways."""
        return GatewayReader(self.gateways, transport=self.transport, timeout=self.timeout)

    def fetch_envelope(self, tx_id: str, *, check: ObjectCheck | None = None) -> FetchedObject:
        """The record at ``tx_id`` from the first gateway whose answer is a JSON object
        passing ``check`` (every gateway is tried after any bad answer).

        ``accepted`` is False when none passed: the first parseable answer is returned so
        the caller can report why it fails. ``GatewayError`` when no gateway served one.
        """
        fetched = self.reader().fetch_json_object(tx_id, check=check)
        if len(fetched.trail) > 1:
            logger.info("record %s: %s", tx_id, " | ".join(fetched.trail))
        return fetched

    def fetch_envelope_bytes(self, tx_id: str) -> bytes | None:
        """The exact bytes stored at ``tx_id`` (first intact gateway), or ``None``."""
        self.last_error = None
        try:
            return self.reader().fetch_raw(tx_id).data
        except GatewayError as exc:
            self.last_error = str(exc)
            return None

    def fetch_proof(self, tx_id: str) -> dict[str, Any] | None:
        """The envelope stored at ``tx_id``, or ``None`` with ``last_error`` set."""
        self.last_error = None
        try:
            fetched = self.reader().fetch_json_object(tx_id)
        except GatewayError as exc:
            self.last_error = str(exc)
            return None
        if self.gateways and fetched.gateway != gateway_base(self.gateways[0]):
            logger.info("fetched %s from fallback gateway %s", tx_id, fetched.gateway)
        return fetched.value

    def check_status(self, tx_id: str) -> dict[str, Any]:
        """Upload-service status of ``tx_id``: ``{"status", "info"}``."""
        return fetch_status(self.transport, self.upload_url, tx_id, timeout=self.timeout)
