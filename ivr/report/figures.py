"""通报考核: the per-department assessment report, computed from the call log.

`hotline report --from 2026-11-01 --to 2026-11-30 --format html --out november.html`

Three layers, each usable on its own:

- `load(log, start, end)` reads what the report needs from the call log (`CallLogRows`);
- `build(rows, start, end, as_of=..., table=...)` computes a typed `Report` from those rows — pure:
  no I/O, no clock (the report time `as_of` is an argument), so the figures are testable exactly;
- `ivr.report.render` turns a Report into bytes (JSON, CSV, or an HTML page from templates/).

Dates are local dates (Asia/Shanghai), both ends inclusive: the period runs from local midnight
of `start` to local midnight after `end`, and a call belongs to the local day it arrived
(`started_at`). Every figure's exact definition is in DEFINITIONS below; each output carries
them, so whoever reads a 通报 can see how a number was counted.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from ivr.calllog import CallLog
from ivr.outbound.store import callback_attempts, followups
from ivr.recording import catalog
from ivr.recording.qa import group_of
from ivr.routing.routes import Mode, RouteTable
from ivr.tickets import from_epoch, to_epoch

Row = Mapping[str, Any]

ANSWER_WITHIN_SECONDS = 15  # national 12345 indicator: the hotline answers within 15 s
CONNECTION_TARGET_PCT = 95.0  # national 12345 indicator: 24-hour connection rate >= 95 %
DEFAULT_CALLBACK_MINUTES = 30
ROUTED_DECISIONS = ("dial", "handoff")  # the controller put the call through to a unit's line
UNIT_LEGS = ("department", "overflow")  # dial legs on the unit's own ring chain (not the operators)
PERSON_ANSWERED_OUTCOMES = ("connected", "operator")  # CONNECTION_RATE: a person answered
# Shown beside the rate, not inside it: CentreFigures' field for each outcome.
BESIDE_FIELDS = {
    "messages": "message",
    "goodbyes": "goodbye",
    "informed": "informed",
    "abandoned": "abandoned",
    "refused": "refused",
    "fallback": "fallback",
}
_MODE_ORDER = {m.value: i for i, m in enumerate(Mode)}

# Two definitions written once: the report's glossary says these words, and monitoring/alerts.yml's
# recording rules quote them (tests/unit/report/test_figures.py checks they stay the same words).
DEPARTMENT_ANSWERED = (
    "Department answered % = calls dialled to the unit that a person at the unit answered (its first line or an "
    "overflow line) / calls dialled to the unit: per call, not per attempt. Dialled: a line of the unit's ring "
    "chain was rung to its end (a department or overflow dial step); a caller who hung up before that (during "
    '"connecting", or while its first line still rang) is routed but not dialled and does not count against the '
    "unit. Answered: the chain ended in ANSWER "
    "(calls.dial_status, the result of the last department/overflow leg). A call the 12345 operators took after "
    "the unit failed is not the unit's."
)
SATISFACTION = (
    "Satisfaction rate (满意率) = (满意 + 基本满意) / rated: calls rated 1 (满意, satisfied) or 2 (基本满意, "
    "basically satisfied) / calls rated 1, 2 or 3 (不满意, dissatisfied), as 12345 satisfaction rates count. "
    "Also the average score (lower is better)."
)
CONNECTION_RATE = (
    "24 h connection rate (24小时接通率) = calls a person answered / calls offered. Offered: every call Asterisk "
    "accepted for a hotline number, once it has ended: the calls the controller carried, the calls it refused "
    "under overload (outcome refused) and the calls the dialplan fallback took while it was down (outcome "
    "fallback), both counted from Asterisk's own record. A person answered: outcome connected (a person at the "
    "unit or partner) or operator (a 12345 operator). Messages, goodbyes, abandoned, refused and fallback calls "
    "are shown beside it, not inside it; a fallback call counts as offered and not answered (Asterisk records "
    "that the fallback took it, not whether the duty line answered). Target >= 95 % every day."
)

PERSON_WITHIN_15S = (
    "Answered by a person within 15 s (15秒人工接听率), the citizen's view = calls whose first person (a unit's "
    "line or a 12345 operator) answered within 15 s of the call's arrival (target_answered_at - started_at <= 15 s) "
    "/ calls offered (as for the connection rate: every ended call, refused and fallback calls included; they, and "
    "every call no person answered, count as not within). For the centre, and per unit by the route chosen."
)
QUEUE_WITHIN_15S = (
    "Answered by a person within 15 s of asking (请求人工15秒接听率), the queue's view = calls a person answered "
    "within 15 s of the moment the caller asked for one (target_answered_at - asked <= 15 s) / calls that asked. "
    "Asked: the first decided step putting the call through to a person (dial, handoff or operator: 0 pressed, "
    "the menu timed out, or a route chosen) or the first queue_joined step (human-first queues at once), "
    "whichever came first. For the centre, and per unit by the route chosen."
)
# Call-log steps that mark the caller asking for a person (QUEUE_WITHIN_15S).
ASKED_STEPS = ("decided", "queue_joined")
_PERSON_ACTIONS = ("dial", "handoff", "operator")


def asked_at(steps: Iterable[tuple[str, float, Mapping[str, Any]]]) -> float | None:
    """QUEUE_WITHIN_15S: when the caller asked for a person, from its (name, at, detail) steps; None if never."""
    times = [
        at
        for name, at, detail in steps
        if name == "queue_joined" or (name == "decided" and str(detail.get("action", "")) in _PERSON_ACTIONS)
    ]
    return min(times) if times else None


def person_within_15s(started_at: float, asked: float | None, target_answered_at: float | None) -> tuple[bool, bool]:
    """(PERSON_WITHIN_15S, QUEUE_WITHIN_15S) for one call: answered by a person within 15 s of arrival / of asking."""
    if target_answered_at is None:
        return False, False
    return (
        target_answered_at - started_at <= ANSWER_WITHIN_SECONDS,
        asked is not None and target_answered_at - asked <= ANSWER_WITHIN_SECONDS,
    )


TRANSFERS = (
    "Operators' transfers (转办), per destination unit (or emergency line): every consult, three-way and blind "
    'transfer an operator started from the seat phone or the operators\' API, one call-log "transfer" step each. '
    "Answered: the unit's line answered. Handed over: the citizen was left talking with the unit — a consult "
    "completed, a three-way the operator left, or a blind transfer answered. Handed-over % = handed over / "
    "transfers. A blind transfer nobody answered is counted here and its caller went back to the operators' queue."
)

QA = (
    "录音抽检 Quality review, per unit (calls a department took) and per operator seat (calls an operator took): "
    "Recorded: the group's calls of the period with a call recording (what `hotline qa sample` draws from). "
    "Scored: those with a score form (`hotline qa score`). Per criterion: the mean of its points over the scored "
    "calls (criteria of qa.yaml, by id). Overall: the mean of each scored call's total points."
)

DEFINITIONS: dict[str, tuple[str, str]] = {
    "transfers": ("转办 Operators' transfers", TRANSFERS),
    "qa": ("录音抽检 Quality review", QA),
    "period": (
        "统计周期 Period",
        (
            "Local dates (Asia/Shanghai), both ends inclusive: from 00:00 of --from to 24:00 of --to. A call counts "
            "on the local day it arrived (started_at); a ticket in the period whose deadline (deadline_at) falls in "
            "it; a callback entry whose last missed call (last_missed_at) falls in it."
        ),
    ),
    "routed": (
        "转办量 Calls routed",
        (
            "Calls the controller put through to the unit's line (decision dial, or handoff for interconnect "
            "lines), by the unit and mode of the route chosen when the call came in. After-hours calls that only "
            "left a message are not routed (they count under messages)."
        ),
    ),
    "answered": ("部门接通率 Department answered %", DEPARTMENT_ANSWERED),
    "time_to_answer": (
        "应答时长 Time to answer",
        (
            "Seconds from the start of the department dial to the unit's answer, over answered calls: the dial "
            "step's ring_seconds when the department line itself answered; target_answered_at - (department dial "
            "step's at - its ring_seconds) when an overflow line answered. Mean, and p90 by nearest rank (the "
            "ceil(0.9 n)-th smallest value)."
        ),
    ),
    "no_answer": ("未接 No answer", "Routed calls whose unit ring chain ended NOANSWER (calls.dial_status)."),
    "busy": ("占线 Busy", "Routed calls whose unit ring chain ended BUSY (calls.dial_status)."),
    "overflowed": (
        "溢出 Overflowed",
        (
            "Routed calls whose department line failed, so the chain went on to an overflow line or the 12345 "
            "operators (calls.overflowed)."
        ),
    ),
    "abandoned_in_queue": (
        "排队放弃 Abandoned in queue",
        (
            "The unit's calls whose caller hung up while waiting for an operator after the unit failed "
            "(a queue_left step with abandoned)."
        ),
    ),
    "messages": (
        "留言 Messages",
        (
            "The unit's calls that ended in a message (outcome message): after its hours, or when neither the "
            "unit nor the operators answered."
        ),
    ),
    "satisfaction": ("满意率 Satisfaction", SATISFACTION),
    "within_deadline": (
        "按时办结率 Closed within deadline %",
        (
            "Tickets whose deadline falls in the period: closed with closed_at <= deadline_at counts as within; "
            "closed later, or still open with the deadline passed at the report time, counts as not within; an "
            "open ticket not yet due at the report time is left out. A ticket counts for its unit and mode, and "
            "on a dual-track row for the track of the call that opened it."
        ),
    ),
    "rank": (
        "排名 Rank",
        (
            "Rows with calls dialled, by department answered % (higher first), ties by mean time to answer (shorter "
            "first, none last). Rows equal on both share a rank (1, 1, 3). Rows with no calls dialled are not ranked."
        ),
    ),
    "modes": (
        "接入方式 By mode",
        (
            "All units of one mode together (merge 归并, transfer 双号并行, interconnect 互联), counted as for one "
            "unit: the calls and due tickets of every route of that mode; units = the unit rows of that mode."
        ),
    ),
    "tracks": (
        "双号并行 Dual-track rows",
        (
            "A transfer (dual-track) row is split by track: direct = its short number dialled directly; via "
            "12345 = reached through the 12345 menu; total = both."
        ),
    ),
    "person_15s": ("15秒人工接听率 Answered by a person within 15 s %", PERSON_WITHIN_15S),
    "queue_15s": ("请求人工15秒接听率 Answered within 15 s of asking for a person %", QUEUE_WITHIN_15S),
    "connection_rate": ("24小时接通率 Connection rate (24 h)", CONNECTION_RATE),
    "beside": (
        "接通率旁列 Beside the connection rate",
        (
            "Offered calls that ended as a message (留言), goodbye (no valid choice), informed (heard how their "
            "ticket stands, 查询办理进度), abandoned (hung up before "
            "reaching anyone), refused (SIP 503 under overload) or fallback (controller down): counted, not "
            "inside the rate. The report counts each per local day and for the period."
        ),
    ),
    "time_to_human": (
        "人工接通时长 Time to a human",
        (
            "Seconds from arrival (started_at) to the first person answering, department or operator "
            "(target_answered_at), over calls that reached one: mean, p50 and p90 by nearest rank."
        ),
    ),
    "intake": (
        "按受理方式人工接通 Time to a person by intake",
        (
            "Calls by the intake they met (routes.yaml menu_policy.intake, kept in each call's 'answered' step: "
            "menu = the menu first, human-first = queued for a person at once with the menu as a shortcut, "
            "direct = a short number dialled directly; calls logged before intakes were recorded count as menu): "
            "calls, calls a person (department or operator) answered, those answered within 15 s of arrival and "
            "their share of all the intake's calls, and seconds from arrival to the person: mean and p90 by "
            "nearest rank."
        ),
    ),
    "callback": (
        "N分钟回拨率 Called back within N min %",
        (
            "Callback-list entries (漏接回拨) whose last missed call falls in the period: within when the first "
            "attempt to call the citizen after their last missed call (every attempt is kept, the system's "
            "automatic ones and the operators') was made by last_missed_at + N minutes, answered or not; a "
            "later retry does not make a late first attempt timely, nor an early unanswered one late. An "
            "attempt where no operator seat answered did not call the citizen and is not judged. Entries "
            "not yet called back whose N minutes are still running at the report time are left out."
        ),
    ),
    "handling_satisfaction": (
        "办理满意率 Handling satisfaction (回访)",
        (
            "From the follow-up calls (回访) made after tickets were closed, answered in the period: the "
            "citizen's 1-3 rating of how the matter was handled, as the satisfaction rate above counts "
            "(满意 + 基本满意) / rated. Apart from the post-call survey, which rates the call itself; a 3 "
            "reopens the ticket for review."
        ),
    ),
    "centre_tickets": (
        "全部工单按时办结率 All tickets within deadline %",
        (
            "The within-deadline rule above over every ticket due in the period: the units', the operators' "
            "and messages'."
        ),
    ),
    "ledger": (
        "号码台账 Number ledger",
        (
            "Every published number in routes.yaml: its mode, the date it went live, the dial string of its ring "
            "chain (line, then overflow lines), the partner platform of an interconnect line, and the 12345 menu "
            "keys that reach it at the report time (ivr.routing.menu.reachable; 9<number># is number entry)."
        ),
    ),
}


# -- the report -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """One unit's figures (a row, or one track of a dual-track row); percentages are 0-100."""

    routed: int
    dialled: int  # routed calls whose unit's ring chain was dialled (DEPARTMENT_ANSWERED)
    answered: int
    answered_pct: float | None
    answer_mean_s: float | None
    answer_p90_s: float | None
    no_answer: int
    busy: int
    overflowed: int
    abandoned_in_queue: int
    messages: int
    rated: int
    satisfaction_avg: float | None
    satisfied_pct: float | None
    tickets_due: int
    tickets_within: int
    within_deadline_pct: float | None
    # PERSON_WITHIN_15S and QUEUE_WITHIN_15S over the row's ended calls.
    ended: int = 0
    person_15s: int = 0
    person_15s_pct: float | None = None
    asked: int = 0
    asked_15s: int = 0
    asked_15s_pct: float | None = None


