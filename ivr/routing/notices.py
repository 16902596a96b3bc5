"""Notices (紧急公告): an announcement played before the menu, optionally sending every caller to the operators.

A notice comes from one of two places, and both end by themselves at their end time:
- a dated `notices:` entry in routes.yaml (planned: a holiday arrangement, a move), live from `from` to
  `until` in local time on the controller's clock — like a route's `effective` date, so a drill with
  HOTLINE_CLOCK_START sees them as callers will;
- `hotline notice start` (an emergency: typhoon, water outage, system fault), kept in the call log's
  `notices` table and live from the moment it is given to its `--until`, on the real clock — the command
  acts now, whatever a drill's clock says.

The controller reads the call log's notices every second (NoticeBoard.refresh, off the event loop) rather
than once per call: a read per call would put a database round trip in front of every answer, and a read
per second still makes a started notice heard by the next caller, without a restart or a reload, on every
controller sharing the call log.

routes.yaml:

    notices:
      - id: typhoon-0915
        text: 受台风影响，今日部分部门服务时间调整，请留意。   # rendered by `hotline prompts`, or
        # prompt: notice-typhoon                            # a prompt already rendered
        entries: ["12345", "12310"]                         # default: every entry
        to_operators: false                                 # true: no menu, straight to the operators
        from: 2026-09-15T06:00
        until: 2026-09-16T18:00
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ivr.routing.yamlsrc import Node
from ivr.timekeeping import LOCAL_TZ

NOTICE_ID_PATTERN = r"[a-z0-9][a-z0-9_-]{0,39}"
PROMPT_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}"
MAX_TEXT_CHARS = 300  # about 75 s of speech at 4 characters a second: a notice, not a bulletin


@dataclass(frozen=True)
class Notice:
    id: str  # routes.yaml: its `id`; a command's: its row id in the call log ("cmd-7")
    prompt: str  # the sound file played (sound:hotline/<prompt>)
    text: str  # what it says, when rendered from text ('' for a recorded prompt)
    entries: frozenset[str]  # the entry numbers it is played on; empty: all of them
    to_operators: bool  # skip the menu: every caller goes to the operators
    starts: dt.datetime  # aware
    ends: dt.datetime  # aware
    source: str = "routes.yaml"  # or "command"
    by: str = ""

    def live_at(self, now: dt.datetime) -> bool:
        return self.starts <= now < self.ends

    def applies_to(self, entry: str) -> bool:
        return not self.entries or entry in self.entries


def prompt_for(notice_id: str) -> str:
    """The prompt file a notice's text is rendered to."""
    return f"notice-{notice_id}"


def check_text(text: str) -> str | None:
    """Why `text` cannot be a notice's announcement, or None."""
    if not text.strip():
        return "an announcement needs some text"
    if len(text) > MAX_TEXT_CHARS:
        return f"an announcement is at most {MAX_TEXT_CHARS} characters (this one has {len(text)})"
    return None


def parse(node: Node, entries: frozenset[str]) -> tuple[Notice, ...]:
    """The `notices:` section; problems are reported on the nodes (FILE:LINE)."""
    out: list[Notice] = []
    seen: set[str] = set()
    for item in node.sequence() or []:
        fields = item.mapping(
            allowed={"id", "text", "prompt", "entries", "to_operators", "from", "until"},
            required={"id", "from", "until"},
        )
        if fields is None:
            continue
        nid = fields["id"].string(NOTICE_ID_PATTERN, "a notice id (lower-case letters, digits, - and _)")
        if nid and nid in seen:
            fields["id"].problem(f"duplicate notice id '{nid}'")
            nid = None
        if nid:
            seen.add(nid)
        where = f"notices[{nid or '?'}]"
        text, prompt = "", None
        if ("text" in fields) == ("prompt" in fields):
            item.problem(f"{where}: give exactly one of 'text' (rendered) or 'prompt' (a rendered prompt's name)")
        elif "text" in fields:
            text = fields["text"].string() or ""
            why = check_text(text)
            if why:
                fields["text"].problem(f"{where}: {why}")
            elif nid:
                prompt = prompt_for(nid)
        else:
            prompt = fields["prompt"].string(PROMPT_NAME_PATTERN, "a prompt name")
        chosen: set[str] = set()
        for entry in fields["entries"].sequence() or [] if "entries" in fields else []:
            number = entry.string()
            if number is None:
                continue
            if number not in entries:
                known = ", ".join(sorted(entries))
                entry.problem(f"{where}: '{number}' is not an entry number of this table (entries: {known})")
            else:
                chosen.add(number)
        to_operators = False
        if "to_operators" in fields:
            flag = fields["to_operators"].choice(("true", "false", "yes", "no"))
            to_operators = flag in ("true", "yes")
        starts = _local(fields["from"], where)
        ends = _local(fields["until"], where)
        if starts and ends and ends <= starts:
            fields["until"].problem(f"{where}: until {ends:%Y-%m-%dT%H:%M} is not after from {starts:%Y-%m-%dT%H:%M}")
            continue
        if nid and prompt and starts and ends and ("entries" not in fields or chosen):
            out.append(Notice(nid, prompt, text, frozenset(chosen), to_operators, starts, ends))
    return tuple(out)


