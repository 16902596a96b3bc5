"""Prometheus metrics: one facade, named for what happened, with bounded labels.

Call-flow code says `metrics.call_routed(unit, mode, result.status, ring_seconds)`; only this
module touches prometheus_client. Label values come from routes.yaml (units, modes, the entry
numbers Asterisk sends us) or from small fixed sets — never caller numbers or call ids — so
the number of series is bounded by the routing table.

Served on HOTLINE_METRICS_ADDR (default 127.0.0.1:9345) at /metrics by the controller.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ivr.calllog.records import Outcome
from ivr.routing.routes import RouteTable
from ivr.timekeeping import LOCAL_TZ

# Seconds from dialling a line to its answer, and from a call's arrival to a human: GB/T
# 33358-2016 asks for answer within 15 s, so the buckets are dense below 20 s.
ANSWER_BUCKETS = (1, 2, 3, 5, 8, 10, 15, 20, 30, 45, 60, 90, 120)
WAIT_BUCKETS = (1, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300)

DIAL_RESULTS = {
    "ANSWER": "answered",
    "BUSY": "busy",
    "NOANSWER": "no_answer",
    "CONGESTION": "congestion",
    "CHANUNAVAIL": "unavailable",
    "TRUNK_DOWN": "trunk_down",
    "CANCEL": "cancelled",
}
OUTCOMES = tuple(o.value for o in Outcome if o is not Outcome.IN_PROGRESS)  # how calls end
CONTENT_TYPE = CONTENT_TYPE_LATEST
MESSAGE_REASONS = ("after_hours", "nobody_free")
WEBHOOK_RESULTS = ("delivered", "rejected", "gave_up", "dropped")
UNIT_CALL_RESULTS = ("answered", "not_answered")
UNIT_LEGS = ("department", "overflow")  # dial legs on a unit's own ring chain (ivr.report.figures counts the same)
NOTICE_MODES = ("announce", "to_operators")
ROUTES_ROLES = ("live", "staged")
RECORDING_FAILURES = ("unwritable", "disk_full", "not_written", "empty", "unreadable", "leg_gone")


class NoticeLike(Protocol):
    @property
    def to_operators(self) -> bool: ...


class CallLogState(Protocol):
    """What the call log tells about its durability (ivr.calllog.sqlite.SqliteCallLog)."""

    @property
    def journal_pending(self) -> int: ...

    journaled_total: int
    replayed_total: int
    lost_total: int
    failed_writes: int


class _CallLogCollector:
    """Read at scrape time from the call log's own counters, so the figures are never stale."""

    def __init__(self, calllog: CallLogState) -> None:
        self.calllog = calllog

    def describe(self) -> list[Metric]:
        return []  # not known before the first collect: skip the registry's duplicate check

    def collect(self) -> Iterator[Metric]:
        c = self.calllog
        yield GaugeMetricFamily(
            "hotline_calllog_journal_pending",
            "Call-log writes waiting in the journal (or memory) for the database.",
            value=c.journal_pending,
        )
        for name, doc, value in (
            (
                "hotline_calllog_journaled_writes",
                "Writes the database refused that went to the journal.",
                c.journaled_total,
            ),
            ("hotline_calllog_replayed_writes", "Journaled writes committed to the database later.", c.replayed_total),
            (
                "hotline_calllog_lost_writes",
                "Writes neither the database, the journal nor memory could keep.",
                c.lost_total,
            ),
            (
                "hotline_calllog_dropped_writes",
                "Single writes dropped because they can never succeed.",
                c.failed_writes,
            ),
        ):
            yield CounterMetricFamily(name, doc, value=value)


class AriRequestCounts(Protocol):
    """What the ARI client counts (ivr.ari.client.AriClient.sent): requests by (method, resource)."""

    @property
    def sent(self) -> dict[tuple[str, str], int]: ...


class _AriRequestsCollector:
    """Read at scrape time from the client's plain counts: the request path pays a dict increment only."""

    def __init__(self, client: AriRequestCounts) -> None:
        self.client = client

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "hotline_ari_requests",
            "REST requests the controller sent to Asterisk's ARI, by method and resource (the path's first segment).",
            labels=["method", "resource"],
        )
        for (method, resource), count in sorted(self.client.sent.items()):
            family.add_metric([method, resource], count)
        yield family