@dataclass(frozen=True)
class UnitRow:
    unit: str
    mode: str
    rank: int | None
    total: Figures
    direct: Figures | None = None  # dual-track (transfer) rows: the short number dialled directly
    via_12345: Figures | None = None  # ... and reached through the 12345 menu

    def tracks(self) -> list[tuple[str, Figures]]:
        """("total", ...) then, on a dual-track row, ("direct", ...) and ("via_12345", ...)."""
        out = [("total", self.total)]
        if self.direct is not None and self.via_12345 is not None:
            out += [("direct", self.direct), ("via_12345", self.via_12345)]
        return out


@dataclass(frozen=True)
class Spread:
    n: int
    mean_s: float | None
    p50_s: float | None
    p90_s: float | None


@dataclass(frozen=True)
class DayFigures:
    day: dt.date
    calls: int
    ended: int
    connected: int
    connection_pct: float | None
    meets_target: bool | None


@dataclass(frozen=True)
class CentreFigures:
    calls: int
    person_15s: int
    person_15s_pct: float | None
    asked: int
    asked_15s: int
    asked_15s_pct: float | None
    ended: int
    connected: int
    connection_pct: float | None
    connection_target_pct: float
    days_with_calls: int
    days_meeting_target: int
    time_to_human: Spread
    callback_minutes: int
    callbacks_due: int
    callbacks_within: int
    callback_pct: float | None
    tickets_due: int
    tickets_within: int
    within_deadline_pct: float | None
    # Beside the connection rate, not inside it (BESIDE_OUTCOMES): offered calls by how they ended.
    messages: int = 0
    goodbyes: int = 0
    informed: int = 0  # heard how their ticket stands (查询办理进度), then goodbye
    abandoned: int = 0
    refused: int = 0
    fallback: int = 0
    # 回访: the handling rated after the ticket closed, apart from the call's own survey.
    followups_rated: int = 0
    handling_satisfaction_avg: float | None = None
    handling_satisfied_pct: float | None = None


