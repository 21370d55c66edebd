"""File storage: upload URLs as an attacker uses them (forged, replayed, raced, expired,
oversize, mislabelled), file URLs as one guesses them, and what a function author gets:
Convex's shapes, live queries, deletion that leaves nothing behind."""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from backend.errors import ConvexError
from backend.files.sweeper import sweep
from backend.files.tables import UPLOADS
from backend.testing import TestBackend
from backend.udf.app import App, load_app


@functools.cache
def site_app() -> App:
    return load_app("tests.apps.site.schema", "tests.apps.site.functions")


@pytest.fixture
async def site(database_url: str | None) -> AsyncIterator[TestBackend]:
    async with TestBackend(database_url, app=site_app(), dev_mode=False) as t:
        yield t


def blobs_on_disk(t: TestBackend) -> list[Path]:
    return [p for p in t.files_dir.rglob("*") if p.is_file()]


async def upload(t: TestBackend, url: str, data: bytes, content_type: str = "image/png") -> str:
    answer = await t.fetch(url, method="POST", body=data, headers={"Content-Type": content_type})
    assert answer.status_code == 200, answer.text
    storage_id: str = answer.json()["storageId"]
    return storage_id


# ---- the attacker's uploads ----------------------------------------------------------------


async def test_an_upload_url_uploads_one_file_only(site: TestBackend) -> None:
    url = await site.mutation("files:upload_url")
    await upload(site, url, b"first")
    again = await site.fetch(url, method="POST", body=b"second")
    assert again.status_code == 401
    assert again.json()["code"] == "INVALID_TOKEN"
    assert len(await site.query("files:all_files")) == 1
    assert len(blobs_on_disk(site)) == 1


async def test_two_uploads_racing_on_one_url_record_one_file(site: TestBackend) -> None:
    url = await site.mutation("files:upload_url")
    answers = await asyncio.gather(
        *[site.fetch(url, method="POST", body=f"racer {n}".encode() * 1000) for n in range(4)]
    )
    assert sorted(a.status_code for a in answers) == [200, 401, 401, 401]
    assert len(await site.query("files:all_files")) == 1
    assert len(blobs_on_disk(site)) == 1  # the losers' bytes are gone too


async def test_a_forged_or_guessed_token_uploads_nothing(site: TestBackend) -> None:
    url = await site.mutation("files:upload_url")
    token = parse_qs(urlsplit(url).query)["token"][0]
    for bad in (token[:-2] + "AA", "", "x" * 2000, token.upper()):
        answer = await site.fetch(
            f"http://testserver/api/storage/upload?token={bad}", method="POST", body=b"x"
        )
        assert answer.status_code == 401, bad
    answer = await site.fetch("http://testserver/api/storage/upload", method="POST", body=b"x")
    assert answer.status_code == 401
    assert blobs_on_disk(site) == []
    await upload(site, url, b"the real one")  # the forgeries did not spend it


async def test_the_database_keeps_only_a_keyed_hash_of_the_token(site: TestBackend) -> None:
    url = await site.mutation("files:upload_url")
    token = parse_qs(urlsplit(url).query)["token"][0]
    (row,) = await site.run(lambda ctx: ctx.db.query(UPLOADS).collect())
    assert token not in str(row)
    assert row["tokenHash"] != hashlib.sha256(token.encode()).hexdigest()


async def test_an_expired_upload_url_is_refused(site: TestBackend) -> None:
    url = await site.mutation("files:upload_url")
    site.clock.advance(minutes=61)
    answer = await site.fetch(url, method="POST", body=b"late")
    assert answer.status_code == 401
    assert blobs_on_disk(site) == []
    swept = await sweep(site.engine)
    assert swept.tokens == 1
    assert await site.run(lambda ctx: ctx.db.query(UPLOADS).collect()) == []


