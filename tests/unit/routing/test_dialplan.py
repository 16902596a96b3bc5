"""routes.yaml against extensions.conf: every number the controller serves must reach it.

A dual-track or interconnect number in routes.yaml that the carrier's context does not send to
Stasis is a line citizens dial and get 404 for. `hotline check` finds it before it goes live and
names the route's line in routes.yaml.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivr.cli import main
from ivr.routing import routes
from ivr.routing.dialplan import (
    CHAIN_BACK,
    CHAIN_CONTEXT,
    CHAIN_FILE,
    CHAIN_MISSING,
    chain_dialplan,
    chain_extension,
    entry_problems,
    pattern_matches,
    reaches_stasis,
    read_conf,
    read_dialplan,
)

REPO = Path(__file__).resolve().parents[3]
EXTENSIONS = REPO / "dialplan" / "extensions.conf"


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of routes.yaml with dialplan/extensions.conf beside it, as in the repository."""
    shutil.copy(REPO / "routes.yaml", tmp_path / "routes.yaml")
    (tmp_path / "dialplan").mkdir()
    shutil.copy(EXTENSIONS, tmp_path / "dialplan" / "extensions.conf")
    return tmp_path


# `check` fails when the holiday calendar runs out within 60 days of today; these tests are about the
# dialplan, so they run on a fixed day (the calendar's freshness is tested in routing/test_calendar.py).
FIXED_CLOCK = {"HOTLINE_CLOCK_START": "2026-11-24T10:00"}


def drop_exten(conf: Path, number: str) -> None:
    conf.write_text(conf.read_text().replace(f"exten => {number},", f"exten => 1{number},"))


def test_the_shipped_dialplan_sends_every_entry_number_to_stasis() -> None:
    table = routes.load(REPO / "routes.yaml")
    assert entry_problems(table, EXTENSIONS) == []


def test_a_short_number_missing_from_the_dialplan_is_named_at_its_route_in_routes_yaml(checkout: Path) -> None:
    conf = checkout / "dialplan" / "extensions.conf"
    drop_exten(conf, "12315")
    table = routes.load(checkout / "routes.yaml")
    line = next(
        n
        for n, text in enumerate((checkout / "routes.yaml").read_text().splitlines(), 1)
        if text.strip() == "- id: gongshang-12315"
    )
    assert [str(p) for p in entry_problems(table, conf)] == [
        f"{checkout / 'routes.yaml'}:{line}: routes[gongshang-12315]: interconnect number 12315 is not sent to "
        f"Stasis by {conf} [from-carrier]: callers dialling it directly get 404"
    ]


def test_a_missing_hotline_number_is_named_at_hotline_number(checkout: Path) -> None:
    conf = checkout / "dialplan" / "extensions.conf"
    drop_exten(conf, "12345")
    (problem,) = entry_problems(routes.load(checkout / "routes.yaml"), conf)
    assert (problem.line, problem.message.split(":")[0]) == (
        11,
        f"hotline number 12345 is not sent to Stasis by {conf} [from-carrier]",
    )


def test_an_extension_that_exists_but_never_enters_stasis_is_a_problem(tmp_path: Path) -> None:
    conf = tmp_path / "extensions.conf"
    conf.write_text(
        "[from-carrier]\nexten => 12345,1,Goto(entry,s,1)\nexten => 12310,1,Hangup()\n"
        "[entry]\nexten => s,1,Stasis(hotline,${EXTEN})\n"
    )
    contexts = read_dialplan(conf)
    assert reaches_stasis(contexts, "from-carrier", "12345")
    assert not reaches_stasis(contexts, "from-carrier", "12310")
    assert not reaches_stasis(contexts, "from-carrier", "12399")  # no extension: 404


def test_numbers_reached_through_an_include_or_a_pattern_count(tmp_path: Path) -> None:
    conf = tmp_path / "extensions.conf"
    conf.write_text("[from-carrier]\ninclude => short\n[short]\nexten => _123XX,1,Stasis(hotline,${EXTEN})\n")
    contexts = read_dialplan(conf)
    assert reaches_stasis(contexts, "from-carrier", "12310")
    assert not reaches_stasis(contexts, "from-carrier", "1231")


@pytest.mark.parametrize(
    "pattern, number, matches",
    [
        ("_X.", "1", False),
        ("_X.", "12", True),
        ("_X!", "1", True),
        ("_.", "9", True),
        ("_NXX", "199", False),
        ("_ZX", "10", True),
        ("_[1-3]X", "45", False),
        ("_[13]X", "35", True),
        ("_123XX", "12345", True),
    ],
)
def test_extension_patterns_follow_asterisk(pattern: str, number: str, matches: bool) -> None:
    assert pattern_matches(pattern, number) is matches


def test_conf_reader_follows_includes_and_templates(tmp_path: Path) -> None:
    (tmp_path / "main.conf").write_text(
        "[hardened](!)\nallow_transfer = no ; why\n[carrier](hardened)\n"
        "type = endpoint\n#include more.conf\n#tryinclude absent.conf\n"
    )
    (tmp_path / "more.conf").write_text("[extra]\nkey => value\\;not a comment\n")
    by_name = {s.name: s for s in read_conf(tmp_path / "main.conf")}
    assert by_name["hardened"].is_template
    assert by_name["carrier"].get("allow_transfer") == "no" and by_name["carrier"].get("type") == "endpoint"
    assert by_name["extra"].get("key") == "value\\;not a comment"


