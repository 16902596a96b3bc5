"""Admission in the controller: a refused call is refused at once, unanswered, and counted; the fixed rate
(HOTLINE_MAX_CALL_RATE) holds new calls to it. The adaptive limit itself: test_adaptive_admission.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ivr.ari.client import AriSettings
from ivr.ari.events import StasisStart
from ivr.controller.admission import FixedRate as Admission
from ivr.controller.app import Controller
from ivr.errors import AriError
from ivr.routing import routes
from ivr.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_without_a_rate_every_call_is_admitted() -> None:
    gate = Admission(0)
    assert all(gate.admit() for _ in range(10_000))


def test_a_burst_up_to_one_seconds_worth_passes_and_the_excess_is_refused() -> None:
    clock = Clock()
    gate = Admission(20, clock)
    assert [gate.admit() for _ in range(25)].count(True) == 20


def test_a_sustained_rate_above_the_limit_is_held_to_the_limit() -> None:
    clock = Clock()
    gate = Admission(10, clock)
    admitted = 0
    for _ in range(30 * 60):  # 30 calls/s offered for 60 s
        clock.now += 1 / 30
        admitted += gate.admit()
    assert 600 <= admitted <= 611  # 10/s for 60 s, plus the first second's bucket


def test_calls_are_admitted_again_once_the_storm_has_passed() -> None:
    clock = Clock()
    gate = Admission(5, clock)
    while gate.admit():
        pass
    clock.now += 1.0
    assert [gate.admit() for _ in range(5)] == [True] * 5


async def test_a_refused_call_goes_to_the_dialplan_that_records_and_refuses_it_and_is_counted(tmp_path: Path) -> None:
    controller = refusing_controller(tmp_path)
    continued: list[tuple[str, str, str]] = []

    async def continue_in_dialplan(channel: str, context: str, extension: str, priority: int = 1) -> None:
        continued.append((channel, context, extension))

    controller.ari.continue_in_dialplan = continue_in_dialplan  # type: ignore[method-assign]
    try:
        controller._start_call(StasisStart("StasisStart", {}, channel="refused-1", args=("12345",)))
        await asyncio.sleep(0)
        # dialplan/extensions.conf [hotline-refused]: Asterisk's CEL record of it, then 503.
        assert continued == [("refused-1", "hotline-refused", "congestion")]
        assert controller.admission.refused == 1
        assert controller.metrics.refused._value.get() == 1
        assert b"hotline_admission_refused_calls_total 1.0" in controller.metrics.exposition()
    finally:
        controller.calllog.close()


async def test_a_refused_call_asterisk_will_not_take_back_is_hung_up_with_congestion(tmp_path: Path) -> None:
    controller = refusing_controller(tmp_path)
    hangups: list[tuple[str, str]] = []

    async def continue_in_dialplan(channel: str, context: str, extension: str, priority: int = 1) -> None:
        raise AriError("404 channel not in Stasis")

    async def hangup(channel: str, reason: str = "normal") -> None:
        hangups.append((channel, reason))

    controller.ari.continue_in_dialplan = continue_in_dialplan  # type: ignore[method-assign]
    controller.ari.hangup = hangup  # type: ignore[method-assign]
    try:
        controller._start_call(StasisStart("StasisStart", {}, channel="refused-1", args=("12345",)))
        for _ in range(3):
            await asyncio.sleep(0)
        assert hangups == [("refused-1", "congestion")]
    finally:
        controller.calllog.close()


def refusing_controller(tmp_path: Path) -> Controller:
    """A controller whose one call of this second has come: the next is refused."""
    settings = Settings(
        ari=AriSettings("http://127.0.0.1:9", "hotline", "unused", "hotline"),
        routes_path=ROOT / "routes.yaml",
        calllog_path=tmp_path / "calllog.sqlite3",
        caller_hash_key=b"k" * 32,
        max_call_rate=1,
        admission="fixed",
    )
    controller = Controller(settings, routes.load(ROOT / "routes.yaml"))
    controller.admission = Admission(1, Clock())
    controller.admission.admit()
    return controller


async def test_adaptive_admission_is_the_default_and_refuses_beyond_the_calls_in_setup_it_allows(
    tmp_path: Path,
) -> None:
    settings = Settings(
        ari=AriSettings("http://127.0.0.1:9", "hotline", "unused", "hotline"),
        routes_path=ROOT / "routes.yaml",
        calllog_path=tmp_path / "calllog.sqlite3",
        caller_hash_key=b"k" * 32,
        admission_max_setups=2,
    )
    controller = Controller(settings, routes.load(ROOT / "routes.yaml"))
    continued: list[str] = []

    async def continue_in_dialplan(channel: str, context: str, extension: str, priority: int = 1) -> None:
        continued.append(channel)

    controller.ari.continue_in_dialplan = continue_in_dialplan  # type: ignore[method-assign]
    try:
        for n in range(3):  # three callers at once, before any has heard a prompt
            controller._start_call(StasisStart("StasisStart", {}, channel=f"c{n}", args=("12345",)))
        assert len(controller.in_setup) == 2
        await asyncio.sleep(0)
        assert continued == ["c2"]
        assert controller.metrics.refused._value.get() == 1
        first = next(call for call in controller._sessions.values() if call.channel == "c0")
        assert first.on_first_sound is not None
        first.on_first_sound()  # c0 hears its first prompt: its setup is over, a place is free
        controller._start_call(StasisStart("StasisStart", {}, channel="c3", args=("12345",)))
        assert len(controller.in_setup) == 2
        assert continued == ["c2"]
        await asyncio.gather(*controller._sessions, return_exceptions=True)  # no Asterisk here: they end at once
        assert len(controller.in_setup) == 0  # a call ending in setup leaves it
    finally:
        await controller.ari.close()
        controller.calllog.close()
