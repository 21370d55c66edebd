"""The engine's services, registered and found by their class.

An engine carries one ``Services``: the subsystems an assembly plugs in (the step-up service,
the seal for mail secrets, the mail transport, ...), each registered under the class that
names its contract and found again by that class, with its type::

    engine.services.register(SensitiveService, service)
    service = engine.services.get(SensitiveService)      # typed: a SensitiveService

Inside a transaction, a subsystem asks its ``SystemContext`` (``system.service(Kind)``), which
reads the same registry. A contract that several implementations fulfil (``MailTransport``) is
a base class they derive from, so that the registry, and mypy, can name it.
"""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")


class MissingService(RuntimeError):
    """No service of the class asked for was registered on this engine (a mistake in the
    assembly that built it)."""


class Services:
    """One instance per class: ``register`` puts (or replaces), ``get`` finds or raises,
    ``find`` finds or answers None."""

    def __init__(self) -> None:
        self._by_kind: dict[type[Any], Any] = {}

    def register(self, kind: type[T], service: T) -> T:
        """Make ``service`` the engine's ``kind`` (replacing any earlier one) and return it.
        Raises ``TypeError`` when ``service`` is not a ``kind``."""
        if not isinstance(service, kind):
            raise TypeError(f"{service!r} is not a {kind.__qualname__}")
        self._by_kind[kind] = service
        return service

    def find(self, kind: type[T]) -> T | None:
        """The registered ``kind``, or None."""
        found: T | None = self._by_kind.get(kind)
        return found

    def get(self, kind: type[T]) -> T:
        """The registered ``kind``. Raises ``MissingService`` naming it when there is none:
        the assembly that built the engine did not register one."""
        found = self.find(kind)
        if found is None:
            raise MissingService(
                f"this engine has no {kind.__qualname__}: register one with "
                f"engine.services.register({kind.__qualname__}, ...) when building it"
            )
        return found

    def __contains__(self, kind: object) -> bool:
        return kind in self._by_kind

    def __repr__(self) -> str:
        names = ", ".join(sorted(kind.__qualname__ for kind in self._by_kind))
        return f"Services({names})"


__all__ = ["MissingService", "Services"]
