"""routes.yaml -> a frozen, validated RouteTable.

This is the only module that reads routes.yaml. Everything downstream works on these typed
objects; a file that loads has been checked for every rule we know, and a file that does not
load raises RoutesError listing every problem as FILE:LINE: message.

Safety rule enforced here: a dial string is only ever built from a number written in this file
(`Route.dial_string`, `Operators.dial_string`), checked against NUMBER_PATTERN. Digits a caller
presses select among these routes; they never become part of a dial string.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

from ivr.errors import RoutesError
from ivr.operators.seats import Seat
from ivr.outbound.policy import OutboundPolicy
from ivr.recording.policy import RecordingPolicy, parse_recording
from ivr.routing import notices
from ivr.routing.calendar import PACKAGE_ONLY, Calendar, Closure, parse_closures, parse_notices
from ivr.routing.hours import Hours, parse_ranges
from ivr.routing.notices import Notice
from ivr.routing.yamlsrc import Node, Source
from ivr.tickets import POLICY_KINDS, DeadlinePolicy

# Published numbers in the notice are 5-digit short numbers or 7-digit local numbers; allow
# 3..15 digits (E.164 max) so area-coded or extension numbers also fit. Digits only: no '+',
# no '#', nothing a dial string could interpret.
NUMBER_PATTERN = r"[0-9]{3,15}"
ID_PATTERN = r"[a-z][a-z0-9_-]{0,39}"
ENDPOINT_PATTERN = r"[A-Za-z][A-Za-z0-9_-]{0,39}"
MENU_KEYS = tuple("123456789")  # '0' is always the operators, '*' repeats, '#' is reserved


class Mode(enum.StrEnum):
    MERGE = "merge"  # 7-digit department number, reached only through the 12345 menu
    TRANSFER = "transfer"  # dual-track short number: dialled directly and via the 12345 menu
    INTERCONNECT = "interconnect"  # short number handed off to a partner platform


class Intake(enum.StrEnum):
    """How a 12345 caller is taken in (issue 16): the national standard discourages menus at intake, the
    design card asks for them, so both are supported and the report shows time to a person for each."""

    MENU = "menu"  # the menu first; '0', silence or a failed line lead to the operators
    HUMAN_FIRST = "human-first"  # in the operators' queue at once; the menu plays as a shortcut while waiting


@dataclass(frozen=True)
class Trunk:
    name: str
    endpoint: str  # the PJSIP endpoint in dialplan/pjsip.conf


@dataclass(frozen=True)
class Target:
    """One more number to ring when the route's own line fails (overflow chain)."""

    number: str
    trunk: Trunk
    ring_seconds: int

    @property
    def dial_string(self) -> str:
        return f"PJSIP/{self.number}@{self.trunk.endpoint}"


@dataclass(frozen=True)
class Partner:
    """A partner platform of interconnect lines: its webhook gets each hand-off's context."""

    name: str
    webhook: str  # URL
    secret_env: str  # environment variable holding the HMAC secret (never in this file)


@dataclass(frozen=True)
class Route:
    id: str
    unit: str
    line_name: str
    number: str  # the published number (what citizens know)
    dial: str  # what we send on the trunk; defaults to `number`
    mode: Mode
    effective: dt.date
    trunk: Trunk
    ring_seconds: int
    label: str  # how the menu names it
    hours: Hours | None = None  # None: the line is always staffed
    overflow: tuple[Target, ...] = ()  # rung in order when the line is busy or unanswered
    partner: Partner | None = None  # interconnect routes: whose webhook hears of the hand-off
    closures: tuple[Closure, ...] = ()  # calendar.closures of its unit: closed, or special hours, on those days

    @property
    def dial_string(self) -> str:
        return f"PJSIP/{self.dial}@{self.trunk.endpoint}"

    @property
    def targets(self) -> tuple[Target, ...]:
        """The whole ring chain: the line itself, then its overflow targets."""
        return (Target(self.dial, self.trunk, self.ring_seconds), *self.overflow)

    def open_at(self, when: dt.datetime) -> bool:
        for closure in self.closures:  # a local closure overrides the line's own hours
            if closure.covers(when.date()):
                return closure.hours is not None and closure.hours.is_open(when)
        return self.hours is None or self.hours.is_open(when)

    def live_at(self, when: dt.datetime) -> bool:
        return when.date() >= self.effective


