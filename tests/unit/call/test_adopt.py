"""What a restarted controller makes of the calls a dead one left, and how it carries a conversation on."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest

from ivr.ari import events as ev
from ivr.call.adopt import (
    InChain,
    Talking,
    Waiting,
    adopt_call,
    adopt_chain,
    created_at,
    in_chain,
    outcome_for,
    sort_leftovers,
)
from ivr.call.ari_call import AriCall
from ivr.call.books import Services
from ivr.calllog import CallLog, open_calllog
from ivr.calllog.records import CallRecord, Outcome
from ivr.errors import AriNotFound
from ivr.prompts import Prompts
from ivr.routing import routes
from ivr.routing.dialplan import CHAIN_BACK, CHAIN_CONTEXT

NOW = 1_764_900_000.0
CALL, OTHER = "0123456789abcdef", "fedcba9876543210"


def channel(cid: str, number: str = "13900001234", exten: str = "12345") -> dict[str, Any]:
    return {"id": cid, "state": "Up", "caller": {"number": number}, "dialplan": {"exten": exten}}


def bridge(bid: str, *members: str, at: str = "2025-12-05T02:00:00.250+0000") -> dict[str, Any]:
    return {"id": bid, "channels": list(members), "creationtime": at}


def test_a_citizen_and_a_department_in_one_bridge_are_a_conversation_to_adopt() -> None:
    found = sort_leftovers(
        [channel("1733.7"), channel(f"{CALL}-out2")],
        [bridge(f"{CALL}-br3", "1733.7", f"{CALL}-out2")],
        {"1733.7": CALL},
        now=NOW,
    )
    since = dt.datetime(2025, 12, 5, 2, 0, 0, 250000, tzinfo=dt.UTC).timestamp()
    assert found.talking == [Talking(CALL, "1733.7", (f"{CALL}-out2",), f"{CALL}-br3", since)]
    assert (found.waiting, found.stray_legs, found.stray_bridges, found.unknown) == ([], [], [], [])


def test_a_caller_in_the_menu_or_the_queue_hears_the_menu_again() -> None:
    found = sort_leftovers([channel("1733.7", "13900001234", "12345")], [], {"1733.7": CALL}, now=NOW)
    assert found.waiting == [Waiting("1733.7", CALL, "13900001234", "12345")]
    assert found.talking == [] and found.unknown == []


def test_a_caller_whose_department_was_still_ringing_hears_the_menu_again_and_the_ring_is_hung_up() -> None:
    found = sort_leftovers(
        [channel("1733.7"), channel(f"{CALL}-out3")], [bridge(f"{CALL}-br2", f"{CALL}-out3")], {"1733.7": CALL}, now=NOW
    )
    assert [w.legs for w in found.waiting] == [(f"{CALL}-out3",)]
    assert found.stray_legs == []  # hung up as part of the caller's restart, not twice
    assert found.waiting[0].seq == 3  # the restarted call's own legs and bridges get ids above these


def test_a_department_left_alone_in_its_bridge_is_hung_up_and_the_bridge_destroyed() -> None:
    found = sort_leftovers([channel(f"{CALL}-out2")], [bridge(f"{CALL}-br3", f"{CALL}-out2")], {}, now=NOW)
    assert (found.stray_legs, found.stray_bridges) == ([f"{CALL}-out2"], [f"{CALL}-br3"])
    assert found.talking == [] and found.waiting == []


def test_an_empty_bridge_of_ours_goes_and_a_bridge_not_ours_stays() -> None:
    found = sort_leftovers([], [bridge(f"{CALL}-talk1"), bridge("someone-elses")], {}, now=NOW)
    assert found.stray_bridges == [f"{CALL}-talk1"]


def test_a_channel_of_no_call_we_know_goes_to_the_fallback_as_before() -> None:
    found = sort_leftovers([channel("1733.9")], [], {}, now=NOW)
    assert found.unknown == ["1733.9"]
    assert found.waiting == [] and found.talking == []


def test_a_citizen_whose_arrival_never_reached_the_log_hears_the_menu_again_with_a_new_row() -> None:
    """Killed within milliseconds of the arrival: the channel sits in the entry context with no row.
    To the fallback it would have no row at all (only stasis=FAILED calls are counted from Asterisk)."""
    arrived = {**channel("1733.9", "13900005678"), "dialplan": {"context": "hotline-entry", "exten": "s"}}
    found = sort_leftovers([arrived], [], {}, now=NOW)
    assert found.waiting == [Waiting("1733.9", "", "13900005678", "")]
    assert found.unknown == []


def test_a_conversation_whose_row_never_reached_the_log_is_found_by_its_bridge() -> None:
    found = sort_leftovers(
        [channel("1733.7"), channel(f"{CALL}-out1")], [bridge(f"{CALL}-br2", "1733.7", f"{CALL}-out1")], {}, now=NOW
    )
    assert [(t.call_id, t.citizen) for t in found.talking] == [(CALL, "1733.7")]
    assert found.unknown == []


def test_a_three_way_call_keeps_both_legs_and_a_line_rung_for_a_transfer_is_hung_up() -> None:
    seat, dept, ringing = f"{CALL}-out1", f"{CALL}-out4", f"{CALL}-out5"
    found = sort_leftovers(
        [channel(c) for c in ("1733.7", seat, dept, ringing, "1733.8", f"{OTHER}-out1")],
        [bridge(f"{CALL}-talk2", "1733.7", seat, dept), bridge(f"{OTHER}-br2", "1733.8", f"{OTHER}-out1")],
        {"1733.7": CALL, "1733.8": OTHER},
        now=NOW,
    )
    assert sorted((t.call_id, t.legs) for t in found.talking) == [(CALL, (seat, dept)), (OTHER, (f"{OTHER}-out1",))]
    assert found.stray_legs == [ringing]


def test_a_bridge_without_its_creation_time_counts_the_talk_from_now() -> None:
    found = sort_leftovers(
        [channel("1733.7"), channel(f"{CALL}-out1")],
        [{"id": f"{CALL}-br2", "channels": ["1733.7", f"{CALL}-out1"]}],
        {"1733.7": CALL},
        now=NOW,
    )
    assert found.talking[0].since == NOW
    assert created_at({"creationtime": "yesterday"}) is None


@pytest.mark.parametrize(
    ("bridge_id", "targets", "outcome"),
    [
        (f"{CALL}-br3", ["市公安局"], Outcome.CONNECTED),
        (f"{CALL}-br3", ["operators"], Outcome.OPERATOR),  # the operators' group line (no seats)
        (f"{CALL}-talk2", ["operator-1"], Outcome.OPERATOR),  # a seat
        (f"{CALL}-talk2", ["operator-1", "市公安局"], Outcome.OPERATOR),  # transferred on: still the operators'
    ],
)
def test_who_answered_is_read_from_the_bridge_and_the_legs_targets(
    bridge_id: str, targets: list[str], outcome: Outcome
) -> None:
    assert outcome_for(bridge_id, targets) is outcome


# -- adopt_call on a stand-in Asterisk ----------------------------------------------------------
CITIZEN, LEG, BRIDGE = "1733.7", f"{CALL}-out2", f"{CALL}-br3"


class StandInAri:
    def __init__(self, gone: frozenset[str] = frozenset()) -> None:
        self.gone = set(gone)
        self.requests: list[tuple[str, str]] = []

    async def channel(self, cid: str) -> dict[str, Any]:
        if cid in self.gone:
            raise AriNotFound(f"channel {cid} not found")
        return {"id": cid}

    async def hangup(self, cid: str, reason: str = "normal") -> None:
        self.requests.append(("hangup", cid))

    async def destroy_bridge(self, bid: str) -> None:
        self.requests.append(("destroy_bridge", bid))

    async def subscribe(self, source: str) -> None:
        self.requests.append(("subscribe", source))

    async def play(self, cid: str, playback: str, media: list[str]) -> None:
        self.requests.append(("play", ",".join(media)))


def a_killed_controllers_row(tmp_path: Path) -> CallLog:
    """A call log whose call was in progress when its controller was killed, opened again."""
    first = open_calllog(tmp_path / "calllog.sqlite3")
    first.start()
    first.call_started(CallRecord(CALL, CITIZEN, "12345", "139****1234", "hash-1", "v1", started_at=time.time() - 30))
    first.close()
    log = open_calllog(tmp_path / "calllog.sqlite3")
    assert log.start() == 1  # marked interrupted, as before adoption
    return log


async def adopt(
    tmp_path: Path, events: list[ev.Event], gone: frozenset[str] = frozenset()
) -> tuple[dict[str, Any], StandInAri]:
    log = a_killed_controllers_row(tmp_path)
    ari = StandInAri(gone)
    (row,) = log.calls()
    registered: set[str] = set()
    call = AriCall(
        ari,  # type: ignore[arg-type]
        CALL,
        CITIZEN,
        register=lambda channel, _: registered.add(channel),
        unregister=registered.discard,
    )
    for event in events:
        call.queue.put_nowait(event)
    found = Talking(CALL, CITIZEN, (LEG,), BRIDGE, time.time() - 8)
    svc = Services(log, Prompts(), dt.datetime.now)
    await adopt_call(call, found, CallRecord.from_row(row), Outcome.CONNECTED, svc)
    assert registered == set()  # its events no longer routed to it: neither the citizen's nor the leg's
    log.close()
    log = open_calllog(tmp_path / "calllog.sqlite3")
    (row,) = log.calls()
    steps = [s["name"] for s in log.steps(CALL)]
    return {**row, "steps": steps}, ari


def destroyed(cid: str, cause: int = 16) -> ev.Event:
    return ev.parse({"type": "ChannelDestroyed", "channel": {"id": cid}, "cause": cause, "cause_txt": "Normal"})


async def test_the_department_hanging_up_ends_the_adopted_call_with_its_real_talk_time(tmp_path: Path) -> None:
    row, ari = await adopt(tmp_path, [destroyed(LEG)])
    assert (row["outcome"], row["hangup_by"], row["hangup_cause"]) == ("connected", "callee", 16)
    assert 7.9 <= row["talk_seconds"] <= 9.0  # from the bridge's creation, 8 s before the adoption
    assert row["steps"] == ["adopted", "callee_hangup", "ended"]
    assert ("hangup", CITIZEN) in ari.requests and ("destroy_bridge", BRIDGE) in ari.requests


async def test_the_citizen_hanging_up_ends_it_and_the_department_is_hung_up(tmp_path: Path) -> None:
    row, ari = await adopt(tmp_path, [destroyed(CITIZEN)])
    assert (row["outcome"], row["hangup_by"]) == ("connected", "caller")
    assert 7.9 <= row["talk_seconds"] <= 9.0
    assert ("hangup", LEG) in ari.requests and ("destroy_bridge", BRIDGE) in ari.requests


async def test_a_side_gone_before_the_adoption_ends_it_at_once(tmp_path: Path) -> None:
    row, ari = await adopt(tmp_path, [], gone=frozenset({LEG}))
    assert (row["outcome"], row["hangup_by"]) == ("connected", "callee")
    assert ("hangup", CITIZEN) in ari.requests


# -- a caller a dead controller sent down a ring chain (HOTLINE_DIAL_PATH=dialplan) ---------------
def in_context(cid: str, context: str, number: str = "13900001234") -> dict[str, Any]:
    return {"id": cid, "state": "Up", "caller": {"number": number}, "dialplan": {"context": context, "exten": "x"}}


def test_callers_in_a_ring_chain_are_found_ringing_or_talking_since_dials_bridge_was_made() -> None:
    found = in_chain(
        [
            in_context("1733.1", CHAIN_CONTEXT),  # its chain rings
            in_context("1733.2", CHAIN_CONTEXT, "13900005678"),  # talking to the department Dial reached
            in_context("1733.3", "departments"),  # that department's channel, Asterisk's own
            in_context("1733.4", CHAIN_CONTEXT),  # no row in the call log: not ours to follow
            in_context("1733.5", "hotline"),  # in the menu: in our app, sorted by sort_leftovers
        ],
        [bridge("5f1c0c9e-dial", "1733.2", "1733.3")],
        {"1733.1": CALL, "1733.2": OTHER, "1733.5": "0000000000000005"},
        now=NOW,
    )
    since = dt.datetime(2025, 12, 5, 2, 0, 0, 250000, tzinfo=dt.UTC).timestamp()
    assert found == [
        InChain(CALL, "1733.1", "13900001234", None),
        InChain(OTHER, "1733.2", "13900005678", since, "1733.3"),
    ]


def back_from_chain(status: str, answered: str = "") -> ev.Event:
    return ev.parse({"type": "StasisStart", "channel": {"id": CITIZEN}, "args": [CHAIN_BACK, status, answered]})


def dial_answered(peer: str) -> ev.Event:
    raw = {"type": "Dial", "caller": {"id": CITIZEN}, "peer": {"id": peer}, "dialstatus": "ANSWER"}
    return ev.parse(raw)


async def adopt_in_chain(
    tmp_path: Path, events: list[ev.Event], since: float | None, gone: frozenset[str] = frozenset()
) -> tuple[dict[str, Any], StandInAri]:
    log = a_killed_controllers_row(tmp_path)
    ari = StandInAri(gone)
    (row,) = log.calls()
    call = AriCall(ari, CALL, CITIZEN, register=lambda *_: None, unregister=lambda _: None)  # type: ignore[arg-type]
    for event in events:
        call.queue.put_nowait(event)
    found = InChain(CALL, CITIZEN, "13900001234", since, "1733.3" if since else "")
    table = routes.load(Path(__file__).parents[3] / "routes.yaml")
    await adopt_chain(call, found, CallRecord.from_row(row), table, Services(log, Prompts(), dt.datetime.now))
    log.close()
    log = open_calllog(tmp_path / "calllog.sqlite3")
    (row,) = log.calls()
    return {**row, "steps": [s["name"] for s in log.steps(CALL)]}, ari


async def test_a_conversation_in_the_chain_goes_on_and_its_end_brings_the_caller_back_for_the_rest(
    tmp_path: Path,
) -> None:
    row, ari = await adopt_in_chain(tmp_path, [back_from_chain("ANSWER", "8")], since=time.time() - 8)
    assert ari.requests[0] == ("subscribe", f"channel:{CITIZEN}")  # events of a channel out of Stasis
    assert (row["outcome"], row["hangup_by"]) == ("connected", "callee")
    assert 7.9 <= row["talk_seconds"] <= 9.0  # from Dial's bridge, 8 s before the adoption
    assert row["steps"][0] == "adopted" and row["steps"][-1] == "ended"
    assert ("hangup", CITIZEN) in ari.requests  # after what follows a conversation (no ticket here)


async def test_the_citizen_hanging_up_in_the_chains_conversation_is_on_record_with_the_talk_time(
    tmp_path: Path,
) -> None:
    row, ari = await adopt_in_chain(tmp_path, [destroyed(CITIZEN)], since=time.time() - 8)
    assert (row["outcome"], row["hangup_by"]) == ("connected", "caller")
    assert 7.9 <= row["talk_seconds"] <= 9.0
    assert ("hangup", CITIZEN) not in ari.requests  # gone already; the dialplan hangs up the department


async def test_a_chain_answered_after_the_adoption_is_a_conversation_from_the_answer(tmp_path: Path) -> None:
    row, _ = await adopt_in_chain(tmp_path, [dial_answered("1733.3"), back_from_chain("ANSWER", "0")], since=None)
    assert (row["outcome"], row["hangup_by"]) == ("connected", "callee")
    assert row["steps"][0] == "resumed"


async def test_a_chain_nobody_answered_leads_on_as_any_unanswered_route(tmp_path: Path) -> None:
    row, ari = await adopt_in_chain(tmp_path, [back_from_chain("NOANSWER"), destroyed(CITIZEN)], since=None)
    assert ("play", "sound:hotline/dept-noanswer") in ari.requests  # then the operators, as on any call
    assert (row["outcome"], row["hangup_by"]) == ("abandoned", "caller")


async def test_a_caller_gone_before_the_subscription_is_on_record_at_once(tmp_path: Path) -> None:
    row, ari = await adopt_in_chain(tmp_path, [], since=time.time() - 8, gone=frozenset({CITIZEN}))
    assert (row["outcome"], row["hangup_by"]) == ("connected", "caller")
