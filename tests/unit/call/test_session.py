"""The story of a call (`handle_call`), path by path, on a ScriptedCall.

Each test is one kind of call: what the citizen does, how the lines behave, and then what
they heard and what was dialled (the call's own list of requests), what the call log keeps
(the record, its steps, tickets, the callback list) and the metrics. The routing table is the
shipped routes.yaml, the operator queue the real SeatPool, the call log a real SQLite file;
time is the event loop's virtual clock, so a two-minute queue wait takes no time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ivr.call.scripted import HangupStep, Line, Script, ScriptedCall, VirtualTimeLoop
from ivr.call.session import Services, handle_call
from ivr.calllog import CallLog, open_calllog
from ivr.calllog.records import CallRecord
from ivr.citizen.progress import CallLogTickets
from ivr.citizen.ticket_number import keypad_number
from ivr.handoff.webhook import Handoff, WebhookTarget
from ivr.metrics import Metrics
from ivr.operators.queue import SeatPool
from ivr.prompts import Prompts
from ivr.recording.store import Recorder as LegRecorder
from ivr.report import figures as report
from ivr.routing import routes
from ivr.routing.notices import Notice
from ivr.routing.routes import RouteTable
from ivr.tickets import from_epoch, new_ticket

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = (ROOT / "routes.yaml").read_text(encoding="utf-8")
TABLE = routes.load(ROOT / "routes.yaml")

TUESDAY_MORNING = dt.datetime(2026, 11, 24, 10, 0)
TUESDAY_NIGHT = dt.datetime(2026, 11, 24, 20, 0)
GONGAN = "3372000"  # 市公安局, key 1 of the main menu
MENU = (  # '0' first: the way to a person is heard before any choice
    "intro menu-operator menu-main-1 menu-main-2 menu-main-3 menu-main-4 menu-main-5 menu-main-6 menu-main-8"
    " menu-main-9 menu-tail"
)


def patched(tmp_path: Path, old: str, new: str) -> RouteTable:
    assert old in SHIPPED
    path = tmp_path / "routes.yaml"
    path.write_text(SHIPPED.replace(old, new, 1), encoding="utf-8")
    return routes.load(path)


def with_overflow(tmp_path: Path) -> RouteTable:
    """市公安局 with one more line to ring when its own fails."""
    return patched(
        tmp_path,
        "    ring_seconds: 20\n    label: 公安局\n",
        "    ring_seconds: 20\n    label: 公安局\n"
        '    overflow: [{number: "3372001", trunk: departments, ring_seconds: 15}]\n',
    )


def without_seats(tmp_path: Path) -> RouteTable:
    """No operator seats listed: the operators' group line is rung instead of queueing."""
    return patched(
        tmp_path,
        "  seats:                        # operator seats (PJSIP endpoints): callers queue, longest-idle seat first\n"
        "    - {id: seat-1, endpoint: operator-1}\n    - {id: seat-2, endpoint: operator-2}\n",
        "",
    )


@dataclass
class Played:
    """A call played to its end: what the story did and what it left behind."""

    call: ScriptedCall
    record: CallRecord
    log: CallLog
    metrics: Metrics
    webhooks: list[tuple[WebhookTarget, Handoff]] = field(default_factory=list)
    raised: BaseException | None = None

    @property
    def row(self) -> dict[str, Any]:
        (row,) = self.log.calls()
        return row

    @property
    def steps(self) -> list[str]:
        return [s["name"] for s in self.log.steps(self.record.call_id)]

    def step(self, name: str) -> list[dict[str, Any]]:
        return [s["detail"] for s in self.log.steps(self.record.call_id) if s["name"] == name]

    @property
    def heard(self) -> list[str]:
        return [media for _, media in self.call.verbs("play")]

    @property
    def told(self) -> str:
        """What the citizen hears of their ticket number: the 14 keypad digits one by one."""
        digits = " ".join(f"digit-{d}" for d in keypad_number(self.row["ticket_id"]))
        return f"ticket-number-is {digits} ticket-number-repeat"

    @property
    def dialled(self) -> list[tuple[str, str, str]]:
        return [(number, label, status) for _, number, label, status in self.call.verbs("dial")]

    @property
    def callbacks(self) -> dict[str, str]:
        """The callback list: caller -> why their call was lost."""
        return {
            c["caller_masked"]: self.log.callback_calls(c["id"])[0]["reason"] for c in self.log.callbacks(status=None)
        }

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


class Recorder:
    """Stands in for the webhook sender: keeps what would be POSTed."""

    def __init__(self) -> None:
        self.sent: list[tuple[WebhookTarget, Handoff]] = []

    def submit(self, target: WebhookTarget, handoff: Handoff) -> None:
        self.sent.append((target, handoff))


Setup = Callable[[SeatPool, contextlib.AsyncExitStack], Coroutine[Any, Any, None]]