@dataclass(frozen=True)
class Operators:
    """The 12345 centre's human operators: where '0', timeouts and failed transfers go.

    With `seats`, callers wait in the controller's queue (ivr/operators/queue.py) for the
    longest-idle seat; without, the operators' group `number` is rung directly.
    """

    number: str
    trunk: Trunk
    ring_seconds: int
    seats: tuple[Seat, ...] = ()
    max_wait_seconds: int = 120
    wrap_up_seconds: int = 0  # 话后处理: after a call a seat gets no new one for this long (or until "ready")

    @property
    def dial_string(self) -> str:
        return f"PJSIP/{self.number}@{self.trunk.endpoint}"


TRANSFER_WAYS = ("consult", "three-way", "blind")


@dataclass(frozen=True)
class EmergencyLine:
    """An emergency service (110/119/120) an operator brings into the call: 12345↔110 linkage."""

    id: str
    name: str
    number: str
    trunk: Trunk
    ring_seconds: int = 30
    transfer: str = "three-way"  # how the operator's one-key transfer joins it (TRANSFER_WAYS)

    @property
    def dial_string(self) -> str:
        return f"PJSIP/{self.number}@{self.trunk.endpoint}"


@dataclass(frozen=True)
class MenuOption:
    """A key in a menu: a route, a sub-menu, "type the old hotline number" (number entry), or
    "查询办理进度" (progress: the caller asks how a ticket stands, ivr.citizen.progress)."""

    key: str
    label: str
    route_id: str | None = None
    menu_id: str | None = None
    number_entry: bool = False
    progress: bool = False

    @property
    def spoken(self) -> str:
        """What the menu says for this option: its prompt file's text ("公安局请按1")."""
        return f"{self.label}请按{self.key}"


@dataclass(frozen=True)
class Menu:
    id: str
    intro: str
    options: tuple[MenuOption, ...]

    @property
    def prompt_name(self) -> str:
        return f"menu-{self.id}"


@dataclass(frozen=True)
class MenuPolicy:
    key_timeout_seconds: int
    max_attempts: int
    max_depth: int = 2  # GB/T 33358-2016: shallow menus; `check` warns beyond this
    max_options: int = 6  # options per menu (number entry not counted)
    max_prompt_seconds: int = 25  # estimated speaking time of one menu prompt
    # A caller who has pressed no key this long into the menu is put through to a person, mid-prompt if need
    # be: with the 'to-operator' prompt they are in the operators' queue within 20 s of arrival (issue 16),
    # however long the menu takes to say (the shipped main menu takes ~27 s).
    silent_caller_seconds: int = 15
    intake: Intake = Intake.MENU


