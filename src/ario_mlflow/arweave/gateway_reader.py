"""Reading from ar.io gateways, expecting some of them to lie.

Every read has a wall-clock deadline and a body cap (:mod:`ario_mlflow.arweave.transport`).
Gateways are tried in order, and the next one is tried after *any* bad answer: no
connection, a slow or oversized answer, an HTTP error, bytes that do not match
``X-AR-IO-Digest``, bytes that are not the JSON object asked for, or bytes the caller's
check refuses (a bad signature, a record about something else). Which gateway said what is
kept, so a failure can name every gateway and its answer.

Gateways may be bare hosts (``turbo-gateway.com`` → https) or full URLs
(``http://127.0.0.1:4000``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ario_mlflow.arweave.transport import Request, Transport, default_transport
from ario_mlflow.errors import (
    EnvelopeParseError,
    GatewayError,
    GatewayUnreachableError,
    ResponseTooLargeError,
    TransportError,
)
from ario_mlflow.proof.envelope import parse_json_object

#: An Arweave / ANS-104 id: 32 bytes, base64url without padding.
TX_ID = re.compile(r"[A-Za-z0-9_-]{43}")
#: Largest answer accepted for one record (envelopes are ~1 KiB).
MAX_RECORD_BYTES = 1 << 20
#: Largest answer accepted for one GraphQL page.
MAX_GRAPHQL_BYTES = 8 << 20

_TRANSACTIONS_QUERY = """
query($ids: [ID!], $tags: [TagFilter!], $owners: [String!], $first: Int, $after: String) {
  transactions(ids: $ids, tags: $tags, owners: $owners, first: $first, after: $after) {
    pageInfo { hasNextPage }
    edges { cursor node { id tags { name value } owner { address } } }
  }
}
"""

#: ``check(data) -> None`` if the bytes are acceptable, else the reason they are not.
BytesCheck = Callable[[bytes], "str | None"]
#: ``check(envelope) -> None`` if the parsed object is acceptable, else why not.
ObjectCheck = Callable[[dict[str, Any]], "str | None"]


def gateway_base(gateway: str) -> str:
    """``scheme://host[:port][/path]`` for a gateway given as a host or a URL."""
    gateway = gateway.strip().rstrip("/")
    if gateway.startswith(("http://", "https://")):
        return gateway
    return f"https://{gateway}"


def check_tx_id(tx_id: Any) -> str:
    """``tx_id`` if it is a well-formed Arweave id, else ``GatewayError`` saying so."""
    if not isinstance(tx_id, str) or not TX_ID.fullmatch(tx_id):
        raise GatewayError(f"{str(tx_id)[:80]!r} is not an Arweave TX id (43 base64url chars)")
    return tx_id


@dataclass(frozen=True)
class Fetched:
    """Bytes read from a gateway, which gateway served them, and what the others said."""

    data: bytes
    gateway: str
    trail: tuple[str, ...] = ()


@dataclass(frozen=True)
class GatewayAnswer:
    """What one gateway said when asked for one TX's bytes.

    ``data`` is the bytes it served (digest checked) or None; ``reached`` is False when it
    gave no answer at all (no connection, the deadline), so nothing was learnt from it;
    ``status`` is its HTTP status when it answered one; ``error`` says why no bytes.
    """

    gateway: str
    reached: bool
    data: bytes | None = None
    status: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class FetchedObject:
    """A JSON object read from a gateway.

    ``accepted`` is False when no gateway served one that passed the caller's check: the
    object is then the first parseable one (so a verifier can report *why* it fails), and
    ``trail`` says what every gateway answered.
    """

    value: dict[str, Any]
    data: bytes
    gateway: str
    accepted: bool
    trail: tuple[str, ...] = ()


@dataclass(frozen=True)
class TransactionNode:
    """One GraphQL search result, and the gateways that reported it."""

    id: str
    tags: dict[str, str]
    owner: str | None
    cursor: str
    gateways: tuple[str, ...] = ()


