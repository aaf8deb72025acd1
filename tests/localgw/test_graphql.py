"""GraphQL over HTTP: filters, paging, variables, fragments, and honest errors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ario_mlflow.arweave.dataitem import DataItem
from ario_mlflow.arweave.signers import Ed25519Signer
from ario_mlflow.localgw import LocalGateway
from ario_mlflow.localgw.keyfile import WALLET_FILENAME
from tests.localgw._support import make_item, upload

EVENTS = ("training", "prediction", "registration")
MAIN_COUNT = 130
OTHER_COUNT = 5


class Corpus:
    def __init__(self, gateway: LocalGateway, main: list[DataItem], other: list[DataItem]) -> None:
        self.gateway = gateway
        self.main = main
        self.other = other
        self.http = requests.Session()

    def query(self, query: str, variables: Any = None, **extra: Any) -> requests.Response:
        body: dict[str, Any] = {"query": query, **extra}
        if variables is not None:
            body["variables"] = variables
        return self.http.post(f"{self.gateway.url}/graphql", json=body, timeout=10)

    def data(self, query: str, variables: Any = None, **extra: Any) -> Any:
        response = self.query(query, variables, **extra)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body
        return body["data"]

    def error(self, query: str, variables: Any = None, **extra: Any) -> str:
        response = self.query(query, variables, **extra)
        assert response.status_code == 400, response.text
        errors = response.json()["errors"]
        assert errors
        assert all(isinstance(error["message"], str) for error in errors)
        return str(errors[0]["message"])


@pytest.fixture(scope="module")
def corpus(
    tmp_path_factory: pytest.TempPathFactory,
    wallet_text: str,
    signer: Ed25519Signer,
    other_signer: Ed25519Signer,
) -> Iterator[Corpus]:
    directory = tmp_path_factory.mktemp("graphql")
    (directory / WALLET_FILENAME).write_text(wallet_text)
    os.chmod(directory / WALLET_FILENAME, 0o600)
    with (
        LocalGateway(directory, key_bits=2048, finalize_after=3600) as gateway,
        requests.Session() as http,
    ):
        main = []
        for index in range(MAIN_COUNT):
            tags = (
                ("Content-Type", "application/json"),
                ("App-Name", "ar-io-mlflow"),
                ("Event-Type", EVENTS[index % 3]),
                ("N", str(index)),
            )
            item = make_item(signer, f'{{"n": {index}}}'.encode(), tags)
            assert upload(http, gateway.url, item).status_code == 200
            main.append(item)
        other = []
        for index in range(OTHER_COUNT):
            other_tags = (("App-Name", "other-app"), ("Event-Type", "training"), ("N", str(index)))
            item = make_item(other_signer, b"other", other_tags)
            assert upload(http, gateway.url, item).status_code == 200
            other.append(item)
        corpus = Corpus(gateway, main, other)
        yield corpus
        corpus.http.close()


def fill(template: str, *values: str) -> str:
    """Put ``values`` into the ``%s`` slots of a GraphQL template (braces stay literal)."""
    for value in values:
        template = template.replace("%s", value, 1)
    return template


def _ids(data: dict[str, Any], field: str = "transactions") -> list[str]:
    return [edge["node"]["id"] for edge in data[field]["edges"]]


def test_by_ids_returns_only_requested_fields(corpus: Corpus) -> None:
    wanted = [corpus.main[3].id, corpus.other[1].id]
    data = corpus.data(
        fill(
            '{ transactions(ids: ["%s", "%s"]) { edges { node { id tags { name value } } } } }',
            *wanted,
        )
    )
    nodes = [edge["node"] for edge in data["transactions"]["edges"]]
    assert {node["id"] for node in nodes} == set(wanted)
    assert all(set(node) == {"id", "tags"} for node in nodes)
    by_id = {node["id"]: node for node in nodes}
    assert by_id[corpus.main[3].id]["tags"][3] == {"name": "N", "value": "3"}
    assert set(data["transactions"]) == {"edges"}


def test_full_node_shape(corpus: Corpus, signer: Ed25519Signer) -> None:
    item = corpus.main[0]
    data = corpus.data(
        """query { transactions(ids: ["%s"]) {
            pageInfo { hasNextPage }
            edges { cursor node {
                id anchor signature recipient
                owner { address key } fee { winston ar } quantity { winston ar }
                data { size type } tags { name value } block { id height timestamp }
                bundledIn { id } parent { id } __typename
            } }
        } }""".replace("%s", item.id)
    )
    edge = data["transactions"]["edges"][0]
    node = edge["node"]
    assert isinstance(edge["cursor"], str)
    assert data["transactions"]["pageInfo"] == {"hasNextPage": False}
    assert node["owner"]["address"] == corpus.gateway.store.get(item.id).owner_address  # type: ignore[union-attr]
    assert node["data"] == {"size": str(len(item.data)), "type": "application/json"}
    assert node["block"] is None  # not final yet (finalize_after is an hour here)
    assert node["bundledIn"] is None
    assert node["__typename"] == "Transaction"
    assert node["recipient"] == ""


def test_single_transaction(corpus: Corpus) -> None:
    item = corpus.main[7]
    data = corpus.data(fill('{ transaction(id: "%s") { id tags { name value } } }', item.id))
    assert data["transaction"]["id"] == item.id
    missing = fill('{ transaction(id: "%s") { id } }', "Z" * 43)
    assert corpus.data(missing) == {"transaction": None}


def test_tags_are_anded_and_values_ored(corpus: Corpus) -> None:
    query = """{ transactions(first: 100, tags: [
        {name: "App-Name", values: ["ar-io-mlflow"]},
        {name: "Event-Type", values: ["training", "registration"]}
    ]) { edges { node { id } } } }"""
    ids = set(_ids(corpus.data(query)))
    expected = {item.id for index, item in enumerate(corpus.main) if index % 3 != 1}
    assert len(expected) > 80
    assert len(expected) == 87
    assert ids == expected


def test_tag_filter_excludes_other_apps(corpus: Corpus) -> None:
    query = """{ transactions(tags: [{name: "App-Name", values: ["other-app"]},
                                   {name: "Event-Type", values: ["training"]}]) {
        edges { node { id } } } }"""
    assert set(_ids(corpus.data(query))) == {item.id for item in corpus.other}


def test_neq_operator(corpus: Corpus) -> None:
    query = """{ transactions(first: 100,
        tags: [{name: "App-Name", values: ["ar-io-mlflow"], op: NEQ}]) {
        edges { node { id } } } }"""
    assert set(_ids(corpus.data(query))) == {item.id for item in corpus.other}


def test_owners(corpus: Corpus) -> None:
    address = corpus.gateway.store.get(corpus.other[0].id).owner_address  # type: ignore[union-attr]
    data = corpus.data(fill('{ transactions(owners: ["%s"]) { edges { node { id } } } }', address))
    assert set(_ids(data)) == {item.id for item in corpus.other}
    assert corpus.data('{ transactions(owners: ["nobody"]) { edges { node { id } } } }') == {
        "transactions": {"edges": []}
    }


def test_paging_through_more_than_a_hundred_items(corpus: Corpus) -> None:
    query = """query Page($after: String) {
        transactions(first: 50, after: $after,
                     tags: [{name: "App-Name", values: ["ar-io-mlflow"]}]) {
            pageInfo { hasNextPage } edges { cursor node { id } } } }"""
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page = corpus.data(query, {"after": after})["transactions"]
        pages += 1
        seen += [edge["node"]["id"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["edges"][-1]["cursor"]
    assert pages == 3
    # Default sort is HEIGHT_DESC: newest first, each item exactly once.
    assert seen == [item.id for item in reversed(corpus.main)]


def test_sort_ascending_and_cursor_stability(corpus: Corpus) -> None:
    query = """{ transactions(first: 5, sort: HEIGHT_ASC) { edges { cursor node { id } } } }"""
    first = corpus.data(query)["transactions"]["edges"]
    assert [edge["node"]["id"] for edge in first] == [item.id for item in corpus.main[:5]]
    again = corpus.data(query)["transactions"]["edges"]
    assert [edge["cursor"] for edge in again] == [edge["cursor"] for edge in first]
    follow = corpus.data(
        fill(
            '{ transactions(first: 2, sort: HEIGHT_ASC, after: "%s") { edges { node { id } } } }',
            first[-1]["cursor"],
        )
    )
    assert _ids(follow) == [corpus.main[5].id, corpus.main[6].id]


def test_first_is_capped_at_100_and_defaults_to_10(corpus: Corpus) -> None:
    capped = corpus.data(
        "{ transactions(first: 1000) { pageInfo { hasNextPage } edges { cursor } } }"
    )
    assert len(capped["transactions"]["edges"]) == 100
    assert capped["transactions"]["pageInfo"]["hasNextPage"] is True
    default = corpus.data("{ transactions { edges { cursor } } }")
    assert len(default["transactions"]["edges"]) == 10


def test_variables_of_every_kind(corpus: Corpus) -> None:
    query = """query Q($ids: [ID!], $tags: [TagFilter!], $first: Int = 3, $sort: SortOrder) {
        transactions(ids: $ids, tags: $tags, first: $first, sort: $sort) {
            edges { node { id } } } }"""
    wanted = [item.id for item in corpus.main[:6]]
    variables = {
        "ids": wanted,
        "tags": [{"name": "Event-Type", "values": ["training"]}],
        "sort": "HEIGHT_ASC",
    }
    data = corpus.data(query, variables, operationName="Q")
    assert _ids(data) == [corpus.main[0].id, corpus.main[3].id]
    single = corpus.data(
        "query ($id: ID!) { transaction(id: $id) { id } }", {"id": corpus.main[1].id}
    )
    assert single["transaction"]["id"] == corpus.main[1].id


def test_aliases_fragments_and_directives(corpus: Corpus) -> None:
    query = fill(
        """
    query ($skipTags: Boolean!) {
        a: transaction(id: "%s") { ...Fields }
        b: transaction(id: "%s") { ... on Transaction { id } tags @skip(if: $skipTags) { name } }
    }
    fragment Fields on Transaction { id owner { address } }
    """,
        corpus.main[0].id,
        corpus.main[1].id,
    )
    data = corpus.data(query, {"skipTags": True})
    assert data["a"]["id"] == corpus.main[0].id
    assert set(data["a"]) == {"id", "owner"}
    assert data["b"] == {"id": corpus.main[1].id}


def test_block_and_bundled_in_filters(corpus: Corpus) -> None:
    # Nothing is final in this corpus, and nothing is ever inside a bundle.
    assert corpus.data("{ transactions(block: {min: 0}) { edges { cursor } } }") == {
        "transactions": {"edges": []}
    }
    assert corpus.data('{ transactions(bundledIn: ["%s"]) { edges { cursor } } }' % ("B" * 43)) == {
        "transactions": {"edges": []}
    }


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("{ transactions { edges { node { id } }", "Syntax Error"),
        ("{ transactions(first: ) { edges { cursor } } }", "Syntax Error"),
        ('{ transactions(first: "ten") { edges { cursor } } }', "Int cannot represent"),
        ('{ transactions(sort: "HEIGHT_ASC") { edges { cursor } } }', "SortOrder"),
        ("{ transactions(sort: SIDEWAYS) { edges { cursor } } }", "SortOrder"),
        ("{ transactions(bogus: 1) { edges { cursor } } }", 'Unknown argument "bogus"'),
        ("{ transactions { edges { node { nope } } } }", 'Cannot query field "nope"'),
        ("{ transactions { edges } }", "must have a selection"),
        ("{ transactions { pageInfo { hasNextPage { x } } } }", "must not have a selection"),
        ("{ blocks { edges { cursor } } }", 'Cannot query field "blocks"'),
        ("{ transaction { id } }", 'argument "id"'),
        ('{ transactions(after: "garbage") { edges { cursor } } }', "Invalid cursor"),
        ("{ transactions(first: -1) { edges { cursor } } }", "negative"),
        ("{ transactions(ids: $missing) { edges { cursor } } }", "not defined"),
        ('{ transactions(tags: [{name: "a"}]) { edges { cursor } } }', "values"),
        (
            '{ transactions(tags: [{name: "a", values: ["b"], match: WILDCARD}])'
            " { edges { cursor } } }",
            "not supported",
        ),
        ("mutation { transactions { edges { cursor } } }", "queries only"),
        ("{ ...Missing }", 'Unknown fragment "Missing"'),
        (
            'query { a: transaction(id: "x") { id } } query { b: transaction(id: "y") { id } }',
            "operation name",
        ),
        ('fragment F on Transaction { ...F } { transaction(id: "x") { ...F } }', "within itself"),
        ('{ transaction(id: "x") { ... on Block { id } } }', "cannot be spread"),
        ('{ transaction(id: "x") { id @deprecated } }', "Unknown directive"),
        ("", "Must provide query string"),
        ("{ a " * 40 + "}" * 40, "nests deeper"),
        ("{ transactions(ids: " + "[" * 40 + "]" * 40 + ") { edges { cursor } } }", "nests deeper"),
        ('{ transactions(owners: ["\\ud800"]) { edges { cursor } } }', "surrogate"),
    ],
)
def test_malformed_queries_are_graphql_errors(corpus: Corpus, query: str, fragment: str) -> None:
    assert fragment in corpus.error(query)


def test_bad_variables_are_errors(corpus: Corpus) -> None:
    query = "query ($n: Int!) { transactions(first: $n) { edges { cursor } } }"
    assert "was not provided" in corpus.error(query, {})
    assert "Int cannot represent" in corpus.error(query, {"n": "5"})
    assert "Variables must be" in corpus.error(query, [1])
    assert "Unknown type" in corpus.error(
        "query ($n: Mystery) { transactions(first: $n) { edges { cursor } } }", {"n": 1}
    )


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"query": 5}'])
def test_non_json_bodies_are_errors(corpus: Corpus, body: bytes) -> None:
    response = corpus.http.post(
        f"{corpus.gateway.url}/graphql",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"]


_PIECES = st.sampled_from(
    [
        "{",
        "}",
        "(",
        ")",
        "[",
        "]",
        ":",
        "$v",
        "!",
        "...",
        "@skip(if: true)",
        '"x"',
        "1",
        "transactions",
        "transaction",
        "edges",
        "node",
        "id",
        "tags",
        "first:",
        "after:",
        "ids:",
        "query",
        "fragment F on Transaction",
        "on",
        "name",
        "values",
        "HEIGHT_ASC",
    ]
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    query=st.lists(_PIECES, max_size=30).map(" ".join),
    variables=st.none()
    | st.dictionaries(
        st.sampled_from(["v", "w"]),
        st.none() | st.integers() | st.text(max_size=3) | st.lists(st.text(max_size=3), max_size=2),
    ),
)
def test_any_query_gets_an_answer_never_a_crash(corpus: Corpus, query: str, variables: Any) -> None:
    response = corpus.query(query, variables)
    assert response.status_code in (200, 400), response.text
    body = response.json()
    assert ("data" in body) != ("errors" in body)