def play(
    tmp_path: Path,
    script: Script,
    *,
    table: RouteTable = TABLE,
    entry: str = "12345",
    at: dt.datetime = TUESDAY_MORNING,
    setup: Setup | None = None,
    max_queue: int = 50,
    notices: tuple[Notice, ...] = (),
    recorder: LegRecorder | None = None,
    dial_path: str = "ari",
    rendered: RouteTable | None = None,
) -> Played:
    """Play one call with `script` to its end on a virtual-time loop (`dial_path`, `rendered`: HOTLINE_DIAL_PATH
    and the routes its ring chains were rendered from, see ScriptedCall)."""
    log = open_calllog(tmp_path / "calllog.sqlite3")
    log.start()
    metrics = Metrics()
    metrics.set_routes(table)
    webhooks = Recorder()
    record = CallRecord(
        call_id="call-1",
        channel_id="chan-1",
        entry=entry,
        caller_masked="139****1234",
        caller_hash="hash-of-13900001234",
        routes_version=table.digest,
    )

    async def run() -> Played:
        loop = asyncio.get_running_loop()
        pool = SeatPool(table.operators.seats, clock=loop.time, max_queue=max_queue)
        call = ScriptedCall(table, script, rendered=rendered)
        svc = Services(
            calllog=log,
            prompts=Prompts(),
            clock=lambda: at,
            webhooks=webhooks,
            partner_secrets={p: b"secret" for p in ("market-regulation", "health", "public-services")},
            seats=pool,
            metrics=metrics,
            notices=(lambda _table, entry: [n for n in notices if n.applies_to(entry)]) if notices else None,
            tickets=CallLogTickets(log),
            recorder=recorder,
            dial_path=dial_path,
        )
        played = Played(call, record, log, metrics, webhooks.sent)
        async with contextlib.AsyncExitStack() as others:
            if setup is not None:
                await setup(pool, others)
            try:
                await asyncio.create_task(handle_call(call, record, table, svc))
            except (asyncio.CancelledError, Exception) as exc:
                played.raised = exc
        return played

    loop = VirtualTimeLoop()
    try:
        played = loop.run_until_complete(run())
    finally:
        loop.close()
        log.close()
    return played


async def operators_busy(pool: SeatPool, others: contextlib.AsyncExitStack) -> None:
    """Every seat is talking with another caller for as long as this call lasts."""
    for n, _ in enumerate(TABLE.operators.seats):
        turn = await others.enter_async_context(pool.wait_turn(f"other-{n}"))
        turn.connected(await turn.offered())


def one_seat_frees_after(seconds: float) -> Setup:
    async def setup(pool: SeatPool, others: contextlib.AsyncExitStack) -> None:
        for n, _ in enumerate(TABLE.operators.seats):
            turn = await others.enter_async_context(pool.wait_turn(f"other-{n}"))
            seat = await turn.offered()
            turn.connected(seat)
            if n == 0:
                asyncio.get_running_loop().call_later(seconds, turn.release, seat)

    return setup


async def someone_waiting(pool: SeatPool, others: contextlib.AsyncExitStack) -> None:
    """Every seat busy and one more caller already in line."""
    await operators_busy(pool, others)
    await others.enter_async_context(pool.wait_turn("other-waiting"))


# -- a department answers -----------------------------------------------------------------------


@pytest.mark.parametrize("rating", ["1", "2", "3"])
def test_a_department_answers_and_after_the_talk_the_citizen_rates_the_service(tmp_path: Path, rating: str) -> None:
    call = play(tmp_path, Script(keys="1", survey_key=rating))

    assert call.call.verbs() == [
        ("answer",),
        ("play", MENU.replace("intro", "menu-main-intro")),
        ("key", "1"),
        ("play", "connecting"),
        ("dial", GONGAN, "市公安局", "ANSWER"),
        ("bridge", "scripted-out1"),
        ("play", call.told),
        ("key", "timeout"),
        ("play", "survey"),
        ("key", rating),
        ("play", "survey-thanks"),
        ("hangup",),
        ("cleanup",),
        ("close",),
    ]
    row = call.row
    assert (row["decision"], row["reason"], row["unit"], row["mode"], row["target_number"]) == (
        "dial",
        "menu_choice",
        "市公安局",
        "merge",
        GONGAN,
    )
    assert (row["outcome"], row["hangup_by"], row["dial_status"], row["satisfaction"]) == (
        "connected",
        "callee",
        "ANSWER",
        int(rating),
    )
    assert row["talk_seconds"] == 60.0 and row["keys"] == "1" and row["menu_path"] == "main"
    assert call.steps == [
        *("answered", "menu", "key", "decided", "ticket", "dial", "callee_hangup", "ticket_told", "survey", "ended")
    ]
    (ticket,) = call.log.tickets()
    assert (ticket["ticket_id"], ticket["kind"], ticket["unit"], ticket["satisfaction"]) == (
        row["ticket_id"],
        "merge",
        "市公安局",
        int(rating),
    )
    assert call.callbacks == {}
    assert call.metric("hotline_calls_total", entry="12345", outcome="connected") == 1
    assert call.metric("hotline_survey_responses_total", unit="市公安局", score=rating) == 1
    assert call.metric("hotline_routed_calls_total", unit="市公安局", mode="merge", result="answered") == 1
    assert call.metric("hotline_unit_calls_total", unit="市公安局", mode="merge", result="answered") == 1


def test_a_citizen_who_does_not_rate_is_not_asked_twice(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="1", survey_key=None))

    assert call.heard[-1] == "survey" and call.call.verbs("key")[-1] == ("key", "timeout")
    assert (call.row["outcome"], call.row["satisfaction"]) == ("connected", None)
    assert call.step("survey") == [{"key": "timeout"}]
    assert call.log.tickets()[0]["satisfaction"] is None


def test_a_short_number_dialled_directly_skips_the_menu(tmp_path: Path) -> None:
    route = next(r for r in TABLE.routes.values() if r.mode.value == "transfer" and r.open_at(TUESDAY_MORNING))
    call = play(tmp_path, Script(survey_key="1"), entry=route.number)

    assert call.heard[0] == "connecting" and call.dialled[0] == (route.dial, route.unit, "ANSWER")
    assert (call.row["track"], call.row["reason"], call.row["outcome"]) == ("direct", "direct_dial", "connected")


# -- the department's line fails: down its chain, then the operators ----------------------------