async def test_a_rolled_back_mutation_issues_no_upload_url(site: TestBackend) -> None:
    with pytest.raises(ConvexError):
        await site.mutation("files:upload_url_then_fail")
    assert await site.run(lambda ctx: ctx.db.query(UPLOADS).collect()) == []


async def test_a_file_past_the_limit_is_413_and_leaves_nothing(database_url: str | None) -> None:
    async with TestBackend(database_url, app=site_app(), max_file_bytes=10_000) as t:
        url = await t.mutation("files:upload_url")
        declared = await t.fetch(url, method="POST", body=b"x" * 10_001)
        assert declared.status_code == 413
        assert declared.json()["code"] == "PAYLOAD_TOO_LARGE"

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(30):
                yield b"y" * 1000

        streamed = await t._http_client().post(url, content=chunks())
        assert streamed.status_code == 413
        assert blobs_on_disk(t) == []
        assert await t.query("files:all_files") == []
        await upload(t, url, b"z" * 10_000)  # the refusals did not spend the URL
        with pytest.raises(ConvexError) as too_big:
            await t.action("files:store", {"text": "w" * 10_001})
        assert too_big.value.code == "PAYLOAD_TOO_LARGE"
        assert len(blobs_on_disk(t)) == 1


@pytest.mark.parametrize(
    "content_type", ["text/html\r\nSet-Cookie: a=b", "not a type", "a/" + "b" * 300, "/x"]
)
async def test_a_content_type_that_is_not_a_media_type_is_refused(
    site: TestBackend, content_type: str
) -> None:
    url = await site.mutation("files:upload_url")
    try:
        answer = await site.fetch(
            url, method="POST", body=b"x", headers={"Content-Type": content_type}
        )
    except Exception:
        return
    assert answer.status_code == 400
    assert answer.json()["code"] == "INVALID_ARGUMENT"
    assert blobs_on_disk(site) == []


# ---- the attacker's downloads --------------------------------------------------------------


async def test_a_file_url_is_a_capability_not_a_guess(site: TestBackend) -> None:
    storage_id = await upload(site, await site.mutation("files:upload_url"), b"secret bytes")
    url = await site.query("files:url", {"storageId": storage_id})
    assert (await site.fetch(url)).content == b"secret bytes"
    base = f"http://testserver/api/storage/{storage_id}"
    other = await upload(site, await site.mutation("files:upload_url"), b"other")
    other_sig = parse_qs(urlsplit(await site.query("files:url", {"storageId": other})).query)[
        "sig"
    ][0]
    for guess in (base, f"{base}?sig=", f"{base}?sig={other_sig}", f"{base}?sig=AAAA"):
        answer = await site.fetch(guess)
        assert answer.status_code == 404, guess
        assert b"secret" not in answer.content


async def test_an_uploaded_page_runs_no_script_at_the_api_origin(site: TestBackend) -> None:
    page = b"<script>fetch('/api/auth/get-session')</script>"
    storage_id = await upload(site, await site.mutation("files:upload_url"), page, "text/html")
    answer = await site.fetch(await site.query("files:url", {"storageId": storage_id}))
    assert answer.headers["content-type"] == "text/html"
    assert answer.headers["content-security-policy"].startswith("sandbox")
    assert answer.headers["x-content-type-options"] == "nosniff"


async def test_a_deleted_files_url_is_404_and_its_bytes_are_gone(site: TestBackend) -> None:
    storage_id = await upload(site, await site.mutation("files:upload_url"), b"bye")
    url = await site.query("files:url", {"storageId": storage_id})
    await site.mutation("files:remove", {"storageId": storage_id})
    assert (await site.fetch(url)).status_code == 404
    assert blobs_on_disk(site) == []
    assert await site.query("files:url", {"storageId": storage_id}) is None
    with pytest.raises(ConvexError) as again:
        await site.mutation("files:remove", {"storageId": storage_id})
    assert again.value.code == "NOT_FOUND"


