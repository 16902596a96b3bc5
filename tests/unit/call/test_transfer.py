"""An operator passes the citizen on (ivr.call.transfer), by feature codes typed on the seat phone.

Each test is one call on a ScriptedCall (tests.unit.call.test_session.play): the citizen presses 0,
seat-1 answers after 4 s, and the operator types codes at given seconds after answering; every line
talks 60 s once answered. What is checked: the conversation arrangements the story asked for
(`talk_with`: who is in the call's bridge, the caller on hold or not), what was dialled, the call
log's "transfer" step, and the seat being freed when the operator leaves.
"""

from __future__ import annotations

from pathlib import Path

from ivr.call.scripted import Line, Script
from ivr.calllog import open_calllog
from ivr.metrics import Metrics
from ivr.recording.store import Recorder as LegRecorder
from ivr.routing import routes
from ivr.routing.routes import RouteTable
from tests.unit.call.test_session import GONGAN, TUESDAY_MORNING, patched, play

SEAT = "scripted-out1"  # the seat's leg: the first line the call dialled
DEPT = "scripted-out2"  # the department's leg, when it is the next


def talks(call: object) -> list[tuple[str, bool]]:
    """(legs in the bridge, caller on hold) for each arrangement, in order."""
    return [(legs, hold) for _, legs, hold in call.call.verbs("talk_with")]  # type: ignore[attr-defined]


def test_consult_completed_the_citizen_waits_on_hold_then_talks_with_the_department(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="0", seat_keys=((5, f"*1{GONGAN}#"), (15, "*5#"))))

    assert call.dialled == [("operator-1", "seat-1", "ANSWER"), (GONGAN, "市公安局", "ANSWER")]
    assert talks(call) == [(SEAT, False), (SEAT, True), (f"{SEAT} {DEPT}", True), (DEPT, False)]
    assert ("drop", SEAT) in call.call.verbs("drop")
    (step,) = call.step("transfer")
    assert (step["kind"], step["target"], step["unit"], step["number"]) == ("consult", "gongan", "市公安局", GONGAN)
    assert (step["operator"], step["by"], step["outcome"], step["handed_over"]) == ("seat-1", "dtmf", "completed", True)
    assert step["answered_at"] is not None and step["rang"] == [{"number": GONGAN, "status": "ANSWER", "cause": 0}]
    assert (call.row["outcome"], call.row["hangup_by"]) == ("operator", "callee")
    assert call.metric("hotline_transfers_total", unit="市公安局", kind="consult", outcome="completed") == 1


def test_consult_cancelled_brings_the_operator_back_to_the_citizen(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="0", seat_keys=((5, f"*1{GONGAN}#"), (15, "*6#"))))

    assert talks(call) == [(SEAT, False), (SEAT, True), (f"{SEAT} {DEPT}", True), (SEAT, False)]
    assert call.call.verbs("drop") == [("drop", DEPT)]
    (step,) = call.step("transfer")
    assert (step["kind"], step["outcome"], step["handed_over"]) == ("consult", "cancelled", False)
    assert call.row["outcome"] == "operator"


def test_three_way_the_operator_leaves_and_citizen_and_department_stay(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="0", seat_keys=((5, f"*2{GONGAN}#"), (15, "*5#"))))

    assert talks(call) == [(SEAT, False), (f"{SEAT} {DEPT}", False), (DEPT, False)]
    (step,) = call.step("transfer")
    assert (step["kind"], step["outcome"]) == ("three-way", "operator_left")


def test_blind_transfer_to_a_busy_department_comes_back_to_the_queue_first_in_line(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="0", lines={GONGAN: Line.BUSY}, seat_keys=((5, f"*3{GONGAN}#"),)))

    # The operator leaves at once; the department is busy; the next operator (seat-2) takes the citizen.
    assert call.dialled == [
        ("operator-1", "seat-1", "ANSWER"),
        (GONGAN, "市公安局", "BUSY"),
        ("operator-2", "seat-2", "ANSWER"),
    ]
    (step,) = call.step("transfer")
    assert (step["kind"], step["outcome"], step["rang"][0]["status"]) == ("blind", "requeued", "BUSY")
    assert [s["position"] for s in call.step("queue_joined")] == [1, 1]
    assert [s["seat"] for s in call.step("queue_left")] == ["seat-1", "seat-2"]
    assert (call.row["outcome"], call.row["hangup_by"]) == ("operator", "callee")