def test_a_busy_department_overflows_down_its_chain_and_then_to_the_operators_queue(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="1", department=Line.BUSY), table=with_overflow(tmp_path))

    assert call.dialled == [
        (GONGAN, "市公安局", "BUSY"),
        ("3372001", "市公安局", "BUSY"),
        ("operator-1", "seat-1", "ANSWER"),
    ]
    # A free seat: no position to announce; the operator hung up first, so the citizen is asked to rate.
    assert call.heard[1:] == ["connecting", "dept-busy", "survey"]
    row = call.row
    assert (row["outcome"], row["hangup_by"], row["overflowed"]) == ("operator", "callee", 1)
    assert (row["dial_status"], row["dial_cause"], row["operator_status"]) == ("BUSY", 17, "ANSWER")
    assert [(d["leg"], d["status"]) for d in call.step("dial")] == [
        ("department", "BUSY"),
        ("overflow", "BUSY"),
        ("operators", "ANSWER"),
    ]
    assert call.step("queue_joined") == [{"position": 1}]
    assert call.step("queue_left")[0]["seat"] == "seat-1"
    assert call.step("ticket")[0]["kind"] == "merge"  # the department's ticket, not a second one
    assert call.steps[-2:] == ["survey", "ended"]  # rated whoever served: here the operator
    assert call.metric("hotline_overflow_steps_total", unit="市公安局", step="overflow") == 1
    assert call.metric("hotline_overflow_steps_total", unit="市公安局", step="operators") == 1
    assert call.metric("hotline_routed_calls_total", unit="市公安局", mode="merge", result="busy") == 2
    # Two attempts, one call: the department answered % counts it once, not answered by the unit.
    assert call.metric("hotline_unit_calls_total", unit="市公安局", mode="merge", result="not_answered") == 1
    assert call.metric("hotline_unit_calls_total", unit="市公安局", mode="merge", result="answered") == 0
    assert call.metric("hotline_operator_queue_wait_seconds_count", result="answered") == 1


def test_a_department_that_does_not_answer_rings_its_full_time_then_the_operators(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="1", department=Line.NOANSWER))

    assert call.dialled == [(GONGAN, "市公安局", "NOANSWER"), ("operator-1", "seat-1", "ANSWER")]
    assert call.heard[1:] == ["connecting", "dept-noanswer", "survey"]
    assert call.step("dial")[0]["ring_seconds"] == pytest.approx(20, abs=0.5)  # its ring_seconds in routes.yaml
    assert (call.row["outcome"], call.row["overflowed"], call.row["dial_status"]) == ("operator", 1, "NOANSWER")


def test_a_department_trunk_that_is_down_goes_to_the_operators(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="1", department=Line.DOWN))

    assert call.dialled == [(GONGAN, "市公安局", "TRUNK_DOWN"), ("operator-1", "seat-1", "ANSWER")]
    assert call.heard[1:] == ["connecting", "dept-noanswer", "survey"]
    assert (call.row["outcome"], call.row["dial_status"]) == ("operator", "TRUNK_DOWN")
    assert call.metric("hotline_routed_calls_total", unit="市公安局", mode="merge", result="trunk_down") == 1


def test_without_seats_the_operators_group_line_is_rung_once(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="1", department=Line.BUSY), table=without_seats(tmp_path))

    assert call.dialled == [(GONGAN, "市公安局", "BUSY"), ("8000", "operators", "ANSWER")]
    assert (call.row["outcome"], call.row["operator_status"]) == ("operator", "ANSWER")
    assert "queue_joined" not in call.steps


def test_without_seats_and_nobody_at_the_group_line_the_citizen_leaves_a_message(tmp_path: Path) -> None:
    call = play(
        tmp_path, Script(keys="1", department=Line.BUSY, operators=Line.NOANSWER), table=without_seats(tmp_path)
    )

    assert call.dialled == [(GONGAN, "市公安局", "BUSY"), ("8000", "operators", "NOANSWER")]
    assert call.heard[-4:] == ["operators-busy", "leave-message", call.told, "message-saved"]
    row = call.row
    assert (row["outcome"], row["hangup_by"], row["operator_status"]) == ("message", "system", "NOANSWER")
    assert call.callbacks == {"139****1234": "message:menu_choice"}
    assert call.metric("hotline_overflow_steps_total", unit="市公安局", step="message") == 1
    assert call.metric("hotline_messages_total", unit="市公安局", reason="nobody_free") == 1


# -- partner platforms --------------------------------------------------------------------------


def test_an_interconnect_line_is_handed_off_with_a_webhook_carrying_the_ticket(tmp_path: Path) -> None:
    route = TABLE.routes["gongshang-12315"]
    call = play(tmp_path, Script(keys=f"9{route.number}#", survey_key="2"))

    ((target, handoff),) = call.webhooks
    row = call.row
    assert (target.name, handoff.ticket_id, handoff.route_id, handoff.number) == (
        "market-regulation",
        row["ticket_id"],
        route.id,
        route.number,
    )
    assert handoff.caller_masked == "139****1234" and handoff.menu_path == "main"
    assert (row["decision"], row["reason"], row["mode"], row["outcome"]) == (
        "handoff",
        "number_entry",
        "interconnect",
        "connected",
    )
    assert call.steps.index("ticket") < call.steps.index("webhook") < call.steps.index("dial")
    assert call.step("webhook") == [{"partner": "market-regulation", "result": "submitted"}]
    assert call.dialled == [(route.dial, route.unit, "ANSWER")]


# -- the operators ------------------------------------------------------------------------------


def test_zero_reaches_an_operator_at_once(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="0"))

    assert call.heard[1:] == ["to-operator", "survey"] and call.dialled == [("operator-1", "seat-1", "ANSWER")]
    row = call.row
    assert (row["decision"], row["reason"], row["outcome"], row["hangup_by"]) == (
        "operator",
        "caller_pressed_0",
        "operator",
        "callee",
    )
    assert call.step("ticket")[0]["kind"] == "operator" and row["ticket_id"]
    assert call.metric("hotline_time_to_human_seconds_count", kind="operator") == 1


