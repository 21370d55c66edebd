"""items(name, n), indexed by name."""

from tests.apps.evolve.models import items_v1, schema_of

schema = schema_of(items_v1())
