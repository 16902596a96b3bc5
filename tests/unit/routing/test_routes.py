"""routes.yaml loading: the shipped table loads; every mistake is reported as FILE:LINE."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ivr.errors import RoutesError
from ivr.routing import routes
from ivr.routing.routes import Mode

ROOT = Path(__file__).resolve().parents[3]

GOOD = textwrap.dedent("""\
    version: 1
    hotline: {number: "12345"}
    trunks:
      departments: {endpoint: departments}
      operators: {endpoint: operators}
    operators: {number: "8000", trunk: operators}
    routes:
      - {id: gongan, unit: 市公安局, number: "3372000", mode: merge, effective: 2016-07-31, trunk: departments}
      - {id: bianban, unit: 市编办, line_name: 机构编制举报, number: "12310", mode: transfer,
         effective: 2016-08-31, trunk: departments}
    menus:
      main:
        options:
          "1": {route: gongan}
          "2": {route: bianban}
    """)


def problems(text: str) -> list[str]:
    with pytest.raises(RoutesError) as err:
        routes.parse(text, "r.yaml")
    return [str(p) for p in err.value.problems]


def test_shipped_table_loads_with_merge_and_dual_track_routes() -> None:
    table = routes.load(ROOT / "routes.yaml")
    modes = [r.mode for r in table.routes.values()]
    assert modes.count(Mode.MERGE) >= 5 and modes.count(Mode.TRANSFER) >= 2
    assert table.routes["gongan"].number == "3372000"
    assert table.routes["gongan"].dial_string == "PJSIP/3372000@departments"


def test_shipped_entries_are_exactly_the_numbers_the_dialplan_sends_to_stasis() -> None:
    """Every entry the table serves must be routable into Stasis by extensions.conf."""
    table = routes.load(ROOT / "routes.yaml")
    conf = (ROOT / "dialplan" / "extensions.conf").read_text()
    in_dialplan = {
        line.split("=>", 1)[1].split(",", 1)[0].strip()
        for line in conf.splitlines()
        if line.strip().startswith("exten") and "from-carrier" not in line
    }
    assert table.entries <= in_dialplan


def test_dual_track_numbers_are_entries_and_merge_numbers_are_not() -> None:
    table = routes.parse(GOOD)
    assert table.entries == {"12345", "12310"}
    assert table.direct_route("12310").id == "bianban"  # type: ignore[union-attr]
    assert table.direct_route("3372000") is None


def test_numbers_keep_leading_zeros_even_unquoted() -> None:
    table = routes.parse(GOOD.replace('number: "8000"', "number: 08000"))
    assert table.operators.number == "08000"


def test_the_whitelist_of_dialable_numbers_is_the_file_and_nothing_else() -> None:
    assert routes.parse(GOOD).dialable_numbers() == {"3372000", "12310", "8000"}


def test_every_problem_is_reported_with_its_line_not_only_the_first() -> None:
    bad = GOOD.replace('number: "3372000"', 'number: "33x2000"').replace("route: bianban", "route: nowhere")
    found = problems(bad)
    assert "r.yaml:8: routes[0].number '33x2000' is not a phone number (3-15 digits)" in found
    assert "r.yaml:15: menus.main.2: unknown route 'nowhere'" in found


@pytest.mark.parametrize(
    "edit, expected",
    [
        (("effective: 2016-07-31", "effective: 2016-13-01"), "r.yaml:8: routes[0].effective must be a date"),
        (("mode: merge", "mode: merged"), "r.yaml:8: routes[0].mode must be one of merge, transfer, interconnect"),
        (("trunk: departments}", "trunk: nope}"), "r.yaml:8: routes[0].trunk: unknown trunk 'nope'"),
        (('"1": {route: gongan}', '"0": {route: gongan}'), "r.yaml:14: menus.main: key '0' is not allowed"),
        (('number: "12310"', 'number: "3372000"'), "r.yaml:9: number 3372000 is already used"),
        (('number: "12310"', 'number: "123100"'), "r.yaml:9: a transfer route's number is a 5-digit short number"),
        (("version: 1", "version: 2"), "r.yaml:1: version must be between 1 and 1"),
        (("  main:", "  first:"), "r.yaml:12: menus: a menu named 'main' is required"),
    ],
)
def test_mistakes_name_file_line_and_what_is_wrong(edit: tuple[str, str], expected: str) -> None:
    found = problems(GOOD.replace(*edit, 1))
    assert any(p.startswith(expected) for p in found), found


# -- intake (issue 16): the menu first, or a person first -------------------------------------------

SEATED = GOOD.replace(
    'operators: {number: "8000", trunk: operators}',
    'operators: {number: "8000", trunk: operators, seats: [{id: seat-1, endpoint: operator-1}]}',
)


def test_intake_is_the_menu_unless_routes_yaml_says_human_first() -> None:
    assert routes.parse(GOOD).policy.intake == "menu"
    table = routes.parse(SEATED + "menu_policy: {intake: human-first, silent_caller_seconds: 12}\n")
    assert (table.policy.intake, table.policy.silent_caller_seconds) == ("human-first", 12)
    assert routes.load(ROOT / "routes.yaml").policy.intake == "menu"


def test_a_wrong_intake_names_its_line_and_the_choices() -> None:
    found = problems(SEATED + "menu_policy:\n  intake: humans-first\n")
    assert found == ["r.yaml:17: menu_policy.intake must be one of menu, human-first, got 'humans-first'"]


def test_human_first_needs_seats_to_queue_for() -> None:
    found = problems(GOOD + "menu_policy:\n  key_timeout_seconds: 5\n  intake: human-first\n")
    assert found == ["r.yaml:18: intake: human-first needs operators.seats (a queue to wait in for a person)"]


def test_the_silent_callers_time_is_bounded() -> None:
    found = problems(GOOD + "menu_policy: {silent_caller_seconds: 2}\n")
    assert found == ["r.yaml:16: menu_policy.silent_caller_seconds must be between 5 and 120, got 2"]


def test_duplicate_keys_are_refused_rather_than_silently_overwritten() -> None:
    found = problems(GOOD.replace("version: 1\n", "version: 1\nversion: 1\n"))
    assert found == ["r.yaml:2: (top level): duplicate key 'version' (first at line 1)"]


def test_unknown_keys_are_refused_so_typos_do_not_pass_silently() -> None:
    found = problems(GOOD.replace("trunk: operators}", "trunk: operators, ringseconds: 5}"))
    assert any("r.yaml:6: operators: unknown key 'ringseconds'" in p for p in found)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "r.yaml:1: file is empty"),
        ("routes: [\n", "r.yaml:2: not valid YAML"),
        ("- a\n- b\n", "r.yaml:1: (top level) must be a mapping"),
    ],
)
def test_broken_files_are_refused_with_a_location(text: str, expected: str) -> None:
    assert problems(text)[0].startswith(expected)


def test_a_missing_file_is_a_located_error(tmp_path: Path) -> None:
    with pytest.raises(RoutesError, match=r"nothere.yaml:1: file not found"):
        routes.load(tmp_path / "nothere.yaml")


def test_the_parser_needs_only_the_seat_type_not_the_runtime_queue() -> None:
    import subprocess
    import sys

    code = "import sys, ivr.routing.routes; print('ivr.operators.queue' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == "False"


# -- emergency lines (issue 17) -------------------------------------------------------------------


def test_emergency_lines_are_typed_and_only_they_join_the_dialable_numbers() -> None:
    table = routes.load(Path(__file__).resolve().parents[3] / "routes.yaml")
    assert [(e.id, e.number, e.transfer) for e in table.emergency] == [
        ("police", "110", "three-way"),
        ("fire", "119", "three-way"),
        ("ambulance", "120", "three-way"),
    ]
    assert {"110", "119", "120"} <= table.dialable_numbers()
    assert table.operators.wrap_up_seconds == 5


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('  - {id: police, number: "11O", trunk: departments}', "emergency[0].number '11O' is not a phone number"),
        ('  - {id: police, number: "110", trunk: nowhere}', "unknown trunk 'nowhere'"),
        ('  - {id: police, number: "110", trunk: departments, transfer: later}', "must be one of consult, three-way"),
        ('  - {id: police, number: "3372000", trunk: departments}', "number 3372000 is already used"),
        ("  - {id: police, trunk: departments}", "missing"),
    ],
)
def test_a_bad_emergency_line_is_refused_with_its_line(line: str, message: str) -> None:
    text = (Path(__file__).resolve().parents[3] / "routes.yaml").read_text(encoding="utf-8")
    old = '  - {id: police, name: 110报警服务台, number: "110", trunk: departments}'
    assert old in text
    bad = text.replace(old, line)
    with pytest.raises(RoutesError) as refused:
        routes.parse(bad, "routes.yaml")
    where = bad[: bad.index(line)].count("\n") + 1
    assert any(f"routes.yaml:{where}:" in str(p) and message in str(p) for p in refused.value.problems), [
        str(p) for p in refused.value.problems
    ]


def test_a_progress_option_is_parsed_typed_and_needs_a_label() -> None:
    with_progress = GOOD.replace(
        '"2": {route: bianban}', '"2": {route: bianban}\n      "8": {progress: true, label: 查询办理进度}'
    )
    option = routes.parse(with_progress, "r.yaml").menus["main"].options[-1]
    assert (option.key, option.progress, option.number_entry, option.spoken) == ("8", True, False, "查询办理进度请按8")
    unlabelled = GOOD.replace('"2": {route: bianban}', '"2": {route: bianban}\n      "8": {progress: true}')
    assert problems(unlabelled) == ["r.yaml:16: menus.main.8: a progress option needs a 'label'"]
    wrong = GOOD.replace('"2": {route: bianban}', '"2": {route: bianban}\n      "8": {progress: "no", label: x}')
    assert problems(wrong) == ["r.yaml:16: menus.main.8: progress can only be true"]
