"""`hotline` — the operators' command line. Thin: parse, call one function, print, exit code.

Exit codes: 0 ok, 1 the input is wrong (routes.yaml, arguments), 2 the environment is
wrong (missing secret, Asterisk unreachable, SIPp failed).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
import time
from pathlib import Path

import click

from ivr import logs, routes
from ivr.errors import AriAuthError, ConfigError, RoutesError

EXIT_INPUT = 1
EXIT_ENV = 2

routes_option = click.option("--routes", "routes_path", default="routes.yaml", show_default=True,
                             type=click.Path(dir_okay=False), help="The routing table.")


def _load_table(path: str) -> routes.RouteTable:
    try:
        return routes.load(path)
    except RoutesError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(EXIT_INPUT)


def _parse_at(at: str | None) -> dt.datetime:
    if at is None:
        return dt.datetime.now()
    try:
        return dt.datetime.fromisoformat(at)
    except ValueError:
        raise click.BadParameter(f"not an ISO date/time: {at!r}", param_hint="--at") from None


@click.group()
def main() -> None:
    """Call-routing controller of the 12345 government service hotline."""


@main.command()
@routes_option
def run(routes_path: str) -> None:
    """Run the ARI controller until SIGTERM (SIGHUP reloads routes.yaml)."""
    from ivr.app import Controller
    from ivr.config import Settings

    try:
        settings = Settings.from_env(routes=routes_path)
    except ConfigError as exc:
        click.echo(f"hotline: {exc}", err=True)
        sys.exit(EXIT_ENV)
    logs.configure(settings.log_level, settings.log_format)
    table = _load_table(routes_path)

    async def serve() -> None:
        controller = Controller(settings, table)
        controller.install_signal_handlers()
        await controller.serve()

    try:
        asyncio.run(serve())
    except AriAuthError as exc:
        click.echo(f"hotline: {exc} — check ARI_USER/ARI_PASSWORD against ari.conf", err=True)
        sys.exit(EXIT_ENV)


@main.command()
@click.argument("file", required=False)
@routes_option
def check(file: str | None, routes_path: str) -> None:
    """Validate routes.yaml: a one-line summary, or every problem as FILE:LINE: message."""
    table = _load_table(file or routes_path)
    modes: dict[str, int] = {}
    for route in table.routes.values():
        modes[route.mode.value] = modes.get(route.mode.value, 0) + 1
    summary = ", ".join(f"{n} {m}" for m, n in sorted(modes.items()))
    for warning in routes.warnings(table):
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"{table.source}: ok — {len(table.routes)} routes ({summary}), {len(table.menus)} menus, "
               f"version {table.digest}")


@main.command("menu")
@routes_option
@click.option("--at", default=None, help="ISO date/time (default: now); routes not yet live are absent.")
def menu_(routes_path: str, at: str | None) -> None:
    """Every destination a 12345 caller can reach, one JSON object per line, with its keys."""
    from ivr.menu import reachable

    table = _load_table(routes_path)
    for keys, route in reachable(table, _parse_at(at)):
        click.echo(json.dumps({"keys": keys, "unit": route.unit, "line_name": route.line_name,
                               "number": route.number, "mode": route.mode.value}, ensure_ascii=False))


@main.command()
@routes_option
@click.option("--dialed", required=True, help="The number the citizen dialled (12345 or a short number).")
@click.option("--keys", default="", help="Keys pressed, in order; after them the caller stays silent.")
@click.option("--at", default=None, help="ISO date/time to decide at (default: now).")
def simulate(routes_path: str, dialed: str, keys: str, at: str | None) -> None:
    """The decision the live controller would take, as one JSON object (same code path)."""
    from ivr.menu import decide

    table = _load_table(routes_path)
    if any(k not in "0123456789*#" for k in keys):
        raise click.BadParameter("keys are 0-9, * and #", param_hint="--keys")
    decision = decide(table, dialed, keys, _parse_at(at))
    click.echo(json.dumps(decision.as_dict(), ensure_ascii=False))


@main.command()
@routes_option
@click.option("--out", type=click.Path(file_okay=False), default="var/sounds", show_default=True)
@click.option("--text", "text_file", type=click.Path(dir_okay=False), default="recordings/prompts.yaml",
              show_default=True)
@click.option("--voice", type=click.Path(file_okay=False), default="recordings/voice", show_default=True,
              help="Recorded replacements: NAME.wav here wins over the synthetic voice.")
def prompts(routes_path: str, out: str, text_file: str, voice: str) -> None:
    """Render every prompt (static + menu options) to 8 kHz wav files."""
    from ivr import prompts as p

    table = _load_table(routes_path)
    try:
        texts = p.plan(table, p.load_static(Path(text_file)))
        made = p.render(texts, Path(out), Path(voice))
    except ConfigError as exc:
        click.echo(f"hotline: {exc}", err=True)
        sys.exit(EXIT_ENV)
    click.echo(f"{len(texts)} prompts in {out} ({len(made)} rendered now)")


@main.command()
@click.option("--to", "to", default="12345", show_default=True, help="Number to call.")
@click.option("--keys", default="", help="Keys to press after answer, e.g. 1 or 61.")
@click.option("--talk", "talk", default=20.0, show_default=True,
              help="Seconds to stay on after the last key (the hotline or the department may hang up first).")
@click.option("--caller", default="13800138000", show_default=True, help="The citizen's number (shown masked).")
@click.option("--calllog", default="var/calllog.sqlite3", show_default=True, type=click.Path(dir_okay=False))
def call(to: str, keys: str, talk: float, caller: str, calllog: str) -> None:
    """Place a demo citizen call with SIPp and print what the call log recorded."""
    from ivr.calllog.sqlite import SqliteCallLog
    from ivr.citizen import place_call

    since = time.time()
    try:
        run_ = place_call(to, keys, caller=caller, talk_ms=int(talk * 1000))
    except (ValueError, FileNotFoundError) as exc:
        click.echo(f"hotline: {exc}", err=True)
        sys.exit(EXIT_INPUT if isinstance(exc, ValueError) else EXIT_ENV)
    click.echo(f"sipp: {'call completed' if run_.succeeded else 'call FAILED'} (exit {run_.returncode}, "
               f"traces in {run_.workdir})")
    log = SqliteCallLog(calllog)
    record = None
    for _ in range(50):  # the controller writes the record right after the hangup
        rows = [r for r in log.calls("started_at >= ?", (since - 1,)) if r["outcome"] != "in_progress"]
        if rows:
            record = rows[-1]
            break
        time.sleep(0.1)
    if record is None:
        click.echo("no finished call in the call log (is the controller running?)", err=True)
        sys.exit(EXIT_ENV)
    shown = ("entry", "caller_masked", "track", "keys", "menu_path", "decision", "reason", "unit", "mode",
             "target_number", "dial_status", "operator_status", "outcome", "hangup_by", "talk_seconds")
    for name in shown:
        click.echo(f"  {name:16} {record[name]}")
    sys.exit(0 if run_.succeeded else EXIT_ENV)


@main.command()
@click.option("--calllog", default="var/calllog.sqlite3", show_default=True, type=click.Path(dir_okay=False))
@click.option("--last", default=20, show_default=True)
def calls(calllog: str, last: int) -> None:
    """The most recent calls in the call log, one JSON object per line."""
    from ivr.calllog.sqlite import SqliteCallLog

    for row in SqliteCallLog(calllog).calls()[-last:]:
        click.echo(json.dumps(row, ensure_ascii=False))
