"""`hotline` — the operators' command line. Thin: parse, call one function, print, exit code.

Exit codes (ivr.exitcode.ExitCode; the same list is in README.md, "The command line"):
  0 OK           done; for `diff`: nothing changes for callers
  1 INPUT        the input is wrong: routes.yaml (every FILE:LINE printed), a value a command
                 checks itself (an id that does not exist, alert-relay's config)
  2 ENVIRONMENT  the environment is wrong: a missing secret or call log, the database or
                 Asterisk unreachable, a file that cannot be written; also click's usage errors
                 (an unknown option, a malformed or out-of-range value), click's own convention
  3 CHANGES      `diff` only: the edit changes something for callers

Every command that opens the call log (calls, tickets, callbacks, report, purge, journal, and
the route editors' notice and routes) finds it as the controller does (ivr.settings.Storage:
$HOTLINE_CALLLOG, else $HOTLINE_STATE/calllog.sqlite3); an explicit --calllog wins. The call log
failing under a command (ivr.errors.CallLogError) exits ENVIRONMENT with its message.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

import click
import uvloop

from ivr import logs
from ivr.cli_options import calllog_option
from ivr.errors import AriAuthError, CallLogError, ConfigError, RoutesError
from ivr.exitcode import ExitCode
from ivr.routing import routes

# Where `simulate --hangup-at` can hang up (ivr.call.scripted.HangupStep), listed here so the
# command line does not import the call flow until it plays a call.
HANGUP_STEPS = ["menu", "connecting", "ringing", "queue", "talking", "survey", "message"]

routes_option = click.option(
    "--routes",
    "routes_path",
    default="routes.yaml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The routing table.",
)


def _load_table(path: str) -> routes.RouteTable:
    try:
        return routes.load(path)
    except RoutesError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(ExitCode.INPUT)


def _now() -> dt.datetime:
    """Beijing time (or HOTLINE_CLOCK_START), as the controller sees it, whatever the host's TZ."""
    from ivr import timekeeping

    try:
        return timekeeping.now()
    except ValueError as exc:
        click.echo(f"hotline: {exc}", err=True)
        sys.exit(ExitCode.ENVIRONMENT)


def _parse_at(at: str | None) -> dt.datetime:
    """--at as naive Beijing time: a time without zone is Beijing time, one with a zone is converted."""
    from ivr.timekeeping import to_local

    if at is None:
        return _now()
    try:
        return to_local(dt.datetime.fromisoformat(at))
    except ValueError:
        raise click.BadParameter(f"not an ISO date/time: {at!r}", param_hint="--at") from None


class _Commands(click.Group):
    """The `hotline` group: the call log failing under any command (ivr.errors.CallLogError) exits ENVIRONMENT."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CallLogError as exc:  # its message holds no caller number and no password
            click.echo(f"hotline: {exc}", err=True)
            sys.exit(ExitCode.ENVIRONMENT)


@click.group(cls=_Commands)
def main() -> None:
    """Call-routing controller of the 12345 government service hotline."""


@main.command()
@routes_option
def run(routes_path: str) -> None:
    """Run the ARI controller until SIGTERM (SIGHUP reloads routes.yaml)."""
    from ivr.controller.app import Controller
    from ivr.settings import Settings

    try:
        settings = Settings.from_env(routes=routes_path)
    except ConfigError as exc:
        click.echo(f"hotline: {exc}", err=True)
        sys.exit(ExitCode.ENVIRONMENT)
    logs.configure(settings.log_level, settings.log_format)
    table = _load_table(routes_path)

    async def serve() -> None:
        controller = Controller(settings, table)
        controller.install_signal_handlers()
        await controller.serve()

    try:
        # uvloop, not asyncio's selector loop: that loop reads every socket with recv(256 KiB)
        # and shrinks the result, which under steady ARI traffic fragments glibc's heap —
        # RSS rose ~1 MiB/min in the soak with the Python heap flat. uvloop reads into one
        # reused buffer and copies out only what arrived.
        uvloop.run(serve())
    except ConfigError as exc:
        click.echo(f"hotline: {exc}", err=True)
        sys.exit(ExitCode.ENVIRONMENT)
    except AriAuthError as exc:
        click.echo(f"hotline: {exc} — check ARI_USER/ARI_PASSWORD against ari.conf", err=True)
        sys.exit(ExitCode.ENVIRONMENT)


@main.command("alert-relay")
@click.option("--config", "config_path", default="var/alert-relay.yml", show_default=True, type=click.Path())
@click.option("--check", is_flag=True, help="Only validate the config (exit 1 listing every FILE:LINE problem).")
def alert_relay(config_path: str, check: bool) -> None:
    """Relay Alertmanager's webhooks to the 政务微信 / 钉钉 robots and JSON receivers (monitoring/README.md)."""
    from aiohttp import web

    from ivr.alerts.relay import load_config, make_app

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        click.echo(f"hotline: {exc}", err=True)
        sys.exit(ExitCode.INPUT)
    if check:
        click.echo(f"{config_path}: ok, channels: {', '.join(sorted(config.channels))}")
        return
    logs.configure()
    host, port = config.listen
    web.run_app(make_app(config), host=host, port=port, access_log=None, print=None)


