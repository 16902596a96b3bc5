"""通报考核: the assessment report from a call log with known figures, checked column by column.

The log below is written through the real SqliteCallLog (calls with their steps, tickets,
the callback list) with fixed local (Asia/Shanghai) times. The period is Mon 2026-11-02 ..
Tue 2026-11-03, judged at 2026-11-03 20:00 (AS_OF). Every expected figure is worked out by
hand in the comments next to it, from the definitions in ivr/report/figures.py.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from ivr.calllog.records import CallRecord, Step
from ivr.calllog.sqlite import SqliteCallLog
from ivr.report import figures as report
from ivr.report.figures import CentreFigures, DayFigures, Figures, Spread
from ivr.routing.routes import RouteTable, load
from ivr.tickets import DeadlinePolicy, new_ticket, to_epoch

ROUTES_YAML = Path(__file__).resolve().parents[3] / "routes.yaml"
CHROMIUM = "/usr/bin/chromium"
D1, D2 = dt.date(2026, 11, 2), dt.date(2026, 11, 3)
AS_OF_ISO = "2026-11-03T20:00"

GONGAN = ("gongan", "市公安局", "merge")
LVYOU = ("lvyou-12301", "市旅发委", "transfer")  # dual-track
LVFAWEI = ("lvfawei", "市旅发委", "merge")
MINZHENG = ("minzheng", "市民政局", "merge")
LAODONG = ("laodong-12333", "市人社局", "interconnect")


def at(iso: str) -> float:
    """Unix seconds of a local (Asia/Shanghai) time."""
    return to_epoch(dt.datetime.fromisoformat(iso))


AS_OF = at(AS_OF_ISO)


def dial(offset: float, leg: str, status: str, ring: float) -> tuple[float, str, dict[str, Any]]:
    return (offset, "dial", {"leg": leg, "number": "x", "status": status, "cause": 16, "ring_seconds": ring})


def put(
    log: SqliteCallLog,
    call_id: str,
    start: str,
    *,
    route: tuple[str, str, str] | None = None,
    entry: str = "12345",
    track: str = "menu",
    decision: str = "dial",
    answered: float | None = 2.0,
    human: float | None = None,
    outcome: str = "connected",
    dial_status: str = "",
    overflowed: bool = False,
    operator_status: str = "",
    satisfaction: int | None = None,
    steps: tuple[tuple[float, str, dict[str, Any]], ...] = (),
    ended: float = 60.0,
) -> None:
    """One finished call; times are offsets in seconds from its arrival at `start` (local)."""
    t0 = at(start)
    rec = CallRecord(
        call_id=call_id,
        channel_id=f"ch-{call_id}",
        entry=entry,
        caller_masked="138****0000",
        caller_hash=f"h-{call_id}",
        routes_version="test",
        started_at=t0,
    )
    rec.answered_at = None if answered is None else t0 + answered
    rec.track, rec.decision, rec.outcome = track, decision, outcome
    if route is not None:
        rec.route_id, rec.unit, rec.mode = route
    rec.dial_status, rec.overflowed, rec.operator_status = dial_status, overflowed, operator_status
    rec.target_answered_at = None if human is None else t0 + human
    rec.satisfaction = satisfaction
    rec.steps = [Step(t0 + offset, name, detail) for offset, name, detail in steps]
    rec.ended_at = t0 + ended
    log.call_finished(rec)


POLICY = DeadlinePolicy(default_workdays=1)  # due the next workday, same time


def ticket(
    log: SqliteCallLog,
    call_id: str,
    created: str,
    route: tuple[str, str, str] | None,
    closed: str | None = None,
    kind: str = "",
) -> None:
    rid, unit, mode = route or ("", "", "")
    t = new_ticket(call_id, kind or mode, unit, mode, rid, dt.datetime.fromisoformat(created), POLICY)
    log.ticket_opened(t)
    if closed is not None:
        log.ticket_closed(t.ticket_id, at(closed))


def write_known_log(path: Path) -> None:
    log = SqliteCallLog(path)
    log.start()
    # ---- Mon 2026-11-02 ------------------------------------------------------------------------------
    # 市公安局 (merge): dial start = step at - ring_seconds; c1 answered after 6 s, c2 after 10 s.
    put(
        log,
        "c1",
        "2026-11-02T09:00:00",
        route=GONGAN,
        answered=3,
        dial_status="ANSWER",
        human=12,
        satisfaction=1,
        steps=(dial(12, "department", "ANSWER", 6),),
    )
    put(
        log,
        "c2",
        "2026-11-02T09:10:00",
        route=GONGAN,
        answered=20,
        dial_status="ANSWER",
        human=30,
        satisfaction=2,
        steps=(dial(30, "department", "ANSWER", 10),),
    )
    # c3: no answer, overflow to the operators' queue, caller gives up while waiting.
    put(
        log,
        "c3",
        "2026-11-02T09:20:00",
        route=GONGAN,
        dial_status="NOANSWER",
        overflowed=True,
        outcome="abandoned",
        steps=(
            dial(25, "department", "NOANSWER", 20),
            (26, "queue_joined", {"position": 1}),
            (40, "queue_left", {"waited_seconds": 14.0, "abandoned": True}),
        ),
    )
    # c4: busy, an operator takes it (not the unit's answer).
    put(
        log,
        "c4",
        "2026-11-02T09:30:00",
        route=GONGAN,
        dial_status="BUSY",
        overflowed=True,
        operator_status="ANSWER",
        human=20,
        outcome="operator",
        steps=(
            dial(8, "department", "BUSY", 1),
            (9, "queue_joined", {"position": 1}),
            dial(20, "operators", "ANSWER", 3),
            (20, "queue_left", {"waited_seconds": 11.0, "seat": "seat-1"}),
        ),
    )
    # c5: the line does not answer, its overflow line does: 37 - (30 - 20) = 27 s from the department dial.
    put(
        log,
        "c5",
        "2026-11-02T09:40:00",
        route=GONGAN,
        dial_status="ANSWER",
        overflowed=True,
        human=37,
        satisfaction=3,
        steps=(dial(30, "department", "NOANSWER", 20), dial(37, "overflow", "ANSWER", 5)),
    )
    # c6: after hours: a message for 市公安局, not a routed call.
    put(
        log,
        "c6",
        "2026-11-02T20:00:00",
        route=GONGAN,
        decision="message",
        outcome="message",
        steps=((40, "message", {"recording": "m", "state": "done", "seconds": 20}),),
    )
    # 市旅发委 12301 (dual-track), dialled directly.
    put(
        log,
        "d1",
        "2026-11-02T10:00:00",
        route=LVYOU,
        entry="12301",
        track="direct",
        answered=1,
        dial_status="ANSWER",
        human=9,
        satisfaction=1,
        steps=(dial(9, "department", "ANSWER", 4),),
    )
    put(
        log,
        "d2",
        "2026-11-02T10:10:00",
        route=LVYOU,
        entry="12301",
        track="direct",
        answered=1,
        dial_status="NOANSWER",
        overflowed=True,
        operator_status="NOANSWER",
        outcome="message",
        steps=(
            dial(30, "department", "NOANSWER", 25),
            dial(52, "operators", "NOANSWER", 20),
            (80, "message", {"recording": "m", "state": "done", "seconds": 10}),
        ),
    )
    # Calls that never reach a unit.
    put(
        log,
        "o1",
        "2026-11-02T11:00:00",
        decision="operator",
        answered=1,
        operator_status="ANSWER",
        human=30,
        outcome="operator",
        steps=(
            (2, "queue_joined", {"position": 1}),
            dial(30, "operators", "ANSWER", 5),
            (30, "queue_left", {"waited_seconds": 28.0, "seat": "seat-2"}),
        ),
    )
    put(log, "g1", "2026-11-02T11:30:00", decision="hangup", answered=1, outcome="goodbye")
    put(log, "a1", "2026-11-02T15:00:00", decision="", outcome="abandoned")
    put(log, "x1", "2026-11-02T15:30:00", decision="", answered=None, outcome="failed")
    # ---- Tue 2026-11-03 ------------------------------------------------------------------------------
    put(
        log,
        "m1",
        "2026-11-03T08:00:00",
        route=LVYOU,
        dial_status="ANSWER",
        human=20,
        satisfaction=1,
        steps=(dial(20, "department", "ANSWER", 8),),
    )
    put(
        log,
        "lvf",
        "2026-11-03T09:00:00",
        route=LVFAWEI,
        dial_status="ANSWER",
        human=15,
        steps=(dial(15, "department", "ANSWER", 5),),
    )
    put(
        log,
        "mz",
        "2026-11-03T09:05:00",
        route=MINZHENG,
        dial_status="ANSWER",
        human=15,
        steps=(dial(15, "department", "ANSWER", 5),),
    )
    put(
        log,
        "rs",
        "2026-11-03T09:10:00",
        route=LAODONG,
        decision="handoff",
        dial_status="ANSWER",
        human=20,
        steps=(dial(20, "department", "ANSWER", 9),),
    )
    put(
        log,
        "m2",
        "2026-11-03T23:59:00",
        route=LVYOU,
        dial_status="ANSWER",
        human=25,
        ended=40,
        steps=(dial(25, "department", "ANSWER", 12),),
    )  # 23:59 on the last day: in
    # ---- outside the period: they would change 市公安局's figures if they were counted ------------------
    for call_id, start in (("early", "2026-11-01T23:59:59"), ("late", "2026-11-04T00:00:00")):
        put(
            log,
            call_id,
            start,
            route=GONGAN,
            dial_status="ANSWER",
            human=3,
            satisfaction=1,
            steps=(dial(3, "department", "ANSWER", 1),),
        )
    put(
        log,
        "m0",
        "2026-10-30T10:00:00",
        route=LVYOU,
        dial_status="ANSWER",
        human=5,
        steps=(dial(5, "department", "ANSWER", 3),),
    )

    # ---- tickets (one workday each); due in the period = deadline on Nov 2 or 3 ----------------------------
    # Opened in time order, as a controller would (ticket numbers are handed out per day, going forward).
    ticket(log, "g-t6", "2026-10-29T10:00", GONGAN)  # due 10-30: outside
    ticket(log, "g-t1", "2026-10-30T10:00", GONGAN, closed="2026-11-02T09:00")  # due 11-02 10:00: in time
    ticket(log, "m0", "2026-10-30T10:00", LVYOU)  # due 11-02 10:00, open; its call (menu) is from Oct 30
    ticket(log, "g-t2", "2026-10-30T11:00", GONGAN, closed="2026-11-02T15:00")  # due 11-02 11:00: late
    ticket(log, "c1", "2026-11-02T09:00", GONGAN)  # due 11-03 09:00, still open at AS_OF: not in time
    ticket(log, "d1", "2026-11-02T10:00", LVYOU, closed="2026-11-03T09:00")  # direct track: in time
    ticket(log, "o1", "2026-11-02T11:00", None, kind="operator", closed="2026-11-02T16:00")  # no unit: in time
    ticket(log, "c6", "2026-11-02T21:00", GONGAN, kind="message")  # due 11-03 21:00, after AS_OF: left out
    ticket(log, "c2", "2026-11-03T09:00", GONGAN, closed="2026-11-03T10:00")  # due 11-04: outside

    # ---- the callback list ------------------------------------------------------------------------------------
    for caller, call_id, missed_at in (
        ("A", "a1", "2026-11-02T15:00"),
        ("B", "cbB", "2026-11-02T16:00"),
        ("C", "cbC", "2026-11-03T10:00"),
        ("D", "cbD", "2026-11-03T19:50"),
        ("E", "cbE", "2026-11-01T12:00"),
        ("F", "cbF", "2026-11-02T17:00"),
    ):
        log.missed_call(
            call_id,
            f"1380000000{ord(caller) % 10}",
            f"hash-{caller}",
            "138****0000",
            reason="in_menu",
            at=at(missed_at),
        )
    log.close()  # flush: the attempts below need the entries' ids
    ids = {row["caller_hash"]: row["id"] for row in log.callbacks(None)}
    for caller, when, outcome, done in (
        ("A", "2026-11-02T15:10", "reached", True),
        ("B", "2026-11-02T16:45", "reached", True),
        ("E", "2026-11-01T12:05", "reached", True),
        ("F", "2026-11-02T17:05", "no_answer", False),
        ("F", "2026-11-02T17:50", "reached", True),
    ):
        assert log.callback_attempt(ids[f"hash-{caller}"], outcome, at(when), done)


@pytest.fixture(scope="module")
def table() -> RouteTable:
    return load(ROUTES_YAML)


@pytest.fixture(scope="module")
def logfile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("report") / "calllog.sqlite3"
    write_known_log(path)
    return path


@pytest.fixture(scope="module")
def rep(logfile: Path, table: RouteTable) -> report.Report:
    return report.build(report.load(SqliteCallLog(logfile), D1, D2), D1, D2, as_of=AS_OF, table=table)


def figures(**values: Any) -> Figures:
    """A Figures with everything zero/None except `values`."""
    base: dict[str, Any] = {f.name: 0 if f.type == "int" else None for f in dataclasses.fields(Figures)}
    return Figures(**{**base, **values})


# 市公安局 merge: routed c1-c5 (c6 took a message after hours); answered c1, c2, c5 (3/5 = 60 %);
# time to answer 6, 10, 27 -> mean 14.33, p90 = the 3rd of 3 = 27; c3 no answer, c4 busy; c3, c4, c5
# overflowed; c3 abandoned in the queue; c6 a message; rated 1, 2, 3 -> 2.0 and 1/3 satisfied;
# tickets due and decided: g-t1 in time, g-t2 late, c1's open past its deadline -> 1/3.
GONGAN_FIGURES = Figures(
    routed=5,
    dialled=5,
    answered=3,
    answered_pct=60.0,
    answer_mean_s=14.33,
    answer_p90_s=27.0,
    no_answer=1,
    busy=1,
    overflowed=3,
    abandoned_in_queue=1,
    messages=1,
    rated=3,
    satisfaction_avg=2.0,
    satisfied_pct=66.67,  # (满意 + 基本满意) / rated: scores 1, 2, 3
    tickets_due=3,
    tickets_within=1,
    within_deadline_pct=33.33,
    ended=6,
    person_15s=1,  # a person within 15 s of arrival: 1 of its 6 calls
    person_15s_pct=16.67,
    asked=2,  # the two that joined the operators' queue; one answered within 15 s of joining
    asked_15s=1,
    asked_15s_pct=50.0,
)
# 市旅发委 12301 direct: d1 answered in 4 s, d2 not (no answer, overflowed, a message); d1 rated 1;
# d1's ticket closed in time.
LVYOU_DIRECT = Figures(
    routed=2,
    dialled=2,
    answered=1,
    answered_pct=50.0,
    answer_mean_s=4.0,
    answer_p90_s=4.0,
    no_answer=1,
    busy=0,
    overflowed=1,
    abandoned_in_queue=0,
    messages=1,
    rated=1,
    satisfaction_avg=1.0,
    satisfied_pct=100.0,
    tickets_due=1,
    tickets_within=1,
    within_deadline_pct=100.0,
    ended=2,
    person_15s=1,
    person_15s_pct=50.0,
)
# via 12345: m1 in 8 s, m2 in 12 s (23:59 on the last day) -> mean 10, p90 = the 2nd of 2 = 12; m1 rated 1;
# m0's ticket (call on Oct 30, via the menu) due Nov 2 and still open.
LVYOU_VIA = Figures(
    routed=2,
    dialled=2,
    answered=2,
    answered_pct=100.0,
    answer_mean_s=10.0,
    answer_p90_s=12.0,
    no_answer=0,
    busy=0,
    overflowed=0,
    abandoned_in_queue=0,
    messages=0,
    rated=1,
    satisfaction_avg=1.0,
    satisfied_pct=100.0,
    tickets_due=1,
    tickets_within=0,
    within_deadline_pct=0.0,
    ended=2,
    person_15s=0,
    person_15s_pct=0.0,
)
LVYOU_TOTAL = Figures(
    routed=4,
    dialled=4,
    answered=3,
    answered_pct=75.0,
    answer_mean_s=8.0,
    answer_p90_s=12.0,
    no_answer=1,
    busy=0,
    overflowed=1,
    abandoned_in_queue=0,
    messages=1,
    rated=2,
    satisfaction_avg=1.0,
    satisfied_pct=100.0,
    tickets_due=2,
    tickets_within=1,
    within_deadline_pct=50.0,
    ended=4,
    person_15s=1,
    person_15s_pct=25.0,
)


def one_answered(seconds: float, person_within_15s: bool) -> Figures:
    return figures(
        routed=1,
        dialled=1,
        answered=1,
        answered_pct=100.0,
        answer_mean_s=seconds,
        answer_p90_s=seconds,
        ended=1,
        person_15s=int(person_within_15s),
        person_15s_pct=100.0 if person_within_15s else 0.0,
    )


# -- the per-unit table ----------------------------------------------------------------------------------------


def test_every_column_of_every_unit_with_calls(rep: report.Report) -> None:
    assert rep.unit("市公安局", "merge").total == GONGAN_FIGURES
    assert rep.unit("市旅发委", "transfer").total == LVYOU_TOTAL
    assert rep.unit("市旅发委", "merge").total == one_answered(5.0, person_within_15s=True)
    assert rep.unit("市民政局", "merge").total == one_answered(5.0, person_within_15s=True)
    assert rep.unit("市人社局", "interconnect").total == one_answered(9.0, person_within_15s=False)


def test_ranks_by_answer_rate_then_time_to_answer_with_shared_ranks(rep: report.Report) -> None:
    ranked = [(r.rank, r.unit, r.mode) for r in rep.units if r.rank is not None]
    assert ranked == [
        (1, "市民政局", "merge"),  # 100 %, 5 s — equal to the next row: both 1st (routes.yaml order)
        (1, "市旅发委", "merge"),  # 100 %, 5 s
        (3, "市人社局", "interconnect"),  # 100 %, 9 s
        (4, "市旅发委", "transfer"),  # 75 %
        (5, "市公安局", "merge"),  # 60 %
    ]
    assert rep.units[:5] == tuple(rep.unit(u, m) for _, u, m in ranked)  # the table is in rank order


def test_a_dual_track_row_is_split_by_track_and_others_are_not(rep: report.Report) -> None:
    row = rep.unit("市旅发委", "transfer")
    assert (row.direct, row.via_12345) == (LVYOU_DIRECT, LVYOU_VIA)
    assert [t for t, _ in row.tracks()] == ["total", "direct", "via_12345"]
    for merge_or_interconnect in (rep.unit("市公安局", "merge"), rep.unit("市人社局", "interconnect")):
        assert merge_or_interconnect.direct is None and merge_or_interconnect.via_12345 is None
        assert [t for t, _ in merge_or_interconnect.tracks()] == ["total"]
    # every dual-track row of routes.yaml is split, even without calls
    assert all(r.direct is not None for r in rep.units if r.mode == "transfer")


def test_units_without_calls_are_listed_unranked_with_zero_figures(rep: report.Report, table: RouteTable) -> None:
    pairs = {(r.unit, r.mode.value) for r in table.routes.values()}
    assert {(r.unit, r.mode) for r in rep.units} == pairs
    idle = rep.unit("市发改委", "merge")
    assert idle.rank is None and idle.total == figures()
    assert all(r.rank is None for r in rep.units[5:])


def test_all_units_together(rep: report.Report) -> None:
    # times to answer 6 10 27 4 8 12 5 5 9 (sum 86, 9 calls): mean 9.56, p90 = the 9th of 9 = 27;
    # scores 1 2 3 1 1; unit tickets: 市公安局 1 of 3 + 市旅发委 1 of 2 (the operator's ticket has no unit).
    assert rep.total == Figures(
        routed=12,
        dialled=12,
        answered=9,
        answered_pct=75.0,
        answer_mean_s=9.56,
        answer_p90_s=27.0,
        no_answer=2,
        busy=1,
        overflowed=4,
        abandoned_in_queue=1,
        messages=2,
        rated=5,
        satisfaction_avg=1.6,
        satisfied_pct=80.0,  # scores 1, 2, 3, 1, 1
        tickets_due=5,
        tickets_within=2,
        within_deadline_pct=40.0,
        ended=13,
        person_15s=4,
        person_15s_pct=30.77,
        asked=2,
        asked_15s=1,
        asked_15s_pct=50.0,
    )


# -- centre indicators -----------------------------------------------------------------------------------------


def test_centre_indicators(rep: report.Report) -> None:
    assert rep.centre == CentreFigures(
        calls=17,  # 12 on Nov 2, 5 on Nov 3
        # a person within 15 s of arrival: 9 12 15 15 of the times to a human below, over all 17 ended calls
        person_15s=4,
        person_15s_pct=23.53,
        asked=3,  # the calls with a queue_joined step; 1 answered within 15 s of joining
        asked_15s=1,
        asked_15s_pct=33.33,
        ended=17,
        connected=11,
        connection_pct=64.71,  # nobody answered c3, a1 (abandoned), g1 (goodbye), x1 (failed), c6, d2 (messages)
        connection_target_pct=95.0,
        days_with_calls=2,
        days_meeting_target=1,
        # to a human: 9 12 15 15 20 20 20 25 30 30 37 (233 / 11); p50 the 6th, p90 the 10th
        time_to_human=Spread(n=11, mean_s=21.18, p50_s=20.0, p90_s=30.0),
        # A called back in 10 min; B after 45; C never (its 30 min are over); F's latest try was 50 min
        # after (only the latest attempt's time is kept); D's 30 min still run at AS_OF; E is before the period
        callback_minutes=30,
        callbacks_due=4,
        callbacks_within=2,  # A at 10 min; F's first try at 5 min (unanswered; reached at 50 min) counts
        callback_pct=50.0,
        tickets_due=6,
        tickets_within=3,
        within_deadline_pct=50.0,  # the 5 unit tickets + the operator's
        messages=2,  # beside the rate: c6, d2
        goodbyes=1,
        abandoned=2,
    )


def test_connection_rate_per_day_against_the_95_percent_target(rep: report.Report) -> None:
    assert rep.days == (
        DayFigures(D1, calls=12, ended=12, connected=6, connection_pct=50.0, meets_target=False),
        DayFigures(D2, calls=5, ended=5, connected=5, connection_pct=100.0, meets_target=True),
    )


def test_callback_minutes_is_the_window_judged(logfile: Path, table: RouteTable) -> None:
    rows = report.load(SqliteCallLog(logfile), D1, D2)
    hour = report.build(rows, D1, D2, as_of=AS_OF, table=table, callback_minutes=60).centre
    # A (10 min), B (45) and F (50) within the hour; C not; D's hour still runs at AS_OF
    assert (hour.callback_minutes, hour.callbacks_due, hour.callbacks_within, hour.callback_pct) == (60, 4, 3, 75.0)


def test_build_is_pure_and_filters_the_period_itself(logfile: Path, table: RouteTable, rep: report.Report) -> None:
    log = SqliteCallLog(logfile)
    everything = report.CallLogRows(
        calls=log.calls(),
        steps={c["call_id"]: log.steps(c["call_id"]) for c in log.calls()},
        tickets=log.tickets(),
        callbacks=report.with_first_attempts(log, log.callbacks(None)),
    )
    assert (len(everything.calls), len(everything.tickets), len(everything.callbacks)) == (20, 9, 6)
    assert report.build(everything, D1, D2, as_of=AS_OF, table=table) == rep


# -- the period: local dates, inclusive -------------------------------------------------------------------------


def test_the_period_is_inclusive_in_local_time(tmp_path: Path) -> None:
    assert report.window(D1, D2) == (
        dt.datetime(2026, 11, 1, 16, 0, tzinfo=dt.UTC).timestamp(),  # 11-02 00:00 in Shanghai
        dt.datetime(2026, 11, 3, 16, 0, tzinfo=dt.UTC).timestamp(),
    )  # 11-04 00:00 in Shanghai
    log = SqliteCallLog(tmp_path / "log.sqlite3")
    log.start()
    for call_id, start in (
        ("before", "2026-11-01T23:59:59"),
        ("first", "2026-11-02T00:00:00"),
        ("last-minute", "2026-11-03T23:59:00"),
        ("last-second", "2026-11-03T23:59:59"),
        ("next-day", "2026-11-04T00:00:00"),
    ):
        put(
            log,
            call_id,
            start,
            route=GONGAN,
            dial_status="ANSWER",
            human=5,
            steps=(dial(5, "department", "ANSWER", 5),),
        )
    log.close()
    rows = report.load(log, D1, D2)
    assert sorted(c["call_id"] for c in rows.calls) == ["first", "last-minute", "last-second"]
    built = report.build(rows, D1, D2, as_of=AS_OF)
    assert built.centre.calls == 3 and [(d.day, d.calls) for d in built.days] == [(D1, 1), (D2, 2)]
    assert built.unit("市公安局", "merge").total.routed == 3
    one_day = report.build(report.load(log, D2, D2), D2, D2, as_of=AS_OF)
    assert one_day.centre.calls == 2


def test_a_period_ending_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="before it starts"):
        report.build(report.CallLogRows([], {}, [], []), D2, D1, as_of=AS_OF)


def test_nearest_rank_percentiles() -> None:
    assert report.nearest_rank([], 90) is None
    assert report.nearest_rank([7.0], 90) == 7.0
    values = [float(v) for v in range(1, 11)]  # 1..10: p90 is the 9th, p50 the 5th
    assert (report.nearest_rank(values, 90), report.nearest_rank(values, 50)) == (9.0, 5.0)
    assert report.nearest_rank([3.0, 1.0, 2.0], 90) == 3.0


# -- the number ledger ------------------------------------------------------------------------------------------


def test_the_ledger_lists_all_50_published_numbers(rep: report.Report, table: RouteTable) -> None:
    assert len(rep.ledger) == 50 == len(table.routes)
    assert [r.number for r in rep.ledger] == [r.number for r in table.routes.values()]
    by_id = {r.route_id: r for r in rep.ledger}
    assert all(r.live for r in rep.ledger)
    gongan = by_id["gongan"]
    assert (gongan.number, gongan.mode, gongan.effective, gongan.dial, gongan.menu_keys, gongan.direct_dial) == (
        "3372000",
        "merge",
        dt.date(2016, 7, 31),
        "PJSIP/3372000@departments",
        "1",
        False,
    )
    lvyou = by_id["lvyou-12301"]
    assert (lvyou.mode, lvyou.direct_dial, lvyou.menu_keys, lvyou.line_name) == ("transfer", True, "63", "旅游服务")
    laodong = by_id["laodong-12333"]
    assert (laodong.partner, laodong.menu_keys, laodong.dial, laodong.direct_dial) == (
        "public-services",
        "22",
        "PJSIP/12333@partners",
        True,
    )
    assert by_id["fagaiwei"].menu_keys == "93022782#"  # not in the menu tree: number entry
    assert sum(r.mode == "merge" for r in rep.ledger) == 31 and sum(r.mode == "transfer" for r in rep.ledger) == 7


def test_a_period_on_a_provisional_calendar_is_flagged(rep: report.Report, table: RouteTable) -> None:
    assert rep.calendar == ""  # November 2026: chinese-calendar has the notice
    empty = report.CallLogRows([], {}, [], [])
    january = report.build(empty, dt.date(2027, 1, 1), dt.date(2027, 1, 31), as_of=AS_OF, table=table)
    assert january.calendar.startswith("PROVISIONAL holiday calendar for 2027: no State Council notice entered")
    assert "no make-up workdays (调休)" in january.calendar


# -- definitions written once ----------------------------------------------------------------------------------------


def test_a_caller_who_hangs_up_while_connecting_is_routed_but_not_dialled_and_not_against_the_unit(
    tmp_path: Path, table: RouteTable
) -> None:
    log = SqliteCallLog(tmp_path / "calllog.sqlite3")
    log.start()
    answer, busy = dial(12, "department", "ANSWER", 6), dial(12, "department", "BUSY", 1)
    put(log, "ok", "2026-11-02T09:00:00", route=GONGAN, dial_status="ANSWER", steps=(answer,))
    put(log, "busy", "2026-11-02T09:10:00", route=GONGAN, dial_status="BUSY", steps=(busy,))
    # Hung up during "connecting": the decision was to dial, no line of the unit was ever dialled.
    put(log, "gone", "2026-11-02T09:20:00", route=GONGAN, answered=2.0, outcome="abandoned")
    log.close()
    rows = report.load(SqliteCallLog(tmp_path / "calllog.sqlite3"), D1, D1)
    got = report.build(rows, D1, D1, as_of=AS_OF, table=table)
    gongan = got.unit("市公安局", "merge").total
    assert (gongan.routed, gongan.dialled, gongan.answered, gongan.answered_pct) == (3, 2, 1, 50.0)
    assert got.unit("市公安局", "merge").rank == 1


def test_satisfaction_counts_satisfied_and_basically_satisfied(tmp_path: Path, table: RouteTable) -> None:
    log = SqliteCallLog(tmp_path / "calllog.sqlite3")
    log.start()
    for n, score in enumerate((1, 2, 2, 3)):
        put(
            log,
            f"s{n}",
            f"2026-11-02T09:{n:02d}:00",
            route=GONGAN,
            dial_status="ANSWER",
            satisfaction=score,
            steps=(dial(12, "department", "ANSWER", 6),),
        )
    log.close()
    rows = report.load(SqliteCallLog(tmp_path / "calllog.sqlite3"), D1, D1)
    got = report.build(rows, D1, D1, as_of=AS_OF, table=table)
    gongan = got.unit("市公安局", "merge").total
    assert (gongan.rated, gongan.satisfied_pct, gongan.satisfaction_avg) == (4, 75.0, 2.0)  # (1 + 2) / 4 rated


def comment_text(path: Path) -> str:
    """Every comment of a YAML file run together, '#' and line breaks gone: what a reader reads."""
    lines = [line.split("#", 1)[1] for line in path.read_text(encoding="utf-8").splitlines() if "#" in line]
    return " ".join(" ".join(lines).split())


def test_the_glossary_and_the_recording_rules_say_the_same_words() -> None:
    rules = comment_text(ROUTES_YAML.parent / "monitoring" / "alerts.yml")
    assert report.DEFINITIONS["satisfaction"][1] == report.SATISFACTION
    assert report.DEFINITIONS["answered"][1] == report.DEPARTMENT_ANSWERED
    assert " ".join(report.DEPARTMENT_ANSWERED.split()) in rules, "alerts.yml no longer quotes the answered %"
    first_sentence = report.SATISFACTION.split(" Also")[0]
    assert " ".join(first_sentence.split()) in rules, "alerts.yml no longer quotes the report's satisfaction rate"
    assert report.DEFINITIONS["connection_rate"][1] == report.CONNECTION_RATE
    assert " ".join(report.CONNECTION_RATE.split()) in rules, "alerts.yml no longer quotes the connection rate"
    assert report.DEFINITIONS["person_15s"][1] == report.PERSON_WITHIN_15S
    assert report.DEFINITIONS["queue_15s"][1] == report.QUEUE_WITHIN_15S
    assert " ".join(report.PERSON_WITHIN_15S.split()) in rules, "alerts.yml no longer quotes the 15 s indicator"
    assert " ".join(report.QUEUE_WITHIN_15S.split()) in rules, "alerts.yml no longer quotes the queue's 15 s view"


# -- answered by a person within 15 s (PERSON_WITHIN_15S, QUEUE_WITHIN_15S) -----------------------------------


def test_the_caller_asks_for_a_person_at_the_first_decision_to_put_them_through_or_queue_join() -> None:
    menu_then_zero = [("menu", 1.0, {}), ("key", 19.0, {"key": "0"}), ("decided", 19.5, {"action": "operator"})]
    assert report.asked_at(menu_then_zero) == 19.5
    assert report.asked_at([("decided", 22.0, {"action": "dial"})]) == 22.0  # a route chosen (or a time-out)
    assert report.asked_at([("decided", 8.0, {"action": "handoff"})]) == 8.0
    # human-first: queued at once, the menu's choice comes later while waiting
    assert report.asked_at([("queue_joined", 2.0, {}), ("decided", 9.0, {"action": "dial"})]) == 2.0
    for not_a_person in ("message", "hangup", "progress"):
        assert report.asked_at([("decided", 5.0, {"action": not_a_person})]) is None
    assert report.asked_at([]) is None


def test_a_person_within_15_s_counts_from_arrival_and_from_asking() -> None:
    # the menu took 20 s, then the operator answered 5 s after 0: not within of arrival, within of asking
    assert report.person_within_15s(100.0, 120.0, 125.0) == (False, True)
    assert report.person_within_15s(100.0, 101.0, 115.0) == (True, True)  # exactly 15 s counts
    assert report.person_within_15s(100.0, 101.0, 116.5) == (False, False)
    assert report.person_within_15s(100.0, None, 110.0) == (True, False)  # never asked: only the citizen's view
    assert report.person_within_15s(100.0, 101.0, None) == (False, False)  # nobody answered


def test_the_15_s_indicators_count_every_call_offered_and_every_call_that_asked(
    tmp_path: Path, table: RouteTable
) -> None:
    log = SqliteCallLog(tmp_path / "calllog.sqlite3")
    log.start()
    asked = lambda at, action: (at, "decided", {"action": action})  # noqa: E731
    # 0 pressed at 20 s (end of the menu), operator at 26 s: within of asking only
    put(
        log,
        "op",
        "2026-11-02T09:00:00",
        decision="operator",
        human=26,
        outcome="operator",
        steps=(asked(20, "operator"),),
    )
    # a short number: route chosen at once, the unit answered at 7 s: within both ways
    put(log, "unit", "2026-11-02T09:10:00", route=GONGAN, dial_status="ANSWER", human=7, steps=(asked(0.5, "dial"),))
    # route chosen at 18 s, nobody answered (a message): asked, not within
    put(log, "msg", "2026-11-02T09:20:00", route=GONGAN, outcome="message", steps=(asked(18, "dial"),))
    put(log, "bye", "2026-11-02T09:25:00", decision="hangup", outcome="goodbye", steps=(asked(30, "hangup"),))
    put(log, "ast-1", "2026-11-02T09:30:00", decision="", answered=None, outcome="refused")
    put(log, "ast-2", "2026-11-02T09:40:00", decision="", answered=None, outcome="fallback")
    log.close()
    got = report.build(
        report.load(SqliteCallLog(tmp_path / "calllog.sqlite3"), D1, D1), D1, D1, as_of=AS_OF, table=table
    )
    c = got.centre
    assert (c.person_15s, c.ended, c.person_15s_pct) == (1, 6, 16.67)  # refused and fallback: offered, not within
    assert (c.asked_15s, c.asked, c.asked_15s_pct) == (2, 3, 66.67)
    gongan = got.unit("市公安局", "merge").total
    assert (gongan.person_15s, gongan.ended, gongan.asked_15s, gongan.asked) == (1, 2, 1, 2)


def test_a_caller_who_heard_a_tickets_progress_is_shown_beside_the_connection_rate(
    tmp_path: Path, table: RouteTable
) -> None:
    log = SqliteCallLog(tmp_path / "calllog.sqlite3")
    log.start()
    put(log, "op", "2026-11-02T09:00:00", decision="operator", human=20, outcome="operator")
    put(log, "inf", "2026-11-02T09:05:00", decision="progress", outcome="informed")
    log.close()
    c = report.build(
        report.load(SqliteCallLog(tmp_path / "calllog.sqlite3"), D1, D1), D1, D1, as_of=AS_OF, table=table
    ).centre
    assert (c.informed, c.ended, c.connected, c.connection_pct) == (1, 2, 1, 50.0)


def test_refused_and_fallback_calls_are_offered_and_shown_beside_the_connection_rate(
    tmp_path: Path, table: RouteTable
) -> None:
    log = SqliteCallLog(tmp_path / "calllog.sqlite3")
    log.start()
    put(log, "op", "2026-11-02T09:00:00", decision="operator", answered=1, human=20, outcome="operator")
    put(log, "unit", "2026-11-02T09:10:00", route=GONGAN, answered=1, dial_status="ANSWER", human=12)
    put(log, "msg", "2026-11-02T09:20:00", route=GONGAN, decision="message", outcome="message")
    put(log, "ast-1", "2026-11-02T09:30:00", decision="", answered=None, outcome="refused")
    put(log, "ast-2", "2026-11-02T09:40:00", decision="", answered=None, outcome="fallback")
    log.close()
    rows = report.load(SqliteCallLog(tmp_path / "calllog.sqlite3"), D1, D1)
    centre = report.build(rows, D1, D1, as_of=AS_OF, table=table).centre
    # A person answered 2 of the 5 offered; the message, the refused and the fallback call are beside it.
    assert (centre.ended, centre.connected, centre.connection_pct) == (5, 2, 40.0)
    assert (centre.messages, centre.refused, centre.fallback, centre.goodbyes, centre.abandoned) == (1, 1, 1, 0, 0)


# -- time to a person per intake policy (issue 16) ----------------------------------------------------------


def test_time_to_a_person_is_reported_per_intake(tmp_path: Path) -> None:
    log = SqliteCallLog(tmp_path / "calllog.sqlite3")
    log.start()

    def met(intake: str) -> tuple[tuple[float, str, dict[str, Any]], ...]:
        return ((0.1, "answered", {"intake": intake}),)

    # menu: a silent caller put through at 18 s, one at 9 s, one who gave up; one logged before intakes were kept.
    put(log, "m1", "2026-11-02T09:00:00", decision="operator", outcome="operator", human=18, steps=met("menu"))
    put(log, "m2", "2026-11-02T09:05:00", decision="operator", outcome="operator", human=9, steps=met("menu"))
    put(log, "m3", "2026-11-02T09:10:00", decision="", outcome="abandoned", steps=met("menu"))
    put(log, "m4", "2026-11-02T09:15:00", decision="operator", outcome="operator", human=12)
    # human-first: a seat at 3 s; a department picked from the menu while waiting, answered at 16 s.
    put(log, "h1", "2026-11-02T09:20:00", decision="operator", outcome="operator", human=3, steps=met("human-first"))
    put(log, "h2", "2026-11-02T09:25:00", route=GONGAN, dial_status="ANSWER", human=16, steps=met("human-first"))
    # a short number dialled directly, answered at 5 s.
    put(
        log,
        "d1",
        "2026-11-02T09:30:00",
        route=LVYOU,
        track="direct",
        dial_status="ANSWER",
        human=5,
        steps=met("direct"),
    )

    log.close()
    logged = report.load(SqliteCallLog(tmp_path / "calllog.sqlite3"), D1, D1)
    rows = report.build(logged, D1, D1, as_of=AS_OF).intakes

    assert rows == (
        # 4 calls, 3 reached a person (18, 9, 12 s), 2 within 15 s = 50 % of 4; mean 13, p90 = 3rd of 3 = 18
        report.IntakeRow("menu", 4, 3, 2, 50.0, 13.0, 18.0),
        # 2 calls, both to a person (3, 16 s), 1 within 15 s = 50 %; mean 9.5, p90 = 16
        report.IntakeRow("human-first", 2, 2, 1, 50.0, 9.5, 16.0),
        report.IntakeRow("direct", 1, 1, 1, 100.0, 5.0, 5.0),
    )


def test_operators_transfers_are_counted_per_destination_unit_with_their_success() -> None:
    def step(unit: str, kind: str, outcome: str, answered: bool) -> dict[str, object]:
        detail = {"unit": unit, "kind": kind, "outcome": outcome, "answered_at": 1.0 if answered else None}
        return {"name": "transfer", "detail": {**detail, "handed_over": outcome in ("completed", "connected")}}

    rows = report.transfer_rows(
        [
            step("市公安局", "consult", "completed", True),
            step("市公安局", "consult", "cancelled", True),
            step("市公安局", "blind", "requeued", False),
            step("110报警服务台", "three-way", "operator_left", True),
        ]
    )
    police, emergency = rows
    assert (police.unit, police.transfers, police.consult, police.blind) == ("市公安局", 3, 2, 1)
    assert (police.answered, police.handed_over, police.handed_over_pct) == (2, 1, pytest.approx(33.3, abs=0.1))
    assert (emergency.three_way, emergency.answered, emergency.handed_over) == (1, 1, 0)  # handed_over as recorded


def test_handling_satisfaction_from_followups_is_apart_from_the_call_survey() -> None:
    inside, outside = at("2026-11-02T11:00"), at("2026-10-30T11:00")
    followups = [
        {"ticket_id": "t1", "satisfaction": 1, "answered_at": inside},
        {"ticket_id": "t2", "satisfaction": 3, "answered_at": inside},
        {"ticket_id": "t3", "satisfaction": 2, "answered_at": inside},
        {"ticket_id": "t4", "satisfaction": 3, "answered_at": outside},  # another period
        {"ticket_id": "t5", "satisfaction": None, "answered_at": None},  # opted out: no rating
    ]
    centre = report.build(report.CallLogRows([], {}, [], [], followups=followups), D1, D2, as_of=AS_OF).centre
    assert (centre.followups_rated, centre.handling_satisfaction_avg, centre.handling_satisfied_pct) == (3, 2.0, 66.67)
