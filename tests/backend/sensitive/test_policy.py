"""``policy.decide``: pass, spend or refuse, from the declaration, the session, the grant and
the time alone. No database."""

from __future__ import annotations

from datetime import timedelta

import pytest

from backend.sensitive.policy import Verdict, decide, fits, is_fresh
from backend.sensitive.records import Grant, Session
from backend.sensitive.registry import SensitiveAction

MINUTE = 60_000.0
SIGNED_IN = 1_000_000.0
SESSION = Session(id="s1", user_id="u1", signed_in_at=SIGNED_IN)


def _action(level: int, **options: timedelta) -> SensitiveAction:
    return SensitiveAction("org.delete", level, "Delete", **options)  # type: ignore[arg-type]


def _grant(**fields: object) -> Grant:
    values: dict[str, object] = {
        "session_id": "s1",
        "action": "org.delete",
        "resource": "org-a",
        "method": "password",
        "expires_at": SIGNED_IN + 100 * MINUTE,
    }
    values.update(fields)
    return Grant(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(("level", "window"), [(1, 60), (2, 10)])
def test_a_session_is_fresh_for_its_levels_window_and_not_a_moment_longer(
    level: int, window: int
) -> None:
    spec = _action(level)
    edge = SIGNED_IN + window * MINUTE
    assert decide(spec, SESSION, None, "org-a", edge) is Verdict.FRESH
    assert decide(spec, SESSION, None, "org-a", edge + 1) is Verdict.REFUSE


@pytest.mark.parametrize("level", [3, 4])
def test_levels_three_and_four_never_pass_on_a_fresh_session(level: int) -> None:
    assert not is_fresh(_action(level), SESSION, SIGNED_IN)
    assert decide(_action(level), SESSION, None, "org-a", SIGNED_IN) is Verdict.REFUSE


def test_an_action_may_shorten_its_window() -> None:
    spec = _action(1, fresh_for=timedelta(minutes=2))
    assert decide(spec, SESSION, None, None, SIGNED_IN + 2 * MINUTE) is Verdict.FRESH
    assert decide(spec, SESSION, None, None, SIGNED_IN + 3 * MINUTE) is Verdict.REFUSE


@pytest.mark.parametrize(
    ("level", "verdict"), [(1, Verdict.GRANT), (3, Verdict.GRANT), (4, Verdict.SPEND)]
)
def test_a_live_grant_for_this_target_passes_and_level_four_spends_it(
    level: int, verdict: Verdict
) -> None:
    late = SIGNED_IN + 90 * MINUTE  # no session is fresh this late
    assert decide(_action(level), SESSION, _grant(), "org-a", late) is verdict
    assert verdict.passes


@pytest.mark.parametrize(
    "other",
    [
        {"resource": "org-b"},  # orgs:remove of org A cannot spend a grant for org B
        {"resource": None},
        {"session_id": "s2"},  # another session's grant
        {"action": "org.rename"},  # another action's grant
        {"expires_at": SIGNED_IN + 90 * MINUTE},  # expired at that instant
    ],
)
def test_a_grant_for_anything_else_is_no_grant(other: dict[str, object]) -> None:
    late = SIGNED_IN + 90 * MINUTE
    grant = _grant(**other)
    assert not fits(grant, _action(4), SESSION, "org-a", late)
    assert decide(_action(4), SESSION, grant, "org-a", late) is Verdict.REFUSE
    assert not Verdict.REFUSE.passes


def test_an_undeclared_action_is_level_four_and_only_refuses_without_a_grant() -> None:
    spec = SensitiveAction("never.declared", 4, registered=False)
    assert decide(spec, SESSION, None, None, SIGNED_IN) is Verdict.REFUSE