@main.command()
@click.argument("file", required=False)
@routes_option
@click.option(
    "--dialplan",
    "dialplan_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="extensions.conf to cross-check entry numbers against "
    "[default: dialplan/extensions.conf next to routes.yaml, if there]; '' skips it.",
)
def check(file: str | None, routes_path: str, dialplan_path: str | None) -> None:
    """Validate routes.yaml: a one-line summary, or every problem as FILE:LINE: message."""
    from ivr.routing.dialplan import entry_problems

    table = _load_table(file or routes_path)
    if dialplan_path is None:
        beside = Path(table.source).parent / "dialplan" / "extensions.conf"
        dialplan_path = str(beside) if beside.is_file() else ""
    if dialplan_path:
        problems = entry_problems(table, dialplan_path)
        for problem in problems:
            click.echo(str(problem), err=True)
        if problems:
            sys.exit(ExitCode.INPUT)
    modes: dict[str, int] = {}
    for route in table.routes.values():
        modes[route.mode.value] = modes.get(route.mode.value, 0) + 1
    summary = ", ".join(f"{n} {m}" for m, n in sorted(modes.items()))
    for warning in routes.warnings(table):
        click.echo(f"warning: {warning}", err=True)
    calendar = table.calendar.check(_now().date())
    for note in calendar.provisional:
        click.echo(f"warning: {table.source}: calendar: {note}", err=True)
    if calendar.failure:
        click.echo(f"{table.source}:{table.calendar_line or 1}: {calendar.failure}", err=True)
        sys.exit(ExitCode.INPUT)
    click.echo(
        f"{table.source}: ok — {len(table.routes)} routes ({summary}), {len(table.menus)} menus, version {table.digest}"
    )
    click.echo(f"{table.source}: {calendar.summary}")


@main.command("menu")
@routes_option
@click.option("--at", default=None, help="ISO date/time, Beijing time (default: now); routes not yet live are absent.")
def menu_(routes_path: str, at: str | None) -> None:
    """Every destination a 12345 caller can reach, one JSON object per line, with its keys."""
    from ivr.routing.menu import reachable

    table = _load_table(routes_path)
    for keys, route in reachable(table, _parse_at(at)):
        click.echo(
            json.dumps(
                {
                    "keys": keys,
                    "unit": route.unit,
                    "line_name": route.line_name,
                    "number": route.number,
                    "mode": route.mode.value,
                },
                ensure_ascii=False,
            )
        )


