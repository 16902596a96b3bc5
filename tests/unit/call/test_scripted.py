"""ScriptedCall and its virtual clock: the fake the session's tests and `simulate` stand on.

What it promises: waits take their scripted time on the loop's clock and none of the wall
clock; timers keep their order; a line ends as the script says; a hang-up happens once, where
named, and every verb after it raises CallEnded as a live call's would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ivr.call.control import CallControl, DialStatus
from ivr.call.scripted import HangupStep, Line, Script, ScriptedCall, VirtualTimeLoop
from ivr.errors import CallEnded
from ivr.routing import routes

ROOT = Path(__file__).resolve().parents[3]
TABLE = routes.load(ROOT / "routes.yaml")
DEPARTMENT = "PJSIP/3372000@departments"
T = TypeVar("T")


def run(coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(coro_fn())
    finally:
        loop.close()


def test_a_long_wait_takes_its_time_on_the_loops_clock_and_none_on_the_wall_clock() -> None:
    async def waits() -> tuple[float, list[str]]:
        order: list[str] = []
        loop = asyncio.get_running_loop()
        loop.call_later(90, order.append, "seat freed")
        loop.call_later(120, order.append, "queue timed out")
        await asyncio.sleep(150)
        return loop.time(), order

    started = time.monotonic()
    now, order = run(waits)
    assert now == pytest.approx(150) and order == ["seat freed", "queue timed out"]
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("line", "status", "rings"),
    [
        (Line.ANSWER, DialStatus.ANSWER, 4.0),
        (Line.BUSY, DialStatus.BUSY, 1.0),
        (Line.NOANSWER, DialStatus.NOANSWER, 20.0),
        (Line.DOWN, DialStatus.TRUNK_DOWN, 0.0),
    ],
)
def test_a_dialled_line_ends_as_scripted_after_ringing_its_time(line: Line, status: DialStatus, rings: float) -> None:
    async def dial() -> tuple[DialStatus, float]:
        call = ScriptedCall(TABLE, Script(department=line))
        result = await call.dial(DEPARTMENT, 20, caller_id="12345", label="市公安局")
        return result.status, asyncio.get_running_loop().time()

    assert run(dial) == (status, rings)


def test_keys_come_one_per_wait_then_silence_times_out() -> None:
    async def keys() -> list[str | None]:
        call = ScriptedCall(TABLE, Script(keys="1,2"))
        return [await call.collect_digit(5) for _ in range(4)]

    assert run(keys) == ["1", None, "2", None]


def test_after_a_hang_up_at_a_step_every_verb_raises_call_ended() -> None:
    async def hang_up() -> list[str]:
        call: CallControl = ScriptedCall(TABLE, Script(hangup_at=HangupStep.RINGING))
        seen = []
        for attempt in (call.dial(DEPARTMENT, 20, caller_id="12345", label="x"), call.play(["sound:hotline/x"])):
            try:
                await attempt
            except CallEnded as ended:
                seen.append(f"{ended.reason}:{ended.cause}")
        assert not call.caller_up
        return seen

    assert run(hang_up) == ["caller_hangup:16", "caller_hangup:16"]


def test_the_call_keeps_the_requests_made_of_it_in_order() -> None:
    async def story() -> list[tuple[Any, ...]]:
        call = ScriptedCall(TABLE, Script(department=Line.BUSY))
        await call.answer()
        await call.play(["sound:hotline/connecting"])
        await call.dial(DEPARTMENT, 20, caller_id="12345", label="市公安局")
        await call.hangup()
        return call.verbs()

    assert run(story) == [
        ("answer",),
        ("play", "connecting"),
        ("dial", "3372000", "市公安局", "BUSY"),
        ("hangup",),
    ]
