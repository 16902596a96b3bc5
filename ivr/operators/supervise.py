"""A supervisor listens in on, whispers to, or barges into the call at an operator's seat (班长监听/耳语/强插).

Everything goes through ARI snoop on the operator's leg — the channel between Asterisk and the seat
phone — never through the call's own bridge, so the call's coroutine (ivr.call.transfer) neither knows
nor cares, and a supervision can never break the citizen's call:

    listen    spy=both, whisper=none   the supervisor hears operator and citizen; nobody hears them
    whisper   spy=both, whisper=out    ... and speaks to the operator only (the citizen hears nothing)
    barge     spy=both, whisper=both   ... and speaks into the call: operator and citizen both hear

The supervisor's phone is the phone of a seat of routes.yaml (the console account's `seat`:
`hotline operators add boss --role supervisor --seat seat-9`). That seat must be signed out or paused,
so the queue never offers it a citizen while it is the supervisor's ear. The controller rings it; once
answered, it is bridged with the snoop channel. Asking another mode while supervising the same seat
swaps the snoop channel and keeps the phone up; asking "stop", or hanging the phone up, ends it; the
operator leaving the call (it ended, or was transferred on) hangs the supervisor up as well.

`Supervisors.ask` decides (what is refused, and why, with an HTTP status), and `run_on_ari` does it
with a real phone; the console (ivr.console.web) audits both the ask and the end.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import structlog

from ivr.call.ari_call import AriCall
from ivr.call.control import LegEvent
from ivr.errors import AriError, AriNotFound, CallEnded, TransferRefused
from ivr.operators.desk import Desk
from ivr.operators.queue import SeatPool

if TYPE_CHECKING:
    from ivr.ari.client import AriClient
    from ivr.call.dispatcher import Dispatcher

log = structlog.get_logger("ivr.operators.supervise")

Mode = Literal["listen", "whisper", "barge"]
# ARI snoop's (spy, whisper) directions on the operator's leg: "out" is towards the seat phone.
SNOOP: dict[str, tuple[str, str]] = {
    "listen": ("both", "none"),
    "whisper": ("both", "out"),
    "barge": ("both", "both"),
}
MODES: tuple[str, ...] = tuple(SNOOP)
PHONE_RING_S = 20
SNOOP_GONE_S = 2.0  # how long a swapped-out snoop channel is watched for its end (normally one audio frame)
SNOOP_GONE_POLL_S = 0.1
# Seat states in which a seat's phone may serve as a supervisor's ear: the queue offers them no call.
PHONE_STATES = ("signed_out", "paused")


@dataclass
class Supervision:
    """One supervisor on one seat's call, from the ask until the supervisor's phone hangs up."""

    id: str
    supervisor: str  # the console account
    seat: str  # the operator's seat listened to
    call_id: str
    leg: str  # the operator's channel, snooped on
    phone_seat: str  # the supervisor's phone: a seat of routes.yaml
    phone: str  # its dial string
    mode: str
    asked_at: float = field(default_factory=time.time)
    answered_at: float | None = None
    outcome: str = ""  # why it ended: supervisor_hung_up, call_left, phone_<status>, stopped, failed
    modes: list[str] = field(default_factory=list)  # every mode used, in order
    changes: asyncio.Queue[str] = field(default_factory=asyncio.Queue)  # a new mode, or "stop"
    gone: asyncio.Event = field(default_factory=asyncio.Event)  # the operator left the call (Desk.left)
    on_end: Callable[[Supervision], None] | None = None

    def detail(self) -> dict[str, object]:
        return {
            "supervision": self.id,
            "supervisor": self.supervisor,
            "seat": self.seat,
            "call_id": self.call_id,
            "phone_seat": self.phone_seat,
            "modes": self.modes,
            "asked_at": round(self.asked_at, 3),
            "answered_at": round(self.answered_at, 3) if self.answered_at else None,
            "outcome": self.outcome,
        }


Runner = Callable[[Supervision], Awaitable[None]]


class Supervisors:
    """Who supervises which seat now; asks checked here, done by `runner` (run_on_ari in the controller)."""

    def __init__(self, desk: Desk, seats: SeatPool, runner: Runner) -> None:
        self.desk = desk
        self.seats = seats
        self._runner = runner
        self._active: dict[str, Supervision] = {}  # by supervisor account
        self._tasks: set[asyncio.Task[None]] = set()

    def active(self) -> list[Supervision]:
        return list(self._active.values())

    def ask(
        self,
        supervisor: str,
        phone_seat: str,
        seat: str,
        mode: str,
        call_id: str = "",
        on_end: Callable[[Supervision], None] | None = None,
    ) -> Supervision:
        """Start (or change the mode of, or stop) `supervisor`'s supervision of the call at `seat`.

        TransferRefused with an HTTP status, nothing changed: an unknown mode or seat (400/404), a seat
        with no call or a call that ended (409), no phone or a phone seat that may be offered calls (409).
        """
        if mode not in (*MODES, "stop"):
            raise TransferRefused(f"mode must be one of {', '.join(MODES)} or stop; got {mode[:20]!r}")
        current = self._active.get(supervisor)
        if mode == "stop":
            if current is None or current.seat != seat:
                raise TransferRefused(f"{supervisor} is not supervising seat {seat[:40]}", 409)
            current.changes.put_nowait("stop")
            return current
        views = {v.name: v for v in self.seats.snapshot().seats}
        if seat not in views:
            raise TransferRefused(f"no seat {seat[:40]!r} (seats: {', '.join(views) or 'none'})", 404)
        live = self.desk.on_seat(seat)
        if call_id and (live is None or live.call_id != call_id):
            if self.desk.has_ended(call_id):
                raise TransferRefused(f"call {call_id[:40]} has already ended", 409)
            raise TransferRefused(f"call {call_id[:40]} is not at seat {seat} now", 409)
        if live is None or not live.leg:
            raise TransferRefused(f"seat {seat} has no call to {mode} (its operator is on none)", 409)
        if current is not None:
            if current.seat != seat or current.call_id != live.call_id:
                raise TransferRefused(
                    f"{supervisor} is supervising seat {current.seat} now: stop that first (or hang up)", 409
                )
            current.changes.put_nowait(mode)  # the same call: the phone stays up, the snoop is swapped
            return current
        phone = views.get(phone_seat)
        if not phone_seat:
            raise TransferRefused(
                f"{supervisor} has no phone: give the account a seat of routes.yaml (hotline operators seat"
                f" {supervisor} SEAT)",
                409,
            )
        if phone is None:
            raise TransferRefused(f"{supervisor}'s phone, seat {phone_seat[:40]}, is not a seat of routes.yaml", 409)
        if phone_seat == seat:
            raise TransferRefused(f"seat {seat} is the supervisor's own phone", 409)
        if phone.call_id is not None or phone.presence not in PHONE_STATES:
            raise TransferRefused(
                f"the supervisor's phone, seat {phone_seat}, is {phone.status}: sign it out or pause it first"
                " (a ready seat would be offered citizens)",
                409,
            )
        supervision = Supervision(
            f"sup-{uuid.uuid4().hex[:10]}",
            supervisor,
            seat,
            live.call_id,
            live.leg,
            phone_seat,
            phone.dial_string,
            mode,
            modes=[mode],
            gone=live.gone,
            on_end=on_end,
        )
        self._active[supervisor] = supervision
        task = asyncio.get_running_loop().create_task(self._run(supervision), name=f"supervise-{supervision.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: self._ended(supervision))
        log.info("supervision_asked", supervisor=supervisor, seat=seat, call_id=live.call_id, mode=mode)
        return supervision

    async def _run(self, supervision: Supervision) -> None:
        try:
            await self._runner(supervision)
        except Exception:
            supervision.outcome = supervision.outcome or "failed"
            log.exception("supervision_failed", supervision=supervision.id)

    def _ended(self, supervision: Supervision) -> None:
        """The task is done (cancelled before it ran, too): forget it, and say how it ended."""
        if self._active.get(supervision.supervisor) is supervision:
            del self._active[supervision.supervisor]
        supervision.outcome = supervision.outcome or "stopped"
        log.info("supervision_ended", **supervision.detail())
        if supervision.on_end is not None:
            supervision.on_end(supervision)

    async def close(self) -> None:
        """Hang every supervisor up (the controller stops)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def run_on_ari(ari: AriClient, dispatcher: Dispatcher, supervision: Supervision, caller_id: str) -> None:
    """Ring the supervisor's phone, bridge it with a snoop on the operator's leg, until one side is gone."""
    phone = AriCall(
        ari,
        supervision.id,
        f"{supervision.id}-phone",
        register=dispatcher.register,
        unregister=dispatcher.unregister,
    )
    try:
        rang = await phone.ring(supervision.phone, PHONE_RING_S, caller_id=caller_id, label="supervisor")
        if not rang.ok:
            supervision.outcome = f"phone_{rang.status.value.lower()}"
            return
        supervision.answered_at = time.time()
        snoop: str | None = None
        mode = supervision.mode
        while True:
            spy, whisper = SNOOP[mode]
            fresh = await phone.snoop(supervision.leg, spy=spy, whisper=whisper)
            if fresh is None:
                supervision.outcome = "call_left"  # the operator's leg is gone: the call ended or moved on
                return
            await phone.talk_with([fresh])  # the phone now hears (and speaks) through the new snoop only
            if snoop is not None:
                gone = await _hang_up_snoop(phone.ari, snoop)
                log.info("supervision_snoop_swapped", supervision=supervision.id, old=snoop, new=fresh, gone=gone)
            snoop = fresh
            log.info("supervision_connected", supervision=supervision.id, mode=mode, seat=supervision.seat)
            got = await _next_mode(phone, snoop, supervision, mode)
            if got is None:
                supervision.outcome = "call_left"  # the operator's leg is gone: the call ended or moved on
                return
            if got == "stop":
                supervision.outcome = "stopped"
                return
            mode = supervision.mode = got
            supervision.modes.append(mode)
    except CallEnded:
        supervision.outcome = supervision.outcome or "supervisor_hung_up"
    except AriError as exc:
        supervision.outcome = supervision.outcome or "failed"
        log.warning("supervision_ari_failed", supervision=supervision.id, error=str(exc))
    finally:
        await phone.hangup()
        await phone.cleanup()
        phone.close()


