"""RFC 6962 Merkle tree hashing: leaves, compact ranges, roots, inclusion proofs.

Leaf hash = SHA-256(0x00 || leaf bytes); interior node = SHA-256(0x01 || left || right).
The tree over n leaves splits at the largest power of two smaller than n
(RFC 6962 section 2.1), so a log can be summarised by its *compact range*:
the roots of the perfect subtrees that make up its leaves, largest first,
one per set bit of n. Appending a leaf and computing the root from that
range are O(log n); nothing needs the whole tree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from secpod.errors import AuditError

_sha256 = hashlib.sha256
EMPTY_ROOT = _sha256(b"").digest()


def leaf_hash(leaf: bytes) -> bytes:
    """RFC 6962 leaf hash of ``leaf`` (a record line without its newline)."""
    return _sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash."""
    return _sha256(b"\x01" + left + right).digest()


def append_leaf(frontier: list[bytes], size: int, leaf: bytes) -> None:
    """Add the leaf hash ``leaf`` to the compact range ``frontier`` of ``size`` leaves, in place."""
    h = leaf
    k = size
    while k & 1:
        h = _sha256(b"\x01" + frontier.pop() + h).digest()
        k >>= 1
    frontier.append(h)


def frontier_root(frontier: Sequence[bytes]) -> bytes:
    """The tree head of the leaves a compact range summarises (SHA-256 of "" when empty)."""
    if not frontier:
        return EMPTY_ROOT
    h = frontier[-1]
    for left in reversed(frontier[:-1]):
        h = _sha256(b"\x01" + left + h).digest()
    return h


def frontier_of(leaves: Sequence[bytes]) -> list[bytes]:
    """The compact range of a list of leaf hashes."""
    frontier: list[bytes] = []
    for i, h in enumerate(leaves):
        append_leaf(frontier, i, h)
    return frontier


def _largest_pow2_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def subtree_root(leaves: Sequence[bytes], start: int, end: int) -> bytes:
    """MTH(D[start:end]) for leaf hashes ``leaves``; O(end - start) hashing."""
    n = end - start
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[start]
    k = _largest_pow2_below(n)
    return node_hash(subtree_root(leaves, start, start + k), subtree_root(leaves, start + k, end))


def inclusion_path(leaves: Sequence[bytes], index: int, size: int) -> list[bytes]:
    """RFC 6962 PATH(index, D[0:size]): the audit path for leaf ``index`` in the tree of ``size``.

    Raises AuditError if ``index`` is not a leaf of that tree.
    """
    if not 0 <= index < size <= len(leaves):
        raise AuditError(f"record {index} is not in a tree of {size} records")
    start, end = 0, size
    # Walk down from the root; the sibling of each subtree on the way is a path element.
    siblings: list[bytes] = []
    while end - start > 1:
        k = _largest_pow2_below(end - start)
        if index - start < k:
            siblings.append(subtree_root(leaves, start + k, end))
            end = start + k
        else:
            siblings.append(subtree_root(leaves, start, start + k))
            start = start + k
    return list(reversed(siblings))


def root_from_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes:
    """The root implied by an inclusion proof (RFC 9162 section 2.1.3.2).

    Pure: no I/O. Raises AuditError if the proof has the wrong shape for
    ``index`` and ``size``.
    """
    if not 0 <= index < size:
        raise AuditError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn = index, size - 1
    r = leaf
    for p in path:
        if sn == 0:
            raise AuditError("the inclusion proof is longer than the tree allows")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise AuditError("the inclusion proof is shorter than the tree needs")
    return r


def consistency_path(leaves: Sequence[bytes], old_size: int, size: int) -> list[bytes]:
    """RFC 6962 PROOF(old_size, D[0:size]) (section 2.1.2): the hashes that show the tree
    of ``old_size`` leaves is a prefix of the tree of ``size``. Empty when the sizes are
    equal or ``old_size`` is 0. Raises AuditError for sizes that are not old <= new <= leaves.
    """
    if not 0 <= old_size <= size <= len(leaves):
        raise AuditError(f"no consistency proof from {old_size} to {size} records")
    if old_size in (0, size):
        return []
    out: list[bytes] = []
    start, end, whole = 0, size, True   # SUBPROOF(m, D[start:end], whole)
    m = old_size
    while m != end - start:
        k = _largest_pow2_below(end - start)
        if m <= k:
            out.append(subtree_root(leaves, start + k, end))
            end = start + k
        else:
            out.append(subtree_root(leaves, start, start + k))
            start, m, whole = start + k, m - k, False
    if not whole:
        out.append(subtree_root(leaves, start, end))
    return list(reversed(out))


def verify_consistency(old_size: int, size: int, old_root: bytes, root: bytes,
                       path: Sequence[bytes]) -> None:
    """Check a consistency proof (RFC 9162 section 2.1.4.2). Pure: no I/O.

    Raises AuditError when the proof does not show that the tree of ``old_size``
    leaves with head ``old_root`` is a prefix of the tree of ``size`` with ``root``.
    """
    if not 0 <= old_size <= size:
        raise AuditError(f"a tree of {size} records cannot extend one of {old_size}")
    if old_size == 0 or old_size == size:
        if path:
            raise AuditError("the consistency proof should be empty for these sizes")
        if old_size == size and old_root != root:
            raise AuditError(f"two different trees of {size} records")
        if old_size == 0 and old_root != EMPTY_ROOT:
            raise AuditError("an empty tree has a different root")
        return
    hashes = list(path)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is a node of the tree
        hashes.insert(0, old_root)
    if not hashes:
        raise AuditError("the consistency proof is empty")
    fn, sn = old_size - 1, size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = hashes[0]
    for c in hashes[1:]:
        if sn == 0:
            raise AuditError("the consistency proof is longer than the trees allow")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise AuditError("the consistency proof is shorter than the trees need")
    if fr != old_root or sr != root:
        raise AuditError(f"the tree of {size} records does not extend the one of {old_size}: "
                         "records before it were changed or removed")
