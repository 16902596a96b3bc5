"""The `hotline` CLI as a route editor uses it: `check` on the calendar, and one clock with the controller.

The clock tests run the CLI as a subprocess with TZ set, because the bug they pin is the host's
zone leaking into "now": the same instant must get the same answer on a UTC host and in Beijing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr.cli import main
from ivr.timekeeping import LOCAL_TZ

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = (ROOT / "routes.yaml").read_text(encoding="utf-8")

NOTICE_2027 = """
calendar:
  notices:
    2027:
      reference: a test notice (not the real one)
      holidays:
        元旦: 2027-01-01..2027-01-03
"""


def check(routes: Path, clock: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        main, ["check", str(routes), "--dialplan", ""], env={"HOTLINE_CLOCK_START": clock, "TZ": "UTC"}
    )
    return result.exit_code, result.stdout, result.stderr


# --- check and the calendar -----------------------------------------------------------------------


def test_check_shows_the_calendar_and_flags_the_provisional_year(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(SHIPPED, encoding="utf-8")
    code, out, err = check(routes, "2026-12-05T09:00")
    assert code == 0, err
    assert "calendar: chinese-calendar" in out and "PROVISIONAL 2027; covered until 2027-12-31" in out
    assert "warning: " in err and "2027 is PROVISIONAL (no State Council notice entered)" in err
    assert "make-up workdays are set by each year's notice and cannot be computed" in err


def test_check_fails_when_the_calendar_ends_within_60_days(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(SHIPPED, encoding="utf-8")
    code, out, err = check(routes, "2027-11-15T09:00")
    assert code == 1
    assert f"{routes}:1: the holiday calendar ends 2027-12-31, before today + 60 days (2028-01-14)" in err
    assert "enter the 2027 notice under calendar.notices" in err
    assert ": ok" not in out


def test_entering_the_notice_makes_check_pass_again_and_its_year_no_longer_provisional(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(SHIPPED + NOTICE_2027, encoding="utf-8")
    code, out, err = check(routes, "2027-11-15T09:00")
    assert code == 0, err
    assert "notices 2027; PROVISIONAL 2028; covered until 2028-12-31" in out


def test_a_bad_notice_fails_check_with_its_line(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(SHIPPED + NOTICE_2027 + "      workdays: [2027-01-02]\n", encoding="utf-8")
    code, _, err = check(routes, "2026-12-05T09:00")
    line = len((SHIPPED + NOTICE_2027).splitlines()) + 1
    assert code == 1
    assert (
        f"{routes}:{line}: calendar.notices.2027.workdays[0]: 2027-01-02 is both a make-up workday and a holiday" in err
    )


# --- one clock ---------------------------------------------------------------------------------------


def hotline(*args: str, tz: str, clock: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "HOTLINE_CLOCK_START"}
    env["TZ"] = tz
    if clock is not None:
        env["HOTLINE_CLOCK_START"] = clock
    proc = subprocess.run(
        [sys.executable, "-m", "ivr", *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def open_around_now(tmp_path: Path) -> Path:
    """A table whose line 1 is open for two hours either side of Beijing's now, every day.

    The host's zone (UTC is 8 hours behind) is never inside that window, so a CLI that read the
    host's wall clock would say "after hours" on a UTC host.
    """
    now = dt.datetime.now(LOCAL_TZ)
    start = max(now - dt.timedelta(hours=2), now.replace(hour=0, minute=0))
    end = now + dt.timedelta(hours=2)
    window = f"{start:%H:%M}-{'24:00' if end.date() != now.date() else f'{end:%H:%M}'}"
    lines = SHIPPED.splitlines(keepends=True)
    at = next(n for n, line in enumerate(lines) if line.startswith("hours:"))
    lines.insert(at + 1, f'  around_now: {{workdays: "{window}", restdays: "{window}"}}\n')
    table = "".join(lines).replace("default_hours: office", "default_hours: around_now", 1)
    assert "default_hours: around_now" in table, "the shipped table changed shape: adjust this test"
    routes = tmp_path / "routes.yaml"
    routes.write_text(table, encoding="utf-8")
    return routes


@pytest.mark.parametrize("args", [["simulate", "--dialed", "12345", "--keys", "1"], ["menu"]])
def test_without_at_the_cli_answers_in_beijing_time_on_any_host(tmp_path: Path, args: list[str]) -> None:
    routes = open_around_now(tmp_path)
    answers = {tz: hotline(*args, "--routes", str(routes), tz=tz) for tz in ("UTC", "Asia/Shanghai")}
    assert answers["UTC"] == answers["Asia/Shanghai"]
    if args[0] == "simulate":
        assert json.loads(answers["UTC"])["action"] != "message", answers["UTC"]


def test_an_at_with_a_zone_is_the_same_instant_on_any_host() -> None:
    args = ["simulate", "--dialed", "12345", "--keys", "1", "--routes", str(ROOT / "routes.yaml")]
    beijing = hotline(*args, "--at", "2026-11-24T10:00", tz="UTC")
    for tz in ("UTC", "Asia/Shanghai"):
        assert hotline(*args, "--at", "2026-11-24T02:00:00+00:00", tz=tz) == beijing


def test_the_controllers_clock_start_is_the_clis_now_too() -> None:
    args = ["simulate", "--dialed", "12345", "--keys", "1", "--routes", str(ROOT / "routes.yaml")]
    night = hotline(*args, "--at", "2026-11-24T20:00", tz="UTC")
    morning = hotline(*args, "--at", "2026-11-24T10:00", tz="UTC")
    assert night != morning
    for tz in ("UTC", "Asia/Shanghai"):
        assert hotline(*args, tz=tz, clock="2026-11-24T20:00") == night
        assert hotline(*args, tz=tz, clock="2026-11-24T10:00") == morning
