"""The 12345 operators' queue with two real (SIPp) operator seats."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest

from lab.citizen import place_call
from tests.integration.conftest import SEAT_PORTS, Controller, Phone, until

pytestmark = pytest.mark.integration


def arrived(controller: Controller, callers: int) -> bool:
    return len(controller.events("call_arrived")) >= callers


def test_callers_queue_for_two_seats_hear_their_turn_and_an_abandoned_wait_is_logged(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    seat1 = phones(SEAT_PORTS[0], talk_ms=4000)
    seat2 = phones(SEAT_PORTS[1], talk_ms=12000)
    controller = start_controller()

    with ThreadPoolExecutor(4) as pool:
        calls = []
        # Four citizens press 0, a moment apart so they queue in this order.
        for n, (caller, talk_ms) in enumerate(
            [("13900000001", 30000), ("13900000002", 30000), ("13900000003", 30000), ("13900000004", 7000)]
        ):
            calls.append(
                pool.submit(
                    place_call, "12345", "0", caller=caller, first_key_ms=1000, local_port=5071 + n, talk_ms=talk_ms
                )
            )
            until(partial(arrived, controller, n + 1), what=f"caller {n + 1} to arrive")
            time.sleep(0.3)
        assert all(c.result().succeeded for c in calls), [c.result().stderr for c in calls]

    rows = {r["caller_masked"]: r for r in controller.finished_calls(4, timeout=60)}
    first, second, third, fourth = (rows[f"139****000{i}"] for i in range(1, 5))
    # Two callers get the two seats at once; the third waits for the first seat to free up.
    assert first["outcome"] == second["outcome"] == third["outcome"] == "operator"
    assert len(seat1.invites()) == 2 and len(seat2.invites()) == 1
    queue_left = [s for s in controller.calllog.steps(third["call_id"]) if s["name"] == "queue_left"]
    assert queue_left[0]["detail"]["seat"] == "seat-1" and queue_left[0]["detail"]["waited_seconds"] > 2
    heard = [s["detail"] for s in controller.calllog.steps(third["call_id"]) if s["name"] == "queue_joined"]
    assert heard == [{"position": 1}]
    # The fourth hung up while waiting: abandoned in the queue, and on the callback list.
    assert fourth["outcome"] == "abandoned"
    assert any(
        s["name"] == "queue_left" and s["detail"].get("abandoned") for s in controller.calllog.steps(fourth["call_id"])
    )
    (callback,) = controller.calllog.callbacks()
    assert callback["caller_masked"] == "139****0004"
    assert [c["reason"] for c in controller.calllog.callback_calls(callback["id"])] == ["in_queue"]
