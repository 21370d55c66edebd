"""v1 and a new index over n."""

from tests.apps.evolve.models import items_v1, schema_of

schema = schema_of(items_v1().index("by_n", "n"))
