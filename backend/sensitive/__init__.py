"""Step-up verification for dangerous actions.

Declare the actions once, beside the app's functions::

    sensitive_actions = SensitiveActions(
        SensitiveAction("org.delete", 4, describe_org_deletion, authorize=may_delete_org),
        SensitiveAction("org.rename", 1, "Rename an organization"),
    )

and call ``await require_sensitive_action(ctx, "org.delete", resource=org_id)`` in the
mutation, before it writes. The caller passes on a fresh session (levels 1-2) or a live grant
for this session, action and resource (minted by ``sensitive:verifyPasskey``,
``sensitive:verifyTotp``, ``sensitive:verifyPassword``, ``sensitive:verifyBackupCode`` or
``sensitive:verifyEmailCode``); otherwise the mutation fails with
``SENSITIVE_VERIFICATION_REQUIRED`` and the data the client needs to ask for verification.

The folder, pure core first, edges after:

- ``registry.py``: the app's declarations (``SensitiveAction``: level, description, window,
  grant lifetime, who may verify).
- ``records.py``: the typed records the rules decide over (session, grant, email code,
  failures).
- ``policy.py``: pass, spend or refuse, from (action, session, grant, now); the freshness
  rule. Pure.
- ``codes.py``: the rules of email codes and their hard stop. Pure. (The password's failure
  records are ``backend/auth/lockout.py``'s, shared with sign-in.)
- ``grants.py``: the tables, and reading and writing them.
- ``service.py``: the server's secret, password hasher and lockout (one per engine, a
  registered service), and ``caller``.
- ``attempts.py``: the steps every method shares (permission, rate limits, audit, minting).
- ``passkey.py``, ``totp.py``, ``password.py``, ``backup_codes.py``, ``email_code.py``: one
  module per verification method, its functions (and its enrolment); ``totp_codes.py`` the
  pure rules of app codes; ``factors.py`` the tables of passkeys, apps, backup codes and
  WebAuthn challenges.
- ``changes.py``: the engine's own protected actions, the factor changes, and the mails that
  tell the account of them; ``account.py``: changing the password and the address.
- ``methods.py``: the methods, strongest first, and which a caller is offered (what they
  have, what the action permits); how to add one.
- ``require.py``: ``require_sensitive_action``. ``verification.py``: ``sensitive:status``
  and every method's functions, for the engine to register.
"""

from backend.sensitive.registry import SensitiveAction, SensitiveActions
from backend.sensitive.require import require_sensitive_action

__all__ = ["SensitiveAction", "SensitiveActions", "require_sensitive_action"]
