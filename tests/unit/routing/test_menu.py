"""The menu's decisions: what a caller pressing keys gets (shared by live calls and simulate)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ivr.routing import routes
from ivr.routing.menu import Ask, Decision, Navigator, decide, prompt_text, reachable

TABLE = routes.load(Path(__file__).resolve().parents[3] / "routes.yaml")
NOW = dt.datetime(2026, 11, 25, 10, 0)


def test_pressing_1_reaches_the_public_security_bureau_by_merge() -> None:
    d = decide(TABLE, "12345", "1", NOW)
    assert (d.action, d.route.unit, d.route.mode, d.track) == ("dial", "市公安局", "merge", "menu")  # type: ignore[union-attr]


def test_a_sub_menu_reaches_a_dual_track_line_via_12345() -> None:
    d = decide(TABLE, "12345", "46", NOW)
    assert (d.action, d.route.number, d.menu_path) == ("dial", "12310", ("main", "complaints"))  # type: ignore[union-attr]


def test_interconnect_lines_are_handed_off_not_dialled_as_departments() -> None:
    d = decide(TABLE, "12345", "41", NOW)
    assert (d.action, d.route.number, d.route.mode) == ("handoff", "12315", "interconnect")  # type: ignore[union-attr]
    assert decide(TABLE, "12315", "", NOW).action == "handoff"


def test_a_caller_who_knows_the_old_number_types_it_after_9() -> None:
    d = decide(TABLE, "12345", "93022782#", NOW)
    assert (d.action, d.reason, d.route.unit) == ("dial", "number_entry", "市发改委")  # type: ignore[union-attr]
    assert decide(TABLE, "12345", "912366", NOW).route.number == "12366"  # type: ignore[union-attr]  # a pause ends it


def test_a_typed_number_that_is_no_route_is_invalid_and_never_dialled() -> None:
    d = decide(TABLE, "12345", "9110#9120#9999#", NOW)
    assert (d.action, d.reason, d.route) == ("hangup", "too_many_invalid_keys", None)


def test_star_during_number_entry_returns_to_the_menu() -> None:
    assert decide(TABLE, "12345", "930*1", NOW).route.id == "gongan"  # type: ignore[union-attr]


def test_every_one_of_the_50_lines_is_reachable_once_all_batches_are_live() -> None:
    found = reachable(TABLE, dt.datetime(2019, 1, 1, 9, 0))
    assert len(found) == len(TABLE.routes) == 50
    for keys, route in found:
        assert decide(TABLE, "12345", keys, dt.datetime(2019, 1, 1, 9, 0)).route == route


@pytest.mark.parametrize(
    "day, live",
    [
        (dt.datetime(2016, 7, 30, 9), 0),  # before the first batch
        (dt.datetime(2016, 7, 31, 9), 31),  # merge batch live
        (dt.datetime(2016, 8, 31, 9), 38),  # + dual-track batch
        (dt.datetime(2018, 12, 30, 9), 38),
        (dt.datetime(2018, 12, 31, 9), 50),  # + interconnect batch
    ],
)
def test_batches_go_live_on_their_dates(day: dt.datetime, live: int) -> None:
    assert len(reachable(TABLE, day)) == live


def test_dialling_a_dual_track_short_number_skips_the_menu() -> None:
    d = decide(TABLE, "12310", "", NOW)
    assert (d.action, d.reason, d.track, d.route.unit) == ("dial", "direct_dial", "direct", "市编办")  # type: ignore[union-attr]


def test_zero_reaches_a_human_from_any_menu() -> None:
    assert decide(TABLE, "12345", "0", NOW).action == "operator"
    assert decide(TABLE, "12345", "60", NOW).action == "operator"
    assert decide(TABLE, "12345", "90", NOW).action == "operator"


def test_silence_reaches_a_human_after_the_allowed_attempts() -> None:
    d = decide(TABLE, "12345", "", NOW)
    assert (d.action, d.reason) == ("operator", "no_input")


def test_three_invalid_keys_end_politely() -> None:
    d = decide(TABLE, "12345", "777", NOW)
    assert (d.action, d.reason, d.keys) == ("hangup", "too_many_invalid_keys", "777")


def test_an_invalid_key_is_explained_and_the_menu_repeats() -> None:
    nav = Navigator(TABLE, "12345", NOW)
    first = nav.start()
    assert isinstance(first, Ask) and first.first
    again = nav.feed("7")
    assert isinstance(again, Ask) and again.notice == "invalid" and again.menu.id == "main"
    assert decide(TABLE, "12345", "71", NOW).route.id == "gongan"  # type: ignore[union-attr]


def test_star_repeats_and_hash_returns_to_the_main_menu() -> None:
    assert decide(TABLE, "12345", "*1", NOW).route.id == "gongan"  # type: ignore[union-attr]
    assert decide(TABLE, "12345", "2#1", NOW).route.id == "gongan"  # type: ignore[union-attr]


def test_routes_are_absent_before_their_effective_date() -> None:
    before_dual_track = dt.datetime(2016, 8, 1, 9, 0)  # merge live 07-31, transfer from 08-31
    nav = Navigator(TABLE, "12345", before_dual_track)
    ask = nav.start()
    assert isinstance(ask, Ask) and "1" in [o.key for o in ask.options]
    assert decide(TABLE, "12345", "46", before_dual_track).route is None  # 12310 not yet offered
    assert decide(TABLE, "12345", "912310#", before_dual_track).route is None
    direct = decide(TABLE, "12310", "", before_dual_track)
    assert (direct.action, direct.reason) == ("operator", "route_not_yet_live")


def test_an_unrouted_entry_number_goes_to_the_operators() -> None:
    assert decide(TABLE, "12399", "", NOW).reason == "entry_not_routed"


@pytest.mark.parametrize("keys", ["1", "61", "62", "0", "", "777", "93372000#", "9123456789012#"])
def test_decisions_never_dial_a_number_outside_routes_yaml(keys: str) -> None:
    d = decide(TABLE, "12345", keys, NOW)
    if d.route is not None:
        assert d.route.dial in TABLE.dialable_numbers()


def test_caller_digits_cannot_become_a_dial_string() -> None:
    """Even a long run of digits only selects among configured routes."""
    d = decide(TABLE, "12345", "3372000123", NOW)
    assert d.route is None or d.route.dial_string in {r.dial_string for r in TABLE.routes.values()}


def test_the_spoken_menu_names_exactly_its_options() -> None:
    ask = Navigator(TABLE, "12345", NOW).start()
    assert isinstance(ask, Ask)
    text = prompt_text(ask.menu, ask.options)
    for option in ask.options:
        assert f"{option.label}请按{option.key}" in text
    assert "请按7" not in text and text.startswith("人工服务请按0")  # the way to a person, before any choice


def test_keys_beyond_the_first_32_are_counted_not_kept() -> None:
    d = decide(TABLE, "12345", "*" * 120 + "1", NOW)
    assert d.route.id == "gongan"  # type: ignore[union-attr]
    assert d.keys == "*" * 32 + "+89"


def test_a_100_digit_number_after_9_uses_one_attempt_and_its_keys_stay_bounded() -> None:
    nav = Navigator(TABLE, "12345", NOW)
    nav.start()
    for key in "9" + "1" * 100 + "#":
        step = nav.feed(key)
    assert isinstance(step, Ask) and (step.notice, step.number_entry) == ("invalid", True)
    # '*' back to the menu: two more invalid keys, not one, end the call.
    assert isinstance(nav.feed("*"), Ask) and isinstance(nav.feed("7"), Ask)
    d = nav.feed("7")
    assert isinstance(d, Decision) and (d.action, d.route) == ("hangup", None)
    assert d.keys == "9" + "1" * 31 + "+73"


def test_a_number_typed_too_long_counts_as_one_wrong_number_and_the_caller_may_retype() -> None:
    d = decide(TABLE, "12345", "9" + "1" * 100 + "#3022782#", NOW)
    assert (d.action, d.reason, d.route.number) == ("dial", "number_entry", "3022782")  # type: ignore[union-attr]


def test_the_progress_option_ends_the_menu_with_a_progress_decision() -> None:
    d = decide(TABLE, "12345", "8", NOW)
    assert (d.action, d.reason, d.route, d.menu_path) == ("progress", "menu_choice", None, ("main",))