def test_hotline_check_refuses_a_table_the_dialplan_beside_it_does_not_serve(checkout: Path) -> None:
    drop_exten(checkout / "dialplan" / "extensions.conf", "12310")
    result = CliRunner().invoke(main, ["check", str(checkout / "routes.yaml")])
    assert result.exit_code == 1
    assert "routes[bianban-12310]: transfer number 12310 is not sent to Stasis" in result.output


def test_hotline_check_takes_the_dialplan_from_an_option_and_can_skip_it(checkout: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.conf"
    other.write_text("[from-carrier]\n")
    result = CliRunner().invoke(main, ["check", str(checkout / "routes.yaml"), "--dialplan", str(other)])
    assert result.exit_code == 1 and result.output.count("is not sent to Stasis") == 20  # 12345 + 19 short numbers
    skipped = CliRunner(env=FIXED_CLOCK).invoke(main, ["check", str(checkout / "routes.yaml"), "--dialplan", ""])
    assert skipped.exit_code == 0 and ": ok — 50 routes" in skipped.output


def test_hotline_check_passes_the_shipped_table_and_dialplan() -> None:
    result = CliRunner(env=FIXED_CLOCK).invoke(main, ["check", str(REPO / "routes.yaml")])
    assert result.exit_code == 0, result.output


# -- the generated ring chains (HOTLINE_DIAL_PATH=dialplan) ---------------------------------------------


def test_each_route_gets_a_ring_chain_that_dials_its_numbers_in_order_then_returns_to_stasis(tmp_path: Path) -> None:
    text = (REPO / "routes.yaml").read_text(encoding="utf-8")
    gongan = 'number: "3372000"\n    mode: merge\n    effective: 2016-07-31\n    trunk: departments\n'
    gongan += "    ring_seconds: 20\n"
    overflow = gongan + '    overflow: [{number: "3372099", trunk: partners, ring_seconds: 15}]\n'
    (tmp_path / "routes.yaml").write_text(text.replace(gongan, overflow, 1), encoding="utf-8")
    table = routes.load(tmp_path / "routes.yaml")

    contexts = read_dialplan(_written(tmp_path, chain_dialplan(table)))

    chain = contexts[CHAIN_CONTEXT]
    steps = chain.extensions[chain_extension(table.routes["gongan"])]
    dials = [s.args for s in steps if s.app == "Dial"]
    assert dials == [("PJSIP/3372000@departments", "20", "gr"), ("PJSIP/3372099@partners", "15", "gr")]
    assert [s.app for s in steps].count("UserEvent") == 2  # each number's status, told to the controller
    assert steps[-3].app == "Stasis" and steps[-3].args[:2] == ("hotline", CHAIN_BACK)
    assert {chain_extension(r) for r in table.routes.values()} | {"i"} == set(chain.extensions)


def test_a_route_edited_after_the_dialplan_was_rendered_has_a_chain_name_the_dialplan_lacks() -> None:
    table = routes.load(REPO / "routes.yaml")
    before = table.routes["gongan"]
    after = dataclasses.replace(before, ring_seconds=before.ring_seconds + 5)

    assert chain_extension(before) != chain_extension(after)  # so it never rings the stale chain
    assert chain_extension(before) == chain_extension(dataclasses.replace(before, label="renamed"))
    assert "-" not in chain_extension(table.routes["bianban-12310"])  # Asterisk would ignore it in matching


def test_an_unknown_extension_comes_back_to_the_controller_at_once(tmp_path: Path) -> None:
    chain = read_dialplan(_written(tmp_path, chain_dialplan(routes.load(REPO / "routes.yaml"))))[CHAIN_CONTEXT]

    (back, fallback, _) = chain.extensions["i"]
    assert back.app == "Stasis" and back.args == ("hotline", CHAIN_BACK, CHAIN_MISSING)
    assert fallback.app == "GotoIf" and "STASISSTATUS" in fallback.args[0]


def test_a_caller_nobody_answered_while_no_controller_runs_gets_the_duty_line_not_a_hang_up(tmp_path: Path) -> None:
    table = routes.load(REPO / "routes.yaml")
    chain = read_dialplan(_written(tmp_path, chain_dialplan(table)))[CHAIN_CONTEXT]

    steps = chain.extensions[chain_extension(table.routes["gongan"])]
    back = next(i for i, s in enumerate(steps) if s.app == "Stasis")
    (condition,) = [s.args for s in steps[back + 1 :] if s.app == "GotoIf"]
    assert '"${STASISSTATUS}" = "FAILED"' in condition[0] and '"${DIALSTATUS}" != "ANSWER"' in condition[0]
    assert ",".join(condition).endswith("?hotline-fallback,operators,answer")  # past the count of calls never seen
    assert steps[-1].app == "Hangup"  # a caller whose department hung up after a talk


def test_extensions_conf_includes_the_generated_chains() -> None:
    assert f"#tryinclude {CHAIN_FILE}" in EXTENSIONS.read_text(encoding="utf-8")


def _written(tmp_path: Path, text: str) -> Path:
    conf = tmp_path / CHAIN_FILE
    conf.write_text(text, encoding="utf-8")
    return conf


def test_the_chains_file_tells_the_controller_it_is_loaded(tmp_path: Path) -> None:
    table = routes.load(REPO / "routes.yaml")
    text = chain_dialplan(table)
    # Added to extensions.conf's [globals], which comes before the #tryinclude (a second [globals] is ignored).
    assert f"[globals](+)\nHOTLINE_CHAINS = {table.digest}\n" in text
    extensions = EXTENSIONS.read_text(encoding="utf-8")
    assert extensions.index("[globals]") < extensions.index(f"#tryinclude {CHAIN_FILE}")
