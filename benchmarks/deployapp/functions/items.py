from typing import Any

from backend import migration


@migration("items")
def annotate(item: dict[str, Any]) -> dict[str, Any]:
    """Fill ``note`` on every item (the benchmark's data migration)."""
    if item.get("note") is not None:
        return item
    return {**item, "note": f"{item['group']}/{item['n']}"}
