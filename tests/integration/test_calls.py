"""End to end, with real calls: SIPp citizens -> Asterisk 22 -> our controller -> SIPp phones."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from lab.citizen import place_call
from tests.integration.conftest import (
    AFTER_HOURS,
    ASTERISK_LOGS,
    DEPARTMENTS_PORT,
    OPERATORS_PORT,
    PARTNERS_PORT,
    REPO,
    SEAT_PORTS,
    Controller,
    Partner,
    Phone,
    until,
)

pytestmark = pytest.mark.integration

CITIZEN = "13912345678"


def short_ring_routes(tmp_path: Path) -> Path:
    """The shipped routes.yaml with the public security bureau ringing only 5 s."""
    text = (REPO / "routes.yaml").read_text(encoding="utf-8")
    patched = tmp_path / "routes.yaml"
    gongan = 'number: "3372000"\n    mode: merge\n    effective: 2016-07-31\n    trunk: departments\n    ring_seconds: '
    assert gongan + "20" in text
    patched.write_text(text.replace(gongan + "20", gongan + "5"), encoding="utf-8")
    return patched


def test_citizen_picks_public_security_and_is_bridged_to_its_number(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    department = phones(DEPARTMENTS_PORT, talk_ms=2000)
    controller = start_controller()

    call = place_call("12345", "1", caller=CITIZEN, talk_ms=15000)

    assert call.succeeded, call.stderr
    assert [uri.split("@")[0] for uri in department.invites()] == ["sip:3372000"]
    (row,) = controller.finished_calls()
    assert (row["entry"], row["track"], row["keys"], row["menu_path"]) == ("12345", "menu", "1", "main")
    assert (row["unit"], row["mode"], row["target_number"]) == ("市公安局", "merge", "3372000")
    assert (row["dial_status"], row["outcome"], row["hangup_by"]) == ("ANSWER", "connected", "callee")
    assert 1.5 <= row["talk_seconds"] <= 8.0  # the department's 2 s, not the caller's 15 s
    assert row["started_at"] <= row["answered_at"] <= row["target_answered_at"] <= row["ended_at"]
    assert row["caller_masked"] == "139****5678"
    assert CITIZEN not in controller.log()
    steps = [s["name"] for s in controller.calllog.steps(row["call_id"])]
    assert steps[:2] == ["answered", "menu"] and "dial" in steps and steps[-1] == "ended"
    with urllib.request.urlopen("http://127.0.0.1:9345/metrics", timeout=5) as resp:
        exported = resp.read().decode()
    assert 'hotline_calls_total{entry="12345",outcome="connected"} 1.0' in exported
    assert 'hotline_routed_calls_total{mode="merge",result="answered",unit="市公安局"} 1.0' in exported
    assert 'hotline_time_to_human_seconds_count{kind="department"} 1.0' in exported
    assert "hotline_active_calls 0.0" in exported and CITIZEN not in exported


def test_a_busy_department_overflows_to_the_operators(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    department = phones(DEPARTMENTS_PORT, "phone_busy.xml")
    operators = phones(SEAT_PORTS[0], talk_ms=1500)
    controller = start_controller()

    call = place_call("12345", "1", caller=CITIZEN, talk_ms=20000)

    assert call.succeeded, call.stderr
    assert [u.split("@")[0] for u in department.invites()] == ["sip:3372000"]
    assert len(operators.invites()) == 1
    (row,) = controller.finished_calls()
    assert (row["dial_status"], row["dial_cause"], row["overflowed"]) == ("BUSY", 17, 1)
    assert (row["operator_status"], row["outcome"]) == ("ANSWER", "operator")


def test_an_unanswered_department_overflows_after_its_ring_time(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone], tmp_path: Path
) -> None:
    department = phones(DEPARTMENTS_PORT, "phone_noanswer.xml")
    operators = phones(SEAT_PORTS[0], talk_ms=1500)
    controller = start_controller(short_ring_routes(tmp_path))

    call = place_call("12345", "1", caller=CITIZEN, talk_ms=30000)

    assert call.succeeded, call.stderr
    assert len(department.invites()) == 1 and len(operators.invites()) == 1
    (row,) = controller.finished_calls()
    assert (row["dial_status"], row["overflowed"], row["outcome"]) == ("NOANSWER", 1, "operator")
    rang = next(s for s in controller.calllog.steps(row["call_id"]) if s["name"] == "dial")
    assert 4.5 <= rang["detail"]["ring_seconds"] <= 12  # its 5 s ring time, not SIP's 32 s timer B


def test_three_invalid_keys_end_with_a_polite_goodbye(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    department = phones(DEPARTMENTS_PORT)
    controller = start_controller()

    call = place_call("12345", "777", caller=CITIZEN, gap_ms=1500, talk_ms=30000)

    assert call.succeeded, call.stderr
    assert department.invites() == []
    (row,) = controller.finished_calls()
    assert (row["decision"], row["reason"], row["outcome"], row["keys"]) == (
        "hangup",
        "too_many_invalid_keys",
        "goodbye",
        "777",
    )
    assert row["hangup_by"] == "system"


def test_a_dual_track_number_dialled_directly_reaches_its_unit(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    department = phones(DEPARTMENTS_PORT, talk_ms=1500)
    controller = start_controller()

    call = place_call("12310", "", caller=CITIZEN, talk_ms=15000)

    assert call.succeeded, call.stderr
    assert [u.split("@")[0] for u in department.invites()] == ["sip:12310"]
    (row,) = controller.finished_calls()
    assert (row["entry"], row["track"], row["mode"], row["unit"]) == ("12310", "direct", "transfer", "市编办")
    assert (row["dial_status"], row["outcome"]) == ("ANSWER", "connected")


def test_the_caller_hanging_up_mid_menu_is_logged_as_abandoned(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    phones(DEPARTMENTS_PORT)
    controller = start_controller()

    call = place_call("12345", "", caller=CITIZEN, talk_ms=1500)

    assert call.succeeded, call.stderr
    (row,) = controller.finished_calls()
    assert (row["outcome"], row["hangup_by"], row["unit"]) == ("abandoned", "caller", "")


def test_without_the_controller_callers_reach_the_duty_line(asterisk: object, phones: Callable[..., Phone]) -> None:
    """Stasis() fails at once when no controller is connected; the dialplan sends callers on."""
    operators = phones(OPERATORS_PORT, talk_ms=1000)
    messages_log = ASTERISK_LOGS / "messages.log"
    logged_before = messages_log.stat().st_size

    call = place_call("12345", "", caller=CITIZEN, talk_ms=20000)

    assert call.succeeded, call.stderr
    assert [u.split("@")[0] for u in operators.invites()] == ["sip:8000"]
    # Counted in Asterisk's log, since the controller never saw this call.
    with messages_log.open("rb") as f:
        f.seek(logged_before)
        assert b"hotline_fallback entry=12345 stasis=FAILED" in f.read()


def test_numbers_outside_the_dialplan_are_refused(asterisk: object) -> None:
    call = place_call("99999", "", caller=CITIZEN, talk_ms=1000, timeout_s=10)
    assert not call.succeeded
    assert "404" in (call.workdir / "messages.log").read_text()


def test_the_same_dual_track_unit_is_reachable_through_the_12345_menu(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    department = phones(DEPARTMENTS_PORT, talk_ms=1500)
    controller = start_controller()

    call = place_call("12345", "62", caller=CITIZEN, talk_ms=15000)

    assert call.succeeded, call.stderr
    assert [u.split("@")[0] for u in department.invites()] == ["sip:12355"]
    (row,) = controller.finished_calls()
    assert (row["entry"], row["track"], row["menu_path"], row["mode"], row["unit"]) == (
        "12345",
        "menu",
        "main/culture",
        "transfer",
        "团市委",
    )
    assert row["outcome"] == "connected"


def test_zero_reaches_the_operators_at_once(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    department = phones(DEPARTMENTS_PORT)
    operators = phones(SEAT_PORTS[0], talk_ms=1500)
    controller = start_controller()

    call = place_call("12345", "0", caller=CITIZEN, talk_ms=15000)

    assert call.succeeded, call.stderr
    assert department.invites() == [] and len(operators.invites()) == 1
    (row,) = controller.finished_calls()
    assert (row["decision"], row["reason"], row["outcome"]) == ("operator", "caller_pressed_0", "operator")
    assert row["target_answered_at"] is not None  # time to a human is measurable


def test_a_citizen_types_an_old_department_number_after_9(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    department = phones(DEPARTMENTS_PORT, talk_ms=1500)
    controller = start_controller()

    call = place_call("12345", "93022782#", caller=CITIZEN, gap_ms=300, talk_ms=15000)

    assert call.succeeded, call.stderr
    assert [u.split("@")[0] for u in department.invites()] == ["sip:3022782"]
    (row,) = controller.finished_calls()
    assert (row["reason"], row["unit"], row["mode"], row["outcome"]) == (
        "number_entry",
        "市发改委",
        "merge",
        "connected",
    )


def test_a_typed_number_outside_routes_yaml_is_never_dialled(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    department = phones(DEPARTMENTS_PORT)
    operators = phones(SEAT_PORTS[0])
    partners = phones(PARTNERS_PORT)
    controller = start_controller()

    call = place_call("12345", "9110#", caller=CITIZEN, gap_ms=300, talk_ms=4000)

    assert call.succeeded, call.stderr
    assert department.invites() == operators.invites() == partners.invites() == []
    (row,) = controller.finished_calls()
    assert row["target_number"] == "" and row["keys"] == "9110#"


def test_an_interconnect_line_is_handed_to_its_partner_platform_with_a_signed_webhook(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone], partner_webhook: Partner
) -> None:
    partner = phones(PARTNERS_PORT, talk_ms=1500)
    controller = start_controller()

    call = place_call("12315", "", caller=CITIZEN, talk_ms=15000)

    assert call.succeeded, call.stderr
    assert [u.split("@")[0] for u in partner.invites()] == ["sip:12315"]
    (row,) = controller.finished_calls()
    assert (row["decision"], row["mode"], row["unit"], row["outcome"]) == (
        "handoff",
        "interconnect",
        "市工商质监局",
        "connected",
    )
    (hook,) = until(lambda: partner_webhook.received, what="the partner's webhook")
    assert hook["verified"] and hook["path"] == "/hotline/handoff"
    assert {k: hook["body"][k] for k in ("call_id", "entry", "caller_masked", "number", "ticket_id")} == {
        "call_id": row["call_id"],
        "entry": "12315",
        "caller_masked": "139****5678",
        "number": "12315",
        "ticket_id": row["ticket_id"],
    }
    assert CITIZEN not in json.dumps(hook["body"])


def test_a_partner_platform_that_does_not_answer_falls_back_to_the_operators(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone], partner_webhook: Partner
) -> None:
    phones(PARTNERS_PORT, "phone_busy.xml")
    operators = phones(SEAT_PORTS[0], talk_ms=1500)
    controller = start_controller()

    call = place_call("12333", "", caller=CITIZEN, talk_ms=20000)

    assert call.succeeded, call.stderr
    assert len(operators.invites()) == 1
    (row,) = controller.finished_calls()
    assert (row["decision"], row["dial_status"], row["outcome"]) == ("handoff", "BUSY", "operator")


def test_a_department_after_hours_takes_a_message_that_becomes_a_callback(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    department = phones(DEPARTMENTS_PORT)
    controller = start_controller(clock=AFTER_HOURS)

    # Press 1, wait out the announcement and the beep, speak ~7 s, end the message with '#'.
    call = place_call("12345", "1" + "," * 14 + "~#", caller=CITIZEN, talk_ms=20000)

    assert call.succeeded, call.stderr
    assert department.invites() == []
    (row,) = controller.finished_calls()
    assert (row["decision"], row["reason"], row["outcome"], row["unit"]) == (
        "message",
        "after_hours",
        "message",
        "市公安局",
    )
    message = next(s for s in controller.calllog.steps(row["call_id"]) if s["name"] == "message")
    assert message["detail"]["state"] == "done" and message["detail"]["seconds"] >= 3
    (ticket,) = controller.calllog.tickets()
    assert (ticket["ticket_id"], ticket["kind"], ticket["status"]) == (row["ticket_id"], "message", "open")
    (callback,) = controller.calllog.callbacks()
    assert callback["caller_masked"] == "139****5678" and callback["missed_count"] == 1


def test_a_busy_line_overflows_down_its_chain_before_the_operators(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone], tmp_path: Path
) -> None:
    department = phones(DEPARTMENTS_PORT, "phone_busy.xml")
    backup = phones(PARTNERS_PORT, talk_ms=1500)  # the overflow target sits on another trunk
    text = (
        (REPO / "routes.yaml")
        .read_text(encoding="utf-8")
        .replace(
            "    ring_seconds: 20\n", '    ring_seconds: 20\n    overflow: [{number: "3372099", trunk: partners}]\n', 1
        )
    )
    (tmp_path / "routes.yaml").write_text(text, encoding="utf-8")
    controller = start_controller(tmp_path / "routes.yaml")

    call = place_call("12345", "1", caller=CITIZEN, talk_ms=20000)

    assert call.succeeded, call.stderr
    assert [u.split("@")[0] for u in department.invites()] == ["sip:3372000"]
    assert [u.split("@")[0] for u in backup.invites()] == ["sip:3372099"]
    (row,) = controller.finished_calls()
    assert (row["dial_status"], row["overflowed"], row["outcome"], row["operator_status"]) == (
        "ANSWER",
        1,
        "connected",
        "",
    )
    dials = [
        (s["detail"]["leg"], s["detail"]["status"])
        for s in controller.calllog.steps(row["call_id"])
        if s["name"] == "dial"
    ]
    assert dials == [("department", "BUSY"), ("overflow", "ANSWER")]


def test_after_a_department_call_the_citizen_rates_the_service(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    phones(DEPARTMENTS_PORT, talk_ms=1500)
    controller = start_controller()

    # The rating key comes after the ticket number (about 10 s) and its '*' wait (3 s), during the survey.
    call = place_call("12345", "1" + "," * 22 + "2", caller=CITIZEN, talk_ms=20000)

    assert call.succeeded, call.stderr
    (row,) = controller.finished_calls()
    assert (row["outcome"], row["satisfaction"]) == ("connected", 2)
    (ticket,) = controller.calllog.tickets()
    assert (ticket["ticket_id"], ticket["satisfaction"], ticket["kind"]) == (row["ticket_id"], 2, "merge")


@pytest.mark.parametrize(
    "scenario, trunk, status",
    [
        ("phone_congested.xml", "departments", "CONGESTION"),  # the unit's exchange answers 503
        ("phone_answer.xml", "nowhere", "TRUNK_DOWN"),  # the trunk itself cannot be used
    ],
)
def test_congestion_and_a_dead_trunk_are_told_apart_and_overflow_to_the_operators(
    start_controller: Callable[..., Controller],
    phones: Callable[..., Phone],
    tmp_path: Path,
    scenario: str,
    trunk: str,
    status: str,
) -> None:
    phones(DEPARTMENTS_PORT, scenario)
    operators = phones(SEAT_PORTS[0], talk_ms=1500)
    text = (REPO / "routes.yaml").read_text(encoding="utf-8")
    text = text.replace(
        "  departments:\n    endpoint: departments",
        "  departments:\n    endpoint: departments\n  nowhere:\n    endpoint: no-such-trunk",
        1,
    )
    gongan = 'number: "3372000"\n    mode: merge\n    effective: 2016-07-31\n    trunk: departments'
    (tmp_path / "routes.yaml").write_text(text.replace(gongan, gongan.replace("departments", trunk)), encoding="utf-8")
    controller = start_controller(tmp_path / "routes.yaml")

    call = place_call("12345", "1", caller=CITIZEN, talk_ms=20000)

    assert call.succeeded, call.stderr
    assert len(operators.invites()) == 1
    (row,) = controller.finished_calls()
    assert (row["dial_status"], row["overflowed"], row["outcome"]) == (status, 1, "operator")
