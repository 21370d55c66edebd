"""Whether a protected action may go ahead: pass, spend a grant, or refuse. Pure.

``decide`` answers from the action's declaration, the caller's session, the grant found for
it (if any) and the time; ``require_sensitive_action`` (``require.py``) reads those, asks, and
then writes what the verdict says (the spent grant, the audit event). ``sensitive:status``
asks the same question, so the two can never disagree.

The rules (the levels are declared in ``registry.py``):

- a session is *fresh* for an action while the time since its sign-in is within the action's
  window (levels 1 and 2 only; 60 and 10 minutes unless the action says otherwise). Nothing
  refreshes a session's sign-in time, so neither renewing a token nor activity makes it fresh;
- otherwise the caller needs a grant bound to this very session, action and resource, and
  unexpired, and not proven by the factor the action changes (the methods an action demands
  are enforced when the grant is minted: ``offers.offer``); at level 4 the call spends it
  (in its own transaction: a failed call keeps it);
- otherwise: refuse, and the caller must verify.
"""

from __future__ import annotations

from enum import Enum

from backend.sensitive.records import Grant, Session
from backend.sensitive.registry import SensitiveAction


class Verdict(Enum):
    """What ``decide`` answers; each value is the outcome the audit trail records."""

    FRESH = "fresh-session"  # passes: the session signed in recently enough
    GRANT = "grant"  # passes on a live grant, which stays
    SPEND = "spent"  # passes on a live grant, which this call spends (level 4)
    REFUSE = "verification-required"

    @property
    def passes(self) -> bool:
        return self is not Verdict.REFUSE


def is_fresh(spec: SensitiveAction, session: Session, now_ms: float) -> bool:
    """Whether ``session`` is fresh enough for ``spec`` at ``now_ms``: the freshness rule."""
    window = spec.window
    return window is not None and now_ms - session.signed_in_at <= window.total_seconds() * 1000


def fits(
    grant: Grant, spec: SensitiveAction, session: Session, resource: str | None, now_ms: float
) -> bool:
    """Whether ``grant`` lets ``session`` perform ``spec`` on ``resource`` at ``now_ms``: and
    was not proven by the factor the action changes."""
    return (
        grant.session_id == session.id
        and grant.action == spec.name
        and grant.resource == resource
        and grant.expires_at > now_ms
        and (grant.method not in spec.excludes or grant.last_resort)
        and not (spec.not_by_resource and grant.factor_id == resource)
    )


def decide(
    spec: SensitiveAction,
    session: Session,
    grant: Grant | None,
    resource: str | None,
    now_ms: float,
) -> Verdict:
    """Pass, spend or refuse (see the module's docstring). ``grant`` is the one found for
    this session, action and resource, or None; one that does not fit is no grant."""
    if is_fresh(spec, session, now_ms):
        return Verdict.FRESH
    if grant is not None and fits(grant, spec, session, resource, now_ms):
        return Verdict.SPEND if spec.level >= 4 else Verdict.GRANT
    return Verdict.REFUSE


__all__ = ["Verdict", "decide", "fits", "is_fresh"]