async def _hang_up_snoop(ari: AriClient, snoop: str) -> bool:
    """Hang a swapped-out snoop channel up; whether Asterisk has destroyed it within SNOOP_GONE_S.

    Asterisk takes a snoop's audiohooks off the snooped leg only when the next audio frame passes on
    that leg (asterisk/asterisk#978): on a live call, where the operator's phone sends RTP every 20 ms,
    that is at once; on a leg that carries no audio at all, the snoop stays (out of every bridge,
    silent) until the leg ends, and goes with it. Asking again changes nothing, so it is asked once.
    """
    try:
        await ari.hangup(snoop)
    except AriNotFound:
        return True
    except AriError as exc:
        log.warning("supervision_snoop_hangup_failed", snoop=snoop, error=str(exc))
        return False
    deadline = time.monotonic() + SNOOP_GONE_S
    while time.monotonic() < deadline:
        await asyncio.sleep(SNOOP_GONE_POLL_S)
        try:
            await ari.channel(snoop)
        except AriNotFound:
            return True
        except AriError:
            break
    log.warning("supervision_snoop_outlived_hangup", snoop=snoop, why="no audio passed on the operator's leg")
    return False


async def _next_mode(phone: AriCall, snoop: str, supervision: Supervision, mode: str) -> str | None:
    """The next mode asked (or "stop") other than `mode`; None when the operator is off the call."""
    while True:
        # The snoop channel ends with the operator's leg; the desk saying the operator left is the same news,
        # sooner when the leg stays up (an operator's leg that leaves by transfer is hung up just after).
        got = await phone.listen([snoop], _asked(supervision))
        if isinstance(got, LegEvent):
            if got.key is None:
                return None
            continue  # keys on the snoop channel mean nothing
        if got is None:
            return None
        if got != mode:
            return got


async def _asked(supervision: Supervision) -> str | None:
    """The next change asked, or None once the operator has left the call."""
    change = asyncio.ensure_future(supervision.changes.get())
    gone = asyncio.ensure_future(supervision.gone.wait())
    try:
        done, _ = await asyncio.wait({change, gone}, return_when=asyncio.FIRST_COMPLETED)
        return change.result() if change in done else None
    finally:
        change.cancel()
        gone.cancel()
