"""The operator queue: who waits, who is next, which seat rings — driven by a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, ExitStack

import pytest

from ivr.operators.queue import Counters, QueueFull, QueueTimeout, SeatPool, Turn
from ivr.operators.seats import Seat

S1 = Seat("seat-1", "PJSIP/8001@operator-1")
S2 = Seat("seat-2", "PJSIP/8002@operator-2")
S3 = Seat("seat-3", "PJSIP/8003@operator-3")
T0 = 1000.0


class FakeClock:
    """A monotonic clock and its sleep; time moves only when a test says so."""

    def __init__(self, now: float = T0) -> None:
        self.now = now
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self.now + seconds, future)
        self._sleepers.append(entry)
        try:
            await future
        finally:
            self._sleepers.remove(entry)

    async def advance(self, seconds: float) -> None:
        self.now += seconds
        for due, future in self._sleepers:
            if due <= self.now and not future.done():
                future.set_result(None)
        await settle()


async def settle() -> None:
    """Let every ready task run until the loop is quiet (scheduling only, no time passes)."""
    for _ in range(20):
        await asyncio.sleep(0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def pool_of(clock: FakeClock, *seats: Seat, max_queue: int = 50, penalty_s: float = 10.0) -> SeatPool:
    return SeatPool(list(seats), clock=clock, sleep=clock.sleep, max_queue=max_queue, penalty_s=penalty_s)


def states(pool: SeatPool) -> dict[str, str]:
    return {s.name: s.state for s in pool.snapshot().seats}


async def busy_with(pool: SeatPool, stack: AsyncExitStack, call_id: str) -> Turn:
    """A caller who reaches an operator at once and stays connected until the stack closes."""
    turn = await stack.enter_async_context(pool.wait_turn(call_id))
    turn.connected(await asyncio.wait_for(turn.offered(), 1))
    return turn


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as s:
        yield s


# -- order ----------------------------------------------------------------------------------------


async def test_callers_are_offered_a_seat_in_the_order_they_joined(clock: FakeClock, stack: AsyncExitStack) -> None:
    pool = pool_of(clock, S1)
    first = await busy_with(pool, stack, "x")
    a, b, c = [await stack.enter_async_context(pool.wait_turn(cid)) for cid in "abc"]
    assert (a.position, b.position, c.position) == (1, 2, 3)
    assert (a.seat, b.seat, c.seat) == (None, None, None)

    first.release(S1)
    assert a.seat == S1 and b.seat is None and c.seat is None
    a.connected(S1)
    a.release(S1)
    assert b.seat == S1 and c.seat is None
    b.connected(S1)
    b.release(S1)
    assert c.seat == S1


async def test_callers_on_one_seat_are_served_one_after_another_in_join_order(clock: FakeClock) -> None:
    pool = pool_of(clock, S1)
    got: list[str] = []

    async def caller(cid: str) -> None:
        async with pool.wait_turn(cid) as turn:
            seat = await turn.offered()
            got.append(cid)
            turn.connected(seat)
            await clock.sleep(60)  # talks for a minute

    tasks = []
    for cid in ("a", "b", "c", "d"):
        tasks.append(asyncio.create_task(caller(cid)))
        await settle()
    for _ in range(4):
        await clock.advance(60)
    await asyncio.wait_for(asyncio.gather(*tasks), 1)
    assert got == ["a", "b", "c", "d"]


async def test_the_longest_idle_seat_is_offered_first_ties_by_seat_order(
    clock: FakeClock, stack: AsyncExitStack
) -> None:
    pool = pool_of(clock, S1, S2, S3)
    x, y, z = [await busy_with(pool, stack, cid) for cid in "xyz"]
    assert (x.seat, y.seat, z.seat) == (S1, S2, S3)  # all idle since the start: configured order

    await clock.advance(10)
    z.release(S3)
    await clock.advance(10)
    x.release(S1)
    await clock.advance(10)
    y.release(S2)
    idle = {s.name: s.idle_since for s in pool.snapshot().seats}
    assert idle == {"seat-1": T0 + 20, "seat-2": T0 + 30, "seat-3": T0 + 10}

    offered = [(await stack.enter_async_context(pool.wait_turn(cid))).seat for cid in "abc"]
    assert offered == [S3, S1, S2]


# -- positions ------------------------------------------------------------------------------------


async def test_positions_move_up_as_callers_ahead_are_served_or_leave(clock: FakeClock, stack: AsyncExitStack) -> None:
    pool = pool_of(clock, S1)
    x = await busy_with(pool, stack, "x")
    a, b = [await stack.enter_async_context(pool.wait_turn(cid)) for cid in "ab"]
    async with pool.wait_turn("c") as c, pool.wait_turn("d") as d:
        assert [t.position for t in (a, b, c, d)] == [1, 2, 3, 4]

        x.release(S1)  # a is offered the seat but, while it rings, is still ahead of everyone
        assert [t.position for t in (a, b, c, d)] == [1, 2, 3, 4]
        a.connected(S1)  # served: out of the line
        assert [t.position for t in (a, b, c, d)] == [0, 1, 2, 3]
        assert pool.snapshot().queue == ("b", "c", "d")
    # c and d hung up; b is alone
    assert (b.position, c.position, d.position) == (1, 0, 0)
    assert pool.snapshot().waiting == 1


async def test_changed_wakes_on_a_new_position_and_on_an_offer_and_misses_nothing(
    clock: FakeClock, stack: AsyncExitStack
) -> None:
    pool = pool_of(clock, S1)
    x = await busy_with(pool, stack, "x")
    a = await stack.enter_async_context(pool.wait_turn("a"))
    b = await stack.enter_async_context(pool.wait_turn("b"))

    waiter = asyncio.create_task(b.changed())
    await settle()
    assert not waiter.done()  # joining is not a change
    x.release(S1)  # a gets the seat: b's position is unchanged
    await settle()
    assert not waiter.done()
    a.connected(S1)
    await asyncio.wait_for(waiter, 1)
    assert b.position == 1

    a.release(S1)  # the offer to b happens while nobody awaits changed()
    await asyncio.wait_for(b.changed(), 1)  # still reported
    assert b.seat == S1
    assert b.position == 1


# -- no answer and penalty ------------------------------------------------------------------------


async def test_after_no_answer_the_caller_stays_first_and_the_other_seat_is_offered(
    clock: FakeClock, stack: AsyncExitStack
) -> None:
    pool = pool_of(clock, S1, S2, penalty_s=10)
    a = await stack.enter_async_context(pool.wait_turn("a"))
    assert await a.offered() == S1
    await clock.advance(20)
    a.no_answer(S1)
    assert a.position == 1
    assert await a.offered() == S2  # seat-1 is still the longest idle, but on penalty
    assert states(pool) == {"seat-1": "penalty", "seat-2": "reserved"}
    assert pool.counters == Counters(offered=2, no_answer=1)


async def test_a_caller_whose_seat_did_not_answer_keeps_first_place_over_later_callers(
    clock: FakeClock, stack: AsyncExitStack
) -> None:
    pool = pool_of(clock, S1, S2)
    x = await busy_with(pool, stack, "x")  # on seat-1
    a = await stack.enter_async_context(pool.wait_turn("a"))
    assert a.seat == S2
    b = await stack.enter_async_context(pool.wait_turn("b"))
    await clock.advance(3)
    a.no_answer(S2)
    # seat-2 is on penalty but it is the only idle seat: it goes to a again, not b
    assert (a.position, a.seat, b.position, b.seat) == (1, S2, 2, None)
    x.release(S1)
    assert (a.seat, b.seat) == (S2, S1)  # a is still ringing: the free seat goes to the next caller


async def test_a_seat_on_penalty_is_offered_only_when_no_other_seat_is_idle(
    clock: FakeClock, stack: AsyncExitStack
) -> None:
    pool = pool_of(clock, S1, S2, penalty_s=10)
    a = await stack.enter_async_context(pool.wait_turn("a"))
    a.no_answer(await a.offered())  # seat-1 on penalty until T0+10; a now rings seat-2
    a.connected(await a.offered())
    await clock.advance(1)
    a.release(S2)  # seat-2 idle since T0+1, seat-1 since T0 but penalised

    b = await stack.enter_async_context(pool.wait_turn("b"))
    assert b.seat == S2
    c = await stack.enter_async_context(pool.wait_turn("c"))
    assert c.seat == S1  # nothing else idle: the penalty seat is better than waiting

    pool2 = pool_of(clock, S1, S2, penalty_s=10)
    d = await stack.enter_async_context(pool2.wait_turn("d"))
    d.no_answer(await d.offered())
    d.connected(await d.offered())
    await clock.advance(1)
    d.release(S2)
    await clock.advance(10)  # penalty over: seat-1 is again the longest idle
    assert states(pool2) == {"seat-1": "idle", "seat-2": "idle"}
    e = await stack.enter_async_context(pool2.wait_turn("e"))
    assert e.seat == S1


# -- leaving ----------------------------------------------------------------------------------------


async def test_a_caller_who_hangs_up_while_waiting_is_counted_as_abandoned(
    clock: FakeClock, stack: AsyncExitStack
) -> None:
    pool = pool_of(clock, S1)
    await busy_with(pool, stack, "x")
    a = await stack.enter_async_context(pool.wait_turn("a"))

    class Hangup(Exception):
        pass

    with pytest.raises(Hangup):
        async with pool.wait_turn("b") as b, pool.wait_turn("c") as c:
            assert c.position == 3
            await clock.advance(42)
            raise Hangup  # b and c hang up together
    assert b.abandoned and c.abandoned and not a.abandoned
    assert b.waited_seconds == 42.0 and b.position == 0
    assert a.position == 1 and pool.snapshot().queue == ("a",)
    assert pool.counters.abandoned == 2


async def test_position_of_the_others_is_updated_when_someone_ahead_abandons(
    clock: FakeClock, stack: AsyncExitStack
) -> None:
    pool = pool_of(clock, S1)
    await busy_with(pool, stack, "x")
    a = await stack.enter_async_context(pool.wait_turn("a"))
    async with pool.wait_turn("b") as b:
        c = await stack.enter_async_context(pool.wait_turn("c"))
        assert (a.position, b.position, c.position) == (1, 2, 3)
        woke = asyncio.create_task(c.changed())
        await settle()
    await asyncio.wait_for(woke, 1)
    assert (a.position, b.position, c.position) == (1, 0, 2)
    assert b.abandoned


async def test_hanging_up_while_the_seat_rings_frees_it_for_the_next_caller(
    clock: FakeClock, stack: AsyncExitStack
) -> None:
    pool = pool_of(clock, S1)
    await clock.advance(5)
    async with pool.wait_turn("a") as a:
        assert a.seat == S1
        b = await stack.enter_async_context(pool.wait_turn("b"))
        await clock.advance(7)
    assert a.abandoned and a.waited_seconds == 7.0
    assert b.seat == S1 and b.position == 1  # seat-1 became free now and went straight to b
    b.no_answer(S1)
    b.connected(await b.offered())
    await clock.advance(1)
    assert pool.snapshot().seats[0].state == "busy"


async def test_leaving_after_being_connected_frees_the_seat_and_is_not_abandonment(clock: FakeClock) -> None:
    pool = pool_of(clock, S1)
    async with pool.wait_turn("a") as a:
        await clock.advance(2)
        a.connected(await a.offered())
        await clock.advance(300)
        assert states(pool) == {"seat-1": "busy"}
    assert not a.abandoned and a.waited_seconds == 2.0
    (seat,) = pool.snapshot().seats
    assert (seat.state, seat.idle_since, seat.call_id) == ("idle", T0 + 302, None)
    assert pool.counters == Counters(offered=1, answered=1)


# -- limits -----------------------------------------------------------------------------------------


async def test_offered_raises_queue_timeout_after_max_wait(clock: FakeClock, stack: AsyncExitStack) -> None:
    pool = pool_of(clock, S1)
    await busy_with(pool, stack, "x")
    a = await stack.enter_async_context(pool.wait_turn("a", max_wait_s=30))
    b = await stack.enter_async_context(pool.wait_turn("b"))
    waiting = asyncio.create_task(a.offered())
    await clock.advance(29.5)
    assert not waiting.done() and a.position == 1
    await clock.advance(0.5)
    with pytest.raises(QueueTimeout):
        await asyncio.wait_for(waiting, 1)
    assert a.timed_out and not a.abandoned and a.waited_seconds == 30.0
    assert (a.position, b.position) == (0, 1)
    with pytest.raises(QueueTimeout):
        await a.offered()  # and keeps saying so
    assert pool.counters.timed_out == 1 and pool.counters.abandoned == 0


async def test_the_time_out_wakes_a_caller_waiting_on_changed(clock: FakeClock, stack: AsyncExitStack) -> None:
    pool = pool_of(clock, S1)
    await busy_with(pool, stack, "x")
    a = await stack.enter_async_context(pool.wait_turn("a", max_wait_s=60))
    waiter = asyncio.create_task(a.changed())
    await clock.advance(60)
    await asyncio.wait_for(waiter, 1)
    assert a.timed_out


async def test_a_seat_offered_before_max_wait_is_kept_and_ringing_is_not_cut_short(
    clock: FakeClock, stack: AsyncExitStack
) -> None:
    pool = pool_of(clock, S1, S2)
    x = await busy_with(pool, stack, "x")
    y = await busy_with(pool, stack, "y")
    a = await stack.enter_async_context(pool.wait_turn("a", max_wait_s=30))
    await clock.advance(25)
    x.release(S1)
    seat = await a.offered()
    await clock.advance(20)  # ringing past max_wait: not interrupted
    assert not a.timed_out and a.seat == S1
    a.no_answer(seat)  # past max_wait, but seat-1 is idle (if on penalty): offered again
    assert a.seat == S1
    y.release(S2)
    a.no_answer(S1)
    assert a.seat == S2 and not a.timed_out


async def test_past_max_wait_a_caller_whose_seat_did_not_answer_times_out_if_none_is_left(
    clock: FakeClock, stack: AsyncExitStack
) -> None:
    pool = pool_of(clock, S1, S2)
    a = await stack.enter_async_context(pool.wait_turn("a"))
    b = await stack.enter_async_context(pool.wait_turn("b", max_wait_s=10))
    assert (a.seat, b.seat) == (S1, S2)
    pool.set_seats([S2])  # seat-1 retires after this ring
    await clock.advance(15)
    a.no_answer(S1)
    assert (a.seat, a.position, b.timed_out) == (None, 1, False)  # b is still ringing
    b.no_answer(S2)  # seat-2 goes to a, first in line; nothing is left for b, whose time is up
    assert (a.seat, a.position) == (S2, 1)
    assert (b.timed_out, b.position, b.seat) == (True, 0, None)
    with pytest.raises(QueueTimeout):
        await b.offered()


async def test_joining_a_full_line_raises_queue_full_at_once(clock: FakeClock, stack: AsyncExitStack) -> None:
    pool = pool_of(clock, max_queue=2)  # no seats at all
    a = await stack.enter_async_context(pool.wait_turn("a"))
    await stack.enter_async_context(pool.wait_turn("b"))
    with pytest.raises(QueueFull):
        async with pool.wait_turn("c"):
            pytest.fail("a full line must not be joined")
    assert pool.snapshot().queue == ("a", "b")
    assert pool.counters.rejected == 1 and pool.counters.abandoned == 0
    await stack.aclose()
    assert a.abandoned
    async with pool.wait_turn("c") as c:  # room again
        assert c.position == 1


async def test_a_call_id_cannot_be_in_the_line_twice(clock: FakeClock, stack: AsyncExitStack) -> None:
    pool = pool_of(clock)
    await stack.enter_async_context(pool.wait_turn("a"))
    with pytest.raises(ValueError):
        async with pool.wait_turn("a"):
            pass
    assert pool.snapshot().queue == ("a",)


# -- cancellation -----------------------------------------------------------------------------------


async def test_a_task_cancelled_inside_offered_leaves_the_pool_consistent(
    clock: FakeClock, stack: AsyncExitStack
) -> None:
    pool = pool_of(clock, S1)
    x = await busy_with(pool, stack, "x")
    b_turns: list[Turn] = []

    async def caller(cid: str) -> None:
        async with pool.wait_turn(cid, max_wait_s=100) as turn:
            b_turns.append(turn)
            await turn.offered()

    a = await stack.enter_async_context(pool.wait_turn("a"))
    task = asyncio.create_task(caller("b"))
    await settle()
    c = await stack.enter_async_context(pool.wait_turn("c"))
    await settle()
    assert pool.snapshot().queue == ("a", "b", "c")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (b,) = b_turns
    assert b.abandoned and (a.position, b.position, c.position) == (1, 0, 2)
    assert pool.snapshot().queue == ("a", "c")
    await clock.advance(200)  # b's time-out timer is gone with it
    assert pool.counters.timed_out == 0
    x.release(S1)
    assert a.seat == S1


async def test_a_task_cancelled_with_a_seat_reserved_frees_it(clock: FakeClock, stack: AsyncExitStack) -> None:
    pool = pool_of(clock, S1)
    x = await busy_with(pool, stack, "x")
    started = asyncio.Event()

    async def caller() -> None:
        async with pool.wait_turn("a") as turn:
            started.set()
            await turn.offered()
            await asyncio.Event().wait()  # ringing seat-1 forever

    task = asyncio.create_task(caller())
    await started.wait()
    b = await stack.enter_async_context(pool.wait_turn("b"))
    await clock.advance(3)
    x.release(S1)
    await settle()
    assert states(pool) == {"seat-1": "reserved"} and b.seat is None
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert b.seat == S1 and b.position == 1
    assert pool.snapshot().seats[0].call_id == "b"


async def test_cancelling_offered_inside_the_block_keeps_the_place_and_the_seat(
    clock: FakeClock, stack: AsyncExitStack
) -> None:
    """A call flow may wrap offered() in a timeout to replay the position prompt; nothing is lost."""
    pool = pool_of(clock, S1)
    x = await busy_with(pool, stack, "x")
    a = await stack.enter_async_context(pool.wait_turn("a"))
    attempt = asyncio.create_task(a.offered())
    await settle()
    x.release(S1)  # the seat is reserved for a in the same step the offer is cancelled
    attempt.cancel()
    with pytest.raises(asyncio.CancelledError):
        await attempt
    assert a.position == 1 and a.seat == S1
    assert await asyncio.wait_for(a.offered(), 1) == S1
    assert pool.counters == Counters(offered=2, answered=1)  # x's and a's, nothing offered twice


# -- seats at runtime -------------------------------------------------------------------------------


async def test_a_removed_seat_finishes_its_call_but_gets_no_new_offers(clock: FakeClock, stack: AsyncExitStack) -> None:
    pool = pool_of(clock, S1, S2)
    x = await busy_with(pool, stack, "x")  # on seat-1
    pool.set_seats([S2])
    view = {s.name: (s.state, s.retiring) for s in pool.snapshot().seats}
    assert view == {"seat-2": ("idle", False), "seat-1": ("busy", True)}

    a = await stack.enter_async_context(pool.wait_turn("a"))
    b = await stack.enter_async_context(pool.wait_turn("b"))
    assert (a.seat, b.seat) == (S2, None)
    x.release(S1)
    assert b.seat is None  # seat-1 is gone, not offered
    assert [s.name for s in pool.snapshot().seats] == ["seat-2"]


async def test_a_removed_idle_seat_goes_at_once_and_an_added_seat_serves_the_line(
    clock: FakeClock, stack: AsyncExitStack
) -> None:
    pool = pool_of(clock, S1)
    pool.set_seats([])
    a = await stack.enter_async_context(pool.wait_turn("a"))
    assert pool.snapshot().seats == () and a.seat is None
    await clock.advance(4)
    pool.set_seats([S2, S3])
    assert a.seat == S2
    assert [(s.name, s.state, s.idle_since) for s in pool.snapshot().seats] == [
        ("seat-2", "reserved", None),
        ("seat-3", "idle", T0 + 4),
    ]


async def test_a_seat_removed_while_ringing_rings_out_and_goes(clock: FakeClock, stack: AsyncExitStack) -> None:
    pool = pool_of(clock, S1, S2)
    a = await stack.enter_async_context(pool.wait_turn("a"))
    assert a.seat == S1
    pool.set_seats([S2])
    assert a.seat == S1  # the ring in progress is not taken away
    a.no_answer(S1)
    assert a.seat == S2 and [s.name for s in pool.snapshot().seats] == ["seat-2"]


async def test_re_adding_a_retiring_seat_keeps_its_call(clock: FakeClock, stack: AsyncExitStack) -> None:
    moved = Seat("seat-1", "PJSIP/8101@operator-1")
    pool = pool_of(clock, S1)
    x = await busy_with(pool, stack, "x")
    pool.set_seats([])
    pool.set_seats([moved])  # back, with a new dial string
    (seat,) = pool.snapshot().seats
    assert (seat.state, seat.retiring, seat.call_id, seat.dial_string) == ("busy", False, "x", moved.dial_string)
    x.release(S1)
    a = await stack.enter_async_context(pool.wait_turn("a"))
    assert a.seat == moved


def test_seat_names_must_be_unique(clock: FakeClock) -> None:
    with pytest.raises(ValueError):
        pool_of(clock, S1, Seat("seat-1", "PJSIP/9@x"))


# -- concurrency and observation ---------------------------------------------------------------------


async def test_two_callers_and_two_seats_are_served_at_the_same_time(clock: FakeClock) -> None:
    pool = pool_of(clock, S1, S2)
    answered: dict[str, asyncio.Event] = {S1.name: asyncio.Event(), S2.name: asyncio.Event()}
    talking: list[tuple[str, str]] = []
    hang_up = asyncio.Event()

    async def caller(cid: str) -> Turn:
        async with pool.wait_turn(cid) as turn:
            seat = await turn.offered()
            await answered[seat.name].wait()  # ringing
            turn.connected(seat)
            talking.append((cid, seat.name))
            await hang_up.wait()
        return turn

    tasks = [asyncio.create_task(caller("a")), asyncio.create_task(caller("b"))]
    await settle()
    assert states(pool) == {"seat-1": "reserved", "seat-2": "reserved"}
    answered[S2.name].set()
    answered[S1.name].set()
    await settle()
    assert sorted(talking) == [("a", "seat-1"), ("b", "seat-2")]
    assert states(pool) == {"seat-1": "busy", "seat-2": "busy"} and pool.snapshot().waiting == 0
    await clock.advance(90)
    hang_up.set()
    a, b = await asyncio.wait_for(asyncio.gather(*tasks), 1)
    assert states(pool) == {"seat-1": "idle", "seat-2": "idle"}
    assert [s.idle_since for s in pool.snapshot().seats] == [T0 + 90, T0 + 90]
    assert not a.abandoned and not b.abandoned
    assert pool.counters == Counters(offered=2, answered=2)


async def test_the_snapshot_shows_the_line_every_seat_and_the_counters(clock: FakeClock, stack: AsyncExitStack) -> None:
    s4 = Seat("seat-4", "PJSIP/8004@operator-4")
    pool = pool_of(clock, S1, S2, S3, s4, penalty_s=10)
    await busy_with(pool, stack, "x")  # seat-1 busy
    r = await stack.enter_async_context(pool.wait_turn("r"))  # seat-2 ringing for r
    p = await stack.enter_async_context(pool.wait_turn("p"))
    p.no_answer(await p.offered())  # seat-3 on penalty, p now rings seat-4
    await clock.advance(2)
    async with pool.wait_turn("gone"):
        pass  # an abandon
    await stack.enter_async_context(pool.wait_turn("w"))  # seat-3, freed by the abandon

    snap = pool.snapshot()
    assert snap.at == T0 + 2
    assert (snap.waiting, snap.queue) == (3, ("r", "p", "w"))
    assert [(s.name, s.state, s.call_id) for s in snap.seats] == [
        ("seat-1", "busy", "x"),
        ("seat-2", "reserved", "r"),
        ("seat-3", "reserved", "w"),
        ("seat-4", "reserved", "p"),
    ]
    assert snap.counters == Counters(offered=6, answered=1, no_answer=1, abandoned=1)

    r.no_answer(S2)  # penalty, but it is the only idle seat: reserved for r again at once
    assert r.seat == S2
    pool.set_seats([S1, S2, S3, s4, Seat("seat-5", "PJSIP/8005@operator-5")])
    r.no_answer(S2)  # now seat-5 is idle and not on penalty
    snap = pool.snapshot()
    views = {s.name: s for s in snap.seats}
    assert (views["seat-2"].state, views["seat-2"].idle_since, views["seat-2"].penalty_until) == (
        "penalty",
        T0,
        T0 + 12,
    )
    assert (views["seat-5"].state, views["seat-5"].call_id) == ("reserved", "r")
    assert views["seat-1"].idle_since is None and views["seat-1"].penalty_until is None
    await clock.advance(10)
    assert pool.snapshot().seats[1].state == "idle"


async def test_waited_seconds_runs_while_waiting_and_stops_when_connected(
    clock: FakeClock, stack: AsyncExitStack
) -> None:
    pool = pool_of(clock, S1)
    x = await busy_with(pool, stack, "x")
    a = await stack.enter_async_context(pool.wait_turn("a"))
    await clock.advance(12.5)
    assert a.waited_seconds == 12.5
    x.release(S1)
    await clock.advance(3)  # ringing counts as waiting
    a.connected(await a.offered())
    await clock.advance(100)
    assert a.waited_seconds == 15.5


async def test_only_the_seat_reserved_for_a_caller_can_be_answered_or_released(
    clock: FakeClock, stack: AsyncExitStack
) -> None:
    pool = pool_of(clock, S1, S2)
    a = await stack.enter_async_context(pool.wait_turn("a"))
    assert a.seat == S1
    with pytest.raises(ValueError):
        a.connected(S2)
    with pytest.raises(ValueError):
        a.release(S1)  # not connected yet
    a.connected(S1)
    with pytest.raises(ValueError):
        a.no_answer(S1)  # already connected
    with pytest.raises(RuntimeError):
        await a.offered()
    a.release(S1)
    with pytest.raises(ValueError):
        a.release(S1)
    assert states(pool) == {"seat-1": "idle", "seat-2": "idle"}


# -- a call taken over from a dead controller (ivr.call.adopt) -------------------------------------


async def test_a_seat_talking_in_a_call_taken_over_is_busy_until_it_ends_then_offered(clock: FakeClock) -> None:
    pool = pool_of(clock, S1)
    adopted = ExitStack()
    adopted.enter_context(pool.taken_over(S1.name, "adopted"))
    assert states(pool) == {S1.name: "busy"}
    async with pool.wait_turn("next") as turn:
        await settle()
        assert turn.seat is None and turn.position == 1  # not offered a seat in a conversation
        with pool.taken_over(S1.name, "another"):  # already held: left as it is
            assert pool.snapshot().seats[0].call_id == "adopted"
        adopted.close()  # the adopted conversation ended
        assert turn.seat == S1


async def test_a_seat_not_in_the_table_is_not_taken_over(clock: FakeClock) -> None:
    pool = pool_of(clock, S1)
    with pool.taken_over("seat-gone", "adopted"):
        assert states(pool) == {S1.name: "idle"}