@dataclass
class SearchResult:
    """GraphQL results combined over every gateway (a node reported by any counts)."""

    nodes: list[TransactionNode] = field(default_factory=list)
    answered: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Every gateway answered (none failed)."""
        return bool(self.answered) and not self.failed


def _digest_matches(headers: Mapping[str, str], data: bytes) -> bool:
    header = next((v for k, v in headers.items() if k.lower() == "x-ar-io-digest"), None)
    if not header:
        return True
    expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return header.rstrip("=") == expected


class GatewayReader:
    """Ordered-fallback reader over a list of gateways."""

    def __init__(
        self,
        gateways: Sequence[str],
        *,
        transport: Transport | None = None,
        timeout: tuple[float, float] = (5.0, 30.0),
    ) -> None:
        self.gateways = [gateway_base(g) for g in gateways if g.strip()]
        self.transport = transport or default_transport()
        self.timeout = timeout

    def _request(self, method: str, url: str, *, body: bytes = b"", cap: int) -> Request:
        return Request.within(
            method,
            url,
            self.timeout,
            max_body=cap,
            body=body,
            headers={"Content-Type": "application/json"} if body else {},
            follow_redirects=True,
        )

    def answer_from(self, base: str, tx_id: str, cap: int = MAX_RECORD_BYTES) -> GatewayAnswer:
        """Ask one gateway for ``tx_id``'s bytes; never raises for the gateway's faults, so
        a caller can tell "it answered something else" from "it could not be asked"."""
        check_tx_id(tx_id)
        try:
            response = self.transport.send(self._request("GET", f"{base}/raw/{tx_id}", cap=cap))
        except ResponseTooLargeError as exc:  # it answered: with more than a record
            return GatewayAnswer(base, reached=True, error=str(exc))
        except TransportError as exc:
            return GatewayAnswer(base, reached=False, error=str(exc))
        if response.status != 200:
            return GatewayAnswer(
                base, reached=True, status=response.status, error=f"HTTP {response.status}"
            )
        if not _digest_matches(response.headers, response.body):
            return GatewayAnswer(
                base, reached=True, status=200, error="bytes do not match X-AR-IO-Digest"
            )
        return GatewayAnswer(base, reached=True, data=response.body, status=200)

    def _raw_from(self, base: str, tx_id: str, cap: int) -> bytes:
        """The bytes one gateway serves for ``tx_id``; ``GatewayError`` with its fault
        (``GatewayUnreachableError`` when it gave no answer at all)."""
        answer = self.answer_from(base, tx_id, cap)
        if answer.data is None:
            raise (GatewayError if answer.reached else GatewayUnreachableError)(answer.error)
        return answer.data

    def fetch_raw(
        self,
        tx_id: str,
        *,
        expected: bytes | None = None,
        check: BytesCheck | None = None,
        cap: int = MAX_RECORD_BYTES,
    ) -> Fetched:
        """Bytes of ``tx_id`` from the first gateway whose answer passes every check.

        Raises ``GatewayError`` naming every gateway and what it did wrong:
        ``GatewayUnreachableError`` when none could be reached at all.
        """
        check_tx_id(tx_id)
        if not self.gateways:
            raise GatewayError("no fetch gateways configured")
        trail: list[str] = []
        answered = False
        for base in self.gateways:
            try:
                data = self._raw_from(base, tx_id, cap)
            except GatewayError as exc:
                answered = answered or not isinstance(exc, GatewayUnreachableError)
                trail.append(f"{base}: {exc}")
                continue
            answered = True
            problem = (
                "bytes differ from the anchored record"
                if (expected is not None and data != expected)
                else (check(data) if check is not None else None)
            )
            if problem:
                trail.append(f"{base}: {problem}")
                continue
            return Fetched(data, base, tuple(trail))
        raise (GatewayError if answered else GatewayUnreachableError)(self._summary(trail))

    def fetch_json_object(self, tx_id: str, *, check: ObjectCheck | None = None) -> FetchedObject:
        """The JSON object stored at ``tx_id``: the first one passing ``check``, else the
        first parseable one (``accepted=False``); ``GatewayError`` if none parses."""
        check_tx_id(tx_id)
        if not self.gateways:
            raise GatewayError("no fetch gateways configured")
        trail: list[str] = []
        fallback: FetchedObject | None = None
        for base in self.gateways:
            try:
                data = self._raw_from(base, tx_id, MAX_RECORD_BYTES)
                value = parse_json_object(data)
            except GatewayError as exc:
                trail.append(f"{base}: {exc}")
                continue
            except EnvelopeParseError as exc:
                trail.append(f"{base}: not a JSON object ({exc.reason})")
                continue
            problem = check(value) if check is not None else None
            if problem is None:
                trail.append(f"{base}: ok")
                return FetchedObject(value, data, base, True, tuple(trail))
            trail.append(f"{base}: {problem}")
            if fallback is None:
                fallback = FetchedObject(value, data, base, False)
        if fallback is not None:
            f = fallback
            return FetchedObject(f.value, f.data, f.gateway, False, tuple(trail))
        raise GatewayError(self._summary(trail))

    def _summary(self, trail: Sequence[str]) -> str:
        return (
            f"fetch failed across {len(self.gateways)} gateway(s) "
            f"({', '.join(self.gateways)}): " + " | ".join(trail)
        )

    # --- GraphQL ------------------------------------------------------------------------

    def _graphql_at(self, base: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables}).encode()
        try:
            response = self.transport.send(
                self._request("POST", f"{base}/graphql", body=body, cap=MAX_GRAPHQL_BYTES)
            )
        except TransportError as exc:
            raise GatewayError(str(exc)) from None
        if response.status != 200:
            raise GatewayError(f"HTTP {response.status}: {response.text[:120]}")
        try:
            answer = response.json()
        except ValueError:
            raise GatewayError("GraphQL answer is not JSON") from None
        if not isinstance(answer, dict) or answer.get("errors") or "data" not in answer:
            errors = answer.get("errors") if isinstance(answer, dict) else answer
            raise GatewayError(f"GraphQL error {str(errors)[:200]}")
        data = answer["data"]
        if not isinstance(data, dict):
            raise GatewayError("GraphQL answered without data")
        return data

    def _pages_at(
        self, base: str, variables: dict[str, Any], page_size: int, limit: int | None
    ) -> Iterator[TransactionNode]:
        after: str | None = None
        seen = 0
        while True:
            page_vars = {**variables, "first": page_size, "after": after}
            page = self._graphql_at(base, _TRANSACTIONS_QUERY, page_vars).get("transactions")
            try:
                if not isinstance(page, dict):
                    raise TypeError("no transactions object")
                edges = page["edges"]
                more = bool(page["pageInfo"]["hasNextPage"])
                for edge in edges:
                    node = edge["node"]
                    owner = node.get("owner") or {}
                    yield TransactionNode(
                        id=str(node["id"]),
                        tags={str(t["name"]): str(t["value"]) for t in node.get("tags") or []},
                        owner=owner.get("address"),
                        cursor=str(edge["cursor"]),
                        gateways=(base,),
                    )
                    seen += 1
                    if limit is not None and seen >= limit:
                        return
                    after = str(edge["cursor"])
            except (KeyError, TypeError, AttributeError) as exc:
                raise GatewayError(f"GraphQL answer has an unexpected shape ({exc})") from None
            if not more or not edges:
                return

    @staticmethod
    def _variables(
        tags: Mapping[str, str | Sequence[str]] | None,
        ids: Sequence[str] | None,
        owners: Sequence[str] | None,
    ) -> dict[str, Any]:
        variables: dict[str, Any] = {
            "tags": [
                {"name": name, "values": [value] if isinstance(value, str) else list(value)}
                for name, value in (tags or {}).items()
            ]
        }
        if ids:
            variables["ids"] = list(ids)
        if owners:
            variables["owners"] = list(owners)
        return variables

    def search_everywhere(
        self,
        *,
        tags: Mapping[str, str | Sequence[str]] | None = None,
        ids: Sequence[str] | None = None,
        owners: Sequence[str] | None = None,
        page_size: int = 100,
        limit: int | None = None,
    ) -> SearchResult:
        """The same search on *every* gateway, results combined: one gateway that fails or
        hides a transaction cannot make it disappear while another reports it."""
        variables = self._variables(tags, ids, owners)
        result = SearchResult()
        by_id: dict[str, TransactionNode] = {}
        for base in self.gateways:
            try:
                nodes = list(self._pages_at(base, variables, page_size, limit))
            except GatewayError as exc:
                result.failed[base] = str(exc)
                continue
            result.answered.append(base)
            for node in nodes:
                known = by_id.get(node.id)
                if known is None:
                    by_id[node.id] = node
                else:
                    by_id[node.id] = TransactionNode(
                        known.id, known.tags, known.owner, known.cursor, (*known.gateways, base)
                    )
        result.nodes = list(by_id.values())
        return result
