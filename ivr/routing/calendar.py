"""Official workdays and public holidays: "is this date a workday, or which holiday is it?".

Three sources, in order of precedence, one per year (a year is answered by one source whole):

1. **notice** — the State Council's yearly notice (国务院办公厅关于 YYYY 年部分节假日安排的通知) as a
   route editor entered it under ``calendar.notices`` in routes.yaml: every 放假 day with its
   holiday's name and every make-up workday (上班). Entered notices beat the package, so a notice
   published after our last release (or a correction) is live with a reload, not an upgrade.
2. **package** — ``chinese-calendar`` (data 2004-2026 in 1.11.0) for the years it has. Chosen over
   ``holidays`` (country "CN") because its data has a hard edge: outside its years it raises, where
   ``holidays`` silently estimates later years — a guess that looks exactly like data. Here a guess
   is made only in step 3, and says so.
3. **provisional** — for the year after the last year with a notice or package data, the days the
   law itself fixes (全国年节及纪念日放假办法, as revised in 2024, in force from 2025): 元旦 1 day,
   春节 4 days (除夕 and 正月初一..初三), 清明 1 day (the day of the 清明 solar term), 劳动节 2 days
   (May 1-2), 端午 1 day (五月初五), 中秋 1 day (八月十五), 国庆 3 days (Oct 1-3). Lunar dates and the
   solar term come from ``lunar-python`` (MIT, pure Python; ``lunardate`` and ``zhdate`` are GPL).
   What the notice adds each year — moving days to bridge weekends (调休) and the make-up
   workdays that pay for it — follows no rule and is NOT guessed: a provisional year has every
   other Monday-Friday as a workday. Provisional days are logged (``holiday_calendar_provisional``,
   once per year per process) and shown by ``hotline check`` until the notice is entered.

Only one year is ever provisional past the last real one: it bridges the weeks between a new year
arriving and its notice being entered, and a second year of guesses would hide a forgotten notice.
``covered_until`` is the last day any source answers for; ``hotline check`` fails when that is
less than 60 days away, and the controller exports it as a gauge (alert 30 days before).
Before the package's first year there is nothing: Monday-Friday, logged as not covered.

Local closures (``calendar.closures``): a unit closed on given days, or on special hours for a
period, e.g. a bureau moving offices. They apply to that unit's routes only, above their hours.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

import chinese_calendar  # type: ignore[import-untyped]  # ships no type information
import structlog
import yaml
from lunar_python import Lunar  # type: ignore[import-untyped]  # ships no type information

from ivr.routing.yamlsrc import Node

if TYPE_CHECKING:
    from ivr.routing.hours import Hours

__all__ = [
    "PACKAGE_FIRST_YEAR",
    "PACKAGE_LAST_YEAR",
    "STATUTORY_RULES",
    "COVERAGE_DAYS",
    "Calendar",
    "CalendarCheck",
    "Closure",
    "Day",
    "Notice",
    "Source",
    "parse_closures",
    "parse_notices",
    "provisional_holidays",
]

log = structlog.get_logger("ivr.routing.calendar")

# The package's own notion of coverage: it refuses any year outside min..max of its holidays.
PACKAGE_FIRST_YEAR: int = min(day.year for day in chinese_calendar.holidays)
PACKAGE_LAST_YEAR: int = max(day.year for day in chinese_calendar.holidays)

STATUTORY_RULES = (
    "全国年节及纪念日放假办法 (2024 revision): 元旦 Jan 1; 春节 除夕 + 正月初一..初三; 清明 the solar term; "
    "劳动节 May 1-2; 端午 五月初五; 中秋 八月十五; 国庆 Oct 1-3"
)
NOT_GUESSED = (
    "weekend bridging (调休) and make-up workdays are set by each year's notice and cannot be computed: "
    "until it is entered, every other Monday-Friday is a workday"
)

_warned: set[tuple[str, int]] = set()

COVERAGE_DAYS = 60
"""`hotline check` fails when the calendar does not reach this many days past today."""


class Source(enum.StrEnum):
    NOTICE = "notice"
    PACKAGE = "package"
    PROVISIONAL = "provisional"
    NONE = "none"  # no source: Monday-Friday


@dataclass(frozen=True)
class Day:
    """What the calendar says about one date."""

    date: dt.date
    workday: bool
    holiday: str | None  # the holiday's name on a day off that is one (e.g. "春节"), else None
    source: Source


@dataclass(frozen=True)
class Notice:
    """One year's State Council notice as entered: 放假 days by holiday name, and 上班 days."""

    year: int
    holidays: Mapping[dt.date, str]
    workdays: frozenset[dt.date] = frozenset()
    reference: str = ""  # what the editor copied it from, e.g. 国办发明电〔2025〕7号

    def __post_init__(self) -> None:
        object.__setattr__(self, "holidays", MappingProxyType(dict(self.holidays)))
        outside = sorted(d for d in (*self.holidays, *self.workdays) if d.year != self.year)
        if outside:
            raise ValueError(f"notice {self.year}: {outside[0]} is not in {self.year}")
        both = sorted(set(self.holidays) & self.workdays)
        if both:
            raise ValueError(f"notice {self.year}: {both[0]} is both a holiday and a make-up workday")

    def __hash__(self) -> int:
        return hash((self.year, frozenset(self.holidays.items()), self.workdays))

    def summary(self) -> str:
        """The notice in one line, as an editor would check it: 元旦 01-01..01-03; 春节 ...; 上班 02-14."""
        by_name: dict[str, list[dt.date]] = {}
        for day, name in sorted(self.holidays.items()):
            by_name.setdefault(name, []).append(day)
        parts = [f"{name} {_span(days)}" for name, days in by_name.items()]
        if self.workdays:
            parts.append(f"上班 {_span(sorted(self.workdays))}")
        return "; ".join(parts) or "no days"


