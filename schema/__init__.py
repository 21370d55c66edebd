"""The demo app's tables: organizations, their memberships, and invitations.

Users, sessions and accounts are the engine's own tables; a membership names its user by the
user's id (the ``subject`` of ``ctx.auth``), and profiles come from ``backend.auth.users``.
"""

from typing import Annotated, Literal

from pydantic import BaseModel

from backend import Id, define_schema, table

Role = Literal["owner", "admin", "member"]


class Org(BaseModel):
    name: str
    createdBy: str


class Membership(BaseModel):
    orgId: Annotated[str, Id("orgs")]
    userId: str
    role: Role


class Invitation(BaseModel):
    """A membership waiting for its email to sign up (``members:add`` of an unknown email)."""

    orgId: Annotated[str, Id("orgs")]
    email: str  # normalised as sign-up normalises it
    role: Role
    invitedBy: str
    expiresAt: float


schema = define_schema(
    orgs=table(Org),
    memberships=table(Membership)
    .index("by_org", "orgId", "userId")
    .index("by_user", "userId", "orgId"),
    invitations=table(Invitation).index("by_org", "orgId", "email").index("by_email", "email"),
)
