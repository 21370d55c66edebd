"""Convex's ``auth.config.ts``, in Python: the issuer comes from the server's environment, as
``process.env.CLERK_JWT_ISSUER_DOMAIN`` does in a Convex app."""

import os

from backend import AuthProviders

auth_config = AuthProviders(
    [
        {
            "domain": os.environ.get("OUTSIDE_AUTH_ISSUER", "https://issuer.invalid"),
            "applicationID": "convex",
        }
    ]
)
