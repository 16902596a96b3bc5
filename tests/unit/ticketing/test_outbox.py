"""Moves made by `hotline tickets …` (another process than the controller) reach partners' webhooks too.

The CLI leaves each move's push in the call log's outbox in the move's own transaction; the controller
claims the outbox and pushes like its own moves (signed, retried). SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from click.testing import CliRunner

from ivr.calllog import CallLog, open_calllog
from ivr.cli import main
from ivr.handoff.webhook import WebhookSender, verify
from ivr.ticketing import outbox
from ivr.ticketing.api import push_status
from ivr.ticketing.keys import KeyStore
from ivr.ticketing.store import Change, TicketBook
from ivr.tickets import DeadlinePolicy, new_ticket

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def calllog(target: str, tmp_path: Path) -> CallLog:
    log = open_calllog(target, tmp_path / "journal")
    log.start()
    return log


def open_ticket(log: CallLog, unit: str = "12315平台") -> str:
    opened = dt.datetime(2026, 11, 2, 10, 0)
    t = new_ticket("call-1", "interconnect", unit, "interconnect", "r1", opened, DeadlinePolicy(3))
    log.ticket_opened(t)
    log.close()  # the writer's queue is applied before the CLI reads
    return t.ticket_id


def cli(target: str, *args: str) -> int:
    common = ("--calllog", target, "--routes", str(ROOT / "routes.yaml"), "--by", "li")
    return CliRunner().invoke(main, ["tickets", *args, *common]).exit_code


def test_each_cli_move_leaves_its_push_with_the_ticket_as_that_move_left_it(calllog: CallLog, target: str) -> None:
    tid = open_ticket(calllog)
    assert cli(target, "accept", tid) == 0
    assert cli(target, "reply", tid, "已处理") == 0
    assert outbox.pending(calllog) == 2
    claimed = outbox.claim(calllog)
    assert [(c.event.action.value, c.event.actor, c.ticket["state"], c.ticket["version"]) for c in claimed] == [
        ("accept", "cli:li", "accepted", 1),
        ("reply", "cli:li", "closed", 2),  # a partner's ticket closes with its reply
    ]
    assert claimed[1].ticket["reply"] == "已处理"
    assert (outbox.claim(calllog), outbox.pending(calllog)) == ([], 0)  # claimed once: never pushed twice


def test_a_refused_move_leaves_no_push(calllog: CallLog, target: str) -> None:
    tid = open_ticket(calllog)
    assert cli(target, "close", tid) == 1  # a dispatched ticket without a reply cannot be closed
    assert outbox.pending(calllog) == 0


def test_the_controllers_own_moves_are_pushed_directly_not_through_the_outbox(calllog: CallLog) -> None:
    tid = open_ticket(calllog)
    changes: list[Change] = []
    TicketBook(calllog, on_change=changes.append).act(tid, "accept", actor="partner:p12315")
    assert (len(changes), outbox.pending(calllog)) == (1, 0)


async def test_claimed_cli_moves_reach_the_partners_webhook_signed(
    calllog: CallLog, target: str, tmp_path: Path
) -> None:
    tid = open_ticket(calllog)
    assert await asyncio.to_thread(cli, target, "accept", tid) == 0
    pushed: list[tuple[dict[str, str], bytes]] = []

    async def receive(request: web.Request) -> web.Response:
        pushed.append((dict(request.headers), await request.read()))
        return web.json_response({"ok": True})

    receiver = web.Application()
    receiver.router.add_post("/hook", receive)
    keys = KeyStore(tmp_path / "api-keys")
    async with TestServer(receiver, host="127.0.0.1") as hook:
        partner = keys.add("p12315", unit="12315平台", kind="partner", webhook=f"http://127.0.0.1:{hook.port}/hook")
        keys.add("p-other", unit="市水务局", kind="partner", webhook=f"http://127.0.0.1:{hook.port}/other")
        sender = WebhookSender(backoff_base=0.01)
        sender.start()
        queued = [push_status(sender, keys, change) for change in outbox.claim(calllog)]
        assert queued == [1]  # the ticket's unit's partner only
        for _ in range(200):
            if pushed:
                break
            await asyncio.sleep(0.01)
        await sender.close()
    [(headers, raw)] = pushed
    ts = int(headers["X-Hotline-Timestamp"])
    assert verify(partner.secret.encode(), ts, raw, headers["X-Hotline-Signature"], now=time.time())
    body = json.loads(raw)
    assert (body["event"], body["action"], body["actor"], body["ticket"]["ticket_id"], body["ticket"]["state"]) == (
        "ticket_status",
        "accept",
        "cli:li",
        tid,
        "accepted",
    )
