"""`hotline diff OLD NEW`: what a routes.yaml edit changes for callers, decided by the real menu code."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

from click.testing import CliRunner

from ivr.cli import main
from ivr.routing import routes
from ivr.routing.diff import Diff, LostFallback, compare, lost_after_hours
from ivr.routing.menu import decide

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = (ROOT / "routes.yaml").read_text(encoding="utf-8")
AT = dt.datetime(2026, 11, 25, 10, 0)  # a Wednesday morning: every line live and in office hours
MAIN_9 = re.compile(r'^      "9": \{number_entry: true.*\n', re.M)


def edit(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"expected exactly one {old!r} in routes.yaml"
    return text.replace(old, new)


def route_block(text: str, rid: str) -> str:
    match = re.search(rf"^  - id: {re.escape(rid)}\n(?:    .*\n)*", text, re.M)
    assert match, rid
    return match.group(0)


def in_route(text: str, rid: str, old: str, new: str) -> str:
    """Edit one line inside route `rid`'s block only."""
    block = route_block(text, rid)
    return edit(text, block, edit(block, old, new))


def without_route(text: str, rid: str) -> str:
    return edit(text, route_block(text, rid), "")


def with_route(text: str, line: str) -> str:
    return edit(text, "\nroutes:\n", f"\nroutes:\n  - {line}\n")


def with_main_key(text: str, key: str, option: str) -> str:
    nine = MAIN_9.search(text)
    assert nine
    return edit(text, nine.group(0), f'      "{key}": {option}\n' + nine.group(0))


def diff(new_text: str, old_text: str = SHIPPED, at: dt.datetime = AT) -> Diff:
    return compare(routes.parse(old_text, "old.yaml"), routes.parse(new_text, "new.yaml"), at)


def keys(changes: tuple[object, ...]) -> list[str]:
    return [c.keys for c in changes]  # type: ignore[attr-defined]


def run(tmp_path: Path, new_text: str, *args: str) -> tuple[int, str, str]:
    (tmp_path / "old.yaml").write_text(SHIPPED, encoding="utf-8")
    (tmp_path / "new.yaml").write_text(new_text, encoding="utf-8")
    result = CliRunner().invoke(
        main, ["diff", str(tmp_path / "old.yaml"), str(tmp_path / "new.yaml"), "--at", AT.isoformat(), *args]
    )
    return result.exit_code, result.stdout, result.stderr


# --- what counts as a change -----------------------------------------------------------------


def test_identical_tables_change_nothing() -> None:
    d = diff(SHIPPED)
    assert not d.changed
    assert d.lines()[-1] == "no changes for callers"


def test_comments_and_layout_are_no_change_for_callers() -> None:
    assert not diff("# reviewed\n" + SHIPPED.replace("trunk: departments", "trunk:    departments")).changed


def test_swapping_two_menu_keys_redirects_both_paths_and_nothing_else_moves() -> None:
    new = edit(SHIPPED, '"1": {route: jiaoti}', '"1": {route: tuanshiwei-12355}')
    new = edit(new, '"2": {route: tuanshiwei-12355}', '"2": {route: jiaoti}')
    d = diff(new)
    assert keys(d.paths_redirected) == ["61", "62"]
    assert [(c.old_route.id, c.new_route.id) for c in d.paths_redirected] == [  # type: ignore[union-attr]
        ("jiaoti", "tuanshiwei-12355"),
        ("tuanshiwei-12355", "jiaoti"),
    ]
    assert not (d.paths_added or d.paths_removed or d.routes_added or d.routes_removed or d.routes_changed)
    assert not d.units_unreachable
    assert [p.menu for p in d.prompts_changed] == ["culture"]  # the prompt says the new order


def test_removing_a_units_only_route_and_its_key_makes_the_unit_unreachable() -> None:
    new = edit(without_route(SHIPPED, "renfang"), '      "6": {route: renfang}\n', "")
    d = diff(new)
    assert [r.id for r in d.routes_removed] == ["renfang"]
    assert keys(d.paths_removed) == ["36", "92626973#"]  # its key, and typing its old number
    assert all(c.new is not None and c.new.route is None for c in d.paths_removed)
    assert d.units_unreachable == ("市人防办",)


def test_a_route_taken_off_the_menu_stays_reachable_by_number_entry() -> None:
    d = diff(edit(SHIPPED, '      "6": {route: renfang}\n', ""))
    assert keys(d.paths_removed) == ["36"]
    assert not d.units_unreachable and not d.routes_removed


