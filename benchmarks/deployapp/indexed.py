"""The table with an index over ``n`` added: deploying it backfills the index."""

from backend import define_schema, table
from benchmarks.deployapp.models import Item

schema = define_schema(items=table(Item).index("by_n", "n"))
