"""What a routes.yaml edit does to callers, before it goes live (`hotline diff OLD NEW`).

Every comparison is made by asking the real decision code (`ivr.routing.menu.decide`, `reachable` and the
`Navigator`) what a caller gets from each table at one moment — never by comparing menu rules
re-implemented here. The key paths tried are the union of both tables':
- every menu option a 12345 caller can press (every key, including two keys that reach the same
  route, which `reachable` lists once),
- every route listed by `reachable` (that is, number entry for routes outside the menu tree),
- number entry of every route's published number ("9" + number + "#"), since citizens who know
  an old hotline number type it;
and each path is decided against OLD and against NEW. A path "reaches" a destination when the
decision names a route (dial or handoff); operators and hang-ups reach nothing.

Sections (all empty: nothing changes for callers, `changed` is False):
- units_unreachable: units with a route a caller could reach in OLD and none in NEW — the dangerous ones
- lost_after_hours: routes that took messages after hours and now ring round the clock
- paths added / removed / redirected (same keys, another route, unit, number, dial, mode, trunk,
  or another action for the same route, e.g. dial -> message)
- direct-dial entries (short numbers dialled straight) added / removed / redirected
- routes added / removed (by id) and changed (field: old -> new)
- menu prompts whose spoken text changed, and call-handling settings (operators, hotline number,
  key time-out, attempts, the holiday notices of calendar.notices) that changed
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields, is_dataclass

from ivr.routing.menu import Ask, Decision, Navigator, decide, prompt_text, reachable
from ivr.routing.routes import Route, RouteTable

# Route fields an operator reviews, in this order; any other field a Route has (or gains later)
# is compared after them.
ROUTE_FIELDS = ("unit", "number", "dial", "mode", "trunk", "effective", "ring_seconds", "line_name", "label")


@dataclass(frozen=True)
class PathChange:
    """One key sequence pressed after dialling 12345 (or one number dialled directly, for entries)."""

    keys: str
    old: Decision | None  # None: not a direct-dial entry of that table
    new: Decision | None

    @property
    def old_route(self) -> Route | None:
        return self.old.route if self.old else None

    @property
    def new_route(self) -> Route | None:
        return self.new.route if self.new else None


@dataclass(frozen=True)
class FieldChange:
    name: str
    old: str
    new: str


@dataclass(frozen=True)
class RouteChange:
    id: str
    unit: str
    fields: tuple[FieldChange, ...]


@dataclass(frozen=True)
class PromptChange:
    menu: str
    keys: str  # keys that lead to the menu in NEW ("" for main)
    old: str
    new: str


@dataclass(frozen=True)
class LostFallback:
    unit: str
    route: str


@dataclass(frozen=True)
class Diff:
    old_source: str
    new_source: str
    at: dt.datetime
    hotline: str = "12345"  # NEW's hotline number: what the key paths are pressed after
    units_unreachable: tuple[str, ...] = ()
    lost_after_hours: tuple[LostFallback, ...] = ()
    paths_added: tuple[PathChange, ...] = ()
    paths_removed: tuple[PathChange, ...] = ()
    paths_redirected: tuple[PathChange, ...] = ()
    direct_added: tuple[PathChange, ...] = ()
    direct_removed: tuple[PathChange, ...] = ()
    direct_redirected: tuple[PathChange, ...] = ()
    routes_added: tuple[Route, ...] = ()
    routes_removed: tuple[Route, ...] = ()
    routes_changed: tuple[RouteChange, ...] = ()
    prompts_changed: tuple[PromptChange, ...] = ()
    settings_changed: tuple[FieldChange, ...] = ()

    @property
    def changed(self) -> bool:
        return any(
            (
                self.units_unreachable,
                self.lost_after_hours,
                self.paths_added,
                self.paths_removed,
                self.paths_redirected,
                self.direct_added,
                self.direct_removed,
                self.direct_redirected,
                self.routes_added,
                self.routes_removed,
                self.routes_changed,
                self.prompts_changed,
                self.settings_changed,
            )
        )

    def as_dict(self) -> dict[str, object]:
        def paths(changes: tuple[PathChange, ...], key: str) -> list[dict[str, object]]:
            return [{key: c.keys, "old": _outcome(c.old), "new": _outcome(c.new)} for c in changes]

        return {
            "old": self.old_source,
            "new": self.new_source,
            "at": self.at.isoformat(),
            "changed": self.changed,
            "units_unreachable": list(self.units_unreachable),
            "lost_after_hours": [{"unit": f.unit, "route": f.route} for f in self.lost_after_hours],
            "paths_added": paths(self.paths_added, "keys"),
            "paths_removed": paths(self.paths_removed, "keys"),
            "paths_redirected": paths(self.paths_redirected, "keys"),
            "direct_added": paths(self.direct_added, "entry"),
            "direct_removed": paths(self.direct_removed, "entry"),
            "direct_redirected": paths(self.direct_redirected, "entry"),
            "routes_added": [_route_dict(r) for r in self.routes_added],
            "routes_removed": [_route_dict(r) for r in self.routes_removed],
            "routes_changed": [
                {"id": c.id, "unit": c.unit, "changes": {f.name: [f.old, f.new] for f in c.fields}}
                for c in self.routes_changed
            ],
            "prompts_changed": [
                {"menu": p.menu, "keys": p.keys, "old": p.old, "new": p.new} for p in self.prompts_changed
            ],
            "settings_changed": [{"name": f.name, "old": f.old, "new": f.new} for f in self.settings_changed],
        }

    def lines(self) -> list[str]:
        """The human-readable report: dangerous sections first, one change per line."""
        out = [f"{self.old_source} -> {self.new_source} at {self.at.isoformat(sep=' ', timespec='minutes')}"]
        if not self.changed:
            out.append("no changes for callers")
            return out

        def section(title: str, body: list[str]) -> None:
            if body:
                out.append(f"{title}:")
                out.extend(body)

        section(
            "units",
            [f"! unreachable: {unit}" for unit in self.units_unreachable]
            + [f"! lost after-hours fallback: {f.unit} ({f.route})" for f in self.lost_after_hours],
        )
        section(
            f"key paths after dialling {self.hotline}",
            _path_lines(self.paths_added, self.paths_removed, self.paths_redirected),
        )
        section("direct dial", _path_lines(self.direct_added, self.direct_removed, self.direct_redirected))
        section(
            "routes",
            [f"+ {r.id}  {_full(r)}" for r in self.routes_added]
            + [f"- {r.id}  {_full(r)}" for r in self.routes_removed]
            + [f"~ {c.id}  {f.name}: {f.old} -> {f.new}" for c in self.routes_changed for f in c.fields],
        )
        section(
            "menu prompts", [f"~ {p.menu} (keys {p.keys or 'none'})  {p.old} -> {p.new}" for p in self.prompts_changed]
        )
        section("settings", [f"~ {f.name}: {f.old} -> {f.new}" for f in self.settings_changed])
        return out


def compare(old: RouteTable, new: RouteTable, at: dt.datetime) -> Diff:
    """Everything that differs for a caller between OLD and NEW at `at` (see the module docstring)."""
    old_walk, new_walk = _explore(old, at), _explore(new, at)

    keys: set[str] = set()
    for table, walk in ((old, old_walk), (new, new_walk)):
        keys.update(walk.leaves)
        keys.update(k for k, _ in reachable(table, at))
        keys.update(f"{prefix}{route.number}#" for prefix in walk.number_entry for route in table.routes.values())
    paths = [
        PathChange(k, decide(old, old.hotline_number, k, at), decide(new, new.hotline_number, k, at))
        for k in sorted(keys, key=lambda k: (len(k), k))
    ]

    entries = sorted((old.entries - {old.hotline_number}) | (new.entries - {new.hotline_number}))
    direct = [PathChange(e, _dial_directly(old, e, at), _dial_directly(new, e, at)) for e in entries]

    added, removed, redirected = _classify(paths)
    d_added, d_removed, d_redirected = _classify(direct)

    def units(table: RouteTable, direct_decisions: Iterable[Decision | None]) -> set[str]:
        found = {route.unit for _, route in reachable(table, at)}
        return found | {d.route.unit for d in direct_decisions if d is not None and d.route is not None}

    unreachable = units(old, (c.old for c in direct)) - units(new, (c.new for c in direct))

    return Diff(
        old_source=old.source,
        new_source=new.source,
        at=at,
        hotline=new.hotline_number,
        units_unreachable=tuple(sorted(unreachable)),
        lost_after_hours=tuple(lost_after_hours(old, new)),
        paths_added=added,
        paths_removed=removed,
        paths_redirected=redirected,
        direct_added=d_added,
        direct_removed=d_removed,
        direct_redirected=d_redirected,
        routes_added=tuple(r for rid, r in new.routes.items() if rid not in old.routes),
        routes_removed=tuple(r for rid, r in old.routes.items() if rid not in new.routes),
        routes_changed=tuple(_route_changes(old, new)),
        prompts_changed=tuple(_prompt_changes(old_walk, new_walk)),
        settings_changed=tuple(_setting_changes(old, new)),
    )


# --- after-hours fallback ------------------------------------------------------------------------
# A route with business hours takes a message (留言, a callback ticket) outside them. An edit that
# drops the hours (or makes them round-the-clock) quietly removes that fallback: the department
# is then rung at night, callers wait out the ring time, and nothing is kept for the morning.


def lost_after_hours(old: RouteTable, new: RouteTable) -> list[LostFallback]:
    """Routes (by id, present in both) that took messages after hours in OLD and no longer do."""
    lost = []
    for rid, route in old.routes.items():
        after = new.routes.get(rid)
        if after is not None and _takes_messages(route) and not _takes_messages(after):
            lost.append(LostFallback(after.unit, rid))
    return sorted(lost, key=lambda f: (f.unit, f.route))


def _takes_messages(route: Route) -> bool:
    return route.hours is not None and not route.hours.always_open


# --- internals -----------------------------------------------------------------------------------


@dataclass
class _Walk:
    """What a 12345 caller meets at one moment, found by driving the Navigator."""

    leaves: list[str]  # keys of every menu option that ends in a decision
    menus: dict[str, tuple[str, Ask]]  # menu id -> (keys reaching it first, the prompt played there)
    number_entry: list[str]  # keys that open number entry


def _explore(table: RouteTable, at: dt.datetime) -> _Walk:
    walk = _Walk([], {}, [])

    def step(keys: str) -> Ask | Decision:
        nav = Navigator(table, table.hotline_number, at)
        result = nav.start()
        for key in keys:
            assert isinstance(result, Ask)
            result = nav.feed(key)
        return result

    def visit(prefix: str, ask: Ask) -> None:
        walk.menus.setdefault(ask.menu.id, (prefix, ask))
        for option in ask.options:
            keys = prefix + option.key
            if option.number_entry:
                walk.number_entry.append(keys)
                continue
            result = step(keys)
            if isinstance(result, Ask):
                visit(keys, result)
            else:
                walk.leaves.append(keys)

    first = step("")
    if isinstance(first, Ask):
        visit("", first)
    return walk


def _dial_directly(table: RouteTable, entry: str, at: dt.datetime) -> Decision | None:
    if entry not in table.entries or entry == table.hotline_number:
        return None
    return decide(table, entry, "", at)


def _destination(decision: Decision) -> tuple[str, ...]:
    """What makes two decisions the same for a caller: the same thing done with the same line."""
    route = decision.route
    assert route is not None
    return (
        decision.action,
        route.id,
        route.unit,
        route.number,
        route.dial,
        route.mode.value,
        route.trunk.name,
        route.trunk.endpoint,
    )


def _classify(
    changes: list[PathChange],
) -> tuple[tuple[PathChange, ...], tuple[PathChange, ...], tuple[PathChange, ...]]:
    added, removed, redirected = [], [], []
    for change in changes:
        old, new = change.old, change.new
        if change.old_route is None and change.new_route is not None:
            added.append(change)
        elif change.old_route is not None and change.new_route is None:
            removed.append(change)
        elif (
            old is not None
            and new is not None
            and old.route is not None
            and new.route is not None
            and _destination(old) != _destination(new)
        ):
            redirected.append(change)
    return tuple(added), tuple(removed), tuple(redirected)


def _trunk_text(route: Route) -> str:
    trunk = route.trunk
    return trunk.name if trunk.name == trunk.endpoint else f"{trunk.name} (endpoint {trunk.endpoint})"


def _text(value: object, detail: bool = False) -> str:
    """A field value as an operator reads it: named things by name (all their fields if `detail`)."""
    if value is None:
        return "none"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_text(v, detail) for v in value) + "]"
    if is_dataclass(value) and not isinstance(value, type):
        name = getattr(value, "name", None)
        if isinstance(name, str) and not detail:
            return name
        return "(" + " ".join(f"{f.name}={_text(getattr(value, f.name), detail)}" for f in fields(value)) + ")"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _route_changes(old: RouteTable, new: RouteTable) -> Iterable[RouteChange]:
    names = [*ROUTE_FIELDS, *(f.name for f in fields(Route) if f.name not in ROUTE_FIELDS and f.name != "id")]
    for rid, before in old.routes.items():
        after = new.routes.get(rid)
        if after is None:
            continue
        changes = []
        for name in names:
            a, b = getattr(before, name, None), getattr(after, name, None)
            if a == b:
                continue
            if name == "trunk":
                changes.append(FieldChange(name, _trunk_text(before), _trunk_text(after)))
            elif _text(a) != _text(b):
                changes.append(FieldChange(name, _text(a), _text(b)))
            else:  # same name, different content (e.g. an hours block edited in place)
                changes.append(FieldChange(name, _text(a, detail=True), _text(b, detail=True)))
        if changes:
            yield RouteChange(rid, after.unit, tuple(changes))


def _spoken(ask: Ask) -> str:
    return (ask.menu.intro if ask.first else "") + prompt_text(ask.menu, ask.options)


def _prompt_changes(old: _Walk, new: _Walk) -> Iterable[PromptChange]:
    for mid, (keys, ask) in new.menus.items():
        if mid in old.menus:
            before, after = _spoken(old.menus[mid][1]), _spoken(ask)
            if before != after:
                yield PromptChange(mid, keys, before, after)


def _setting_changes(old: RouteTable, new: RouteTable) -> Iterable[FieldChange]:
    """Settings a caller notices: who answers '0' and time-outs, how long we wait, how often."""
    pairs = [
        ("hotline.number", old.hotline_number, new.hotline_number),
        ("operators.dial", old.operators.dial_string, new.operators.dial_string),
        ("operators.ring_seconds", old.operators.ring_seconds, new.operators.ring_seconds),
        ("menu_policy.key_timeout_seconds", old.policy.key_timeout_seconds, new.policy.key_timeout_seconds),
        ("menu_policy.max_attempts", old.policy.max_attempts, new.policy.max_attempts),
        ("menu_policy.silent_caller_seconds", old.policy.silent_caller_seconds, new.policy.silent_caller_seconds),
        ("menu_policy.intake", old.policy.intake.value, new.policy.intake.value),
    ]
    for name, a, b in pairs:
        if a != b:
            yield FieldChange(name, str(a), str(b))
    # Holiday notices move office hours and ticket deadlines for whole days (ivr/routing/calendar.py).
    for year in sorted(old.calendar.notices.keys() | new.calendar.notices.keys()):
        before, after = old.calendar.notices.get(year), new.calendar.notices.get(year)
        if before != after:
            yield FieldChange(
                f"calendar.notices.{year}",
                before.summary() if before else f"none ({old.calendar.source(year)})",
                after.summary() if after else f"none ({new.calendar.source(year)})",
            )


def _short(route: Route) -> str:
    return f"{route.unit} {route.number}" + (f" via {route.dial}" if route.dial != route.number else "")


def _full(route: Route) -> str:
    line = f" {route.line_name}" if route.line_name else ""
    dial = f" via {route.dial}" if route.dial != route.number else ""
    return f"{route.unit}{line} {route.number}{dial} ({route.mode.value})"


def _redirect_text(old: Decision, new: Decision) -> str:
    """`old -> new`, as short as still tells them apart."""
    assert old.route is not None and new.route is not None
    ways: tuple[Callable[[Decision, Route], str], ...] = (
        lambda d, r: _short(r),
        lambda d, r: f"{_short(r)} {d.action}",
        lambda d, r: _full(r),
        lambda d, r: f"{_full(r)} on {_trunk_text(r)}",
        lambda d, r: f"{r.id}: {_full(r)}",
    )
    for way in ways:
        a, b = way(old, old.route), way(new, new.route)
        if a != b:
            return f"{a} -> {b}"
    return f"{_full(old.route)} -> {_full(new.route)}"


def _nothing(decision: Decision | None) -> str:
    return f"{decision.action} ({decision.reason})" if decision is not None else "not an entry"


def _path_lines(
    added: tuple[PathChange, ...], removed: tuple[PathChange, ...], redirected: tuple[PathChange, ...]
) -> list[str]:
    lines = []
    for c in added:
        assert c.new_route is not None
        lines.append(f"+ {c.keys}  {_full(c.new_route)}")
    for c in removed:
        assert c.old_route is not None
        lines.append(f"- {c.keys}  {_full(c.old_route)}; now {_nothing(c.new)}")
    for c in redirected:
        assert c.old is not None and c.new is not None
        lines.append(f"~ {c.keys}  {_redirect_text(c.old, c.new)}")
    return lines


def _route_dict(route: Route) -> dict[str, object]:
    out: dict[str, object] = {
        "id": route.id,
        "unit": route.unit,
        "line_name": route.line_name,
        "number": route.number,
        "dial": route.dial,
        "mode": route.mode.value,
        "trunk": route.trunk.name,
        "effective": route.effective.isoformat(),
        "ring_seconds": route.ring_seconds,
        "label": route.label,
    }
    for f in fields(route):  # fields added to Route later, as text
        out.setdefault(f.name, _text(getattr(route, f.name)))
    return out


def _outcome(decision: Decision | None) -> dict[str, object] | None:
    if decision is None:
        return None
    out: dict[str, object] = {"action": decision.action, "reason": decision.reason}
    out["route"] = _route_dict(decision.route) if decision.route is not None else None
    return out
