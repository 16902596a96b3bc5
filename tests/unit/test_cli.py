"""The `hotline` CLI: `check` on the calendar, one clock and one settings loader with the controller,
named exit codes.

The clock tests run the CLI as a subprocess with TZ set, because the bug they pin is the host's
zone leaking into "now": the same instant must get the same answer on a UTC host and in Beijing.

Run from any folder, a command that opens the call log finds the one the controller writes
($HOTLINE_CALLLOG, else $HOTLINE_STATE/calllog.sqlite3, as ivr.settings.Storage reads them); an
explicit --calllog wins. Exit codes are ExitCode's, listed once in ivr/cli.py's docstring and once
in the README.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr import cli
from ivr.calllog import open_calllog
from ivr.calllog.records import CallRecord
from ivr.cli import main
from ivr.exitcode import ExitCode
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


# --- one settings loader, named exit codes ---------------------------------------------------------

COMMANDS = [  # every command that opens the call log, with what it prints for the one call below
    (["calls"], '"call_id": "c1"'),
    (["tickets"], ""),
    (["callbacks", "list", "--all"], "no callbacks"),
    (["report", "--from", "2026-11-02", "--to", "2026-11-02", "--routes", str(ROOT / "routes.yaml")], '"calls": 1'),
    (["purge", "--dry-run"], '"calls_deleted": 0'),
    (["routes", "history"], "no tables on record yet"),
    (["notice", "list", "--routes", str(ROOT / "routes.yaml")], "no notices"),
]


def write_log(path: Path) -> None:
    log = open_calllog(path)
    log.start()
    log.call_finished(CallRecord("c1", "1.1", "12345", "138****5678", "h", "v1", started_at=1793592000.0))
    log.close()


def hotline_in(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m ivr ARGS` in the folder `cwd`, with only these HOTLINE_* variables set."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    return subprocess.run(
        [sys.executable, "-m", "ivr", *args], cwd=cwd, env={**base, **env}, capture_output=True, text=True, check=False
    )


@pytest.fixture
def state(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir()
    write_log(state / "calllog.sqlite3")  # 2026-11-02 12:00 local
    return state


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("args, shows", COMMANDS, ids=[" ".join(c[0][:2]) for c in COMMANDS])
def test_every_call_log_command_finds_the_log_in_hotline_state_from_another_folder(
    state: Path, elsewhere: Path, args: list[str], shows: str
) -> None:
    result = hotline_in(elsewhere, *args, HOTLINE_STATE=str(state))
    assert result.returncode == ExitCode.OK, result.stderr
    assert shows in result.stdout + result.stderr
    assert not (elsewhere / "var").exists()  # nothing made relative to the folder it ran in


def test_hotline_calllog_names_the_log_itself(state: Path, elsewhere: Path) -> None:
    moved = elsewhere / "moved.sqlite3"
    (state / "calllog.sqlite3").rename(moved)
    result = hotline_in(state, "calls", HOTLINE_CALLLOG=str(moved), HOTLINE_STATE=str(state))
    assert result.returncode == ExitCode.OK and json.loads(result.stdout)["call_id"] == "c1"


def test_an_explicit_calllog_wins_over_the_environment(state: Path, elsewhere: Path) -> None:
    other = elsewhere / "other.sqlite3"
    result = hotline_in(elsewhere, "calls", "--calllog", str(other), HOTLINE_STATE=str(state))
    assert result.returncode == ExitCode.ENVIRONMENT
    assert f"no call log at {other}" in result.stderr


def test_without_the_environment_a_command_looks_in_var_of_the_folder_it_runs_in(elsewhere: Path) -> None:
    result = hotline_in(elsewhere, "tickets")
    assert result.returncode == ExitCode.ENVIRONMENT
    assert "no call log at var/calllog.sqlite3" in result.stderr


def test_the_journal_command_finds_the_journal_the_controller_uses(state: Path, elsewhere: Path) -> None:
    result = hotline_in(elsewhere, "journal", HOTLINE_STATE=str(state))
    assert result.returncode == ExitCode.OK, result.stderr
    assert json.loads(result.stdout)["journal"] == f"{state / 'calllog.sqlite3'}.journal"
    result = hotline_in(elsewhere, "journal", HOTLINE_STATE=str(state), HOTLINE_JOURNAL=str(elsewhere / "j"))
    assert json.loads(result.stdout)["journal"] == str(elsewhere / "j")


def test_exit_codes_have_names_and_one_list_in_the_docstring_and_the_readme() -> None:
    assert [(c.name, int(c)) for c in ExitCode] == [("OK", 0), ("INPUT", 1), ("ENVIRONMENT", 2), ("CHANGES", 3)]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for text in (cli.__doc__ or "", readme):
        listed = re.findall(r"^\s*(?:- )?`?(\d) ([A-Z]+)`?\s", text, re.MULTILINE)
        assert [(name, int(code)) for code, name in listed] == [(c.name, int(c)) for c in ExitCode]


def test_diff_exits_changes_when_an_edit_changes_something(tmp_path: Path) -> None:
    routes = (ROOT / "routes.yaml").read_text(encoding="utf-8")
    (tmp_path / "old.yaml").write_text(routes, encoding="utf-8")
    (tmp_path / "same.yaml").write_text(routes, encoding="utf-8")
    edited = routes.replace('number: "3372000"', 'number: "3372001"', 1)
    assert edited != routes
    (tmp_path / "new.yaml").write_text(edited, encoding="utf-8")
    assert hotline_in(tmp_path, "diff", "old.yaml", "same.yaml").returncode == ExitCode.OK
    assert hotline_in(tmp_path, "diff", "old.yaml", "new.yaml").returncode == ExitCode.CHANGES
    assert hotline_in(tmp_path, "diff", "old.yaml", "none.yaml").returncode == ExitCode.INPUT


def test_a_relative_report_period_is_counted_from_the_controllers_clock(tmp_path: Path) -> None:
    from ivr.calllog.sqlite import SqliteCallLog

    calllog = tmp_path / "calllog.sqlite3"
    SqliteCallLog(calllog).migrate()
    out = tmp_path / "reports"
    out.mkdir()
    result = CliRunner().invoke(
        main,
        ["report", "--period", "yesterday", "--format", "json", "--out", f"{out}/", "--calllog", str(calllog)],
        env={"HOTLINE_CLOCK_START": "2026-12-01T00:30", "TZ": "UTC"},  # still 30 Nov on a UTC host
    )
    assert result.exit_code == 0, result.output
    assert [p.name for p in out.iterdir()] == ["12345-report-2026-11-30.json"]
