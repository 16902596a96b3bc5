"""The route editors' records in the call log: tables that went live, notices, the staged table.

Schema version 3 (both backends) adds:
- `routes_history`: every routing table that went live — its digest, full text, when, by whom, how
  (start, sighup, file, rollback, promote…) and the `hotline diff` summary against the one before. The
  controller writes it through the call log's writer (`RoutesLive`, journaled like a call), so a table
  goes on record even while the database is down; a digest equal to the latest on record is not written
  again, which is also how the nodes of a cluster reloading the same file record it once.
- `routes_claims`: who a CLI command wrote a table for (`routes rollback --by`, `routes promote --by`);
  the controller's record of that digest takes its author from here, else from the file's owner.
- `notices`: the notices started by `hotline notice start` (ivr.routing.notices).
- `routes_stage`: the staged table (ivr.routing.staging); at most one is `staged` at a time.

The CLI's writes here are synchronous (the operator must know they were stored); the controller reads
the live notices and the stage off the event loop.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import structlog

from ivr.calllog import dialects
from ivr.calllog.commands import Db
from ivr.errors import RoutesError
from ivr.routing import routes
from ivr.routing.notices import Notice
from ivr.tickets import from_epoch
from ivr.timekeeping import LOCAL_TZ

if TYPE_CHECKING:
    from ivr.calllog import CallLog

log = structlog.get_logger("ivr.calllog")

CLAIM_SECONDS = 600  # a command's claim names the author of that digest going live within this time

_V3_TABLES = """CREATE TABLE IF NOT EXISTS routes_history (
    id {serial},
    digest {text} NOT NULL,
    live_at {real} NOT NULL,
    author {text} NOT NULL DEFAULT '',
    how {text} NOT NULL DEFAULT '',
    source {text} NOT NULL DEFAULT '',
    text {text} NOT NULL,
    previous {text} NOT NULL DEFAULT '',
    summary {text} NOT NULL DEFAULT '',
    diff {text} NOT NULL DEFAULT ''
)
CREATE INDEX IF NOT EXISTS routes_history_live ON routes_history (live_at)
CREATE INDEX IF NOT EXISTS routes_history_digest ON routes_history (digest)
CREATE TABLE IF NOT EXISTS routes_claims (
    digest {text} NOT NULL,
    author {text} NOT NULL,
    action {text} NOT NULL,
    at {real} NOT NULL
)
CREATE INDEX IF NOT EXISTS routes_claims_digest ON routes_claims (digest, at)
CREATE TABLE IF NOT EXISTS notices (
    id {serial},
    prompt {text} NOT NULL,
    text {text} NOT NULL DEFAULT '',
    entries {text} NOT NULL DEFAULT '',
    to_operators integer NOT NULL DEFAULT 0,
    starts_at {real} NOT NULL,
    ends_at {real} NOT NULL,
    author {text} NOT NULL DEFAULT '',
    created_at {real} NOT NULL,
    ended_at {real},
    ended_by {text} NOT NULL DEFAULT ''
)
CREATE INDEX IF NOT EXISTS notices_ends ON notices (ends_at)
CREATE TABLE IF NOT EXISTS routes_stage (
    id {serial},
    digest {text} NOT NULL,
    text {text} NOT NULL,
    source {text} NOT NULL DEFAULT '',
    share integer NOT NULL CHECK (share BETWEEN 1 AND 99),
    author {text} NOT NULL DEFAULT '',
    staged_at {real} NOT NULL,
    state {text} NOT NULL DEFAULT 'staged' CHECK (state IN ('staged', 'promoted', 'dropped', 'replaced')),
    ended_at {real},
    ended_by {text} NOT NULL DEFAULT ''
)
CREATE UNIQUE INDEX IF NOT EXISTS routes_stage_one ON routes_stage (state) WHERE state = 'staged'"""


SQLITE_V3, POSTGRES_V3 = dialects.both(_V3_TABLES)


# -- the history ------------------------------------------------------------------------------
def summarize(
    old_text: str, new_text: str, at: float, old_name: str = "previous", new_name: str = "new"
) -> tuple[str, str]:
    """(one-line summary, the full `hotline diff` report) of replacing OLD by NEW at `at`."""
    from ivr.routing.diff import compare

    if not old_text:
        return "first table on record", ""
    try:
        old = routes.parse(old_text, old_name)
    except RoutesError as exc:
        return f"previous table does not load with this version ({len(exc.problems)} problems)", ""
    new = routes.parse(new_text, new_name)
    report = compare(old, new, from_epoch(at))
    counts = [
        (len(report.units_unreachable), "unit(s) unreachable"),
        (len(report.lost_after_hours), "after-hours fallback(s) lost"),
        (len(report.paths_added), "key path(s) added"),
        (len(report.paths_removed), "key path(s) removed"),
        (len(report.paths_redirected), "key path(s) redirected"),
        (
            len(report.direct_added) + len(report.direct_removed) + len(report.direct_redirected),
            "direct-dial change(s)",
        ),
        (len(report.routes_added), "route(s) added"),
        (len(report.routes_removed), "route(s) removed"),
        (len(report.routes_changed), "route(s) changed"),
        (len(report.prompts_changed), "prompt(s) changed"),
        (len(report.settings_changed), "setting(s) changed"),
    ]
    summary = ", ".join(f"{n} {what}" for n, what in counts if n) or "no changes for callers"
    return summary, "\n".join(report.lines())


@dataclass(frozen=True)
class RoutesLive:
    """A routing table went live on a controller: put it on record (the writer applies it, journaled)."""

    digest: str
    text: str
    source: str
    at: float
    how: str  # start | sighup | file | ...
    owner: str  # the unix user owning the file: the author unless a command claimed the digest
    kind: ClassVar[str] = "routes_live"

    def apply(self, db: Db) -> None:
        last = db.rows("SELECT digest, text FROM routes_history ORDER BY live_at DESC, id DESC LIMIT 1")
        if last and last[0]["digest"] == self.digest:
            return  # already on record: a restart on the same file, another node, a replayed write
        claim = db.rows(
            "SELECT author, action FROM routes_claims WHERE digest = ? AND at BETWEEN ? AND ? ORDER BY at DESC LIMIT 1",
            (self.digest, self.at - CLAIM_SECONDS, self.at + 60),
        )
        author = claim[0]["author"] if claim else self.owner
        how = f"{self.how}:{claim[0]['action']}" if claim else self.how
        try:
            summary, diff = summarize(last[0]["text"] if last else "", self.text, self.at)
        except Exception as exc:  # the record matters more than its summary
            summary, diff = f"no summary: {type(exc).__name__}", ""
        db.execute(
            "INSERT INTO routes_history (digest, live_at, author, how, source, text, previous, summary, diff)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self.digest,
                self.at,
                author,
                how,
                self.source,
                self.text,
                last[0]["digest"] if last else "",
                summary,
                diff,
            ),
        )
        log.info("routes_recorded", version=self.digest, by=author, how=how, summary=summary)

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "text": self.text,
            "source": self.source,
            "at": self.at,
            "how": self.how,
            "owner": self.owner,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RoutesLive:
        return cls(data["digest"], data["text"], data["source"], data["at"], data["how"], data["owner"])


def claim(calllog: CallLog, digest: str, author: str, action: str, at: float) -> None:
    """A command is about to make `digest` live for `author`: the history will name them."""
    with calllog.transaction() as db:
        db.execute(
            "INSERT INTO routes_claims (digest, author, action, at) VALUES (?, ?, ?, ?)", (digest, author, action, at)
        )


def history(calllog: CallLog, limit: int = 50) -> list[dict[str, Any]]:
    """Tables that went live, newest first (without their text)."""
    with calllog.transaction() as db:
        return db.rows(
            "SELECT id, digest, live_at, author, how, source, previous, summary FROM routes_history"
            " ORDER BY live_at DESC, id DESC LIMIT ?",
            (limit,),
        )


def find(calllog: CallLog, digest: str) -> dict[str, Any] | None:
    """The table with this digest (or a unique prefix of 4+ hex digits): on record as live, else staged."""
    if len(digest) < 4:
        return None
    with calllog.transaction() as db:
        rows = db.rows(
            "SELECT digest, text, live_at AS at, author, diff FROM routes_history WHERE digest LIKE ?"
            " ORDER BY live_at DESC",
            (digest + "%",),
        )
        if not rows:
            rows = db.rows(
                "SELECT digest, text, staged_at AS at, author, '' AS diff FROM routes_stage WHERE digest LIKE ?"
                " ORDER BY staged_at DESC",
                (digest + "%",),
            )
    if len({r["digest"] for r in rows}) != 1:
        return None
    return rows[0]


def in_force(calllog: CallLog, start: float, end: float) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The table in force at `end` (with its text) and every change in [start, end), oldest first."""
    with calllog.transaction() as db:
        last = db.rows(
            "SELECT digest, text, live_at, author FROM routes_history WHERE live_at < ? ORDER BY live_at DESC, id DESC"
            " LIMIT 1",
            (end,),
        )
        changes = db.rows(
            "SELECT digest, previous, live_at, author, how, summary FROM routes_history"
            " WHERE live_at >= ? AND live_at < ?"
            " ORDER BY live_at, id",
            (start, end),
        )
    return (last[0] if last else None), changes


