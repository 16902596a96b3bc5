"""The holiday calendar on real calls: the live controller uses the table's calendar — a provisional
holiday, an entered notice's make-up workday and a unit's closure decide whether a department rings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from lab.citizen import place_call
from tests.integration.conftest import DEPARTMENTS_PORT, REPO, Controller, Phone

pytestmark = pytest.mark.integration

CITIZEN = "13912345678"

# A test notice (not the real 2027 one) and a closure of the public security bureau (key 1).
CALENDAR = """
calendar:
  notices:
    2027:
      reference: integration test notice
      holidays:
        国庆节: 2027-10-01..2027-10-07
      workdays: [2027-10-09]
  closures:
    - {unit: 市公安局, dates: [2027-10-11], reason: 系统升级}
"""


def with_calendar(tmp_path: Path) -> Path:
    routes = tmp_path / "routes.yaml"
    routes.write_text((REPO / "routes.yaml").read_text(encoding="utf-8") + CALENDAR, encoding="utf-8")
    return routes


def test_on_a_provisional_holiday_the_department_does_not_ring(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone]
) -> None:
    department = phones(DEPARTMENTS_PORT, talk_ms=2000)
    controller = start_controller(clock="2027-10-01T10:00:00")  # 国庆 by the rules: no 2027 notice shipped

    call = place_call("12345", "1", caller=CITIZEN, talk_ms=8000)

    assert call.succeeded, call.stderr
    assert department.invites() == []
    (row,) = controller.finished_calls()
    assert (row["decision"], row["reason"], row["unit"]) == ("message", "after_hours", "市公安局")
    assert controller.saw("holiday_calendar_provisional")


def test_an_entered_notices_make_up_saturday_rings_the_department(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone], tmp_path: Path
) -> None:
    department = phones(DEPARTMENTS_PORT, talk_ms=2000)
    controller = start_controller(with_calendar(tmp_path), clock="2027-10-09T10:00:00")  # Saturday, 上班

    call = place_call("12345", "1", caller=CITIZEN, talk_ms=15000)

    assert call.succeeded, call.stderr
    assert [uri.split("@")[0] for uri in department.invites()] == ["sip:3372000"]
    (row,) = controller.finished_calls()
    assert (row["dial_status"], row["outcome"]) == ("ANSWER", "connected")


def test_a_closed_unit_takes_a_message_on_its_closure_day(
    start_controller: Callable[..., Controller], phones: Callable[..., Phone], tmp_path: Path
) -> None:
    department = phones(DEPARTMENTS_PORT, talk_ms=2000)
    controller = start_controller(with_calendar(tmp_path), clock="2027-10-11T10:00:00")  # a Monday

    call = place_call("12345", "1", caller=CITIZEN, talk_ms=8000)

    assert call.succeeded, call.stderr
    assert department.invites() == []
    (row,) = controller.finished_calls()
    assert (row["decision"], row["reason"], row["unit"]) == ("message", "after_hours", "市公安局")
