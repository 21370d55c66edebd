"""Step-up verification for dangerous actions.

Declare the actions once, beside the app's functions::

    sensitive_actions = SensitiveActions(
        SensitiveAction("org.delete", 4, describe_org_deletion),
        SensitiveAction("org.rename", 1, "Rename an organization"),
    )

and call ``await require_sensitive_action(ctx, "org.delete", resource=org_id)`` in the
mutation, before it writes. The caller passes on a fresh session (levels 1-2) or a live grant
for this session, action and resource (minted by ``sensitive:verifyPassword`` or
``sensitive:verifyEmailCode``); otherwise the mutation fails with
``SENSITIVE_VERIFICATION_REQUIRED`` and the data the client needs to ask for verification.
"""

from backend.sensitive.registry import SensitiveAction, SensitiveActions
from backend.sensitive.require import require_sensitive_action

__all__ = ["SensitiveAction", "SensitiveActions", "require_sensitive_action"]
