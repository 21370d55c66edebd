"""v1 without its items table."""

from tests.apps.evolve.models import schema_of

schema = schema_of(None)
