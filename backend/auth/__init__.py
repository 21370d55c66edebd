"""Accounts and sessions: users, passwords, magic links, OAuth, tokens for the Convex client."""
