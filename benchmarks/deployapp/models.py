"""The benchmark's table; ``plain.py`` and ``indexed.py`` are its two versions."""

from pydantic import BaseModel


class Item(BaseModel):
    group: str
    n: int
    label: str
    note: str | None = None
