"""The table as first deployed."""

from backend import define_schema, table
from benchmarks.deployapp.models import Item

schema = define_schema(items=table(Item))
