"""Faults with calls in progress: nobody is left in silence and no call record goes missing."""

from __future__ import annotations

import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from ivr.citizen import place_call
from tests.integration.conftest import OPERATORS_PORT, Controller, Phone, until

pytestmark = pytest.mark.integration

CITIZEN = "13912345678"


def test_a_controller_killed_mid_call_releases_its_callers_to_the_duty_line_when_it_returns(
        start_controller: Callable[..., Controller], phones: Callable[..., Phone]) -> None:
    duty_line = phones(OPERATORS_PORT, talk_ms=1000)
    first = start_controller()

    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(place_call, "12345", "", caller=CITIZEN, talk_ms=40000)  # listens to the menu
        until(lambda: "call_arrived" in first.log(), what="the call to reach the controller")
        first.killed = True
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(5)

        # Asterisk keeps the channel in our Stasis app; the next controller finds it at resync
        # and hands it to the dialplan's fallback (apology + duty line) instead of leaving it.
        second = start_controller()
        until(lambda: "resync_release_stale_channel" in second.log(), what="the stale channel to be released")
        until(lambda: duty_line.invites(), timeout=20, what="the duty line to ring")
        assert call.result().succeeded

    assert [u.split("@")[0] for u in duty_line.invites()] == ["sip:8000"]
    (row,) = second.finished_calls()  # the same call log: the first controller's row, completed
    assert row["outcome"] == "interrupted" and row["ended_at"] is not None
    assert "interrupted_calls=1" in second.log()


def test_sigterm_hands_callers_in_the_menu_to_the_duty_line_and_flushes_their_records(
        start_controller: Callable[..., Controller], phones: Callable[..., Phone]) -> None:
    duty_line = phones(OPERATORS_PORT, talk_ms=1000)
    controller = start_controller()

    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(place_call, "12345", "", caller=CITIZEN, talk_ms=40000)
        until(lambda: "call_arrived" in controller.log(), what="the call to reach the controller")
        controller.proc.send_signal(signal.SIGTERM)
        assert controller.proc.wait(20) == 0
        until(lambda: duty_line.invites(), timeout=20, what="the duty line to ring")
        assert call.result().succeeded

    (row,) = controller.finished_calls()
    assert (row["outcome"], row["hangup_by"]) == ("handed_off", "system")
    assert "controller_stopped" in controller.log()
