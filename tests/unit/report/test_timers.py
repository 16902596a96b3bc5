"""The daily and monthly 通报 timers (deploy/systemd/hotline-report-*.{service,timer}): the service's
ExecStart, read from the unit file and expanded as systemd would, run against a test call log, writes
the period's workbook with that period's calls in it.

systemd itself is not needed: the unit's Environment=, EnvironmentFile= and ${VAR} words are
interpreted here (test_units.py has `systemd-analyze verify` check the files as systemd reads them).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest

from ivr.calllog.sqlite import SqliteCallLog
from ivr.cli import _relative_period
from ivr.report import render
from ivr.timekeeping import LOCAL_TZ
from tests.unit.report.test_figures import GONGAN, dial, put

REPO = Path(__file__).resolve().parents[3]
SYSTEMD = REPO / "deploy" / "systemd"
HOTLINE = Path(sys.executable).parent / "hotline"


def service(path: Path) -> dict[str, list[str]]:
    """The [Service] section's directives, each with every value it was given, in order."""
    out: dict[str, list[str]] = {}
    section = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            out.setdefault(key, []).append(value)
    return out


def environment(directives: dict[str, list[str]], env_file: Path) -> dict[str, str]:
    """Environment= first, then the EnvironmentFile (systemd: the file's assignments win)."""
    env: dict[str, str] = {}
    for value in directives.get("Environment", []):
        env.update(word.split("=", 1) for word in shlex.split(value))
    for line in env_file.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def exec_start(directives: dict[str, list[str]], env: dict[str, str]) -> list[str]:
    """ExecStart split into words, ${VAR} replaced within its word (systemd.service, "Command lines")."""
    [line] = directives["ExecStart"]
    words = [re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], w) for w in shlex.split(line)]
    assert words[0] == "@HOTLINE@", "the program is the installed hotline command (hotline install fills it in)"
    return [str(HOTLINE), *words[1:]]


@pytest.mark.parametrize(
    ("kind", "period"),
    [("daily", "yesterday"), ("monthly", "last-month")],
)
def test_the_services_command_writes_the_periods_workbook(kind: str, period: str, tmp_path: Path) -> None:
    unit = SYSTEMD / f"hotline-report-{kind}.service"
    directives = service(unit)
    assert directives["Type"] == ["oneshot"] and directives["EnvironmentFile"] == ["/etc/hotline/hotline.env"]
    assert (SYSTEMD / f"hotline-report-{kind}.timer").is_file()

    today = dt.datetime.now(LOCAL_TZ).date()
    start, end = _relative_period(period, today)
    calllog = tmp_path / "calllog.sqlite3"
    log = SqliteCallLog(calllog)
    log.start()
    # Two calls in the period (its first and last day), one the day after it: not in the report.
    answer, busy = dial(8, "department", "ANSWER", 5), dial(8, "department", "BUSY", 1)
    put(log, "in-1", f"{start}T09:00:00", route=GONGAN, dial_status="ANSWER", human=8.0, steps=(answer,))
    put(log, "in-2", f"{end}T23:59:00", route=GONGAN, dial_status="BUSY", outcome="abandoned", steps=(busy,))
    put(log, "after", f"{end + dt.timedelta(days=1)}T00:01:00", route=GONGAN, dial_status="ANSWER", steps=(answer,))
    log.close()

    # What `hotline install` writes as /etc/hotline/hotline.env, pointing at the test's files.
    env_file = tmp_path / "hotline.env"
    env_file.write_text(
        f"HOTLINE_CALLLOG={calllog}\nHOTLINE_REPORTS={tmp_path / 'reports'}\nHOTLINE_ROUTES={REPO / 'routes.yaml'}\n"
    )
    env = environment(directives, env_file)
    done = subprocess.run(
        exec_start(directives, env),
        env={"PATH": os.environ["PATH"], "LANG": "C.UTF-8", **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    path = tmp_path / "reports" / kind / f"12345-report-{render.period_name(start, end)}.xlsx"
    assert path.is_file(), sorted(p.name for p in (tmp_path / "reports").rglob("*"))
    wb = openpyxl.load_workbook(path)
    centre = {
        str(key).rsplit(" ", 1)[1]: value
        for key, value in wb[render.SHEETS["centre"]].iter_rows(min_row=3, values_only=True)
    }
    assert centre["calls"] == 2
    assert str(start) in str(wb[render.SHEETS["centre"]]["A1"].value)
    rows = list(wb[render.SHEETS["units"]].iter_rows(min_row=2, values_only=True))
    keys = [str(h).rsplit(" ", 1)[1] for h in rows[0]]
    [gongan] = [dict(zip(keys, row, strict=True)) for row in rows[1:] if row[1] == "市公安局"]
    assert (gongan["routed"], gongan["dialled"], gongan["answered"], gongan["answered_pct"]) == (2, 2, 1, 50.0)


def test_the_timers_fire_in_beijing_time_and_catch_up_after_downtime() -> None:
    for kind, calendar in (("daily", "*-*-* 00:20:00 Asia/Shanghai"), ("monthly", "*-*-01 00:40:00 Asia/Shanghai")):
        text = (SYSTEMD / f"hotline-report-{kind}.timer").read_text(encoding="utf-8")
        assert f"OnCalendar={calendar}" in text.splitlines()
        assert "Persistent=yes" in text.splitlines()  # a day the machine was off is reported when it is back
