"""v1 and an index over the (few) tags' words."""

from backend import table
from tests.apps.evolve.models import Tag, items_v1, schema_of

schema = schema_of(items_v1(), table(Tag).index("by_word", "word"))
