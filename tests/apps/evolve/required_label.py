"""v1 with a required label (the second step, once every item has one)."""

from backend import table
from tests.apps.evolve.models import ItemWithLabel, schema_of

schema = schema_of(table(ItemWithLabel).index("by_name", "name"))
