"""Admission with real calls: a burst beyond what the box lets be set up at once is refused at once, unanswered
(SIP 503), and every call — taken or refused — has its row.

The adaptive limit is forced down to one call in setup (HOTLINE_ADMISSION_MAX_SETUPS=1) so that a burst of
30 citizens calling at once must overflow it on any box; the limit's own behaviour is specified on synthetic
signals in tests/unit/controller/test_adaptive_admission.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from ivr.controller.app import SHED_PERCENT, SHED_UNTIL
from lab.citizen import place_call
from tests.integration.conftest import Ari, Controller, until

pytestmark = pytest.mark.integration

CALLERS = 30


def test_a_burst_beyond_the_setup_limit_is_refused_with_503_and_every_call_has_a_row(
    start_controller: Callable[..., Controller],
) -> None:
    controller = start_controller(env={"HOTLINE_ADMISSION_MAX_SETUPS": "1"})
    with ThreadPoolExecutor(CALLERS) as pool:
        runs = list(
            pool.map(
                lambda i: place_call(
                    "12345", "", caller=f"1390000{i:04d}", talk_ms=2000, local_port=5110 + i, timeout_s=40
                ),
                range(CALLERS),
            )
        )
    refused = [run for run in runs if "SIP/2.0 503" in (run.workdir / "messages.log").read_text(errors="replace")]
    taken = [run for run in runs if run.succeeded]
    assert refused, "a burst of 30 callers never had more than one call in setup at once"
    assert taken, "every caller was refused: admission must let the calls it has room for through"
    assert len(refused) + len(taken) == CALLERS  # each either answered or refused, none left hanging

    rows = controller.finished_calls(CALLERS, timeout=60)
    outcomes = [row["outcome"] for row in rows]
    assert len(rows) == CALLERS
    assert outcomes.count("refused") == len(refused)
    assert controller.saw("call_arrived")
    # What the controller refused, it hands to the dialplan to refuse before Stasis (test below).
    assert [e["percent"] for e in controller.events("shedding_in_dialplan") if e["percent"] > 0]


def test_the_share_the_controller_publishes_is_refused_in_the_dialplan_before_it_reaches_the_controller(
    asterisk: Ari, start_controller: Callable[..., Controller]
) -> None:
    controller = start_controller()
    until(lambda: controller.saw("shedding_in_dialplan", percent=0) or None, what="the first probe's reset")
    try:
        # As the controller publishes under overload: all of it, for a minute.
        asterisk.post("/asterisk/variable", variable=SHED_UNTIL, value=str(int(time.time()) + 60))
        asterisk.post("/asterisk/variable", variable=SHED_PERCENT, value="100")
        shed = place_call("12345", "", caller="13900001001", talk_ms=1000, local_port=5110, timeout_s=30)
        messages = (shed.workdir / "messages.log").read_text(errors="replace")
        assert "SIP/2.0 503" in messages and "SIP/2.0 200" not in messages
        # Expired (a controller that died while shedding): taken again, without the controller renewing it.
        asterisk.post("/asterisk/variable", variable=SHED_UNTIL, value=str(int(time.time()) - 1))
        taken = place_call("12345", "", caller="13900001002", talk_ms=1000, local_port=5111, timeout_s=30)
        assert taken.succeeded
    finally:
        asterisk.post("/asterisk/variable", variable=SHED_PERCENT, value="0")

    rows = controller.finished_calls(2, timeout=30)  # the refused one from Asterisk's CEL record
    assert [row["outcome"] for row in rows].count("refused") == 1
    assert len(controller.events("call_arrived")) == 1  # the shed call never reached the controller
