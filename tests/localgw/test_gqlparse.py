"""The GraphQL parser on its own: values, strings, structure, and precise syntax errors."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ario_mlflow.localgw.gqlparse import (
    EnumValue,
    Field,
    FragmentSpread,
    GraphQLError,
    InlineFragment,
    TypeRef,
    Variable,
    parse,
    tokenize,
)


def test_values_of_every_kind() -> None:
    document = parse(
        '{ f(a: 1, b: -2.5e3, c: "x\\u00e9\\n", d: true, e: null, g: ENUM, h: $v,'
        ' i: [1, [2]], j: {k: "l"}) { x } }'
    )
    field = document.operations[0].selections[0]
    assert isinstance(field, Field)
    assert field.arguments == {
        "a": 1,
        "b": -2500.0,
        "c": "xé\n",
        "d": True,
        "e": None,
        "g": EnumValue("ENUM"),
        "h": Variable("v"),
        "i": [1, [2]],
        "j": {"k": "l"},
    }


def test_block_strings_are_dedented() -> None:
    tokens = tokenize('"""\n    hello\n      world\n    """')
    assert tokens[0].value == "hello\n  world"


def test_comments_commas_and_bom_are_ignored() -> None:
    document = parse("\ufeff# comment\nquery Q { a, b # trailing\n }")
    assert [s.name for s in document.operations[0].selections if isinstance(s, Field)] == ["a", "b"]


def test_structure() -> None:
    document = parse(
        'query Q($a: [ID!]! = ["x"], $b: Int) @dir '
        "{ x: f(id: $a) @skip(if: true) { ...F ... on T { y } ... { z } } }"
        " fragment F on T { w }"
    )
    operation = document.operations[0]
    assert operation.name == "Q"
    assert operation.variables[0].type == TypeRef(
        of=TypeRef(name="ID", non_null=True), non_null=True
    )
    assert str(operation.variables[0].type) == "[ID!]!"
    assert operation.variables[0].default == ["x"]
    assert operation.variables[1].has_default is False
    field = operation.selections[0]
    assert isinstance(field, Field)
    assert (field.alias, field.name, field.key) == ("x", "f", "x")
    assert field.selections is not None
    kinds = [type(selection) for selection in field.selections]
    assert kinds == [FragmentSpread, InlineFragment, InlineFragment]
    assert set(document.fragments) == {"F"}


@pytest.mark.parametrize(
    "source",
    [
        "{",
        "}",
        "{ }",
        "{ a(b: ) }",
        "{ a(b: 1 b: 2) }",
        "{ a(: 1) }",
        "query ($x) { a }",
        "query ($x: Int = $y) { a }",
        "{ a } fragment on on T { b }",
        "{ a } fragment F T { b }",
        "{ a } fragment F on T { b } fragment F on T { c }",
        '{ a(b: "unterminated) }',
        '{ a(b: "bad \\q escape") }',
        "{ a(b: 1.) }",
        "{ a(b: 01) }",
        "{ a(b: 1x) }",
        "{ a ; }",
        "subscriptions { a }",
        42,
    ],
)
def test_syntax_errors(source: object) -> None:
    with pytest.raises(GraphQLError):
        parse(source)  # type: ignore[arg-type]


_ALPHABET = st.sampled_from(
    [*list('{}()[]:$!@.,"=\\ \n#'), "...", "query", "on", "a", "1", "-", "e"]
)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60) | st.lists(_ALPHABET, max_size=40).map("".join))
def test_parser_only_raises_graphql_errors(source: str) -> None:
    with contextlib.suppress(GraphQLError):
        parse(source)
