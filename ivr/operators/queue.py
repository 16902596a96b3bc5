"""The 12345 centre's operator queue: callers waiting in one line for the human operators.

Callers who need a person ('0', a menu left silent, a department that did not answer) join
ONE first-come-first-served line. The operators sit at seats (SIP endpoints); whenever a seat
is free and someone is waiting, the pool reserves the seat for the first caller in line who
has none, and that caller's flow rings it. Pure asyncio state, no ARI: the call flow does the
ringing and the prompts, this module only decides who gets which seat and when.

    async with pool.wait_turn(call_id, max_wait_s=120) as turn:
        while turn.seat is None and not turn.timed_out:
            ...play "您前面还有{turn.position - 1}位"...
            await turn.changed()
        seat = await turn.offered()            # QueueTimeout after max_wait_s
        if <rang seat.dial_string and it answered>:
            turn.connected(seat)               # busy until release() or leaving the block
        else:
            turn.no_answer(seat)               # still first in line; the next seat is ours

Rules, and why:
- Seats are reserved eagerly, at the moment one becomes free, never inside `offered()`. A call
  flow may cancel `offered()` (a timeout to play the next position prompt) at any instant; the
  seat is then still reserved and the next `offered()` returns it. Nothing is lost in a race.
- The longest-idle seat goes first (ties by configured order), so work spreads evenly.
- A seat that rang unanswered keeps its idle-since (its operator took no call) but is on
  penalty for `penalty_s`: offered only when no other seat is idle, so the caller tries a
  different operator next. The caller keeps their place in line meanwhile.
- A position counts everyone still in line ahead, including a caller whose seat is ringing:
  if that seat does not answer they are first again, so "您前面还有N位" never goes backwards.
- Leaving the `async with` (hangup = exception, or done) takes the caller out of the line and
  frees their seat at once; cleanup is synchronous, so a cancelled task cannot skip it.
- Only a seat whose operator is signed in and ready is offered a call. A paused (小休) or
  signed-out seat is never offered one; after each call a seat is in after-call work (话后处理)
  for `wrap_up_s`, then ready again (or sooner, when its operator says "ready"). Pausing or
  signing out during a call takes effect when the call ends: a call is never cut by it.
- A caller sent back to the line after a failed transfer joins at the FRONT (`front=True`).
- All time comes from the injected `clock` and `sleep` (`time.monotonic` and `asyncio.sleep`
  by default, which agree); tests drive both with a fake. No threads, no module state.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Literal

import structlog

from ivr.errors import QueueFull, QueueTimeout, SeatStateError

__all__ = ["QueueFull", "QueueTimeout", "SeatChange", "SeatPool", "SeatStateError", "Turn"]
from ivr.operators.seats import Seat

log = structlog.get_logger("ivr.operators.queue")

SeatState = Literal["idle", "reserved", "busy", "penalty"]
# Where the operator at a seat stands (the seat states of issue 17), apart from the call it holds.
Presence = Literal["signed_out", "ready", "paused", "wrap_up"]
PRESENCES: tuple[Presence, ...] = ("signed_out", "ready", "paused", "wrap_up")
# What `hotline_seats{state=…}` counts: the presence, with "busy" for a seat ringing or in a call.
SEAT_STATUSES = ("signed_out", "ready", "busy", "paused", "wrap_up")


@dataclass(frozen=True)
class SeatChange:
    """One change of a seat's presence, as told to the pool's listeners (call log, metrics)."""

    seat: str
    state: Presence
    reason: str
    by: str  # "api", "dtmf", "cli", "pool" (wrap-up ended, a pending change applied)
    at: float  # wall-clock time (time.time())
    pending: bool = False  # asked during a call: applied when it ends


_CounterName = Literal["offered", "answered", "no_answer", "abandoned", "timed_out", "rejected"]


@dataclass(frozen=True)
class SeatView:
    """One seat as `SeatPool.snapshot()` saw it."""

    name: str
    dial_string: str
    state: SeatState
    idle_since: float | None  # when it last became free; None while reserved or busy
    penalty_until: float | None  # set while a no-answer penalty runs (state "penalty")
    call_id: str | None  # the call it is reserved for or connected to
    retiring: bool  # removed by set_seats(): finishing its call, gets no new offers
    presence: Presence = "ready"
    reason: str = ""  # why paused
    after_call: Presence | None = None  # asked during the call: applied when it ends

    @property
    def status(self) -> str:
        """One of SEAT_STATUSES: busy while ringing or in a call, else the presence."""
        return "busy" if self.call_id is not None else self.presence


@dataclass(frozen=True)
class Counters:
    """Totals since the pool was made, for metrics."""

    offered: int = 0  # seats reserved for a caller (each ring attempt counts)
    answered: int = 0  # connected() calls
    no_answer: int = 0  # no_answer() calls
    abandoned: int = 0  # callers who left the line before being connected (not timed out)
    timed_out: int = 0  # callers taken out of the line by max_wait_s
    rejected: int = 0  # callers refused because the line was full


@dataclass(frozen=True)
class PoolSnapshot:
    at: float
    waiting: int  # callers in line (positions 1..waiting), including those whose seat is ringing
    queue: tuple[str, ...]  # their call ids, first in line first
    seats: tuple[SeatView, ...]  # configured order, then retiring seats
    counters: Counters


@dataclass
class _SeatSlot:
    seat: Seat
    order: int
    idle_since: float
    penalty_until: float | None = None
    holder: Turn | None = None
    busy: bool = False  # connected; otherwise a holder means reserved
    retiring: bool = False
    presence: Presence = "ready"
    reason: str = ""
    after_call: Presence | None = None
    after_reason: str = ""
    wrap_timer: asyncio.Task[None] | None = None

    def penalized(self, now: float) -> bool:
        return self.penalty_until is not None and self.penalty_until > now


class Turn:
    """One caller's place in the line; made by `SeatPool.wait_turn`, valid inside its block."""

    def __init__(self, pool: SeatPool, call_id: str, joined_at: float, max_wait_s: float | None) -> None:
        self.call_id = call_id
        self.max_wait_s = max_wait_s
        self._pool = pool
        self._joined_at = joined_at
        self.joined_wall = time.time()  # the cluster's one line orders callers of every node by it
        self.front = False
        self._deadline = None if max_wait_s is None else joined_at + max_wait_s
        self._position = 0
        self._seat: Seat | None = None  # reserved for us, or connected
        self._connected_at: float | None = None
        self._left_at: float | None = None  # out of the line without being connected
        self._timed_out = False
        self._abandoned = False
        self._version = 0  # bumped on every change a waiter should see
        self._seen = 0  # the version changed() last returned at
        self._event = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None

    # -- what the call flow reads ---------------------------------------------------------
    @property
    def position(self) -> int:
        """1 = next in line; 0 once out of the line (connected, timed out or left)."""
        return self._position

    @property
    def seat(self) -> Seat | None:
        """The seat reserved for this caller (to ring) or connected to; None otherwise."""
        return self._seat

    @property
    def waited_seconds(self) -> float:
        """Time in line: until connected, until leaving it, or until now while still waiting."""
        end = self._connected_at if self._connected_at is not None else self._left_at
        if end is None:
            end = self._pool._clock()
        return round(end - self._joined_at, 3)

    @property
    def abandoned(self) -> bool:
        """True if the caller left the line before being connected (a time-out is not abandonment)."""
        return self._abandoned

    @property
    def timed_out(self) -> bool:
        return self._timed_out

    @property
    def waiting(self) -> bool:
        """Still in line (with or without a seat ringing)."""
        return self._connected_at is None and self._left_at is None

    # -- waiting ------------------------------------------------------------------------------
    async def changed(self) -> None:
        """Return once the position changed, a seat was offered or the wait timed out.

        Changes since the previous return count, so one made while a prompt was playing is not
        missed. Returns at once when the caller is out of the line (nothing more will change).
        """
        while self._version == self._seen and self.waiting:
            await self._event.wait()
        self._seen = self._version

    async def offered(self) -> Seat:
        """The seat reserved for this caller: it is first among those without one and a seat is idle.

        Raises QueueTimeout once max_wait_s passed without a seat. Cancelling this leaves the
        pool as it was: a seat reserved meanwhile stays reserved for the next call.
        """
        while True:
            if self._timed_out:
                raise QueueTimeout(f"no operator within {self.max_wait_s:g} s")
            if not self.waiting:
                raise RuntimeError(f"call {self.call_id} is no longer waiting for a seat")
            if self._seat is not None:
                return self._seat
            await self._event.wait()

    # -- outcomes of ringing the seat ---------------------------------------------------------
    def connected(self, seat: Seat) -> None:
        """The operator answered: the caller leaves the line and the seat is busy until released."""
        self._pool._connected(self, self._own(seat))

    def no_answer(self, seat: Seat) -> None:
        """The seat did not answer: it goes on penalty; the caller keeps their place for the next seat."""
        self._pool._no_answer(self, self._own(seat))

    def release(self, seat: Seat) -> None:
        """The conversation is over: the seat is free from now. Leaving the block does the same."""
        if self._connected_at is None or self._seat is None or self._seat.name != seat.name:
            raise ValueError(f"seat {seat.name} is not connected to call {self.call_id}")
        self._pool._release(self)

    def _own(self, seat: Seat) -> Seat:
        if not self.waiting or self._seat is None or self._seat.name != seat.name:
            raise ValueError(f"seat {seat.name} is not reserved for call {self.call_id}")
        return self._seat

    def _notify(self) -> None:
        self._version += 1
        self._event.set()
        self._event = asyncio.Event()


