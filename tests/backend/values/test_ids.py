"""Ids: the table tag read from an id's text, and everything that is not an id refused."""

from __future__ import annotations

import base64
import random

from backend.values.ids import ID_LENGTH, id_tag, is_id_of, make_id, table_tag


def _tag_by_full_decode(text: str) -> bytes | None:
    """The slow, obvious reading: decode the whole text and check it is canonical."""
    if len(text) != ID_LENGTH:
        return None
    try:
        raw = base64.b32decode(text.upper())
    except ValueError:
        return None
    if base64.b32encode(raw).decode().lower() != text:
        return None
    return raw[16:]


def test_an_id_names_its_table_and_no_other() -> None:
    rng = random.Random(7)
    for table in ("orgs", "memberships", "_storage", "a" * 60):
        doc_id = make_id(table, rng.randbytes(16))
        assert id_tag(doc_id) == table_tag(table)
        assert is_id_of(doc_id, table)
        assert not is_id_of(doc_id, table + "x")


def test_the_fast_reading_agrees_with_a_full_decode_on_near_ids() -> None:
    rng = random.Random(11)
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    others = alphabet.upper() + "0189=-_ é\x00"
    for _ in range(20_000):
        text = list(make_id("orgs", rng.randbytes(16)))
        for _change in range(rng.randrange(0, 3)):
            text[rng.randrange(ID_LENGTH)] = rng.choice(alphabet + others)
        if rng.random() < 0.05:
            text = text[: rng.randrange(ID_LENGTH + 2)] if rng.random() < 0.5 else [*text, "a"]
        candidate = "".join(text)
        assert id_tag(candidate) == _tag_by_full_decode(candidate), candidate


def test_what_is_not_a_string_is_not_an_id() -> None:
    for value in (None, 1, b"x" * 32, ["a"] * 32, 3.0):
        assert id_tag(value) is None