def _local(node: Node, where: str) -> dt.datetime | None:
    raw = node.string()
    if raw is None:
        return None
    key = node.name.rsplit(".", 1)[-1]
    try:
        when = dt.datetime.fromisoformat(raw)
    except ValueError:
        node.problem(f"{where}: {key} is not a local date/time like 2026-09-15T06:00, got {raw!r}")
        return None
    if when.tzinfo is not None:
        node.problem(f"{where}: {key} is local (Asia/Shanghai) time; leave out the zone, got {raw!r}")
        return None
    return when.replace(tzinfo=LOCAL_TZ)


def parse_until(raw: str, now: dt.datetime) -> dt.datetime:
    """`--until` of the command: an ISO local date/time (Asia/Shanghai) after `now`; ValueError says why."""
    try:
        when = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"not an ISO date/time: {raw!r} (e.g. 2026-09-16T18:00, Beijing time)") from None
    when = when.replace(tzinfo=LOCAL_TZ) if when.tzinfo is None else when
    if when <= now:
        raise ValueError(f"{raw} is not in the future (now {now.astimezone(LOCAL_TZ):%Y-%m-%d %H:%M} Beijing time)")
    return when


_SAFE_ENTRY = re.compile(r"[0-9]{3,15}")


def parse_entries(raw: str, known: frozenset[str]) -> frozenset[str]:
    """`--entries 12345,12310`: entry numbers of the table ('' or 'all': every entry); ValueError says why."""
    if raw.strip() in ("", "all"):
        return frozenset()
    chosen = {part.strip() for part in raw.split(",") if part.strip()}
    bad = sorted(n for n in chosen if not _SAFE_ENTRY.fullmatch(n) or n not in known)
    if bad:
        raise ValueError(f"not an entry number of routes.yaml: {', '.join(bad)} (entries: {', '.join(sorted(known))})")
    return frozenset(chosen)


class NoticeBoard:
    """The notices a call hears: routes.yaml's (from the call's own table) and the commands' (refreshed).

    `refresh` is given the commands' notices live now (read from the call log off the loop); a notice
    ends by itself because `for_call` checks its end time at the call, not at the refresh.
    """

    def __init__(self) -> None:
        self.commanded: tuple[Notice, ...] = ()

    def refresh(self, notices: Iterable[Notice]) -> tuple[list[Notice], list[Notice]]:
        """Take the commands' notices; (started, ended) since the last refresh, for the log."""
        new = tuple(notices)
        before = {n.id for n in self.commanded}
        after = {n.id for n in new}
        started = [n for n in new if n.id not in before]
        ended = [n for n in self.commanded if n.id not in after]
        self.commanded = new
        return started, ended

    def live(self, table_notices: Sequence[Notice], table_now: dt.datetime, now: dt.datetime) -> list[Notice]:
        """Every notice live now: routes.yaml's on the controller's clock, the commands' on the real one."""
        return [n for n in table_notices if n.live_at(table_now)] + [n for n in self.commanded if n.live_at(now)]

    def for_call(
        self, table_notices: Sequence[Notice], entry: str, table_now: dt.datetime, now: dt.datetime
    ) -> list[Notice]:
        """The notices a caller of `entry` hears, in order: planned ones first, then the commands' by age."""
        return [n for n in self.live(table_notices, table_now, now) if n.applies_to(entry)]