class SeatPool:
    """The operator seats and the one line of callers waiting for them."""

    def __init__(
        self,
        seats: Iterable[Seat],
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_queue: int = 50,
        penalty_s: float = 10.0,
        wrap_up_s: float = 0.0,
        shared: bool = False,
    ) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self.max_queue = max_queue
        self.penalty_s = penalty_s
        self.wrap_up_s = wrap_up_s
        # On the cluster profile the one line across nodes decides who gets which seat
        # (ivr.operators.shared): this pool then offers seats only through offer().
        self.shared = shared
        self.listeners: list[Callable[[SeatChange], None]] = []  # told of every presence change
        self._clock = clock
        self._sleep = sleep
        self._slots: dict[str, _SeatSlot] = {}
        self._queue: list[Turn] = []
        self._active: set[str] = set()  # call ids inside a wait_turn block
        self._counts: dict[_CounterName, int] = {}
        self.set_seats(seats)

    @property
    def counters(self) -> Counters:
        return Counters(**self._counts)

    # -- joining and leaving --------------------------------------------------------------------
    @asynccontextmanager
    async def wait_turn(
        self, call_id: str, *, max_wait_s: float | None = None, front: bool = False
    ) -> AsyncIterator[Turn]:
        """Join the end of the line (the front with `front`) for the block's duration; QueueFull if it is full."""
        turn = self._join(call_id, max_wait_s, front)
        try:
            yield turn
        finally:
            self._leave(turn)

    def _join(self, call_id: str, max_wait_s: float | None, front: bool = False) -> Turn:
        if call_id in self._active:
            raise ValueError(f"call {call_id} is already in the operator queue")
        if len(self._queue) >= self.max_queue:
            self._count("rejected")
            log.warning("operator_queue_full", call_id=call_id, waiting=len(self._queue))
            raise QueueFull(f"{len(self._queue)} callers already waiting for an operator")
        now = self._clock()
        turn = Turn(self, call_id, now, max_wait_s)
        turn.front = front
        self._active.add(call_id)
        if front:  # back from a transfer nobody answered: they have waited already
            self._queue.insert(0, turn)
            turn._position = 1
            self._reposition()
        else:
            self._queue.append(turn)
            turn._position = len(self._queue)  # the starting point, not a change to report
        log.info("operator_queue_joined", call_id=call_id, position=turn.position, front=front)
        self._dispatch()
        if turn._deadline is not None:
            turn._timer = asyncio.get_running_loop().create_task(
                self._expire_at(turn, turn._deadline), name=f"operator-queue-timeout-{call_id}"
            )
        return turn

    def _leave(self, turn: Turn) -> None:
        """Out of the block by any route: out of the line, seat freed. Synchronous on purpose."""
        self._active.discard(turn.call_id)
        if turn._timer is not None:
            turn._timer.cancel()
        now = self._clock()
        if turn.waiting:
            turn._left_at = now
            turn._abandoned = True
            self._count("abandoned")
            log.info(
                "operator_queue_abandoned",
                call_id=turn.call_id,
                waited_s=turn.waited_seconds,
                ringing=turn._seat is not None,
            )
            self._out_of_line(turn)
        if turn._seat is not None:
            self._free(turn._seat.name, now)
            turn._seat = None
        self._dispatch()
        turn._notify()  # a changed() waiting in another task returns: nothing more will change

    async def _expire_at(self, turn: Turn, deadline: float) -> None:
        while (left := deadline - self._clock()) > 0:
            await self._sleep(left)
        self._expire_if_due(turn)

    def _expire_if_due(self, turn: Turn) -> None:
        """Past max_wait and no seat to ring: out of the line; offered() raises QueueTimeout."""
        if turn._deadline is None or not turn.waiting or turn._seat is not None or self._clock() < turn._deadline:
            return
        turn._left_at = self._clock()
        turn._timed_out = True
        self._count("timed_out")
        log.info("operator_queue_timeout", call_id=turn.call_id, waited_s=turn.waited_seconds)
        self._out_of_line(turn)

    @contextmanager
    def taken_over(self, seat: str, call_id: str) -> Iterator[None]:
        """A seat talking in a call this controller took over from a dead one (ivr.call.adopt):
        busy for the block, so no waiting caller is offered it meanwhile; then free (wrap-up) as
        after any call. A seat unknown here, or already held, is left as it is."""
        slot = self._slots.get(seat)
        if slot is None or slot.holder is not None:
            yield
            return
        turn = Turn(self, call_id, self._clock(), None)
        turn._seat, slot.holder, slot.busy = slot.seat, turn, True
        log.info("operator_taken_over", call_id=call_id, seat=seat)
        try:
            yield
        finally:
            if slot.holder is turn:
                self._free(seat, self._clock())
                self._dispatch()

    # -- ringing outcomes (called through Turn) ---------------------------------------------------
    def _connected(self, turn: Turn, seat: Seat) -> None:
        now = self._clock()
        self._slots[seat.name].busy = True
        turn._connected_at = now
        self._count("answered")
        log.info("operator_connected", call_id=turn.call_id, seat=seat.name, waited_s=turn.waited_seconds)
        self._out_of_line(turn)

    def _no_answer(self, turn: Turn, seat: Seat) -> None:
        now = self._clock()
        slot = self._slots[seat.name]
        slot.holder = None
        slot.penalty_until = now + self.penalty_s  # idle_since stays: its operator took no call
        turn._seat = None
        self._count("no_answer")
        log.info("operator_no_answer", call_id=turn.call_id, seat=seat.name, penalty_s=self.penalty_s)
        if slot.retiring:
            del self._slots[seat.name]
        elif slot.after_call is not None:  # a pause or sign-out asked while it rang
            state, reason = slot.after_call, slot.after_reason
            slot.after_call, slot.after_reason = None, ""
            self._presence(slot, state, reason, "pool")
        self._dispatch()
        self._expire_if_due(turn)

    def _release(self, turn: Turn) -> None:
        assert turn._seat is not None
        name = turn._seat.name
        self._free(name, self._clock())
        turn._seat = None
        log.info("operator_released", call_id=turn.call_id, seat=name)
        self._dispatch()

    # -- seats ------------------------------------------------------------------------------------
    def set_seats(self, seats: Iterable[Seat]) -> None:
        """Replace the seat list (a routes.yaml reload).

        Seats are matched by name and keep their state. A new seat is idle from now. A removed
        seat that is idle goes at once; one reserved or busy finishes that call and then goes,
        with no new offers meanwhile. Waiting callers are offered any newly idle seat at once.
        """
        seats = list(seats)
        names = [s.name for s in seats]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate seat names: {names}")
        now = self._clock()
        added, removed = [], []
        for order, seat in enumerate(seats):
            slot = self._slots.get(seat.name)
            if slot is None:
                self._slots[seat.name] = _SeatSlot(seat, order, idle_since=now)
                added.append(seat.name)
            else:
                slot.seat, slot.order, slot.retiring = seat, order, False
        for name, slot in list(self._slots.items()):
            if name not in names and not slot.retiring:
                removed.append(name)
                if slot.holder is None:
                    del self._slots[name]
                else:
                    slot.retiring = True
                    slot.order = len(seats) + slot.order
        if added or removed:
            log.info("operator_seats_changed", added=added, removed=removed, seats=len(seats))
        self._dispatch()

    def _free(self, name: str, now: float) -> None:
        slot = self._slots[name]
        talked = slot.busy
        slot.holder, slot.busy, slot.penalty_until, slot.idle_since = None, False, None, now
        if slot.retiring:
            del self._slots[name]
            return
        if slot.after_call is not None:  # asked during the call
            state, reason = slot.after_call, slot.after_reason
            slot.after_call, slot.after_reason = None, ""
            self._presence(slot, state, reason, "pool")
        elif talked and self.wrap_up_s > 0 and slot.presence == "ready":
            self._presence(slot, "wrap_up", "", "pool")
            slot.wrap_timer = asyncio.get_running_loop().create_task(
                self._wrap_up_ends(slot, now + self.wrap_up_s), name=f"wrap-up-{name}"
            )

    async def _wrap_up_ends(self, slot: _SeatSlot, until: float) -> None:
        while (left := until - self._clock()) > 0:
            await self._sleep(left)
        slot.wrap_timer = None
        if slot.presence == "wrap_up" and self._slots.get(slot.seat.name) is slot:
            self._presence(slot, "ready", "", "pool")
            self._dispatch()

    # -- seat states (sign in / out, pause, after-call work) ---------------------------------------
    def set_state(self, seat: str, state: str, reason: str = "", by: str = "api") -> SeatChange:
        """Sign a seat in ("ready"), out ("signed_out"), pause it (with a reason) or end its wrap-up.

        During a call (ringing or talking) a pause or sign-out is kept and applied when the call
        ends; "ready" cancels such a pending change. SeatStateError, with nothing changed, for an
        unknown seat or state, or a pause without a reason.
        """
        slot = self._slots.get(seat)
        if slot is None or slot.retiring:
            raise SeatStateError(f"no seat '{seat}' (seats: {', '.join(self._slots) or 'none'})")
        if state not in ("ready", "paused", "signed_out"):
            raise SeatStateError(f"state must be one of ready, paused, signed_out; got {state!r}")
        reason = reason.strip()
        if state == "paused" and not reason:
            raise SeatStateError("a pause (小休) needs a reason")
        if len(reason) > 200:
            raise SeatStateError("a reason is at most 200 characters")
        presence: Presence = "ready" if state == "ready" else "paused" if state == "paused" else "signed_out"
        if slot.holder is not None:
            slot.after_call, slot.after_reason = (None, "") if presence == "ready" else (presence, reason)
            change = SeatChange(seat, presence, reason, by, time.time(), pending=presence != "ready")
            log.info("seat_state_pending", seat=seat, state=presence, reason=reason, by=by)
            for listener in self.listeners:
                listener(change)
            return change
        change = self._presence(slot, presence, reason, by)
        self._dispatch()
        return change

    def restore(self, last: Mapping[str, tuple[str, str]], by: str = "restart") -> list[SeatChange]:
        """Put seats back in the state they were last left in (a controller restart): a paused or signed-out
        seat stays so. Ready and after-call work come back ready; seats routes.yaml no longer has are skipped.
        """
        changes = []
        for seat, (state, reason) in last.items():
            slot = self._slots.get(seat)
            if slot is None or slot.retiring or state not in ("paused", "signed_out"):
                continue
            changes.append(self.set_state(seat, state, reason or "restored after a restart", by))
        return changes

    def _presence(self, slot: _SeatSlot, presence: Presence, reason: str, by: str) -> SeatChange:
        if slot.wrap_timer is not None and presence != "wrap_up":
            slot.wrap_timer.cancel()
            slot.wrap_timer = None
        if presence == "ready" and slot.presence != "ready":
            slot.idle_since = self._clock()  # longest idle counts from when the operator became ready
        slot.presence, slot.reason = presence, reason if presence == "paused" else ""
        change = SeatChange(slot.seat.name, presence, slot.reason, by, time.time())
        log.info("seat_state_changed", seat=slot.seat.name, state=presence, reason=slot.reason, by=by)
        for listener in self.listeners:
            listener(change)
        return change

    def _pick(self, now: float) -> _SeatSlot | None:
        """The idle seat to offer: not on penalty first, then longest idle, then configured order."""
        idle = [s for s in self._slots.values() if s.holder is None and not s.retiring and s.presence == "ready"]
        if not idle:
            return None
        return min(idle, key=lambda s: (s.penalized(now), s.idle_since, s.order))

    def line(self) -> tuple[Turn, ...]:
        """The callers in this pool's line, first first (the cluster link reads it)."""
        return tuple(self._queue)

    def offer(self, call_id: str, seat: str) -> bool:
        """Reserve `seat` for the waiting caller `call_id`, as the cluster's one line decided.

        False, and nothing changed, when the caller no longer waits without a seat or the seat is
        unknown or held here: the shared state then frees the seat at the next sync.
        """
        turn = next((t for t in self._queue if t.call_id == call_id), None)
        slot = self._slots.get(seat)
        if turn is None or turn._seat is not None or slot is None or slot.holder is not None or slot.retiring:
            return False
        self._reserve(slot, turn, shared=True)
        return True

    def _dispatch(self) -> None:
        """Give idle seats to the callers without one, first in line first."""
        if self.shared:
            return
        now = self._clock()
        for turn in self._queue:
            if turn._seat is not None:
                continue
            slot = self._pick(now)
            if slot is None:
                return
            self._reserve(slot, turn, waited_s=turn.waited_seconds)

    def _reserve(self, slot: _SeatSlot, turn: Turn, **logged: object) -> None:
        """Hold `slot` for `turn` (its penalty forgiven) and tell the caller: the seat is theirs to ring."""
        slot.holder, slot.penalty_until = turn, None
        turn._seat = slot.seat
        self._count("offered")
        log.info("operator_seat_offered", call_id=turn.call_id, seat=slot.seat.name, position=turn.position, **logged)
        turn._notify()

    def _out_of_line(self, turn: Turn) -> None:
        """Take `turn` out of the line; everyone behind moves up and is told so."""
        self._queue.remove(turn)
        turn._position = 0
        turn._notify()
        self._reposition()

    def _reposition(self) -> None:
        for index, turn in enumerate(self._queue, start=1):
            if turn._position != index:
                turn._position = index
                turn._notify()

    def _count(self, name: _CounterName) -> None:
        self._counts[name] = self._counts.get(name, 0) + 1

    # -- observing ----------------------------------------------------------------------------------
    def snapshot(self) -> PoolSnapshot:
        now = self._clock()
        views = []
        for slot in sorted(self._slots.values(), key=lambda s: s.order):
            state: SeatState
            if slot.holder is not None:
                state = "busy" if slot.busy else "reserved"
            else:
                state = "penalty" if slot.penalized(now) else "idle"
            views.append(
                SeatView(
                    name=slot.seat.name,
                    dial_string=slot.seat.dial_string,
                    state=state,
                    idle_since=slot.idle_since if slot.holder is None else None,
                    penalty_until=slot.penalty_until if state == "penalty" else None,
                    call_id=slot.holder.call_id if slot.holder is not None else None,
                    retiring=slot.retiring,
                    presence=slot.presence,
                    reason=slot.reason,
                    after_call=slot.after_call,
                )
            )
        return PoolSnapshot(
            at=now,
            waiting=len(self._queue),
            queue=tuple(t.call_id for t in self._queue),
            seats=tuple(views),
            counters=self.counters,
        )
