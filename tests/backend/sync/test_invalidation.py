"""SubscriptionIndex finds exactly the read sets a commit overlaps, without visiting the rest."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from backend.sync.invalidation import SubscriptionIndex, _Node
from backend.transactions.readset import ReadSet, WriteSet
from backend.values.index_key import KeyRange, encode_key

# A three-letter byte alphabet and keys of at most three bytes: few enough distinct keys that
# starts, ends and written keys keep colliding, which is where off-by-one bugs live.
BYTES = st.lists(st.sampled_from([0x00, 0x01, 0xFF]), max_size=3).map(bytes)
INDEXES = st.sampled_from(["by_a", "by_b"])
DOC_IDS = st.sampled_from(["d1", "d2", "d3", "d4"])
SUB_KEYS = st.integers(min_value=0, max_value=7)
# Empty ranges (end <= start) are drawn too: they must be ignored.
KEY_RANGES = st.builds(KeyRange, BYTES, st.none() | BYTES)


def read_set(ids: set[str], ranges: list[tuple[str, KeyRange]]) -> ReadSet:
    rs = ReadSet(ids=set(ids))
    for index_name, key_range in ranges:
        # Bypass add_range's empty-range filter on purpose: the index must cope on its own.
        rs.ranges.setdefault(index_name, []).append(key_range)
    return rs


def write_set(ids: set[str] | None = None, /, **keys: list[bytes]) -> WriteSet:
    return WriteSet(ids=ids or set(), keys={name: set(ks) for name, ks in keys.items()})


READ_SETS = st.builds(
    read_set,
    st.sets(DOC_IDS, max_size=2),
    st.lists(st.tuples(INDEXES, KEY_RANGES), max_size=4),
)
WRITE_SETS = st.builds(
    WriteSet,
    st.sets(DOC_IDS, max_size=2),
    st.dictionaries(INDEXES, st.sets(BYTES, max_size=4), max_size=2),
)


def check_tree(node: _Node[int] | None) -> tuple[int, tuple[int, bytes] | None]:
    """Assert AVL balance, BST order and max-end augmentation; return (height, max end)."""
    if node is None:
        return 0, None
    assert node.keys, "a node whose last subscriber left must be deleted"
    left_height, left_max = check_tree(node.left)
    right_height, right_max = check_tree(node.right)
    assert abs(left_height - right_height) <= 1
    assert node.height == 1 + max(left_height, right_height)
    assert node.left is None or node.left.order < node.order
    assert node.right is None or node.right.order > node.order
    assert node.max_end == max(e for e in (node.end, left_max, right_max) if e is not None)
    return node.height, node.max_end


class SubscriptionIndexModel(RuleBasedStateMachine):
    """Random set/replace/discard/affected sequences against the brute-force definition."""

    def __init__(self) -> None:
        super().__init__()
        self.index: SubscriptionIndex[int] = SubscriptionIndex()
        self.model: dict[int, ReadSet] = {}

    def expected(self, writes: WriteSet) -> set[int]:
        return {k for k, rs in self.model.items() if rs.overlaps(writes)}

    @rule(key=SUB_KEYS, rs=READ_SETS)
    def set_read_set(self, key: int, rs: ReadSet) -> None:
        self.index.set(key, rs)
        self.model[key] = rs

    @rule(key=SUB_KEYS)
    def discard(self, key: int) -> None:
        self.index.discard(key)
        self.model.pop(key, None)

    @rule(writes=WRITE_SETS)
    def affected(self, writes: WriteSet) -> None:
        assert self.index.affected(writes) == self.expected(writes)

    @rule()
    def affected_at_every_boundary(self) -> None:
        # Write exactly every registered start and end, and one byte either side of them.
        keys: dict[str, set[bytes]] = {}
        for rs in self.model.values():
            for index_name, ranges in rs.ranges.items():
                for r in ranges:
                    for b in (r.start, r.end):
                        if b is not None:
                            keys.setdefault(index_name, set()).update({b, b + b"\x00", b[:-1]})
        for index_name, points in keys.items():
            for point in points:
                writes = write_set(**{index_name: [point]})
                assert self.index.affected(writes) == self.expected(writes)

    @invariant()
    def sizes_and_trees_agree(self) -> None:
        assert len(self.index) == len(self.model)
        assert all(k in self.index for k in self.model)
        for tree in self.index._trees.values():
            assert tree
            check_tree(tree._root)
            assert len(tree._nodes) == sum(1 for _ in walk(tree._root))


def walk(node: _Node[int] | None) -> list[_Node[int]]:
    return [] if node is None else [*walk(node.left), node, *walk(node.right)]


SubscriptionIndexModel.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
TestSubscriptionIndexMatchesBruteForce = SubscriptionIndexModel.TestCase


def test_key_equal_to_start_is_inside() -> None:
    index: SubscriptionIndex[str] = SubscriptionIndex()
    index.set("q", read_set(set(), [("by_a", KeyRange(b"b", b"d"))]))
    assert index.affected(write_set(by_a=[b"b"])) == {"q"}
    assert index.affected(write_set(by_a=[b"a\xff"])) == set()


def test_key_equal_to_end_is_outside() -> None:
    index: SubscriptionIndex[str] = SubscriptionIndex()
    index.set("q", read_set(set(), [("by_a", KeyRange(b"b", b"d"))]))
    assert index.affected(write_set(by_a=[b"d"])) == set()
    assert index.affected(write_set(by_a=[b"c\xff\xff"])) == {"q"}


def test_unbounded_end_contains_every_key_from_start() -> None:
    index: SubscriptionIndex[str] = SubscriptionIndex()
    index.set("tail", read_set(set(), [("by_a", KeyRange(b"m", None))]))
    index.set("scan", read_set(set(), [("by_a", KeyRange.everything())]))
    assert index.affected(write_set(by_a=[b""])) == {"scan"}
    assert index.affected(write_set(by_a=[b"m"])) == {"tail", "scan"}
    assert index.affected(write_set(by_a=[b"\xff" * 20])) == {"tail", "scan"}


def test_ranges_only_match_writes_to_the_same_index() -> None:
    index: SubscriptionIndex[str] = SubscriptionIndex()
    index.set("q", read_set(set(), [("by_a", KeyRange.everything())]))
    assert index.affected(write_set(by_b=[b"x"])) == set()


def test_empty_ranges_are_ignored() -> None:
    index: SubscriptionIndex[str] = SubscriptionIndex()
    empty = [("by_a", KeyRange(b"b", b"b")), ("by_a", KeyRange(b"c", b"a"))]
    index.set("q", read_set(set(), empty))
    assert index.affected(write_set(by_a=[b"a", b"b", b"c"])) == set()
    assert "q" in index
    assert not index._trees


def test_id_only_read_sets_match_on_written_ids() -> None:
    index: SubscriptionIndex[str] = SubscriptionIndex()
    index.set("get_d1", read_set({"d1"}, []))
    index.set("get_d1_d2", read_set({"d1", "d2"}, []))
    assert index.affected(write_set({"d2", "d9"})) == {"get_d1_d2"}
    assert index.affected(write_set({"d1"})) == {"get_d1", "get_d1_d2"}
    assert index.affected(write_set({"d3"}, by_a=[b"x"])) == set()


def test_replacing_a_read_set_drops_the_old_intervals_and_ids() -> None:
    index: SubscriptionIndex[str] = SubscriptionIndex()
    index.set("q", read_set({"old"}, [("by_a", KeyRange(b"a", b"c"))]))
    index.set("q", read_set({"new"}, [("by_b", KeyRange(b"x", b"z"))]))
    assert index.affected(write_set({"old"}, by_a=[b"b"])) == set()
    assert index.affected(write_set({"new"})) == {"q"}
    assert index.affected(write_set(by_b=[b"y"])) == {"q"}
    assert len(index) == 1
    assert set(index._trees) == {"by_b"}
    assert set(index._by_id) == {"new"}


def test_read_set_is_copied_so_later_edits_do_not_leak_in() -> None:
    index: SubscriptionIndex[str] = SubscriptionIndex()
    rs = read_set({"d1"}, [("by_a", KeyRange(b"a", b"b"))])
    index.set("q", rs)
    rs.add_id("d2")
    rs.add_range("by_a", KeyRange(b"x", b"y"))
    assert index.affected(write_set({"d2"}, by_a=[b"x"])) == set()
    index.discard("q")
    assert not index._by_id
    assert not index._trees


def test_discard_removes_everything_and_ignores_unknown_keys() -> None:
    index: SubscriptionIndex[str] = SubscriptionIndex()
    index.set("q", read_set({"d1"}, [("by_a", KeyRange(b"a", b"c")), ("by_b", KeyRange())]))
    index.discard("q")
    index.discard("never-registered")
    assert "q" not in index
    assert len(index) == 0
    assert index.affected(write_set({"d1"}, by_a=[b"b"], by_b=[b""])) == set()
    assert not index._by_id
    assert not index._trees


def test_identical_ranges_share_one_node_until_the_last_subscriber_leaves() -> None:
    index: SubscriptionIndex[int] = SubscriptionIndex()
    page = KeyRange(b"a", b"m")
    for key in range(1000):
        index.set(key, read_set(set(), [("by_a", page)]))
    tree = index._trees["by_a"]
    assert len(tree._nodes) == 1
    assert index.affected(write_set(by_a=[b"c"])) == set(range(1000))
    for key in range(999):
        index.discard(key)
    assert index.affected(write_set(by_a=[b"c"])) == {999}
    index.discard(999)
    assert not index._trees


def test_one_write_among_ten_thousand_point_subscriptions_visits_few_nodes() -> None:
    # Each subscription watches one document, as `db.get` plus an index lookup would: its id
    # and the index prefix of its key, [key, key + b"\x00").
    index: SubscriptionIndex[int] = SubscriptionIndex()
    n = 10_000
    for i in range(n):
        index.set(i, read_set({f"doc{i}"}, [("by_n", KeyRange.prefix(encode_key([i])))]))
    # The write moves document 4321 from key 4321 to key 4321.5: the old key is in its own
    # prefix, the new one falls between two subscriptions' prefixes, inside neither.
    before = index.visited
    writes = write_set({"doc4321"}, by_n=[encode_key([4321]), encode_key([4321.5])])
    assert index.affected(writes) == {4321}
    cost = index.visited - before
    assert cost < 200, f"{cost} nodes visited for one affected subscription out of {n}"
    # Height is what bounds that cost: an AVL tree of n nodes is below 1.45 * log2(n) + 2.
    assert index._trees["by_n"]._root is not None
    assert index._trees["by_n"]._root.height <= 21


def test_a_few_table_scans_among_many_points_cost_only_what_they_report() -> None:
    index: SubscriptionIndex[int] = SubscriptionIndex()
    for i in range(10_000):
        index.set(i, read_set(set(), [("by_n", KeyRange.prefix(encode_key([i])))]))
    for scan in range(-3, 0):
        index.set(scan, read_set(set(), [("by_n", KeyRange.everything())]))
    before = index.visited
    assert index.affected(write_set(by_n=[encode_key([77])])) == {77, -3, -2, -1}
    assert index.visited - before < 200
