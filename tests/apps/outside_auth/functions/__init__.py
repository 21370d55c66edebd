"""An app that accepts an outside OIDC provider's tokens (Clerk's or Auth0's, in production)."""
