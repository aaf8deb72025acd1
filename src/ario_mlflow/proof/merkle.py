"""RFC 9162 Merkle trees: leaf and node hashing, roots, audit paths, inclusion proofs.

Used to anchor many decisions under one root: each decision keeps its audit path, and an
auditor recomputes the root from the decision's bytes alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_TREE_ROOT = hashlib.sha256(b"").digest()
EMPTY_TREE_ROOT_HEX = EMPTY_TREE_ROOT.hex()


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 ‖ data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 ‖ left ‖ right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(size: int) -> int:
    """Largest power of two strictly below ``size`` (``size`` ≥ 2)."""
    return 1 << ((size - 1).bit_length() - 1)


def merkle_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """Root of the tree over ``leaf_hashes`` (already leaf-hashed), RFC 9162 §2.1.1."""
    if not leaf_hashes:
        return EMPTY_TREE_ROOT
    if len(leaf_hashes) == 1:
        return leaf_hashes[0]
    k = _split(len(leaf_hashes))
    return node_hash(merkle_root(leaf_hashes[:k]), merkle_root(leaf_hashes[k:]))


def audit_path(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Inclusion proof of leaf ``index``, from the leaf upwards (RFC 9162 §2.1.3.1)."""
    if not 0 <= index < len(leaf_hashes):
        raise IndexError(f"leaf index {index} outside a tree of {len(leaf_hashes)} leaves")
    path: list[bytes] = []
    leaves = leaf_hashes
    while len(leaves) > 1:
        k = _split(len(leaves))
        if index < k:
            path.append(merkle_root(leaves[k:]))
            leaves = leaves[:k]
        else:
            path.append(merkle_root(leaves[:k]))
            leaves, index = leaves[k:], index - k
    path.reverse()
    return path


def tree_with_paths(leaf_hashes: Sequence[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """Root and every leaf's audit path in one O(n log n) pass (for batch anchoring)."""
    if not leaf_hashes:
        return EMPTY_TREE_ROOT, []
    if len(leaf_hashes) == 1:
        return leaf_hashes[0], [[]]
    k = _split(len(leaf_hashes))
    left_root, left_paths = tree_with_paths(leaf_hashes[:k])
    right_root, right_paths = tree_with_paths(leaf_hashes[k:])
    for path in left_paths:
        path.append(right_root)
    for path in right_paths:
        path.append(left_root)
    return node_hash(left_root, right_root), left_paths + right_paths


def verify_inclusion(
    leaf: bytes, index: int, tree_size: int, path: Sequence[bytes], root: bytes
) -> bool:
    """True iff ``path`` proves leaf hash ``leaf`` sits at ``index`` under ``root``.

    The algorithm of RFC 9162 §2.1.3.2; never raises on malformed input.
    """
    if not (isinstance(index, int) and isinstance(tree_size, int)) or not 0 <= index < tree_size:
        return False
    fn, sn, r = index, tree_size - 1, leaf
    for sibling in path:
        if sn == 0 or not isinstance(sibling, bytes) or len(sibling) != 32:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(sibling, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root
