"""The mails the auth flows send, in one place: what each says, and what it must never say
(no password, no hint that another account exists beyond what the reader's own inbox shows).

A link that signs someone in is the mail's ``secret``: the outbox keeps it sealed under
``SECRET_KEY`` and it is written into the text only when the mail is sent (``backend/mail``)."""

from __future__ import annotations

from backend.mail import SECRET, Mail


def magic_link(to: str, link: str, minutes: int) -> Mail:
    return Mail(
        to=to,
        subject="Your sign-in link",
        text=(
            f"Sign in by opening this link within {minutes} minutes:\n\n{SECRET}\n\n"
            "If you did not ask for it, ignore this mail: nothing happens without it."
        ),
        secret=link,  # sealed in the outbox, rendered only at send time
    )


def verification(to: str, link: str, minutes: int, site: str) -> Mail:
    """The confirmation of a new account. Following the link vouches for the account as it
    stands, password included (``proof.py``), so the mail says what to do instead when the
    reader did not create it."""
    return Mail(
        to=to,
        subject="Confirm your email address",
        text=(
            f"An account was created at {site} with this email address. If you created it, "
            f"confirm it by opening this link within {minutes} minutes:\n\n{SECRET}\n\n"
            "If you did not, do not open the link. To make the address yours alone, ask "
            f"{site} for a sign-in link instead: signing in with it ends every session and "
            "password that someone else set up with your address."
        ),
        secret=link,  # sealed in the outbox, rendered only at send time
    )


def existing_account(to: str, site: str) -> Mail:
    """For a sign-up with an address that has an account, when sign-up may not say so."""
    return Mail(
        to=to,
        subject="Someone tried to create an account with your address",
        text=(
            f"Someone tried to create an account at {site} with this email address, which "
            "already has one. If it was you, sign in instead, or ask for a sign-in link. If it "
            "was not, ignore this mail: nothing has changed."
        ),
    )
