"""`hotline simulate` and `hotline menu` over every one of the notice's 50 lines.

Table-driven: each line of the shipped routes.yaml, at dates before and after its batch and
in and out of office hours, through the same CLI an operator uses.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr.cli import main
from ivr.routing import routes

ROOT = Path(__file__).resolve().parents[2]
TABLE = routes.load(ROOT / "routes.yaml")
ROUTES = sorted(TABLE.routes.values(), key=lambda r: r.number)

TUESDAY_MORNING = "2026-11-24T10:00"
TUESDAY_NIGHT = "2026-11-24T20:00"
NATIONAL_DAY = "2026-10-02T10:00"  # a Friday inside the holiday
MAKEUP_SATURDAY = "2026-10-10T10:00"  # 调休: an official workday


def cli(*args: str) -> list[dict[str, str]]:
    result = CliRunner().invoke(main, [*args, "--routes", str(ROOT / "routes.yaml")])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def test_there_are_the_notices_50_lines() -> None:
    modes = [r.mode.value for r in ROUTES]
    assert (len(ROUTES), modes.count("merge"), modes.count("transfer"), modes.count("interconnect")) == (50, 31, 7, 12)


def test_menu_lists_all_50_lines_after_the_last_batch_and_each_keys_path_is_what_simulate_decides() -> None:
    listed = cli("menu", "--at", "2019-01-02T10:00")
    assert sorted(d["number"] for d in listed) == sorted(r.number for r in ROUTES)
    for destination in listed:
        (decision,) = cli("simulate", "--dialed", "12345", "--keys", destination["keys"], "--at", "2019-01-02T10:00")
        assert (decision["number"], decision["unit"], decision["mode"]) == (
            destination["number"],
            destination["unit"],
            destination["mode"],
        )


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.number)
def test_each_line_by_number_entry_in_and_out_of_hours_and_before_its_batch(route: routes.Route) -> None:
    keys = f"9{route.number}#"
    action = "handoff" if route.mode.value == "interconnect" else "dial"
    (open_,) = cli("simulate", "--dialed", "12345", "--keys", keys, "--at", TUESDAY_MORNING)
    assert (open_["action"], open_["number"], open_["unit"]) == (action, route.number, route.unit)

    (night,) = cli("simulate", "--dialed", "12345", "--keys", keys, "--at", TUESDAY_NIGHT)
    if route.hours is None or route.hours.always_open:
        assert night["action"] == action
    else:
        assert (night["action"], night["reason"], night["number"]) == ("message", "after_hours", route.number)

    before = (route.effective - dt.timedelta(days=1)).isoformat() + "T10:00"
    (early,) = cli("simulate", "--dialed", "12345", "--keys", keys, "--at", before)
    assert early["number"] == "" and early["action"] != action


@pytest.mark.parametrize("route", [r for r in ROUTES if r.mode.value != "merge"], ids=lambda r: r.number)
def test_each_short_number_dialled_directly_reaches_its_unit(route: routes.Route) -> None:
    (decision,) = cli("simulate", "--dialed", route.number, "--at", TUESDAY_MORNING)
    assert (decision["track"], decision["number"], decision["unit"]) == ("direct", route.number, route.unit)


def test_office_hours_follow_the_official_calendar() -> None:
    (holiday,) = cli("simulate", "--dialed", "12345", "--keys", "1", "--at", NATIONAL_DAY)
    (makeup,) = cli("simulate", "--dialed", "12345", "--keys", "1", "--at", MAKEUP_SATURDAY)
    assert (holiday["action"], makeup["action"]) == ("message", "dial")


def test_simulate_refuses_keys_that_are_not_keys() -> None:
    result = CliRunner().invoke(
        main, ["simulate", "--dialed", "12345", "--keys", "1;2", "--routes", str(ROOT / "routes.yaml")]
    )
    assert result.exit_code == 2 and "keys are 0-9, * and #" in result.output


def test_check_passes_on_the_shipped_file_and_fails_with_file_line_on_a_broken_one(tmp_path: Path) -> None:
    # a fixed clock: whether the calendar is fresh today is tests/unit/routing/test_calendar.py's business
    ok = CliRunner(env={"HOTLINE_CLOCK_START": "2026-11-24T10:00"}).invoke(main, ["check", str(ROOT / "routes.yaml")])
    assert ok.exit_code == 0 and "50 routes" in ok.output
    broken = tmp_path / "routes.yaml"
    broken.write_text(
        (ROOT / "routes.yaml").read_text(encoding="utf-8").replace('"3372000"', '"33720x0"'), encoding="utf-8"
    )
    bad = CliRunner().invoke(main, ["check", str(broken)])
    assert bad.exit_code == 1 and f"{broken}:" in bad.output and "is not a phone number" in bad.output
