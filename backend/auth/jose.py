"""Small pieces both JWT paths share: our own tokens (``jwt.py``) and providers' ID tokens
(``oauth.py``), and the random tokens of sessions and links."""

from __future__ import annotations

import base64
import math
from typing import Any, TypeGuard


def b64url(data: bytes) -> str:
    """Base64url without padding, as JOSE and URLs want it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def is_text(value: object) -> TypeGuard[str]:
    """A non-empty string claim."""
    return isinstance(value, str) and bool(value)


def is_time(value: Any) -> bool:
    """A usable numeric time claim. json.loads accepts NaN, and NaN compares false with
    everything: a token whose ``exp`` is NaN would never expire."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