@dataclass(frozen=True)
class IntakeRow:
    """Time to a person for the calls of one intake policy (DEFINITIONS['intake'])."""

    intake: str
    calls: int
    to_person: int
    within_15s: int
    within_15s_pct: float | None
    mean_s: float | None
    p90_s: float | None


@dataclass(frozen=True)
class LedgerRow:
    number: str
    unit: str
    line_name: str
    mode: str
    effective: dt.date
    live: bool
    direct_dial: bool  # the number itself reaches the hotline (dual-track and interconnect)
    route_id: str
    dial: str  # the ring chain: the line's dial string, then its overflow lines
    partner: str  # interconnect: the partner platform told of each hand-off
    menu_keys: str  # keys from the 12345 menu at the report time; "" when not reachable


@dataclass(frozen=True)
class TransferRow:
    """The operators' transfers to one unit or emergency line (TRANSFERS)."""

    unit: str
    transfers: int
    consult: int
    three_way: int
    blind: int
    answered: int
    handed_over: int
    handed_over_pct: float | None


@dataclass(frozen=True)
class QaRow:
    """录音抽检 of one unit or operator seat (QA)."""

    group: str  # "unit" or "operator"
    name: str  # the unit, or the operator's seat
    recorded: int
    scored: int
    criteria: tuple[tuple[str, float], ...]  # (criterion id, mean points over scored calls), by id
    overall: float | None  # mean total points per scored call