def test_an_emergency_line_joins_three_way_by_default(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="0", seat_keys=((5, "*4110#"),)))

    assert call.dialled[1] == ("110", "110报警服务台", "ANSWER")
    (step,) = call.step("transfer")
    assert (step["kind"], step["target"], step["emergency"]) == ("three-way", "police", True)
    # The operator simply hangs up first: that is leaving the three-way, the citizen stays with 110.
    assert step["outcome"] == "operator_left"
    assert talks(call) == [(SEAT, False), (f"{SEAT} {DEPT}", False), (DEPT, False)]


def test_a_partner_transfer_hands_the_operators_ticket_to_the_partner_webhook(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="0", seat_keys=((5, "*312350#"),)))

    (step,) = call.step("transfer")
    assert (step["kind"], step["partner"], step["outcome"]) == ("blind", "public-services", "connected")
    ((target, handoff),) = call.webhooks
    assert target.name == "public-services" and handoff.ticket_id == call.row["ticket_id"] != ""


def test_a_number_not_in_routes_yaml_is_refused_and_nothing_is_dialled(tmp_path: Path) -> None:
    call = play(tmp_path, Script(keys="0", seat_keys=((5, "*19999999#"), (10, "*5#"), (12, "12*#"))))

    assert call.dialled == [("operator-1", "seat-1", "ANSWER")]
    assert call.step("transfer") == []
    assert talks(call) == [(SEAT, False)]
    assert (call.row["outcome"], call.row["hangup_by"]) == ("operator", "callee")


def test_the_citizen_hanging_up_mid_consult_is_recorded_on_the_transfer(tmp_path: Path) -> None:
    from ivr.call.scripted import HangupStep

    call = play(tmp_path, Script(keys="0", seat_keys=((5, f"*1{GONGAN}#"),), hangup_at=HangupStep.TALKING))

    # The citizen hangs up at the first moment of talking, before the code is typed: no transfer.
    assert call.step("transfer") == []
    assert call.row["outcome"] == "operator"


def recording_on(tmp_path: Path) -> tuple[RouteTable, LegRecorder]:
    table = patched(tmp_path, "  record: off ", "  record: on  ")
    log = open_calllog(tmp_path / "unused.sqlite3")
    return table, LegRecorder(tmp_path / "asterisk", log, Metrics(), lambda: TUESDAY_MORNING)


def test_a_recorded_call_records_the_transfer_leg_the_department_answers(tmp_path: Path) -> None:
    table, recorder = recording_on(tmp_path)
    consult = Script(keys="0", seat_keys=((5, f"*1{GONGAN}#"), (15, "*5#")))
    call = play(tmp_path, consult, table=table, recorder=recorder)

    # The operator's leg first, then the department's, each the moment a person answers it.
    assert [v[1] for v in call.call.verbs("record_leg")] == [SEAT, DEPT]
    assert [p.rsplit("/", 1)[1] for _, _, p in call.call.verbs("record_leg")] == ["call-1-1.raw", "call-1-2.raw"]
    assert call.step("recording") == [{"recording": "call-1-1"}, {"recording": "call-1-2"}]


def test_an_unanswered_blind_transfer_records_no_leg_of_its_own(tmp_path: Path) -> None:
    table, recorder = recording_on(tmp_path)
    busy = Script(keys="0", lines={GONGAN: Line.BUSY}, seat_keys=((5, f"*3{GONGAN}#"),))
    call = play(tmp_path, busy, table=table, recorder=recorder)

    assert [d[2] for d in call.dialled] == ["ANSWER", "BUSY", "ANSWER"]
    # seat-1, then seat-2 who took the citizen back; the busy department's leg is not recorded.
    assert [v[1] for v in call.call.verbs("record_leg")] == [SEAT, "scripted-out3"]


def test_a_citizen_not_told_at_the_operators_is_not_recorded_on_a_transfer(tmp_path: Path) -> None:
    table, recorder = recording_on(tmp_path)
    table = routes.parse(table.text.replace("  modes: {}  ", "  modes: {operators: off}  ", 1))
    consult = Script(keys="0", seat_keys=((5, f"*1{GONGAN}#"), (15, "*5#")))
    call = play(tmp_path, consult, table=table, recorder=recorder)

    assert call.dialled[1] == (GONGAN, "市公安局", "ANSWER")
    assert "recording-notice" not in call.heard and not call.call.verbs("record_leg")
