"""Notices in routes.yaml: parsed with FILE:LINE errors; who hears which notice, and when they end."""

from __future__ import annotations

import datetime as dt

import pytest

from ivr.errors import RoutesError
from ivr.routing import notices, routes
from ivr.routing.notices import Notice, NoticeBoard
from ivr.timekeeping import LOCAL_TZ
from tests.unit.routing.test_routes import GOOD


def with_notices(block: str) -> str:
    return GOOD + "notices:\n" + block


def problems(text: str) -> list[str]:
    with pytest.raises(RoutesError) as err:
        routes.parse(text, "r.yaml")
    return [str(p) for p in err.value.problems]


def local(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=LOCAL_TZ)


def test_a_dated_notice_is_parsed_with_its_prompt_entries_and_times() -> None:
    table = routes.parse(
        with_notices(
            "  - {id: typhoon, text: 受台风影响今日部分服务调整。, entries: ['12310'], to_operators: true,\n"
            "     from: 2026-09-15T06:00, until: 2026-09-16T18:00}\n"
            "  - {id: move, prompt: notice-move, from: 2026-10-01T00:00, until: 2026-10-08T00:00}\n"
        ),
        "r.yaml",
    )
    typhoon, move = table.notices
    assert (typhoon.id, typhoon.prompt, typhoon.text) == ("typhoon", "notice-typhoon", "受台风影响今日部分服务调整。")
    assert typhoon.entries == {"12310"} and typhoon.to_operators
    assert (typhoon.starts, typhoon.ends) == (local("2026-09-15T06:00"), local("2026-09-16T18:00"))
    assert (move.prompt, move.text, move.entries, move.to_operators) == ("notice-move", "", frozenset(), False)


def test_a_table_without_notices_has_none_and_the_shipped_table_still_loads() -> None:
    assert routes.parse(GOOD, "r.yaml").notices == ()
    assert routes.load(routes.Path(__file__).resolve().parents[3] / "routes.yaml").notices == ()


def test_mistakes_in_notices_are_reported_at_their_line() -> None:
    found = problems(
        with_notices(
            "  - {id: a, text: 停水通知, entries: ['99999'], from: 2026-09-15T06:00, until: 2026-09-16T18:00}\n"
            "  - {id: b, text: x, prompt: y, from: 2026-09-15T06:00, until: 2026-09-16T18:00}\n"
            "  - {id: c, text: x, from: 2026-09-16T06:00, until: 2026-09-15T18:00}\n"
            "  - {id: d, text: x, from: tomorrow, until: 2026-09-15T18:00}\n"
            "  - {id: a, text: x, from: 2026-09-15T06:00, until: 2026-09-16T18:00}\n"
            "  - {id: e, text: x, from: 2026-09-15T06:00+08:00, until: 2026-09-16T18:00}\n"
        )
    )
    line = GOOD.count("\n") + 2  # the first notice
    assert f"r.yaml:{line}: notices[a]: '99999' is not an entry number of this table" in found[0]
    assert found[1].startswith(f"r.yaml:{line + 1}: notices[b]: give exactly one of 'text'")
    assert found[2].startswith(f"r.yaml:{line + 2}: notices[c]: until 2026-09-15T18:00 is not after from")
    assert found[3].startswith(f"r.yaml:{line + 3}: notices[d]: from is not a local date/time")
    assert found[4] == f"r.yaml:{line + 4}: duplicate notice id 'a'"
    assert found[5].startswith(f"r.yaml:{line + 5}: notices[e]: from is local (Asia/Shanghai) time")
    assert len(found) == 6


def test_an_announcement_text_has_a_length_limit() -> None:
    assert notices.check_text(" ") == "an announcement needs some text"
    assert "at most 300 characters" in (notices.check_text("停" * 301) or "")
    assert notices.check_text("停水通知") is None


def notice(nid: str, start: str, end: str, entries: frozenset[str] = frozenset(), source: str = "command") -> Notice:
    return Notice(nid, f"notice-{nid}", "", entries, False, local(start), local(end), source=source)


def test_a_caller_hears_the_live_notices_of_their_entry_and_none_after_their_end() -> None:
    board = NoticeBoard()
    board.refresh([notice("cmd-1", "2026-09-15T06:00", "2026-09-15T18:00", frozenset({"12310"}))])
    planned = (notice("plan", "2026-09-15T00:00", "2026-09-16T00:00", source="routes.yaml"),)
    noon, evening = local("2026-09-15T12:00"), local("2026-09-15T18:00")

    assert [n.id for n in board.for_call(planned, "12310", noon, noon)] == ["plan", "cmd-1"]
    assert [n.id for n in board.for_call(planned, "12345", noon, noon)] == ["plan"]  # not its entry
    assert [n.id for n in board.for_call(planned, "12310", evening, evening)] == ["plan"]  # ended by itself


def test_dated_notices_follow_the_controllers_clock_and_commanded_ones_the_real_clock() -> None:
    board = NoticeBoard()
    board.refresh([notice("cmd-1", "2026-12-05T08:00", "2026-12-05T20:00")])
    planned = (notice("plan", "2026-11-24T09:00", "2026-11-24T11:00", source="routes.yaml"),)
    drill, real = local("2026-11-24T10:00"), local("2026-12-05T09:00")
    assert [n.id for n in board.for_call(planned, "12345", drill, real)] == ["plan", "cmd-1"]


def test_a_refresh_tells_which_notices_started_and_ended() -> None:
    board = NoticeBoard()
    one, two = (
        notice("cmd-1", "2026-09-15T06:00", "2026-09-16T06:00"),
        notice("cmd-2", "2026-09-15T06:00", "2026-09-16T06:00"),
    )
    assert board.refresh([one]) == ([one], [])
    assert board.refresh([one, two]) == ([two], [])
    assert board.refresh([two]) == ([], [one])


def test_until_and_entries_of_the_command_are_checked() -> None:
    now = local("2026-09-15T12:00")
    assert notices.parse_until("2026-09-15T18:00", now) == local("2026-09-15T18:00")
    with pytest.raises(ValueError, match="not in the future"):
        notices.parse_until("2026-09-15T11:00", now)
    with pytest.raises(ValueError, match="not an ISO date/time"):
        notices.parse_until("6pm", now)
    known = frozenset({"12345", "12310"})
    assert notices.parse_entries("all", known) == frozenset()
    assert notices.parse_entries("12345, 12310", known) == known
    with pytest.raises(ValueError, match="not an entry number of routes.yaml: 12399"):
        notices.parse_entries("12345,12399", known)
