"""Faults with calls in progress: nobody is left in silence and no call record goes missing.

A controller killed mid-call (SIGKILL): tests/integration/test_controller_crash.py.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lab.citizen import place_call
from tests.integration.conftest import DEPARTMENTS_PORT, OPERATORS_PORT, SEAT_PORTS, Ari, Controller, Phone, until
from tests.integration.test_calls import short_ring_routes

pytestmark = pytest.mark.integration

CITIZEN = "13912345678"


def test_sigterm_hands_callers_in_the_menu_to_the_duty_line_and_flushes_their_records(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    duty_line = phones(OPERATORS_PORT, talk_ms=1000)
    controller = start_controller()

    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(place_call, "12345", "", caller=CITIZEN, talk_ms=40000)
        until(lambda: controller.saw("call_arrived"), what="the call to reach the controller")
        controller.proc.send_signal(signal.SIGTERM)
        assert controller.proc.wait(20) == 0
        until(lambda: duty_line.invites(), timeout=20, what="the duty line to ring")
        assert call.result().succeeded

    (row,) = controller.finished_calls()
    assert (row["outcome"], row["hangup_by"]) == ("handed_off", "system")
    assert controller.saw("controller_stopped")


def test_an_unreachable_department_overflows_every_caller_within_its_ring_time_and_leaves_no_dial_behind(
    asterisk: Ari, start_controller: Callable[..., Controller], phones: Callable[..., Phone], tmp_path: Path
) -> None:
    """Nothing listens on the department trunk (a dead switch): each caller is offered to the
    operators once the 5 s ring time is up, and no outbound attempt is left pending."""
    seats = [phones(port, talk_ms=1000) for port in SEAT_PORTS]
    controller = start_controller(routes=short_ring_routes(tmp_path))

    with ThreadPoolExecutor(3) as pool:
        calls = [
            pool.submit(
                # 40 s: the third waits for a seat's 1 s call and its 5 s wrap-up (routes.yaml operators)
                place_call,
                "12345",
                "1",
                caller=f"1391234{i:04d}",
                talk_ms=40000,
                local_port=5071 + i,
                timeout_s=80,
            )
            for i in range(3)
        ]
        until(
            lambda: len(controller.events("dial_result")) >= 3,
            timeout=30,
            what="the three department attempts to end",
        )
        # Every attempt has ended: not one channel towards the department trunk is left.
        assert not [c for c in asterisk.channels() if c["name"].startswith("PJSIP/departments-")]
        # Asterisk keeps resending each INVITE to the dead trunk for SIP's 32 s timer B (with no reply
        # it may not CANCEL yet). Take them here, so they reach no phone of the next test; not after
        # the calls end (ticket number, survey): by then timer B may have run out for the first INVITEs.
        sink = phones(DEPARTMENTS_PORT, talk_ms=100)
        assert all(c.result().succeeded for c in calls)

    rows = controller.finished_calls(3, timeout=30)
    assert {(r["unit"], r["overflowed"], r["outcome"]) for r in rows} == {("市公安局", 1, "operator")}
    assert {r["dial_status"] for r in rows} <= {"NOANSWER", "CHANUNAVAIL", "CONGESTION"}
    for row in rows:
        steps = controller.calllog.steps(row["call_id"])
        dial = next(s for s in steps if s["name"] == "dial" and s["detail"]["leg"] == "department")
        assert dial["detail"]["ring_seconds"] <= 5 + 7  # the 5 s ring time (+ a loaded machine), not SIP's 32 s timer B
    assert sum(len(seat.invites()) for seat in seats) == 3

    until(lambda: len(sink.invites()) >= 3, timeout=40, what="the dead trunk's INVITEs to come back")
    until(
        lambda: sink.messages().count("CANCEL sip:") + sink.messages().count("BYE sip:") >= 3,
        timeout=15,
        what="Asterisk to end the three INVITE transactions",
    )
