"""The holiday calendar: entered notices over chinese-calendar over a provisional year from the rules.

The rules (全国年节及纪念日放假办法, 2024 revision) fix 13 days a year; each year's State Council
notice adds the weekend bridging (调休). Checked here against the package's real 2025 and 2026
notices, and the lunar and solar-term days against every year the package has since 2008 (when
清明, 端午 and 中秋 became holidays).
"""

from __future__ import annotations

import datetime as dt
import textwrap

import chinese_calendar
import pytest
import structlog.testing

from ivr.errors import RoutesError
from ivr.routing import calendar as cal
from ivr.routing import routes
from ivr.routing.calendar import PACKAGE_LAST_YEAR, Calendar, Notice, Source, provisional_holidays
from ivr.routing.menu import decide

D = dt.date

# A test year's notice, shaped like a real one (the 2026 notice's 元旦 and 春节 moved to 2031 days).
NOTICE_2031 = Notice(
    2031,
    {
        D(2031, 1, 1): "元旦",
        D(2031, 1, 2): "元旦",
        D(2031, 1, 3): "元旦",
        **{D(2031, 1, 22) + dt.timedelta(days=n): "春节" for n in range(9)},
    },
    frozenset({D(2031, 1, 5), D(2031, 2, 8)}),
    "test notice",
)


# --- the statutory rules, against published notices ----------------------------------------------


@pytest.mark.parametrize("year", [2025, 2026])
def test_every_day_the_rules_fix_is_a_holiday_of_that_name_in_the_published_notice(year: int) -> None:
    package = Calendar()
    days = provisional_holidays(year)
    assert len(days) == 13  # 1 + 4 + 1 + 2 + 1 + 1 + 3 (中秋 on its own day in 2025 and 2026)
    for day, name in days.items():
        published = package.day(day)
        assert published.source is Source.PACKAGE
        assert not published.workday, day
        assert published.holiday == name, day


def test_the_lunar_and_solar_term_days_match_every_published_year_since_2008() -> None:
    """初一, 清明, 端午 and 中秋 from lunar-python are days off of the same holiday in the package."""
    for year in range(2008, PACKAGE_LAST_YEAR + 1):
        lunar = cal.Lunar
        checks = {
            cal._solar(lunar.fromYmd(year, 1, 1)): "Spring Festival",
            cal._solar(lunar.fromYmd(year, 5, 5)): "Dragon Boat Festival",
            cal._solar(lunar.fromYmd(year, 8, 15)): "Mid-autumn Festival",
        }
        qingming = lunar.fromYmd(year, 3, 1).getJieQiTable()["清明"]
        checks[D(qingming.getYear(), qingming.getMonth(), qingming.getDay())] = "Tomb-sweeping Day"
        for day, holiday in checks.items():
            on, name = chinese_calendar.get_holiday_detail(day)
            # 中秋 on Oct 1-8 is inside the National Day holiday (2020, 2023, 2025: combined notices)
            expected = {holiday, "National Day"} if holiday == "Mid-autumn Festival" else {holiday}
            # a weekend inside the holiday is named by nothing (e.g. 端午 2012-06-23, a Saturday)
            assert on and (name in expected or name is None and day.weekday() >= 5), (year, day, name)


def test_provisional_2027_has_the_statutory_days_and_says_nothing_about_make_up_days() -> None:
    days = provisional_holidays(2027)
    spring = [D(2027, 2, 5), D(2027, 2, 6), D(2027, 2, 7), D(2027, 2, 8)]  # 除夕 .. 初三
    assert sorted(d for d, n in days.items() if n == "春节") == spring
    assert days[D(2027, 4, 5)] == "清明节"
    assert days[D(2027, 6, 9)] == "端午节" and days[D(2027, 9, 15)] == "中秋节"
    calendar = Calendar()
    assert calendar.source(2027) is Source.PROVISIONAL
    first_day = calendar.day(D(2027, 2, 5))  # 除夕, a Friday
    assert (first_day.workday, first_day.holiday, first_day.source) == (False, "春节", Source.PROVISIONAL)
    assert calendar.is_workday(D(2027, 2, 9))  # Tuesday after 初三: a notice would likely bridge it; we don't guess
    assert not calendar.is_workday(D(2027, 2, 13))  # Saturday: no make-up workday is guessed either


def test_when_mid_autumn_falls_in_national_day_the_day_carries_both_names() -> None:
    assert provisional_holidays(2028)[D(2028, 10, 3)] == "中秋节、国庆节"
    assert len(provisional_holidays(2028)) == 12


def test_the_rules_are_those_in_force_from_2025() -> None:
    with pytest.raises(ValueError, match="from 2025"):
        provisional_holidays(2024)


# --- precedence and coverage -----------------------------------------------------------------------