@dataclass(frozen=True)
class ModeRow:
    mode: str
    units: int  # unit rows of this mode (with calls or not)
    figures: Figures


@dataclass(frozen=True)
class Report:
    start: dt.date
    end: dt.date
    as_of: float  # the report time (Unix seconds): what "deadline passed" and "N minutes over" are judged at
    generated_at: str  # as_of, local time
    routes_version: str
    centre: CentreFigures
    units: tuple[UnitRow, ...]  # ranked rows first (by rank), then the rest in routes.yaml order
    total: Figures  # all units together
    days: tuple[DayFigures, ...]
    ledger: tuple[LedgerRow, ...]
    modes: tuple[ModeRow, ...] = ()  # the units of each mode together (merge, transfer, interconnect)
    # Set when days of the period are on a provisional calendar (ivr/routing/calendar.py): office hours
    # and ticket deadlines then knew the statutory holidays only, no 调休 — said beside the figures.
    calendar: str = ""
    # Which routing table the number ledger is (the one in force at the period's end, from the call log's
    # routes history) and when it changed during the period (ivr.calllog.editing.period_note).
    routes_note: str = ""
    intakes: tuple[IntakeRow, ...] = ()  # time to a person per intake policy (issue 16)
    transfers: tuple[TransferRow, ...] = ()  # the operators' transfers by destination unit (TRANSFERS)
    qa: tuple[QaRow, ...] = ()  # 录音抽检 per unit and operator seat (QA)

    def unit(self, unit: str, mode: str) -> UnitRow:
        return next(r for r in self.units if (r.unit, r.mode) == (unit, mode))


# -- reading the call log -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CallLogRows:
    """What a report is computed from, as the call log stores it (rows outside the period are ignored)."""

    calls: list[dict[str, Any]]
    steps: dict[str, list[dict[str, Any]]]  # call_id -> its dial, queue_left and transfer steps, detail decoded
    tickets: list[dict[str, Any]]
    callbacks: list[dict[str, Any]]
    tracks: dict[str, str] = field(default_factory=dict)  # call_id -> track, for tickets' calls
    followups: list[dict[str, Any]] = field(default_factory=list)  # 回访 answered (ivr.outbound.store)
    recorded: list[dict[str, Any]] = field(default_factory=list)  # call recordings (ivr.recording.catalog.find)
    qa_scores: list[dict[str, Any]] = field(default_factory=list)  # score rows (ivr.recording.catalog.scores)