@pytest.mark.parametrize("rating", ["1", "2", "3"])
def test_after_an_operator_hangs_up_the_citizen_rates_the_service(tmp_path: Path, rating: str) -> None:
    call = play(tmp_path, Script(keys="0", survey_key=rating))

    assert call.heard[1:] == ["to-operator", "survey", "survey-thanks"]
    assert call.steps[-3:] == ["callee_hangup", "survey", "ended"]  # once the seat was free again
    row = call.row
    assert (row["outcome"], row["hangup_by"], row["satisfaction"]) == ("operator", "callee", int(rating))
    (ticket,) = call.log.tickets()
    assert (ticket["ticket_id"], ticket["kind"], ticket["satisfaction"]) == (row["ticket_id"], "operator", int(rating))
    assert call.metric("hotline_survey_responses_total", unit="", score=rating) == 1


def test_a_citizen_who_hangs_up_on_the_operator_is_not_asked_to_rate(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="0", survey_key="1", hangup_at=HangupStep.TALKING))

    assert "survey" not in call.heard and "survey" not in call.steps
    assert (call.row["outcome"], call.row["hangup_by"], call.row["satisfaction"]) == ("operator", "caller", None)


def test_a_silent_caller_is_put_through_to_a_person_after_one_pass_of_the_menu(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys=""))

    assert call.heard == [MENU.replace("intro", "menu-main-intro"), "to-operator", "survey"]
    assert call.dialled == [("operator-1", "seat-1", "ANSWER")]
    assert (call.row["reason"], call.row["outcome"]) == ("no_input", "operator")
    assert call.step("key") == [{"key": "timeout"}]
    # The menu takes 10 s to say and its key wait would end at 15 s: the silent caller's time
    # (silent_caller_seconds 15) is up then, and "to-operator" leads into the queue by 16 s.
    (to_operator,) = [d.at for d in call.call.did if d.detail.get("media") == "to-operator"]
    assert to_operator == TABLE.policy.silent_caller_seconds == 15


def test_a_menu_too_long_to_wait_for_is_cut_short_for_a_silent_caller(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="", prompt_seconds=3.0))  # a 30 s main menu

    assert call.heard[-2:] == ["to-operator", "survey"] and call.call.verbs("key") == [("key", "timeout")]
    (to_operator,) = [d.at for d in call.call.did if d.detail.get("media") == "to-operator"]
    assert to_operator == 15  # mid-menu, not after it
    assert (call.row["reason"], call.row["outcome"]) == ("no_input", "operator")


def test_a_caller_who_pressed_a_key_has_all_the_time_the_menu_takes(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="*1", survey_key="1"))  # the menu twice: '1' comes at 22 s

    assert call.heard[:2] == [MENU.replace("intro", "menu-main-intro"), MENU.replace("intro ", "")]
    assert call.dialled == [(GONGAN, "市公安局", "ANSWER")]
    assert call.row["reason"] == "menu_choice"


def test_a_queued_caller_hears_their_turn_and_gets_the_first_seat_to_free(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="0"), setup=one_seat_frees_after(45))

    assert call.call.verbs("play", "hold")[1:4] == [("play", "to-operator"), ("play", "queue-next"), ("hold",)]
    assert call.dialled == [("operator-1", "seat-1", "ANSWER")]
    (left,) = call.step("queue_left")
    assert left["seat"] == "seat-1" and 0 < left["waited_seconds"] < 45
    assert call.row["outcome"] == "operator"


def test_nobody_free_within_the_maximum_wait_means_a_message(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="0"), setup=operators_busy)

    assert call.dialled == []
    assert call.heard[-5:] == ["queue-next", "operators-busy", "leave-message", call.told, "message-saved"]
    (left,) = call.step("queue_left")
    assert left["timed_out"] is True and left["waited_seconds"] == TABLE.operators.max_wait_seconds
    row = call.row
    assert (row["outcome"], row["hangup_by"]) == ("message", "system")
    (ticket,) = call.log.tickets()
    assert (ticket["ticket_id"], ticket["kind"]) == (row["ticket_id"], "message")
    assert call.callbacks == {"139****1234": "message:caller_pressed_0"}
    assert call.metric("hotline_operator_queue_wait_seconds_count", result="timed_out") == 1
    assert call.metric("hotline_messages_total", unit="none", reason="nobody_free") == 1


def test_a_full_queue_takes_a_message_without_queueing(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="0"), setup=someone_waiting, max_queue=1)

    assert "queue_joined" not in call.steps and "queue_full" in call.steps
    assert call.heard[-4:] == ["operators-busy", "leave-message", call.told, "message-saved"]
    assert call.row["outcome"] == "message"


# -- messages -----------------------------------------------------------------------------------


def test_after_hours_the_department_takes_a_message_that_becomes_a_ticket_and_a_callback(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="1"), at=TUESDAY_NIGHT)

    assert call.dialled == []
    assert call.heard[1:] == ["after-hours", "leave-message", call.told, "message-saved"]
    assert call.call.verbs("record") == [("record", "hotline-msg-call-1", "done", 8)]
    row = call.row
    assert (row["decision"], row["reason"], row["outcome"], row["hangup_by"]) == (
        "message",
        "after_hours",
        "message",
        "system",
    )
    (ticket,) = call.log.tickets()
    assert (ticket["kind"], ticket["unit"]) == ("message", "市公安局")
    assert call.callbacks == {"139****1234": "message:after_hours"}
    assert call.metric("hotline_messages_total", unit="市公安局", reason="after_hours") == 1


def test_hanging_up_to_end_a_message_keeps_it(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="1", hangup_at=HangupStep.MESSAGE), at=TUESDAY_NIGHT)

    assert call.heard[-1] == "leave-message"  # no "saved" to a caller who is gone
    assert (call.row["outcome"], call.row["hangup_by"], call.row["hangup_cause"]) == ("message", "caller", 16)
    assert call.log.tickets() and call.callbacks == {"139****1234": "message:after_hours"}


