"""CallRecord: each field set by the one method named for what happened; states as the same words.

The call's own paths are specified in tests/unit/call/test_session.py; these are the record's
rules that hold whichever path set them.
"""

from __future__ import annotations

import json

from ivr.call.control import BridgeResult, DialResult, DialStatus
from ivr.calllog.records import CallRecord, HangupBy, Leg, Outcome


def record() -> CallRecord:
    return CallRecord(
        call_id="c1", channel_id="ch", entry="12345", caller_masked="139****1234", caller_hash="h", routes_version="v"
    )


def test_states_are_kept_as_the_words_the_call_log_has_always_stored() -> None:
    rec = record()
    rec.dialled(Leg.DEPARTMENT, "3372000", DialResult(DialStatus.BUSY, "out1", cause=17, started=1.0))
    rec.caller_hung_up(16)
    columns = rec.columns()
    assert (columns["outcome"], columns["hangup_by"], columns["dial_status"]) == ("abandoned", "caller", "BUSY")
    assert json.loads(json.dumps(columns))["outcome"] == "abandoned"  # as the journal writes it
    assert all(isinstance(columns[k], str) for k in ("outcome", "hangup_by", "dial_status"))  # as the drivers bind it
    assert [o.value for o in Outcome][:2] == ["in_progress", "connected"] and HangupBy.CALLEE == "callee"


def test_a_failed_department_line_marks_the_call_overflowed_and_an_operator_line_does_not() -> None:
    rec = record()
    rec.dialled(Leg.OPERATORS, "seat-1", DialResult(DialStatus.NOANSWER, "out1"))
    assert not rec.overflowed and rec.operator_status == "NOANSWER" and rec.dial_status == ""
    rec.dialled(Leg.DEPARTMENT, "3372000", DialResult(DialStatus.BUSY, "out2", cause=17))
    rec.dialled(Leg.OVERFLOW, "3372001", DialResult(DialStatus.ANSWER, "out3", answered=5.0))
    assert rec.overflowed and (rec.dial_status, rec.dial_cause, rec.target_answered_at) == ("ANSWER", None, 5.0)
    assert [s.detail["leg"] for s in rec.steps] == ["operators", "department", "overflow"]


def test_a_hang_up_is_a_missed_call_only_before_anyone_answered() -> None:
    missed = record()
    assert missed.caller_hung_up(16) is True and missed.outcome is Outcome.ABANDONED

    served = record()
    served.connected(Outcome.CONNECTED)
    served.talked(BridgeResult("callee", 42.0, 16))
    assert served.caller_hung_up(16) is False
    assert (served.outcome, served.hangup_by, served.talk_seconds) == (Outcome.CONNECTED, HangupBy.CALLEE, 42.0)


def test_a_failure_or_shutdown_after_the_citizen_was_served_keeps_how_they_were_served() -> None:
    rec = record()
    rec.connected(Outcome.OPERATOR)
    rec.failed("channel gone")
    rec.handed_off()
    assert (rec.outcome, rec.hangup_by) == (Outcome.OPERATOR, HangupBy.SYSTEM)

    fresh = record()
    fresh.handed_off()
    assert fresh.outcome is Outcome.HANDED_OFF


def test_where_a_missed_call_was_lost_is_read_from_its_steps() -> None:
    in_menu, ringing, queued = record(), record(), record()
    ringing.dialled(Leg.DEPARTMENT, "3372000", DialResult(DialStatus.NOANSWER, "o"))
    queued.step("queue_joined", position=2)
    assert (in_menu.missed_reason, ringing.missed_reason, queued.missed_reason) == (
        "in_menu",
        "during_transfer",
        "in_queue",
    )


def test_the_talk_time_measured_by_the_bridge_wins_over_the_calls_own() -> None:
    rec = record()
    rec.talked(BridgeResult("callee", 30.0))
    rec.ended(talk_seconds=31.5)
    assert rec.talk_seconds == 30.0 and rec.finished and rec.steps[-1].detail == {"outcome": "in_progress"}
