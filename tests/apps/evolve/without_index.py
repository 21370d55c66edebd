"""v1 without its index by name."""

from backend import table
from tests.apps.evolve.models import Item, schema_of

schema = schema_of(table(Item))
