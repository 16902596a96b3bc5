"""Business hours: open/closed on official Chinese workdays, holidays and 调休 make-up days.

Fixture dates are real 2026 days from the State Council notice on the 2026 holidays
(国务院办公厅关于2026年部分节假日安排的通知), as carried by chinese-calendar 1.11.0:
  元旦 Jan 1–3 off, Sun Jan 4 worked;  春节 Feb 15–23 off, Sat Feb 14 and Sat Feb 28 worked;
  劳动节 May 1–5 off, Sat May 9 worked;  国庆 Oct 1–7 off, Sun Sep 20 and Sat Oct 10 worked.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest

from ivr.routing.calendar import Calendar, Notice
from ivr.routing.hours import Hours, TimeRange, is_workday, parse_ranges

D = dt.date
T = dt.time

OFFICE = Hours("office", parse_ranges("08:30-12:00,14:30-17:30"))
WEEKEND_DESK = Hours("weekend-desk", parse_ranges("08:30-17:30"), restdays=parse_ranges("09:00-12:00"))
OPERATORS = Hours("operators", (), always_open=True)


def at(iso: str) -> dt.datetime:
    return dt.datetime.fromisoformat(iso)


# --- the official calendar -------------------------------------------------------------


def test_ordinary_weekdays_are_workdays_and_weekends_are_not() -> None:
    assert is_workday(D(2026, 11, 24))  # Tuesday
    assert not is_workday(D(2026, 11, 28))  # Saturday
    assert not is_workday(D(2026, 11, 29))  # Sunday


@pytest.mark.parametrize(
    "day",
    [
        D(2026, 1, 1),  # Thu, 元旦
        D(2026, 1, 2),  # Fri, 元旦 (调休)
        D(2026, 2, 16),  # Mon, 春节 除夕
        D(2026, 2, 17),  # Tue, 春节 初一
        D(2026, 2, 20),  # Fri, 春节 (调休 for Sat Feb 14)
        D(2026, 2, 23),  # Mon, last day of 春节
        D(2026, 4, 6),  # Mon, 清明
        D(2026, 5, 5),  # Tue, 劳动节 (调休 for Sat May 9)
        D(2026, 6, 19),  # Fri, 端午
        D(2026, 9, 25),  # Fri, 中秋
        D(2026, 10, 1),  # Thu, 国庆
        D(2026, 10, 7),  # Wed, last day of 国庆
    ],
)
def test_weekdays_inside_2026_public_holidays_are_not_workdays(day: dt.date) -> None:
    assert day.weekday() < 5
    assert not is_workday(day)


@pytest.mark.parametrize(
    "day",
    [
        D(2026, 1, 4),  # Sun, 元旦 make-up
        D(2026, 2, 14),  # Sat, 春节 make-up
        D(2026, 2, 28),  # Sat, 春节 make-up
        D(2026, 5, 9),  # Sat, 劳动节 make-up
        D(2026, 9, 20),  # Sun, 国庆 make-up
        D(2026, 10, 10),  # Sat, 国庆 make-up
    ],
)
def test_2026_make_up_weekend_days_are_workdays(day: dt.date) -> None:
    assert day.weekday() >= 5
    assert is_workday(day)


def test_first_day_after_a_holiday_is_a_workday_again() -> None:
    assert is_workday(D(2026, 2, 24))  # Tue after 春节
    assert is_workday(D(2026, 10, 8))  # Thu after 国庆


def test_the_year_after_the_package_uses_the_statutory_days_and_no_make_up_days() -> None:
    """2027 has no notice yet: 国庆 Oct 1 (a Friday) is a holiday by the rules, the Saturday a rest
    day, and the office is closed on the holiday (ivr/routing/calendar.py says why no 调休)."""
    assert not is_workday(D(2027, 10, 1))  # Friday, 国庆 by the rules
    assert not is_workday(D(2027, 10, 2))  # Saturday
    assert is_workday(D(2027, 10, 4))  # Monday after: no bridging is guessed
    assert not OFFICE.is_open(at("2027-10-01T10:00"))
    assert OFFICE.is_open(at("2027-10-04T10:00"))


def test_importing_the_module_and_calendar_package_raises_no_warning() -> None:
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-X", "dev", "-c", "import ivr.routing.hours"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


# --- is_open ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "is_open"),
    [
        ("2026-11-24T08:29", False),  # before opening
        ("2026-11-24T08:30", True),  # start is inclusive
        ("2026-11-24T10:00", True),
        ("2026-11-24T11:59:59", True),
        ("2026-11-24T12:00", False),  # end is exclusive
        ("2026-11-24T12:30", False),  # lunch
        ("2026-11-24T14:30", True),
        ("2026-11-24T17:30", False),
        ("2026-11-24T18:00", False),  # evening
    ],
)
def test_ordinary_tuesday_follows_workday_hours_with_a_lunch_break(when: str, is_open: bool) -> None:
    assert OFFICE.is_open(at(when)) is is_open


def test_saturday_is_closed_without_restday_hours_and_open_with_them() -> None:
    assert not OFFICE.is_open(at("2026-11-28T10:00"))
    assert WEEKEND_DESK.is_open(at("2026-11-28T10:00"))
    assert not WEEKEND_DESK.is_open(at("2026-11-28T13:00"))  # rest-day hours end at 12:00


def test_spring_festival_2026_is_closed_on_its_weekdays() -> None:
    assert not OFFICE.is_open(at("2026-02-17T10:00"))  # Tue, 初一
    assert not OFFICE.is_open(at("2026-02-23T10:00"))  # Mon, last holiday day
    assert OFFICE.is_open(at("2026-02-24T10:00"))  # Tue, back to work


def test_national_day_2026_is_closed_on_its_weekdays() -> None:
    assert not OFFICE.is_open(at("2026-10-01T10:00"))  # Thu
    assert not OFFICE.is_open(at("2026-10-07T10:00"))  # Wed
    assert OFFICE.is_open(at("2026-10-08T10:00"))  # Thu, back to work


def test_public_holidays_use_restday_hours() -> None:
    assert WEEKEND_DESK.is_open(at("2026-10-01T10:00"))
    assert not WEEKEND_DESK.is_open(at("2026-10-01T15:00"))  # workday hours do not apply


@pytest.mark.parametrize("day", ["2026-02-14", "2026-02-28", "2026-09-20", "2026-10-10"])
def test_make_up_weekend_workday_is_open_in_workday_hours(day: str) -> None:
    assert OFFICE.is_open(at(f"{day}T10:00"))
    assert not OFFICE.is_open(at(f"{day}T12:30"))
    assert OFFICE.is_open(at(f"{day}T15:00"))
    # a make-up workday uses workday hours, not the rest-day ones
    assert WEEKEND_DESK.is_open(at(f"{day}T15:00"))


@pytest.mark.parametrize("when", ["2026-02-17T03:00", "2026-11-28T23:59:59", "2026-11-24T12:30", "2030-01-01T00:00"])
def test_always_open_line_is_open_at_any_time_including_holidays(when: str) -> None:
    assert OPERATORS.is_open(at(when))
    assert OPERATORS.next_open(at(when)) == at(when)


def test_range_ending_at_24_00_runs_until_midnight() -> None:
    evening = Hours("evening", parse_ranges("18:00-24:00"))
    assert evening.is_open(at("2026-11-24T23:59:59.999999"))
    assert not evening.is_open(at("2026-11-25T00:00"))  # next day starts closed


def test_timezone_aware_datetimes_are_refused() -> None:
    aware = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    with pytest.raises(ValueError, match="naive"):
        OFFICE.is_open(aware)
    with pytest.raises(ValueError, match="naive"):
        OFFICE.next_open(aware)


# --- next_open ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "opens"),
    [
        ("2026-11-24T10:00", "2026-11-24T10:00"),  # open now: now
        ("2026-11-24T07:00", "2026-11-24T08:30"),  # before opening: today
        ("2026-11-24T12:30", "2026-11-24T14:30"),  # lunch: this afternoon
        ("2026-11-24T18:00", "2026-11-25T08:30"),  # evening: tomorrow morning
        ("2026-11-27T18:00", "2026-11-30T08:30"),  # Friday evening: Monday
        ("2026-11-28T10:00", "2026-11-30T08:30"),  # Saturday: Monday
    ],
)
def test_next_open_on_ordinary_days(now: str, opens: str) -> None:
    assert OFFICE.next_open(at(now)) == at(opens)


def test_next_open_skips_the_whole_national_day_holiday() -> None:
    """Wed 2026-09-30 evening: Oct 1–7 are off, so the next opening is Thu Oct 8."""
    assert OFFICE.next_open(at("2026-09-30T18:00")) == at("2026-10-08T08:30")


def test_next_open_skips_spring_festival() -> None:
    assert OFFICE.next_open(at("2026-02-17T10:00")) == at("2026-02-24T08:30")


def test_next_open_lands_on_a_make_up_saturday() -> None:
    """Fri 2026-02-13 and Fri 2026-10-09 evenings: the next day is a make-up Saturday."""
    assert OFFICE.next_open(at("2026-02-13T18:00")) == at("2026-02-14T08:30")  # 春节 make-up
    assert OFFICE.next_open(at("2026-10-09T18:00")) == at("2026-10-10T08:30")  # 国庆 make-up


def test_next_open_on_a_holiday_uses_restday_hours() -> None:
    assert WEEKEND_DESK.next_open(at("2026-10-01T07:00")) == at("2026-10-01T09:00")
    assert WEEKEND_DESK.next_open(at("2026-10-01T13:00")) == at("2026-10-02T09:00")


def test_a_line_with_no_hours_never_opens() -> None:
    closed = Hours("closed", ())
    assert not closed.is_open(at("2026-11-24T10:00"))
    assert closed.next_open(at("2026-11-24T10:00")) is None


def test_next_open_gives_up_after_30_days() -> None:
    """A line open only on rest days, in a (hypothetical) stretch of 31+ workdays: None."""
    start = D(2026, 11, 24)
    weekends = (start + dt.timedelta(days=n) for n in range(31))
    # every weekend up to 12-24 a make-up workday, then a day off on Friday 12-25
    all_worked = Notice(2026, {D(2026, 12, 25): "test"}, frozenset(d for d in weekends if d.weekday() >= 5))
    calendar = Calendar({2026: all_worked})
    weekend_only = Hours("weekend-only", (), restdays=parse_ranges("09:00-12:00"), calendar=calendar)
    # the first rest day 2026-12-25 09:00 is 30 days + 15 h away: beyond the horizon
    assert weekend_only.next_open(at("2026-11-24T18:00")) is None
    # from 2026-11-25 10:00 it is 29 days 23 h away: found
    assert weekend_only.next_open(at("2026-11-25T10:00")) == at("2026-12-25T09:00")


# --- parse_ranges -------------------------------------------------------------------------


def test_parse_ranges_reads_a_day_with_a_lunch_break() -> None:
    assert parse_ranges("08:30-12:00,14:30-17:30") == (
        TimeRange(T(8, 30), T(12, 0)),
        TimeRange(T(14, 30), T(17, 30)),
    )


def test_parse_ranges_sorts_tolerates_spaces_and_full_width_input() -> None:
    expected = parse_ranges("08:30-12:00,14:30-17:30")
    assert parse_ranges(" 14:30 - 17:30 , 8:30-12:00 ") == expected
    assert parse_ranges("08：30－12：00，14：30－17：30") == expected


def test_parse_ranges_accepts_touching_ranges_and_24_00_as_an_end() -> None:
    assert parse_ranges("00:00-06:00,06:00-24:00") == (
        TimeRange(T(0, 0), T(6, 0)),
        TimeRange(T(6, 0), dt.time.max),
    )
    assert str(parse_ranges("22:00-24:00")[0]) == "22:00-24:00"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("25:00-26:00", "'25:00' is not a time of day"),
        ("08:00-12:60", "'12:60' is not a time of day"),
        ("noon-13:00", "'noon' is not a time of day"),
        ("8-12", "'8' is not a time of day"),
        ("12:00-08:30", "start 12:00 is not before end 08:30"),
        ("08:00-08:00", "start 08:00 is not before end 08:00"),
        ("22:00-06:00", "start 22:00 is not before end 06:00"),
        ("08:00-12:00,11:00-14:00", "ranges 08:00-12:00 and 11:00-14:00 overlap"),
        ("09:00-10:00,08:00-17:00", "ranges 08:00-17:00 and 09:00-10:00 overlap"),
        ("08:30", "'08:30' is not a range"),
        ("08:00-09:00-10:00", "'08:00-09:00-10:00' is not a range"),
        ("08:00-12:00,,14:00-17:00", "empty range between commas"),
        ("", "no time range given"),
        ("  ", "no time range given"),
        ("24:00-24:00", "'24:00' can only end a range"),
    ],
)
def test_parse_ranges_rejects_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_ranges(text)
    assert message in str(err.value)


# --- construction checks --------------------------------------------------------------------


def test_time_range_requires_start_before_end() -> None:
    with pytest.raises(ValueError, match="start 17:00 is not before end 09:00"):
        TimeRange(T(17, 0), T(9, 0))


def test_hours_refuse_overlapping_ranges_built_in_code() -> None:
    with pytest.raises(ValueError, match="'x' workdays: ranges 08:00-12:00 and 11:00-13:00 overlap"):
        Hours("x", (TimeRange(T(8), T(12)), TimeRange(T(11), T(13))))


def test_always_open_hours_take_no_ranges() -> None:
    with pytest.raises(ValueError, match="always_open takes no"):
        Hours("x", parse_ranges("08:00-12:00"), always_open=True)


def test_hours_are_frozen() -> None:
    with pytest.raises(AttributeError):
        OFFICE.always_open = True  # type: ignore[misc]