def window(start: dt.date, end: dt.date) -> tuple[float, float]:
    """[from, to) in Unix seconds: local midnight of `start` to local midnight after `end`."""
    return (
        to_epoch(dt.datetime.combine(start, dt.time())),
        to_epoch(dt.datetime.combine(end + dt.timedelta(days=1), dt.time())),
    )


def load(log: CallLog, start: dt.date, end: dt.date) -> CallLogRows:
    """The period's calls (with their steps), tickets due, and callback entries; numbers stay masked."""
    lo, hi = window(start, end)
    calls = log.calls("started_at >= ? AND started_at < ?", (lo, hi))
    tickets = log.tickets("deadline_at >= ? AND deadline_at < ?", (lo, hi))
    # A ticket due in the period may belong to a call from before it: its track is needed too.
    tracks = {
        r["call_id"]: r["track"]
        for r in log.calls(
            "call_id IN (SELECT call_id FROM tickets WHERE deadline_at >= ? AND deadline_at < ?)", (lo, hi)
        )
    }
    callbacks = [
        {k: v for k, v in r.items() if k != "caller_number"}  # the report never shows numbers
        for r in log.callbacks(None)
        if lo <= r["last_missed_at"] < hi
    ]
    callbacks = with_first_attempts(log, callbacks)
    steps: dict[str, list[dict[str, Any]]] = {}
    for s in log.report_steps(lo, hi, ("dial", "queue_left", "answered", "transfer", *ASKED_STEPS)):
        steps.setdefault(s["call_id"], []).append(
            {"seq": s["seq"], "at": s["at"], "name": s["name"], "detail": json.loads(s["detail"])}
        )
    rated = [f for f in followups(log) if f["answered_at"] is not None and lo <= f["answered_at"] < hi]
    recorded: list[dict[str, Any]] = []
    day = start
    while day <= end:
        recorded += catalog.find(log, catalog.Filter(kind="call", day=day))
        day += dt.timedelta(days=1)
    return CallLogRows(calls, steps, tickets, callbacks, tracks, rated, recorded, catalog.scores(log, lo, hi))


def with_first_attempts(log: CallLog, callbacks: Sequence[Row]) -> list[dict[str, Any]]:
    """The callback entries, each with `first_attempt_at`: its first attempt on the citizen after their last
    missed call (None: none yet), from every attempt kept (ivr.outbound.store)."""
    tries: dict[int, list[float]] = {}
    for a in callback_attempts(log):
        if a["citizen_status"]:  # the citizen was dialled (not only a seat rung)
            tries.setdefault(int(a["callback_id"]), []).append(float(a["at"]))
    out = []
    for entry in callbacks:
        after = [at for at in tries.get(int(entry["id"]), []) if at >= entry["last_missed_at"]]
        out.append({**entry, "first_attempt_at": min(after) if after else None})
    return out


# -- the computation ------------------------------------------------------------------------------------


def _pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 2) if whole else None


