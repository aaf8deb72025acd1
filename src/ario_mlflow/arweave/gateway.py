"""Reading from ar.io gateways: raw bytes with integrity checks, and GraphQL by tags.

Gateways are tried in order; a gateway that errors, times out, or serves bytes whose
``X-AR-IO-Digest`` (or the caller's expected bytes) do not match is skipped, and the
trail of what went wrong is kept for ``last_error``. Gateways may be bare hosts
(``turbo-gateway.com`` → https) or full URLs (``http://127.0.0.1:4000``).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import requests

from ario_mlflow.errors import EnvelopeParseError, GatewayError
from ario_mlflow.proof.envelope import parse_json_object

_TRANSACTIONS_QUERY = """
query($ids: [ID!], $tags: [TagFilter!], $owners: [String!], $first: Int, $after: String) {
  transactions(ids: $ids, tags: $tags, owners: $owners, first: $first, after: $after) {
    pageInfo { hasNextPage }
    edges { cursor node { id tags { name value } owner { address } } }
  }
}
"""


def gateway_base(gateway: str) -> str:
    """``scheme://host[:port][/path]`` for a gateway given as a host or a URL."""
    gateway = gateway.strip().rstrip("/")
    if gateway.startswith(("http://", "https://")):
        return gateway
    return f"https://{gateway}"


@dataclass(frozen=True)
class Fetched:
    """Bytes read from a gateway, and which gateway served them."""

    data: bytes
    gateway: str


@dataclass(frozen=True)
class TransactionNode:
    """One GraphQL search result."""

    id: str
    tags: dict[str, str]
    owner: str | None
    cursor: str


def _digest_matches(response: requests.Response, data: bytes) -> bool:
    header = response.headers.get("X-AR-IO-Digest")
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
        session: requests.Session | None = None,
        timeout: tuple[float, float] = (5.0, 30.0),
    ) -> None:
        self.gateways = [gateway_base(g) for g in gateways if g.strip()]
        self.session = session or requests.Session()
        self.timeout = timeout

    def fetch_raw(self, tx_id: str, *, expected: bytes | None = None) -> Fetched:
        """Bytes of ``tx_id`` from the first gateway that serves them intact.

        Raises ``GatewayError`` naming every gateway and what it did wrong.
        """
        if not self.gateways:
            raise GatewayError("no fetch gateways configured")
        problems: list[str] = []
        for base in self.gateways:
            try:
                response = self.session.get(
                    f"{base}/raw/{tx_id}", timeout=self.timeout, allow_redirects=True
                )
                response.raise_for_status()
            except requests.RequestException as exc:
                problems.append(f"{base}: {type(exc).__name__}: {exc}")
                continue
            data = response.content
            if not _digest_matches(response, data):
                problems.append(f"{base}: bytes do not match X-AR-IO-Digest")
                continue
            if expected is not None and data != expected:
                problems.append(f"{base}: bytes differ from the anchored record")
                continue
            return Fetched(data, base)
        raise GatewayError(
            f"fetch failed across {len(self.gateways)} gateway(s) "
            f"({', '.join(self.gateways)}): " + " | ".join(problems)
        )

    def fetch_json_object(self, tx_id: str) -> tuple[dict[str, Any], Fetched]:
        """The JSON object stored at ``tx_id`` (strictly parsed), trying each gateway."""
        if not self.gateways:
            raise GatewayError("no fetch gateways configured")
        problems: list[str] = []
        for base in self.gateways:
            reader = GatewayReader([base], session=self.session, timeout=self.timeout)
            try:
                fetched = reader.fetch_raw(tx_id)
                return parse_json_object(fetched.data), fetched
            except GatewayError as exc:
                problems.append(str(exc).split(": ", 1)[-1])
            except EnvelopeParseError as exc:
                problems.append(f"{base}: not a JSON object ({exc.reason})")
        raise GatewayError(
            f"fetch failed across {len(self.gateways)} gateway(s) "
            f"({', '.join(self.gateways)}): " + " | ".join(problems)
        )

    def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """Run a GraphQL query on the first gateway that answers it."""
        problems: list[str] = []
        for base in self.gateways:
            try:
                response = self.session.post(
                    f"{base}/graphql",
                    json={"query": query, "variables": variables},
                    timeout=self.timeout,
                )
                response.raise_for_status()
                body = response.json()
            except (requests.RequestException, ValueError) as exc:
                problems.append(f"{base}: {type(exc).__name__}: {exc}")
                continue
            if not isinstance(body, dict) or body.get("errors") or "data" not in body:
                problems.append(f"{base}: GraphQL error {str(body.get('errors'))[:200]}")
                continue
            data = body["data"]
            if isinstance(data, dict):
                return data
            problems.append(f"{base}: GraphQL answered without data")
        raise GatewayError("GraphQL failed on every gateway: " + " | ".join(problems))

    def find_transactions(
        self,
        *,
        tags: dict[str, str | Sequence[str]] | None = None,
        ids: Sequence[str] | None = None,
        owners: Sequence[str] | None = None,
        page_size: int = 100,
        limit: int | None = None,
    ) -> Iterator[TransactionNode]:
        """Every transaction matching the filters (tags AND-ed, values OR-ed), paged."""
        tag_filters = [
            {"name": name, "values": [value] if isinstance(value, str) else list(value)}
            for name, value in (tags or {}).items()
        ]
        after: str | None = None
        seen = 0
        while True:
            variables: dict[str, Any] = {"tags": tag_filters, "first": page_size, "after": after}
            if ids:
                variables["ids"] = list(ids)
            if owners:
                variables["owners"] = list(owners)
            page = self.graphql(_TRANSACTIONS_QUERY, variables)["transactions"]
            for edge in page["edges"]:
                node = edge["node"]
                owner = node.get("owner") or {}
                yield TransactionNode(
                    id=node["id"],
                    tags={t["name"]: t["value"] for t in node.get("tags") or []},
                    owner=owner.get("address"),
                    cursor=edge["cursor"],
                )
                seen += 1
                if limit is not None and seen >= limit:
                    return
                after = edge["cursor"]
            if not page["pageInfo"]["hasNextPage"] or not page["edges"]:
                return