def period_note(current: dict[str, Any] | None, changes: list[dict[str, Any]]) -> str:
    """What a report says of its routing table: the version in force at the period's end and each change in it."""
    if current is None:
        return ""
    note = f"version {current['digest']} in force since {from_epoch(current['live_at']):%Y-%m-%d %H:%M}"
    note += f" ({current['author']})" if current["author"] else ""
    if changes:
        listed = "; ".join(
            f"{from_epoch(c['live_at']):%Y-%m-%d %H:%M} {c['previous'] or '—'} -> {c['digest']} by {c['author'] or '?'}"
            f" ({c['summary']})"
            for c in changes
        )
        note += f"; changed during the period: {listed}"
    else:
        note += "; unchanged during the period"
    return note


# -- notices ----------------------------------------------------------------------------------
def start_notice(
    calllog: CallLog,
    *,
    prompt: str,
    text: str,
    entries: frozenset[str],
    to_operators: bool,
    starts: float,
    ends: float,
    author: str,
) -> int:
    with calllog.transaction() as db:
        (nid,) = db.execute(
            "INSERT INTO notices (prompt, text, entries, to_operators, starts_at, ends_at, author, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (prompt, text, ",".join(sorted(entries)), int(to_operators), starts, ends, author, starts),
        ).fetchone()
    log.info(
        "notice_started",
        notice=f"cmd-{nid}",
        prompt=prompt,
        entries=",".join(sorted(entries)) or "all",
        to_operators=to_operators,
        until=from_epoch(ends).isoformat(timespec="minutes"),
        by=author,
    )
    return int(nid)