@main.command()
@routes_option
@click.option("--dialed", required=True, help="The number the citizen dialled (12345 or a short number).")
@click.option("--keys", default="", help="Keys pressed, in order; after them the caller stays silent.")
@click.option("--at", default=None, help="ISO date/time to decide at, Beijing time (default: now).")
@click.option("--call", "whole_call", is_flag=True, help="Also play the whole call (implied by the options below).")
@click.option("--department", type=click.Choice(["answer", "busy", "noanswer", "down"]), help="How its lines end.")
@click.option("--operators", type=click.Choice(["free", "none"]), help="Whether an operator seat is free.")
@click.option("--hangup-at", type=click.Choice(HANGUP_STEPS), help="The citizen hangs up at this step.")
@click.option(
    "--dial-path",
    type=click.Choice(["ari", "dialplan"]),
    default="dialplan",
    show_default=True,
    help="Who rings the department's chain (HOTLINE_DIAL_PATH): the controller or Asterisk's dialplan.",
)
def simulate(
    routes_path: str,
    dialed: str,
    keys: str,
    at: str | None,
    whole_call: bool,
    department: str | None,
    operators: str | None,
    hangup_at: str | None,
    dial_path: str,
) -> None:
    """The decision the live controller would take, as one JSON object (same code path).

    With --call (or --department, --operators, --hangup-at) the whole call follows, played by
    the live session code on a scripted call with a virtual clock: one JSON line per thing that
    happens ("t" = seconds since the call arrived: "call" what the telephony was asked, "step"
    the call log's steps, "calllog" its writes), then {"record": ...}, the call's final row. The
    decision stays the first line, so scripts reading it work either way. Log events go to stderr.
    Defaults: the department answers, operators are free, nobody hangs up early.
    """
    from ivr.routing.menu import decide

    table = _load_table(routes_path)
    if any(k not in "0123456789*#" for k in keys):
        raise click.BadParameter("keys are 0-9, * and #", param_hint="--keys")
    when = _parse_at(at)
    decision = decide(table, dialed, keys, when)
    click.echo(json.dumps(decision.as_dict(), ensure_ascii=False))
    if whole_call or department or operators or hangup_at:
        from contextlib import redirect_stdout

        from ivr.call import simulate as sim

        with redirect_stdout(sys.stderr):  # the live call's log events, kept apart from the JSON
            lines = sim.play(
                table,
                dialed,
                keys,
                when,
                department=sim.Line(department or "answer"),
                operators=sim.Operators(operators or "free"),
                hangup_at=sim.HangupStep(hangup_at) if hangup_at else None,
                dial_path=dial_path,
            )
        for line in lines:
            click.echo(json.dumps(line, ensure_ascii=False))


@main.command()
@routes_option
@click.option("--out", type=click.Path(file_okay=False), default="var/sounds", show_default=True)
@click.option(
    "--text", "text_file", type=click.Path(dir_okay=False), default="recordings/prompts.yaml", show_default=True
)
@click.option(
    "--voice",
    type=click.Path(file_okay=False),
    default="recordings/voice",
    show_default=True,
    help="Recorded replacements: NAME.wav here wins over the synthetic voice.",
)
def prompts(routes_path: str, out: str, text_file: str, voice: str) -> None:
    """Render every prompt (static + menu options) to 8 kHz wav files."""
    from ivr import prompts as p

    table = _load_table(routes_path)
    try:
        texts = p.plan(table, p.load_static(Path(text_file)))
        made = p.render(texts, Path(out), Path(voice))
        p.render_hold_music(Path(out))
    except ConfigError as exc:
        click.echo(f"hotline: {exc}", err=True)
        sys.exit(ExitCode.ENVIRONMENT)
    click.echo(f"{len(texts)} prompts in {out} ({len(made)} rendered now)")


@main.command("diff")
@click.argument("old", type=click.Path(dir_okay=False))
@click.argument("new", type=click.Path(dir_okay=False))
@click.option("--at", default=None, help="ISO date/time to compare at, Beijing time (default: now).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of the report.")
def diff_(old: str, new: str, at: str | None, as_json: bool) -> None:
    """What changes for callers if NEW replaces OLD: key paths, direct dial, routes, units.

    Exit 0 when nothing changes, 3 when something does, 1 when a file does not load.
    """
    from ivr.routing.diff import compare

    when = _parse_at(at)
    report = compare(_load_table(old), _load_table(new), when)
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        for line in report.lines():
            click.echo(line)
    sys.exit(ExitCode.CHANGES if report.changed else ExitCode.OK)


from ivr.editing_cli import notice, routes_  # noqa: E402 — the route editors' switches

main.add_command(notice)
main.add_command(routes_)


# -- 漏接回拨 and 限时办结: the callback list and the tickets, read from the call log ------------

from ivr.calllog import (  # noqa: E402 — kept with the commands using it
    CALLBACK_OUTCOMES,
    CallLog,
    is_url,
    open_calllog,
)
from ivr.tickets import from_epoch  # noqa: E402