def test_hanging_up_at_the_beep_without_a_word_is_a_missed_call(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="1", hangup_at=HangupStep.MESSAGE, message_seconds=0), at=TUESDAY_NIGHT)

    assert (call.row["outcome"], call.row["hangup_by"], call.row["ticket_id"]) == ("abandoned", "caller", "")
    assert call.log.tickets() == []
    assert call.callbacks == {"139****1234": "in_menu"}


def test_a_message_the_recorder_could_not_keep_ends_the_call_as_failed(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="1", message_state="failed", message_seconds=0), at=TUESDAY_NIGHT)

    assert call.step("message")[0]["state"] == "failed"
    assert (call.row["outcome"], call.row["hangup_by"]) == ("failed", "system")
    assert call.log.tickets() == [] and call.callbacks == {}


# -- the menu's own ends ------------------------------------------------------------------------


def test_three_invalid_keys_end_with_a_polite_goodbye(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="777"))

    assert call.heard[-1] == "goodbye-invalid" and call.heard[1].startswith("invalid ")
    row = call.row
    assert (row["decision"], row["reason"], row["outcome"], row["hangup_by"], row["keys"]) == (
        "hangup",
        "too_many_invalid_keys",
        "goodbye",
        "system",
        "777",
    )
    assert call.dialled == [] and call.log.tickets() == [] and call.callbacks == {}


# -- notices (紧急公告) -------------------------------------------------------------------------------


def notice(to_operators: bool) -> Notice:
    return Notice(
        id="flood",
        prompt="notice-flood",
        text="防汛紧急通知",
        entries=frozenset(),
        to_operators=to_operators,
        starts=dt.datetime(2026, 11, 24, 0, 0, tzinfo=dt.UTC),
        ends=dt.datetime(2026, 11, 25, 0, 0, tzinfo=dt.UTC),
    )


def test_a_notice_is_heard_before_the_menu_and_the_call_goes_on_as_usual(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="1", survey_key="1"), notices=(notice(to_operators=False),))

    assert call.heard[:3] == ["notice-flood", MENU.replace("intro", "menu-main-intro"), "connecting"]
    assert call.steps[:3] == ["answered", "notice", "menu"]
    assert call.step("notice") == [{"notice": "flood", "prompt": "notice-flood", "to_operators": False}]
    assert call.row["outcome"] == "connected"


def test_a_notice_for_the_operators_skips_the_menu(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="1"), notices=(notice(to_operators=True),))

    assert call.heard == ["notice-flood", "to-operator", "survey"] and call.call.verbs("key") == [("key", "timeout")]
    row = call.row
    assert (row["decision"], row["reason"], row["track"], row["outcome"]) == ("operator", "notice", "menu", "operator")


# -- intake: human-first ------------------------------------------------------------------------
# The caller is in the operators' line from the first second; the menu plays as a shortcut while
# they wait, and only a key that picks a route takes them out of it.

QUEUED_MENU = MENU.replace("intro", "menu-main-intro").replace("menu-operator", "menu-queued")


def human_first(tmp_path: Path) -> RouteTable:
    table = patched(tmp_path, "  intake: menu ", "  intake: human-first ")
    assert table.policy.intake == "human-first"
    return table


def test_human_first_a_free_seat_takes_the_call_at_once_and_the_menu_stops(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="", survey_key="1"), table=human_first(tmp_path))

    assert call.heard == [QUEUED_MENU, "survey", "survey-thanks"]  # cut off by the seat ringing
    assert call.dialled == [("operator-1", "seat-1", "ANSWER")] and call.call.verbs("key") == [("key", "1")]
    row = call.row
    assert (row["decision"], row["reason"], row["outcome"], row["satisfaction"]) == (
        "operator",
        "human_first",
        "operator",
        1,
    )
    assert call.steps[:3] == ["answered", "queue_joined", "menu"]
    assert call.step("answered") == [{"intake": "human-first"}]
    (rang,) = [d.at for d in call.call.did if d.verb == "dial"]
    assert rang == 0  # the seat rings the moment the call is answered
    assert call.metric("hotline_intake_time_to_human_seconds_count", intake="human-first") == 1
    assert call.metric("hotline_intake_time_to_human_seconds_count", intake="menu") == 0


def test_human_first_a_key_that_picks_a_department_leaves_the_line(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="1", survey_key="2"), table=human_first(tmp_path), setup=operators_busy)

    assert call.heard == [QUEUED_MENU, "connecting", call.told, "survey", "survey-thanks"]
    assert call.dialled == [(GONGAN, "市公安局", "ANSWER")]
    row = call.row
    assert (row["decision"], row["reason"], row["unit"], row["outcome"]) == (
        "dial",
        "menu_choice",
        "市公安局",
        "connected",
    )
    (left,) = call.step("queue_left")
    assert left["menu_choice"] is True and left["waited_seconds"] == 12  # the menu (11 s, key 8 included), the key
    assert call.metric("hotline_operator_queue_wait_seconds_count", result="menu_choice") == 1
    assert call.metric("hotline_intake_time_to_human_seconds_count", intake="human-first") == 1


def test_human_first_a_seat_freeing_mid_menu_interrupts_it(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys=""), table=human_first(tmp_path), setup=one_seat_frees_after(20))

    assert call.heard[0] == QUEUED_MENU and call.heard[1].startswith("no-input ")  # the second pass, cut at 20 s
    (rang,) = [d.at for d in call.call.did if d.verb == "dial"]
    assert rang == 20
    assert (call.row["reason"], call.row["outcome"]) == ("human_first", "operator")
    assert call.step("queue_left")[0]["waited_seconds"] == 24  # 20 s, then the seat's 4 s of ringing


