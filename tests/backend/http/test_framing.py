"""HTTP framing an attacker controls, over a raw socket: a body that never ends, trickles, is
cut off or is badly chunked. Each gets a 400 or a coded 408 and a closed connection, never a
connection held open or a traceback in the log."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import pytest

from tests.support.live_server import LiveServer, live_server

HEAD = b"POST /api/mutation HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
BODY = b'{"path": "counters:create", "args": [{"name": "framed"}]}'


@pytest.fixture
async def server() -> AsyncIterator[LiveServer]:
    async with live_server(None, body_timeout=1.0) as live:
        yield live


def port_of(server: LiveServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


async def exchange(
    server: LiveServer, data: bytes, *, half_close: bool = False, trickle: bytes = b""
) -> bytes:
    """Send ``data`` (then ``trickle``, a byte at a time), and read until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
    answer = asyncio.create_task(reader.read())  # to EOF: the server must close the connection
    try:
        writer.write(data)
        await writer.drain()
        if half_close:
            writer.write_eof()
        for byte in trickle:
            done, _ = await asyncio.wait({answer}, timeout=0.25)
            if done:  # answered and closed: stop sending
                break
            writer.write(bytes([byte]))
            await writer.drain()
        async with asyncio.timeout(30):  # generous: the deadline under test is 1 s
            return await answer
    finally:
        answer.cancel()
        writer.close()


def status_and_body(answer: bytes) -> tuple[int, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not bad, [r.getMessage()[:200] for r in bad]


async def test_a_body_that_never_ends_is_answered_408_and_the_connection_closed(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    answer = await exchange(server, HEAD + b"Content-Length: 1000\r\n\r\n" + BODY[:20])
    status, body = status_and_body(answer)
    assert status == 408
    assert json.loads(body)["code"] == "REQUEST_TIMEOUT"
    assert b"connection: close" in answer.lower()
    no_tracebacks(caplog)


async def test_a_body_that_trickles_in_is_cut_off_at_the_deadline(
    server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    head = HEAD + f"Content-Length: {len(BODY)}\r\n\r\n".encode()
    try:
        answer = await exchange(server, head, trickle=BODY)  # a byte every 0.25 s: ~14 s in all
    except ConnectionResetError:
        # A byte sent just as the server closed makes the peer's kernel answer with a reset,
        # which can discard the 408 before it is read (a busy machine widens that window).
        # The connection was still cut off; the server's own record says with what.
        answered = [r.getMessage() for r in caplog.records if "answered 408" in r.getMessage()]
        assert answered, "the connection was reset without the server answering 408"
    else:
        assert status_and_body(answer)[0] == 408
    no_tracebacks(caplog)


@pytest.mark.parametrize(
    "framing",
    [
        b"Transfer-Encoding: chunked\r\n\r\nzz\r\n" + BODY + b"\r\n0\r\n\r\n",
        b"Transfer-Encoding: chunked\r\n\r\n5\r\n" + BODY + b"\r\n0\r\n\r\n",
        b'Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\n{"a":\r\n0\r\n\r\n',
        b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n{}",
        b"Content-Length: -1\r\n\r\n{}",
    ],
)
async def test_malformed_framing_is_a_400_without_a_traceback(
    server: LiveServer, caplog: pytest.LogCaptureFixture, framing: bytes
) -> None:
    caplog.set_level(logging.INFO)
    answer = await exchange(server, HEAD + framing)
    assert status_and_body(answer)[0] == 400, answer[:200]
    no_tracebacks(caplog)


@pytest.mark.parametrize(
    "framing",
    [
        f"Content-Length: {len(BODY)}\r\n\r\n".encode() + BODY[:20],
        b"Transfer-Encoding: chunked\r\n\r\n40\r\n" + BODY[:20],
    ],
)
async def test_a_body_cut_off_by_a_half_close_is_a_400_without_a_traceback(
    server: LiveServer, caplog: pytest.LogCaptureFixture, framing: bytes
) -> None:
    caplog.set_level(logging.INFO)
    answer = await exchange(server, HEAD + framing, half_close=True)
    assert status_and_body(answer)[0] == 400, answer[:200]
    no_tracebacks(caplog)


async def test_the_server_still_serves_after_all_that(server: LiveServer) -> None:
    await exchange(server, HEAD + b"Content-Length: 1000\r\n\r\n{")
    await exchange(server, HEAD + b"Content-Length: 1000\r\n\r\n{", half_close=True)
    answer = await exchange(
        server,
        HEAD + f"Content-Length: {len(BODY)}\r\nConnection: close\r\n\r\n".encode() + BODY,
    )
    status, body = status_and_body(answer)
    assert status == 200
    assert b'"status":"success"' in body