def _open_calllog(given: str | None) -> CallLog:
    """The call log (--calllog, else where the controller keeps it), its tables brought up to date.

    Exits ENVIRONMENT when there is none or it cannot be opened.
    """
    from ivr.settings import Storage

    target = Storage.from_env(calllog=given).calllog
    if not is_url(target) and not Path(target).is_file():
        click.echo(
            f"hotline: no call log at {target} (is --calllog, HOTLINE_CALLLOG or HOTLINE_STATE right?)", err=True
        )
        sys.exit(ExitCode.ENVIRONMENT)
    log = open_calllog(target)
    try:
        log.migrate()  # a controller not yet restarted on this version may not have the new tables
    except CallLogError as exc:  # its message shows a URL without the password
        click.echo(f"hotline: {exc}", err=True)
        sys.exit(ExitCode.ENVIRONMENT)
    return log


def _local(seconds: float | None) -> str:
    return "-" if seconds is None else from_epoch(seconds).strftime("%Y-%m-%d %H:%M")


@main.command()
@calllog_option
@click.option("--last", default=20, show_default=True)
def calls(calllog: str | None, last: int) -> None:
    """The most recent calls in the call log, one JSON object per line."""
    for row in _open_calllog(calllog).calls()[-last:]:
        click.echo(json.dumps(row, ensure_ascii=False))


@main.group("callbacks")
def callbacks_() -> None:
    """漏接回拨: citizens who hung up before anyone took the call, one entry per caller."""


@callbacks_.command("list")
@calllog_option
@click.option("--all", "show_all", is_flag=True, help="Include entries already done.")
@click.option("--reveal", is_flag=True, help="Show full caller numbers (only when about to dial).")
def callbacks_list(calllog: str | None, show_all: bool, reveal: bool) -> None:
    """The callback list, longest waiting first: id, caller, missed calls, first/last missed,
    attempts, last outcome. Numbers are masked unless --reveal."""
    rows = _open_calllog(calllog).callbacks(None if show_all else "open")
    if not rows:
        click.echo("no callbacks" if show_all else "no open callbacks", err=True)
    for r in rows:
        caller = r["caller_number"] if reveal else r["caller_masked"]
        status = f"  {r['status']:<4}" if show_all else ""
        click.echo(
            f"{r['id']:>6}  {caller:<13}{status}  missed {r['missed_count']:>2}"
            f"  first {_local(r['first_missed_at'])}  last {_local(r['last_missed_at'])}"
            f"  attempts {r['attempts']}  {r['outcome'] or '-'}"
        )


@callbacks_.command("mark")
@click.argument("callback_id", metavar="ID", type=int)
@calllog_option
@click.option("--outcome", required=True, type=click.Choice(CALLBACK_OUTCOMES))
@click.option(
    "--done/--not-done",
    default=None,
    help="Close the entry, or leave it open for another try. Default: done when reached or "
    "wrong_number, open after no_answer or busy.",
)
def callbacks_mark(callback_id: int, calllog: str | None, outcome: str, done: bool | None) -> None:
    """Record a callback attempt on entry ID (from `hotline callbacks list`)."""
    if done is None:
        done = outcome in ("reached", "wrong_number")
    if not _open_calllog(calllog).callback_attempt(callback_id, outcome, time.time(), done):
        click.echo(f"hotline: no callback with id {callback_id} (see `hotline callbacks list --all`)", err=True)
        sys.exit(ExitCode.INPUT)
    click.echo(f"callback {callback_id}: {outcome}, {'done' if done else 'still open'}")


from ivr.ticketing.cli import api_keys, tickets  # noqa: E402 — `hotline tickets …`, `hotline api-keys …`

main.add_command(tickets)
main.add_command(api_keys)

from ivr.console.cli import operators  # noqa: E402 — `hotline operators …`: the console's accounts

main.add_command(operators)

from ivr.operators.cli import seats  # noqa: E402 — the operators' seats of the running controller

main.add_command(seats)


# -- retention (PIPL) and the call log's journal ---------------------------------------------------