def end_notice(calllog: CallLog, notice_id: int, author: str, at: float) -> bool:
    """End a notice now; False if there is no such notice still live."""
    with calllog.transaction() as db:
        cur = db.execute(
            "UPDATE notices SET ends_at = ?, ended_at = ?, ended_by = ? WHERE id = ? AND ends_at > ?",
            (at, at, author, notice_id, at),
        )
        found = bool(cur.rowcount == 1)
    log.info("notice_ended", notice=f"cmd-{notice_id}", by=author, found=found)
    return found


def notices(calllog: CallLog, since: float | None = None) -> list[dict[str, Any]]:
    """The commands' notices, newest first; `since`: only those ending after it (live or to come)."""
    where, params = ("WHERE ends_at > ?", (since,)) if since is not None else ("", ())
    with calllog.transaction() as db:
        return db.rows(f"SELECT * FROM notices {where} ORDER BY id DESC", params)


def as_notice(row: dict[str, Any]) -> Notice:
    return Notice(
        id=f"cmd-{row['id']}",
        prompt=row["prompt"],
        text=row["text"],
        entries=frozenset(e for e in row["entries"].split(",") if e),
        to_operators=bool(row["to_operators"]),
        starts=dt.datetime.fromtimestamp(row["starts_at"], LOCAL_TZ),
        ends=dt.datetime.fromtimestamp(row["ends_at"], LOCAL_TZ),
        source="command",
        by=row["author"],
    )


def live_notices(calllog: CallLog, now: float) -> list[Notice]:
    """The commands' notices live at `now`, oldest first (the order callers hear them)."""
    with calllog.transaction() as db:
        rows = db.rows("SELECT * FROM notices WHERE starts_at <= ? AND ends_at > ? ORDER BY id", (now, now))
    return [as_notice(r) for r in rows]


# -- the staged table -------------------------------------------------------------------------
def stage(calllog: CallLog, *, text: str, source: str, share: int, author: str, at: float) -> int:
    """Stage `text` for `share` % of callers, replacing a table staged before; the stage's id."""
    with calllog.transaction() as db:
        db.execute(
            "UPDATE routes_stage SET state = 'replaced', ended_at = ?, ended_by = ? WHERE state = 'staged'",
            (at, author),
        )
        (sid,) = db.execute(
            "INSERT INTO routes_stage (digest, text, source, share, author, staged_at) VALUES (?, ?, ?, ?, ?, ?)"
            " RETURNING id",
            (routes.digest_of(text), text, source, share, author, at),
        ).fetchone()
    log.info("routes_staged", version=routes.digest_of(text), share=share, by=author, source=source)
    return int(sid)


def current_stage(calllog: CallLog) -> dict[str, Any] | None:
    with calllog.transaction() as db:
        rows = db.rows("SELECT * FROM routes_stage WHERE state = 'staged'")
    return rows[0] if rows else None


def end_stage(calllog: CallLog, state: str, author: str, at: float) -> dict[str, Any] | None:
    """Mark the staged table promoted or dropped; the row it was, or None if nothing was staged."""
    assert state in ("promoted", "dropped")
    with calllog.transaction() as db:
        rows = db.rows("SELECT * FROM routes_stage WHERE state = 'staged'")
        if not rows:
            return None
        db.execute(
            "UPDATE routes_stage SET state = ?, ended_at = ?, ended_by = ? WHERE id = ?",
            (state, at, author, rows[0]["id"]),
        )
    log.info(f"routes_stage_{state}", version=rows[0]["digest"], by=author)
    return rows[0]
