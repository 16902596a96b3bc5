"""`hotline notice …` and `hotline routes …`: the route editors' switches, kept in the call log.

    hotline notice start --say TEXT | --text-prompt NAME  [--entries 12345,12310] [--all-to-operators]
                         --until 2026-09-16T18:00 [--by NAME]
    hotline notice list [--all] · hotline notice end ID
    hotline routes history · routes show DIGEST · routes rollback DIGEST [--by NAME]
    hotline routes stage NEW.yaml --share 10 · routes promote · routes drop

Every command names its author: `--by`, else the unix user running it. A table written to routes.yaml
(rollback, promote) or staged is first checked as `hotline check` does, and refused if it fails; the
running controller reloads the written file by itself (it watches it) and puts it on record.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import pwd
import sys
import tempfile
import time
from pathlib import Path

import click

from ivr import logs
from ivr.calllog import CallLog, editing
from ivr.cli_options import by_option, calllog_option
from ivr.errors import CallLogError, ConfigError, RoutesError
from ivr.exitcode import ExitCode
from ivr.routing import notices, routes
from ivr.timekeeping import LOCAL_TZ

routes_option = click.option(
    "--routes",
    "routes_path",
    default="routes.yaml",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The routing table the controller runs.",
)


def _author(by: str | None) -> str:
    if by:
        return by
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _calllog(target: str | None) -> CallLog:
    from ivr.cli import _open_calllog

    with contextlib.redirect_stdout(sys.stderr):
        return _open_calllog(target)


def _when(at: float) -> str:
    return dt.datetime.fromtimestamp(at, LOCAL_TZ).strftime("%Y-%m-%d %H:%M")


def checked(text: str, filename: str, routes_path: str) -> routes.RouteTable:
    """`text` as `hotline check` would take it (routes.yaml's rules, the dial plan beside it); exit 1 if not."""
    from ivr.routing.dialplan import entry_problems

    try:
        table = routes.parse(text, filename)
    except RoutesError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        click.echo(f"hotline: {filename} fails the check: refused, nothing changed", err=True)
        sys.exit(ExitCode.INPUT)
    dialplan = Path(routes_path).parent / "dialplan" / "extensions.conf"
    if dialplan.is_file():
        problems = entry_problems(table, dialplan)
        for problem in problems:
            click.echo(str(problem), err=True)
        if problems:
            click.echo(f"hotline: {filename} fails the check: refused, nothing changed", err=True)
            sys.exit(ExitCode.INPUT)
    return table


def _write_routes(path: Path, text: str) -> None:
    """Replace routes.yaml at once (a reader sees the old file or the new one, never half)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        with contextlib.suppress(OSError):
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# -- notices ------------------------------------------------------------------------------------
def _sound_dirs(sounds: tuple[str, ...]) -> list[Path]:
    from ivr.prompts import live_dirs

    return [Path(d) for d in sounds] if sounds else live_dirs(Path(os.environ.get("HOTLINE_STATE") or "var"))


def render_notice(text: str, dirs: list[Path]) -> str:
    """Render `text` to a prompt in every dir now (espeak-ng, as `hotline prompts`); its name."""
    from ivr.prompts import render_live

    name = notices.prompt_for("say-" + hashlib.sha256(text.encode()).hexdigest()[:10])
    render_live({name: text}, dirs)
    return name


class _Group(click.Group):
    """A call log that cannot be read or written is said in one line (exit 2), not as a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except CallLogError as exc:
            click.echo(f"hotline: {exc}", err=True)
            sys.exit(ExitCode.ENVIRONMENT)


@click.group("notice", cls=_Group)
def notice() -> None:
    """紧急公告: an announcement before the menu, optionally sending every caller to the operators."""
    logs.configure()  # each change is also a log line (stderr), for the journal of the shift


@notice.command("start")
@click.option("--say", default=None, help="The announcement's text (Mandarin), rendered now.")
@click.option("--text-prompt", "prompt", default=None, help="Or: a prompt already rendered (NAME.wav).")
@click.option("--entries", default="all", show_default=True, help="Entry numbers it plays on, e.g. 12345,12310.")
@click.option("--all-to-operators", is_flag=True, help="No menu: every caller goes to the operators after it.")
@click.option("--until", "until", required=True, help="When it ends by itself: ISO local time (Beijing).")
@click.option("--sounds", multiple=True, help="Where prompts go (default: var/sounds and the running Asterisk's).")
@by_option
@calllog_option
@routes_option
def notice_start(
    say: str | None,
    prompt: str | None,
    entries: str,
    all_to_operators: bool,
    until: str,
    sounds: tuple[str, ...],
    by: str | None,
    calllog: str | None,
    routes_path: str,
) -> None:
    """Start a notice now; callers hear it from their next call on."""
    from ivr.cli import _load_table

    if (say is None) == (prompt is None):
        raise click.UsageError("give exactly one of --say TEXT or --text-prompt NAME")
    now = dt.datetime.now(LOCAL_TZ)
    try:
        ends = notices.parse_until(until, now)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--until") from None
    table = _load_table(routes_path)
    try:
        chosen = notices.parse_entries(entries, table.entries)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--entries") from None
    dirs = _sound_dirs(sounds)
    if say is not None:
        why = notices.check_text(say)
        if why:
            raise click.BadParameter(why, param_hint="--say")
        try:
            prompt = render_notice(say, dirs)
        except (ConfigError, OSError) as exc:
            click.echo(f"hotline: cannot render the announcement: {exc}", err=True)
            sys.exit(ExitCode.ENVIRONMENT)
    assert prompt is not None
    if not (dirs[0] / f"{prompt}.wav").is_file():
        raise click.BadParameter(f"no prompt {prompt}.wav in {dirs[0]} (render it first)", param_hint="--text-prompt")
    log = _calllog(calllog)
    nid = editing.start_notice(
        log,
        prompt=prompt,
        text=say or "",
        entries=chosen,
        to_operators=all_to_operators,
        starts=now.timestamp(),
        ends=ends.timestamp(),
        author=_author(by),
    )
    then = "every caller goes to the operators" if all_to_operators else "then the menu"
    on = ", ".join(sorted(chosen)) or "every entry"
    click.echo(f"notice {nid} live now until {_when(ends.timestamp())} (Beijing time) on {on}: {prompt}, {then}")


@notice.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include notices that ended.")
@calllog_option
@routes_option
def notice_list(show_all: bool, calllog: str | None, routes_path: str) -> None:
    """Notices live or to come: the commands' (by id) and routes.yaml's (by name)."""
    from ivr.cli import _load_table

    now = time.time()
    log = _calllog(calllog)
    rows = editing.notices(log, None if show_all else now)
    for row in rows:
        state = "live" if row["starts_at"] <= now < row["ends_at"] else "ended" if row["ends_at"] <= now else "to come"
        click.echo(
            f"{row['id']:>4}  {state:<7} {_when(row['starts_at'])} .. {_when(row['ends_at'])}  "
            f"{row['entries'] or 'all entries'}  {'to operators' if row['to_operators'] else 'then menu'}  "
            f"{row['prompt']}  by {row['author']}" + (f" (ended by {row['ended_by']})" if row["ended_by"] else "")
        )
    table = _load_table(routes_path)
    for n in table.notices:
        if show_all or n.ends.timestamp() > now:
            state = "live" if n.starts.timestamp() <= now < n.ends.timestamp() else "to come"
            state = state if n.ends.timestamp() > now else "ended"
            click.echo(
                f"{n.id:>4}  {state:<7} {_when(n.starts.timestamp())} .. {_when(n.ends.timestamp())}  "
                f"{','.join(sorted(n.entries)) or 'all entries'}  {'to operators' if n.to_operators else 'then menu'}  "
                f"{n.prompt}  in {table.source}"
            )
    if not rows and not table.notices:
        click.echo("no notices")


@notice.command("end")
@click.argument("notice_id", metavar="ID", type=int)
@by_option
@calllog_option
def notice_end(notice_id: int, by: str | None, calllog: str | None) -> None:
    """End a notice now (one in routes.yaml ends when its entry is removed or its `until` passes)."""
    if not editing.end_notice(_calllog(calllog), notice_id, _author(by), time.time()):
        click.echo(f"hotline: no live notice {notice_id} (see `hotline notice list`)", err=True)
        sys.exit(ExitCode.INPUT)
    click.echo(f"notice {notice_id} ended")


# -- routes: history, rollback, stage ---------------------------------------------------------------
@click.group("routes", cls=_Group)
def routes_() -> None:
    """Every table that went live, rollback to one of them, and staged (canary) tables."""
    logs.configure()


@routes_.command("history")
@click.option("--last", default=20, show_default=True)
@calllog_option
def routes_history(last: int, calllog: str | None) -> None:
    """Tables that went live, newest first: when, version, by whom, how, and what changed."""
    rows = editing.history(_calllog(calllog), last)
    if not rows:
        click.echo("no tables on record yet (the controller records each table it loads)")
    for row in rows:
        click.echo(f"{_when(row['live_at'])}  {row['digest']}  {row['author']:<10} {row['how']:<14} {row['summary']}")


@routes_.command("show")
@click.argument("digest")
@click.option("--diff", "show_diff", is_flag=True, help="The `hotline diff` against the table before it instead.")
@calllog_option
def routes_show(digest: str, show_diff: bool, calllog: str | None) -> None:
    """The full text of the table with version DIGEST (as it went live, or as staged)."""
    row = editing.find(_calllog(calllog), digest)
    if row is None:
        click.echo(f"hotline: no table {digest} on record (or the prefix is not unique)", err=True)
        sys.exit(ExitCode.INPUT)
    shown = row["diff"] if show_diff else row["text"]
    click.echo(shown, nl=not shown.endswith("\n"))


@routes_.command("rollback")
@click.argument("digest")
@by_option
@calllog_option
@routes_option
def routes_rollback(digest: str, by: str | None, calllog: str | None, routes_path: str) -> None:
    """Write the table DIGEST back to routes.yaml (the controller reloads it); refused if it fails the check."""
    log = _calllog(calllog)
    row = editing.find(log, digest)
    if row is None:
        click.echo(f"hotline: no table {digest} on record (or the prefix is not unique)", err=True)
        sys.exit(ExitCode.INPUT)
    table = checked(row["text"], f"{routes_path} (version {row['digest']})", routes_path)
    path = Path(routes_path)
    with contextlib.suppress(OSError):
        if routes.digest_of(path.read_text(encoding="utf-8")) == table.digest:
            click.echo(f"{routes_path} is already version {table.digest}: nothing to do")
            return
    editing.claim(log, table.digest, _author(by), "rollback", time.time())
    _write_routes(path, row["text"])
    click.echo(f"{routes_path}: rolled back to {table.digest} (live {_when(row['at'])}); the controller reloads it")


@routes_.command("stage")
@click.argument("new", type=click.Path(dir_okay=False, exists=True))
@click.option("--share", type=click.IntRange(1, 99), required=True, help="Percent of callers routed on NEW.")
@by_option
@calllog_option
@routes_option
def routes_stage(new: str, share: int, by: str | None, calllog: str | None, routes_path: str) -> None:
    """Route a stable share of callers (by their keyed hash) on NEW; the rest stay on routes.yaml."""
    text = Path(new).read_text(encoding="utf-8")
    table = checked(text, new, routes_path)
    with contextlib.suppress(OSError):
        if routes.digest_of(Path(routes_path).read_text(encoding="utf-8")) == table.digest:
            click.echo(f"hotline: {new} is the table already live ({table.digest}): nothing to stage", err=True)
            sys.exit(ExitCode.INPUT)
    editing.stage(_calllog(calllog), text=text, source=new, share=share, author=_author(by), at=time.time())
    click.echo(f"{new}: version {table.digest} staged for {share} % of callers; `hotline routes promote` or `drop`")


@routes_.command("promote")
@by_option
@calllog_option
@routes_option
def routes_promote(by: str | None, calllog: str | None, routes_path: str) -> None:
    """Make the staged table the live one: write it to routes.yaml (checked again first)."""
    log = _calllog(calllog)
    row = editing.current_stage(log)
    if row is None:
        click.echo("hotline: no table is staged", err=True)
        sys.exit(ExitCode.INPUT)
    table = checked(row["text"], f"{row['source']} (staged {row['digest']})", routes_path)
    author = _author(by)
    editing.claim(log, table.digest, author, "promote", time.time())
    _write_routes(Path(routes_path), row["text"])
    editing.end_stage(log, "promoted", author, time.time())
    click.echo(
        f"{routes_path}: now version {table.digest} (was staged for {row['share']} %); the controller reloads it"
    )


@routes_.command("drop")
@by_option
@calllog_option
def routes_drop(by: str | None, calllog: str | None) -> None:
    """End the staged table: every caller is routed on routes.yaml again."""
    row = editing.end_stage(_calllog(calllog), "dropped", _author(by), time.time())
    if row is None:
        click.echo("hotline: no table is staged", err=True)
        sys.exit(ExitCode.INPUT)
    click.echo(f"staged version {row['digest']} dropped; every caller is on routes.yaml again")