def test_human_first_zero_ends_the_menu_and_the_caller_waits_hearing_their_turn(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="0"), table=human_first(tmp_path), setup=one_seat_frees_after(30))

    assert call.call.verbs("play", "hold")[1:4] == [("play", "queue-next"), ("hold",), ("play", "survey")]
    assert (call.row["reason"], call.row["outcome"]) == ("caller_pressed_0", "operator")
    assert call.dialled == [("operator-1", "seat-1", "ANSWER")]


def test_human_first_with_nobody_free_in_time_the_citizen_leaves_a_message(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys=""), table=human_first(tmp_path), setup=operators_busy)

    assert call.dialled == [] and call.heard[-4:] == ["operators-busy", "leave-message", call.told, "message-saved"]
    assert (call.row["decision"], call.row["reason"], call.row["outcome"]) == ("operator", "no_input", "message")
    assert call.step("queue_left")[0]["timed_out"] is True


def test_human_first_a_caller_hanging_up_during_the_menu_abandoned_the_line(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="", hangup_at=HangupStep.MENU), table=human_first(tmp_path), setup=operators_busy)

    assert call.row["outcome"] == "abandoned"
    assert call.step("queue_left")[0]["abandoned"] is True
    assert call.callbacks == {"139****1234": "in_queue"}


def test_human_first_is_for_the_12345_number_a_short_number_still_reaches_its_unit(tmp_path: Path) -> None:
    route = next(r for r in TABLE.routes.values() if r.mode.value == "transfer" and r.open_at(TUESDAY_MORNING))
    call = play(tmp_path, Script(), entry=route.number, table=human_first(tmp_path))

    assert call.dialled[0] == (route.dial, route.unit, "ANSWER") and "queue_joined" not in call.steps
    assert call.step("answered") == [{"intake": "direct"}]
    assert call.metric("hotline_intake_time_to_human_seconds_count", intake="direct") == 1


# -- the citizen hangs up -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "outcome", "hangup_by", "callback"),
    [
        (HangupStep.MENU, "abandoned", "caller", "in_menu"),
        (HangupStep.CONNECTING, "abandoned", "caller", "during_transfer"),
        (HangupStep.RINGING, "abandoned", "caller", "during_transfer"),
        (HangupStep.TALKING, "connected", "caller", None),  # reached someone: nothing to call back
        (HangupStep.SURVEY, "connected", "callee", None),  # the department ended the talk
    ],
)
def test_hanging_up_at_any_step_of_a_department_call_leaves_a_complete_record(
    tmp_path: Path, step: HangupStep, outcome: str, hangup_by: str, callback: str | None
) -> None:
    call = play(tmp_path, Script(keys="1", hangup_at=step, survey_key="1"))

    row = call.row
    assert (row["outcome"], row["hangup_by"], row["hangup_cause"]) == (outcome, hangup_by, 16)
    assert call.steps[-2:] == ["caller_hangup", "ended"] and row["ended_at"] >= row["started_at"]
    assert call.callbacks == ({"139****1234": callback} if callback else {})
    assert row["satisfaction"] is None
    assert call.call.verbs()[-3:] == [("caller_hangup",), ("cleanup",), ("close",)]
    assert call.metric("hotline_calls_total", entry="12345", outcome=outcome) == 1


@pytest.mark.parametrize(
    ("step", "dialled", "answered"),
    [(HangupStep.CONNECTING, 0, 0), (HangupStep.RINGING, 0, 0), (HangupStep.TALKING, 1, 1)],
)
def test_the_department_answered_figure_counts_the_same_call_in_the_metrics_and_the_report(
    tmp_path: Path, step: HangupStep, dialled: int, answered: int
) -> None:
    """A caller gone while "connecting" or while the line rang was routed, not dialled (no dial result):
    neither the dashboard's per-call metric nor the report holds it against the unit."""
    call = play(tmp_path, Script(keys="1", hangup_at=step, survey_key="1"))

    unit = {"unit": "市公安局", "mode": "merge"}
    got = call.metric("hotline_unit_calls_total", **unit, result="answered")
    got_not = call.metric("hotline_unit_calls_total", **unit, result="not_answered")
    assert (got + got_not, got) == (dialled, answered)
    day = from_epoch(call.row["started_at"]).date()
    figures = report.build(report.load(call.log, day, day), day, day, as_of=call.row["ended_at"] + 1, table=TABLE)
    total = figures.unit("市公安局", "merge").total
    assert (total.routed, total.dialled, total.answered) == (1, dialled, answered)


def test_hanging_up_while_talking_keeps_the_talk_time_and_asks_no_rating(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="1", hangup_at=HangupStep.TALKING))

    assert call.row["talk_seconds"] == 30.0 and "survey" not in call.heard


def test_hanging_up_in_the_operators_queue_is_an_abandoned_wait_to_call_back(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="0", hangup_at=HangupStep.QUEUE), setup=operators_busy)

    assert (call.row["outcome"], call.row["hangup_by"]) == ("abandoned", "caller")
    (left,) = call.step("queue_left")
    assert left["abandoned"] is True
    assert call.callbacks == {"139****1234": "in_queue"}
    assert call.metric("hotline_operator_queue_wait_seconds_count", result="abandoned") == 1


# -- the controller's side ----------------------------------------------------------------------


def test_a_shutdown_mid_call_records_the_call_as_handed_off_and_lets_the_cancellation_go_on(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="1", cancel_at=HangupStep.RINGING))

    assert isinstance(call.raised, asyncio.CancelledError)
    row = call.row
    assert (row["outcome"], row["hangup_by"]) == ("handed_off", "system")
    assert call.steps[-1] == "ended" and call.callbacks == {}
    assert call.metric("hotline_calls_total", entry="12345", outcome="handed_off") == 1