@main.command("purge")
@calllog_option
@click.option(
    "--keep-calls-days",
    type=click.IntRange(0),
    default=1095,
    show_default=True,
    help="Delete calls, and closed tickets, older than this many days.",
)
@click.option(
    "--keep-numbers-days",
    type=click.IntRange(0),
    default=30,
    show_default=True,
    help="Erase full caller numbers of callback entries idle this long (done entries: at once).",
)
@click.option(
    "--keep-recordings-days",
    type=click.IntRange(0),
    default=None,
    help="Delete call recordings (rows and files) older than this [default: routes.yaml recording.keep_days].",
)
@click.option(
    "--keep-messages-days",
    type=click.IntRange(0),
    default=None,
    help="Delete messages (rows and files) older than this [default: routes.yaml recording.keep_message_days].",
)
@routes_option
@click.option("--dry-run", is_flag=True, help="Count what would go; change nothing.")
def purge_(
    calllog: str | None,
    keep_calls_days: int,
    keep_numbers_days: int,
    keep_recordings_days: int | None,
    keep_messages_days: int | None,
    routes_path: str,
    dry_run: bool,
) -> None:
    """Retention: erase full caller numbers no longer needed, delete records past their time.

    Prints the counts as one JSON object. Safe while the controller runs. Ages are counted from
    the controller's clock: HOTLINE_CLOCK_START, when set, for a drill (or a test) of retention.
    """
    import contextlib

    if keep_recordings_days is None or keep_messages_days is None:  # the centre's policy, as the controller reads it
        from ivr.recording.policy import RecordingPolicy

        if Path(routes_path).is_file():
            policy = _load_table(routes_path).recording
        else:
            click.echo(f"hotline: no {routes_path}: recordings and messages kept by the default policy", err=True)
            policy = RecordingPolicy()
        keep_recordings_days = policy.keep_days if keep_recordings_days is None else keep_recordings_days
        keep_messages_days = policy.keep_message_days if keep_messages_days is None else keep_messages_days
    from ivr.timekeeping import LOCAL_TZ

    now = _now().replace(tzinfo=LOCAL_TZ).timestamp()  # a drill's purge (HOTLINE_CLOCK_START) sees the drill's time
    with contextlib.redirect_stdout(sys.stderr):  # the call log's own notices stay off stdout
        counts = _open_calllog(calllog).purge(
            now,
            keep_calls_days=keep_calls_days,
            keep_numbers_days=keep_numbers_days,
            dry_run=dry_run,
            keep_recordings_days=keep_recordings_days,
            keep_messages_days=keep_messages_days,
        )
    click.echo(json.dumps({"dry_run": dry_run, **counts}))


