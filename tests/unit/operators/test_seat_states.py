"""Seat states (issue 17): signed in / out, paused with a reason, after-call work — and who is offered a call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from ivr.errors import SeatStateError
from ivr.operators.queue import SeatChange, SeatPool
from tests.unit.operators.test_queue import S1, S2, FakeClock, busy_with, settle


def pool_of(clock: FakeClock, *seats: object, wrap_up_s: float = 0.0) -> tuple[SeatPool, list[SeatChange]]:
    pool = SeatPool(list(seats), clock=clock, sleep=clock.sleep, wrap_up_s=wrap_up_s)  # type: ignore[arg-type]
    changes: list[SeatChange] = []
    pool.listeners.append(changes.append)
    return pool, changes


def statuses(pool: SeatPool) -> dict[str, str]:
    return {s.name: s.status for s in pool.snapshot().seats}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as s:
        yield s


async def test_a_paused_seat_is_never_offered_a_call_even_when_it_is_the_only_one(
    clock: FakeClock, stack: AsyncExitStack
) -> None:
    pool, changes = pool_of(clock, S1)
    pool.set_state("seat-1", "paused", reason="午餐")
    turn = await stack.enter_async_context(pool.wait_turn("a"))
    await clock.advance(300)
    assert turn.seat is None and statuses(pool) == {"seat-1": "paused"}
    assert [(c.seat, c.state, c.reason) for c in changes] == [("seat-1", "paused", "午餐")]

    pool.set_state("seat-1", "ready")
    assert turn.seat == S1


async def test_a_signed_out_seat_gets_no_call_and_the_other_does(clock: FakeClock, stack: AsyncExitStack) -> None:
    pool, _ = pool_of(clock, S1, S2)
    pool.set_state("seat-1", "signed_out")
    turn = await stack.enter_async_context(pool.wait_turn("a"))
    assert turn.seat == S2
    assert statuses(pool) == {"seat-1": "signed_out", "seat-2": "busy"}


async def test_after_a_call_the_seat_wraps_up_then_is_ready_again(clock: FakeClock, stack: AsyncExitStack) -> None:
    pool, changes = pool_of(clock, S1, wrap_up_s=30)
    async with AsyncExitStack() as call:
        await busy_with(pool, call, "a")
    assert statuses(pool) == {"seat-1": "wrap_up"}
    waiting = await stack.enter_async_context(pool.wait_turn("b"))
    await clock.advance(29)
    assert waiting.seat is None
    await clock.advance(1)
    assert waiting.seat == S1
    assert [c.state for c in changes] == ["wrap_up", "ready"]


async def test_ready_ends_the_wrap_up_early(clock: FakeClock, stack: AsyncExitStack) -> None:
    pool, _ = pool_of(clock, S1, wrap_up_s=30)
    async with AsyncExitStack() as call:
        await busy_with(pool, call, "a")
    waiting = await stack.enter_async_context(pool.wait_turn("b"))
    pool.set_state("seat-1", "ready", by="dtmf")
    assert waiting.seat == S1


async def test_pausing_during_a_call_waits_for_the_call_to_end(clock: FakeClock) -> None:
    pool, changes = pool_of(clock, S1, wrap_up_s=30)
    async with AsyncExitStack() as call:
        await busy_with(pool, call, "a")
        change = pool.set_state("seat-1", "paused", reason="培训")
        assert change.pending and statuses(pool) == {"seat-1": "busy"}
    await settle()
    assert statuses(pool) == {"seat-1": "paused"} and changes[-1].reason == "培训"


async def test_a_caller_back_from_a_transfer_joins_at_the_front(clock: FakeClock, stack: AsyncExitStack) -> None:
    pool, _ = pool_of(clock, S1)
    await busy_with(pool, stack, "x")
    a = await stack.enter_async_context(pool.wait_turn("a"))
    back = await stack.enter_async_context(pool.wait_turn("back", front=True))
    assert (back.position, a.position) == (1, 2)


@pytest.mark.parametrize(
    ("seat", "state", "reason", "message"),
    [
        ("seat-9", "ready", "", "no seat 'seat-9'"),
        ("seat-1", "lunch", "", "state must be one of"),
        ("seat-1", "paused", "  ", "needs a reason"),
    ],
)
async def test_a_bad_state_change_is_refused_and_changes_nothing(
    clock: FakeClock, seat: str, state: str, reason: str, message: str
) -> None:
    pool, changes = pool_of(clock, S1)
    with pytest.raises(SeatStateError, match=message):
        pool.set_state(seat, state, reason=reason)
    assert statuses(pool) == {"seat-1": "ready"} and changes == []


async def test_a_pause_asked_while_the_seat_rings_applies_when_it_goes_unanswered(
    clock: FakeClock, stack: AsyncExitStack
) -> None:
    pool, _ = pool_of(clock, S1, S2)
    turn = await stack.enter_async_context(pool.wait_turn("a"))
    assert turn.seat == S1
    assert pool.set_state("seat-1", "paused", reason="离席").pending
    turn.no_answer(S1)
    assert turn.seat == S2 and statuses(pool) == {"seat-1": "paused", "seat-2": "busy"}


async def test_a_restart_puts_paused_and_signed_out_seats_back_and_the_rest_ready(clock: FakeClock) -> None:
    pool, changes = pool_of(clock, S1, S2)
    restored = pool.restore(
        {"seat-1": ("paused", "午餐"), "seat-2": ("wrap_up", ""), "seat-9": ("signed_out", "")}  # seat-9: gone
    )
    assert statuses(pool) == {"seat-1": "paused", "seat-2": "ready"}
    assert [(c.seat, c.state, c.reason, c.by) for c in restored] == [("seat-1", "paused", "午餐", "restart")]
    assert changes == restored  # written to the seat log like any change

    pool2, _ = pool_of(clock, S1, S2)
    pool2.restore({"seat-1": ("signed_out", ""), "seat-2": ("paused", "")})  # a pause kept without its reason
    assert statuses(pool2) == {"seat-1": "signed_out", "seat-2": "paused"}
    assert pool2.snapshot().seats[1].reason == "restored after a restart"