def test_asterisk_refusing_a_request_mid_call_ends_that_call_as_failed(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="1", fail_at=HangupStep.CONNECTING))

    assert call.raised is None  # the controller goes on serving the others
    row = call.row
    assert (row["outcome"], row["hangup_by"]) == ("failed", "system")
    assert call.steps[-2:] == ["ari_error", "ended"]
    assert call.call.verbs()[-3:] == [("hangup",), ("cleanup",), ("close",)]


# -- the ticket number and the progress query (查询办理进度) ----------------------------------------


def test_star_after_the_ticket_number_says_it_once_more_before_the_survey(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="1", ticket_key="*", survey_key="1"))

    number = call.told.removesuffix(" ticket-number-repeat")
    assert call.heard[-4:] == [call.told, number, "survey", "survey-thanks"]
    assert [d["again"] for d in call.step("ticket_told")] == [False, True]
    assert call.step("ticket_told")[0]["ticket_id"] == call.row["ticket_id"]
    assert call.row["satisfaction"] == 1


def seed_ticket(tmp_path: Path, caller_hash: str, created: dt.datetime, n: int = 1) -> str:
    """An earlier call's ticket in the call log the call will read; its id."""
    log = open_calllog(tmp_path / "calllog.sqlite3")
    log.start()
    record = CallRecord(f"earlier-{n}", f"chan-e{n}", "12345", "139****1234", caller_hash, TABLE.digest)
    log.call_started(record)
    ticket = new_ticket(record.call_id, "merge", "市公安局", "merge", "gongan", created, TABLE.deadlines)
    log.ticket_opened(ticket)
    log.close()
    return ticket.ticket_id


def test_hash_alone_asks_for_the_callers_own_latest_ticket(tmp_path: Path) -> None:
    seed_ticket(tmp_path, "hash-of-13900001234", dt.datetime(2026, 11, 20, 9, 0), n=1)
    latest = seed_ticket(tmp_path, "hash-of-13900001234", dt.datetime(2026, 11, 23, 15, 0), n=2)
    seed_ticket(tmp_path, "hash-of-someone-else", dt.datetime(2026, 11, 23, 16, 0), n=3)

    call = play(tmp_path, Script(keys="8#"))

    digits = " ".join(f"digit-{d}" for d in keypad_number(latest))
    # Opened Mon 23 Nov 15:00 with 3 workdays (市公安局): due Thu 26 Nov 15:00.
    # A department ticket is dispatched to its unit at once (ivr.ticketing.lifecycle).
    said = f"progress-ticket {digits} ticket-state-dispatched progress-due month-11 day-26 hour-15 progress-goodbye"
    assert call.heard[1:] == ["progress-enter", said]
    assert call.step("progress") == [{"own": True, "digits": 0, "ticket_id": latest}]
    row = [r for r in call.log.calls() if r["call_id"] == "call-1"][0]
    assert (row["decision"], row["outcome"], row["hangup_by"]) == ("progress", "informed", "system")
    assert call.callbacks == {}


def test_a_typed_ticket_number_is_found_after_a_wrong_one(tmp_path: Path) -> None:
    wanted = seed_ticket(tmp_path, "hash-of-someone-else", dt.datetime(2026, 11, 23, 15, 0))
    typed = keypad_number(wanted)

    call = play(tmp_path, Script(keys="8" + "12345678901234#" + typed + "#"))

    assert call.heard[1:3] == ["progress-enter", "progress-not-found"]
    assert call.heard[3].startswith("progress-ticket") and "ticket-state-dispatched" in call.heard[3]
    assert call.step("progress") == [
        {"own": False, "digits": 14, "ticket_id": ""},
        {"own": False, "digits": 14, "ticket_id": wanted},
    ]


def test_three_wrong_numbers_end_with_a_polite_goodbye(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="8" + "123#" + "99999999999999#" + "#"))

    assert call.heard[1:] == ["progress-enter", "progress-not-found", "progress-not-found", "goodbye-invalid"]
    assert [d["ticket_id"] for d in call.step("progress")] == ["", "", ""]
    row = [r for r in call.log.calls() if r["call_id"] == "call-1"][0]
    assert (row["decision"], row["outcome"]) == ("progress", "goodbye")


def test_a_recorded_call_tells_the_citizen_first_and_records_the_answered_leg(tmp_path: Path) -> None:
    table = patched(tmp_path, "  record: off ", "  record: on  ")
    book = Metrics()
    recorder = LegRecorder(
        tmp_path / "asterisk", open_calllog(tmp_path / "unused.sqlite3"), book, lambda: TUESDAY_MORNING
    )
    call = play(tmp_path, Script(keys="1"), table=table, recorder=recorder)

    verbs = [v[:2] for v in call.call.verbs() if v[0] in ("play", "dial", "record_leg", "bridge")]
    assert verbs[1:5] == [
        ("play", "recording-notice"),
        ("play", "connecting"),
        ("dial", GONGAN),
        ("record_leg", "scripted-out1"),
    ]
    assert verbs[5] == ("bridge", "scripted-out1")
    (_, _, path) = call.call.verbs("record_leg")[0]
    assert path == "/var/spool/asterisk/monitor/hotline/2026-11-24/call-1-1.raw"
    assert call.steps[call.steps.index("decided") :][:4] == ["decided", "ticket", "recording_notice", "dial"]
    assert call.step("recording") == [{"recording": "call-1-1"}]


def test_a_unit_with_recording_off_hears_no_notice_and_is_not_recorded(tmp_path: Path) -> None:
    table = patched(tmp_path, "  units: {}    ", "  units: {市公安局: off}    ")
    table = routes.parse(table.text.replace("  record: off ", "  record: on  ", 1))
    recorder = LegRecorder(tmp_path, open_calllog(tmp_path / "unused.sqlite3"), Metrics(), lambda: TUESDAY_MORNING)
    call = play(tmp_path, Script(keys="1"), table=table, recorder=recorder)

    assert "recording-notice" not in call.heard and not call.call.verbs("record_leg")
    assert call.row["outcome"] == "connected" and "recording" not in call.steps