@main.command("journal")
@calllog_option
@click.option(
    "--journal",
    "journal_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="The journal (default: $HOTLINE_JOURNAL, else the call log's path + .journal, "
    "or $HOTLINE_STATE/calllog.journal for a PostgreSQL call log).",
)
def journal_(calllog: str | None, journal_path: str | None) -> None:
    """Call-log writes waiting in the journal for the database, as one JSON object.

    Nonzero `pending` while the controller runs means the database refuses writes (locked,
    read-only, full); the controller replays the journal by itself once it can.
    """
    from ivr.calllog.journal import Journal
    from ivr.settings import Storage

    path = Storage.from_env(calllog=calllog, journal=journal_path).journal
    journal = Journal(path)
    try:
        pending, size = journal.count(), journal.size()
    except OSError as exc:
        click.echo(f"hotline: cannot read the journal {path}: {exc.strerror}", err=True)
        sys.exit(ExitCode.ENVIRONMENT)
    click.echo(json.dumps({"journal": str(path), "pending": pending, "bytes": size}))


# -- 通报考核: the per-department assessment report, from the call log --------------------------------


def _report_date(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        if len(value) != 10:
            raise ValueError
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"not a date: {value!r} (expected YYYY-MM-DD, a local date)") from None


def _relative_period(period: str, today: dt.date) -> tuple[dt.date, dt.date]:
    """yesterday: the day before today; last-month: the whole calendar month before today's."""
    if period == "yesterday":
        day = today - dt.timedelta(days=1)
        return day, day
    last = today.replace(day=1) - dt.timedelta(days=1)
    return last.replace(day=1), last


def _table_in_force(
    log: CallLog, table: routes.RouteTable, start: dt.date, end: dt.date
) -> tuple[routes.RouteTable, str]:
    """The number ledger's table: the one in force at the period's end (routes history), else routes.yaml."""
    from ivr.calllog import editing
    from ivr.report.figures import window

    try:
        current, changes = editing.in_force(log, *window(start, end))
        if current is None or current["digest"] == table.digest:
            return table, editing.period_note(current, changes)
        return routes.parse(current["text"], f"routes {current['digest']}"), editing.period_note(current, changes)
    except (RoutesError, CallLogError) as exc:  # an old table this version reads otherwise, an old log
        click.echo(f"hotline: the ledger shows {table.source}: the table in force is unreadable ({exc})", err=True)
        return table, ""


@main.command("report")
@click.option(
    "--from",
    "start",
    default=None,
    metavar="YYYY-MM-DD",
    callback=_report_date,
    help="First day of the period (local date, included).",
)
@click.option(
    "--to",
    "end",
    default=None,
    metavar="YYYY-MM-DD",
    callback=_report_date,
    help="Last day of the period (local date, included).",
)
@click.option(
    "--period",
    type=click.Choice(["yesterday", "last-month"]),
    default=None,
    help="Instead of --from/--to, relative to today's local date (what the systemd timers use).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "html", "json", "xlsx"]),
    default=None,
    help="Output format. Default: from --out's suffix (.csv, .html, .json, .xlsx), else json.",
)
@click.option(
    "--out",
    type=click.Path(),
    default=None,
    help="Write to this file, or into this folder (ending in / or existing) named by period (default: stdout).",
)
@calllog_option
@routes_option
@click.option(
    "--callback-minutes",
    type=click.IntRange(1, 24 * 60),
    default=30,
    show_default=True,
    help="A missed call counts as called back in time within this many minutes.",
)
def report_(
    start: dt.date | None,
    end: dt.date | None,
    period: str | None,
    fmt: str | None,
    out: str | None,
    calllog: str | None,
    routes_path: str,
    callback_minutes: int,
) -> None:
    """通报考核: per-unit assessment, centre indicators and the number ledger for a period.

    Dates are local (Asia/Shanghai) and inclusive; the definitions of every figure are in the
    output (and in ivr/report/figures.py).
    """
    import contextlib

    from ivr.report import figures as report
    from ivr.report import render

    if period is not None:
        if start is not None or end is not None:
            raise click.BadParameter("give --period or --from/--to, not both", param_hint="--period")
        start, end = _relative_period(period, _now().date())
    elif start is None or end is None:
        raise click.BadParameter("give --from and --to (or --period)", param_hint="--from/--to")
    if start > end:
        raise click.BadParameter(f"--from {start} is after --to {end}", param_hint="--from")
    into_folder = out is not None and (out.endswith(("/", "\\")) or Path(out).is_dir())
    if fmt is None:
        suffix = Path(out).suffix.lower().lstrip(".") if out and not into_folder else ""
        fmt = {"htm": "html"}.get(suffix, suffix) if suffix in ("csv", "html", "htm", "json", "xlsx") else "json"
    if out is not None and into_folder:
        Path(out).mkdir(parents=True, exist_ok=True)
        out = str(Path(out) / f"12345-report-{render.period_name(start, end)}.{fmt}")
    table = _load_table(routes_path)
    with contextlib.redirect_stdout(sys.stderr):  # the call log's own notices (a schema upgrade) stay off stdout
        log = _open_calllog(calllog)
    rows = report.load(log, start, end)
    table, routes_note = _table_in_force(log, table, start, end)
    built = report.build(
        rows, start, end, as_of=time.time(), table=table, callback_minutes=callback_minutes, routes_note=routes_note
    )
    data = render.RENDERERS[fmt](built)
    if out is None:
        click.echo(data, nl=False)  # bytes go to the binary stream as they are (the CSV keeps its BOM)
        return
    try:
        Path(out).write_bytes(data)
    except OSError as exc:
        click.echo(f"hotline: cannot write {out}: {exc.strerror}", err=True)
        sys.exit(ExitCode.ENVIRONMENT)
    c = built.centre
    click.echo(
        f"{out}: {fmt} report {start} .. {end}: {c.calls} calls, {len(built.units)} unit rows, "
        f"{len(built.ledger)} numbers",
        err=True,
    )


# -- the production host: site file, install, backups (ivr/site, ivr/install) ------------------------

from ivr.install.commands import add_commands  # noqa: E402 — kept with the commands it adds

add_commands(main)


# -- recordings and messages (ivr/recording) ---------------------------------------------------------

from ivr.recording.cli import messages, qa, recordings  # noqa: E402 — kept with the commands they are

main.add_command(recordings)
main.add_command(messages)
main.add_command(qa)
