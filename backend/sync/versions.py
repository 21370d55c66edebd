"""The chain of state versions one connection has been sent.

The client checks that every Transition starts exactly where the previous one ended, and a
mismatch is an uncaught exception in its message handler (a crash under Node). So the session
never builds a ``startVersion`` by hand: it asks its ``VersionChain`` for the next link.
"""

from __future__ import annotations

from backend.sync.protocol import INITIAL, StateVersion


class VersionChain:
    """The last ``StateVersion`` sent on one socket, and the rules for moving past it."""

    def __init__(self) -> None:
        self._last = INITIAL

    @property
    def last(self) -> StateVersion:
        """The ``endVersion`` of the last Transition (``INITIAL`` before the first)."""
        return self._last

    def next(
        self,
        query_set: int | None = None,
        identity: int | None = None,
        ts: int | None = None,
    ) -> tuple[StateVersion, StateVersion]:
        """The ``(start, end)`` of the next Transition, recording ``end`` as sent.

        Fields not given stay as they were. ``ts`` never moves backwards (the larger of the old
        and the given value is used), because the client reads a Transition to ``ts`` as "all
        results are valid as of ``ts``". ``identity``, when given, must be exactly one more
        than the last: the client takes any rise as "token accepted", so a jump or a repeat is
        a server bug and raises ``ValueError``. Out-of-range values raise ``ValueError`` too.
        """
        start = self._last
        if identity is not None and identity != start.identity + 1:
            raise ValueError(
                f"identity version must go from {start.identity} to {start.identity + 1}, "
                f"not to {identity}"
            )
        # Checked here because max() below would hide a bad ts that is smaller than the last.
        if ts is not None and (isinstance(ts, bool) or not isinstance(ts, int) or ts < 0):
            raise ValueError(f"ts must be a non-negative int, got {ts!r}")
        end = StateVersion(
            query_set=start.query_set if query_set is None else query_set,
            identity=start.identity if identity is None else identity,
            ts=start.ts if ts is None else max(start.ts, ts),
        )
        self._last = end
        return start, end

    def reset(self) -> None:
        """Start over from ``INITIAL``, as the client does on every new socket."""
        self._last = INITIAL