def test_removing_one_of_several_routes_of_a_unit_does_not_make_the_unit_unreachable() -> None:
    new = edit(without_route(SHIPPED, "huanbao-12369"), '      "6": {route: huanbao-12369}\n', "")
    d = diff(new)
    assert keys(d.direct_removed) == ["12369"]  # its short number no longer answers
    assert d.direct_removed[0].new is None
    assert not d.units_unreachable  # 市环保局 keeps its 7-digit line


def test_removing_a_dual_track_route_loses_its_direct_dial_entry_too() -> None:
    new = edit(without_route(SHIPPED, "bianban-12310"), '      "6": {route: bianban-12310}\n', "")
    d = diff(new)
    assert keys(d.direct_removed) == ["12310"]
    assert keys(d.paths_removed) == ["46", "912310#"]
    assert d.units_unreachable == ("市编办",)


def test_a_new_route_with_a_key_adds_its_path_its_number_and_its_direct_dial() -> None:
    new = with_route(
        SHIPPED,
        "{id: jiaotong-12328, unit: 市交通运输局, line_name: 交通运输服务监督, "
        'number: "12328", mode: transfer, effective: 2016-08-31, trunk: departments}',
    )
    new = with_main_key(new, "7", "{route: jiaotong-12328}")
    d = diff(new)
    assert [r.id for r in d.routes_added] == ["jiaotong-12328"]
    assert keys(d.paths_added) == ["7", "912328#"]
    assert keys(d.direct_added) == ["12328"]
    assert not (d.paths_removed or d.paths_redirected or d.units_unreachable)


def test_a_second_key_to_an_existing_route_is_an_added_path() -> None:
    """`reachable` lists each route once; the diff still sees every key a caller can press."""
    d = diff(with_main_key(SHIPPED, "7", "{route: gongan}"))
    assert keys(d.paths_added) == ["7"]
    assert d.paths_added[0].new_route.id == "gongan"  # type: ignore[union-attr]
    assert not d.routes_added


def test_changing_a_number_is_a_field_change_and_redirects_its_paths() -> None:
    d = diff(in_route(SHIPPED, "gongan", 'number: "3372000"', 'number: "3372001"'))
    assert [(c.id, [(f.name, f.old, f.new) for f in c.fields]) for c in d.routes_changed] == [
        ("gongan", [("number", "3372000", "3372001"), ("dial", "3372000", "3372001")])
    ]
    assert keys(d.paths_redirected) == ["1"]
    assert keys(d.paths_removed) == ["93372000#"]  # callers who type the old number reach nobody
    assert keys(d.paths_added) == ["93372001#"]
    assert not d.units_unreachable


def test_a_dial_change_alone_redirects_and_is_shown_as_via() -> None:
    d = diff(in_route(SHIPPED, "gongan", 'number: "3372000"\n', 'number: "3372000"\n    dial: "3372999"\n'))
    assert keys(d.paths_redirected) == ["1", "93372000#"]
    assert "~ 1  市公安局 3372000 -> 市公安局 3372000 via 3372999" in d.lines()


def test_ring_seconds_alone_changes_no_path_but_is_still_a_change() -> None:
    d = diff(in_route(SHIPPED, "gongan", "ring_seconds: 20", "ring_seconds: 30"))
    assert not (d.paths_added or d.paths_removed or d.paths_redirected)
    assert [(c.id, c.fields[0].name, c.fields[0].old, c.fields[0].new) for c in d.routes_changed] == [
        ("gongan", "ring_seconds", "20", "30")
    ]
    assert d.changed


def test_moving_the_effective_date_past_at_removes_the_route_for_callers_at_that_time() -> None:
    d = diff(in_route(SHIPPED, "gongan", "effective: 2016-07-31", "effective: 2027-01-01"))
    assert keys(d.paths_removed) == ["1", "93372000#"]
    assert d.units_unreachable == ("市公安局",)
    assert [f.name for c in d.routes_changed for f in c.fields] == ["effective"]


def test_paths_are_judged_at_the_given_time() -> None:
    """Before the dual-track batch went live, changing its number moved no caller."""
    new = in_route(SHIPPED, "bianban-12310", 'number: "12310"', 'number: "12311"')
    before = diff(new, at=dt.datetime(2016, 8, 1, 10, 0))
    assert not (before.paths_added or before.paths_removed or before.paths_redirected or before.direct_removed)
    assert [c.id for c in before.routes_changed] == ["bianban-12310"]
    after = diff(new)
    assert keys(after.direct_removed) == ["12310"] and keys(after.direct_added) == ["12311"]


