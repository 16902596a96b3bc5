"""One truth: the report and the dashboard count a fixed mix of real calls the same, and as a person would.

Twelve real calls, each kind a supervisor meets: a department answering (two, each rated), a busy
department and one that does not answer (both overflow to an operator), two callers served by the
operators and a third who gives up waiting in their queue, one who hangs up in the menu, one
who gets the polite goodbye, a message after hours, a call refused under overload, and a call
the dialplan fallback takes while no controller runs. A real Prometheus scrapes every controller
of the run (four, one after another, on the same port) with monitoring/alerts.yml's recording
rules. Then, for the same window, every indicator the report (`hotline report`) and the
dashboard (monitoring/grafana/dashboards/hotline.json's PromQL) both show must equal the other
and the count written here by hand.

Prometheus extrapolates increase() to the window's end (by under a scrape interval over minutes
of samples): counts are compared rounded, ratios to 0.01 percentage point.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest

from ivr.timekeeping import LOCAL_TZ
from lab.citizen import place_call
from lab.manager import Prometheus
from tests.integration.conftest import (
    AFTER_HOURS,
    DEPARTMENTS_PORT,
    OPERATORS_PORT,
    REPO,
    SEAT_PORTS,
    Controller,
    Phone,
    until,
)
from tests.integration.test_calls import short_ring_routes
from tests.integration.test_supervision import dashboard_exprs, prometheus, value  # noqa: F401 (a fixture)

pytestmark = pytest.mark.integration

GONGAN = "市公安局"  # 12345, key 1: the unit every department call here goes to
# Key 1, then the rating after the department hangs up, the ticket number (~10 s) and its '*' wait (3 s).
RATE_AND_SATISFIED = "1" + "," * 22 + "1"  # 满意
RATE_AND_DISSATISFIED = "1" + "," * 22 + "3"  # 不满意

# The hand count (CONNECTION_RATE, DEPARTMENT_ANSWERED, SATISFACTION in ivr/report/figures.py).
EXPECTED_OUTCOMES = {
    "connected": 2,  # the two department calls
    "operator": 4,  # busy -> operator, no answer -> operator, two from the queue
    "abandoned": 2,  # in the menu, in the queue
    "goodbye": 1,
    "message": 1,
    "refused": 1,
    "fallback": 1,
}
OFFERED = 12
PERSON_ANSWERED = 6  # connected + operator
CONNECTION_PCT = 50.0  # 6 / 12
GONGAN_DIALLED, GONGAN_ANSWERED, GONGAN_ANSWERED_PCT = 4, 2, 50.0  # answered twice, busy, no answer
GONGAN_RATED, GONGAN_SATISFIED_PCT = 2, 50.0  # one 满意, one 不满意
# PERSON_WITHIN_15S: 5 of the 6 a person answered reached one within 15 s of arrival (key 1 or 0 at once,
# free seats answer at once): the two department calls (~5 s), the two queued operator calls (~5 s) and
# the busy line's overflow (~11 s); the no-answer overflow rings its 5 s first and takes ~16 s. / all 12.
PERSON_WITHIN_15S_CALLS, PERSON_WITHIN_15S_PCT = 5, round(100 * 5 / 12, 2)  # the report gives 2 decimals


def settle(controller: Controller, counted: int) -> None:
    """Prometheus has scraped `counted` finished calls from this controller (its counters start at 0)."""
    until(
        lambda: value("sum(hotline_calls_total)") == counted,
        timeout=30,
        what=f"prometheus to have scraped {counted} calls of this controller",
    )


def arrived(controller: Controller, callers: int) -> bool:
    return len(controller.events("call_arrived")) >= callers


def test_the_report_and_the_dashboard_count_a_fixed_mix_of_real_calls_as_counted_by_hand(
    start_controller: Callable[..., Controller],
    phones: Callable[..., Phone],
    prometheus: Prometheus,  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    seats = [phones(port, talk_ms=8000) for port in SEAT_PORTS]
    duty_line = phones(OPERATORS_PORT, talk_ms=1000)

    # 1. Overload: a rate below one call a second, the bucket empty: the call is refused (503).
    overloaded = start_controller(env={"HOTLINE_MAX_CALL_RATE": "0.01"})
    until(lambda: value('up{job="hotline"}') == 1, timeout=30, what="prometheus to scrape the controller")
    assert not place_call("12345", "", talk_ms=1000, timeout_s=20).succeeded
    overloaded.finished_calls(1, timeout=20)
    settle(overloaded, 1)
    overloaded.stop()

    # 2. Office hours, the department rings 5 s.
    office = start_controller(short_ring_routes(tmp_path))
    department = phones(DEPARTMENTS_PORT, talk_ms=1500)
    with ThreadPoolExecutor(4) as pool:
        runs = [
            pool.submit(place_call, "12345", RATE_AND_SATISFIED, local_port=5071, talk_ms=20000),
            pool.submit(place_call, "12345", RATE_AND_DISSATISFIED, local_port=5072, talk_ms=20000),
            pool.submit(place_call, "12345", "", local_port=5073, talk_ms=2500),  # gives up in the menu
            pool.submit(
                place_call, "12345", "777", gap_ms=1500, local_port=5074, talk_ms=30000
            ),  # goodbye: 7 is no option
        ]
        assert all(r.result().succeeded for r in runs), [r.result().stderr for r in runs]
    office.finished_calls(5, timeout=30)  # with the refused call's row
    department.stop()

    busy = phones(DEPARTMENTS_PORT, "phone_busy.xml")
    assert place_call("12345", "1", talk_ms=20000).succeeded
    office.finished_calls(6, timeout=30)
    busy.stop()

    silent = phones(DEPARTMENTS_PORT, "phone_noanswer.xml")
    assert place_call("12345", "1", talk_ms=25000).succeeded
    office.finished_calls(7, timeout=30)
    silent.stop()

    # The operators' queue: two callers take both seats, a third waits and gives up.
    with ThreadPoolExecutor(3) as pool:
        queued = []
        for n, talk_ms in enumerate([25000, 25000, 6000]):
            queued.append(
                pool.submit(place_call, "12345", "0", first_key_ms=1000, local_port=5075 + n, talk_ms=talk_ms)
            )
            until(partial(arrived, office, 7 + n), what=f"queued caller {n + 1} to arrive")
            time.sleep(0.5)
        assert all(r.result().succeeded for r in queued), [r.result().stderr for r in queued]
    office.finished_calls(10, timeout=40)
    settle(office, 9)  # this controller's own calls (the refused one was the first controller's)
    office.stop()

    # 3. After hours: a message for 市公安局.
    evening = start_controller(clock=AFTER_HOURS)
    department = phones(DEPARTMENTS_PORT)
    assert place_call("12345", "1" + "," * 14 + "~#", talk_ms=20000).succeeded
    evening.finished_calls(11, timeout=30)
    settle(evening, 1)
    evening.stop()

    # 4. No controller: the dialplan fallback apologises and rings the duty line.
    assert place_call("12345", "", talk_ms=20000).succeeded
    assert [u.split("@")[0] for u in duty_line.invites()] == ["sip:8000"]

    # 5. The controller is back: it imports what Asterisk wrote while it was down.
    back = start_controller()
    rows = back.finished_calls(OFFERED, timeout=30)
    settle(back, 1)
    time.sleep(3)  # a few more scrapes and rule evaluations over the finished run
    assert all(len(seat.invites()) >= 1 for seat in seats)

    # The call log itself, by hand.
    by_outcome: dict[str, int] = {}
    for row in rows:
        by_outcome[row["outcome"]] = by_outcome.get(row["outcome"], 0) + 1
    assert by_outcome == EXPECTED_OUTCOMES

    # The report, for the local days around now (records carry real timestamps).
    today = dt.datetime.now(LOCAL_TZ).date()
    common = ["--from", str(today - dt.timedelta(days=1)), "--to", str(today + dt.timedelta(days=1))]
    common += ["--calllog", back.env["HOTLINE_CALLLOG"]]
    hotline = str(REPO / ".venv" / "bin" / "hotline")
    out = subprocess.run(
        [hotline, "report", *common, "--format", "json"], capture_output=True, text=True, check=True, cwd=REPO
    )
    report = json.loads(out.stdout)
    centre = report["centre"]
    gongan = next(u for u in report["units"] if (u["unit"], u["mode"]) == (GONGAN, "merge"))["total"]
    for fmt in ("html", "xlsx"):  # the files a supervisor gets, from the same run (README's excerpt)
        subprocess.run([hotline, "report", *common, "--out", str(tmp_path / f"report.{fmt}")], check=True, cwd=REPO)

    # The dashboard's PromQL on the real Prometheus, as its panels ask it.
    exprs = dashboard_exprs()
    for expr in (
        "hotline:calls_offered:increase24h",
        "hotline:calls_person_answered:increase24h",
        "hotline:connection_ratio:rate24h",
        "hotline:unit_answer_ratio:rate15m",
        "hotline:unit_survey_satisfied_ratio:rate1h",
        "hotline:person_within_15s_ratio:rate24h",
        "hotline:person_answered_within_15s:increase24h",
    ):
        assert any(expr in e for e in exprs), f"the dashboard no longer shows {expr}"

    def beside(outcome: str) -> int:
        return round(value(f'hotline:calls_by_outcome:increase24h{{outcome="{outcome}"}}'))

    # Each indicator three ways: (report, dashboard, by hand).
    indicators = {
        "offered": (centre["ended"], round(value("hotline:calls_offered:increase24h")), OFFERED),
        "answered by a person": (
            centre["connected"],
            round(value("hotline:calls_person_answered:increase24h")),
            PERSON_ANSWERED,
        ),
        "messages": (centre["messages"], beside("message"), EXPECTED_OUTCOMES["message"]),
        "goodbyes": (centre["goodbyes"], beside("goodbye"), EXPECTED_OUTCOMES["goodbye"]),
        "abandoned": (centre["abandoned"], beside("abandoned"), EXPECTED_OUTCOMES["abandoned"]),
        "refused": (centre["refused"], beside("refused"), EXPECTED_OUTCOMES["refused"]),
        "fallback": (centre["fallback"], beside("fallback"), EXPECTED_OUTCOMES["fallback"]),
        "answered by a person within 15 s": (
            centre["person_15s"],
            round(value('hotline:person_answered_within_15s:increase24h{view="arrival"}')),
            PERSON_WITHIN_15S_CALLS,
        ),
        "市公安局 dialled": (
            gongan["dialled"],
            round(value(f'sum(increase(hotline_unit_calls_total{{unit="{GONGAN}"}}[15m]))')),
            GONGAN_DIALLED,
        ),
        "市公安局 answered": (
            gongan["answered"],
            round(value(f'sum(increase(hotline_unit_calls_total{{unit="{GONGAN}",result="answered"}}[15m]))')),
            GONGAN_ANSWERED,
        ),
        "市公安局 rated": (
            gongan["rated"],
            round(value(f'sum(increase(hotline_survey_responses_total{{unit="{GONGAN}"}}[1h]))')),
            GONGAN_RATED,
        ),
    }
    percentages = {
        "24 h connection rate": (
            centre["connection_pct"],
            100 * value("hotline:connection_ratio:rate24h"),
            CONNECTION_PCT,
        ),
        "answered by a person within 15 s %": (
            centre["person_15s_pct"],
            100 * value('hotline:person_within_15s_ratio:rate24h{view="arrival"}'),
            PERSON_WITHIN_15S_PCT,
        ),
        "市公安局 department answered %": (
            gongan["answered_pct"],
            100 * value(f'hotline:unit_answer_ratio:rate15m{{unit="{GONGAN}"}}'),
            GONGAN_ANSWERED_PCT,
        ),
        "市公安局 satisfaction rate": (
            gongan["satisfied_pct"],
            100 * value(f'hotline:unit_survey_satisfied_ratio:rate1h{{unit="{GONGAN}"}}'),
            GONGAN_SATISFIED_PCT,
        ),
    }
    wrong = {k: v for k, v in indicators.items() if not v[0] == v[1] == v[2]}
    wrong |= {k: v for k, v in percentages.items() if not (v[0] == v[2] and abs(v[1] - v[2]) < 0.01)}
    assert not wrong, "indicators that differ (report, dashboard, by hand):\n" + "\n".join(
        f"{k}: {v}" for k, v in wrong.items()
    )