async def test_ids_of_other_tables_are_not_storage_ids(site: TestBackend) -> None:
    await site.mutation("notes:add", {"text": "n"})
    (note,) = await site.query("notes:list")
    ada = await site.sign_up("ada@example.com", "correct horse battery")
    for foreign in (note["_id"], ada.session_id, "not-an-id"):
        with pytest.raises(ConvexError) as refused:
            await site.query("files:url", {"storageId": foreign})
        assert refused.value.code == "INVALID_ARGUMENT"
        with pytest.raises(ConvexError):
            await site.mutation("files:remove", {"storageId": foreign})
        with pytest.raises(ConvexError) as read:
            await site.action("files:read", {"storageId": foreign})
        assert read.value.code == "INVALID_ARGUMENT"


# ---- what an author gets ---------------------------------------------------------------------


async def test_an_upload_answers_convex_shapes(site: TestBackend) -> None:
    data = b"\x89PNG" + bytes(range(256)) * 40
    storage_id = await upload(site, await site.mutation("files:upload_url"), data)
    meta = await site.query("files:metadata", {"storageId": storage_id})
    assert meta is not None
    assert set(meta) == {"_id", "_creationTime", "contentType", "sha256", "size"}
    assert meta["_id"] == storage_id
    assert meta["size"] == len(data)
    assert meta["contentType"] == "image/png"
    assert meta["sha256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    served = await site.fetch(await site.query("files:url", {"storageId": storage_id}))
    assert served.status_code == 200
    assert served.content == data
    assert served.headers["content-type"] == "image/png"
    assert served.headers["content-length"] == str(len(data))
    etag = served.headers["etag"]
    again = await site.fetch(
        await site.query("files:url", {"storageId": storage_id}), headers={"If-None-Match": etag}
    )
    assert again.status_code == 304


async def test_a_file_without_a_content_type_is_served_as_bytes(site: TestBackend) -> None:
    url = await site.mutation("files:upload_url")
    answer = await site._http_client().post(url, content=b"raw")
    storage_id = answer.json()["storageId"]
    meta = await site.query("files:metadata", {"storageId": storage_id})
    assert "contentType" not in meta
    served = await site.fetch(await site.query("files:url", {"storageId": storage_id}))
    assert served.headers["content-type"] == "application/octet-stream"


async def test_actions_store_get_and_delete(site: TestBackend) -> None:
    storage_id = await site.action("files:store", {"text": "hello", "contentType": "text/plain"})
    assert await site.action("files:read", {"storageId": storage_id}) == "hello"
    url = await site.action("files:url_from_action", {"storageId": storage_id})
    assert (await site.fetch(url)).text == "hello"
    upload_url = await site.action("files:upload_url_from_action")
    other = await upload(site, upload_url, b"via action's url")
    assert await site.action("files:read", {"storageId": other}) == "via action's url"
    await site.action("files:remove_from_action", {"storageId": storage_id})
    assert await site.action("files:read", {"storageId": storage_id}) is None
    assert len(blobs_on_disk(site)) == 1


async def test_an_http_action_stores_a_file(site: TestBackend) -> None:
    answer = await site.fetch(
        "/upload", method="POST", body=b"from a webhook", headers={"content-type": "text/plain"}
    )
    storage_id = answer.json()["storageId"]
    assert await site.action("files:read", {"storageId": storage_id}) == "from a webhook"


async def test_a_rolled_back_delete_keeps_the_file(site: TestBackend) -> None:
    storage_id = await upload(site, await site.mutation("files:upload_url"), b"keep me")
    with pytest.raises(ConvexError):
        await site.mutation("files:remove_then_fail", {"storageId": storage_id})
    url = await site.query("files:url", {"storageId": storage_id})
    assert (await site.fetch(url)).content == b"keep me"


# ---- crashes leave nothing that is never collected ---------------------------------------


async def test_a_blob_whose_row_never_committed_is_swept_after_the_grace(
    site: TestBackend,
) -> None:
    from datetime import UTC, datetime, timedelta

    kept = await upload(site, await site.mutation("files:upload_url"), b"recorded")

    async def one() -> AsyncIterator[bytes]:
        yield b"crashed before its row"

    orphan = await site.files.blobs.write(one(), 1000)  # as a crash after the write
    (site.files_dir / "tmp" / ("0" * 32 + ".part")).write_bytes(b"half")  # killed mid-write
    assert (await sweep(site.engine)).orphans == 0  # younger than the grace: maybe in flight
    later = datetime.now(UTC) + timedelta(hours=2)
    swept = await sweep(site.engine, wall_now=later)
    assert (swept.orphans, swept.parts) == (1, 1)
    names = {p.name for p in blobs_on_disk(site)}
    assert orphan.key not in names
    assert len(names) == 1
    url = await site.query("files:url", {"storageId": kept})
    assert (await site.fetch(url)).content == b"recorded"


async def test_a_failed_blob_delete_is_caught_by_the_sweeper(database_url: str | None) -> None:
    from datetime import UTC, datetime, timedelta

    async with TestBackend(database_url, app=site_app(), hold_scheduled=True) as t:
        storage_id = await upload(t, await t.mutation("files:upload_url"), b"doomed")
        await t.mutation("files:remove", {"storageId": storage_id})
        # the process dies before the job deleting the bytes runs: the row is gone, the blob is not
        assert len(blobs_on_disk(t)) == 1
        swept = await sweep(t.engine, wall_now=datetime.now(UTC) + timedelta(hours=2))
        assert swept.orphans == 1
        assert blobs_on_disk(t) == []
        assert await t.run_scheduled() == 1  # the late job finds nothing to do, and succeeds


async def test_storage_files_are_live_in_queries(site: TestBackend) -> None:
    from backend.sync.coordinator import SyncCoordinator
    from tests.backend.sync.test_session import Harness, add

    coordinator = SyncCoordinator(site.engine, catch_up_interval=0.2)
    await coordinator.start()
    harness = Harness(site, coordinator)
    try:
        storage_id = await upload(site, await site.mutation("files:upload_url"), b"live")
        reader = harness.connect("reader")
        reader.push(add(0, "files:url", {"storageId": storage_id}, 0))
        first = (await reader.next("Transition"))["modifications"][0]["value"]
        assert first.startswith("http://testserver/api/storage/")
        await site.mutation("files:remove", {"storageId": storage_id})
        assert (await reader.next("Transition"))["modifications"][0]["value"] is None
    finally:
        for task in harness.tasks:
            task.cancel()
        await asyncio.gather(*harness.tasks, return_exceptions=True)
        await coordinator.stop()


async def test_a_file_is_served_by_byte_ranges_as_a_video_element_asks(
    site: TestBackend,
) -> None:
    data = bytes(range(256)) * 8  # 2048 bytes
    storage_id = await upload(site, await site.mutation("files:upload_url"), data, "video/mp4")
    url = await site.query("files:url", {"storageId": storage_id})
    for header, status, expected, content_range in [
        ("bytes=0-99", 206, data[:100], "bytes 0-99/2048"),
        ("bytes=2000-", 206, data[2000:], "bytes 2000-2047/2048"),
        ("bytes=-48", 206, data[-48:], "bytes 2000-2047/2048"),
        ("bytes=100-99999", 206, data[100:], "bytes 100-2047/2048"),
        ("bytes=0-1,5-6", 200, data, None),  # several ranges: the whole file
        ("lines=1-2", 200, data, None),
    ]:
        answer = await site.fetch(url, headers={"Range": header})
        assert answer.status_code == status, header
        assert answer.content == expected, header
        assert answer.headers.get("content-range") == content_range, header
        assert answer.headers["content-length"] == str(len(expected))
    for header in ("bytes=2048-", "bytes=-0"):
        refused = await site.fetch(url, headers={"Range": header})
        assert refused.status_code == 416
        assert refused.headers["content-range"] == "bytes */2048"
