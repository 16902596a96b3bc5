"""The operator console over HTTP: who may do what, the screen pop, and refusals that change nothing.

A real aiohttp server on loopback with the console mounted at /console/ as the controller mounts it,
on an SQLite call log, the real seat pool and desk (ivr.operators) and the shipped routes.yaml.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ivr import privacy
from ivr.call.books import Services
from ivr.calllog import CallLog, open_calllog
from ivr.calllog.records import CallRecord, Outcome
from ivr.console.accounts import AccountStore
from ivr.console.audit import audit_entries
from ivr.console.screen import Hotline
from ivr.console.web import ROLE_OF, Console
from ivr.operators.desk import Desk, LiveCall
from ivr.operators.queue import SeatPool
from ivr.operators.supervise import Supervision, Supervisors
from ivr.prompts import Prompts
from ivr.recording import catalog
from ivr.recording.store import RecordingKept, wav_header
from ivr.routing import routes
from ivr.ticketing.store import TicketBook

TABLE = routes.load(Path(__file__).resolve().parents[3] / "routes.yaml")
KEY = b"k" * 32
NUMBER = "13800138000"
Client = TestClient[web.Request, web.Application]


@dataclass
class World:
    server: TestServer
    log: CallLog
    pool: SeatPool
    desk: Desk
    records: dict[str, CallRecord]
    console: Console
    stack: AsyncExitStack

    async def client(self, name: str | None = None, password: str = "") -> Client:
        client: Client = TestClient(self.server)
        await self.stack.enter_async_context(client)
        if name is not None:
            status, _ = await login(client, name, password or f"{name}'s password")
            assert status == 200
        return client

    def call(self, call_id: str, number: str = NUMBER) -> CallRecord:
        record = CallRecord(
            call_id, f"chan-{call_id}", "12345", privacy.mask(number), privacy.caller_hash(number, KEY), TABLE.digest
        )
        self.records[call_id] = record
        return record

    async def audit(self, count: int) -> list[dict[str, Any]]:
        for _ in range(100):
            entries = audit_entries(self.log)
            if len(entries) >= count:
                return entries
            await asyncio.sleep(0.02)
        return audit_entries(self.log)


async def login(client: Client, name: str, password: str) -> tuple[int, str]:
    form = await client.get("/console/login")
    token = re.search(r'name="csrf" value="([^"]+)"', await form.text())
    assert token is not None
    resp = await client.post("/console/login", data={"csrf": token[1], "name": name, "password": password})
    return resp.status, await resp.text()


def csrf_of(page: str) -> str:
    found = re.search(r'<meta name="csrf" content="([^"]+)">', page)
    assert found is not None
    return found[1]


async def post(client: Client, path: str, body: Any, csrf: str | None) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if csrf is not None:
        headers["X-CSRF-Token"] = csrf
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    resp = await client.post(path, data=data, headers=headers)
    return resp.status, await resp.json()


async def first_event(client: Client, path: str = "/console/events") -> dict[str, Any]:
    async with client.get(path) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
        async for line in resp.content:
            if line.startswith(b"data: "):
                return dict(json.loads(line[6:]))
    raise AssertionError("no event")


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    log = open_calllog(tmp_path / "calllog.sqlite3")
    log.start()
    accounts = AccountStore(tmp_path / "console-accounts.json", rounds=4)
    accounts.add("boss", "supervisor", "boss's password")
    accounts.add("li", "operator", "li's password", seat="seat-1")
    accounts.add("wang", "operator", "wang's password", seat="seat-2")
    pool = SeatPool(TABLE.operators.seats)
    desk = Desk()
    records: dict[str, CallRecord] = {}
    services = Services(log, Prompts(), dt.datetime.now, deadlines=TABLE.deadlines)
    hotline = Hotline(pool, lambda: desk, log, lambda: TABLE, records.get, lambda: TicketBook(log), lambda: services)
    console = Console(hotline, accounts)
    app = web.Application()
    app.add_subapp("/console/", console.app())
    async with AsyncExitStack() as stack, TestServer(app, host="127.0.0.1") as server:
        yield World(server, log, pool, desk, records, console, stack)
    log.close()


def concrete(path: str) -> str:
    return (
        path.replace("{call_id}", "call-x")
        .replace("{action}", "transfer")
        .replace("{name}", "call-x-1")
        .replace("{seat}", "seat-1")
        .replace("{mode}", "listen")
    )


async def test_every_console_route_refuses_no_session_and_the_wrong_role(world: World) -> None:
    console_app = world.server.app._subapps[0]  # type: ignore[union-attr]
    found = {
        (r.method, r.resource.canonical, r.name)  # type: ignore[union-attr]
        for r in console_app.router.routes()
        if r.method != "HEAD"
    }
    assert {name for _, _, name in found} == set(ROLE_OF), "every route has its role in ROLE_OF"
    nobody = await world.client()
    operator = await world.client("li")
    supervisor = await world.client("boss")
    checked = 0
    for method, path, name in sorted(found):
        role = ROLE_OF[name]
        if role is None:
            continue  # the login form and the login itself
        url = concrete(path)
        resp = await nobody.request(method, url, allow_redirects=False)
        assert resp.status in (401, 303), (method, url)
        if resp.status == 303:
            assert resp.headers["Location"] == "/console/login"
        if role == "any":
            continue
        wrong = supervisor if role == "operator" else operator
        resp = await wrong.request(method, url, allow_redirects=False)
        assert resp.status == 403, (method, url, resp.status)
        assert "role" in (await resp.json())["error"]
        checked += 1
    assert checked >= 7


async def test_a_wrong_password_or_a_forged_login_form_gets_no_session(world: World) -> None:
    client = await world.client()
    status, page = await login(client, "li", "not li's password")
    assert status == 401 and "Wrong name or password" in page
    status, _ = await login(client, "nobody", "li's password")
    assert status == 401
    await client.get("/console/login")
    resp = await client.post("/console/login", data={"csrf": "forged", "name": "li", "password": "li's password"})
    assert resp.status == 403
    assert (await client.get("/console/events")).status == 401
    entries = await world.audit(3)
    assert [(e["account"], e["action"], e["result"]) for e in entries] == [
        ("li", "login", "refused: wrong name or password"),
        ("nobody", "login", "refused: wrong name or password"),
        ("li", "login", "refused: bad login form token"),
    ]


async def test_posts_need_the_sessions_csrf_token(world: World) -> None:
    client = await world.client("li")
    page = await (await client.get("/console/")).text()
    assert await post(client, "/console/seat", {"state": "paused", "reason": "午餐"}, None) == (
        403,
        {"error": "the CSRF token is missing or wrong: reload the page"},
    )
    assert (await post(client, "/console/seat", {"state": "paused", "reason": "午餐"}, "x" * 43))[0] == 403
    assert world.pool.snapshot().seats[0].presence == "ready"
    status, body = await post(client, "/console/seat", {"state": "paused", "reason": "午餐"}, csrf_of(page))
    assert (status, body["state"]) == (200, "paused")
    assert world.pool.snapshot().seats[0].presence == "paused"


async def test_an_operator_changes_only_their_own_seat_and_bad_asks_change_nothing(world: World) -> None:
    client = await world.client("li")
    csrf = csrf_of(await (await client.get("/console/")).text())
    status, body = await post(client, "/console/seat", {"seat": "seat-2", "state": "signed_out"}, csrf)
    assert status == 403 and "seat seat-2 is not yours" in body["error"]
    no_reason = await post(client, "/console/seat", {"state": "paused"}, csrf)
    assert no_reason == (400, {"error": "a pause (小休) needs a reason"})
    assert (await post(client, "/console/seat", b"{not json", csrf))[0] == 400
    assert (await post(client, "/console/seat", {"state": 3}, csrf))[0] == 400
    assert {s.name: s.presence for s in world.pool.snapshot().seats} == {"seat-1": "ready", "seat-2": "ready"}
    entries = await world.audit(5)
    assert all(e["result"].startswith("refused") for e in entries if e["action"] == "seat_state")


async def ringing(world: World, stack: AsyncExitStack, call_id: str) -> None:
    turn = await stack.enter_async_context(world.pool.wait_turn(call_id))
    assert turn.seat is not None and turn.seat.name == "seat-1"


async def test_the_screen_pop_shows_the_path_the_masked_caller_and_their_earlier_calls(world: World) -> None:
    earlier = world.call("call-before")
    earlier.walked("2", ["main", "gongan"])
    earlier.outcome = Outcome.CONNECTED
    world.log.call_started(earlier)
    world.log.call_finished(earlier)
    world.records.pop("call-before")
    other = world.call("call-other", number="13900000000")
    world.log.call_started(other)
    world.log.call_finished(other)
    world.records.pop("call-other")
    now = world.call("call-now")
    now.track, now.keys, now.menu_path = "menu", "20", "main/gongan/operator"
    world.log.call_started(now)
    for _ in range(100):
        if len(world.log.calls()) == 3:
            break
        await asyncio.sleep(0.02)
    client = await world.client("li")
    async with AsyncExitStack() as stack:
        await ringing(world, stack, "call-now")
        state = await first_event(client)
    call = state["call"]
    assert state["seat"]["seat"] == "seat-1" and state["seat"]["ringing"] is True
    assert (call["status"], call["entry"], call["track"], call["menu_path"], call["keys"]) == (
        "ringing",
        "12345",
        "menu",
        "main/gongan/operator",
        "20",
    )
    assert call["caller"] == "138****8000" and NUMBER not in json.dumps(state)
    assert [c["call_id"] for c in call["earlier_calls"]] == ["call-before"]
    assert call["earlier_calls"][0]["menu_path"] == "main/gongan"


async def answered(world: World, call_id: str, seat: str = "seat-1") -> LiveCall:
    world.call(call_id)
    return world.desk.open(call_id, seat, TABLE)


async def take(live: LiveCall, answer: str) -> str:
    command = await live.commands.get()
    command.answer(answer)
    return f"{command.action} {command.target} by {command.by}"


async def test_a_transfer_ask_reaches_the_call_and_its_answer_comes_back(world: World) -> None:
    live = await answered(world, "call-1")
    client = await world.client("li")
    csrf = csrf_of(await (await client.get("/console/")).text())
    taken = asyncio.create_task(take(live, "accepted: consult to 市公安局 3372000"))
    status, body = await post(client, "/console/calls/call-1/transfer", {"kind": "consult", "target": "gongan"}, csrf)
    assert (status, body["result"]) == (200, "accepted: consult to 市公安局 3372000")
    assert await taken == "consult gongan by console"
    entries = await world.audit(2)
    assert (entries[-1]["action"], entries[-1]["target"], entries[-1]["account"]) == ("transfer", "call-1", "li")


@pytest.mark.parametrize(
    ("path", "body", "status", "why"),
    [
        ("/console/calls/call-1/transfer", {"kind": "consult", "target": "9999999"}, 422, "not a number in routes"),
        ("/console/calls/call-1/transfer", {"kind": "beam", "target": "gongan"}, 400, "kind must be one of"),
        ("/console/calls/call-1/transfer", {"kind": "emergency", "target": "gongan"}, 422, "not an emergency line"),
        ("/console/calls/call-2/transfer", {"kind": "consult", "target": "gongan"}, 403, "at seat seat-2, not seat-1"),
        ("/console/calls/call-gone/complete", {}, 409, "has already ended"),
        ("/console/calls/call-none/cancel", {}, 404, "no call call-none"),
        ("/console/calls/call-1/explode", {}, 404, "unknown action"),
        ("/console/calls/call-2/ticket", {"summary": "路灯坏了", "unit": "市公安局"}, 409, "not at your seat"),
        ("/console/calls/call-1/ticket", {"summary": "路灯坏了", "unit": "某局"}, 422, "not a unit of routes.yaml"),
        ("/console/calls/call-1/ticket", {"summary": " ", "unit": "市公安局"}, 400, "summary is empty"),
    ],
)
async def test_bad_call_asks_are_refused_clearly_and_nothing_is_queued(
    world: World, path: str, body: dict[str, str], status: int, why: str
) -> None:
    mine = await answered(world, "call-1")
    theirs = await answered(world, "call-2", seat="seat-2")
    world.desk.ended("call-gone")
    client = await world.client("li")
    csrf = csrf_of(await (await client.get("/console/")).text())
    got, answer = await post(client, path, body, csrf)
    assert got == status and why in answer["error"]
    assert mine.commands.empty() and theirs.commands.empty()
    assert world.log.tickets() == []


async def test_the_ticket_form_opens_the_calls_ticket_and_dispatches_it_with_its_content(world: World) -> None:
    await answered(world, "call-1")
    client = await world.client("li")
    csrf = csrf_of(await (await client.get("/console/")).text())
    form = {"summary": "小区路灯不亮", "category": "市政", "unit": "市公安局", "urgency": "urgent"}
    status, body = await post(client, "/console/calls/call-1/ticket", form, csrf)
    assert (status, body["state"], body["unit"]) == (200, "dispatched", "市公安局")
    ticket = TicketBook(world.log).get(body["ticket_id"])
    assert (ticket["call_id"], ticket["summary"], ticket["category"], ticket["urgency"]) == (
        "call-1",
        "小区路灯不亮",
        "市政",
        "urgent",
    )
    assert world.records["call-1"].ticket_id == body["ticket_id"]
    status, again = await post(client, "/console/calls/call-1/ticket", form, csrf)
    assert status == 409 and again["error"].endswith("is dispatched: dispatch needs it opened or returned")


async def test_the_supervisor_sees_every_seat_and_the_queue(world: World) -> None:
    world.pool.set_state("seat-2", "paused", reason="培训")
    done = world.call("call-today")
    done.outcome = Outcome.OPERATOR
    world.log.call_started(done)
    world.log.call_finished(done)
    for _ in range(100):
        if world.log.calls():
            break
        await asyncio.sleep(0.02)
    client = await world.client("boss")
    page = await client.get("/console/supervisor")
    assert page.status == 200
    board = await first_event(client, "/console/supervisor/events")
    assert [(s["seat"], s["state"], s["reason"]) for s in board["seats"]] == [
        ("seat-1", "ready", ""),
        ("seat-2", "paused", "培训"),
    ]
    assert board["waiting"] == 0
    assert (board["today"]["calls"], board["today"]["answered_by_a_person"]) == (1, 1)


async def test_a_supervisor_listens_in_on_a_seats_call_and_every_ask_is_audited(world: World) -> None:
    rang: list[tuple[str, str, str]] = []

    async def phone(supervision: Supervision) -> None:  # the live phone is tests/integration/test_supervisor.py
        rang.append((supervision.phone, supervision.leg, supervision.mode))
        supervision.outcome = "supervisor_hung_up"

    world.console.hotline.supervisors = Supervisors(world.desk, world.pool, phone)
    world.console.accounts.add("zhang", "supervisor", "zhang's password", seat="seat-2")
    world.pool.set_state("seat-2", "signed_out", by="cli")
    world.call("call-1")
    world.desk.open("call-1", "seat-1", TABLE, leg="chan-op-1")
    client = await world.client("zhang")
    csrf = csrf_of(await (await client.get("/console/supervisor")).text())

    status, body = await post(client, "/console/supervisor/seats/seat-1/listen", {"call_id": "call-1"}, csrf)
    assert (status, body["call_id"], body["mode"]) == (200, "call-1", "listen")
    status, refused = await post(client, "/console/supervisor/seats/seat-2/whisper", {}, csrf)
    assert status == 409 and "seat seat-2 has no call" in refused["error"]
    boss = await world.client("boss")  # a supervisor without a phone
    boss_csrf = csrf_of(await (await boss.get("/console/supervisor")).text())
    status, refused = await post(boss, "/console/supervisor/seats/seat-1/listen", {}, boss_csrf)
    assert status == 409 and "boss has no phone" in refused["error"]
    status, refused = await post(client, "/console/supervisor/seats/seat-1/shout", {}, csrf)
    assert status == 400 and "mode must be one of listen, whisper, barge or stop" in refused["error"]
    status, refused = await post(client, "/console/supervisor/seats/seat-7/listen", {}, csrf)
    assert status == 404 and "no seat 'seat-7'" in refused["error"]
    status, refused = await post(client, "/console/supervisor/seats/seat-1/barge", {"call_id": 1}, csrf)
    assert status == 400 and "the body must be a JSON object of strings" in refused["error"]

    entries = await world.audit(9)
    asked = [(e["account"], e["action"], e["target"], e["result"]) for e in entries if e["action"].startswith("supe")]
    assert asked[0] == ("zhang", "supervise", "call-1", "ok")
    assert ("zhang", "supervise_end", "call-1", "supervisor_hung_up") in asked
    no_call = "refused: seat seat-2 has no call to whisper (its operator is on none)"
    assert ("zhang", "supervise", "seat-2", no_call) in asked
    assert ("zhang", "supervise", "seat-7", "refused: no seat 'seat-7' (seats: seat-1, seat-2)") in asked
    assert rang == [("PJSIP/operator-2", "chan-op-1", "listen")]
    (step,) = [s for s in world.records["call-1"].steps if s.name == "supervised"]
    assert (step.detail["supervisor"], step.detail["mode"], step.detail["phone_seat"]) == ("zhang", "listen", "seat-2")


async def test_a_removed_account_or_a_changed_password_ends_its_sessions_at_once(world: World) -> None:
    li, wang = await world.client("li"), await world.client("wang")
    assert (await li.get("/console/", allow_redirects=False)).status == 200
    world.console.accounts.passwd("li", "a new password for li")
    world.console.accounts.remove("wang")
    assert (await li.get("/console/", allow_redirects=False)).status == 303
    assert (await wang.get("/console/events")).status == 401
    assert (await login(li, "li", "li's password"))[0] == 401
    assert (await login(li, "li", "a new password for li"))[0] == 200


async def test_logout_ends_the_session(world: World) -> None:
    client = await world.client("li")
    csrf = csrf_of(await (await client.get("/console/")).text())
    resp = await client.post("/console/logout", data={"csrf": csrf}, allow_redirects=False)
    assert resp.status == 303
    assert (await client.get("/console/", allow_redirects=False)).status == 303
    assert (await post(client, "/console/seat", {"state": "ready"}, csrf))[0] == 401


def write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def read(path: str) -> bytes:
    return Path(path).read_bytes()


async def recorded(world: World, tmp_path: Path, call_id: str, unit: str, kind: str = "call") -> RecordingKept:
    """A finished call to `unit` with its kept recording (a two-channel WAV) or message."""
    record = world.call(call_id, number=f"1380013{len(world.records):04d}")
    record.unit = unit
    world.log.call_started(record)
    world.log.call_finished(record)
    wav = tmp_path / f"{call_id}.wav"
    audio = wav_header(32000) + bytes(range(256)) * 125
    write(wav, audio)
    name = f"hotline-msg-{call_id}" if kind == "message" else f"{call_id}-1"
    sha = hashlib.sha256(audio).hexdigest()
    kept = RecordingKept(name, call_id, kind, unit, str(wav), time.time(), 1.0, len(audio), sha)
    world.log.record(kept)
    for _ in range(100):
        if catalog.one(world.log, name) is not None and world.log.calls(f"call_id = '{call_id}'"):
            return kept
        await asyncio.sleep(0.02)
    raise AssertionError(f"{name} not in the call log")


async def test_the_supervisor_lists_recordings_by_unit_with_masked_numbers(world: World, tmp_path: Path) -> None:
    police = await recorded(world, tmp_path, "call-police", "市公安局")
    other = await recorded(world, tmp_path, "call-other", "市编办")
    client = await world.client("boss")

    page = await (await client.get("/console/recordings")).text()
    assert police.name in page and other.name in page and "138****" in page and "13800130" not in page
    page = await (await client.get("/console/recordings", params={"unit": "市公安局"})).text()
    assert police.name in page and other.name not in page
    tomorrow = (dt.date.today() + dt.timedelta(days=2)).isoformat()
    assert police.name not in await (await client.get("/console/recordings", params={"day": tomorrow})).text()
    bad = await client.get("/console/recordings", params={"day": "24/11/2026"})
    assert bad.status == 400 and "YYYY-MM-DD" in await bad.text()


async def test_playing_a_recording_needs_a_reason_and_is_logged_as_an_export(world: World, tmp_path: Path) -> None:
    kept = await recorded(world, tmp_path, "call-play", "市公安局")
    client = await world.client("boss")
    url = f"/console/recordings/{kept.name}/audio"

    refused = await client.get(url)
    assert refused.status == 400 and "why" in (await refused.json())["error"]
    assert catalog.exports_of(world.log, kept.name) == []

    played = await client.get(url, params={"reason": "投诉 T-1"})
    assert played.status == 200 and played.headers["Content-Type"] == "audio/wav"
    assert await played.read() == read(kept.path)
    got = await client.get(url, params={"reason": "争议调查", "download": "1"})
    assert got.headers["Content-Disposition"].startswith("attachment")
    exports = catalog.exports_of(world.log, kept.name)
    assert [(e["who"], e["reason"], e["dest"].split(" from ")[0]) for e in exports] == [
        ("console:boss", "投诉 T-1", "console play"),
        ("console:boss", "争议调查", "console download"),
    ]
    entries = await world.audit(5)
    assert [(e["action"], e["result"]) for e in entries if e["target"] == kept.name] == [
        ("recording_play", "refused: no reason"),
        ("recording_play", "ok"),
        ("recording_download", "ok"),
    ]

    # A file that no longer matches its checksum is not sent (nor logged as sent).
    write(Path(kept.path), b"tampered")
    changed = await client.get(url, params={"reason": "复核"})
    assert changed.status == 409 and "checksum mismatch" in (await changed.json())["error"]
    assert len(catalog.exports_of(world.log, kept.name)) == 2
    assert (await client.get("/console/recordings/nothing-1/audio", params={"reason": "x"})).status == 404


async def test_messages_are_listed_until_someone_marks_them_handled(world: World, tmp_path: Path) -> None:
    message = await recorded(world, tmp_path, "call-msg", "市公安局", kind="message")
    client = await world.client("boss")
    page = await (await client.get("/console/messages")).text()
    assert message.name in page and "mark handled" in page
    csrf = csrf_of(page)

    assert (await post(client, f"/console/messages/{message.name}/handled", {}, None))[0] == 403  # no CSRF token
    status, body = await post(client, f"/console/messages/{message.name}/handled", {}, csrf)
    assert (status, body["handled_by"]) == (200, "console:boss")
    row = catalog.one(world.log, message.name)
    assert row is not None and row["handled_by"] == "console:boss" and row["handled_at"]
    assert message.name not in await (await client.get("/console/messages")).text()
    assert "by console:boss" in await (await client.get("/console/messages", params={"all": "1"})).text()
    assert (await post(client, "/console/messages/no-such/handled", {}, csrf))[0] == 404
