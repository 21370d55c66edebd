"""Which live subscriptions does a commit invalidate?

A subscription is re-run when a commit's write set overlaps its read set
(``ReadSet.overlaps``): they share a document id, or a written index key (old or new) falls
inside a scanned key range. Checking every subscription against every commit costs
O(subscriptions) per commit; invariant 3 asks for cost that grows with the subscriptions a commit
*affects*. ``SubscriptionIndex`` inverts the read sets so that a commit looks up only what it
touches:

* **Ids** go in a dict ``doc_id -> {subscription keys}``: one hash lookup per written id.

* **Ranges** go, per index name, in an interval tree that answers the stabbing query "which
  intervals contain this key?". Each written key is one stabbing query.

Why this tree: an AVL tree of *distinct* intervals ordered by ``(start, end)``, each node
augmented with the largest ``end`` in its subtree (CLRS's interval tree). A stabbing query for
``p`` skips every subtree whose largest end is ``<= p`` and every right subtree below a node that
starts after ``p``, so it visits O(log n) nodes plus O(log n) per interval it reports. Inserts
and deletes are O(log n) no matter how wide the interval is. The alternatives were worse on one
of the workloads we expect:

* sorted elementary segments (bisect over all boundaries, a key set per segment) answer in
  O(log n + k) but a whole-table scan ``[b"", None)`` covers every segment, so registering or
  dropping one costs O(n), and each new boundary splits a segment whose key set must be copied;
* a centered interval tree is hard to keep balanced under deletes;
* a treap is shorter but needs a randomness source (see STYLE.md, habit 6) and is only balanced
  in expectation; AVL is deterministic, so visit counts in tests are exact.

Workloads this is shaped for: (a) thousands of point-like ranges ``[k, k + b"\\x00")``, one per
watched document: disjoint, so a write visits one root-to-leaf path; (b) a few whole-table scans
``[b"", None)``: they sit at the far left with an unbounded end, found on every path at once;
(c) thousands of subscribers of the same paginated query: identical ``(start, end)`` pairs share
one node whose key set holds them all (a dict from ``KeyRange`` to node finds it in O(1)), so
the tree grows with distinct intervals, not with subscribers.

Unbounded ends are stored as the bound ``(1, b"")`` and bounded ones as ``(0, end)``: tuples
compare so that ``None`` sorts above every key, with no special case in the hot loop. Empty
ranges (``end <= start``) contain no key and are never stored.

The index is plain in-memory data with no locking: it belongs to the one task that applies
commits to subscriptions, and each method runs to completion without awaiting.
"""

from __future__ import annotations

import builtins
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from backend.transactions.readset import ReadSet, WriteSet
from backend.values.index_key import KeyRange

K = TypeVar("K", bound=Hashable)

_Bound = tuple[int, bytes]
"""An interval end as a comparable: ``(0, end)`` for a key, ``(1, b"")`` for unbounded."""

_UNBOUNDED: _Bound = (1, b"")


def _bound(end: bytes | None) -> _Bound:
    return _UNBOUNDED if end is None else (0, end)


class _Node(Generic[K]):
    """One distinct interval, the subscriptions that read it, and the AVL/interval fields."""

    __slots__ = ("end", "height", "keys", "left", "max_end", "order", "right", "start")

    def __init__(self, key_range: KeyRange) -> None:
        self.start = key_range.start
        self.end = _bound(key_range.end)
        # Tree order: by start (what the query prunes on), ties broken by end so that distinct
        # intervals never compare equal.
        self.order = (self.start, self.end)
        self.keys: set[K] = set()
        self.left: _Node[K] | None = None
        self.right: _Node[K] | None = None
        self.height = 1
        self.max_end = self.end


def _height(node: _Node[K] | None) -> int:
    return 0 if node is None else node.height


def _update(node: _Node[K]) -> None:
    """Recompute ``height`` and ``max_end`` from the children (which must be up to date)."""
    left, right = node.left, node.right
    node.height = 1 + max(_height(left), _height(right))
    max_end = node.end
    if left is not None and left.max_end > max_end:
        max_end = left.max_end
    if right is not None and right.max_end > max_end:
        max_end = right.max_end
    node.max_end = max_end


def _rotate_right(node: _Node[K]) -> _Node[K]:
    pivot = node.left
    assert pivot is not None
    node.left = pivot.right
    pivot.right = node
    _update(node)
    _update(pivot)
    return pivot


def _rotate_left(node: _Node[K]) -> _Node[K]:
    pivot = node.right
    assert pivot is not None
    node.right = pivot.left
    pivot.left = node
    _update(node)
    _update(pivot)
    return pivot


def _rebalance(node: _Node[K]) -> _Node[K]:
    """Restore the AVL balance at ``node`` (children balanced) and return the new subtree root."""
    _update(node)
    balance = _height(node.left) - _height(node.right)
    if balance > 1:
        left = node.left
        assert left is not None
        if _height(left.left) < _height(left.right):
            node.left = _rotate_left(left)
        return _rotate_right(node)
    if balance < -1:
        right = node.right
        assert right is not None
        if _height(right.right) < _height(right.left):
            node.right = _rotate_right(right)
        return _rotate_left(node)
    return node


def _insert(root: _Node[K] | None, node: _Node[K]) -> _Node[K]:
    if root is None:
        return node
    if node.order < root.order:
        root.left = _insert(root.left, node)
    else:
        root.right = _insert(root.right, node)
    return _rebalance(root)


def _pop_min(root: _Node[K]) -> tuple[_Node[K] | None, _Node[K]]:
    """Detach the leftmost node of ``root``: (what remains of the subtree, the detached node)."""
    if root.left is None:
        return root.right, root
    root.left, smallest = _pop_min(root.left)
    return _rebalance(root), smallest