@dataclass(frozen=True)
class Closure:
    """A unit closed on `start`..`end` (inclusive), or open on special `hours` then."""

    unit: str
    start: dt.date
    end: dt.date
    hours: Hours | None = None  # None: closed all day
    reason: str = ""

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"closure of {self.unit}: ends {self.end} before it starts {self.start}")

    def covers(self, day: dt.date) -> bool:
        return self.start <= day <= self.end


def provisional_holidays(year: int) -> dict[dt.date, str]:
    """The days off the law fixes in `year` (2025 on), by holiday name; nothing about 调休."""
    if year < 2025:
        raise ValueError(f"the 2024 revision of the holiday rules applies from 2025, not {year}")
    days: dict[dt.date, str] = {dt.date(year, 1, 1): "元旦"}
    new_year = _solar(Lunar.fromYmd(year, 1, 1))
    for offset in range(-1, 3):  # 除夕 (the last day of the lunar year, 29th or 30th) .. 初三
        days[new_year + dt.timedelta(days=offset)] = "春节"
    qingming = Lunar.fromYmd(year, 3, 1).getJieQiTable()["清明"]  # 清明 always falls in lunar month 2 or 3
    days[dt.date(qingming.getYear(), qingming.getMonth(), qingming.getDay())] = "清明节"
    days[dt.date(year, 5, 1)] = days[dt.date(year, 5, 2)] = "劳动节"
    days[_solar(Lunar.fromYmd(year, 5, 5))] = "端午节"
    for n in (1, 2, 3):
        days[dt.date(year, 10, n)] = "国庆节"
    mid_autumn = _solar(Lunar.fromYmd(year, 8, 15))
    # 中秋 can fall on Oct 1-3 (2028: Oct 3); the notice then joins the two, here the day just has both.
    days[mid_autumn] = "中秋节、国庆节" if mid_autumn in days else "中秋节"
    return days


def _solar(lunar: Lunar) -> dt.date:
    solar = lunar.getSolar()
    return dt.date(solar.getYear(), solar.getMonth(), solar.getDay())


# Every call asks about today: the package's answer for a date never changes while we run, and its
# own checks were 1.5 % of the controller's CPU at 48 calls/s (BENCHMARKS.md, 2026-12-05 profile).
@functools.lru_cache(maxsize=32)
def _package_day(day: dt.date) -> Day:
    on, name = chinese_calendar.get_holiday_detail(day)
    workday = bool(chinese_calendar.is_workday(day))
    holiday = None
    if on and name is not None:
        holiday = _PACKAGE_NAMES.get(str(name), str(name))
    return Day(day, workday, None if workday else holiday, Source.PACKAGE)


