"""The route editors' records, on SQLite and PostgreSQL: every live table once, with its author and diff;
notices that end by themselves; one staged table at a time."""

from __future__ import annotations

import time
from pathlib import Path

from ivr.calllog import CallLog, open_calllog
from ivr.calllog.commands import decode, encode
from ivr.calllog.editing import (
    RoutesLive,
    claim,
    current_stage,
    end_notice,
    end_stage,
    find,
    history,
    in_force,
    live_notices,
    notices,
    stage,
    start_notice,
)
from ivr.routing.routes import digest_of

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = (ROOT / "routes.yaml").read_text(encoding="utf-8")
EDITED = SHIPPED.replace('"1": {route: gongan}', '"1": {route: sifa}')


def started(target: str) -> CallLog:
    log = open_calllog(target)
    log.start()
    return log


def live(text: str, at: float, how: str = "file", owner: str = "editor") -> RoutesLive:
    return RoutesLive(digest_of(text), text, "routes.yaml", at, how, owner)


def test_each_table_that_goes_live_is_recorded_once_with_its_diff_against_the_one_before(target: str) -> None:
    log = started(target)
    t0 = time.time() - 100
    log.record(live(SHIPPED, t0, "start"))
    log.record(live(SHIPPED, t0 + 10, "start"))  # a restart on the same file: not a new table
    log.record(live(EDITED, t0 + 20, "sighup"))
    log.close()

    newest, first = history(log)
    assert (first["digest"], first["how"], first["author"], first["summary"]) == (
        digest_of(SHIPPED),
        "start",
        "editor",
        "first table on record",
    )
    assert (newest["digest"], newest["previous"], newest["how"]) == (digest_of(EDITED), digest_of(SHIPPED), "sighup")
    assert "key path(s) redirected" in newest["summary"]
    shown = find(log, digest_of(EDITED)[:6])
    assert shown is not None and shown["text"] == EDITED
    assert "1  市公安局" in shown["diff"] and "市司法局" in shown["diff"]


def test_a_commands_claim_names_the_author_instead_of_the_files_owner(target: str) -> None:
    log = started(target)
    now = time.time()
    log.record(live(SHIPPED, now - 50, "start", owner="root"))
    log.close()
    claim(log, digest_of(EDITED), "zhang.wei", "rollback", now - 1)
    log = started(target)
    log.record(live(EDITED, now, "file", owner="root"))
    log.close()
    assert [(r["author"], r["how"]) for r in history(log)] == [("zhang.wei", "file:rollback"), ("root", "start")]


def test_the_table_in_force_for_a_period_and_its_changes(target: str) -> None:
    log = started(target)
    log.record(live(SHIPPED, 1000.0, "start"))
    log.record(live(EDITED, 2000.0, "file"))
    log.close()
    before, changes = in_force(log, 0.0, 1500.0)
    assert before is not None and before["digest"] == digest_of(SHIPPED) and changes[0]["live_at"] == 1000.0
    during, changes = in_force(log, 1500.0, 3000.0)
    assert during is not None and during["text"] == EDITED
    assert [c["digest"] for c in changes] == [digest_of(EDITED)]
    nothing, changes = in_force(log, 0.0, 500.0)
    assert nothing is None and changes == []


def test_a_live_table_write_survives_the_journal() -> None:
    write = live(SHIPPED, 1000.0, "sighup")
    assert decode(encode(write)) == write


def test_a_notice_is_live_until_its_end_or_until_ended(target: str) -> None:
    log = started(target)
    log.close()  # the CLI's writes are its own, synchronous
    now = time.time()
    one = start_notice(
        log,
        prompt="notice-a",
        text="停水",
        entries=frozenset({"12345"}),
        to_operators=True,
        starts=now,
        ends=now + 60,
        author="li",
    )
    two = start_notice(
        log, prompt="notice-b", text="", entries=frozenset(), to_operators=False, starts=now, ends=now + 5, author="li"
    )
    (a, b) = live_notices(log, now + 1)
    assert (a.id, a.entries, a.to_operators, a.by, a.source) == (f"cmd-{one}", {"12345"}, True, "li", "command")
    assert b.id == f"cmd-{two}" and b.entries == frozenset()
    assert [n.id for n in live_notices(log, now + 10)] == [f"cmd-{one}"]  # the second ended by itself

    assert end_notice(log, one, "wang", now + 20)
    assert not end_notice(log, one, "wang", now + 21)  # already over
    assert live_notices(log, now + 22) == []
    assert notices(log, now + 22) == []
    assert [r["ended_by"] for r in notices(log)] == ["", "wang"]  # newest first


def test_one_table_is_staged_at_a_time_until_promoted_or_dropped(target: str) -> None:
    log = started(target)
    log.close()  # the CLI's writes are its own, synchronous
    assert current_stage(log) is None
    stage(log, text=SHIPPED, source="a.yaml", share=10, author="li", at=1.0)
    stage(log, text=EDITED, source="b.yaml", share=20, author="li", at=2.0)
    row = current_stage(log)
    assert row is not None and (row["digest"], row["share"], row["source"]) == (digest_of(EDITED), 20, "b.yaml")
    found = find(log, digest_of(EDITED))  # a staged table can be shown before it ever goes live
    assert found is not None and found["text"] == EDITED
    ended = end_stage(log, "dropped", "wang", 3.0)
    assert ended is not None and ended["digest"] == digest_of(EDITED)
    assert current_stage(log) is None and end_stage(log, "promoted", "wang", 4.0) is None
