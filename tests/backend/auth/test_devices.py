"""Device cookies: signed by the server, so only the server can make a known device."""

from __future__ import annotations

from backend.auth.devices import DeviceCookies
from backend.runtime import Runtime


def test_a_device_cookie_reads_back_and_a_forged_or_foreign_one_does_not() -> None:
    cookies = DeviceCookies("server secret")
    device = cookies.mint(Runtime())
    assert cookies.read(device.cookie) == device
    assert device.hash not in device.cookie  # the stored hash is not in the cookie
    device_id, _, signature = device.cookie.partition(".")
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    assert cookies.read(f"{device_id}.{flipped}") is None
    assert cookies.read(f"other{device_id}.{signature}") is None
    assert DeviceCookies("another server").read(device.cookie) is None
    for garbage in (None, "", ".", "x", "a.b.c", "é.ü", "x" * 500, 5):
        assert cookies.read(garbage) is None


def test_every_device_is_new() -> None:
    cookies = DeviceCookies("server secret")
    assert len({cookies.mint(Runtime()).hash for _ in range(20)}) == 20
