"""Values: the Convex value model, its JSON encoding, sortable index keys and document ids."""

from backend.values.convex_json import Int64, Value, decode, encode, from_json, to_json
from backend.values.ids import is_id_of, make_id
from backend.values.index_key import MISSING, KeyRange, encode_key

__all__ = [
    "MISSING",
    "Int64",
    "KeyRange",
    "Value",
    "decode",
    "encode",
    "encode_key",
    "from_json",
    "is_id_of",
    "make_id",
    "to_json",
]