def test_turning_a_dual_track_line_into_an_interconnect_hands_its_callers_off() -> None:
    new = in_route(SHIPPED, "bianban-12310", "mode: transfer", "mode: interconnect")
    new = in_route(new, "bianban-12310", "trunk: departments", "trunk: partners")
    d = diff(new)
    assert keys(d.paths_redirected) == ["46", "912310#"]
    assert keys(d.direct_redirected) == ["12310"]
    assert d.direct_redirected[0].new.action == "handoff"  # type: ignore[union-attr]
    assert [f.name for c in d.routes_changed for f in c.fields] == ["mode", "trunk"]


def test_without_number_entry_units_reached_only_by_typing_their_number_become_unreachable() -> None:
    d = diff(MAIN_9.sub("", SHIPPED))
    old = routes.parse(SHIPPED)
    menu_units = {old.routes[o.route_id].unit for m in old.menus.values() for o in m.options if o.route_id}
    assert "市发改委" in d.units_unreachable  # fagaiwei is in no menu
    assert not set(d.units_unreachable) & menu_units
    assert "市地税局" not in d.units_unreachable  # 12366 is still dialled directly
    assert all(c.keys.startswith("9") and c.keys.endswith("#") for c in d.paths_removed)
    assert [p.menu for p in d.prompts_changed] == ["main"]


def test_every_reported_path_is_what_decide_answers_on_each_table() -> None:
    new = edit(SHIPPED, '"1": {route: jiaoti}', '"1": {route: bianban-12310}')
    old_table, new_table = routes.parse(SHIPPED), routes.parse(new)
    d = compare(old_table, new_table, AT)
    for c in (*d.paths_added, *d.paths_removed, *d.paths_redirected):
        assert c.old == decide(old_table, "12345", c.keys, AT)
        assert c.new == decide(new_table, "12345", c.keys, AT)


def test_a_relabelled_route_changes_the_menu_prompt() -> None:
    d = diff(in_route(SHIPPED, "gongan", "label: 公安局", "label: 市公安局"))
    assert [p.menu for p in d.prompts_changed] == ["main"]
    assert "市公安局请按1" in d.prompts_changed[0].new
    assert not (d.paths_added or d.paths_removed or d.paths_redirected)


def test_a_new_operators_number_is_a_setting_change() -> None:
    d = diff(edit(SHIPPED, 'number: "8000"', 'number: "8001"'))
    assert [(s.name, s.old, s.new) for s in d.settings_changed] == [
        ("operators.dial", "PJSIP/8000@operators", "PJSIP/8001@operators")
    ]


# --- after-hours fallback: office-hours routes take messages; dropping their hours loses that ---


def test_a_route_whose_hours_are_dropped_has_lost_its_after_hours_fallback() -> None:
    old = routes.parse(SHIPPED)
    new = routes.parse(
        SHIPPED.replace(
            "    ring_seconds: 20\n    label: 公安局",
            "    ring_seconds: 20\n    label: 公安局\n    hours: round-the-clock",
            1,
        )
    )
    assert lost_after_hours(old, new) == [LostFallback("市公安局", "gongan")]
    assert lost_after_hours(new, old) == []


def test_unchanged_hours_and_removed_routes_are_not_a_lost_fallback() -> None:
    table = routes.parse(SHIPPED)
    assert lost_after_hours(table, table) == []


def test_a_lost_fallback_is_printed_among_the_dangerous_lines() -> None:
    d = Diff("old.yaml", "new.yaml", AT, lost_after_hours=(LostFallback("市卫计委", "weiji"),))
    assert d.changed
    assert d.lines()[1:] == ["units:", "! lost after-hours fallback: 市卫计委 (weiji)"]


# --- the command -------------------------------------------------------------------------------


def test_cli_identical_files_exit_0(tmp_path: Path) -> None:
    code, out, err = run(tmp_path, SHIPPED)
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == "no changes for callers"


def test_cli_prints_sections_and_exits_3_on_changes(tmp_path: Path) -> None:
    new = edit(without_route(SHIPPED, "renfang"), '      "6": {route: renfang}\n', "")
    new = edit(new, '"1": {route: jiaoti}', '"1": {route: bianban-12310}')
    code, out, _ = run(tmp_path, new)
    lines = out.splitlines()
    assert code == 3
    assert (
        lines.index("units:") < lines.index("! unreachable: 市人防办") < lines.index("key paths after dialling 12345:")
    )
    assert "- 36  市人防办 2626973 (merge); now operator (no_input)" in lines
    assert "~ 61  市教体局 3033010 -> 市编办 12310" in lines
    assert "- renfang  市人防办 2626973 (merge)" in lines


