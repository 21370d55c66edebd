"""v1 with an optional label (the first step of adding a required field)."""

from backend import table
from tests.apps.evolve.models import ItemWithOptionalLabel, schema_of

schema = schema_of(table(ItemWithOptionalLabel).index("by_name", "name"))
