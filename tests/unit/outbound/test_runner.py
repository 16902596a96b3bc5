"""The 回访 round on a call log, the call scripted: the rating stored, 3 reopening, 9 opting out for good."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ivr.call.control import DialResult, DialStatus
from ivr.call.scripted import Script, ScriptedCall
from ivr.calllog import CallLog, open_calllog
from ivr.operators.queue import SeatPool
from ivr.outbound import store
from ivr.outbound.runner import Outbound
from ivr.prompts import Prompts
from ivr.routing import routes
from ivr.ticketing.store import TicketBook
from ivr.tickets import from_epoch, new_ticket

ROOT = Path(__file__).resolve().parents[3]
TABLE = routes.load(ROOT / "routes.yaml")
assert TABLE.outbound is not None
POLICY = dataclasses.replace(TABLE.outbound, first_after_minutes=0)
NUMBER = "13912345678"


class Answering(ScriptedCall):
    """The citizen's phone: answers when rung, then does what the script says."""

    dialled: list[str] = []

    async def ring(self, endpoint: str, ring_seconds: int, *, caller_id: str, label: str) -> DialResult:
        Answering.dialled.append(endpoint)
        return DialResult(DialStatus.ANSWER, "citizen")


class Scripted(Outbound):
    def __init__(self, log: CallLog, keys: str) -> None:
        super().__init__(
            ari=None,  # type: ignore[arg-type]
            dispatcher=None,  # type: ignore[arg-type]
            calllog=log,
            table=lambda: TABLE,
            seats=SeatPool(()),
            clock=lambda: from_epoch(time.time()),  # the tickets' clock: Beijing time, as closes are stamped
            prompts=Prompts(),
            book=TicketBook(log, TABLE.calendar),
        )
        self.keys = keys

    def _call(self, call_id: str, leg: str) -> Any:
        return Answering(TABLE, Script(keys=self.keys, prompt_seconds=0, key_after=0))


@pytest.fixture
def log(tmp_path: Path) -> Iterator[CallLog]:
    calllog = open_calllog(tmp_path / "calllog.sqlite3")
    calllog.start()
    yield calllog
    calllog.close()


def closed_ticket(log: CallLog) -> str:
    ticket = new_ticket(
        "c1", "merge", "市公安局", "merge", "gongan", dt.datetime.now().replace(microsecond=0), TABLE.deadlines
    )
    log.ticket_opened(ticket)
    log.record(store.ContactKept(ticket.ticket_id, NUMBER, ticket.created_at))
    log.close()
    log.start()
    book = TicketBook(log, TABLE.calendar)
    book.act(ticket.ticket_id, "reply", actor="unit:市公安局", text="已处理")
    book.act(ticket.ticket_id, "close", actor="cli:test")
    return ticket.ticket_id


def test_a_dissatisfied_citizen_reopens_the_ticket_and_the_rating_is_kept(log: CallLog) -> None:
    ticket_id = closed_ticket(log)
    Answering.dialled = []

    asyncio.run(Scripted(log, "3").followups(TABLE, POLICY))

    assert Answering.dialled == [f"PJSIP/{NUMBER}@carrier"]
    (row,) = store.followups(log)
    assert (row["state"], row["satisfaction"], row["attempts"]) == ("answered", 3, 1)
    book = TicketBook(log, TABLE.calendar)
    assert book.get(ticket_id)["state"] == "dispatched"
    assert [(e["action"], e["actor"]) for e in book.events(ticket_id)][-1] == ("reopen", "followup")


def test_nine_opts_out_and_the_ticket_is_never_called_about_again(log: CallLog) -> None:
    ticket_id = closed_ticket(log)
    Answering.dialled = []

    asyncio.run(Scripted(log, "9").followups(TABLE, POLICY))
    asyncio.run(Scripted(log, "1").followups(TABLE, POLICY))

    assert len(Answering.dialled) == 1
    (row,) = store.followups(log)
    assert (row["state"], row["satisfaction"]) == ("opted_out", None)
    assert TicketBook(log, TABLE.calendar).get(ticket_id)["state"] == "closed"
    assert [a["outcome"] for a in store.followup_attempts(log, ticket_id)] == ["opted_out"]