class Metrics:
    def __init__(self, entries: frozenset[str] = frozenset()) -> None:
        self.registry = CollectorRegistry()
        self._entries = set(entries)
        self._units: set[str] = set()
        r = self.registry
        self.calls = Counter(
            "hotline_calls_total",
            "Calls that ended, by the number dialled and outcome.",
            ["entry", "outcome"],
            registry=r,
        )
        self.routed = Counter(
            "hotline_routed_calls_total",
            "Attempts to reach a unit's line (department, overflow or partner), by result.",
            ["unit", "mode", "result"],
            registry=r,
        )
        self.unit_calls = Counter(
            "hotline_unit_calls_total",
            "Calls dialled to a unit's ring chain (its line, then its overflow lines), counted once when the call "
            "ends: result answered when a person at the unit answered. Per call, not per attempt.",
            ["unit", "mode", "result"],
            registry=r,
        )
        self.answer = Histogram(
            "hotline_answer_seconds",
            "Ringing time until a unit's line answered.",
            ["unit", "mode"],
            buckets=ANSWER_BUCKETS,
            registry=r,
        )
        self.to_human = Histogram(
            "hotline_time_to_human_seconds",
            "From a call's arrival until a person (department or operator) answered.",
            ["kind"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        # Per intake policy (issue 16: the menu first, or human-first), the citizen's view; kept apart
        # from hotline_time_to_human_seconds so its series and the rules built on them stay as they are.
        self.to_human_by_intake = Histogram(
            "hotline_intake_time_to_human_seconds",
            "From a call's arrival until a person answered, by intake: menu, human-first, or direct (a short number).",
            ["intake"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        # ivr.report.figures PERSON_WITHIN_15S (view arrival: every ended call, refused and fallback included)
        # and QUEUE_WITHIN_15S (view asked: calls that asked for a person); unit none = no route chosen.
        self.person_answer = Counter(
            "hotline_person_answer_calls_total",
            "Ended calls by whether a person answered within 15 s: view arrival = of the call's arrival (every call "
            "offered), view asked = of the caller asking for a person (calls that asked).",
            ["unit", "view", "within_15s"],
            registry=r,
        )
        self.overflow = Counter(
            "hotline_overflow_steps_total",
            "Steps down a route's chain after its line failed: next target, operators, message.",
            ["unit", "step"],
            registry=r,
        )
        self.transfers = Counter(
            "hotline_transfers_total",
            "Operators' transfers (consult, three-way, blind), by unit, kind and outcome.",
            ["unit", "kind", "outcome"],
            registry=r,
        )
        self.seats = Gauge(
            "hotline_seats",
            "Operator seats by state (signed_out, ready, busy, paused, wrap_up).",
            ["state"],
            registry=r,
        )
        self.queue_length = Gauge("hotline_operator_queue_length", "Callers waiting for an operator.", registry=r)
        self.queue_wait = Histogram(
            "hotline_operator_queue_wait_seconds",
            "Time callers waited in the operators' queue, by how the wait ended.",
            ["result"],
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.active = Gauge("hotline_active_calls", "Calls the controller is handling now.", registry=r)
        self.ari_up = Gauge("hotline_ari_connected", "1 while the ARI events WebSocket is connected.", registry=r)
        self.ari_reconnects = Counter("hotline_ari_reconnects_total", "ARI connections after the first.", registry=r)
        self.reloads = Counter(
            "hotline_routes_reloads_total", "routes.yaml reloads, by result (ok, refused).", ["result"], registry=r
        )
        self.routes_info = Gauge(
            "hotline_routes_info", "The loaded routing table (version = file digest).", ["version"], registry=r
        )
        # Coverage ends at midnight Beijing time after the last day answered, so `gauge - time()`
        # is what is left; "confirmed" stops before the first provisional (rules-only) year.
        self.calendar_covered_until = Gauge(
            "hotline_calendar_covered_until_timestamp_seconds",
            "End of the last day the holiday calendar answers for (notice, package or provisional).",
            registry=r,
        )
        self.calendar_confirmed_until = Gauge(
            "hotline_calendar_confirmed_until_timestamp_seconds",
            "End of the last day before the first provisional calendar day (notice or package only).",
            registry=r,
        )
        self.webhooks = Counter(
            "hotline_webhook_deliveries_total",
            "Hand-off webhooks, by partner and result.",
            ["partner", "result"],
            registry=r,
        )
        self.survey = Counter(
            "hotline_survey_responses_total", "Post-call ratings (1 satisfied .. 3 not).", ["unit", "score"], registry=r
        )
        self.tickets_overdue = Gauge(
            "hotline_tickets_overdue", "Open tickets past their deadline, by unit.", ["unit"], registry=r
        )
        self.messages = Counter(
            "hotline_messages_total",
            "Messages (留言) taken, by unit and why (after_hours, nobody_free).",
            ["unit", "reason"],
            registry=r,
        )
        self.refused = Counter(
            "hotline_admission_refused_calls_total",
            "Calls refused unanswered (SIP 503) by admission: the box was overloaded (HOTLINE_ADMISSION=adaptive) "
            "or they came faster than HOTLINE_MAX_CALL_RATE.",
            registry=r,
        )
        # What adaptive admission sees and decides (ivr.controller.admission), refreshed every probe.
        self.admission_limit = Gauge(
            "hotline_admission_setup_limit",
            "Calls let be in setup at once (adaptive admission); beyond it new calls are refused. 0: not adaptive.",
            registry=r,
        )
        self.shed_ratio = Gauge(
            "hotline_admission_shed_ratio",
            "Share of new calls the dialplan refuses before they reach the controller (0-1), from the share the "
            "controller itself refused.",
            registry=r,
        )
        self.in_setup = Gauge(
            "hotline_admission_calls_in_setup", "Calls admitted and not yet hearing their first prompt.", registry=r
        )
        self.ari_p90 = Gauge(
            "hotline_ari_response_p90_seconds",
            "p90 of the ARI requests' response time over the last admission probe (about 0.5 s).",
            registry=r,
        )
        self.loop_lag = Gauge(
            "hotline_event_loop_lag_seconds", "How late the controller's event loop ran a 0.5 s timer.", registry=r
        )
        self.callbacks_oldest = Gauge(
            "hotline_callbacks_oldest_open_seconds",
            "Age of the oldest open entry on the missed-call callback list (0 when the list is empty).",
            registry=r,
        )
        # The route editors' switches (ivr.routing.notices, ivr.routing.staging). A staged table's calls
        # are told apart by its role, not its digest: two series per outcome whatever the number of
        # versions, and hotline_routes_staged_info names the version behind "staged".
        self.notices = Gauge(
            "hotline_notices_active",
            "Notices (announcements before the menu) live now, by mode (announce, to_operators).",
            ["mode"],
            registry=r,
        )
        self.routes_calls = Counter(
            "hotline_routes_calls_total",
            "Calls that ended, by the table they were routed on (live, staged) and outcome.",
            ["routes", "outcome"],
            registry=r,
        )
        self.staged_info = Gauge(
            "hotline_routes_staged_info",
            "The staged table (canary), if any (version = file digest).",
            ["version"],
            registry=r,
        )
        self.staged_share = Gauge(
            "hotline_routes_staged_share_percent", "Share of callers routed on the staged table (0: none).", registry=r
        )
        # 全程录音 (ivr.recording): a call that could not be recorded still goes on, so only these tell.
        self.recording_failures = Counter(
            "hotline_recording_failures_total",
            "Answered legs that should have been recorded and were not, by reason "
            "(unwritable, disk_full, not_written, empty, unreadable, leg_gone).",
            ["reason"],
            registry=r,
        )
        self.recordings = Counter(
            "hotline_recordings_total", "Recordings kept, by kind (call, message).", ["kind"], registry=r
        )
        self.recorded_seconds = Counter(
            "hotline_recorded_seconds_total", "Seconds of audio kept, by kind (call, message).", ["kind"], registry=r
        )
        for reason in RECORDING_FAILURES:
            self.recording_failures.labels(reason)
        for kind in ("call", "message"):
            self.recordings.labels(kind)
            self.recorded_seconds.labels(kind)
        for mode in NOTICE_MODES:
            self.notices.labels(mode)
        for role in ROUTES_ROLES:
            for outcome in OUTCOMES:
                self.routes_calls.labels(role, outcome)
        for result in ("ok", "refused"):
            self.reloads.labels(result)  # both series exist from the start, so rate() works at once

    # -- the facade the call flow uses ------------------------------------------------------
    def set_routes(self, table: RouteTable) -> None:
        """Export the loaded table's version, and create every series its units can have.

        Series that exist from the start (at 0) make rates, ratios and alerts work before the
        first event, and show a unit that gets no calls as "0", not as missing.
        """
        self.routes_info.clear()
        self.routes_info.labels(table.digest).set(1)
        self.calendar_covered_until.set(_end_of_day(table.calendar.covered_until))
        self.calendar_confirmed_until.set(_end_of_day(table.calendar.confirmed_until))
        self._entries = set(table.entries)
        for entry in (*table.entries, "other"):
            for outcome in OUTCOMES:
                self.calls.labels(entry, outcome)
        partners = set()
        for route in table.routes.values():
            for result in set(DIAL_RESULTS.values()) | {"failed"}:
                self.routed.labels(route.unit, route.mode.value, result)
            self.answer.labels(route.unit, route.mode.value)
            for result in UNIT_CALL_RESULTS:
                self.unit_calls.labels(route.unit, route.mode.value, result)
            for step in ("overflow", "operators", "message"):
                self.overflow.labels(route.unit, step)
            for score in ("1", "2", "3"):
                self.survey.labels(route.unit, score)
            for reason in MESSAGE_REASONS:
                self.messages.labels(route.unit, reason)
            if route.partner is not None:
                partners.add(route.partner.name)
        for partner in partners:
            for result in WEBHOOK_RESULTS:
                self.webhooks.labels(partner, result)
        for kind in ("department", "operator"):
            self.to_human.labels(kind)
        for intake in ("menu", "human-first", "direct"):
            self.to_human_by_intake.labels(intake)
        for result in ("answered", "abandoned", "timed_out", "menu_choice"):
            self.queue_wait.labels(result)
        self._units = {route.unit for route in table.routes.values()}
        for unit in (*self._units, "none"):
            for view in ("arrival", "asked"):
                for within in ("true", "false"):
                    self.person_answer.labels(unit, view, within)
        self.set_overdue({})

    def call_started(self) -> None:
        self.active.inc()

    def call_refused(self) -> None:
        self.refused.inc()

    def admission_seen(
        self, limit: float, in_setup: int, ari_p90_s: float | None, loop_lag_s: float, shed: float = 0.0
    ) -> None:
        self.admission_limit.set(limit)
        self.shed_ratio.set(shed)
        self.in_setup.set(in_setup)
        if ari_p90_s is not None:  # no request in the probe: the last figure stands
            self.ari_p90.set(ari_p90_s)
        self.loop_lag.set(loop_lag_s)

    def call_ended(self, entry: str, outcome: str) -> None:
        self.active.dec()
        self.call_counted(entry, outcome)

    def call_counted(self, entry: str, outcome: str) -> None:
        """A finished call in hotline_calls_total; alone for calls imported from Asterisk (refused, fallback)."""
        entry = entry if entry in self._entries else "other"
        self.calls.labels(entry, outcome if outcome in OUTCOMES else "failed").inc()

    def call_routed(self, unit: str, mode: str, status: str, ring_seconds: float) -> None:
        result = DIAL_RESULTS.get(status, "failed")
        self.routed.labels(unit, mode, result).inc()
        if result == "answered":
            self.answer.labels(unit, mode).observe(ring_seconds)

    def unit_call_ended(self, unit: str, mode: str, legs: Iterable[str], dial_status: str) -> None:
        """A finished call, against its unit if the unit's ring chain was dialled (`legs`: its dial steps' legs).

        The report's department answered % (ivr.report.figures.DEPARTMENT_ANSWERED) counts the same calls.
        """
        if unit and any(leg in UNIT_LEGS for leg in legs):
            self.unit_calls.labels(unit, mode, "answered" if dial_status == "ANSWER" else "not_answered").inc()

    def person_answer_counted(self, unit: str, by_arrival: bool, asked: bool, by_asking: bool) -> None:
        """An ended call in hotline_person_answer_calls_total (the report's PERSON/QUEUE_WITHIN_15S)."""
        unit = unit if unit in self._units else "none"
        self.person_answer.labels(unit, "arrival", str(by_arrival).lower()).inc()
        if asked:
            self.person_answer.labels(unit, "asked", str(by_asking).lower()).inc()

    def human_answered(self, kind: str, seconds_since_arrival: float, intake: str = "menu") -> None:
        self.to_human.labels(kind).observe(seconds_since_arrival)
        self.to_human_by_intake.labels(intake).observe(seconds_since_arrival)

    def overflow_step(self, unit: str, step: str) -> None:
        self.overflow.labels(unit or "none", step).inc()

    def transfer_done(self, unit: str, kind: str, outcome: str) -> None:
        self.transfers.labels(unit, kind, outcome).inc()

    def set_seats(self, statuses: Iterable[str]) -> None:
        counts = {state: 0 for state in ("signed_out", "ready", "busy", "paused", "wrap_up")}
        for status in statuses:
            counts[status] = counts.get(status, 0) + 1
        for state, n in counts.items():
            self.seats.labels(state).set(n)

    def queue_changed(self, waiting: int) -> None:
        self.queue_length.set(waiting)

    def queue_left(self, result: str, waited_seconds: float) -> None:
        self.queue_wait.labels(result).observe(waited_seconds)

    def ari_connected(self, first: bool) -> None:
        self.ari_up.set(1)
        if not first:
            self.ari_reconnects.inc()

    def ari_disconnected(self) -> None:
        self.ari_up.set(0)

    def routes_reloaded(self, ok: bool) -> None:
        self.reloads.labels("ok" if ok else "refused").inc()

    def webhook_result(self, partner: str, result: str) -> None:
        self.webhooks.labels(partner, result).inc()

    def survey_answered(self, unit: str, score: int) -> None:
        self.survey.labels(unit, str(score)).inc()

    def recording_failed(self, reason: str) -> None:
        self.recording_failures.labels(reason).inc()

    def recording_kept(self, kind: str, seconds: float) -> None:
        self.recordings.labels(kind).inc()
        self.recorded_seconds.labels(kind).inc(seconds)

    def message_taken(self, unit: str, after_hours: bool) -> None:
        self.messages.labels(unit or "none", "after_hours" if after_hours else "nobody_free").inc()

    def set_overdue(self, by_unit: dict[str, int]) -> None:
        """Overdue open tickets per unit; every unit of the table is exported, 0 if none."""
        self.tickets_overdue.clear()
        for unit in self._units | set(by_unit):
            self.tickets_overdue.labels(unit or "none").set(by_unit.get(unit, 0))

    def set_callbacks_oldest(self, first_missed_at: list[float], now: float) -> None:
        """The callback list's oldest open entry, from the open entries' first missed call (Unix seconds)."""
        self.callbacks_oldest.set(max(0.0, now - min(first_missed_at)) if first_missed_at else 0.0)

    def set_notices(self, live: Sequence[NoticeLike]) -> None:
        """The notices live now, counted by mode."""
        for mode in NOTICE_MODES:
            self.notices.labels(mode).set(sum(1 for n in live if n.to_operators == (mode == "to_operators")))

    def set_stage(self, version: str | None, share: int) -> None:
        self.staged_info.clear()
        if version is not None:
            self.staged_info.labels(version).set(1)
        self.staged_share.set(share if version is not None else 0)

    def call_on_routes(self, role: str, outcome: str) -> None:
        """A call ended that was routed on the live or the staged table."""
        self.routes_calls.labels(
            role if role in ROUTES_ROLES else "live", outcome if outcome in OUTCOMES else "failed"
        ).inc()

    def watch_ari_requests(self, client: AriRequestCounts) -> None:
        """Export `hotline_ari_requests_total` from the client's counts (once per client)."""
        self.registry.register(_AriRequestsCollector(client))

    def watch_calllog(self, calllog: CallLogState) -> None:
        """Export the call log's journal and write counters (hotline_calllog_*)."""
        self.registry.register(_CallLogCollector(calllog))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _end_of_day(day: dt.date) -> float:
    """Unix seconds of the midnight (Beijing time) that ends `day`."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), LOCAL_TZ).timestamp()