# chinese-calendar names its holidays in English (Holiday enum values); ours are the notice's.
_PACKAGE_NAMES = {
    "New Year's Day": "元旦",
    "Spring Festival": "春节",
    "Tomb-sweeping Day": "清明节",
    "Labour Day": "劳动节",
    "Dragon Boat Festival": "端午节",
    "National Day": "国庆节",
    "Mid-autumn Festival": "中秋节",
    "Anti-Fascist 70th Day": "中国人民抗日战争暨世界反法西斯战争胜利70周年纪念日",
}


@dataclass(frozen=True)
class Calendar:
    """The official calendar of a routing table: entered notices over the package over the rules."""

    notices: Mapping[int, Notice] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "notices", MappingProxyType(dict(self.notices)))

    def __hash__(self) -> int:
        return hash(frozenset(self.notices.items()))

    @property
    def last_confirmed_year(self) -> int:
        """The last year answered by a notice or the package (not a guess)."""
        return max(PACKAGE_LAST_YEAR, *self.notices) if self.notices else PACKAGE_LAST_YEAR

    @property
    def covered_until(self) -> dt.date:
        """The last day any source answers for (the provisional year's Dec 31)."""
        return dt.date(self.last_confirmed_year + 1, 12, 31)

    @property
    def confirmed_until(self) -> dt.date:
        """The last day before the first provisional one (what is known, not computed)."""
        year = PACKAGE_LAST_YEAR
        while year + 1 in self.notices:
            year += 1
        return dt.date(year, 12, 31)

    def source(self, year: int) -> Source:
        if year in self.notices:
            return Source.NOTICE
        if PACKAGE_FIRST_YEAR <= year <= PACKAGE_LAST_YEAR:
            return Source.PACKAGE
        if PACKAGE_LAST_YEAR < year <= self.last_confirmed_year + 1:
            return Source.PROVISIONAL
        return Source.NONE

    def covers(self, day: dt.date) -> bool:
        return self.source(day.year) is not Source.NONE

    def provisional_years(self, start: dt.date, end: dt.date) -> list[int]:
        """Years between `start` and `end` (inclusive) answered by the rules, not a notice."""
        return [y for y in range(start.year, end.year + 1) if self.source(y) is Source.PROVISIONAL]

    def day(self, day: dt.date) -> Day:
        if isinstance(day, dt.datetime):
            day = day.date()
        source = self.source(day.year)
        if source is Source.NOTICE:
            notice = self.notices[day.year]
            if day in notice.workdays:
                return Day(day, True, None, source)
            if day in notice.holidays:
                return Day(day, False, notice.holidays[day], source)
            return Day(day, day.weekday() < 5, None, source)
        if source is Source.PACKAGE:
            try:
                return _package_day(day)
            except NotImplementedError:  # the package disagrees with its own range: say so below
                source = Source.NONE
        if source is Source.PROVISIONAL:
            _warn_once("holiday_calendar_provisional", day.year, rules=STATUTORY_RULES, not_guessed=NOT_GUESSED)
            name = _provisional(day.year).get(day)
            return Day(day, name is None and day.weekday() < 5, name, source)
        _warn_once(
            "holiday_calendar_not_covering", day.year, fallback="monday-friday are workdays, no public holidays or 调休"
        )
        return Day(day, day.weekday() < 5, None, Source.NONE)

    def is_workday(self, day: dt.date) -> bool:
        """Is `day` an official workday? A 调休 Saturday is; a weekday in a holiday is not."""
        return self.day(day).workday

    def holidays(self, year: int) -> Iterator[Day]:
        """Every day off in `year` that is a named holiday (not plain weekends), in date order."""
        day = dt.date(year, 1, 1)
        while day.year == year:
            info = self.day(day)
            if info.holiday is not None:
                yield info
            day += dt.timedelta(days=1)

    def describe(self) -> str:
        """One line for `hotline check` and logs: which source answers which years."""
        parts = [f"chinese-calendar {chinese_calendar.__version__} {PACKAGE_FIRST_YEAR}-{PACKAGE_LAST_YEAR}"]
        if self.notices:
            parts.append("notices " + ", ".join(str(y) for y in sorted(self.notices)))
        years = range(PACKAGE_LAST_YEAR + 1, self.last_confirmed_year + 2)
        provisional = [y for y in years if self.source(y) is Source.PROVISIONAL]
        if provisional:
            parts.append("PROVISIONAL " + ", ".join(str(y) for y in provisional))
        return f"{'; '.join(parts)}; covered until {self.covered_until}"

    def check(self, today: dt.date, days: int = COVERAGE_DAYS) -> CalendarCheck:
        """What `hotline check` says about the calendar on `today` (Beijing date)."""
        horizon = today + dt.timedelta(days=days)
        notes: list[str] = []
        for year in self.provisional_years(today, min(horizon, self.covered_until)):
            by_name: dict[str, list[dt.date]] = {}
            for day, name in sorted(_provisional(year).items()):
                by_name.setdefault(name, []).append(day)
            days_off = ", ".join(f"{name} {_span(days)}" for name, days in by_name.items())
            notes.append(
                f"{year} is PROVISIONAL (no State Council notice entered): statutory days off only — {days_off}; "
                f"{NOT_GUESSED}; enter the {year} notice under calendar.notices"
            )
        failure = None
        if self.covered_until < horizon:
            failure = (
                f"the holiday calendar ends {self.covered_until}, before today + {days} days ({horizon}): "
                f"enter the {self.covered_until.year} notice under calendar.notices (or upgrade chinese-calendar)"
            )
        return CalendarCheck(f"calendar: {self.describe()}", notes, failure)