def _mean(values: Sequence[float]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


def nearest_rank(values: Sequence[float], percent: int) -> float | None:
    """The `percent`-th percentile by nearest rank: the ceil(percent/100 * n)-th smallest value."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(1, -(-percent * len(ordered) // 100))  # integer ceil: no float surprises at exact ranks
    return round(ordered[k - 1], 2)


def _time_to_answer(call: Row, steps: Sequence[Row]) -> float | None:
    """Department dial start -> the unit's answer (DEFINITIONS['time_to_answer']); None if unknown."""
    dials = [s for s in steps if s["name"] == "dial" and s["detail"].get("leg") in UNIT_LEGS]
    answered = next((s for s in dials if s["detail"].get("status") == "ANSWER"), None)
    if answered is None:
        return None
    if answered["detail"]["leg"] == "department":
        return float(answered["detail"]["ring_seconds"])
    first = dials[0]
    if first["detail"]["leg"] != "department" or call["target_answered_at"] is None:
        return None
    return float(call["target_answered_at"] - (first["at"] - first["detail"]["ring_seconds"]))


def _ticket_within(ticket: Row, as_of: float) -> bool | None:
    """True closed in time, False late or open past its deadline, None open and not yet due.

    A ticket returned to 12345 is not judged: its clock stands still, and its deadline moves when it
    is dispatched again (ivr.ticketing.lifecycle).
    """
    if ticket["status"] == "closed" and ticket["closed_at"] is not None:
        return bool(ticket["closed_at"] <= ticket["deadline_at"])
    if ticket.get("state") == "returned":
        return None
    return False if ticket["deadline_at"] < as_of else None


def _callback_within(entry: Row, minutes: int, as_of: float) -> bool | None:
    """True called back in time, False late or not at all, None not yet and the time not yet up."""
    missed = entry["last_missed_at"]
    limit = missed + minutes * 60
    # The first attempt after the missed call (from the kept attempts, `load`); rows without them, the latest.
    attempt = entry["first_attempt_at"] if "first_attempt_at" in entry else entry["last_attempt_at"]
    if attempt is not None and (entry["attempts"] or "first_attempt_at" in entry):
        if missed <= attempt <= limit:
            return True
        if attempt > limit:
            return False
    return False if limit <= as_of else None


def _figures(calls: Sequence[Row], tickets: Sequence[tuple[Row, bool]], steps: Mapping[str, Sequence[Row]]) -> Figures:
    routed = [c for c in calls if c["decision"] in ROUTED_DECISIONS]
    dialled = [
        c
        for c in routed
        if any(s["name"] == "dial" and s["detail"].get("leg") in UNIT_LEGS for s in steps.get(c["call_id"], ()))
    ]
    answered = [c for c in dialled if c["dial_status"] == "ANSWER"]
    times = [t for c in answered if (t := _time_to_answer(c, steps.get(c["call_id"], ()))) is not None]
    scores = [int(c["satisfaction"]) for c in calls if c["satisfaction"] in (1, 2, 3)]
    within = sum(1 for _, ok in tickets if ok)
    ended = [c for c in calls if c["outcome"] != "in_progress"]
    person, asked = _within_15s(ended, steps)
    abandoned = sum(
        1
        for c in calls
        if any(s["name"] == "queue_left" and s["detail"].get("abandoned") for s in steps.get(c["call_id"], ()))
    )
    return Figures(
        routed=len(routed),
        dialled=len(dialled),
        answered=len(answered),
        answered_pct=_pct(len(answered), len(dialled)),
        answer_mean_s=_mean(times),
        answer_p90_s=nearest_rank(times, 90),
        no_answer=sum(1 for c in routed if c["dial_status"] == "NOANSWER"),
        busy=sum(1 for c in routed if c["dial_status"] == "BUSY"),
        overflowed=sum(1 for c in routed if c["overflowed"]),
        abandoned_in_queue=abandoned,
        messages=sum(1 for c in calls if c["outcome"] == "message"),
        rated=len(scores),
        satisfaction_avg=_mean(scores),
        satisfied_pct=_pct(sum(1 for s in scores if s in (1, 2)), len(scores)),
        tickets_due=len(tickets),
        tickets_within=within,
        within_deadline_pct=_pct(within, len(tickets)),
        ended=len(ended),
        person_15s=person,
        person_15s_pct=_pct(person, len(ended)),
        asked=len(asked),
        asked_15s=sum(asked),
        asked_15s_pct=_pct(sum(asked), len(asked)),
    )


def _ranks(rows: Sequence[tuple[tuple[str, str], Figures]]) -> dict[tuple[str, str], int]:
    def key(fig: Figures) -> tuple[Fraction, float]:
        return (-Fraction(fig.answered, fig.dialled), math.inf if fig.answer_mean_s is None else fig.answer_mean_s)

    ranked = sorted((r for r in rows if r[1].dialled), key=lambda r: key(r[1]))
    out: dict[tuple[str, str], int] = {}
    for i, (k, fig) in enumerate(ranked):
        previous = ranked[i - 1] if i else None
        out[k] = out[previous[0]] if previous and key(previous[1]) == key(fig) else i + 1
    return out


def build(
    rows: CallLogRows,
    start: dt.date,
    end: dt.date,
    *,
    as_of: float,
    table: RouteTable | None = None,
    callback_minutes: int = DEFAULT_CALLBACK_MINUTES,
    routes_note: str = "",
) -> Report:
    """The report for `start`..`end` (local dates, inclusive) as judged at `as_of` (Unix seconds)."""
    if end < start:
        raise ValueError(f"the period ends ({end}) before it starts ({start})")
    if callback_minutes < 1:
        raise ValueError("callback_minutes must be at least 1")
    lo, hi = window(start, end)
    calls = [c for c in rows.calls if lo <= c["started_at"] < hi]
    tracks = {**rows.tracks, **{c["call_id"]: c["track"] for c in rows.calls}}
    tickets = [
        (t, ok) for t in rows.tickets if lo <= t["deadline_at"] < hi if (ok := _ticket_within(t, as_of)) is not None
    ]

    # One row per unit and mode: every pair in routes.yaml, then any the log has that the table lacks.
    keys: dict[tuple[str, str], None] = {}
    for route in table.routes.values() if table else ():
        keys.setdefault((route.unit, route.mode.value), None)
    for k in sorted(
        {(c["unit"], c["mode"]) for c in calls if c["unit"]} | {(t["unit"], t["mode"]) for t, _ in tickets if t["unit"]}
    ):
        keys.setdefault(k, None)
    unit_calls: dict[tuple[str, str], list[Row]] = {k: [] for k in keys}
    for c in calls:
        if c["unit"]:
            unit_calls[(c["unit"], c["mode"])].append(c)
    unit_tickets: dict[tuple[str, str], list[tuple[Row, bool]]] = {k: [] for k in keys}
    for t, ok in tickets:
        if t["unit"]:
            unit_tickets[(t["unit"], t["mode"])].append((t, ok))

    totals = [(k, _figures(unit_calls[k], unit_tickets[k], rows.steps)) for k in keys]
    ranks = _ranks(totals)
    units = []
    for k, total in totals:
        direct = via = None
        if k[1] == Mode.TRANSFER.value:
            direct, via = (
                _figures(
                    [c for c in unit_calls[k] if c["track"] == track],
                    [(t, ok) for t, ok in unit_tickets[k] if tracks.get(t["call_id"]) == track],
                    rows.steps,
                )
                for track in ("direct", "menu")
            )
        units.append(UnitRow(k[0], k[1], ranks.get(k), total, direct, via))
    order = {k: i for i, k in enumerate(keys)}
    units.sort(key=lambda r: (r.rank is None, r.rank or 0, order[(r.unit, r.mode)]))
    everything = _figures([c for c in calls if c["unit"]], [(t, ok) for t, ok in tickets if t["unit"]], rows.steps)

    modes = tuple(
        ModeRow(
            mode,
            sum(1 for k in keys if k[1] == mode),
            _figures(
                [c for c in calls if c["unit"] and c["mode"] == mode],
                [(t, ok) for t, ok in tickets if t["unit"] and t["mode"] == mode],
                rows.steps,
            ),
        )
        for mode in dict.fromkeys(k[1] for k in sorted(keys, key=lambda k: _MODE_ORDER.get(k[1], 99)))
    )
    days = _days(calls, start, end)
    ended = [c for c in calls if c["outcome"] != "in_progress"]
    connected = sum(1 for c in ended if c["outcome"] in PERSON_ANSWERED_OUTCOMES)
    person, asked = _within_15s(ended, rows.steps)
    to_human = [c["target_answered_at"] - c["started_at"] for c in calls if c["target_answered_at"] is not None]
    callbacks = [
        ok
        for e in rows.callbacks
        if lo <= e["last_missed_at"] < hi
        if (ok := _callback_within(e, callback_minutes, as_of)) is not None
    ]
    tickets_within = sum(1 for _, ok in tickets if ok)
    period = window(start, end)
    handling = [
        int(f["satisfaction"])
        for f in rows.followups
        if f["satisfaction"] in (1, 2, 3) and f["answered_at"] is not None and period[0] <= f["answered_at"] < period[1]
    ]
    centre = CentreFigures(
        calls=len(calls),
        person_15s=person,
        person_15s_pct=_pct(person, len(ended)),
        asked=len(asked),
        asked_15s=sum(asked),
        asked_15s_pct=_pct(sum(asked), len(asked)),
        ended=len(ended),
        connected=connected,
        connection_pct=_pct(connected, len(ended)),
        connection_target_pct=CONNECTION_TARGET_PCT,
        days_with_calls=sum(1 for d in days if d.ended),
        days_meeting_target=sum(1 for d in days if d.meets_target),
        time_to_human=Spread(len(to_human), _mean(to_human), nearest_rank(to_human, 50), nearest_rank(to_human, 90)),
        callback_minutes=callback_minutes,
        callbacks_due=len(callbacks),
        callbacks_within=sum(callbacks),
        callback_pct=_pct(sum(callbacks), len(callbacks)),
        tickets_due=len(tickets),
        tickets_within=tickets_within,
        within_deadline_pct=_pct(tickets_within, len(tickets)),
        **{name: sum(1 for c in ended if c["outcome"] == outcome) for name, outcome in BESIDE_FIELDS.items()},
        followups_rated=len(handling),
        handling_satisfaction_avg=_mean(handling),
        handling_satisfied_pct=_pct(sum(1 for s in handling if s in (1, 2)), len(handling)),
    )
    return Report(
        start=start,
        end=end,
        as_of=as_of,
        generated_at=from_epoch(as_of).isoformat(timespec="seconds"),
        routes_version=table.digest if table else "",
        centre=centre,
        units=tuple(units),
        total=everything,
        days=days,
        ledger=ledger(table, from_epoch(as_of)) if table else (),
        modes=modes,
        calendar=_calendar_note(table, start, end) if table else "",
        routes_note=routes_note,
        intakes=_intakes(calls, rows.steps),
        transfers=transfer_rows(
            [s for c in calls for s in rows.steps.get(c["call_id"], ()) if s["name"] == "transfer"]
        ),
        qa=qa_rows(rows.recorded, rows.qa_scores),
    )


def qa_rows(recorded: Sequence[Row], scores: Sequence[Row]) -> tuple[QaRow, ...]:
    """录音抽检 (QA) per unit and operator seat, grouped as `hotline qa sample` draws (ivr.recording.qa.group_of)."""
    pool: dict[tuple[str, str], set[str]] = {}
    for r in recorded:
        pool.setdefault(group_of(r), set()).add(str(r["call_id"]))
    points: dict[tuple[str, str], dict[str, dict[str, int]]] = {}  # group -> call -> criterion -> points
    for s in scores:
        key = group_of(s)
        pool.setdefault(key, set()).add(str(s["call_id"]))
        points.setdefault(key, {}).setdefault(str(s["call_id"]), {})[str(s["criterion"])] = int(s["score"])
    out = []
    for key in sorted(pool, key=lambda k: (k[0] != "unit", k[1])):  # units first, then operator seats
        forms = points.get(key, {})
        by_criterion: dict[str, list[int]] = {}
        for form in forms.values():
            for criterion, p in form.items():
                by_criterion.setdefault(criterion, []).append(p)
        criteria = tuple((c, sum(v) / len(v)) for c, v in sorted(by_criterion.items()))
        overall = _mean([float(sum(f.values())) for f in forms.values()])
        out.append(QaRow(key[0], key[1], len(pool[key]), len(forms), criteria, overall))
    return tuple(out)


def _within_15s(calls: Sequence[Row], steps: Mapping[str, Sequence[Row]]) -> tuple[int, list[bool]]:
    """PERSON_WITHIN_15S's numerator, and QUEUE_WITHIN_15S's verdict for each call that asked."""
    person = 0
    asked: list[bool] = []
    for c in calls:
        at = asked_at((s["name"], s["at"], s["detail"]) for s in steps.get(c["call_id"], ()))
        by_arrival, by_asking = person_within_15s(c["started_at"], at, c["target_answered_at"])
        person += by_arrival
        if at is not None:
            asked.append(by_asking)
    return person, asked


INTAKES = ("menu", "human-first", "direct")


def _intakes(calls: Sequence[Row], steps: Mapping[str, Sequence[Row]]) -> tuple[IntakeRow, ...]:
    """Time to a person per intake (DEFINITIONS['intake']): each intake in INTAKES order, then any other the log has."""
    by: dict[str, list[Row]] = {}
    for c in calls:
        answered = next((s for s in steps.get(c["call_id"], ()) if s["name"] == "answered"), None)
        by.setdefault(str(answered["detail"].get("intake", "menu")) if answered else "menu", []).append(c)
    out = []
    for intake in sorted(by, key=lambda i: (INTAKES.index(i) if i in INTAKES else len(INTAKES), i)):
        group = by[intake]
        waits = [c["target_answered_at"] - c["started_at"] for c in group if c["target_answered_at"] is not None]
        within = sum(1 for w in waits if w <= ANSWER_WITHIN_SECONDS)
        out.append(
            IntakeRow(
                intake, len(group), len(waits), within, _pct(within, len(group)), _mean(waits), nearest_rank(waits, 90)
            )
        )
    return tuple(out)


def transfer_rows(steps: Sequence[Row]) -> tuple[TransferRow, ...]:
    """TRANSFERS: the "transfer" steps of the period's calls, by destination unit (most transfers first)."""
    by_unit: dict[str, list[Mapping[str, Any]]] = {}
    for step in steps:
        by_unit.setdefault(str(step["detail"]["unit"]), []).append(step["detail"])
    rows = []
    for unit, details in by_unit.items():
        handed = sum(1 for d in details if d.get("handed_over"))
        rows.append(
            TransferRow(
                unit=unit,
                transfers=len(details),
                consult=sum(1 for d in details if d["kind"] == "consult"),
                three_way=sum(1 for d in details if d["kind"] == "three-way"),
                blind=sum(1 for d in details if d["kind"] == "blind"),
                answered=sum(1 for d in details if d.get("answered_at")),
                handed_over=handed,
                handed_over_pct=_pct(handed, len(details)),
            )
        )
    return tuple(sorted(rows, key=lambda r: (-r.transfers, r.unit)))


def _calendar_note(table: RouteTable, start: dt.date, end: dt.date) -> str:
    years = table.calendar.provisional_years(start, end)
    if not years:
        return ""
    return (
        f"PROVISIONAL holiday calendar for {', '.join(map(str, years))}: no State Council notice entered, "
        "office hours and ticket deadlines knew the statutory holidays only, no make-up workdays (调休)"
    )


def _days(calls: Sequence[Row], start: dt.date, end: dt.date) -> tuple[DayFigures, ...]:
    by_day: dict[dt.date, list[Row]] = {}
    for c in calls:
        by_day.setdefault(from_epoch(c["started_at"]).date(), []).append(c)
    out = []
    day = start
    while day <= end:
        todays = by_day.get(day, [])
        ended = [c for c in todays if c["outcome"] != "in_progress"]
        connected = sum(1 for c in ended if c["outcome"] in PERSON_ANSWERED_OUTCOMES)
        pct = _pct(connected, len(ended))
        out.append(
            DayFigures(
                day,
                len(todays),
                len(ended),
                connected,
                pct,
                None if pct is None else 100 * connected >= CONNECTION_TARGET_PCT * len(ended),
            )
        )
        day += dt.timedelta(days=1)
    return tuple(out)


def ledger(table: RouteTable, at: dt.datetime) -> tuple[LedgerRow, ...]:
    """Every published number in routes.yaml, in file order, and where it goes at `at` (naive local)."""
    from ivr.routing.menu import reachable

    keys = {route.id: k for k, route in reachable(table, at)}
    return tuple(
        LedgerRow(
            number=r.number,
            unit=r.unit,
            line_name=r.line_name,
            mode=r.mode.value,
            effective=r.effective,
            live=r.live_at(at),
            direct_dial=table.direct_route(r.number) is r,
            route_id=r.id,
            dial=" -> ".join(t.dial_string for t in r.targets),
            partner=r.partner.name if r.partner else "",
            menu_keys=keys.get(r.id, ""),
        )
        for r in table.routes.values()
    )
