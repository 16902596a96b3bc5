"""Business hours of a route (or group of routes): "is this line open right now?".

Time: every ``datetime`` here is *naive local time* in Asia/Shanghai (UTC+8, no DST), the
wall clock the hours are written in. An aware datetime is refused with ValueError rather
than silently compared against local hours. The caller passes the clock in; nothing in
this module reads the current time.

Official workdays (工作日) come from the State Council's yearly holiday notice
(国务院办公厅关于 YYYY 年部分节假日安排的通知), including make-up workdays (调休): a
Saturday or Sunday that is an official workday uses the *workday* hours, and a weekday
inside a holiday uses the *rest-day* hours.

Calendar source: the PyPI package ``chinese-calendar`` (1.11.0, data 2004–2026 incl. the
2026 notice with its 调休 days). Chosen over ``holidays`` (0.109, country "CN"), which has
the same 2026 days (checked day by day, both agree on all of 2026) and also knows 调休
workdays (``weekend_workdays`` / ``is_working_day``), because:

* ``chinese-calendar`` does one thing — official Chinese workdays, 调休 included — and has
  no dependencies (``holidays`` pulls in python-dateutil and six);
* its data has a hard edge: outside its years it raises instead of guessing. ``holidays``
  silently *estimates* later years (lunar dates, its own "observed" rule, no 调休), so a
  guess there looks exactly like data and ``calendar_covers`` could not be told honestly.
Neither package had 2027 data when this was written (2026-11); the 2027 notice arrives
with a new ``chinese-calendar`` release: upgrade it and 2027 is covered, nothing else
changes. The package is only used in this module (``_official_workday``), so it can be
swapped for another source without touching callers.

Beyond the data (``calendar_covers(day)`` is False): a day is a workday iff it is Monday to
Friday — no public holidays, no 调休. The first time each uncovered year is asked about,
a warning ``holiday_calendar_not_covering`` is logged (once per year per process, so the
per-call path does not flood the log), and ``hotline check`` should call
``calendar_covers`` for the coming weeks to warn the operator in advance.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

import chinese_calendar  # type: ignore[import-untyped]  # ships no type information
import structlog

__all__ = [
    "NEXT_OPEN_HORIZON",
    "Hours",
    "TimeRange",
    "calendar_covers",
    "calendar_source",
    "is_workday",
    "parse_ranges",
]

log = structlog.get_logger("ivr.routing.hours")

NEXT_OPEN_HORIZON = dt.timedelta(days=30)
"""``Hours.next_open`` looks this far ahead at most, then answers None."""

END_OF_DAY = dt.time.max
"""How "24:00" is stored: a range ending at END_OF_DAY runs to midnight inclusive."""

# The package's own notion of coverage: it refuses any year outside min..max of its holidays.
_FIRST_YEAR: int = min(day.year for day in chinese_calendar.holidays)
_LAST_YEAR: int = max(day.year for day in chinese_calendar.holidays)
_warned_years: set[int] = set()


def calendar_source() -> str:
    """Which calendar data answers is_workday, for `hotline check` and logs."""
    return f"chinese-calendar {chinese_calendar.__version__} ({_FIRST_YEAR}-{_LAST_YEAR})"


def calendar_covers(day: dt.date) -> bool:
    """True if the official schedule (holidays and 调休) for `day`'s year is known.

    False means is_workday(day) is only the Mon–Fri fallback.
    """
    return _FIRST_YEAR <= day.year <= _LAST_YEAR


def is_workday(day: dt.date) -> bool:
    """Is `day` an official Chinese workday? (调休 aware; Mon–Fri fallback beyond the data.)

    A make-up workday on a weekend (e.g. Saturday 2026-02-14) is a workday; a weekday inside
    a public holiday (e.g. Tuesday 2026-02-17, Spring Festival) is not.
    """
    if isinstance(day, dt.datetime):
        day = day.date()
    if calendar_covers(day):
        try:
            return _official_workday(day)
        except NotImplementedError:  # package disagrees with its own range: fall back below
            pass
    if day.year not in _warned_years:
        _warned_years.add(day.year)
        log.warning(
            "holiday_calendar_not_covering",
            year=day.year,
            calendar=calendar_source(),
            fallback="monday-friday are workdays, no public holidays or 调休",
        )
    return day.weekday() < 5


def _official_workday(day: dt.date) -> bool:
    """The one call into the calendar package; raises NotImplementedError outside its data."""
    return bool(chinese_calendar.is_workday(day))


def _fmt(t: dt.time) -> str:
    return "24:00" if t == END_OF_DAY else t.strftime("%H:%M")


@dataclass(frozen=True)
class TimeRange:
    """[start, end) on one day, naive local time. End exclusive; END_OF_DAY ("24:00") means
    until midnight. Ranges never wrap past midnight: write "22:00-24:00,00:00-06:00"."""

    start: dt.time
    end: dt.time

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError(f"{self}: times must be naive local time (Asia/Shanghai)")
        if not self.start < self.end:
            raise ValueError(f"start {_fmt(self.start)} is not before end {_fmt(self.end)}")

    def __str__(self) -> str:
        return f"{_fmt(self.start)}-{_fmt(self.end)}"

    def contains(self, t: dt.time) -> bool:
        return self.start <= t and (t < self.end or self.end == END_OF_DAY)

    def overlaps(self, other: TimeRange) -> bool:
        return self.start < other.end and other.start < self.end


def _check_no_overlap(ranges: Iterable[TimeRange]) -> None:
    ordered = sorted(ranges, key=lambda r: (r.start, r.end))
    for a, b in itertools.pairwise(ordered):
        if a.overlaps(b):
            raise ValueError(f"ranges {a} and {b} overlap")


@dataclass(frozen=True)
class Hours:
    """When a route or group of routes answers. All datetimes: naive Asia/Shanghai local time.

    workdays: ranges on official workdays, 调休 make-up workdays included.
    restdays: ranges on weekends and public holidays that are not make-up workdays;
              () means closed on those days.
    always_open: 24x7 (e.g. the 12345 operators); then both range tuples must be empty.
    """

    name: str
    workdays: tuple[TimeRange, ...]
    restdays: tuple[TimeRange, ...] = ()
    always_open: bool = False

    def __post_init__(self) -> None:
        if self.always_open and (self.workdays or self.restdays):
            raise ValueError(f"hours {self.name!r}: always_open takes no workday/restday ranges")
        for label, ranges in (("workdays", self.workdays), ("restdays", self.restdays)):
            try:
                _check_no_overlap(ranges)
            except ValueError as err:
                raise ValueError(f"hours {self.name!r} {label}: {err}") from None

    def ranges_on(self, day: dt.date) -> tuple[TimeRange, ...]:
        """The ranges that apply on `day`, sorted by start (empty for an always-open line)."""
        ranges = self.workdays if is_workday(day) else self.restdays
        return tuple(sorted(ranges, key=lambda r: r.start))

    def is_open(self, at: dt.datetime) -> bool:
        """Open at local time `at`? Start of a range is open, its end is closed."""
        _require_naive(at)
        if self.always_open:
            return True
        t = at.time()
        return any(r.contains(t) for r in self.ranges_on(at.date()))

    def next_open(self, at: dt.datetime) -> dt.datetime | None:
        """The earliest moment >= `at` when the line is open: `at` itself if open now, else the
        start of the next range (for "we open again at ..."). None if there is none within
        NEXT_OPEN_HORIZON (30 days), e.g. a line with no ranges at all."""
        _require_naive(at)
        if self.always_open:
            return at
        if not self.workdays and not self.restdays:
            return None
        limit = at + NEXT_OPEN_HORIZON
        t = at.time()
        for offset in range(NEXT_OPEN_HORIZON.days + 1):
            day = at.date() + dt.timedelta(days=offset)
            for r in self.ranges_on(day):
                if offset == 0:
                    if r.contains(t):
                        return at
                    if r.start < t:
                        continue
                candidate = dt.datetime.combine(day, r.start)
                return candidate if candidate <= limit else None
        return None


def _require_naive(at: dt.datetime) -> None:
    if at.tzinfo is not None:
        raise ValueError(f"{at.isoformat()} is timezone-aware; pass naive Asia/Shanghai local time")


_TIME = re.compile(r"([0-9]{1,2}):([0-9]{2})")


def _parse_time(text: str, *, is_end: bool) -> dt.time:
    m = _TIME.fullmatch(text)
    if m is None:
        raise ValueError(f"'{text}' is not a time of day (expected HH:MM, e.g. 08:30)")
    hour, minute = int(m[1]), int(m[2])
    if (hour, minute) == (24, 0):
        if is_end:
            return END_OF_DAY
        raise ValueError("'24:00' can only end a range, not start one (use 00:00)")
    if hour > 23 or minute > 59:
        raise ValueError(f"'{text}' is not a time of day")
    return dt.time(hour, minute)


def parse_ranges(text: str) -> tuple[TimeRange, ...]:
    """Parse "08:30-12:00,14:30-17:30" into TimeRanges sorted by start.

    HH:MM 24-hour times, end exclusive, "24:00" allowed as an end (= until midnight).
    Spaces are ignored, and full-width characters typed with a Chinese input method
    ("08：30－12：00，14：30－17：30") are read as their ASCII forms. Raises ValueError with a
    message naming the offending piece; the routes.yaml loader adds FILE:LINE.
    """
    normalized = unicodedata.normalize("NFKC", text)
    pieces = [p.strip() for p in normalized.split(",")]
    if pieces == [""]:
        raise ValueError("no time range given (expected e.g. 08:30-12:00,14:30-17:30)")
    ranges: list[TimeRange] = []
    for piece in pieces:
        if not piece:
            raise ValueError(f"empty range between commas in '{text}'")
        start_text, dash, end_text = piece.partition("-")
        if not dash or "-" in end_text:
            raise ValueError(f"'{piece}' is not a range (expected START-END, e.g. 08:30-12:00)")
        start = _parse_time(start_text.strip(), is_end=False)
        end = _parse_time(end_text.strip(), is_end=True)
        ranges.append(TimeRange(start, end))
    _check_no_overlap(ranges)
    return tuple(sorted(ranges, key=lambda r: r.start))