@dataclass(frozen=True)
class CalendarCheck:
    summary: str  # which source answers which years, and the last day covered
    provisional: list[str]  # one note per provisional year within the horizon
    failure: str | None  # set when coverage ends within the horizon


def _span(days: list[dt.date]) -> str:
    """Sorted days as runs: 02-05..02-08,02-14."""
    runs = []
    start = prev = days[0]
    for day in [*days[1:], None]:
        if day is not None and day == prev + dt.timedelta(days=1):
            prev = day
            continue
        runs.append(f"{start:%m-%d}" if start == prev else f"{start:%m-%d}..{prev:%m-%d}")
        if day is not None:
            start = prev = day
    return ",".join(runs)


_provisional_cache: dict[int, dict[dt.date, str]] = {}


def _provisional(year: int) -> dict[dt.date, str]:
    if year not in _provisional_cache:
        _provisional_cache[year] = provisional_holidays(year)
    return _provisional_cache[year]


def _warn_once(event: str, year: int, **details: str) -> None:
    # Once per year per process: the per-call path asks about the same days all day long.
    if (event, year) not in _warned:
        _warned.add((event, year))
        log.warning(event, year=year, **details)


PACKAGE_ONLY = Calendar()
"""The calendar of a table with no notices entered (and of code that has no table)."""


# -- routes.yaml `calendar:` (read by ivr/routing/routes.py; problems carry FILE:LINE) ---------------------------

_YEARS = (2000, 2099)  # what the lunar library and the statutory rules can answer for


def parse_notices(node: Node) -> Calendar:
    """``calendar.notices``: {YEAR: {reference, holidays: {NAME: [days]}, workdays: [days]}}.

    A day is ``2027-01-01`` or a range ``2027-02-05..2027-02-11`` (both ends included). Every
    problem is reported at its line; a year with a problem is left out (the load fails anyway).
    """
    notices: dict[int, Notice] = {}
    for year_text, ynode in node.items():
        if not year_text.isdigit() or not _YEARS[0] <= int(year_text) <= _YEARS[1]:
            ynode.problem(f"{node.name}: '{year_text}' is not a year {_YEARS[0]}-{_YEARS[1]}")
            continue
        notice = _parse_notice(int(year_text), ynode)
        if notice is not None:
            notices[notice.year] = notice
    return Calendar(notices)


