"""Business hours of a route (or group of routes): "is this line open right now?".

Time: every ``datetime`` here is *naive local time* in Asia/Shanghai (UTC+8, no DST), the
wall clock the hours are written in. An aware datetime is refused with ValueError rather
than silently compared against local hours. The caller passes the clock in; nothing in
this module reads the current time.

Official workdays (工作日), make-up workdays (调休) included, come from the table's calendar
(ivr/routing/calendar.py: entered State Council notices, then ``chinese-calendar``, then a
provisional year computed from the statutory rules): a Saturday or Sunday that is an official
workday uses the *workday* hours, and a weekday inside a holiday uses the *rest-day* hours.
An ``Hours`` built without a calendar (tests, code with no table) uses the package and the rules.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

from ivr.routing.calendar import PACKAGE_ONLY, Calendar

__all__ = [
    "NEXT_OPEN_HORIZON",
    "Hours",
    "TimeRange",
    "is_workday",
    "parse_ranges",
]

NEXT_OPEN_HORIZON = dt.timedelta(days=30)
"""``Hours.next_open`` looks this far ahead at most, then answers None."""

END_OF_DAY = dt.time.max
"""How "24:00" is stored: a range ending at END_OF_DAY runs to midnight inclusive."""


def is_workday(day: dt.date) -> bool:
    """Is `day` an official workday by the package and the rules (no entered notice)?

    A make-up workday on a weekend (e.g. Saturday 2026-02-14) is a workday; a weekday inside
    a public holiday (e.g. Tuesday 2026-02-17, Spring Festival) is not.
    """
    return PACKAGE_ONLY.is_workday(day)


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
    calendar: Calendar = field(default=PACKAGE_ONLY, compare=False, repr=False)

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
        ranges = self.workdays if self.calendar.is_workday(day) else self.restdays
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
