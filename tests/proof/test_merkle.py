"""RFC 9162 Merkle trees beyond the corpus: every size, every leaf, and forged proofs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ario_mlflow.proof.merkle import (
    EMPTY_TREE_ROOT_HEX,
    audit_path,
    leaf_hash,
    merkle_root,
    node_hash,
    tree_with_paths,
    verify_inclusion,
)


def _leaves(count: int) -> list[bytes]:
    return [leaf_hash(f"decision-{i}".encode()) for i in range(count)]


def test_empty_and_single_leaf_trees() -> None:
    assert merkle_root([]).hex() == EMPTY_TREE_ROOT_HEX
    assert tree_with_paths([]) == (merkle_root([]), [])
    only = leaf_hash(b"x")
    assert merkle_root([only]) == only
    assert verify_inclusion(only, 0, 1, [], only)


def test_leaf_and_node_domain_separation() -> None:
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert merkle_root([a, b]) == node_hash(a, b)
    # A node can never be passed off as a leaf: the prefixes differ.
    assert leaf_hash(a + b) != node_hash(a, b)


@pytest.mark.parametrize("size", [*range(1, 18), 31, 32, 33, 100])
def test_every_leaf_of_every_size_proves_inclusion(size: int) -> None:
    leaves = _leaves(size)
    root, paths = tree_with_paths(leaves)
    assert root == merkle_root(leaves)
    for index in range(size):
        assert paths[index] == audit_path(index, leaves)
        assert verify_inclusion(leaves[index], index, size, paths[index], root)


def test_forged_proofs_fail() -> None:
    leaves = _leaves(7)
    root, paths = tree_with_paths(leaves)
    path = paths[3]
    assert not verify_inclusion(leaves[3], 4, 7, path, root)  # wrong index
    assert not verify_inclusion(leaves[3], 3, 4, path, root)  # wrong size
    assert not verify_inclusion(leaves[2], 3, 7, path, root)  # wrong leaf
    assert not verify_inclusion(leaves[3], 3, 7, path[:-1], root)  # short path
    assert not verify_inclusion(leaves[3], 3, 7, [*path, path[0]], root)  # long path
    assert not verify_inclusion(leaves[3], 3, 7, [bytes(32), *path[1:]], root)
    assert not verify_inclusion(leaves[3], 7, 7, path, root)  # index out of range
    assert not verify_inclusion(leaves[3], -1, 7, path, root)
    assert not verify_inclusion(leaves[3], 3, 7, [b"short", *path[1:]], root)
    with pytest.raises(IndexError):
        audit_path(7, leaves)


@given(st.lists(st.binary(max_size=20), min_size=1, max_size=40), st.data())
def test_inclusion_property(items: list[bytes], data: st.DataObject) -> None:
    leaves = [leaf_hash(item) for item in items]
    index = data.draw(st.integers(min_value=0, max_value=len(leaves) - 1))
    root = merkle_root(leaves)
    assert verify_inclusion(leaves[index], index, len(leaves), audit_path(index, leaves), root)
