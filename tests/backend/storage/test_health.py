"""The store's health: one log line when an outage starts, one when it ends, none between."""

from __future__ import annotations

import logging

import pytest

from backend.storage.health import StoreHealth, StoreState


def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    health = StoreHealth(clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="backend.storage")
    health.succeeded()
    assert health.report().state is StoreState.UP
    for second in range(30):
        now[0] = 100.0 + second
        health.failed(f"refused, try {second}")
    report = health.report()
    assert report.state is StoreState.DOWN
    assert report.cause == "refused, try 0"  # the cause that started it
    assert report.down_for == 29.0
    now[0] = 130.0
    for _ in range(5):
        health.succeeded()
    assert health.up
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert lines == [
        (logging.ERROR, "database unavailable: refused, try 0"),
        (logging.WARNING, "database available again after 30.0 s (it was: refused, try 0)"),
    ]
    assert not any(r.exc_info for r in caplog.records)