# -- HOTLINE_DIAL_PATH=dialplan: Asterisk rings the chain, the story is the same ----------------


def chain_of(call: Played) -> list[tuple[Any, ...]]:
    """What went to the dialplan and what was rung or talked there, in order."""
    return call.call.verbs("ring_chain", "dial", "talk_in_dialplan", "bridge")


def test_on_the_dialplan_path_an_answered_department_is_the_same_call_as_on_the_ari_path(tmp_path: Path) -> None:
    script = Script(keys="1", survey_key="2")
    ari = play(tmp_path / "ari", script)
    chain = play(tmp_path / "dialplan", script, dial_path="dialplan")

    extension = chain.call.verbs("ring_chain")[0][1]
    assert chain_of(chain) == [
        ("ring_chain", extension, True),
        ("dial", GONGAN, "市公安局", "ANSWER"),
        ("talk_in_dialplan",),  # Asterisk bridged it: no bridge of ours
    ]
    assert extension.startswith("gongan_")
    told = {chain.told: "ticket", ari.told: "ticket"}  # each call its own ticket number
    assert [told.get(h, h) for h in chain.heard] == [told.get(h, h) for h in ari.heard]
    assert chain.steps == ari.steps
    fields = ("outcome", "hangup_by", "dial_status", "talk_seconds", "satisfaction", "overflowed", "target_number")
    assert (
        [chain.row[f] for f in fields]
        == [ari.row[f] for f in fields]
        == [*("connected", "callee", "ANSWER", 60.0, 2, 0, GONGAN)]
    )
    assert chain.metric("hotline_unit_calls_total", unit="市公安局", mode="merge", result="answered") == 1


def test_on_the_dialplan_path_a_busy_line_rings_the_next_number_of_its_chain(tmp_path: Path) -> None:
    call = play(
        tmp_path,
        Script(keys="1", lines={GONGAN: Line.BUSY}, survey_key="1"),
        table=with_overflow(tmp_path),
        dial_path="dialplan",
    )

    assert chain_of(call)[1:] == [
        ("dial", GONGAN, "市公安局", "BUSY"),
        ("dial", "3372001", "市公安局", "ANSWER"),
        ("talk_in_dialplan",),
    ]
    assert [(d["leg"], d["status"]) for d in call.step("dial")] == [("department", "BUSY"), ("overflow", "ANSWER")]
    assert (call.row["outcome"], call.row["dial_status"], call.row["overflowed"]) == ("connected", "ANSWER", 1)
    assert call.heard[-3:] == [call.told, "survey", "survey-thanks"]


def test_on_the_dialplan_path_a_chain_nobody_answers_ends_in_the_operators_queue(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="1", department=Line.NOANSWER), dial_path="dialplan")

    # The chain in the dialplan; the operators over ARI, where the controller holds the seat's leg.
    assert chain_of(call)[1:] == [
        ("dial", GONGAN, "市公安局", "NOANSWER"),
        ("dial", "operator-1", "seat-1", "ANSWER"),
    ]
    assert call.heard[1:] == ["connecting", "dept-noanswer", "survey"]
    assert call.step("dial")[0]["ring_seconds"] == pytest.approx(20, abs=0.5)
    assert (call.row["outcome"], call.row["overflowed"], call.row["dial_status"]) == ("operator", 1, "NOANSWER")
    assert call.step("queue_joined") == [{"position": 1}]


def test_on_the_dialplan_path_a_trunk_that_is_down_is_trunk_down_and_goes_to_the_operators(tmp_path: Path) -> None:
    ari = play(tmp_path / "ari", Script(keys="1", department=Line.DOWN))
    chain = play(tmp_path / "dialplan", Script(keys="1", department=Line.DOWN), dial_path="dialplan")

    assert chain.dialled == ari.dialled == [(GONGAN, "市公安局", "TRUNK_DOWN"), ("operator-1", "seat-1", "ANSWER")]
    assert (chain.row["outcome"], chain.row["dial_status"]) == ("operator", "TRUNK_DOWN")
    assert chain.metric("hotline_routed_calls_total", unit="市公安局", mode="merge", result="trunk_down") == 1


@pytest.mark.parametrize(
    ("step", "outcome", "callback", "talk_seconds"),
    [(HangupStep.RINGING, "abandoned", "during_transfer", 0.0), (HangupStep.TALKING, "connected", None, 30.0)],
)
def test_on_the_dialplan_path_a_caller_hanging_up_in_the_chain_is_on_record(
    tmp_path: Path, step: HangupStep, outcome: str, callback: str | None, talk_seconds: float
) -> None:
    call = play(tmp_path, Script(keys="1", hangup_at=step), dial_path="dialplan")

    row = call.row
    assert (row["outcome"], row["hangup_by"], row["hangup_cause"]) == (outcome, "caller", 16)
    assert row["talk_seconds"] == talk_seconds
    assert call.callbacks == ({"139****1234": callback} if callback else {})
    assert call.steps[-2:] == ["caller_hangup", "ended"] and "survey" not in call.heard


def test_a_route_edited_since_the_chains_were_rendered_rings_over_ari(tmp_path: Path) -> None:
    edited = with_overflow(tmp_path)  # the loaded dialplan has the shipped 市公安局 chain, not this one
    call = play(tmp_path, Script(keys="1", survey_key="1"), table=edited, dial_path="dialplan", rendered=TABLE)

    assert chain_of(call)[1:] == [("dial", GONGAN, "市公安局", "ANSWER"), ("bridge", "scripted-out1")]
    assert chain_of(call)[0][2] is False  # the `i` extension: nothing rung in the dialplan
    assert (call.row["outcome"], call.row["talk_seconds"]) == ("connected", 60.0)