def test_an_entered_notice_decides_its_year_whole() -> None:
    calendar = Calendar({2031: NOTICE_2031})
    assert calendar.source(2031) is Source.NOTICE
    assert calendar.day(D(2031, 1, 2)) == cal.Day(D(2031, 1, 2), False, "元旦", Source.NOTICE)
    assert calendar.is_workday(D(2031, 1, 5))  # Sunday, make-up workday
    assert not calendar.is_workday(D(2031, 1, 27))  # Monday in 春节
    assert calendar.is_workday(D(2031, 1, 31))  # Friday, not listed: an ordinary workday
    assert not calendar.is_workday(D(2031, 3, 1))  # Saturday, not listed: rest


def test_a_notice_takes_precedence_over_the_package() -> None:
    correction = Notice(2026, {D(2026, 12, 31): "test holiday"})
    calendar = Calendar({2026: correction})
    assert not calendar.is_workday(D(2026, 12, 31))
    assert Calendar().is_workday(D(2026, 12, 31))
    # the whole year follows the notice: the package's 2026-02-17 (春节) is not in it
    assert calendar.is_workday(D(2026, 2, 17))


def test_the_package_is_asked_once_per_day_however_many_calls_ask(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[dt.date] = []
    real = chinese_calendar.get_holiday_detail
    monkeypatch.setattr(chinese_calendar, "get_holiday_detail", lambda day: asked.append(day) or real(day))
    cal._package_day.cache_clear()
    calendar = Calendar()
    answers = {calendar.day(D(2026, 2, 17)) for _ in range(100)}
    assert answers == {cal.Day(D(2026, 2, 17), False, "春节", Source.PACKAGE)}
    assert asked == [D(2026, 2, 17)]
    assert calendar.is_workday(D(2026, 2, 28)) and asked[-1] == D(2026, 2, 28)  # another day is asked anew


def test_one_year_past_the_last_notice_or_package_year_is_provisional_and_no_more() -> None:
    package_only = Calendar()
    assert package_only.source(2027) is Source.PROVISIONAL
    assert package_only.source(2028) is Source.NONE
    assert package_only.source(2003) is Source.NONE
    assert package_only.covered_until == D(2027, 12, 31)
    assert package_only.confirmed_until == D(2026, 12, 31)

    with_2027 = Calendar({2027: Notice(2027, {D(2027, 1, 1): "元旦"})})
    assert with_2027.source(2027) is Source.NOTICE and with_2027.source(2028) is Source.PROVISIONAL
    assert with_2027.covered_until == D(2028, 12, 31)
    assert with_2027.confirmed_until == D(2027, 12, 31)


def test_check_fails_when_the_calendar_ends_within_60_days() -> None:
    calendar = Calendar()
    assert calendar.check(D(2027, 11, 1)).failure is None  # 2027-12-31 is 60 days away
    failure = calendar.check(D(2027, 11, 2)).failure
    assert failure is not None and "ends 2027-12-31" in failure and "enter the 2027 notice" in failure


def test_check_flags_a_provisional_year_within_60_days_and_says_what_it_cannot_guess() -> None:
    check = Calendar().check(D(2026, 12, 5))
    assert check.failure is None
    assert len(check.provisional) == 1
    note = check.provisional[0]
    assert note.startswith("2027 is PROVISIONAL")
    assert "春节 02-05..02-08" in note and "清明节 04-05" in note
    assert "make-up workdays" in note and "cannot be computed" in note
    assert "PROVISIONAL 2027" in check.summary and "covered until 2027-12-31" in check.summary
    assert Calendar().check(D(2026, 6, 1)).provisional == []  # months away: not yet flagged
    assert Calendar({2027: Notice(2027, {})}).check(D(2026, 12, 5)).provisional == []


def test_provisional_and_uncovered_days_are_logged_once_per_year(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cal, "_warned", set())
    calendar = Calendar()
    with structlog.testing.capture_logs() as logs:
        calendar.is_workday(D(2027, 3, 1))
        calendar.is_workday(D(2027, 3, 2))
        calendar.is_workday(D(2030, 3, 1))
        calendar.is_workday(D(2026, 3, 2))  # the package: nothing to say
    assert [(e["event"], e["log_level"], e["year"]) for e in logs] == [
        ("holiday_calendar_provisional", "warning", 2027),
        ("holiday_calendar_not_covering", "warning", 2030),
    ]


# --- routes.yaml `calendar:` -----------------------------------------------------------------------

TABLE = textwrap.dedent("""\
    version: 1
    hotline: {number: "12345"}
    trunks:
      departments: {endpoint: departments}
      operators: {endpoint: operators}
    operators: {number: "8000", trunk: operators}
    hours:
      office: {workdays: "08:30-12:00,14:30-17:30"}
      mornings: {workdays: "09:00-12:00"}
    routes:
      - {id: gongan, unit: 市公安局, number: "3372000", mode: merge, effective: 2016-07-31, trunk: departments,
         hours: office}
      - {id: yibao, unit: 市医保局, number: "3375000", mode: merge, effective: 2016-07-31, trunk: departments,
         hours: office}
    deadlines: {default_workdays: 3}
    menus:
      main:
        options:
          "1": {route: gongan}
          "2": {route: yibao}
    """)

CALENDAR = textwrap.dedent("""\
    calendar:
      notices:
        2031:
          reference: test notice
          holidays:
            元旦: [2031-01-01..2031-01-03]
            春节: 2031-01-22..2031-01-30
          workdays: [2031-01-05, 2031-02-08]
      closures:
        - unit: 市医保局
          dates: [2031-03-03..2031-03-04]
          reason: 系统升级
        - unit: 市医保局
          dates: [2031-03-10..2031-03-14]
          hours: mornings
    """)


def load(extra: str) -> routes.RouteTable:
    return routes.parse(TABLE + extra, "r.yaml")


def problems(extra: str) -> list[str]:
    with pytest.raises(RoutesError) as err:
        load(extra)
    return [str(p) for p in err.value.problems]


def test_a_notice_in_routes_yaml_drives_hours_and_ticket_deadlines() -> None:
    table = load(CALENDAR)
    assert table.calendar.notices[2031] == NOTICE_2031
    gongan = table.routes["gongan"]
    assert not gongan.open_at(dt.datetime(2031, 1, 27, 10, 0))  # Monday in 春节
    assert gongan.open_at(dt.datetime(2031, 2, 8, 10, 0))  # Saturday make-up workday
    assert decide(table, "12345", "1", dt.datetime(2031, 1, 27, 10, 0)).reason == "after_hours"
    # created Tue 2031-01-21: 01-22..30 off, Fri 01-31, Mon 02-03, Tue 02-04 -> due the 3rd workday
    due = table.deadlines.deadline("merge", "市公安局", dt.datetime(2031, 1, 21, 10, 0))
    assert due == dt.datetime(2031, 2, 4, 10, 0)


def test_a_closed_unit_takes_messages_on_its_closure_days_and_other_units_do_not_notice() -> None:
    table = load(CALENDAR)
    monday = dt.datetime(2031, 3, 3, 10, 0)
    assert decide(table, "12345", "2", monday).reason == "after_hours"
    assert decide(table, "12345", "1", monday).action == "dial"
    assert decide(table, "12345", "2", dt.datetime(2031, 3, 5, 10, 0)).action == "dial"  # the day after


def test_special_hours_apply_to_the_unit_for_the_period() -> None:
    yibao = load(CALENDAR).routes["yibao"]
    assert yibao.open_at(dt.datetime(2031, 3, 10, 9, 30))
    assert not yibao.open_at(dt.datetime(2031, 3, 10, 15, 0))  # normally open, mornings only this week
    assert yibao.open_at(dt.datetime(2031, 3, 17, 15, 0))  # the week after: office hours again


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize(
    ("edit", "needle", "message"),
    [
        (
            ("workdays: [2031-01-05, 2031-02-08]", "workdays: [2031-01-05, 2031-02-08, 2031-01-05]"),
            "workdays: [2031-01-05",
            "2031-01-05 is listed twice (first at line",
        ),
        (
            ("春节: 2031-01-22..2031-01-30", "春节: [2031-01-22..2031-01-30, 2031-01-02]"),
            "春节:",
            "2031-01-02 is listed twice",
        ),
        (
            ("workdays: [2031-01-05, 2031-02-08]", "workdays: [2031-01-05, 2031-01-25]"),
            "workdays: [2031-01-05",
            "2031-01-25 is both a make-up workday and a holiday (春节, line",
        ),
        (
            ("元旦: [2031-01-01..2031-01-03]", "元旦: [2030-12-31..2031-01-02]"),
            "元旦:",
            "2030-12-31 is not in 2031",
        ),
        (("- unit: 市医保局", "- unit: 市卫健委"), "- unit: 市卫健委", "'市卫健委' is not the unit of any route"),
        (("hours: mornings", "hours: evenings"), "hours: evenings", "unknown hours 'evenings'"),
        (("2031-03-03..2031-03-04", "2031-03-04..2031-03-03"), "2031-03-04..2031-03-03", "ends before it starts"),
        (("2031-03-03..2031-03-04", "2031-03-12"), "2031-03-10..2031-03-14", "already closed or on special hours"),
        (("2031-01-22..2031-01-30", "2031-01-32"), "春节:", "'2031-01-32' is not a date"),
        (("2031:", "31:"), "reference: test notice", "'31' is not a year"),  # at the notice's first line
    ],
)
def test_bad_calendar_entries_are_reported_at_their_line(edit: tuple[str, str], needle: str, message: str) -> None:
    text = CALENDAR.replace(*edit, 1)
    assert text != CALENDAR
    (found,) = [p for p in problems(text) if message in p]
    assert found.startswith(f"r.yaml:{line_of(TABLE + text, needle)}: "), found


def test_the_shipped_tables_calendar_covers_the_next_60_days_from_today() -> None:
    """Date-dependent on purpose: this turns red 60 days before the shipped calendar runs out, as
    `hotline check` does in production — enter the next State Council notice to make it green."""
    from pathlib import Path

    from ivr import timekeeping

    shipped = routes.load(Path(__file__).resolve().parents[3] / "routes.yaml")
    check = shipped.calendar.check(timekeeping.now({}).date())
    assert check.failure is None, check.failure
