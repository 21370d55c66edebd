"""A small app for the cron tests: every run of a cron leaves a row saying when, and as whom."""

from pydantic import BaseModel

from backend import define_schema, table


class Tick(BaseModel):
    cron: str
    at: float
    who: str | None = None


schema = define_schema(ticks=table(Tick).index("by_cron", "cron"))