@dataclass(frozen=True)
class RouteTable:
    source: str
    digest: str  # short sha256 of the file: the table's version in logs, metrics and the call log
    hotline_number: str
    operators: Operators
    policy: MenuPolicy
    trunks: dict[str, Trunk]
    routes: dict[str, Route]
    menus: dict[str, Menu]
    entries: frozenset[str] = field(default=frozenset())  # every number that may enter Stasis
    deadlines: DeadlinePolicy = field(default_factory=DeadlinePolicy)  # 限时办结
    calendar: Calendar = PACKAGE_ONLY  # workdays and holidays: entered notices, the package, the rules
    closures: tuple[Closure, ...] = ()  # every unit's local closures (each route also holds its own)
    # Where things stand in routes.yaml, for checks made after loading (`hotline check --dialplan`).
    hotline_line: int = field(default=0, compare=False)
    calendar_line: int = field(default=0, compare=False)  # where `calendar:` is (0: not there)
    route_lines: dict[str, int] = field(default_factory=dict, compare=False)  # route id -> line
    notices: tuple[Notice, ...] = ()  # dated announcements (ivr.routing.notices)
    emergency: tuple[EmergencyLine, ...] = ()  # lines an operator may transfer to besides the routes
    outbound: OutboundPolicy | None = None  # calls the hotline places: 漏接回拨, 回访 (None: it places none)
    recording: RecordingPolicy = field(default_factory=RecordingPolicy)  # 全程录音 (ivr.recording.policy)
    text: str = field(default="", repr=False, compare=False)  # the file as loaded: kept in the routes history

    @property
    def main_menu(self) -> Menu:
        return self.menus["main"]

    def direct_route(self, entry: str) -> Route | None:
        """The route a short number reaches when dialled directly (dual-track and interconnect)."""
        for route in self.routes.values():
            if route.number == entry and route.mode is not Mode.MERGE:
                return route
        return None

    def route_by_number(self, number: str) -> Route | None:
        """The route whose published number a caller typed (number entry); None if there is none."""
        for route in self.routes.values():
            if route.number == number:
                return route
        return None

    def dialable_numbers(self) -> frozenset[str]:
        """Every number the controller may ever dial: the whole whitelist."""
        return frozenset(
            {t.number for r in self.routes.values() for t in r.targets}
            | {self.operators.number}
            | {line.number for line in self.emergency}
        )


