"""A Python backend in the Convex model. Function authors import from here.

```python
from backend import ConvexError, MutationCtx, QueryCtx, mutation, query
```
"""

from backend.errors import ConvexError, ErrorCode
from backend.schema import Id, define_schema, table
from backend.transactions.transaction import REMOVE
from backend.udf.context import ActionCtx, Identity, MutationCtx, QueryCtx
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

__all__ = [
    "DELETE",
    "REMOVE",
    "ActionCtx",
    "ConvexError",
    "ErrorCode",
    "Id",
    "Identity",
    "Int64",
    "MutationCtx",
    "QueryCtx",
    "action",
    "define_schema",
    "internal_action",
    "internal_mutation",
    "internal_query",
    "migration",
    "mutation",
    "query",
    "table",
]
