"""The database goes away under file storage and HTTP actions: an upload, a file URL and an
HTTP action answer a coded ``503 UNAVAILABLE`` (never a 500), an upload keeps nothing, and all
work again once the database is back. The outage is a TCP proxy to PostgreSQL, cut."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from backend.testing import TestBackend
from backend.udf.app import App, load_app
from tests.conftest import POSTGRES_URL
from tests.support.tcp_proxy import TcpProxy, tcp_proxy_to


@functools.cache
def site_app() -> App:
    return load_app("tests.apps.site.schema", "tests.apps.site.functions")


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    async with tcp_proxy_to(POSTGRES_URL) as proxy:
        yield proxy


def files_in(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


async def test_an_outage_is_unavailable_to_uploads_files_and_http_actions(
    proxy: TcpProxy,
) -> None:
    async with TestBackend(proxy.url_for(POSTGRES_URL), app=site_app(), dev_mode=False) as t:
        upload_url = await t.mutation("files:upload_url")
        stored = await t.fetch(
            upload_url, method="POST", body=b"kept", headers={"content-type": "text/plain"}
        )
        file_url = await t.query("files:url", {"storageId": stored.json()["storageId"]})
        fresh_url = await t.mutation("files:upload_url")

        await proxy.cut()
        async with asyncio.timeout(60):
            answers = [
                await t._http_client().post(fresh_url, content=b"lost"),
                await t._http_client().get(file_url),
                await t._http_client().post("/notes", json={"text": "lost"}),
            ]
        for answer in answers:
            assert answer.status_code == 503, (answer.request.url, answer.text)
            assert answer.json()["code"] == "UNAVAILABLE"
            assert int(answer.headers["retry-after"]) >= 1
        assert len(files_in(t.files_dir)) == 1  # the lost upload kept nothing

        await proxy.restore()
        async with asyncio.timeout(60):
            for _ in range(300):  # the pool's dropped connections are replaced on use
                if (await t._http_client().get(file_url)).status_code == 200:
                    break
                await asyncio.sleep(0.2)
            again = await t._http_client().post(fresh_url, content=b"after")
            assert again.status_code == 200  # the URL was not spent by the failed try
            assert (await t.fetch("/notes", method="POST", json={"text": "n"})).json() == {
                "count": 1
            }
