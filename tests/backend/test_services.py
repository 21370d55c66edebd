"""The engine's service registry: one service per class, found with its type."""

from __future__ import annotations

import pytest

from backend.mail import CaptureTransport, DevOutboxTransport, MailTransport
from backend.services import MissingService, Services


def test_a_service_is_found_by_the_class_it_was_registered_under() -> None:
    services = Services()
    capture = CaptureTransport()
    assert services.register(MailTransport, capture) is capture
    assert services.get(MailTransport) is capture
    assert services.find(MailTransport) is capture
    assert MailTransport in services
    assert services.find(DevOutboxTransport) is None  # by the class it was registered as


def test_registering_again_replaces_and_a_wrong_kind_is_refused() -> None:
    services = Services()
    services.register(MailTransport, CaptureTransport())
    other = DevOutboxTransport()
    services.register(MailTransport, other)
    assert services.get(MailTransport) is other
    with pytest.raises(TypeError, match="is not a MailTransport"):
        services.register(MailTransport, "smtp://example")


def test_a_missing_service_names_what_is_missing_and_how_to_register_it() -> None:
    with pytest.raises(MissingService, match=r"no MailTransport: register one with"):
        Services().get(MailTransport)
