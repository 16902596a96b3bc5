"""`hotline notice` and `hotline routes`: what an editor types, what is stored, what is refused."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ivr.calllog import open_calllog
from ivr.calllog.editing import RoutesLive, current_stage, find, history, live_notices
from ivr.cli import main
from ivr.routing.routes import digest_of
from ivr.timekeeping import LOCAL_TZ

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = (ROOT / "routes.yaml").read_text(encoding="utf-8")
EDITED = SHIPPED.replace('"1": {route: gongan}', '"1": {route: sifa}')


NO_ROUTES_OPTION = (("notice", "end"), ("routes", "history"), ("routes", "show"), ("routes", "drop"))


@pytest.fixture
def place(tmp_path: Path) -> Path:
    """A call log with the shipped table on record, routes.yaml beside it, a rendered prompt."""
    (tmp_path / "routes.yaml").write_text(SHIPPED, encoding="utf-8")
    (tmp_path / "sounds").mkdir()
    (tmp_path / "sounds" / "notice-typhoon.wav").write_bytes(b"RIFF")
    log = open_calllog(tmp_path / "calllog.sqlite3")
    log.start()
    log.record(RoutesLive(digest_of(SHIPPED), SHIPPED, "routes.yaml", time.time() - 60, "start", "root"))
    log.close()
    return tmp_path


def run(place: Path, *args: str) -> Result:
    where = ["--calllog", str(place / "calllog.sqlite3")]
    if args[:2] != ("notice", "end") and args[:2] not in (
        ("routes", "history"),
        ("routes", "show"),
        ("routes", "drop"),
    ):
        where += ["--routes", str(place / "routes.yaml")]
    return CliRunner().invoke(main, [*args, *where])


def later(hours: int = 3) -> str:
    return (dt.datetime.now(LOCAL_TZ) + dt.timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M")


def test_a_notice_on_a_rendered_prompt_starts_now_and_ends_on_command(place: Path) -> None:
    until = later()
    started = run(
        place, "notice", "start", "--text-prompt", "notice-typhoon", "--entries", "12345,12310", "--until", until,
        "--all-to-operators", "--by", "duty", "--sounds", str(place / "sounds"),
    )  # fmt: skip
    assert started.exit_code == 0, started.output
    assert started.stdout.strip().endswith(
        f"notice 1 live now until {until.replace('T', ' ')} (Beijing time) on 12310, 12345: notice-typhoon, "
        "every caller goes to the operators"
    )
    (notice,) = live_notices(open_calllog(place / "calllog.sqlite3"), time.time())
    assert (notice.entries, notice.to_operators, notice.by) == ({"12345", "12310"}, True, "duty")
    listed = run(place, "notice", "list")
    assert "live" in listed.stdout and "12310,12345  to operators  notice-typhoon  by duty" in listed.stdout

    assert run(place, "notice", "end", "1", "--by", "duty").stdout.strip().endswith("notice 1 ended")
    again = run(place, "notice", "end", "1")
    assert again.exit_code == 1 and "no live notice 1" in again.output
    assert live_notices(open_calllog(place / "calllog.sqlite3"), time.time()) == []


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--text-prompt", "notice-typhoon", "--until", "2020-01-01T00:00"], "is not in the future"),
        (["--text-prompt", "notice-typhoon", "--until", "tonight"], "not an ISO date/time"),
        (["--text-prompt", "notice-typhoon", "--entries", "12399", "--until", "LATER"], "not an entry number"),
        (["--text-prompt", "notice-missing", "--until", "LATER"], "no prompt notice-missing.wav"),
        (["--until", "LATER"], "give exactly one of --say TEXT or --text-prompt NAME"),
        (["--say", "停" * 301, "--until", "LATER"], "at most 300 characters"),
    ],
)
def test_a_bad_notice_is_refused_and_nothing_is_stored(place: Path, args: list[str], problem: str) -> None:
    args = [later() if a == "LATER" else a for a in args]
    result = run(place, "notice", "start", *args, "--sounds", str(place / "sounds"))
    assert result.exit_code != 0 and problem in result.output
    assert live_notices(open_calllog(place / "calllog.sqlite3"), time.time()) == []


def test_history_lists_each_table_and_show_prints_it(place: Path) -> None:
    listed = run(place, "routes", "history")
    assert listed.exit_code == 0
    assert f"{digest_of(SHIPPED)}  root       start          first table on record" in listed.stdout
    assert run(place, "routes", "show", digest_of(SHIPPED)[:6]).stdout.endswith(SHIPPED)
    unknown = run(place, "routes", "show", "abcdef")
    assert unknown.exit_code == 1 and "no table abcdef on record" in unknown.output


def test_rollback_writes_the_recorded_text_and_claims_it_for_its_author(place: Path) -> None:
    routes = place / "routes.yaml"
    routes.write_text(EDITED, encoding="utf-8")
    result = run(place, "routes", "rollback", digest_of(SHIPPED), "--by", "zhang")
    assert result.exit_code == 0, result.output
    assert f"rolled back to {digest_of(SHIPPED)}" in result.stdout
    assert routes.read_text(encoding="utf-8") == SHIPPED
    assert "already version" in run(place, "routes", "rollback", digest_of(SHIPPED)).stdout
    # When the controller records the table going live, the claim names zhang.
    log = open_calllog(place / "calllog.sqlite3")
    log.start()
    log.record(RoutesLive(digest_of(EDITED), EDITED, "routes.yaml", time.time() - 1, "file", "root"))
    log.record(RoutesLive(digest_of(SHIPPED), SHIPPED, "routes.yaml", time.time(), "file", "root"))
    log.close()
    assert [(r["author"], r["how"]) for r in history(log)][0] == ("zhang", "file:rollback")


def test_a_table_that_fails_the_check_is_neither_staged_nor_rolled_back(place: Path) -> None:
    broken = place / "broken.yaml"
    broken.write_text(EDITED.replace('number: "3023804"', 'number: "30238O4"'), encoding="utf-8")
    staged = run(place, "routes", "stage", str(broken), "--share", "10")
    assert staged.exit_code == 1 and f"{broken}:" in staged.output and "refused, nothing changed" in staged.output
    assert current_stage(open_calllog(place / "calllog.sqlite3")) is None
    out_of_range = run(place, "routes", "stage", str(broken), "--share", "100")
    assert out_of_range.exit_code == 2 and "--share" in out_of_range.output


def test_a_staged_table_is_promoted_into_routes_yaml_or_dropped(place: Path) -> None:
    new = place / "new.yaml"
    new.write_text(EDITED, encoding="utf-8")
    same = run(place, "routes", "stage", str(place / "routes.yaml"), "--share", "10")
    assert same.exit_code == 1 and "already live" in same.output

    staged = run(place, "routes", "stage", str(new), "--share", "10", "--by", "li")
    assert staged.exit_code == 0 and f"version {digest_of(EDITED)} staged for 10 % of callers" in staged.stdout
    assert find(open_calllog(place / "calllog.sqlite3"), digest_of(EDITED)) is not None  # showable already
    promoted = run(place, "routes", "promote", "--by", "li")
    assert promoted.exit_code == 0 and f"now version {digest_of(EDITED)}" in promoted.stdout
    assert (place / "routes.yaml").read_text(encoding="utf-8") == EDITED
    assert current_stage(open_calllog(place / "calllog.sqlite3")) is None

    assert run(place, "routes", "stage", str(new), "--share", "10").exit_code == 1  # live now: nothing to stage
    nothing = run(place, "routes", "drop")
    assert nothing.exit_code == 1 and "no table is staged" in nothing.output


def test_the_reports_ledger_is_the_table_in_force_and_says_when_it_changed(place: Path) -> None:
    log = open_calllog(place / "calllog.sqlite3")
    log.start()
    log.record(RoutesLive(digest_of(EDITED), EDITED, "routes.yaml", time.time(), "file", "zhang"))
    log.close()
    (place / "routes.yaml").write_text(SHIPPED.replace("# ", "#  "), encoding="utf-8")  # edited since: not in force
    today = dt.datetime.now(LOCAL_TZ).date().isoformat()
    result = run(place, "report", "--from", today, "--to", today, "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["routes_version"] == digest_of(EDITED)
    note = report["routes_note"]
    assert note.startswith(f"version {digest_of(EDITED)} in force since") and "(zhang)" in note
    assert f"{digest_of(SHIPPED)} -> {digest_of(EDITED)} by zhang (1 key path(s) redirected" in note


def test_a_call_log_without_the_editors_tables_is_said_in_one_line(tmp_path: Path) -> None:
    odd = tmp_path / "calllog.sqlite3"
    db = sqlite3.connect(odd)
    db.execute("PRAGMA user_version = 99")  # a newer version's file: left as it is, without our tables
    db.commit()
    db.close()
    result = CliRunner().invoke(main, ["routes", "history", "--calllog", str(odd)])
    assert result.exit_code == 2 and "cannot use the call log" in result.output and "routes_history" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
