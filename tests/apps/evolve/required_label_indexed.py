"""A required label and a new index over n, in one deploy."""

from backend import table
from tests.apps.evolve.models import ItemWithLabel, schema_of

schema = schema_of(table(ItemWithLabel).index("by_name", "name").index("by_n", "n"))
