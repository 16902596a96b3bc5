"""What to do with a caller, decided one key at a time — no I/O, no clock reads.

`Navigator` is the single decision path shared by the live call flow and `hotline simulate`:
the live flow plays the prompt an `Ask` names and feeds back the key the caller pressed (or
`None` on a time-out); the simulator feeds a string of keys. Both end with the same `Decision`,
so the dry run cannot drift from what a real call does.

Rules (GB/T 33358-2016 wants shallow menus and a fast path to a human):
- '0' at any menu reaches the operators; so does a menu left without input `max_attempts` times, and a
  caller who pressed nothing at all for `silent_caller_seconds` (the live flow's clock: `silent_too_long`).
- '*' repeats the current menu; '#' goes back to the main menu.
- an invalid key is explained and the menu repeats; `max_attempts` invalid keys end the call politely.
- a dual-track short number dialled directly skips the menu altogether;
- number entry: a caller who knows the old hotline number types it, ending with '#' (or a
  pause); it is looked up among the routes — never dialled as typed.
- the keys a call pressed are kept for the call log up to `MAX_KEYS_KEPT`; beyond that only
  their count is, as a '+N' suffix ('+' is not a key): '*' and '#' never run out of attempts,
  so a caller (or a stuck phone) can press keys without end, and the row must stay bounded.
- a progress option (查询办理进度) ends the menu with a "progress" decision: the ticket number is
  typed and looked up by the call's story (ivr.call.session), which needs the call log;
- interconnect routes are handed off to their partner platform ("handoff"), others dialled;
  a route outside its business hours takes a message instead ("message"), which becomes a
  callback ticket.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Literal

from ivr.routing.routes import Menu, MenuOption, Mode, Route, RouteTable

MAX_KEYS_KEPT = 32  # the first 32 keys cover any real path (two menus, a 12-digit number, retries)


class Action(enum.StrEnum):
    """What the menu decided for a caller (the call log's `decision`)."""

    DIAL = "dial"  # ring the route's line, then its overflow chain
    HANDOFF = "handoff"  # an interconnect line: ring it and tell its partner platform
    OPERATOR = "operator"  # the 12345 operators
    MESSAGE = "message"  # outside the route's hours: take a message (留言)
    HANGUP = "hangup"  # too many invalid keys: a polite goodbye
    PROGRESS = "progress"  # 查询办理进度: the caller asks how a ticket stands (ivr.citizen.progress)


Track = Literal["menu", "direct"]


@dataclass(frozen=True)
class Ask:
    """Play `menu`'s prompt (after `notice`, if any) and wait for one key."""

    menu: Menu
    options: tuple[MenuOption, ...]  # the options live at this moment, in key order
    notice: Literal["", "invalid", "no_input"] = ""
    first: bool = False  # the first prompt of the call: the intro precedes it
    number_entry: bool = False  # collecting a typed number: prompt once, then keys until '#'
    silent: bool = False  # nothing to play: the caller is still typing


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    track: Track
    route: Route | None = None
    keys: str = ""
    menu_path: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, str]:
        route = self.route
        return {
            "action": self.action.value,
            "reason": self.reason,
            "track": self.track,
            "route": route.id if route else "",
            "mode": route.mode.value if route else "",
            "unit": route.unit if route else "",
            "number": route.number if route else "",
            "keys": self.keys,
            "menu_path": "/".join(self.menu_path),
        }


