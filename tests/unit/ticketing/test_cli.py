"""`hotline tickets …`: the lifecycle from the command line, refusals on stderr with nothing changed."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr.calllog import open_calllog
from ivr.cli import main
from ivr.tickets import DeadlinePolicy, new_ticket

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def ticket(tmp_path: Path) -> tuple[str, str]:
    path = str(tmp_path / "calllog.sqlite3")
    log = open_calllog(path)
    log.start()
    t = new_ticket("c1", "operator", "", "", "", dt.datetime(2026, 11, 2, 10, 0), DeadlinePolicy(3))
    log.ticket_opened(t)
    log.close()
    return path, t.ticket_id


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_a_ticket_goes_from_dispatch_to_close_and_show_tells_its_story(ticket: tuple[str, str]) -> None:
    path, tid = ticket
    common = ("--calllog", path, "--routes", str(ROOT / "routes.yaml"), "--by", "li")
    code, out, err = run("tickets", "dispatch", tid, "--unit", "市水务局", "--summary", "小区停水", *common)
    assert (code, out) == (0, f"ticket {tid}: dispatched, unit 市水务局, due 2026-11-05 10:00\n"), err
    assert run("tickets", "extend", tid, "--workdays", "2", "--reason", "需现场勘查", *common)[1].endswith(
        "due 2026-11-09 10:00\n"
    )
    assert run("tickets", "accept", tid, *common)[0] == 0
    assert run("tickets", "reply", tid, "已恢复供水", *common)[0] == 0
    assert run("tickets", "close", tid, "--note", "办结", *common)[1].startswith(f"ticket {tid}: closed")
    code, out, _ = run("tickets", "show", tid, "--calllog", path)
    shown = json.loads(out)
    content = (shown["state"], shown["summary"], shown["reply"], shown["note"])
    assert content == ("closed", "小区停水", "已恢复供水", "办结")
    assert [(e["action"], e["actor"]) for e in shown["events"]] == [
        ("open", "hotline"),
        ("dispatch", "cli:li"),
        ("extend", "cli:li"),
        ("accept", "cli:li"),
        ("reply", "cli:li"),
        ("close", "cli:li"),
    ]
    lines = run("tickets", "list", "--state", "closed", "--calllog", path)[1].splitlines()
    [listed] = [json.loads(line) for line in lines]
    assert listed["ticket_id"] == tid and listed["deadline"] == "2026-11-09 10:00"
    assert run("tickets", "--open", "--calllog", path)[1] == ""  # the old listing still works


def test_a_refused_action_says_why_and_changes_nothing(ticket: tuple[str, str]) -> None:
    path, tid = ticket
    before = run("tickets", "show", tid, "--calllog", path)[1]
    code, out, err = run("tickets", "accept", tid, "--calllog", path, "--routes", str(ROOT / "routes.yaml"))
    assert (code, out) == (1, "")
    assert err == f"hotline: ticket {tid} is opened: accept needs it dispatched; nothing changed\n"
    code, _, err = run("tickets", "show", "12345-20991231-000000", "--calllog", path)
    assert (code, err) == (1, "hotline: no ticket 12345-20991231-000000; nothing changed\n")
    code, _, err = run(
        "tickets", "dispatch", tid, "--unit", "火星局", "--calllog", path, "--routes", str(ROOT / "routes.yaml")
    )
    assert code == 1 and err.startswith("hotline: --unit '火星局' is no unit of")
    code, _, err = run("tickets", "extend", tid, "--workdays", "30", "--reason", "r", "--calllog", path)
    assert code == 2 and "30 is not in the range 1<=x<=10" in err
    assert run("tickets", "show", tid, "--calllog", path)[1] == before


def test_api_keys_are_issued_once_kept_0600_listed_without_secrets_and_revoked(tmp_path: Path) -> None:
    keys = str(tmp_path / "api-keys")
    routes = ("--routes", str(ROOT / "routes.yaml"))
    code, out, err = run("api-keys", "add", "shuiwu", "--unit", "市水务局", "--keys", keys, *routes)
    assert code == 0, err
    secret = out.splitlines()[1]
    assert len(secret) == 64
    stored = tmp_path / "api-keys" / "shuiwu.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600 and stat.S_IMODE(stored.parent.stat().st_mode) == 0o700
    listed = run("api-keys", "list", "--keys", keys)[1]
    assert listed.startswith("shuiwu  unit     市水务局  -  added") and secret not in listed
    code, _, err = run("api-keys", "add", "shuiwu", "--unit", "市水务局", "--keys", keys, *routes)
    assert (code, err) == (
        1,
        "hotline: key id 'shuiwu' exists already (remove it first to issue a new secret); nothing changed\n",
    )
    code, _, err = run("api-keys", "add", "x", "--unit", "火星局", "--keys", keys, *routes)
    assert code == 1 and err.startswith("hotline: --unit '火星局' is no unit of")
    assert run("api-keys", "remove", "shuiwu", "--keys", keys)[:2] == (0, "key shuiwu removed\n")
    assert run("api-keys", "remove", "shuiwu", "--keys", keys)[0] == 1
