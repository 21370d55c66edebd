"""v1 with its index by name redefined over (n, name)."""

from backend import table
from tests.apps.evolve.models import Item, schema_of

schema = schema_of(table(Item).index("by_name", "n", "name"))