def digest_of(text: str) -> str:
    """A table's version: a short sha256 of the file's text (logs, metrics, the call log, history)."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def load(path: str | Path) -> RouteTable:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RoutesError.single(str(path), 1, "file not found") from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1  # where the editor shows the bad byte
        message = f"not UTF-8 text: byte 0x{exc.object[exc.start]:02x} ({exc.reason})"
        raise RoutesError.single(str(path), line, message) from None
    except OSError as exc:
        raise RoutesError.single(str(path), 1, f"cannot read: {exc.strerror}") from None
    return parse(text, str(path))


def parse(text: str, filename: str = "routes.yaml") -> RouteTable:
    src = Source(filename, text)
    top = src.root().mapping(
        allowed={
            "version",
            "hotline",
            "trunks",
            "operators",
            "menu_policy",
            "hours",
            "default_hours",
            "partners",
            "deadlines",
            "calendar",
            "routes",
            "menus",
            "notices",
            "emergency",
            "outbound",
            "recording",
        },
        required={"version", "hotline", "trunks", "operators", "routes", "menus"},
    )
    if top is None:
        src.raise_if_problems()
        raise AssertionError("unreachable")

    if "version" in top:
        top["version"].integer(1, 1)  # only schema 1 exists; the check reports anything else

    hotline_number, hotline_line = "12345", 0
    if "hotline" in top:
        hotline = top["hotline"].mapping(allowed={"number"}, required={"number"}) or {}
        if "number" in hotline:
            hotline_number = hotline["number"].string(NUMBER_PATTERN, "a phone number") or hotline_number
            hotline_line = hotline["number"].line

    trunks: dict[str, Trunk] = {}
    for name, node in top["trunks"].items() if "trunks" in top else ():
        fields = node.mapping(allowed={"endpoint"}, required={"endpoint"}) or {}
        endpoint = (
            fields["endpoint"].string(ENDPOINT_PATTERN, "a PJSIP endpoint name") if "endpoint" in fields else None
        )
        if endpoint:
            trunks[name] = Trunk(name, endpoint)

    def trunk_ref(node: Node) -> Trunk | None:
        name = node.string()
        if name is None:
            return None
        if name not in trunks:
            node.problem(f"{node.name}: unknown trunk '{name}' (defined: {', '.join(sorted(trunks)) or 'none'})")
            return None
        return trunks[name]

    operators: Operators | None = None
    if "operators" in top:
        fields = (
            top["operators"].mapping(
                allowed={"number", "trunk", "ring_seconds", "seats", "max_wait_seconds", "wrap_up_seconds"},
                required={"number", "trunk"},
            )
            or {}
        )
        number = fields["number"].string(NUMBER_PATTERN, "a phone number") if "number" in fields else None
        trunk = trunk_ref(fields["trunk"]) if "trunk" in fields else None
        ring = fields["ring_seconds"].integer(5, 120) if "ring_seconds" in fields else 30
        wait = fields["max_wait_seconds"].integer(10, 1800) if "max_wait_seconds" in fields else 120
        wrap_up = fields["wrap_up_seconds"].integer(0, 600) if "wrap_up_seconds" in fields else 0
        seats: list[Seat] = []
        for item in fields["seats"].sequence() or [] if "seats" in fields else []:
            sfields = item.mapping(allowed={"id", "endpoint"}, required={"id", "endpoint"}) or {}
            sid = sfields["id"].string(ID_PATTERN, "a seat id") if "id" in sfields else None
            endpoint = (
                sfields["endpoint"].string(ENDPOINT_PATTERN, "a PJSIP endpoint name") if "endpoint" in sfields else None
            )
            if sid and any(seat.name == sid for seat in seats):
                sfields["id"].problem(f"duplicate seat id '{sid}'")
            elif sid and endpoint:
                seats.append(Seat(sid, f"PJSIP/{endpoint}"))
        if number and trunk and ring and wait:
            operators = Operators(number, trunk, ring, tuple(seats), wait, wrap_up or 0)

    policy = MenuPolicy(key_timeout_seconds=5, max_attempts=3)
    if "menu_policy" in top:
        limits = {
            "key_timeout_seconds": (1, 30, 5),
            "max_attempts": (1, 5, 3),
            "max_depth": (1, 4, 2),
            "max_options": (1, 9, 6),
            "max_prompt_seconds": (5, 120, 25),
            "silent_caller_seconds": (5, 120, 15),
        }
        fields = top["menu_policy"].mapping(allowed={*limits, "intake"}) or {}
        values = {
            name: (fields[name].integer(low, high) if name in fields else None) or default
            for name, (low, high, default) in limits.items()
        }
        intake = Intake((fields["intake"].choice(tuple(Intake)) if "intake" in fields else None) or Intake.MENU)
        if intake is Intake.HUMAN_FIRST and operators is not None and not operators.seats:
            fields["intake"].problem("intake: human-first needs operators.seats (a queue to wait in for a person)")
        policy = MenuPolicy(**values, intake=intake)

    calendar_fields = (top["calendar"].mapping(allowed={"notices", "closures"}) or {}) if "calendar" in top else {}
    calendar = parse_notices(calendar_fields["notices"]) if "notices" in calendar_fields else PACKAGE_ONLY

    hours: dict[str, Hours] = {}
    for name, node in top["hours"].items() if "hours" in top else ():
        fields = node.mapping(allowed={"workdays", "restdays", "always_open"}) or {}
        try:
            hours[name] = Hours(
                name=name,
                workdays=parse_ranges(fields["workdays"].string() or "") if "workdays" in fields else (),
                restdays=parse_ranges(fields["restdays"].string() or "") if "restdays" in fields else (),
                always_open=fields["always_open"].string() in ("true", "yes") if "always_open" in fields else False,
                calendar=calendar,
            )
        except ValueError as exc:
            node.problem(f"hours.{name}: {exc}")
    default_hours: Hours | None = None
    if "default_hours" in top:
        default_hours = _named(top["default_hours"], hours, "hours")

    partners: dict[str, Partner] = {}
    for name, node in top["partners"].items() if "partners" in top else ():
        fields = node.mapping(allowed={"webhook", "secret_env"}, required={"webhook", "secret_env"}) or {}
        url = fields["webhook"].string(r"https?://\S+", "an http(s) URL") if "webhook" in fields else None
        env = (
            fields["secret_env"].string(r"[A-Z][A-Z0-9_]*", "an environment variable name")
            if "secret_env" in fields
            else None
        )
        if url and env:
            partners[name] = Partner(name, url, env)

    refs = _Refs(trunk_ref, hours, default_hours, partners)
    route_lines: dict[str, int] = {}
    routes = _parse_routes(top["routes"], refs, route_lines) if "routes" in top else {}
    units = {r.unit for r in routes.values()}
    deadlines = _parse_deadlines(top["deadlines"], units) if "deadlines" in top else DeadlinePolicy()
    deadlines = replace(deadlines, calendar=calendar)
    closures = parse_closures(calendar_fields["closures"], units, hours) if "closures" in calendar_fields else ()
    if closures:
        routes = {rid: replace(r, closures=tuple(c for c in closures if c.unit == r.unit)) for rid, r in routes.items()}
    menus = _parse_menus(top["menus"], routes) if "menus" in top else {}

    entries = frozenset({hotline_number} | {r.number for r in routes.values() if r.mode is not Mode.MERGE})
    table_notices = notices.parse(top["notices"], entries) if "notices" in top else ()
    taken = {t.number for r in routes.values() for t in r.targets}
    emergency = _parse_emergency(top["emergency"], trunk_ref, taken) if "emergency" in top else ()
    modes = [m.value for m in Mode]
    recording = parse_recording(top["recording"], modes, units) if "recording" in top else RecordingPolicy()

    outbound = _parse_outbound(top["outbound"], trunk_ref, hours) if "outbound" in top else None

    src.raise_if_problems()
    assert operators is not None  # guaranteed: a missing/invalid operators block is a problem above
    return RouteTable(
        source=filename,
        digest=digest_of(text),
        hotline_number=hotline_number,
        operators=operators,
        policy=policy,
        trunks=trunks,
        routes=routes,
        menus=menus,
        entries=entries,
        deadlines=deadlines,
        calendar=calendar,
        closures=closures,
        hotline_line=hotline_line,
        calendar_line=top["calendar"].line if "calendar" in top else 0,
        route_lines=route_lines,
        notices=table_notices,
        recording=recording,
        text=text,
        emergency=emergency,
        outbound=outbound,
    )


def _parse_outbound(
    node: Node, trunk_ref: Callable[[Node], Trunk | None], hours: dict[str, Hours]
) -> OutboundPolicy | None:
    """`outbound:` — when and how the hotline calls citizens back (ivr.outbound.policy)."""
    fields = (
        node.mapping(
            allowed={
                "trunk",
                "hours",
                "ring_seconds",
                "max_attempts",
                "backoff_minutes",
                "poll_seconds",
                "first_after_minutes",
            },
            required={"trunk", "hours"},
        )
        or {}
    )
    trunk = trunk_ref(fields["trunk"]) if "trunk" in fields else None
    allowed = _named(fields["hours"], hours, "hours") if "hours" in fields else None
    ring = fields["ring_seconds"].integer(5, 120) if "ring_seconds" in fields else 30
    attempts = fields["max_attempts"].integer(1, 10) if "max_attempts" in fields else 3
    poll = fields["poll_seconds"].integer(1, 600) if "poll_seconds" in fields else 10
    first = fields["first_after_minutes"].integer(0, 24 * 60) if "first_after_minutes" in fields else 5
    backoff: list[int] = []
    if "backoff_minutes" in fields:
        for item in fields["backoff_minutes"].sequence() or []:
            minutes = item.integer(1, 24 * 60)
            if minutes is not None:
                backoff.append(minutes)
        if not backoff:
            fields["backoff_minutes"].problem("outbound.backoff_minutes: give at least one number of minutes")
    if trunk is None or allowed is None or not ring or not attempts or not poll or first is None:
        return None
    return OutboundPolicy(trunk.endpoint, allowed, ring, attempts, tuple(backoff) or (10, 30), poll, first)


def _parse_emergency(
    node: Node, trunk_ref: Callable[[Node], Trunk | None], taken: set[str]
) -> tuple[EmergencyLine, ...]:
    """`emergency:` — a list of {id, name, number, trunk, ring_seconds?, transfer?}."""
    lines: list[EmergencyLine] = []
    for item in node.sequence() or []:
        fields = (
            item.mapping(
                allowed={"id", "name", "number", "trunk", "ring_seconds", "transfer"},
                required={"id", "number", "trunk"},
            )
            or {}
        )
        eid = fields["id"].string(ID_PATTERN, "an id (lower-case letters, digits, - and _)") if "id" in fields else None
        name = fields["name"].string() if "name" in fields else None
        number = fields["number"].string(NUMBER_PATTERN, "a phone number (3-15 digits)") if "number" in fields else None
        trunk = trunk_ref(fields["trunk"]) if "trunk" in fields else None
        ring = fields["ring_seconds"].integer(5, 120) if "ring_seconds" in fields else 30
        way = fields["transfer"].choice(TRANSFER_WAYS) if "transfer" in fields else "three-way"
        if eid and any(line.id == eid for line in lines):
            fields["id"].problem(f"emergency: duplicate id '{eid}'")
            continue
        if number and (number in taken or any(line.number == number for line in lines)):
            fields["number"].problem(f"emergency: number {number} is already used by a route or another line")
            continue
        if eid and number and trunk and ring and way:
            lines.append(EmergencyLine(eid, name or number, number, trunk, ring, way))
    return tuple(lines)


def _parse_deadlines(node: Node, units: set[str]) -> DeadlinePolicy:
    fields = node.mapping(allowed={"default_workdays", "by_mode", "by_unit"}) or {}
    default = (fields["default_workdays"].integer(1, 60) if "default_workdays" in fields else None) or 5
    tables: dict[str, dict[str, int]] = {"by_mode": {}, "by_unit": {}}
    for name in tables:
        for key, value in fields[name].items() if name in fields else ():
            if name == "by_mode" and key not in POLICY_KINDS:
                value.problem(f"deadlines.by_mode: unknown kind '{key}' (one of: {', '.join(sorted(POLICY_KINDS))})")
                continue
            if name == "by_unit" and units and key not in units:
                value.problem(f"deadlines.by_unit: '{key}' is not the unit of any route")
                continue
            days = value.integer(1, 60)
            if days is not None:
                tables[name][key] = days
    return DeadlinePolicy(default, tables["by_mode"], tables["by_unit"])


_ROUTE_KEYS = {
    "id",
    "unit",
    "line_name",
    "number",
    "dial",
    "mode",
    "effective",
    "trunk",
    "ring_seconds",
    "label",
    "hours",
    "overflow",
    "partner",
}

_T = TypeVar("_T")


def _named(node: Node, table: dict[str, _T], what: str) -> _T | None:
    name = node.string()
    if name is None:
        return None
    if name not in table:
        node.problem(f"{node.name}: unknown {what} '{name}' (defined: {', '.join(sorted(table)) or 'none'})")
        return None
    return table[name]


@dataclass(frozen=True)
class _Refs:
    """What a route may refer to by name, resolved while parsing."""

    trunk: Callable[[Node], Trunk | None]
    hours: dict[str, Hours]
    default_hours: Hours | None
    partners: dict[str, Partner]


def _parse_targets(node: Node, refs: _Refs) -> tuple[Target, ...]:
    targets = []
    for item in node.sequence() or []:
        fields = item.mapping(allowed={"number", "trunk", "ring_seconds"}, required={"number", "trunk"}) or {}
        number = fields["number"].string(NUMBER_PATTERN, "a phone number (3-15 digits)") if "number" in fields else None
        trunk = refs.trunk(fields["trunk"]) if "trunk" in fields else None
        ring = fields["ring_seconds"].integer(5, 120) if "ring_seconds" in fields else 20
        if number and trunk and ring:
            targets.append(Target(number, trunk, ring))
    return tuple(targets)


def _parse_routes(node: Node, refs: _Refs, route_lines: dict[str, int]) -> dict[str, Route]:
    trunk_ref = refs.trunk
    routes: dict[str, Route] = {}
    seen_numbers: dict[str, int] = {}
    for item in node.sequence() or []:
        fields = item.mapping(allowed=_ROUTE_KEYS, required={"id", "unit", "number", "mode", "effective", "trunk"})
        if fields is None:
            continue
        rid = fields["id"].string(ID_PATTERN, "an id (lower-case letters, digits, - and _)") if "id" in fields else None
        unit = fields["unit"].string() if "unit" in fields else None
        number = fields["number"].string(NUMBER_PATTERN, "a phone number (3-15 digits)") if "number" in fields else None
        dial = fields["dial"].string(NUMBER_PATTERN, "a phone number (3-15 digits)") if "dial" in fields else number
        mode = fields["mode"].choice(tuple(m.value for m in Mode)) if "mode" in fields else None
        effective = fields["effective"].date() if "effective" in fields else None
        trunk = trunk_ref(fields["trunk"]) if "trunk" in fields else None
        ring = fields["ring_seconds"].integer(5, 120) if "ring_seconds" in fields else 25
        line_name = fields["line_name"].string() if "line_name" in fields else ""
        label = fields["label"].string() if "label" in fields else None
        hours = _named(fields["hours"], refs.hours, "hours") if "hours" in fields else refs.default_hours
        overflow = _parse_targets(fields["overflow"], refs) if "overflow" in fields else ()
        partner = _named(fields["partner"], refs.partners, "partner") if "partner" in fields else None
        if partner is not None and mode != Mode.INTERCONNECT:
            fields["partner"].problem(f"routes[{rid}]: only interconnect routes hand off to a partner")

        if rid and rid in routes:
            fields["id"].problem(f"duplicate route id '{rid}'")
            continue
        if number:
            if number in seen_numbers:
                fields["number"].problem(f"number {number} is already used by the route at line {seen_numbers[number]}")
                continue
            seen_numbers[number] = item.line
        if mode and number:
            if mode == Mode.MERGE and len(number) < 7 or mode != Mode.MERGE and len(number) != 5:
                expected = "a local number of 7+ digits" if mode == Mode.MERGE else "a 5-digit short number"
                fields["number"].problem(f"a {mode} route's number is {expected}, got {number}")
                continue
        if not (rid and unit and number and dial and mode and effective and trunk and ring and line_name is not None):
            continue
        routes[rid] = Route(
            id=rid,
            unit=unit,
            line_name=line_name,
            number=number,
            dial=dial,
            mode=Mode(mode),
            effective=effective,
            trunk=trunk,
            ring_seconds=ring,
            label=label or line_name or unit,
            hours=hours,
            overflow=overflow,
            partner=partner,
        )
        route_lines[rid] = item.line
    return routes


def _parse_menus(node: Node, routes: dict[str, Route]) -> dict[str, Menu]:
    raw = node.mapping() or {}
    menus: dict[str, Menu] = {}
    if raw and "main" not in raw:
        node.problem("menus: a menu named 'main' is required (the 12345 entry menu)")
    for mid, mnode in raw.items():
        fields = mnode.mapping(allowed={"intro", "options"}, required={"options"}) or {}
        intro = (fields["intro"].string() if "intro" in fields else "") or ""
        options: list[MenuOption] = []
        for key, onode in fields["options"].items() if "options" in fields else ():
            if key not in MENU_KEYS:
                onode.problem(
                    f"menus.{mid}: key '{key}' is not allowed; options use 1-9 ('0' is the operators, '*' repeats)"
                )
                continue
            ofields = onode.mapping(allowed={"route", "menu", "number_entry", "progress", "label"}) or {}
            if sum(k in ofields for k in ("route", "menu", "number_entry", "progress")) != 1:
                onode.problem(f"menus.{mid}.{key}: give exactly one of 'route', 'menu', 'number_entry' or 'progress'")
                continue
            label = ofields["label"].string() if "label" in ofields else None
            flag = next((k for k in ("number_entry", "progress") if k in ofields), None)
            if flag is not None:
                if ofields[flag].string() not in ("true", "yes"):
                    ofields[flag].problem(f"menus.{mid}.{key}: {flag} can only be true")
                    continue
                if not label:
                    onode.problem(f"menus.{mid}.{key}: a {flag} option needs a 'label'")
                    continue
                is_entry = flag == "number_entry"
                options.append(MenuOption(key, label, number_entry=is_entry, progress=not is_entry))
            elif "route" in ofields:
                target = ofields["route"].string()
                if target not in routes:
                    ofields["route"].problem(f"menus.{mid}.{key}: unknown route '{target}'")
                    continue
                options.append(MenuOption(key, label or routes[target].label, route_id=target))
            else:
                target = ofields["menu"].string()
                if target not in raw:
                    ofields["menu"].problem(f"menus.{mid}.{key}: unknown menu '{target}'")
                    continue
                if target == "main" or target == mid:
                    ofields["menu"].problem(f"menus.{mid}.{key}: a menu cannot lead back to '{target}'")
                    continue
                if not label:
                    ofields["menu"].problem(f"menus.{mid}.{key}: an option leading to a sub-menu needs a 'label'")
                    continue
                options.append(MenuOption(key, label, menu_id=target))
        if not options and "options" in fields:
            fields["options"].problem(f"menus.{mid}: a menu needs at least one option")
        menus[mid] = Menu(mid, intro, tuple(sorted(options, key=lambda o: o.key)))
    _check_menu_cycles(node, menus)
    return menus


def _check_menu_cycles(node: Node, menus: dict[str, Menu]) -> None:
    def visit(mid: str, path: tuple[str, ...]) -> None:
        for option in menus[mid].options:
            if option.menu_id is None or option.menu_id not in menus:
                continue
            if option.menu_id in path:
                node.problem(f"menus: {' -> '.join((*path, option.menu_id))} is a loop")
                return
            visit(option.menu_id, (*path, option.menu_id))

    if "main" in menus:
        visit("main", ("main",))


# Mandarin text-to-speech and recorded prompts both run at about 4 characters a second.
CHARS_PER_SECOND = 4.0


def warnings(table: RouteTable) -> list[str]:
    """What `hotline check` warns about: the file loads, but callers would suffer or miss out."""
    out: list[str] = []
    policy = table.policy
    depth: dict[str, int] = {}

    def walk(mid: str, level: int) -> None:
        if depth.get(mid, 99) <= level:
            return
        depth[mid] = level
        for option in table.menus[mid].options:
            if option.menu_id:
                walk(option.menu_id, level + 1)

    walk("main", 1)
    for mid, menu in table.menus.items():
        if mid not in depth:
            out.append(f"{table.source}: menu '{mid}' is not reachable from 'main'")
            continue
        if depth[mid] > policy.max_depth:
            out.append(f"{table.source}: menu '{mid}' is {depth[mid]} levels deep (max_depth {policy.max_depth})")
        choices = [o for o in menu.options if not (o.number_entry or o.progress)]
        if len(choices) > policy.max_options:
            out.append(f"{table.source}: menu '{mid}' has {len(choices)} options (max_options {policy.max_options})")
        spoken = (menu.intro if mid == "main" else "") + "".join(o.spoken for o in menu.options)
        seconds = (len(spoken) + 16) / CHARS_PER_SECOND  # + the fixed "人工服务请按0，重听请按星号键"
        if seconds > policy.max_prompt_seconds:
            out.append(
                f"{table.source}: menu '{mid}' prompt takes about {seconds:.0f} s to say "
                f"(max_prompt_seconds {policy.max_prompt_seconds})"
            )
    in_menus = {o.route_id for m in table.menus.values() for o in m.options if o.route_id}
    has_number_entry = any(o.number_entry for m in table.menus.values() for o in m.options)
    for route in table.routes.values():
        if route.id not in in_menus and not has_number_entry and table.direct_route(route.number) is None:
            out.append(f"{table.source}: route '{route.id}' ({route.unit} {route.number}) cannot be reached")
    return out
