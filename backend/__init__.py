"""A Python backend in the Convex model. Function authors import from here, and only here.

```python
from backend import ConvexError, MutationCtx, QueryCtx, mutation, query
```

Besides the decorators and the contexts: the error type (``ConvexError``, ``ErrorCode``), the
schema builders, step-up verification (``require_sensitive_action`` and the registry of
protected actions), rate limits (``RateLimiter``), the engine's read-only views of its own
tables that an app may use (user profiles, the audit trail) and ``is_id_of``. Everything else
in the package is the engine's own.
"""

from backend.audit import list_events
from backend.auth.providers import AuthProviders
from backend.auth.users import delete_account, find_by_email, get_profile, has_password
from backend.crons import Crons, cron_jobs
from backend.errors import ConvexError, ErrorCode
from backend.ratelimit.limiter import FixedWindow, RateLimiter, RateLimitResult, TokenBucket
from backend.schema_definition import Id, define_schema, table
from backend.sensitive import SensitiveAction, SensitiveActions, require_sensitive_action
from backend.transactions.client import ClientInfo
from backend.transactions.transaction import REMOVE
from backend.udf.context import ActionCtx, Identity, MutationCtx, QueryCtx
from backend.udf.http_router import HttpRouter, http_action
from backend.udf.migration import DELETE, migration
from backend.udf.registry import (
    action,
    internal_action,
    internal_mutation,
    internal_query,
    mutation,
    query,
)
from backend.values.convex_json import Int64
from backend.values.ids import is_id_of

__all__ = [
    "DELETE",
    "REMOVE",
    "ActionCtx",
    "AuthProviders",
    "ClientInfo",
    "ConvexError",
    "Crons",
    "ErrorCode",
    "FixedWindow",
    "HttpRouter",
    "Id",
    "Identity",
    "Int64",
    "MutationCtx",
    "QueryCtx",
    "RateLimitResult",
    "RateLimiter",
    "SensitiveAction",
    "SensitiveActions",
    "TokenBucket",
    "action",
    "cron_jobs",
    "define_schema",
    "delete_account",
    "find_by_email",
    "get_profile",
    "has_password",
    "http_action",
    "internal_action",
    "internal_mutation",
    "internal_query",
    "is_id_of",
    "list_events",
    "migration",
    "mutation",
    "query",
    "require_sensitive_action",
    "table",
]
