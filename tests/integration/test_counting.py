"""Every call counted: calls the controller did not carry get rows from Asterisk's own record.

A call refused under overload (HOTLINE_MAX_CALL_RATE) and a call the dialplan fallback took while
no controller ran: Asterisk writes each as a CEL user event (dialplan/cel.conf), and the
controller imports them into the call log (outcome refused / fallback) and /metrics — once, even
across restarts.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Callable

import pytest

from lab.citizen import place_call
from tests.integration.conftest import OPERATORS_PORT, Controller, Phone, until

pytestmark = pytest.mark.integration

CITIZEN = "13912345678"


def metric(controller: Controller, outcome: str) -> float:
    with urllib.request.urlopen("http://127.0.0.1:9345/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("hotline_calls_total{") and f'outcome="{outcome}"' in line
    )


def test_refused_and_fallback_calls_get_rows_from_what_asterisk_wrote(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    phones(OPERATORS_PORT, talk_ms=1000)
    # A rate below one call per second with an empty bucket: the first call is refused.
    overloaded = start_controller(env={"HOTLINE_MAX_CALL_RATE": "0.01"})
    refused = place_call("12345", "", caller=CITIZEN, talk_ms=1000, timeout_s=20)
    assert not refused.succeeded  # 503, unanswered
    (row,) = overloaded.finished_calls(1, timeout=20)
    assert (row["outcome"], row["entry"], row["hangup_by"], row["caller_hash"]) == ("refused", "12345", "system", "")
    until(lambda: metric(overloaded, "refused") == 1, timeout=10, what="the refused call in /metrics")
    overloaded.stop()

    # No controller: the fallback apologises and rings the duty line; nobody writes a row yet.
    fallback = place_call("12310", "", caller=CITIZEN, talk_ms=3000)
    assert fallback.succeeded, fallback.stderr
    assert [r["outcome"] for r in overloaded.calllog.calls()] == ["refused"]

    back = start_controller()
    rows = back.finished_calls(2, timeout=20)
    assert [(r["outcome"], r["entry"]) for r in rows] == [("refused", "12345"), ("fallback", "12310")]
    until(lambda: metric(back, "fallback") == 1, timeout=10, what="the fallback call in /metrics")
    assert metric(back, "refused") == 0  # imported by the first controller: counted there, not again
    back.stop()

    again = start_controller()  # a third start reads the same events again and adds nothing
    until(lambda: again.events("controller_starting"), timeout=10)
    assert len(again.calllog.calls()) == 2
    assert metric(again, "fallback") == 0
