"""dialplan/*.conf read as data: a small Asterisk config reader, and routes.yaml checked against it.

The controller never reads these files at run time -- Asterisk does. They are read here for two
checks made before anything goes live:

- `hotline check` (`entry_problems`): every number the controller accepts as an entry (12345 and
  each dual-track/interconnect short number) must be sent to Stasis by the carrier's context of
  extensions.conf; otherwise citizens dialling it get 404 from Asterisk while routes.yaml claims the
  line is served. Problems are located at the route's line in routes.yaml, where the fix usually is.
- tests/unit/test_security_config.py lints the security settings of every file with `read_conf`.

Only the syntax the hotline's files use is understood: `[section]`, `[name](!)` templates and
`[name](tmpl,...)` inheritance, `key = value` / `key => value`, `;` comments, `#include` /
`#tryinclude`, and in extensions.conf `exten =>`, `same =>` and `include =>`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ivr.errors import Problem
from ivr.routing.routes import Mode, Route, RouteTable

CARRIER_CONTEXT = "from-carrier"


@dataclass(frozen=True)
class Option:
    key: str
    value: str
    file: str
    line: int


@dataclass
class Section:
    name: str
    file: str
    line: int
    is_template: bool = False
    templates: tuple[str, ...] = ()
    own: list[Option] = field(default_factory=list)
    inherited: list[Option] = field(default_factory=list)  # from its templates, resolved by read_conf

    @property
    def options(self) -> list[Option]:
        return [*self.inherited, *self.own]

    def get(self, key: str) -> str | None:
        """The last value of `key` (Asterisk's rule for single-valued options), or None."""
        values = self.values(key)
        return values[-1] if values else None

    def values(self, key: str) -> list[str]:
        return [o.value for o in self.options if o.key == key]


_SECTION = re.compile(r"\[(?P<name>[^\]]+)\]\s*(?:\((?P<flags>[^)]*)\))?\s*$")
_OPTION = re.compile(r"(?P<key>[^=]+?)\s*=>?\s*(?P<value>.*)$")


def read_conf(path: str | Path) -> list[Section]:
    """Every section of an Asterisk .conf file, #includes followed, templates resolved."""
    sections: list[Section] = []
    _read_into(Path(path), sections, depth=0)
    by_name = {s.name: s for s in sections if s.is_template}
    for section in sections:
        for name in section.templates:
            template = by_name.get(name)
            if template is not None:
                section.inherited.extend(template.options)
    return sections


def _read_into(path: Path, sections: list[Section], depth: int) -> None:
    if depth > 8:  # Asterisk itself refuses include loops; stop rather than recurse forever
        return
    in_block_comment = False
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw
        if in_block_comment:
            if "--;" not in line:
                continue
            line = line.split("--;", 1)[1]
            in_block_comment = False
        if ";--" in line:
            before, _, after = line.partition(";--")
            if "--;" in after:
                line = before + after.split("--;", 1)[1]
            else:
                line, in_block_comment = before, True
        line = _strip_comment(line).strip()
        if not line:
            continue
        if line.startswith("#"):
            directive, _, target = line.partition(" ")
            if directive in ("#include", "#tryinclude"):
                included = path.parent / target.strip().strip('"')
                if included.exists():
                    _read_into(included, sections, depth + 1)
                elif directive == "#include":
                    raise FileNotFoundError(f"{path}:{number}: #include {included} does not exist")
            continue
        head = _SECTION.match(line)
        if head:
            flags = [f.strip() for f in (head["flags"] or "").split(",") if f.strip()]
            sections.append(
                Section(
                    head["name"].strip(),
                    str(path),
                    number,
                    is_template="!" in flags,
                    templates=tuple(f for f in flags if f not in ("!", "+")),
                )
            )
            continue
        option = _OPTION.match(line)
        if option and sections:
            sections[-1].own.append(Option(option["key"].strip(), option["value"].strip(), str(path), number))


def _strip_comment(line: str) -> str:
    """Cut at the first `;` that is not escaped as `\\;`."""
    match = re.search(r"(?<!\\);", line)
    return line[: match.start()] if match else line


# -- extensions.conf --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One priority of an extension: `exten => 12345,1,Set(...)` or `same => n,Goto(...)`."""

    app: str
    args: tuple[str, ...]
    line: int


@dataclass
class Context:
    name: str
    line: int
    extensions: dict[str, list[Step]] = field(default_factory=dict)  # as written, e.g. "12345", "_X!"
    includes: list[str] = field(default_factory=list)
    exten_lines: dict[str, int] = field(default_factory=dict)

    def find(self, number: str) -> str | None:
        """The extension a dialled number lands on: an exact one first, then a matching pattern."""
        if number in self.extensions:
            return number
        return next((e for e in self.extensions if e.startswith("_") and pattern_matches(e, number)), None)


def read_dialplan(path: str | Path) -> dict[str, Context]:
    contexts: dict[str, Context] = {}
    for section in read_conf(path):
        context = contexts.setdefault(section.name, Context(section.name, section.line))
        current: str | None = None
        for option in section.own:
            if option.key == "include":
                context.includes.append(option.value)
                continue
            if option.key not in ("exten", "same"):
                continue
            parts = _split_args(option.value)
            if option.key == "exten":
                if len(parts) < 3:
                    continue
                current, app_call = parts[0], ",".join(parts[2:])
                context.exten_lines.setdefault(current, option.line)
            elif current is None or len(parts) < 2:
                continue
            else:
                app_call = ",".join(parts[1:])
            app, _, args = app_call.partition("(")
            context.extensions.setdefault(current, []).append(
                Step(app.strip(), tuple(a.strip() for a in _split_args(args.rsplit(")", 1)[0])), option.line)
            )
    return contexts


def _split_args(text: str) -> list[str]:
    """Split at commas that are not inside parentheses, ${...} or $[...]."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def pattern_matches(pattern: str, number: str) -> bool:
    """Asterisk extension pattern semantics: X N Z [..] . ! after a leading underscore."""
    return re.fullmatch(pattern_regex(pattern), number) is not None


def pattern_regex(pattern: str) -> str:
    out, i, body = "", 0, pattern[1:]
    while i < len(body):
        char = body[i]
        if char in "Xx":
            out += "[0-9]"
        elif char in "Zz":
            out += "[1-9]"
        elif char in "Nn":
            out += "[2-9]"
        elif char == ".":
            out += ".+"
        elif char == "!":
            out += ".*"
        elif char == "[":
            end = body.find("]", i)
            end = len(body) if end < 0 else end
            out += "[" + body[i + 1 : end].replace("\\", "\\\\") + "]"
            i = end
        else:
            out += re.escape(char)
        i += 1
    return out


def reachable_contexts(contexts: dict[str, Context], start: str) -> list[str]:
    """`start` and every context it includes or jumps to (Goto, GotoIf, Gosub): what its callers reach."""
    seen: list[str] = []
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in contexts:
            continue
        seen.append(name)
        context = contexts[name]
        todo.extend(context.includes)
        for steps in context.extensions.values():
            for step in steps:
                todo.extend(ctx for ctx, _ in _jumps(step, name))
    return seen


def _jumps(step: Step, here: str) -> Iterator[tuple[str, str | None]]:
    """(context, extension) targets of a jump step; extension None when it stays the same."""
    if step.app in ("Goto", "Gosub"):
        targets = [",".join(step.args)]
    elif step.app in ("GotoIf", "GosubIf") and step.args:
        _, _, branches = ",".join(step.args).partition("?")
        targets = [b for b in branches.split(":") if b]
    else:
        return
    for target in targets:
        parts = [p.strip() for p in target.split(",")]
        if len(parts) == 3:
            yield parts[0], parts[1]
        elif len(parts) == 2:
            yield here, parts[0]
        else:
            yield here, None


def reaches_stasis(contexts: dict[str, Context], context: str, number: str, app: str = "hotline") -> bool:
    """Does a call for `number` arriving in `context` enter Stasis(app, ...)?"""
    todo: list[tuple[str, str]] = [(context, number)]
    seen: set[tuple[str, str]] = set()
    while todo:
        ctx_name, exten = todo.pop()
        if (ctx_name, exten) in seen or ctx_name not in contexts:
            continue
        seen.add((ctx_name, exten))
        ctx = contexts[ctx_name]
        found = ctx.find(exten)
        if found is None:
            todo.extend((inc, exten) for inc in ctx.includes)
            continue
        for step in ctx.extensions[found]:
            if step.app == "Stasis" and step.args and step.args[0] == app:
                return True
            for target_ctx, target_ext in _jumps(step, ctx_name):
                resolved = exten if target_ext in (None, "${EXTEN}") else target_ext
                todo.append((target_ctx, resolved))
    return False


def entry_problems(table: RouteTable, extensions_conf: str | Path, context: str = CARRIER_CONTEXT) -> list[Problem]:
    """Numbers the controller serves that the carrier's dialplan does not send to Stasis."""
    try:
        contexts = read_dialplan(extensions_conf)
    except (OSError, UnicodeDecodeError) as exc:
        return [Problem(str(extensions_conf), 1, f"cannot read the dial plan: {exc}")]
    if context not in contexts:
        return [Problem(str(extensions_conf), 1, f"no [{context}] context: the carrier's calls go nowhere")]
    where = f"{extensions_conf} [{context}]"
    problems = []
    if not reaches_stasis(contexts, context, table.hotline_number):
        problems.append(
            Problem(
                table.source,
                table.hotline_line or 1,
                f"hotline number {table.hotline_number} is not sent to Stasis by {where}: callers dialling it get 404",
            )
        )
    for route in table.routes.values():
        if route.mode is Mode.MERGE:
            continue  # reached through the 12345 menu only, never dialled in
        if not reaches_stasis(contexts, context, route.number):
            problems.append(
                Problem(
                    table.source,
                    table.route_lines.get(route.id, 1),
                    f"routes[{route.id}]: {route.mode} number {route.number} is not sent to Stasis "
                    f"by {where}: callers dialling it directly get 404",
                )
            )
    return problems


# -- the ring chains, generated (HOTLINE_DIAL_PATH=dialplan) -----------------------------------------

CHAIN_CONTEXT = "hotline-chain"
CHAIN_FILE = "hotline-chains.conf"  # beside extensions.conf, which #tryincludes it
CHAIN_BACK = "ringchain"  # first Stasis argument of a caller coming back from a ring chain
CHAIN_MISSING = "missing"  # ... whose extension the loaded dialplan does not have (rendered from other routes)
CHAIN_RESULT = "HotlineRang"  # the user event after each Dial: its DIALSTATUS and HANGUPCAUSE
CHAINS_LOADED = "HOTLINE_CHAINS"  # a global the chains' file sets: the controller checks the chains are loaded


# A caller back from a chain nobody answered while no controller runs (Stasis FAILED) is not dropped: the
# apology and the duty line, as a caller arriving then. At `answer`, past the fallback's own count of calls
# the controller never saw: this one has its row already (it stays `interrupted`). A caller whose
# department hung up after a talk is hung up.
FALLBACK = "hotline-fallback,operators,answer"


def chain_extension(route: Route) -> str:
    """The extension of `route`'s ring chain: its id and a digest of what it dials.

    A route edited after Asterisk's dialplan was rendered gets a new name the loaded dialplan lacks:
    the caller comes back at once (`i` extension) and that call rings over ARI instead, never the stale chain.
    """
    spec = "|".join(f"{t.dial_string}/{t.ring_seconds}" for t in route.targets)
    # '-' is ignored by Asterisk's extension matching: '_' keeps the id readable and distinct
    return f"{route.id.replace('-', '_')}_{hashlib.sha256(spec.encode()).hexdigest()[:10]}"


def chain_dialplan(table: RouteTable, app: str = "hotline") -> str:
    """[hotline-chain]: for every route, Dial each number of its ring chain in turn, then back to Stasis.

    `r`: the caller hears ringback (the endpoints' tone_zone, cn); `g`: a department hanging up
    sends the caller on (back to the controller for ticket number and survey) instead of hanging up.
    The controller, subscribed to the caller's channel, follows it live: each Dial's start and answer
    (Dial events), each number's status and cause (the user event HotlineRang: ChannelUserevent).
    """
    lines = [
        f"; Generated from {table.source} by ivr/routing/dialplan.py (chain_dialplan): do not edit.",
        "; The controller reads this global to know the chains are loaded (else it rings over ARI). (+): added to",
        "; extensions.conf's [globals], which comes before the #tryinclude of this file.",
        "[globals](+)",
        f"{CHAINS_LOADED} = {table.digest}",
        f"[{CHAIN_CONTEXT}]",
    ]
    for route in sorted(table.routes.values(), key=lambda r: r.id):
        for target in route.targets:
            if not re.fullmatch(r"PJSIP/[0-9]{3,15}@[A-Za-z][A-Za-z0-9_-]{0,39}", target.dial_string):
                raise ValueError(f"routes[{route.id}]: {target.dial_string!r} is no dial string for the dialplan")
        ext = chain_extension(route)
        lines.append(f"exten => {ext},1,NoOp(ring chain of {route.id})")
        for target in route.targets:
            lines.append(f" same => n,Dial({target.dial_string},{target.ring_seconds},gr)")
            lines.append(f" same => n,UserEvent({CHAIN_RESULT},status: ${{DIALSTATUS}},cause: ${{HANGUPCAUSE}})")
            lines.append(' same => n,GotoIf($["${DIALSTATUS}" = "ANSWER"]?back)')
        lines.append(f" same => n(back),Stasis({app},{CHAIN_BACK},${{DIALSTATUS}},${{ANSWEREDTIME}})")
        lines.append(f' same => n,GotoIf($["${{STASISSTATUS}}" = "FAILED" & "${{DIALSTATUS}}" != "ANSWER"]?{FALLBACK})')
        lines.append(" same => n,Hangup()")
    lines.append(f"exten => i,1,Stasis({app},{CHAIN_BACK},{CHAIN_MISSING})")
    lines.append(f' same => n,GotoIf($["${{STASISSTATUS}}" = "FAILED"]?{FALLBACK})')
    lines.append(" same => n,Hangup()")
    return "\n".join(lines) + "\n"
