"""The rules of authenticator-app codes (TOTP, RFC 6238), as plain functions. Pure.

A code is six digits from HMAC-SHA1 over the 30-second time step and the user's secret. One is
accepted for the current step and one step either side (a clock a little off, a code typed as
it turned over), and each step is accepted once per user: a code accepted for step ``n`` is
refused again, and so is any code for a step not after the newest one accepted (``last_step``),
so a code seen over a shoulder or phished and replayed after its owner used it is worthless.
Wrong and replayed codes count on the account's password failure record (``lockout.py``), so
a million codes are not guessed six at a time.
"""

from __future__ import annotations

import base64
import hmac
import re
from dataclasses import dataclass
from enum import Enum

import pyotp
import segno

from backend.runtime import RandomSource

STEP_SECONDS = 30
WINDOW = 1  # steps accepted either side of the current one
DIGITS = 6
SECRET_BYTES = 20  # 160 bits, RFC 4226's recommendation
_CODE = re.compile(r"\d{6}")


def draw_secret(random: RandomSource) -> str:
    """A fresh secret, base32 (what authenticator apps take)."""
    return base64.b32encode(random.token_bytes(SECRET_BYTES)).decode("ascii").rstrip("=")


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    """The ``otpauth://totp/...`` URI an app scans."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=account, issuer_name=issuer
    )


def qr_svg(uri: str) -> str:
    """The URI as a QR code, an inline ``<svg>`` element."""
    return str(segno.make(uri, error="m").svg_inline(scale=4, dark="#111", light="#fff"))


def step_at(now_ms: float) -> int:
    return int(now_ms // 1000) // STEP_SECONDS


class TotpVerdict(Enum):
    """What a presented code is; each value is the detail the audit trail records."""

    RIGHT = "right"
    WRONG = "wrong code"
    REPLAYED = "replayed code"  # right, for a step already accepted (or an older one)


@dataclass(frozen=True)
class Judged:
    verdict: TotpVerdict
    step: int | None = None  # the step the code was right for


def judge(secret: str, presented: str, now_ms: float, last_step: int | None) -> Judged:
    """``presented`` against ``secret`` at ``now_ms``; ``last_step`` is the newest step the
    user had accepted (None: none yet). Every candidate step is compared in constant time."""
    code = presented.strip().replace(" ", "")
    if _CODE.fullmatch(code) is None:
        return Judged(TotpVerdict.WRONG)
    otp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = step_at(now_ms)
    matched: int | None = None
    for step in range(current - WINDOW, current + WINDOW + 1):
        if hmac.compare_digest(otp.generate_otp(step), code):
            matched = step
    if matched is None:
        return Judged(TotpVerdict.WRONG)
    if last_step is not None and matched <= last_step:
        return Judged(TotpVerdict.REPLAYED, matched)
    return Judged(TotpVerdict.RIGHT, matched)


__all__ = [
    "DIGITS",
    "STEP_SECONDS",
    "WINDOW",
    "Judged",
    "TotpVerdict",
    "draw_secret",
    "judge",
    "provisioning_uri",
    "qr_svg",
    "step_at",
]