def _delete(root: _Node[K] | None, node: _Node[K]) -> _Node[K] | None:
    assert root is not None, "deleting an interval that is not in the tree"
    if node.order < root.order:
        root.left = _delete(root.left, node)
    elif node.order > root.order:
        root.right = _delete(root.right, node)
    else:
        if root.left is None:
            return root.right
        if root.right is None:
            return root.left
        # Move the successor *node* into this place rather than copying its fields over: the
        # tree's dict maps each interval to its node object, and that mapping must stay true.
        rest, successor = _pop_min(root.right)
        successor.left, successor.right = root.left, rest
        root = successor
    return _rebalance(root)


class _IntervalTree(Generic[K]):
    """The distinct read intervals of one index, answering "which contain this key?"."""

    __slots__ = ("_nodes", "_root")

    def __init__(self) -> None:
        self._root: _Node[K] | None = None
        self._nodes: dict[KeyRange, _Node[K]] = {}

    def __bool__(self) -> bool:
        return self._root is not None

    def add(self, key_range: KeyRange, key: K) -> None:
        node = self._nodes.get(key_range)
        if node is None:
            node = self._nodes[key_range] = _Node(key_range)
            self._root = _insert(self._root, node)
        node.keys.add(key)

    def remove(self, key_range: KeyRange, key: K) -> None:
        node = self._nodes[key_range]
        node.keys.discard(key)
        if not node.keys:
            del self._nodes[key_range]
            self._root = _delete(self._root, node)

    def stab(self, point: bytes, out: set[K]) -> int:
        """Add to ``out`` the keys of every interval containing ``point``; return nodes visited.

        Iterative (an explicit stack of pending left subtrees) so the walk is cheap in Python.
        Every visited node either is on the search path for ``point``, or hangs left of it with
        a subtree max end above ``point``, which (all its starts being ``<= point``) guarantees
        an interval there to report: hence O(log n + reported * log n) visits.
        """
        bound: _Bound = (0, point)
        visited = 0
        pending: list[_Node[K] | None] = [self._root]
        while pending:
            node = pending.pop()
            while node is not None:
                visited += 1
                if node.max_end <= bound:
                    break  # every interval below ends at or before the point
                if node.left is not None:
                    pending.append(node.left)
                if node.start > point:
                    break  # this node and its right subtree start after the point
                if bound < node.end:
                    out |= node.keys
                node = node.right
        return visited


@dataclass(frozen=True, slots=True)
class _Registration:
    """What one subscription is indexed under: a private copy, immune to later edits."""

    ids: frozenset[str]
    ranges: frozenset[tuple[str, KeyRange]]


class SubscriptionIndex(Generic[K]):
    """Live subscriptions' read sets, inverted so a commit finds the ones it invalidates.

    ``K`` is whatever names a subscription (a ``(session, query_id)`` pair, say). The read sets
    given to ``set`` are copied, so the caller may reuse or mutate them afterwards.

    Cost, with ``n`` distinct intervals in an index and ``r`` ids plus ranges in a read set:
    ``set`` and ``discard`` are O(r log n); ``affected`` is O(|written ids| + sum over written
    keys of (1 + intervals containing the key) * log n), independent of how many subscriptions
    the commit leaves alone.
    """

    visited: int
    """Tree nodes examined by ``affected`` since creation: a cost probe for tests and metrics."""

    def __init__(self) -> None:
        self._registrations: dict[K, _Registration] = {}
        self._by_id: dict[str, set[K]] = {}
        self._trees: dict[str, _IntervalTree[K]] = {}
        self.visited = 0

    def __len__(self) -> int:
        return len(self._registrations)

    def __contains__(self, key: object) -> bool:
        return key in self._registrations

    def set(self, key: K, read_set: ReadSet) -> None:
        """Register ``key`` as depending on ``read_set``, replacing any read set it had."""
        registration = _Registration(
            ids=frozenset(read_set.ids),
            ranges=frozenset(
                (index_name, key_range)
                for index_name, ranges in read_set.ranges.items()
                for key_range in ranges
                if not key_range.is_empty()
            ),
        )
        old = self._registrations.get(key)
        if old == registration:
            return  # a re-run that read the same things: nothing to move
        if old is not None:
            self._unindex(key, old)
        self._registrations[key] = registration
        for doc_id in registration.ids:
            self._by_id.setdefault(doc_id, set()).add(key)
        for index_name, key_range in registration.ranges:
            tree = self._trees.get(index_name)
            if tree is None:
                tree = self._trees[index_name] = _IntervalTree()
            tree.add(key_range, key)

    def discard(self, key: K) -> None:
        """Forget ``key`` and everything it read; a key that is not registered is ignored."""
        registration = self._registrations.pop(key, None)
        if registration is not None:
            self._unindex(key, registration)

    # ``builtins.set``: inside this class body, a bare ``set`` names the method above.
    def affected(self, writes: WriteSet) -> builtins.set[K]:
        """The keys whose read set ``overlaps(writes)``: exactly the subscriptions to re-run."""
        out: builtins.set[K] = set()
        for doc_id in writes.ids:
            keys = self._by_id.get(doc_id)
            if keys:
                out |= keys
        for index_name, written in writes.keys.items():
            tree = self._trees.get(index_name)
            if tree is None:
                continue
            for point in written:
                self.visited += tree.stab(point, out)
        return out

    def _unindex(self, key: K, registration: _Registration) -> None:
        for doc_id in registration.ids:
            keys = self._by_id[doc_id]
            keys.discard(key)
            if not keys:
                del self._by_id[doc_id]
        for index_name, key_range in registration.ranges:
            tree = self._trees[index_name]
            tree.remove(key_range, key)
            if not tree:
                del self._trees[index_name]
