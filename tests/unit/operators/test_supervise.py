"""A supervisor's listen in / whisper / barge: what is refused (and why), and what the running supervision is told.

The decisions (`Supervisors.ask`) on the real seat pool and desk; the phone itself is a runner that records
what it is asked — the live one (run_on_ari, a real snoop) is proved by tests/integration/test_supervisor.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ivr.errors import TransferRefused
from ivr.operators.desk import Desk
from ivr.operators.queue import SeatPool
from ivr.operators.supervise import SNOOP, Supervision, Supervisors
from ivr.routing import routes

TABLE = routes.load(Path(__file__).resolve().parents[3] / "routes.yaml")


class Phone:
    """Stands in for the supervisor's phone: runs until told 'stop', noting each mode it is told."""

    def __init__(self) -> None:
        self.heard: list[tuple[str, str, str]] = []  # (call id, operator's leg, mode)

    async def __call__(self, supervision: Supervision) -> None:
        self.heard.append((supervision.call_id, supervision.leg, supervision.mode))
        while (mode := await supervision.changes.get()) != "stop":
            supervision.mode = mode
            supervision.modes.append(mode)
            self.heard.append((supervision.call_id, supervision.leg, mode))
        supervision.outcome = "stopped"


def world() -> tuple[SeatPool, Desk, Supervisors, Phone]:
    pool = SeatPool(TABLE.operators.seats)
    desk = Desk()
    phone = Phone()
    return pool, desk, Supervisors(desk, pool, phone), phone


def test_listen_whisper_and_barge_are_snoops_on_the_operators_leg_differing_in_who_hears_the_supervisor() -> None:
    assert SNOOP == {"listen": ("both", "none"), "whisper": ("both", "out"), "barge": ("both", "both")}


async def test_a_listen_rings_the_supervisors_phone_seat_then_changes_mode_on_the_same_call_and_stops() -> None:
    pool, desk, supervisors, phone = world()
    pool.set_state("seat-2", "signed_out", by="cli")  # the supervisor's phone takes no citizens
    desk.open("call-1", "seat-1", TABLE, leg="chan-seat-1")
    ended: list[Supervision] = []

    first = supervisors.ask("boss", "seat-2", "seat-1", "listen", "call-1", on_end=ended.append)
    assert (first.call_id, first.leg, first.mode) == ("call-1", "chan-seat-1", "listen")
    assert first.phone == "PJSIP/operator-2"  # seat-2's phone
    again = supervisors.ask("boss", "seat-2", "seat-1", "barge")
    assert again is first and supervisors.active() == [first]
    await asyncio.sleep(0.01)
    assert phone.heard == [("call-1", "chan-seat-1", "listen"), ("call-1", "chan-seat-1", "barge")]

    supervisors.ask("boss", "seat-2", "seat-1", "stop")
    for _ in range(100):
        if ended:
            break
        await asyncio.sleep(0.01)
    assert [(e.outcome, e.modes) for e in ended] == [("stopped", ["listen", "barge"])]
    assert supervisors.active() == []


@pytest.mark.parametrize(
    ("seat", "mode", "call_id", "phone_seat", "status", "why"),
    [
        ("seat-1", "shout", "", "seat-2", 400, "mode must be one of listen, whisper, barge or stop"),
        ("seat-9", "listen", "", "seat-2", 404, "no seat 'seat-9'"),
        ("seat-2", "listen", "", "", 409, "seat seat-2 has no call to listen"),
        ("seat-1", "listen", "call-gone", "seat-2", 409, "call call-gone has already ended"),
        ("seat-1", "listen", "call-other", "seat-2", 409, "call call-other is not at seat seat-1 now"),
        ("seat-1", "listen", "", "", 409, "boss has no phone"),
        ("seat-1", "whisper", "", "seat-1", 409, "seat seat-1 is the supervisor's own phone"),
        ("seat-1", "barge", "", "seat-7", 409, "boss's phone, seat seat-7, is not a seat of routes.yaml"),
        ("seat-1", "stop", "", "seat-2", 409, "boss is not supervising seat seat-1"),
    ],
)
async def test_bad_asks_are_refused_with_a_reason_and_nothing_rings(
    seat: str, mode: str, call_id: str, phone_seat: str, status: int, why: str
) -> None:
    pool, desk, supervisors, phone = world()
    pool.set_state("seat-2", "signed_out", by="cli")
    desk.open("call-1", "seat-1", TABLE, leg="chan-seat-1")
    desk.ended("call-gone")
    with pytest.raises(TransferRefused) as refused:
        supervisors.ask("boss", phone_seat, seat, mode, call_id)
    assert refused.value.status == status and why in str(refused.value)
    await asyncio.sleep(0)
    assert phone.heard == [] and supervisors.active() == []


async def test_a_phone_seat_that_could_be_offered_a_citizen_is_refused_and_one_supervision_at_a_time() -> None:
    pool, desk, supervisors, phone = world()
    desk.open("call-1", "seat-1", TABLE, leg="chan-seat-1")
    desk.open("call-2", "seat-2", TABLE, leg="chan-seat-2")
    with pytest.raises(TransferRefused, match="seat seat-2, is ready: sign it out or pause it first"):
        supervisors.ask("boss", "seat-2", "seat-1", "listen")

    pool2, desk2, supervisors2, _ = world()
    pool2.set_state("seat-2", "paused", reason="班长", by="cli")
    desk2.open("call-1", "seat-1", TABLE, leg="chan-seat-1")
    supervisors2.ask("boss", "seat-2", "seat-1", "listen")
    desk2.open("call-3", "seat-2", TABLE, leg="chan-seat-2")
    with pytest.raises(TransferRefused, match="boss is supervising seat seat-1 now: stop that first"):
        supervisors2.ask("boss", "seat-2", "seat-2", "listen")
    await supervisors2.close()
    assert supervisors2.active() == []
