"""The ARI client against a fake ARI server on loopback (a transport-level fake, not a mock)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ivr.ari.client import AriClient, AriSettings
from ivr.ari.events import ChannelDtmfReceived, StasisStart
from ivr.ari.stream import connections
from ivr.errors import AriAuthError, AriNotFound, AriUnavailable

PASSWORD = "p&ss#word=1"  # characters that break clients putting credentials in the URL


class FakeAri:
    """Just enough of Asterisk's ARI: auth, a 404, a slow call, and an events WebSocket."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.app.router.add_post("/ari/channels/{id}/answer", self.answer)
        self.app.router.add_get("/ari/slow", self.slow)
        self.app.router.add_get("/ari/events", self.events)
        self.answered: list[str] = []
        self.ws_connections = 0
        self.close_after_first = True

    def authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == aiohttp.encode_basic_auth("hotline", PASSWORD)

    async def answer(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return web.json_response({"message": "auth"}, status=401)
        cid = request.match_info["id"]
        if cid == "gone":
            return web.json_response({"message": "Channel not found"}, status=404)
        self.answered.append(cid)
        return web.Response(status=204)

    async def slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({})

    async def events(self, request: web.Request) -> web.StreamResponse:
        if not self.authorized(request):
            return web.Response(status=401)
        assert request.query["app"] == "hotline" and request.query["subscribeAll"] == "false"
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.ws_connections += 1
        n = self.ws_connections
        await ws.send_str(
            json.dumps(
                {
                    "type": "StasisStart",
                    "args": ["12345"],
                    "channel": {
                        "id": f"c{n}",
                        "caller": {"number": "13800000000"},
                        "dialplan": {"exten": "12345"},
                        "state": "Ring",
                    },
                }
            )
        )
        await ws.send_str(json.dumps({"type": "ChannelDtmfReceived", "digit": "1", "channel": {"id": f"c{n}"}}))
        if n == 1 and self.close_after_first:
            await ws.close()  # as Asterisk does when it restarts
            return ws
        await asyncio.sleep(30)
        return ws


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeAri, str]]:
    fake = FakeAri()
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    yield fake, f"http://127.0.0.1:{server.port}/ari"
    await server.close()


def client(url: str, password: str = PASSWORD, timeout: float = 5.0) -> AriClient:
    return AriClient(AriSettings(url=url, username="hotline", password=password, request_timeout=timeout))


async def test_credentials_with_ampersand_and_hash_work(fake: tuple[FakeAri, str]) -> None:
    server, url = fake
    async with client(url) as ari:
        await ari.answer("c1")
    assert server.answered == ["c1"]


async def test_a_404_is_already_gone_and_a_401_is_a_configuration_error(fake: tuple[FakeAri, str]) -> None:
    _, url = fake
    async with client(url) as ari:
        with pytest.raises(AriNotFound):
            await ari.answer("gone")
    async with client(url, password="wrong") as ari:
        with pytest.raises(AriAuthError):
            await ari.answer("c1")


async def test_every_request_has_a_timeout(fake: tuple[FakeAri, str]) -> None:
    _, url = fake
    async with client(url, timeout=0.3) as ari:
        with pytest.raises(AriUnavailable):
            await ari.request("GET", "/slow")


async def test_an_unreachable_asterisk_is_retryable_not_fatal() -> None:
    async with client("http://127.0.0.1:9/ari", timeout=1) as ari:
        with pytest.raises(AriUnavailable):
            await ari.answer("c1")


async def test_events_arrive_typed_and_in_order_and_a_closed_socket_is_reconnected(fake: tuple[FakeAri, str]) -> None:
    server, url = fake
    seen: list[tuple[int, object]] = []
    async with client(url) as ari:
        n = 0
        async for conn in connections(ari, heartbeat=1.0):
            n += 1
            async for event in conn:
                seen.append((n, event))
                if n == 2 and isinstance(event, ChannelDtmfReceived):
                    break
            if n == 2:
                break
    assert server.ws_connections == 2
    assert [(n, type(e).__name__) for n, e in seen] == [
        (1, "StasisStart"),
        (1, "ChannelDtmfReceived"),
        (2, "StasisStart"),
        (2, "ChannelDtmfReceived"),
    ]
    first = seen[0][1]
    assert isinstance(first, StasisStart) and first.args == ("12345",) and first.channel == "c1"


async def test_rejected_credentials_stop_the_event_stream(fake: tuple[FakeAri, str]) -> None:
    _, url = fake
    async with client(url, password="wrong") as ari:
        with pytest.raises(AriAuthError):
            async for _ in connections(ari):
                pass


async def test_every_request_is_counted_by_method_and_resource_whether_it_succeeds_or_not(
    fake: tuple[FakeAri, str],
) -> None:
    _, url = fake
    async with client(url) as ari:
        await ari.answer("c1")
        await ari.answer("c2")
        with pytest.raises(AriNotFound):
            await ari.answer("gone")
        with pytest.raises(AriNotFound):
            await ari.stop_playback("c1-pb3")  # no such route here: a 404 costs Asterisk a request all the same
    # The resource is the path's first segment: never a channel or playback id, so the series stay few.
    assert ari.sent == {("POST", "channels"): 3, ("DELETE", "playbacks"): 1}