@dataclass
class Navigator:
    table: RouteTable
    entry: str
    at: dt.datetime
    keys: str = ""
    menu_path: list[str] = field(default_factory=list)
    _invalid: int = 0
    _silent: int = 0
    _typed: str | None = None  # digits of a number being entered; None outside number entry
    _pressed: int = 0  # keys fed so far, including those no longer kept in `keys`

    def start(self) -> Ask | Decision:
        if self.entry != self.table.hotline_number:
            route = self.table.direct_route(self.entry)
            if route is None:
                return self._decide(Action.OPERATOR, "entry_not_routed", track="direct")
            if not route.live_at(self.at):
                return self._decide(Action.OPERATOR, "route_not_yet_live", track="direct")
            return self._route(route, "direct_dial", track="direct")
        self.menu_path.append("main")
        return self._ask(first=True)

    def feed(self, key: str | None) -> Ask | Decision:
        """Advance with one key, or None when the caller pressed nothing in time."""
        if self._typed is not None:
            return self._feed_number(key)
        menu = self.current
        if key is None:
            self._silent += 1
            if self._silent >= self.table.policy.max_attempts:
                return self._decide(Action.OPERATOR, "no_input")
            return self._ask(notice="no_input")
        self._press(key)
        if key == "0":
            return self._decide(Action.OPERATOR, "caller_pressed_0")
        if key == "*":
            return self._ask()
        if key == "#":
            del self.menu_path[1:]
            return self._ask()
        option = next((o for o in self._live_options(menu) if o.key == key), None)
        if option is None:
            self._invalid += 1
            if self._invalid >= self.table.policy.max_attempts:
                return self._decide(Action.HANGUP, "too_many_invalid_keys")
            return self._ask(notice="invalid")
        if option.menu_id is not None:
            self.menu_path.append(option.menu_id)
            return self._ask()
        if option.number_entry:
            self._typed = ""
            return Ask(self.current, (), number_entry=True)
        if option.progress:
            return self._decide(Action.PROGRESS, "menu_choice")
        assert option.route_id is not None
        return self._route(self.table.routes[option.route_id], "menu_choice")

    def silent_too_long(self) -> Decision:
        """The caller pressed nothing for `silent_caller_seconds`: a person, not more menu."""
        return self._decide(Action.OPERATOR, "no_input")

    MAX_TYPED = 12

    def _press(self, key: str) -> None:
        self._pressed += 1
        kept = self.keys[:MAX_KEYS_KEPT]
        more = self._pressed - MAX_KEYS_KEPT
        self.keys = kept + key if more <= 0 else f"{kept}+{more}"

    def _feed_number(self, key: str | None) -> Ask | Decision:
        typed = self._typed or ""
        if key is not None:
            self._press(key)
        if key == "*":  # changed their mind: back to the menu
            self._typed = None
            return self._ask()
        if key is not None and key.isdigit():
            # Digits past MAX_TYPED are swallowed until '#' (one over is kept as the mark of a
            # number too long to exist): a number typed too long is one wrong number, not the
            # start of several that would use up the caller's attempts on their own.
            self._typed = (typed + key)[: self.MAX_TYPED + 1]
            return Ask(self.current, (), number_entry=True, silent=True)
        if key is None and not typed:
            self._typed = None
            return self.feed(None)  # silence counts like silence in a menu
        # '#', another key or a pause after digits: look the number up.
        route = None if len(typed) > self.MAX_TYPED else self.table.route_by_number(typed)
        if route is not None and route.live_at(self.at):
            self._typed = None
            return self._route(route, "number_entry")
        self._invalid += 1
        if self._invalid >= self.table.policy.max_attempts:
            self._typed = None
            return self._decide(Action.HANGUP, "too_many_invalid_keys")
        self._typed = ""
        return Ask(self.current, (), notice="invalid", number_entry=True)

    @property
    def current(self) -> Menu:
        return self.table.menus[self.menu_path[-1]]

    def _live_options(self, menu: Menu) -> tuple[MenuOption, ...]:
        """Options whose route is live today; a sub-menu counts if anything under it is."""
        live = []
        for option in menu.options:
            if option.route_id is not None:
                if self.table.routes[option.route_id].live_at(self.at):
                    live.append(option)
            elif option.menu_id is not None and self._live_options(self.table.menus[option.menu_id]):
                live.append(option)
            elif option.number_entry or option.progress:
                live.append(option)
        return tuple(live)

    def _ask(self, notice: Literal["", "invalid", "no_input"] = "", first: bool = False) -> Ask:
        return Ask(self.current, self._live_options(self.current), notice, first)

    def _route(self, route: Route, reason: str, track: Track = "menu") -> Decision:
        """A route was chosen: ring it, hand it off, or — outside its hours — take a message."""
        if not route.open_at(self.at):
            return self._decide(Action.MESSAGE, "after_hours", route=route, track=track)
        action = Action.HANDOFF if route.mode is Mode.INTERCONNECT else Action.DIAL
        return self._decide(action, reason, route=route, track=track)

    def _decide(self, action: Action, reason: str, route: Route | None = None, track: Track = "menu") -> Decision:
        return Decision(action, reason, track, route, self.keys, tuple(self.menu_path))


def decide(table: RouteTable, entry: str, keys: str, at: dt.datetime) -> Decision:
    """The decision a caller reaching `entry` and pressing `keys` gets; then silence until decided."""
    nav = Navigator(table, entry, at)
    step = nav.start()
    pending = list(keys)
    while isinstance(step, Ask):
        step = nav.feed(pending.pop(0) if pending else None)
    return step


def reachable(table: RouteTable, at: dt.datetime) -> list[tuple[str, Route]]:
    """Every destination a 12345 caller can reach at `at`, with the keys that reach it.

    Walks the menu tree through the Navigator itself (not a copy of its rules): each key path
    is fed to `decide`, so what this lists is what a live call does. Routes not in the tree
    but reachable by number entry are listed with the entry key, the number and '#'.
    """
    found: dict[str, tuple[str, Route]] = {}
    entry_key = ""

    def walk(prefix: str, ask: Ask) -> None:
        nonlocal entry_key
        for option in ask.options:
            keys = prefix + option.key
            if option.number_entry:
                entry_key = entry_key or keys
                continue
            nav = Navigator(table, table.hotline_number, at)
            step = nav.start()
            for k in keys:
                assert isinstance(step, Ask)
                step = nav.feed(k)
            if isinstance(step, Ask):
                walk(keys, step)
            elif step.route is not None and step.route.id not in found:
                found[step.route.id] = (keys, step.route)

    first = Navigator(table, table.hotline_number, at).start()
    if isinstance(first, Ask):
        walk("", first)
    if entry_key:
        for route in table.routes.values():
            if route.id not in found and route.live_at(at):
                keys = f"{entry_key}{route.number}#"
                decision = decide(table, table.hotline_number, keys, at)
                if decision.route is not None and decision.route.id == route.id:
                    found[route.id] = (keys, route)
    return sorted(found.values(), key=lambda kr: (len(kr[0]), kr[0]))


def prompt_text(menu: Menu, options: tuple[MenuOption, ...]) -> str:
    """The spoken menu, built from the options so it can never name one that does not exist."""
    parts = ["人工服务请按0"]  # first, as the prompt files say it (ivr.prompts)
    parts += [o.spoken for o in options]
    parts.append("重听请按星号键")
    return "，".join(parts) + "。"
