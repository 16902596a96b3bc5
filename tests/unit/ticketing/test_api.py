"""The tickets API as a unit or partner sees it: signed requests move their own tickets, and nothing else.

A real aiohttp server on loopback, the API's handlers on a call log (SQLite, then PostgreSQL: the nonces and
idempotency keys live there), keys in a temporary directory.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ivr.calllog import CallLog, open_calllog
from ivr.handoff.webhook import WebhookSender, verify
from ivr.ticketing.api import TicketsApi, signature
from ivr.ticketing.keys import ApiKey, KeyStore
from ivr.ticketing.store import TicketBook
from ivr.tickets import DeadlinePolicy, new_ticket

Client = TestClient[web.Request, web.Application]


@dataclass
class World:
    client: Client
    log: CallLog
    water: ApiKey
    gas: ApiKey
    partner: ApiKey
    tickets: dict[str, str]
    pushed: list[tuple[dict[str, str], bytes]]

    def book(self) -> TicketBook:
        return TicketBook(self.log)


async def send(
    client: Client,
    key: ApiKey,
    method: str,
    path: str,
    body: Any = None,
    *,
    nonce: str | None = None,
    timestamp: int | None = None,
    secret: str | None = None,
    idem: str | None = None,
) -> tuple[int, dict[str, Any], dict[str, str]]:
    raw = b"" if body is None else json.dumps(body, ensure_ascii=False).encode()
    ts = int(time.time()) if timestamp is None else timestamp
    nonce = nonce or secrets.token_hex(12)
    headers = {
        "X-Hotline-Key": key.key_id,
        "X-Hotline-Timestamp": str(ts),
        "X-Hotline-Nonce": nonce,
        "X-Hotline-Signature": signature(secret or key.secret, ts, nonce, method, path, raw),
        "Content-Type": "application/json",
    }
    if idem:
        headers["Idempotency-Key"] = idem
    resp = await client.request(method, path, data=raw, headers=headers)
    return resp.status, await resp.json(), dict(resp.headers)


@pytest.fixture
async def world(target: str, tmp_path: Path) -> AsyncIterator[World]:
    log = open_calllog(target, tmp_path / "journal")
    log.start()
    opened = {}
    for name, kind, unit in (
        ("water", "transfer", "市水务局"),
        ("gas", "transfer", "市燃气公司"),
        ("hand", "interconnect", "12315平台"),
    ):
        t = new_ticket(f"call-{name}", kind, unit, kind, name, dt.datetime(2026, 11, 2, 10, 0), DeadlinePolicy(3))
        log.ticket_opened(t)
        opened[name] = t.ticket_id
    log.close()
    keys = KeyStore(tmp_path / "api-keys")
    pushed: list[tuple[dict[str, str], bytes]] = []

    async def receive(request: web.Request) -> web.Response:
        pushed.append((dict(request.headers), await request.read()))
        return web.json_response({"ok": True})

    receiver = web.Application()
    receiver.router.add_post("/hook", receive)
    async with TestServer(receiver, host="127.0.0.1") as hook:
        water = keys.add("shuiwu", unit="市水务局")
        gas = keys.add("ranqi", unit="市燃气公司")
        partner = keys.add("p12315", unit="12315平台", kind="partner", webhook=f"http://127.0.0.1:{hook.port}/hook")
        sender = WebhookSender(backoff_base=0.01)
        sender.start()
        api = TicketsApi(TicketBook(log), keys, pusher=sender)
        app = web.Application()
        app.router.add_routes(api.routes())
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            yield World(client, log, water, gas, partner, opened, pushed)
        await sender.close()


async def test_a_unit_lists_its_open_tickets_accepts_replies_and_closes(world: World) -> None:
    c, tid = world.client, world.tickets["water"]
    status, body, _ = await send(c, world.water, "GET", "/api/v1/tickets")
    assert status == 200 and [t["ticket_id"] for t in body["tickets"]] == [tid]
    assert body["tickets"][0]["deadline"] == "2026-11-05T10:00:00+08:00"
    assert (await send(c, world.water, "POST", f"/api/v1/tickets/{tid}/accept", {}))[0] == 200
    status, body, _ = await send(c, world.water, "POST", f"/api/v1/tickets/{tid}/reply", {"text": "已恢复供水"})
    assert (status, body["ticket"]["state"], body["event"]["actor"]) == (200, "replied", "unit:shuiwu")
    status, body, _ = await send(c, world.water, "POST", f"/api/v1/tickets/{tid}/close", {"note": "办结"})
    assert (status, body["ticket"]["state"]) == (200, "closed")
    status, body, _ = await send(c, world.water, "GET", f"/api/v1/tickets/{tid}")
    assert [e["action"] for e in body["events"]] == ["open", "accept", "reply", "close"]
    assert (await send(c, world.water, "GET", "/api/v1/tickets"))[1]["tickets"] == []


@pytest.mark.parametrize(
    ("tamper", "status", "reason"),
    [
        ({"secret": "0" * 64}, 401, "bad signature"),
        ({"timestamp": 1}, 401, "timestamp 1 is more than 300 s from now"),
        ({"nonce": "short"}, 401, "X-Hotline-Nonce must be 8-64"),
    ],
)
async def test_a_request_not_signed_right_is_refused_and_changes_nothing(
    world: World, tamper: dict[str, Any], status: int, reason: str
) -> None:
    tid = world.tickets["water"]
    got, body, _ = await send(world.client, world.water, "POST", f"/api/v1/tickets/{tid}/accept", {}, **tamper)
    assert got == status and body["error"].startswith(reason)
    assert world.book().get(tid)["state"] == "dispatched"


async def test_an_unknown_key_or_a_missing_header_is_refused(world: World) -> None:
    stranger = ApiKey("nobody", "unit", "市水务局", "f" * 64)
    assert (await send(world.client, stranger, "GET", "/api/v1/tickets"))[1] == {
        "error": "unknown key",
        "field": "X-Hotline-Key",
    }
    resp = await world.client.get("/api/v1/tickets")
    assert resp.status == 401 and await resp.json() == {
        "error": "header X-Hotline-Key missing",
        "field": "X-Hotline-Key",
    }


async def test_a_replayed_request_is_refused(world: World) -> None:
    tid = world.tickets["water"]
    path = f"/api/v1/tickets/{tid}/return"
    first = await send(world.client, world.water, "POST", path, {"reason": "非本单位职责"}, nonce="n0nce-0001")
    assert first[0] == 200
    again = await send(world.client, world.water, "POST", path, {"reason": "非本单位职责"}, nonce="n0nce-0001")
    assert again[:2] == (409, {"error": "replayed: this nonce was used already", "field": "X-Hotline-Nonce"})
    assert len(world.book().events(tid)) == 2


async def test_another_units_ticket_is_refused(world: World) -> None:
    tid = world.tickets["water"]
    status, body, _ = await send(world.client, world.gas, "POST", f"/api/v1/tickets/{tid}/accept", {})
    assert (status, body) == (403, {"error": f"ticket {tid} is not 市燃气公司's"})
    assert (await send(world.client, world.gas, "GET", f"/api/v1/tickets/{tid}"))[0] == 403
    assert world.book().get(tid)["state"] == "dispatched"


async def test_a_retry_with_the_same_idempotency_key_gets_the_first_answer_and_acts_once(world: World) -> None:
    tid = world.tickets["water"]
    path = f"/api/v1/tickets/{tid}/accept"
    first = await send(world.client, world.water, "POST", path, {}, idem="accept-1")
    again = await send(world.client, world.water, "POST", path, {}, idem="accept-1")
    assert first[:2] == again[:2] and first[0] == 200 and again[2]["Idempotent-Replayed"] == "true"
    assert len(world.book().events(tid)) == 2
    other = await send(
        world.client, world.water, "POST", f"/api/v1/tickets/{tid}/reply", {"text": "x"}, idem="accept-1"
    )
    assert other[:2] == (
        422,
        {"error": "Idempotency-Key 'accept-1' was used for another request", "field": "Idempotency-Key"},
    )


async def test_bad_input_gets_a_4xx_naming_what_and_nothing_changes(world: World) -> None:
    tid = world.tickets["water"]
    base = f"/api/v1/tickets/{tid}"
    cases = [
        (f"{base}/reply", {"txt": "x"}, 400, "reply: unknown field 'txt' (expected: text)"),
        (f"{base}/reply", {"text": 5}, 400, "reply: field 'text' must be a string"),
        (f"{base}/reply", [1], 400, "body must be a JSON object"),
        (f"{base}/reply", {}, 400, "reply text is required"),
        (f"{base}/close", {}, 409, f"ticket {tid} is dispatched: close needs it opened or replied"),
        (f"{base}/finish", {}, 404, "no action 'finish' (one of: accept, reply, close, return)"),
        ("/api/v1/tickets/12345-20991231-000000/accept", {}, 404, "no ticket 12345-20991231-000000"),
    ]
    for path, payload, status, reason in cases:
        got, body, _ = await send(world.client, world.water, "POST", path, payload)
        assert (got, body["error"]) == (status, reason), path
    assert world.book().get(tid)["version"] == 0


async def test_a_partners_reply_closes_the_hand_off_and_its_status_is_pushed_signed(world: World) -> None:
    tid = world.tickets["hand"]
    status, body, _ = await send(
        world.client, world.partner, "POST", f"/api/v1/tickets/{tid}/reply", {"text": "已处理"}
    )
    assert (status, body["ticket"]["state"], body["event"]["actor"]) == (200, "closed", "partner:p12315")
    for _ in range(200):
        if world.pushed:
            break
        await asyncio.sleep(0.01)
    [(headers, raw)] = world.pushed
    ts = int(headers["X-Hotline-Timestamp"])
    assert verify(world.partner.secret.encode(), ts, raw, headers["X-Hotline-Signature"], now=time.time())
    pushed = json.loads(raw)
    assert (pushed["event"], pushed["action"], pushed["ticket"]["ticket_id"], pushed["ticket"]["state"]) == (
        "ticket_status",
        "reply",
        tid,
        "closed",
    )


def test_the_readmes_signing_recipe_is_the_apis() -> None:
    import hashlib
    import hmac

    secret, ts, nonce, path, body = "s" * 64, 1796000000, "abcdef012345", "/api/v1/tickets/X/reply", b'{"text":"x"}'
    readme = hmac.new(secret.encode(), f"{ts}.{nonce}.POST {path}.".encode() + body, hashlib.sha256).hexdigest()
    assert signature(secret, ts, nonce, "POST", path, body) == "sha256=" + readme
