"""AriCall's conversation verbs for an operator's call: who is in the bridge, who is held, whose keys count."""

from __future__ import annotations

import asyncio
from typing import Any

from ivr.ari import events as ev
from ivr.call.ari_call import HOLD_CLASS, AriCall
from ivr.call.control import LegEvent

CALLER, SEAT, DEPT = "caller", "call-1-out1", "call-1-out2"


class RecordingAri:
    """Takes every request and writes it down."""

    def __init__(self) -> None:
        self.requests: list[tuple[Any, ...]] = []

    async def create_bridge(self, bridge_id: str, name: str = "", *, dtmf_events: bool = False) -> None:
        self.requests.append(("create_bridge", dtmf_events))

    async def add_to_bridge(self, bridge_id: str, channels: list[str], *, absorb_dtmf: bool = False) -> None:
        self.requests.append(("add", *channels, "absorbed" if absorb_dtmf else "heard"))

    async def remove_from_bridge(self, bridge_id: str, channel: str) -> None:
        self.requests.append(("remove", channel))

    async def set_variable(self, channel: str, name: str, value: str) -> None:
        pass

    async def play(self, channel: str, playback_id: str, media: list[str], lang: str = "zh") -> None:
        self.requests.append(("play", channel, *media))

    async def stop_playback(self, playback_id: str) -> None:
        self.requests.append(("stop_playback",))

    async def start_moh(self, channel: str, moh_class: str) -> None:
        self.requests.append(("moh", channel, moh_class))

    async def stop_moh(self, channel: str) -> None:
        self.requests.append(("stop_moh", channel))

    async def hangup(self, channel: str, reason: str = "normal") -> None:
        self.requests.append(("hangup", channel))


def a_call(ari: RecordingAri) -> AriCall:
    call = AriCall(ari, "call-1", CALLER, register=lambda *_: None, unregister=lambda _: None)  # type: ignore[arg-type]
    call._outbound |= {SEAT, DEPT}  # as dial() leaves them once answered
    return call


def dtmf(channel: str, digit: str) -> ev.Event:
    return ev.parse({"type": "ChannelDtmfReceived", "channel": {"id": channel}, "digit": digit})


async def test_the_seats_keys_are_absorbed_in_the_bridge_and_heard_only_by_the_controller() -> None:
    ari = RecordingAri()
    call = a_call(ari)
    await call.talk_with([SEAT])
    assert ari.requests == [("create_bridge", True), ("add", CALLER, "heard"), ("add", SEAT, "absorbed")]

    for event in (dtmf(CALLER, "*"), dtmf(CALLER, "1"), dtmf(SEAT, "*")):
        call.queue.put_nowait(event)
    got = await call.listen([SEAT], asyncio.Event().wait())
    assert got == LegEvent(SEAT, "*")
    assert list(call.digits) == ["*", "1"]  # the citizen's keys stay the citizen's: never a leg's


async def test_hold_takes_the_caller_out_with_hold_music_and_back() -> None:
    ari = RecordingAri()
    call = a_call(ari)
    await call.talk_with([SEAT])
    ari.requests.clear()
    await call.talk_with([SEAT, DEPT], hold=True)
    assert ari.requests == [("remove", CALLER), ("moh", CALLER, HOLD_CLASS), ("add", DEPT, "absorbed")]
    ari.requests.clear()
    await call.talk_with([DEPT])
    assert ari.requests == [("remove", SEAT), ("stop_moh", CALLER), ("add", CALLER, "heard")]


async def test_a_command_or_a_leg_hanging_up_ends_a_listen() -> None:
    call = a_call(RecordingAri())
    await call.talk_with([SEAT])

    async def ask() -> str:
        return "cancel"

    assert await call.listen([SEAT], ask()) == "cancel"
    call.queue.put_nowait(ev.parse({"type": "ChannelDestroyed", "channel": {"id": SEAT}, "cause": 16}))
    assert await call.listen([SEAT], asyncio.Event().wait()) == LegEvent(SEAT, None)
