"""A mail's secret: how a caller declares it, and the seal that keeps it at rest."""

from __future__ import annotations

import pytest

from backend.mail import SECRET, Mail, SealBroken, SecretSeal
from backend.runtime import SystemRandom


def test_a_secret_mail_renders_its_secret_only_when_asked() -> None:
    mail = Mail("a@example.com", f"Code: {SECRET}", f"Your code is {SECRET}.", secret="123456")
    assert "123456" not in repr(mail)
    shown = mail.rendered()
    assert (shown.subject, shown.text, shown.secret) == (
        "Code: 123456",
        "Your code is 123456.",
        None,
    )
    assert "123456" not in repr(shown)  # subject and text stay out of log lines
    plain = Mail("a@example.com", "Hello", "Body")
    assert plain.rendered() is plain


@pytest.mark.parametrize(
    ("subject", "text", "secret", "problem"),
    [
        ("Code", "Your code is 123456", "123456", "writes {secret} where"),
        (f"Code {SECRET}", "Your code is 123456", "123456", "written out"),
        (f"Code {SECRET}", "Body", None, "carries no secret"),
        (f"Code {SECRET}", "Body", "", "non-empty"),
    ],
)
def test_a_secret_in_the_clear_is_a_wiring_mistake(
    subject: str, text: str, secret: str | None, problem: str
) -> None:
    with pytest.raises(TypeError, match=problem):
        Mail("a@example.com", subject, text, secret=secret)


def test_a_sealed_secret_opens_only_with_its_key_for_its_mail() -> None:
    seal = SecretSeal("the server's key")
    sealed = seal.seal("https://x/verify?token=abc", bound_to="mail 1", random=SystemRandom())
    assert sealed.startswith("v1.")
    assert "abc" not in sealed
    assert seal.open(sealed, bound_to="mail 1") == "https://x/verify?token=abc"
    again = seal.seal("https://x/verify?token=abc", bound_to="mail 1", random=SystemRandom())
    assert again != sealed  # a fresh nonce every time
    with pytest.raises(SealBroken):
        SecretSeal("another key").open(sealed, bound_to="mail 1")
    with pytest.raises(SealBroken):
        seal.open(sealed, bound_to="mail 2")  # moved onto another mail
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    for broken in (tampered, "v1.", "v1.!!!", "v2." + sealed[3:], "plain text"):
        with pytest.raises(SealBroken):
            seal.open(broken, bound_to="mail 1")
    assert "key" not in repr(seal)
