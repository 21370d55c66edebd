"""The registry of protected actions: name, level, description, and optional overrides.

| level | passes on                                  |
|-------|--------------------------------------------|
| 1     | a fresh session (60 min by default), or a grant |
| 2     | a fresh session (10 min by default), or a grant |
| 3     | a grant                                    |
| 4     | a grant, which the call spends             |

An action that is not registered fails closed: ``require_sensitive_action`` treats it as level
4, and no verification is ever made for it.

Each action may declare who may verify for it (``authorize``): the same permission rule its
mutation applies before it calls ``require_sensitive_action``. The verification functions run
it before anything else (rate limits, codes, mail, descriptions, grants); a caller it refuses
gets ``FORBIDDEN`` and nothing is sent, described or minted. Declare one for every action whose
resource belongs to someone: without it, any signed-in user may verify for any resource.

An action may demand stronger methods than a password or a code by mail: ``methods={"passkey",
"totp"}`` offers a user only those of them they have (and their backup codes, the recovery of
both); a user who has none of them is offered email alone, and the refusal says so
(``fallback: true``).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

from backend.errors import ConvexError

METHOD_NAMES = frozenset({"passkey", "totp", "password", "backup_code", "email"})
DEFAULT_WINDOWS = {1: timedelta(minutes=60), 2: timedelta(minutes=10)}
DEFAULT_GRANT_TTL = timedelta(minutes=5)
MAX_GRANT_TTL = timedelta(minutes=10)

Describe = str | Callable[[Any, str | None], "str | Awaitable[str]"]
Authorize = Callable[[Any, str | None], "bool | Awaitable[bool | None] | None"]


@dataclass(frozen=True)
class SensitiveAction:
    """One protected action.

    ``description`` is shown to the user before they verify ("Delete organization Acme"): a
    string (``{resource}`` is replaced by the resource), or a function ``(ctx, resource)``
    returning one, which may read the database. ``fresh_for`` overrides the freshness window
    of levels 1-2; ``grant_ttl`` the grant's lifetime (capped at 10 minutes).

    ``authorize`` is a function ``(ctx, resource)`` (a read-only ``QueryCtx``; it may be
    async) that refuses a caller who may not perform the action on ``resource``, by raising a
    ``ConvexError`` (``FORBIDDEN``, ``NOT_FOUND``, ...) or returning ``False``. Whatever the
    refusal, the verification functions answer ``FORBIDDEN`` alike, so that they tell nobody
    whether a resource exists.
    """

    name: str
    level: int
    description: Describe = "Confirm this action"
    fresh_for: timedelta | None = None
    grant_ttl: timedelta | None = None
    authorize: Authorize | None = None
    methods: AbstractSet[str] | None = None
    # the methods whose proof does not count (a factor is never removed on its own proof)
    excludes: frozenset[str] = frozenset()
    # excluded methods still offered to a user who has nothing else (``changes.py``)
    last_resort: frozenset[str] = frozenset()
    # a proof by the very factor the resource names does not count (removing a passkey)
    not_by_resource: bool = False
    builtin: bool = False  # one of the engine's own actions (``changes.py``)
    registered: bool = True  # False only for the stand-in of an undeclared action

    def __post_init__(self) -> None:
        if self.level not in (1, 2, 3, 4):
            raise TypeError(f"{self.name}: level must be 1, 2, 3 or 4, not {self.level!r}")
        if self.fresh_for is not None and self.level > 2:
            raise TypeError(f"{self.name}: only levels 1 and 2 pass on a fresh session")
        if not self.name or len(self.name) > 128:
            raise TypeError("an action name has 1 to 128 characters")
        if self.methods is not None:
            object.__setattr__(self, "methods", frozenset(self.methods))
            unknown = set(self.methods) - METHOD_NAMES
            if unknown or not self.methods:
                raise TypeError(
                    f"{self.name}: methods are some of {sorted(METHOD_NAMES)}, not "
                    f"{sorted(self.methods)!r}"
                )

    def permits(self, method: str) -> bool:
        """Whether a proof by ``method`` may satisfy this action when the user has one of the
        methods it demands (backup codes stand in for a passkey or an app)."""
        if method in self.excludes:
            return False
        if self.methods is None:
            return True
        if method == "backup_code":
            return bool(self.methods & {"passkey", "totp", "backup_code"})
        return method in self.methods

    @property
    def window(self) -> timedelta | None:
        """How long after sign-in a session counts as fresh for this action (None: never)."""
        if self.level > 2:
            return None
        return self.fresh_for if self.fresh_for is not None else DEFAULT_WINDOWS[self.level]

    @property
    def grant_lifetime(self) -> timedelta:
        return min(self.grant_ttl or DEFAULT_GRANT_TTL, MAX_GRANT_TTL)

    async def allows(self, ctx: Any, resource: str | None) -> bool:
        """Whether the caller of ``ctx`` may verify for this action on ``resource``: never for
        an undeclared action; otherwise what ``authorize`` says (raising ``ConvexError`` or
        returning ``False`` refuses; other exceptions are bugs and propagate)."""
        if not self.registered:
            return False
        if self.authorize is None:
            return True
        try:
            verdict = self.authorize(ctx, resource)
            if inspect.isawaitable(verdict):
                verdict = await verdict
        except ConvexError:
            return False
        return verdict is not False

    async def describe(self, ctx: Any, resource: str | None) -> str:
        if isinstance(self.description, str):
            return self.description.replace("{resource}", resource or "")
        text = self.description(ctx, resource)
        if inspect.isawaitable(text):
            text = await text
        return str(text)


class SensitiveActions:
    """The app's protected actions. Put one instance in a module of the functions package;
    the engine finds it when it loads the app."""

    __app_extension__: ClassVar[str] = "sensitive_actions"

    def __init__(self, *actions: SensitiveAction) -> None:
        self._actions: dict[str, SensitiveAction] = {}
        for action in actions:
            if action.name in self._actions:
                raise TypeError(f"sensitive action {action.name!r} is declared twice")
            self._actions[action.name] = action

    def with_builtins(self, builtins: SensitiveActions) -> SensitiveActions:
        """These actions and the engine's own (which an app cannot redeclare)."""
        clash = [a.name for a in builtins if a.name in self._actions]
        if clash:
            raise TypeError(f"sensitive actions {clash!r} are the engine's own")
        merged = SensitiveActions()
        merged._actions = {**self._actions, **builtins._actions}
        return merged

    def get(self, name: str) -> SensitiveAction:
        """The declared action, or a level-4 stand-in: unknown actions fail closed."""
        found = self._actions.get(name)
        if found is not None:
            return found
        return SensitiveAction(name if name else "?", 4, "Confirm this action", registered=False)

    def __contains__(self, name: object) -> bool:
        return name in self._actions

    def __iter__(self) -> Any:
        return iter(self._actions.values())


EMPTY = SensitiveActions()
