"""`hotline simulate --call`: the whole call, played by the live session code on a scripted call.

The decision line stays first and unchanged (tests/unit/test_simulate.py covers it over all 50
lines); these tests read the call that follows it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from ivr.cli import main

ROOT = Path(__file__).resolve().parents[3]
TUESDAY_MORNING = "2026-11-24T10:00"
TUESDAY_NIGHT = "2026-11-24T20:00"


def simulate(*args: str) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """The decision, the call's timeline and its final record."""
    result = CliRunner().invoke(
        main, ["simulate", *args, "--at", TUESDAY_MORNING, "--routes", str(ROOT / "routes.yaml")]
    )
    assert result.exit_code == 0, result.output
    decision, *timeline, last = (json.loads(line) for line in result.stdout.splitlines())
    return decision, timeline, last["record"]


def steps(timeline: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [line for line in timeline if line.get("step") == name]


def test_a_busy_public_security_line_overflows_to_the_operators_and_a_seat_answers() -> None:
    decision, timeline, record = simulate("--dialed", "12345", "--keys", "1", "--department", "busy")

    assert (decision["action"], decision["unit"], decision["number"]) == ("dial", "市公安局", "3372000")
    assert [(d["leg"], d["number"], d["status"]) for d in steps(timeline, "dial")] == [
        ("department", "3372000", "BUSY"),
        ("operators", "seat-1", "ANSWER"),
    ]
    heard = [line["media"] for line in timeline if line.get("call") == "play"]
    assert heard[1:] == ["connecting", "dept-busy", "survey"]  # the operator hung up first
    assert steps(timeline, "queue_joined") == [
        {"t": steps(timeline, "queue_joined")[0]["t"], "step": "queue_joined", "position": 1}
    ]
    assert (record["outcome"], record["overflowed"], record["dial_status"], record["operator_status"]) == (
        "operator",
        1,
        "BUSY",
        "ANSWER",
    )
    times = [line["t"] for line in timeline]
    assert times == sorted(times) and times[-1] > 60  # the talk took its scripted minute, on the virtual clock


def test_without_a_free_operator_the_caller_waits_the_maximum_then_leaves_a_message() -> None:
    _, timeline, record = simulate(
        "--dialed", "12345", "--keys", "1", "--department", "noanswer", "--operators", "none"
    )

    (left,) = steps(timeline, "queue_left")
    assert left["timed_out"] is True and left["waited_seconds"] == 120
    assert [line["calllog"] for line in timeline if "calllog" in line] == [
        "call_started",
        "ticket_opened",
        "ticket_contact",  # the number its 回访 will dial
        "callback_listed",
        "call_finished",
    ]
    assert (record["outcome"], record["hangup_by"], record["dial_status"]) == ("message", "system", "NOANSWER")


def test_a_hang_up_at_a_named_step_is_played_as_a_missed_call() -> None:
    _, timeline, record = simulate("--dialed", "12345", "--keys", "1", "--hangup-at", "ringing")

    assert [line["call"] for line in timeline if "call" in line][-4:] == ["dial", "caller_hangup", "cleanup", "close"]
    (listed,) = [line for line in timeline if line.get("calllog") == "callback_listed"]
    assert listed["reason"] == "during_transfer" and listed["caller"] == "139****1234"
    assert (record["outcome"], record["hangup_by"]) == ("abandoned", "caller")


def test_a_department_that_answers_is_talked_to_and_the_rating_times_out() -> None:
    _, timeline, record = simulate("--dialed", "12345", "--keys", "1", "--call")

    assert steps(timeline, "survey")[0]["key"] == "timeout"
    assert (record["outcome"], record["hangup_by"], record["talk_seconds"]) == ("connected", "callee", 60.0)


def test_on_the_dialplan_path_asterisk_rings_the_chain_and_the_record_is_the_same() -> None:
    _, ari, on_ari = simulate("--dialed", "12345", "--keys", "1", "--call", "--dial-path", "ari")
    _, timeline, record = simulate("--dialed", "12345", "--keys", "1", "--call", "--dial-path", "dialplan")

    calls = [line["call"] for line in timeline if "call" in line]
    assert "ring_chain" in calls and "talk_in_dialplan" in calls and "bridge" not in calls
    assert "ring_chain" not in [line.get("call") for line in ari]
    fields = ("outcome", "hangup_by", "talk_seconds", "dial_status")
    assert [record[f] for f in fields] == [on_ari[f] for f in fields] == ["connected", "callee", 60.0, "ANSWER"]


def test_without_call_options_the_output_is_the_decision_alone() -> None:
    result = CliRunner().invoke(
        main,
        ["simulate", "--dialed", "12345", "--keys", "1", "--at", TUESDAY_NIGHT, "--routes", str(ROOT / "routes.yaml")],
    )
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 1
    assert json.loads(result.stdout)["action"] == "message"


def test_an_unknown_step_or_outcome_is_refused_as_bad_input() -> None:
    for option, value in (("--hangup-at", "lunch"), ("--department", "maybe"), ("--operators", "some")):
        result = CliRunner().invoke(main, ["simulate", "--dialed", "12345", option, value])
        assert result.exit_code == 2 and value in result.output
