"""AriCall.dial against an ARI that behaves like Asterisk's: a created channel enters the app later.

`POST /channels/create` answers before the new channel is in Stasis; a dial sent in between is
refused with 409 "Channel not in Stasis application" (seen in the benchmark near saturation).
Its StasisStart event may lag further behind under load.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ivr.ari import events as ev
from ivr.call import ari_call as calls
from ivr.call.ari_call import AriCall
from ivr.errors import AriConflict, AriError

ENDPOINT = "PJSIP/3372000@departments"


class SlowStasisAri:
    """Records requests. A created channel enters Stasis `delay` s after the create (None: at
    once), its StasisStart event `event_lag` s after that; or it dies (`fate`) or never comes."""

    def __init__(
        self, delay: float | None = 0.05, event_lag: float = 0.0, fate: str = "stasis", cause: int = 0
    ) -> None:
        self.delay, self.event_lag, self.fate, self.cause = delay, event_lag, fate, cause
        self.requests: list[tuple[str, str]] = []
        self.in_stasis: set[str] = set()
        self.events_sent: list[str] = []
        self.call: AriCall | None = None

    def _deliver(self, raw: dict[str, Any]) -> None:
        assert self.call is not None
        self.events_sent.append(raw["type"])
        self.call.queue.put_nowait(ev.parse(raw))

    async def create_channel(
        self, channel_id: str, endpoint: str, app_args: str, originator: str, variables: Any = None
    ) -> None:
        self.requests.append(("create", channel_id))
        loop = asyncio.get_running_loop()
        if self.fate == "stasis":
            if self.delay is None:
                self._enter(channel_id)
            else:
                loop.call_later(self.delay, self._enter, channel_id)
        elif self.fate == "destroyed":
            loop.call_later(
                self.delay or 0.0,
                self._deliver,
                {"type": "ChannelDestroyed", "channel": {"id": channel_id}, "cause": self.cause},
            )

    def _enter(self, channel_id: str) -> None:
        self.in_stasis.add(channel_id)
        asyncio.get_running_loop().call_later(
            self.event_lag, self._deliver, {"type": "StasisStart", "channel": {"id": channel_id}, "args": ["dialed"]}
        )

    async def dial(self, channel: str, caller: str, timeout: int) -> None:
        self.requests.append(("dial", channel))
        if channel not in self.in_stasis:
            raise AriConflict(f"POST /channels/{channel}/dial: 409 Channel not in Stasis application", status=409)
        asyncio.get_running_loop().call_soon(
            self._deliver, {"type": "Dial", "peer": {"id": channel}, "dialstatus": "ANSWER"}
        )

    async def hangup(self, channel: str, reason: str = "normal") -> None:
        self.requests.append(("hangup", channel))

    async def set_variable(self, channel: str, name: str, value: str) -> None:
        pass

    async def play(self, channel: str, playback_id: str, media: list[str], lang: str = "zh") -> None:
        pass

    async def stop_playback(self, playback_id: str) -> None:
        pass


def make_call(ari: SlowStasisAri) -> AriCall:
    call = AriCall(ari, "c1", "caller-chan", register=lambda _c, _call: None, unregister=lambda _c: None)  # type: ignore[arg-type]
    ari.call = call
    return call


async def test_a_channel_already_in_stasis_is_dialled_at_once_without_waiting_for_the_event() -> None:
    ari = SlowStasisAri(delay=None, event_lag=2.0)  # an event stream running behind, as under load
    result = await make_call(ari).dial(ENDPOINT, 20, caller_id="12345", label="gongan")

    assert result.status == "ANSWER"
    assert ari.requests == [("create", result.channel), ("dial", result.channel)]
    assert "StasisStart" not in ari.events_sent


async def test_a_dial_refused_as_not_yet_in_stasis_is_sent_again_once_the_channel_is() -> None:
    ari = SlowStasisAri(delay=0.05)
    result = await make_call(ari).dial(ENDPOINT, 20, caller_id="12345", label="gongan")

    assert result.status == "ANSWER"
    out = result.channel
    assert ari.requests == [("create", out), ("dial", out), ("dial", out)]


async def test_a_channel_destroyed_before_entering_stasis_is_a_failed_dial_by_its_cause() -> None:
    ari = SlowStasisAri(fate="destroyed", cause=34)  # no circuit available
    result = await make_call(ari).dial(ENDPOINT, 20, caller_id="12345", label="gongan")

    assert result.status == "CONGESTION" and result.cause == 34
    assert ari.requests == [("create", result.channel), ("dial", result.channel)]  # not hung up: already gone


async def test_a_channel_that_never_enters_stasis_is_hung_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(calls, "STASIS_WAIT_S", 0.2)
    ari = SlowStasisAri(fate="lost")
    result = await make_call(ari).dial(ENDPOINT, 20, caller_id="12345", label="gongan")

    assert result.status == "CHANUNAVAIL" and not result.ok
    assert ari.requests == [("create", result.channel), ("dial", result.channel), ("hangup", result.channel)]


async def test_the_caller_hanging_up_while_the_channel_is_created_ends_the_call() -> None:
    ari = SlowStasisAri(delay=0.5)
    call = make_call(ari)
    asyncio.get_running_loop().call_later(
        0.05,
        call.queue.put_nowait,
        ev.parse({"type": "ChannelHangupRequest", "channel": {"id": "caller-chan"}, "cause": 16}),
    )
    with pytest.raises(calls.CallEnded):
        await call.dial(ENDPOINT, 20, caller_id="12345", label="gongan")
    assert [kind for kind, _ in ari.requests] == ["create", "dial", "hangup"]


class TimedOutCreateAri(SlowStasisAri):
    """POST /channels/create times out on our side, but Asterisk creates the channel anyway."""

    async def create_channel(
        self, channel_id: str, endpoint: str, app_args: str, originator: str, variables: Any = None
    ) -> None:
        await super().create_channel(channel_id, endpoint, app_args, originator, variables)
        raise AriError("POST /channels/create: TimeoutError: ")


async def test_a_leg_whose_create_timed_out_but_went_through_is_hung_up_when_it_appears() -> None:
    ari = TimedOutCreateAri(delay=0.05)
    call = make_call(ari)
    result = await call.dial(ENDPOINT, 20, caller_id="12345", label="gongan")
    assert result.status == "TRUNK_DOWN"

    await call.collect_digit(0.2)  # the call goes on (e.g. to an operator) while the leg appears
    await asyncio.sleep(0)
    assert ("hangup", result.channel) in ari.requests


# -- HOTLINE_DIAL_PATH=dialplan: what the ring chain in the dialplan tells the call -------------------


class ChainAri(SlowStasisAri):
    """Answers the `continue` into a ring chain with the events Asterisk sends the subscribed app: per
    number a Dial that begins (only when Dial could create the channel), how it ended, the chain's
    user event HotlineRang, and at last the caller back in Stasis."""

    def __init__(self, numbers: list[tuple[str, str, int]]) -> None:
        super().__init__()
        self.numbers = numbers  # (peer channel, '' when Dial created none; DIALSTATUS; HANGUPCAUSE)

    async def subscribe(self, event_source: str) -> None:
        self.requests.append(("subscribe", event_source))

    async def continue_in_dialplan(self, channel: str, context: str, extension: str, priority: int = 1) -> None:
        self.requests.append(("continue", f"{context},{extension}"))
        caller = {"id": channel}
        events: list[dict[str, Any]] = []
        for peer, status, cause in self.numbers:
            if peer:
                events.append({"type": "Dial", "caller": caller, "peer": {"id": peer}, "dialstatus": ""})
                events.append({"type": "Dial", "caller": caller, "peer": {"id": peer}, "dialstatus": status})
            if status == "ANSWER":
                break
            said = {"eventname": "HotlineRang", "status": status, "cause": str(cause)}
            user = {"type": "ChannelUserevent", "channel": caller, "eventname": "HotlineRang"}
            events.append({**user, "userevent": said})
        events.append({"type": "StasisStart", "channel": caller, "args": ["ringchain", "CHANUNAVAIL", ""]})
        loop = asyncio.get_running_loop()
        for n, raw in enumerate(events):
            loop.call_later(0.01 * (n + 1), self._deliver, raw)


async def rung(ari: ChainAri) -> list[tuple[int, str, str, int]]:
    return [(n, r.status, r.channel, r.cause) async for n, r in make_call(ari).ring_chain("gongan_x")]


async def test_a_chain_number_whose_trunk_asterisk_cannot_use_is_trunk_down_as_on_the_ari_path() -> None:
    # Dial to PJSIP/...@no-such-trunk creates no channel: no Dial event, DIALSTATUS CHANUNAVAIL, cause 3.
    ari = ChainAri([("", "CHANUNAVAIL", 3), ("out-2", "BUSY", 17), ("out-3", "ANSWER", 0)])

    assert await rung(ari) == [(0, "TRUNK_DOWN", "", 3), (1, "BUSY", "out-2", 17), (2, "ANSWER", "out-3", 0)]
    assert ari.requests == [("subscribe", "channel:caller-chan"), ("continue", "hotline-chain,gongan_x")]


async def test_a_chain_number_dialled_but_unavailable_stays_chanunavail() -> None:
    # The channel was created and then failed: Asterisk could use the trunk, the far end was not there.
    ari = ChainAri([("out-1", "CHANUNAVAIL", 20), ("", "CHANUNAVAIL", 3)])

    assert await rung(ari) == [(0, "CHANUNAVAIL", "out-1", 20), (1, "TRUNK_DOWN", "", 3)]


class GapAri(ChainAri):
    """The events WebSocket was down while the chain ran: the department answered, talked 7 s and hung up;
    none of it was heard. GET /channels tells where the caller is now: back in Stasis from the chain."""

    def __init__(self) -> None:
        super().__init__([])
        self.settings = type("S", (), {"app": "hotline"})()

    async def continue_in_dialplan(self, channel: str, context: str, extension: str, priority: int = 1) -> None:
        self.requests.append(("continue", f"{context},{extension}"))

    async def channel(self, channel: str) -> dict[str, Any]:
        self.requests.append(("get", channel))
        return {"id": channel, "dialplan": {"app_name": "Stasis", "app_data": "hotline,ringchain,ANSWER,7"}}


async def test_a_chain_that_answered_and_ended_in_an_events_gap_is_learned_at_the_reconcile_with_its_talk() -> None:
    ari = GapAri()
    call = make_call(ari)

    async def after_the_gap() -> None:
        await asyncio.sleep(0.05)
        await call.reconcile()

    task = asyncio.create_task(after_the_gap())
    results = [(n, r.status) async for n, r in call.ring_chain("gongan_x")]
    await task

    assert results == [(0, "ANSWER")]  # not "nobody answered": that would ring the chain again over ARI
    assert call.talk_seconds == 7.0
    talked = await call.talked_in_dialplan()
    assert (talked.ended_by, talked.talk_seconds) == ("callee", 7.0)