def _parse_notice(year: int, ynode: Node) -> Notice | None:
    fields = ynode.mapping(allowed={"reference", "holidays", "workdays"}, required={"holidays"}) or {}
    reference = (fields["reference"].string() or "") if "reference" in fields else ""
    seen: dict[dt.date, tuple[int, str]] = {}  # day -> (line, holiday name or "workday") where first listed
    ok = True

    def take(day: dt.date, at: Node, what: str) -> bool:
        if day.year != year:
            at.problem(f"{at.name}: {day} is not in {year} (a notice lists only days of its own year)")
            return False
        if day in seen:
            line, first = seen[day]
            if (first == "workday") == (what == "workday"):
                at.problem(f"{at.name}: {day} is listed twice (first at line {line})")
            else:
                holiday = first if first != "workday" else what
                at.problem(f"{at.name}: {day} is both a make-up workday and a holiday ({holiday}, line {line})")
            return False
        seen[day] = (at.line, what)
        return True

    holidays: dict[dt.date, str] = {}
    for name, hnode in fields["holidays"].items() if "holidays" in fields else ():
        for day, at in _days(hnode):
            if take(day, at, name):
                holidays[day] = name
            else:
                ok = False
    workdays: set[dt.date] = set()
    for day, at in _days(fields["workdays"]) if "workdays" in fields else ():
        if take(day, at, "workday"):
            workdays.add(day)
        else:
            ok = False
    if not ok or "holidays" not in fields:
        return None
    return Notice(year, holidays, frozenset(workdays), reference)


def parse_closures(node: Node, units: set[str], hours: Mapping[str, Hours]) -> tuple[Closure, ...]:
    """``calendar.closures``: [{unit, dates: [days], hours: NAME (omit: closed), reason}]."""
    closures: list[Closure] = []
    seen: dict[tuple[str, dt.date], int] = {}
    for item in node.sequence() or []:
        fields = item.mapping(allowed={"unit", "dates", "hours", "reason"}, required={"unit", "dates"}) or {}
        unit = fields["unit"].string() if "unit" in fields else None
        if unit is not None and unit not in units:
            fields["unit"].problem(
                f"{fields['unit'].name}: '{unit}' is not the unit of any route (units: {', '.join(sorted(units))})"
            )
            unit = None
        special: Hours | None = None
        if "hours" in fields:
            name = fields["hours"].string()
            if name is not None and name not in hours:
                fields["hours"].problem(
                    f"{fields['hours'].name}: unknown hours '{name}' (defined: {', '.join(sorted(hours)) or 'none'})"
                )
                unit = None
            elif name is not None:
                special = hours[name]
        reason = (fields["reason"].string() or "") if "reason" in fields else ""
        days = _days(fields["dates"]) if "dates" in fields else []
        for day, at in days:
            if unit is not None and (unit, day) in seen:
                at.problem(f"{at.name}: {unit} is already closed or on special hours on {day} (line {seen[unit, day]})")
                unit = None
            elif unit is not None:
                seen[unit, day] = at.line
        if unit is None or not days:
            continue
        for start, end in _runs(sorted(day for day, _ in days)):
            closures.append(Closure(unit, start, end, special, reason))
    return tuple(closures)


def _days(node: Node) -> list[tuple[dt.date, Node]]:
    """The days a list (or a single value) names, each with the node it came from."""
    items = node.sequence() if isinstance(node.node, yaml.SequenceNode) else [node]
    out: list[tuple[dt.date, Node]] = []
    for item in items or []:
        text = item.string()
        if text is None:
            continue
        first, dots, last = text.partition("..")
        try:
            start = _date(first.strip())
            end = _date(last.strip()) if dots else start
        except ValueError as exc:
            item.problem(f"{item.name}: {exc}")
            continue
        if end < start:
            item.problem(f"{item.name}: '{text}' ends before it starts")
            continue
        if (end - start).days > 366:
            item.problem(f"{item.name}: '{text}' is longer than a year")
            continue
        out.extend((start + dt.timedelta(days=n), item) for n in range((end - start).days + 1))
    return out


def _date(text: str) -> dt.date:
    # Exactly YYYY-MM-DD, as everywhere in routes.yaml (fromisoformat alone takes 20270101 too).
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            pass
    raise ValueError(f"'{text}' is not a date like 2027-01-01 or a range like 2027-02-05..2027-02-11")


def _runs(days: list[dt.date]) -> Iterator[tuple[dt.date, dt.date]]:
    """Consecutive days as (first, last) runs."""
    start = prev = days[0]
    for day in days[1:]:
        if day != prev + dt.timedelta(days=1):
            yield start, prev
            start = day
        prev = day
    yield start, prev