def test_cli_added_route_line_names_unit_line_number_and_mode(tmp_path: Path) -> None:
    new = with_route(
        SHIPPED,
        "{id: jiaotong-12328, unit: 市交通运输局, line_name: 交通运输服务监督, "
        'number: "12328", mode: transfer, effective: 2016-08-31, trunk: departments}',
    )
    code, out, _ = run(tmp_path, with_main_key(new, "7", "{route: jiaotong-12328}"))
    assert code == 3
    assert "+ 7  市交通运输局 交通运输服务监督 12328 (transfer)" in out.splitlines()
    assert "+ 12328  市交通运输局 交通运输服务监督 12328 (transfer)" in out.splitlines()  # direct dial


def test_cli_json_is_one_object_with_every_section(tmp_path: Path) -> None:
    code, out, _ = run(tmp_path, edit(SHIPPED, '"1": {route: jiaoti}', '"1": {route: bianban-12310}'), "--json")
    assert code == 3
    report = json.loads(out)
    assert {
        "units_unreachable",
        "lost_after_hours",
        "paths_added",
        "paths_removed",
        "paths_redirected",
        "direct_added",
        "direct_removed",
        "direct_redirected",
        "routes_added",
        "routes_removed",
        "routes_changed",
        "prompts_changed",
        "settings_changed",
    } <= report.keys()
    assert report["changed"] is True and report["at"] == AT.isoformat()
    [moved] = report["paths_redirected"]
    assert (moved["keys"], moved["old"]["route"]["id"], moved["new"]["route"]["number"]) == ("61", "jiaoti", "12310")


def test_cli_json_for_identical_files_says_unchanged(tmp_path: Path) -> None:
    code, out, _ = run(tmp_path, SHIPPED, "--json")
    assert code == 0 and json.loads(out)["changed"] is False


def test_cli_a_broken_new_file_exits_1_with_every_problem_as_file_line(tmp_path: Path) -> None:
    new = edit(SHIPPED, '"1": {route: gongan}', '"1": {route: gongann}')
    new = edit(new, "key_timeout_seconds: 5", "key_timeout_seconds: 99")
    code, out, err = run(tmp_path, new)
    assert code == 1 and out == ""
    problems = err.splitlines()
    assert len(problems) == 2
    assert all(re.match(rf"{re.escape(str(tmp_path / 'new.yaml'))}:\d+: ", p) for p in problems)
    assert any("unknown route 'gongann'" in p for p in problems)


def test_cli_rejects_a_bad_at(tmp_path: Path) -> None:
    code, _, err = run(tmp_path, SHIPPED, "--at", "tomorrow")
    assert code == 2 and "not an ISO date/time" in err


CALENDAR = """
calendar:
  notices:
    2027:
      holidays:
        元旦: 2027-01-01..2027-01-03
        春节: [2027-02-05..2027-02-08, 2027-02-10]
      workdays: [2027-02-14]
"""


def test_entering_a_holiday_notice_is_a_setting_change_and_its_days_are_listed() -> None:
    report = diff(SHIPPED + CALENDAR)
    assert report.changed
    (change,) = report.settings_changed
    assert change.name == "calendar.notices.2027"
    assert change.old == "none (provisional)"
    assert change.new == "元旦 01-01..01-03; 春节 02-05..02-08,02-10; 上班 02-14"
    assert "~ calendar.notices.2027: none (provisional) -> 元旦 01-01..01-03; 春节 02-05..02-08,02-10; 上班 02-14" in (
        report.lines()
    )


def test_a_closure_shows_as_a_change_of_the_units_routes() -> None:
    closure = "\ncalendar:\n  closures:\n    - {unit: 市公安局, dates: [2026-12-28], reason: 系统升级}\n"
    report = diff(SHIPPED + closure)
    changed = {c.id: c.fields for c in report.routes_changed}
    assert set(changed) == {r.id for r in routes.parse(SHIPPED).routes.values() if r.unit == "市公安局"}
    ((field,),) = {c for c in changed.values()}
    assert field.name == "closures" and field.old == "[]"
    assert "start=2026-12-28" in field.new and "reason=系统升级" in field.new
