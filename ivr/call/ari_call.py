"""An AriCall: one citizen's channel, the channels we dial for it, and verbs that read linearly.

The session coroutine says `await call.play(...)`, `await call.collect_digit(...)`,
`await call.dial(...)`, `await call.bridge(...)`; each verb sends its REST request and then
reads this call's own event queue (filled by the Dispatcher, in Asterisk's order) until the
event that completes it. Two rules hold for every verb:

- DTMF from the caller is buffered whenever it arrives, so keys pressed during a prompt or
  before the menu starts are never lost (type-ahead / barge-in);
- the caller leaving (ChannelHangupRequest, StasisEnd, ChannelDestroyed) raises CallEnded
  wherever the coroutine is waiting, so hangup unwinds the flow to its `finally`.

`cleanup()` hangs up every channel we created and destroys every bridge we made, treating
404 as "already gone": no channel or bridge outlives its call.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from typing import TypeVar

import structlog

from ivr.ari import events as ev
from ivr.ari.client import AriClient
from ivr.call.control import CAUSE_TO_STATUS, FAILED_DIAL, BridgeResult, DialResult, DialStatus, LegEvent
from ivr.errors import AriConflict, AriError, AriNotFound, CallEnded
from ivr.routing.dialplan import CHAIN_BACK, CHAIN_CONTEXT, CHAIN_MISSING, CHAIN_RESULT

log = structlog.get_logger("ivr.call.ari_call")

T = TypeVar("T")

# How long a recording may take to be reported finished after the caller hung up on it.
RECORDING_AFTER_HANGUP_S = 3.0

# A call's playbacks take their ids from a small ring of slots named after the citizen's channel
# (`<channel>-pb0` .. `-pb15`). Nothing is written anywhere per prompt, yet a controller restarted
# after a crash can find and stop a prompt the dead one left playing (Asterisk runs `continue`, or
# a new prompt, only after it): it stops every slot (stop_left_prompts); a 404 costs little and only
# happens then. The ring is far larger than the playbacks one call has at once (a prompt, a ring
# tone, a hold tone), so a slot comes round again long after its last PlaybackFinished.
PLAYBACK_SLOTS = 16

# How long a created outbound channel may take to enter our app (normally milliseconds).
STASIS_WAIT_S = 5.0

# What a caller on hold (an operator consulting a department) hears: Asterisk's music-on-hold class
# of dialplan/musiconhold.conf, whose files setup makes (ivr.prompts.render_hold_music).
HOLD_CLASS = "hotline"

# The dialplan context that starts MixMonitor on a leg and sends it straight back (dialplan/extensions.conf).
RECORD_CONTEXT = "hotline-record"
RECORDING_VARIABLE = "HOTLINE_RECORDING"


class AriCall:
    """A citizen's channel on Asterisk, driven through ARI: the live `CallControl`."""

    def __init__(
        self,
        ari: AriClient,
        call_id: str,
        channel: str,
        *,
        register: Callable[[str, AriCall], None],
        unregister: Callable[[str], None],
        caller_number: str = "",
        first_seq: int = 0,
        first_playback: int = 0,
    ) -> None:
        self.ari = ari
        self.id = call_id
        self.channel = channel
        # Kept in memory only, for the callback list (漏接回拨); logs and the calls table get
        # the masked form.
        self.caller_number = caller_number
        self.queue: asyncio.Queue[ev.Event] = asyncio.Queue()
        self.digits: deque[str] = deque()
        self.caller_up = True
        self.hangup_cause = 0
        self._register = register
        self._unregister = unregister
        self._outbound: set[str] = set()  # our dialled channels still alive
        self._hopping: set[str] = set()  # legs out in the dialplan to start their recording, coming back
        self._strays: set[asyncio.Future[None]] = set()  # hang-ups of legs we had given up on
        self._bridges: set[str] = set()
        self._seq = first_seq  # above the ids a dead controller's leftovers of this call still use (ivr.call.adopt)
        self._taken: list[str] = []  # legs taken over from a dead controller (resume_talk)
        self._playing: set[str] = set()  # playbacks we started that may still be running
        self._playback_n = first_playback  # the next playback slot (after a dead controller's, on a restart)
        self._handing_off = False
        self.bridged_since: float | None = None
        self.bridged_until: float | None = None
        self._leg_events: deque[LegEvent] = deque()  # keys and hang-ups of dialled legs, in order
        self._talk: str | None = None  # the bridge of talk_with()
        self._members: set[str] = set()
        self._held = False  # the caller out of the bridge hearing hold music
        # Called once, when the caller first hears something (a prompt, ringback, hold music): the end of the
        # call's setup, which admission counts (ivr.controller.admission).
        self.on_first_sound: Callable[[], None] | None = None
        self._in_dialplan = False  # out of Stasis in a ring chain (HOTLINE_DIAL_PATH=dialplan), coming back
        register(channel, self)

    def _next_id(self, kind: str) -> str:
        self._seq += 1
        return f"{self.id}-{kind}{self._seq}"

    def _next_playback(self) -> str:
        slot = self._playback_n % PLAYBACK_SLOTS
        self._playback_n += 1
        return playback_id(self.channel, slot)

    # -- the event pump every verb uses ---------------------------------------------------
    async def _next(self, timeout: float | None) -> ev.Event | None:
        """The next event of this call, or None on timeout. Raises CallEnded if the caller left."""
        if not self.caller_up:
            raise CallEnded("caller_hangup", self.hangup_cause)
        try:
            async with asyncio.timeout(timeout):
                event = await self.queue.get()
        except TimeoutError:
            return None
        return self._absorb(event)

    def _absorb(self, event: ev.Event) -> ev.Event:
        """Apply what every verb must notice (keys, the caller leaving), then hand the event on."""
        cid = event.channel_id
        if cid == self.channel:
            if isinstance(event, ev.ChannelDtmfReceived):
                self.digits.append(event.digit)
            elif isinstance(event, ev.StasisEnd) and self._in_dialplan:
                pass  # off to its ring chain, still ours (subscribed): not the caller leaving
            elif isinstance(event, (ev.ChannelHangupRequest, ev.StasisEnd, ev.ChannelDestroyed)):
                self.caller_up = False
                if isinstance(event, (ev.ChannelHangupRequest, ev.ChannelDestroyed)):
                    self.hangup_cause = event.cause
                raise CallEnded("caller_hangup", self.hangup_cause)
        elif cid in self._outbound and isinstance(event, ev.ChannelDtmfReceived):
            self._leg_events.append(LegEvent(cid, event.digit))
        elif cid in self._outbound and isinstance(event, (ev.StasisEnd, ev.ChannelDestroyed)):
            if not (isinstance(event, ev.StasisEnd) and cid in self._hopping):  # back in a moment: recording
                self._outbound.discard(cid)
                self._members.discard(cid)
                self._leg_events.append(LegEvent(cid, None))
        elif isinstance(event, ev.StasisStart) and cid not in self._outbound:
            # A leg we gave up on entered our app after all: its create timed out on our side
            # (an overloaded Asterisk) but went through. Nobody would ever hang it up.
            log.warning("stray_leg_hung_up", channel=event.channel)
            task = asyncio.ensure_future(self._quietly(self.ari.hangup(event.channel)))
            self._strays.add(task)
            task.add_done_callback(self._strays.discard)
        return event

    async def wait(self, awaitable: Awaitable[T], timeout: float) -> T | None:
        """Await something outside the call (a queue turn) while still watching the caller.

        Returns its result, or None after `timeout`; the caller hanging up raises CallEnded
        as in every verb, and DTMF keeps being buffered.
        """
        task = asyncio.ensure_future(awaitable)
        deadline = time.monotonic() + timeout
        try:
            while not task.done():
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                getter = asyncio.ensure_future(self.queue.get())
                done, _ = await asyncio.wait({task, getter}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    self._absorb(getter.result())
                else:
                    getter.cancel()
            return task.result()
        finally:
            if not task.done():
                task.cancel()

    # -- verbs ------------------------------------------------------------------------------
    async def answer(self) -> None:
        await self.ari.answer(self.channel)

    async def play(self, media: list[str], *, barge_in: bool = False) -> bool:
        """Play media back to back. With barge_in, a key stops it; returns True if interrupted."""
        if barge_in and self.digits:
            return True
        playback = self._next_playback()
        await self._start_playback(playback, media)
        # Asterisk's own PlaybackFinished is the end marker; the guard timeout only protects
        # against a lost event (a reconnect gap) so a call can never wait forever here.
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline:
                event = await self._next(deadline - time.monotonic())
                if isinstance(event, ev.PlaybackFinished) and event.playback == playback:
                    self._playing.discard(playback)
                    return False
                if barge_in and self.digits:
                    await self._quietly(self.ari.stop_playback(playback))
                    return True
        except asyncio.CancelledError:
            # Cut short by the story (a silent caller's time is up, a seat came free mid-menu): the
            # caller must hear what comes next, not the rest of this prompt.
            await self._quietly(self.ari.stop_playback(playback))
            self._playing.discard(playback)
            raise
        return False

    async def record(self, name: str, max_seconds: int = 60, max_silence_seconds: int = 5) -> tuple[str, int]:
        """Take a voice message (beep, then up to `max_seconds`; '#' or silence ends it).

        Returns (state, seconds): state 'done' when a message was kept. Keys pressed before the
        beep are dropped so they cannot end the message at once. Hanging up is how many callers
        end a message: Asterisk still finishes the recording then, so its result is awaited a
        moment and returned (with `caller_up` False) instead of raising CallEnded.
        """
        self.digits.clear()
        await self.ari.record(self.channel, name, max_seconds, max_silence_seconds)
        deadline = time.monotonic() + max_seconds + 10
        try:
            while (left := deadline - time.monotonic()) > 0:
                event = await self._next(left)
                if isinstance(event, ev.RecordingFinished) and event.name == name:
                    return event.state, event.duration
        except CallEnded:
            try:
                async with asyncio.timeout(RECORDING_AFTER_HANGUP_S):
                    while True:
                        event = await self.queue.get()
                        if isinstance(event, ev.RecordingFinished) and event.name == name:
                            return event.state, event.duration
            except TimeoutError:
                raise CallEnded("caller_hangup", self.hangup_cause) from None
        return "timeout", max_seconds

    async def record_leg(self, leg: str, path: str) -> bool:
        """MixMonitor on the answered leg (ARI has no verb for it): the leg leaves Stasis for the
        `hotline-record` context, which starts it and sends the leg straight back. Recording on the
        channel, not the bridge, means the file runs to the leg's end even if this controller dies.

        True once the leg is back in Stasis; False if it hung up on the way (or never came back).
        """
        await self.ari.set_variable(leg, RECORDING_VARIABLE, path)
        self._hopping.add(leg)
        try:
            await self.ari.continue_in_dialplan(leg, RECORD_CONTEXT, "s")
            deadline = time.monotonic() + STASIS_WAIT_S
            while (left := deadline - time.monotonic()) > 0:
                event = await self._next(left)
                if event is None:
                    break
                if event.channel_id != leg:
                    continue
                if isinstance(event, ev.StasisStart):
                    return True
                if isinstance(event, (ev.ChannelHangupRequest, ev.ChannelDestroyed)):
                    self.queue.put_nowait(event)  # the bridge that follows must see the leg go, too
                    return False
        finally:
            self._hopping.discard(leg)
        log.warning("recording_leg_not_back", channel=leg)
        return False

    async def play_until(self, media: list[str], awaitable: Awaitable[T]) -> T:
        """Play `media` (looping tones, hold music) until `awaitable` completes, then stop it."""
        playback = self._next_playback()
        await self._quietly(self._start_playback(playback, media))
        try:
            return await awaitable
        finally:
            await self._quietly(self.ari.stop_playback(playback))
            self._playing.discard(playback)

    async def collect_digit(self, timeout: float) -> str | None:
        """One key: a buffered one at once, else wait up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not self.digits:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            await self._next(left)
        return self.digits.popleft()

    async def dial(
        self, endpoint: str, ring_seconds: int, *, caller_id: str, label: str, ringback: bool = True
    ) -> DialResult:
        """Ring `endpoint` (a dial string from routes.yaml) and wait for answer or failure.

        The caller hears ringback meanwhile (unless `ringback` is False). The channel is created in our app before it is
        dialled, so we own it from its first event; on any failure it is hung up here.
        """
        out = self._next_id("out")
        self._register(out, self)
        self._outbound.add(out)
        result = DialResult(DialStatus.CHANUNAVAIL, out, started=time.time())
        ring = self._next_playback()
        try:
            try:
                await self.ari.create_channel(
                    out,
                    endpoint,
                    app_args=f"dialed,{self.id}",
                    originator=self.channel,
                    variables={"HOTLINE_CALL_ID": self.id, "HOTLINE_TARGET": label},
                )
            except AriError as exc:
                log.warning("dial_create_failed", endpoint=endpoint, error=str(exc))
                self._outbound.discard(out)
                result.status = DialStatus.TRUNK_DOWN
                return result
            if ringback:
                await self._quietly(self._start_playback(ring, ["tone:ring;tonezone=cn"]))
            try:
                await self.ari.dial(out, caller=self.channel, timeout=ring_seconds)
            except AriConflict:
                # /channels/create answers before the channel has entered our app, and under load
                # the dial can get there first (409 Channel not in Stasis application): a few
                # calls in a thousand near saturation. Only then wait for its StasisStart; waiting
                # on every dial would put an event round trip (seconds behind under overload) in
                # every call's path.
                log.info("dial_waits_for_stasis", channel=out)
                if not await self._until_in_stasis(out, result):
                    return result
                try:
                    await self.ari.dial(out, caller=self.channel, timeout=ring_seconds)
                except AriConflict:  # it entered, and has already left again
                    return result
            known = False  # has Asterisk told us the dial status yet?
            deadline = time.monotonic() + ring_seconds + 10
            while (left := deadline - time.monotonic()) > 0:
                event = await self._next(left)
                if event is None:
                    break
                if isinstance(event, ev.Dial) and event.peer == out:
                    if event.dialstatus == "ANSWER":
                        result.status, result.answered = DialStatus.ANSWER, time.time()
                        return result
                    if event.dialstatus in FAILED_DIAL:
                        result.status, known = DialStatus(event.dialstatus), True
                        # Give the channel a moment to report its hangup cause, then go on.
                        deadline = min(deadline, time.monotonic() + 1.0)
                elif isinstance(event, (ev.ChannelHangupRequest, ev.ChannelDestroyed)) and event.channel == out:
                    if result.leg_hung_up(event, status_known=known):
                        return result
            if not known:
                result.status = DialStatus.NOANSWER
            return result
        except AriNotFound:
            # The outbound channel vanished between create and dial (trunk refused at once).
            result.status = DialStatus.CHANUNAVAIL
            return result
        finally:
            if ringback:
                await self._quietly(self.ari.stop_playback(ring))
                self._playing.discard(ring)
            if not result.ok and out in self._outbound:
                await self._quietly(self.ari.hangup(out))

    async def ring(self, endpoint: str, ring_seconds: int, *, caller_id: str, label: str) -> DialResult:
        """A call the hotline places (ivr.outbound): create this call's own channel and ring it.

        The channel is registered (by the constructor) before it exists, so its first event finds
        this call. Until it answers, its hanging up ends the ring, not the call: the result says how.
        """
        result = DialResult(DialStatus.CHANUNAVAIL, self.channel, started=time.time())
        params = {"endpoint": endpoint, "app": self.ari.settings.app, "appArgs": f"outbound,{self.id}"}
        variables = {"CALLERID(num)": caller_id, "HOTLINE_CALL_ID": self.id, "HOTLINE_TARGET": label}
        try:
            await self.ari.request(
                "POST", "/channels/create", {**params, "channelId": self.channel}, {"variables": variables}
            )
        except AriError as exc:
            log.warning("ring_create_failed", endpoint=endpoint, error=str(exc))
            self.caller_up = False
            result.status = DialStatus.TRUNK_DOWN
            return result
        known = False
        try:
            for _ in range(25):  # the create answers before the channel is in our app (see `dial`)
                try:
                    await self.ari.request("POST", f"/channels/{self.channel}/dial", {"timeout": ring_seconds})
                    break
                except AriConflict:
                    await asyncio.sleep(0.2)
            deadline = time.monotonic() + ring_seconds + 10
            while (left := deadline - time.monotonic()) > 0:
                event = await self._next(left)
                if isinstance(event, ev.Dial) and event.peer == self.channel:
                    if event.dialstatus == "ANSWER":
                        result.status, result.answered = DialStatus.ANSWER, time.time()
                        return result
                    if event.dialstatus in FAILED_DIAL:
                        result.status, known = DialStatus(event.dialstatus), True
        except CallEnded as ended:
            result.cause = ended.cause or 0
            if not known:
                result.status = CAUSE_TO_STATUS.get(result.cause, DialStatus.CHANUNAVAIL)
            return result
        except AriNotFound:
            self.caller_up = False
            return result
        result.status = result.status if known else DialStatus.NOANSWER
        await self.hangup()
        return result

    async def ring_chain(self, extension: str) -> AsyncIterator[tuple[int, DialResult]]:
        """HOTLINE_DIAL_PATH=dialplan: Asterisk rings the route's chain (ivr.routing.dialplan.chain_dialplan).

        Two requests: subscribe our app to the caller's channel (after StasisEnd Asterisk tells an app
        nothing of a channel it is not subscribed to: its Dial and user events and its hang-up), then one
        `continue` into the chain. Yields (n, result) for each number of the chain as its Dial ends;
        after an answer, `talked_in_dialplan` follows the conversation. Returns when the caller is
        back in Stasis: every number failed — or the loaded dialplan lacks this chain (rendered from
        other routes), then nothing was rung and the caller of `ring_chain` dials over ARI. The caller
        hanging up raises CallEnded, as in every verb.
        """
        await self.ari.subscribe(f"channel:{self.channel}")
        self._in_dialplan = True
        await self.ari.continue_in_dialplan(self.channel, CHAIN_CONTEXT, extension)
        log.info("ring_chain_started", extension=extension)
        n, ringing, since = 0, None, time.time()  # n: the number of the chain ringing now
        while True:
            event = await self._next(None)  # TIMEOUT(absolute) bounds the call; its hang-up reaches us
            if event is None:
                continue
            if isinstance(event, ev.StasisStart) and event.channel_id == self.channel:
                self._in_dialplan = False
                if event.args[1:2] == (CHAIN_MISSING,):
                    log.warning("ring_chain_missing", extension=extension)
                    return
                back = self._back_from_chain(event)
                if back.ok:
                    # Answered and ended while we heard nothing of it (an events gap): its talk, from
                    # the chain's own ANSWEREDTIME. A chain heard answering has returned at the answer.
                    yield n, back
                return
            if event.type == "ChannelUserevent" and event.raw.get("eventname") == CHAIN_RESULT:
                said = event.raw.get("userevent") or {}
                status, cause = str(said.get("status", "")), str(said.get("cause", ""))
                if status in DialStatus.__members__ and status != DialStatus.CANCEL:  # CANCEL: the caller left
                    if ringing is None:
                        # Dial created no channel (no Dial event began): Asterisk could not use the trunk at
                        # all — what the ARI path calls TRUNK_DOWN when it refuses the create (`dial`).
                        ringing = DialResult(DialStatus.TRUNK_DOWN, "", started=since)
                    else:
                        ringing.status = DialStatus(status)
                    ringing.cause = int(cause) if cause.isdigit() else 0
                    yield n, ringing
                n, ringing, since = n + 1, None, time.time()
            elif not isinstance(event, ev.Dial) or (event.raw.get("caller") or {}).get("id") != self.channel:
                continue
            elif event.dialstatus == "":  # the chain's Dial of number n begins
                ringing = DialResult(DialStatus.CHANUNAVAIL, event.peer, started=time.time())
            elif event.dialstatus == DialStatus.ANSWER and ringing is not None:
                ringing.status, ringing.answered = DialStatus.ANSWER, time.time()
                self.bridged_since = time.monotonic()
                yield n, ringing
                return

    async def talked_in_dialplan(self) -> BridgeResult:
        """The conversation Dial bridged in the dialplan, until the department hangs up and the caller
        is back in Stasis (`g`); the caller hanging up raises CallEnded."""
        if not self._in_dialplan:  # back already (`follow_chain` saw the chain end)
            return BridgeResult("callee", self.talk_seconds)
        try:
            while True:
                event = await self._next(None)
                if isinstance(event, ev.StasisStart) and event.channel_id == self.channel:
                    self._in_dialplan = False
                    self.bridged_until = time.monotonic()
                    return BridgeResult("callee", self.talk_seconds)
        finally:
            self.bridged_until = self.bridged_until or time.monotonic()

    async def follow_chain(self, talking_since: float | None) -> DialResult:
        """Take over a caller a dead controller had sent down a ring chain (ivr.call.adopt.adopt_chain).

        Asterisk went on without a controller: the chain rang on, or the citizen is talking to the
        department Dial reached (`talking_since`, Unix seconds: then this returns ANSWER at once and
        `talked_in_dialplan` follows the conversation). Otherwise the chain is followed until a number
        answers, or until the caller is back in Stasis with the chain's last DIALSTATUS. Events of a
        channel out of Stasis reach only an app subscribed to it, so the first request subscribes;
        the second asks for the channel once, since a hang-up before the subscription was told to nobody.
        The caller hanging up raises CallEnded.
        """
        self._in_dialplan = True
        await self.ari.subscribe(f"channel:{self.channel}")
        try:
            await self.ari.channel(self.channel)
        except AriNotFound:
            self.caller_up = False
            raise CallEnded("caller_hangup", 0) from None
        if talking_since is not None:
            self.bridged_since = time.monotonic() - max(0.0, time.time() - talking_since)
            return DialResult(DialStatus.ANSWER, "", started=talking_since, answered=talking_since)
        while True:
            event = await self._next(None)  # TIMEOUT(absolute) bounds the call; its hang-up reaches us
            if isinstance(event, ev.StasisStart) and event.channel_id == self.channel:
                self._in_dialplan = False
                return self._back_from_chain(event)
            if (
                isinstance(event, ev.Dial)
                and event.dialstatus == DialStatus.ANSWER
                and (event.raw.get("caller") or {}).get("id") == self.channel
            ):
                self.bridged_since = time.monotonic()
                return DialResult(DialStatus.ANSWER, event.peer, started=time.time(), answered=time.time())

    def _back_from_chain(self, event: ev.StasisStart) -> DialResult:
        """The chain's last result, from the caller's return: Stasis(app, ringchain, DIALSTATUS, ANSWEREDTIME).
        ANSWER: the talk took place and ended before we were listening; its length is ANSWEREDTIME."""
        back = [*event.args[1:3], "", ""]
        status, answered = back[0], back[1]
        if status == DialStatus.ANSWER:
            self.bridged_until = time.monotonic()
            self.bridged_since = self.bridged_until - (int(answered) if answered.isdigit() else 0)
            return DialResult(DialStatus.ANSWER, "", started=time.time(), answered=time.time())
        known = status in DialStatus.__members__
        return DialResult(DialStatus(status) if known else DialStatus.CHANUNAVAIL, "", started=time.time())

    async def _until_in_stasis(self, out: str, result: DialResult) -> bool:
        """Wait for the created channel's StasisStart (a dial was refused: not yet in Stasis).

        False (result says why) if the channel went away or never arrived.
        """
        deadline = time.monotonic() + STASIS_WAIT_S
        while (left := deadline - time.monotonic()) > 0:
            event = await self._next(left)
            if event is None:
                break
            if event.channel_id != out:
                continue
            if isinstance(event, ev.StasisStart):
                return True
            if isinstance(event, (ev.ChannelHangupRequest, ev.ChannelDestroyed)):
                if result.leg_hung_up(event, status_known=False):
                    return False
        log.warning("dial_not_in_stasis", channel=out, waited=STASIS_WAIT_S)
        return False

    async def bridge(self, other: str) -> BridgeResult:
        """Connect the caller with `other` until either hangs up; then the other side is hung up."""
        bridge = self._next_id("br")
        await self.ari.create_bridge(bridge)
        self._bridges.add(bridge)
        await self.ari.add_to_bridge(bridge, [self.channel, other])
        self.bridged_since = time.monotonic()
        try:
            while True:  # the caller hanging up raises CallEnded out of here
                event = await self._next(None)
                if (
                    event is not None
                    and event.channel_id == other
                    and isinstance(event, (ev.StasisEnd, ev.ChannelDestroyed, ev.ChannelHangupRequest))
                ):
                    cause = event.cause if isinstance(event, (ev.ChannelDestroyed, ev.ChannelHangupRequest)) else 0
                    self.bridged_until = time.monotonic()
                    return BridgeResult("callee", self.talk_seconds, cause)
        finally:
            self.bridged_until = self.bridged_until or time.monotonic()

    async def resume_talk(self, bridge: str, legs: Sequence[str], since: float) -> BridgeResult:
        """Take over a conversation a dead controller bridged (ivr.call.adopt), until one side leaves.

        `since` (Unix seconds) is when it began. Returns when the last leg hung up; the caller
        hanging up raises CallEnded, as in `bridge`. Events are dispatched only after the
        start-up resync, so none is missed between the listing and this registration, but a side
        gone before the listing must be noticed here: each is asked for once.
        """
        self._bridges.add(bridge)
        for leg in legs:
            self._register(leg, self)
            self._outbound.add(leg)
            self._taken.append(leg)
        self.bridged_since = time.monotonic() - max(0.0, time.time() - since)
        for channel in (self.channel, *legs):
            try:
                await self.ari.channel(channel)
            except AriNotFound:
                raw = {"synthetic": True, "channel": {"id": channel}}
                self.queue.put_nowait(ev.ChannelDestroyed("ChannelDestroyed", raw, channel, 0, "gone before adoption"))
        up = set(legs)
        cause = 0
        try:
            while up:  # the caller hanging up raises CallEnded out of here
                event = await self._next(None)
                if (
                    event is not None
                    and event.channel_id in up
                    and isinstance(event, (ev.StasisEnd, ev.ChannelDestroyed, ev.ChannelHangupRequest))
                ):
                    up.discard(event.channel_id)
                    if isinstance(event, (ev.ChannelDestroyed, ev.ChannelHangupRequest)):
                        cause = event.cause
            self.bridged_until = time.monotonic()
            return BridgeResult("callee", self.talk_seconds, cause)
        finally:
            self.bridged_until = self.bridged_until or time.monotonic()

    async def talk_with(self, legs: Sequence[str], *, hold: bool = False) -> None:
        """The caller (or, on `hold`, only the legs) in the call's bridge; legs' keys absorbed there."""
        if self._talk is None:
            self._talk = self._next_id("talk")
            await self.ari.create_bridge(self._talk, dtmf_events=True)  # the operator's feature codes
            self._bridges.add(self._talk)
            self.bridged_since = self.bridged_since or time.monotonic()
        wanted = {leg for leg in legs if leg in self._outbound}
        if not hold and legs:
            wanted.add(self.channel)
        for channel in self._members - wanted:
            await self._quietly(self.ari.remove_from_bridge(self._talk, channel))
            self._members.discard(channel)
        if hold and not self._held:
            self._held = True
            await self._quietly(self.ari.start_moh(self.channel, HOLD_CLASS))
        elif not hold and self._held:
            await self._quietly(self.ari.stop_moh(self.channel))
            self._held = False
        for channel in sorted(wanted - self._members, key=lambda c: c != self.channel):
            await self.ari.add_to_bridge(self._talk, [channel], absorb_dtmf=channel != self.channel)
            self._members.add(channel)

    async def listen(self, legs: Collection[str], command: Awaitable[T]) -> LegEvent | T:
        """A key or hang-up of one of `legs` (one already seen first), or `command`'s result."""
        if not self.caller_up:
            _close(command)
            raise CallEnded("caller_hangup", self.hangup_cause)
        task = asyncio.ensure_future(command)
        try:
            while True:
                while self._leg_events:
                    event = self._leg_events.popleft()
                    if event.channel in legs:
                        return event
                if task.done():
                    return task.result()
                getter = asyncio.ensure_future(self.queue.get())
                done, _ = await asyncio.wait({task, getter}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    self._absorb(getter.result())  # the caller leaving raises CallEnded here
                else:
                    getter.cancel()
        finally:
            if not task.done():
                task.cancel()

    async def snoop(self, target: str, *, spy: str, whisper: str) -> str | None:
        """A snoop channel on `target` (another call's channel) in our app, one of this call's legs:
        it carries what `target` hears and says (`spy`) and speaks into it (`whisper`); a supervisor
        listening in (ivr.operators.supervise). None if `target` is gone or it never entered our app.
        """
        snoop = self._next_id("out")  # an "out" id: close() forgets it with the dialled legs
        self._register(snoop, self)
        self._outbound.add(snoop)
        params = {"spy": spy, "whisper": whisper, "app": self.ari.settings.app, "appArgs": f"snoop,{self.id}"}
        try:
            await self.ari.request("POST", f"/channels/{target}/snoop", {**params, "snoopId": snoop})
        except AriError as exc:  # 404: the channel snooped on hung up meanwhile
            log.info("snoop_refused", target=target, error=str(exc))
            self._outbound.discard(snoop)
            return None
        deadline = time.monotonic() + STASIS_WAIT_S
        while (left := deadline - time.monotonic()) > 0:
            event = await self._next(left)
            if event is None:
                break
            if event.channel_id == snoop and isinstance(event, ev.StasisStart):
                return snoop
            if event.channel_id == snoop and isinstance(event, (ev.ChannelHangupRequest, ev.ChannelDestroyed)):
                return None
        await self._quietly(self.ari.hangup(snoop))
        return None

    async def drop(self, leg: str) -> None:
        if self._talk is not None and leg in self._members:
            await self._quietly(self.ari.remove_from_bridge(self._talk, leg))
            self._members.discard(leg)
        if leg in self._outbound:
            await self._quietly(self.ari.hangup(leg))

    @property
    def talk_seconds(self) -> float:
        if self.bridged_since is None:
            return 0.0
        return round((self.bridged_until or time.monotonic()) - self.bridged_since, 3)

    async def reconcile(self) -> None:
        """After an events gap (a reconnect): learn from Asterisk what ended while we were away.

        Asterisk does not replay events sent while no WebSocket was connected, so a prompt that
        finished, or a dialled line that answered or hung up, during the gap would leave this
        call's coroutine waiting for an event that never comes. We ask for the current state
        of what the coroutine may be waiting on and queue the event it missed. A real event
        arriving as well does no harm: every verb matches events by id and ignores the rest.
        """
        for playback in list(self._playing):
            try:
                await self.ari.request("GET", f"/playbacks/{playback}")
            except AriNotFound:
                self._playing.discard(playback)
                self.queue.put_nowait(ev.PlaybackFinished("PlaybackFinished", {"synthetic": True}, playback, "done"))
            except AriError as exc:
                log.warning("reconcile_failed", playback=playback, error=str(exc))
        for out in list(self._outbound):
            raw = {"synthetic": True, "channel": {"id": out}}
            try:
                channel = await self.ari.channel(out)
            except AriNotFound:
                self.queue.put_nowait(ev.ChannelDestroyed("ChannelDestroyed", raw, out, 0, "gone during events gap"))
                continue
            except AriError as exc:
                log.warning("reconcile_failed", channel=out, error=str(exc))
                continue
            if channel.get("state") == "Up" and self.bridged_since is None:
                self.queue.put_nowait(ev.Dial("Dial", {"synthetic": True, "peer": {"id": out}}, out, "ANSWER"))
        if self._in_dialplan:
            await self._reconcile_chain()
        log.info("call_reconciled", playing=len(self._playing), outbound=len(self._outbound))

    async def _reconcile_chain(self) -> None:
        """A caller in its ring chain may have come back to Stasis during the gap (the department hung
        up, or nobody answered): the StasisStart was lost, and only the channel's dialplan tells."""
        try:
            channel = await self.ari.channel(self.channel)
        except AriNotFound:
            return  # its hang-up: the resync's StasisEnd for channels gone ends the call
        except AriError as exc:
            log.warning("reconcile_failed", channel=self.channel, error=str(exc))
            return
        where = channel.get("dialplan") or {}
        app, *args = str(where.get("app_data", "")).split(",")
        if where.get("app_name") == "Stasis" and app == self.ari.settings.app and args[:1] == [CHAIN_BACK]:
            raw = {"synthetic": True, "channel": {"id": self.channel}, "args": args}
            self.queue.put_nowait(ev.StasisStart("StasisStart", raw, self.channel, tuple(args)))

    def keep_for_handoff(self) -> None:
        """The caller will be handed to the dialplan: the call's own unwinding must not hang up."""
        self._handing_off = True

    async def hangup(self) -> None:
        # A caller in its ring chain is the dialplan's: it may be talking to a department (a controller
        # stopping or failing does not cut that conversation); the dialplan hangs up when it ends.
        if self.caller_up and not self._handing_off and not self._in_dialplan:
            self.caller_up = False
            await self._quietly(self.ari.hangup(self.channel))

    async def release_to(self, context: str, extension: str) -> None:
        """Hand the caller back to the dialplan (fallback), leaving Stasis without hanging up."""
        if not self.caller_up:
            return
        self.caller_up = False
        # Asterisk runs a 'continue' only after the channel's current playback: a menu prompt
        # would hold the caller in Stasis for its whole length. Stop it first — and again
        # until the channel has really moved on, since a play request still in flight when we
        # were interrupted can start a prompt after our first stop.
        for attempt in range(10):
            for playback in list(self._playing):
                await self._quietly(self.ari.stop_playback(playback))
            if attempt == 0:
                await self._quietly(self.ari.continue_in_dialplan(self.channel, context, extension))
            await asyncio.sleep(0.1)
            try:
                where = await self.ari.channel(self.channel)
            except AriError:
                return  # gone (hung up): nothing left to hand over
            if (where.get("dialplan") or {}).get("context") == context:
                return
        log.warning("release_not_confirmed", context=context)

    async def cleanup(self) -> None:
        """Hang up what we dialled and destroy our bridges; 404 means it is already gone."""
        for channel in list(self._outbound):
            await self._quietly(self.ari.hangup(channel))
        for bridge in list(self._bridges):
            await self._quietly(self.ari.destroy_bridge(bridge))
        self._outbound.clear()
        self._bridges.clear()

    def close(self) -> None:
        """Forget this call's channel ids in the dispatcher (after cleanup)."""
        self._unregister(self.channel)
        for leg in self._taken:
            self._unregister(leg)
        seq = self._seq
        for n in range(1, seq + 1):
            self._unregister(f"{self.id}-out{n}")

    async def _start_playback(self, playback: str, media: list[str]) -> None:
        self._playing.add(playback)
        await self.ari.play(self.channel, playback, media)
        if self.on_first_sound is not None:
            self.on_first_sound()
            self.on_first_sound = None

    async def _quietly(self, coro: Awaitable[object]) -> None:
        await quietly(coro)


def playback_id(channel: str, slot: int) -> str:
    return f"{channel}-pb{slot}"


async def stop_left_prompts(ari: AriClient, channel: str) -> int:
    """Stop whatever a dead controller left playing on `channel`; the slot a new call should start at.

    Every slot is stopped (at once: this runs for each waiting caller at a restart); the next slot
    is the one after the last still playing, so a late PlaybackFinished of a stopped prompt can
    never be taken for the end of a new one.
    """
    slots = range(PLAYBACK_SLOTS)
    stopped = await asyncio.gather(*(_stopped(ari, playback_id(channel, n)) for n in slots))
    playing = [n for n in slots if stopped[n]]
    return (max(playing) + 1) % PLAYBACK_SLOTS if playing else 0


async def _stopped(ari: AriClient, playback: str) -> bool:
    try:
        await ari.stop_playback(playback)
    except AriNotFound:
        return False
    except AriError as exc:
        log.warning("stop_left_prompt_failed", playback=playback, error=str(exc))
        return False
    return True


def _close(awaitable: Awaitable[object]) -> None:
    """Close a coroutine never awaited (it would warn otherwise)."""
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()


async def quietly(coro: Awaitable[object]) -> None:
    """Await a best-effort ARI request (cleanup, hand-over): 404 means already done."""
    try:
        await coro
    except AriNotFound:
        pass  # already gone: the goal of a cleanup call is met
    except AriError as exc:
        log.warning("ari_cleanup_failed", error=str(exc))
