"""After a reconnect the controller repairs the calls still up at once, but never too many at a time."""

from __future__ import annotations

import asyncio

from ivr.controller.app import bounded_gather


def test_repairs_run_concurrently_up_to_the_limit_and_all_finish() -> None:
    running = 0
    peak = 0
    done: list[int] = []

    async def repair(n: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        done.append(n)

    asyncio.run(bounded_gather([repair(n) for n in range(50)], limit=16))

    assert sorted(done) == list(range(50))
    assert peak == 16  # at once, not one after another; and not all 50 together


def test_no_calls_to_repair_is_no_work() -> None:
    asyncio.run(bounded_gather([], limit=16))
