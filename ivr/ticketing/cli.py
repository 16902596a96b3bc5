"""`hotline tickets …`: read tickets and move them through their lifecycle (ivr.ticketing.lifecycle).

    hotline tickets [--open] [--overdue]                 the tickets, one JSON object per line (= `list`)
    hotline tickets list [--unit U] [--state S]…         the same, filtered
    hotline tickets show ID                              one ticket and its events, as JSON
    hotline tickets dispatch ID [--unit U] [--summary T] [--category C] [--urgency normal|urgent|critical]
    hotline tickets accept ID · reply ID TEXT · close ID [--note T]
    hotline tickets return ID --reason T · reopen ID --reason T · extend ID --workdays N --reason T
    hotline api-keys add ID --unit U [--partner] [--webhook URL] · api-keys list · api-keys remove ID

Every action names its author (`--by`, else the unix user; recorded as "cli:<name>") and is refused,
with nothing changed, when the ticket's state does not allow it (exit 1, the reason on stderr). The
deadline's workdays come from the calendar of the routing table (`--routes`, routes.yaml by default).
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from ivr.cli_options import by_option, calllog_option
from ivr.errors import RoutesError, TicketError
from ivr.exitcode import ExitCode
from ivr.routing.calendar import PACKAGE_ONLY, Calendar
from ivr.routing.routes import RouteTable
from ivr.ticketing.keys import KeyStore, keys_dir
from ivr.ticketing.lifecycle import MAX_EXTEND_WORKDAYS, URGENCIES, State
from ivr.ticketing.store import TicketBook
from ivr.tickets import from_epoch

routes_option = click.option(
    "--routes",
    "routes_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="The routing table whose calendar counts the workdays [default: routes.yaml when there is one].",
)
ticket_arg = click.argument("ticket_id", metavar="ID")


def _local(seconds: float | None) -> str:
    return "-" if seconds is None else from_epoch(seconds).strftime("%Y-%m-%d %H:%M")


def _table(routes_path: str | None) -> RouteTable | None:
    """The routing table (its calendar counts the workdays, its units are the ones to dispatch to)."""
    from ivr.routing import routes

    path = routes_path or "routes.yaml"
    if routes_path is None and not Path(path).is_file():
        click.echo("hotline: no routes.yaml here: workdays from the packaged official calendar only", err=True)
        return None
    try:
        return routes.load(path)
    except RoutesError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(ExitCode.INPUT)


def _book(calllog: str | None, calendar: Calendar = PACKAGE_ONLY) -> TicketBook:
    from ivr.cli import _open_calllog

    with contextlib.redirect_stdout(sys.stderr):  # its upgrade's log lines are not the command's output
        # This process has no webhook sender: each move leaves its push for the controller (ivr.ticketing.outbox).
        return TicketBook(_open_calllog(calllog), calendar, outbox=True)


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "created": _local(row["created_at"]), "deadline": _local(row["deadline_at"])}


@click.group("tickets", invoke_without_command=True)
@calllog_option
@click.option("--open", "only_open", is_flag=True, help="Only tickets not yet closed.")
@click.option("--overdue", is_flag=True, help="Only open tickets past their deadline.")
@click.pass_context
def tickets(ctx: click.Context, calllog: str | None, only_open: bool, overdue: bool) -> None:
    """Tickets (限时办结): without a command, one JSON object per line; `created`/`deadline` are local time."""
    if ctx.invoked_subcommand is not None:
        return
    book = _book(calllog)
    if overdue:
        rows = book.calllog.overdue(time.time())
    else:
        rows = book.calllog.tickets("status = 'open'") if only_open else book.calllog.tickets()
    for row in rows:
        click.echo(json.dumps(_shown(row), ensure_ascii=False))


@tickets.command("list")
@calllog_option
@click.option("--unit", default=None, help="Only this unit's tickets.")
@click.option("--state", "states", multiple=True, type=click.Choice([s.value for s in State]), help="Only these.")
@click.option("--limit", default=500, show_default=True, type=click.IntRange(1))
def list_(calllog: str | None, unit: str | None, states: tuple[str, ...], limit: int) -> None:
    """Tickets by deadline, oldest first, one JSON object per line."""
    for row in _book(calllog).find(unit=unit, states=states or None, limit=limit):
        click.echo(json.dumps(_shown(row), ensure_ascii=False))


@tickets.command("show")
@ticket_arg
@calllog_option
def show(ticket_id: str, calllog: str | None) -> None:
    """One ticket with its events (who did what when), as one JSON object."""
    book = _book(calllog)
    with _refusals():
        row = book.get(ticket_id)
        events = book.events(ticket_id)
    for event in events:
        event["when"] = _local(event["at"])
    click.echo(json.dumps({**_shown(row), "events": events}, ensure_ascii=False, indent=2))


@contextlib.contextmanager
def _refusals() -> Any:
    try:
        yield
    except TicketError as exc:
        click.echo(f"hotline: {exc}; nothing changed", err=True)
        sys.exit(ExitCode.INPUT)


def _act(calllog: str | None, routes_path: str | None, ticket_id: str, action: str, by: str | None, **kw: Any) -> None:
    from ivr import logs
    from ivr.editing_cli import _author

    logs.configure()  # each action is also a log line (stderr), for the shift's journal
    table = _table(routes_path)
    unit = kw.get("unit")
    if table is not None and unit is not None and unit not in {r.unit for r in table.routes.values()}:
        known = ", ".join(sorted({r.unit for r in table.routes.values()}))
        click.echo(
            f"hotline: --unit {unit!r} is no unit of {table.source} (one of: {known}); nothing changed", err=True
        )
        sys.exit(ExitCode.INPUT)
    book = _book(calllog, table.calendar if table is not None else PACKAGE_ONLY)
    with _refusals():
        change = book.act(ticket_id, action, actor=f"cli:{_author(by)}", **kw)
    row = change.ticket
    click.echo(f"ticket {ticket_id}: {row['state']}, unit {row['unit'] or '-'}, due {_local(row['deadline_at'])}")


def _action(name: str, help_text: str) -> Any:
    def wrap(func: Any) -> Any:
        for option in (by_option, routes_option, calllog_option, ticket_arg):
            func = option(func)
        return tickets.command(name, help=help_text)(func)

    return wrap


@_action("dispatch", "派单: send the ticket to its unit (or --unit another), with its content.")
@click.option("--unit", default=None, help="The responsible unit [default: the ticket's].")
@click.option("--summary", default=None, help="诉求: what the citizen asks.")
@click.option("--category", default=None)
@click.option("--urgency", default=None, type=click.Choice(URGENCIES))
def dispatch(ticket_id: str, calllog: str | None, routes_path: str | None, by: str | None, **kw: Any) -> None:
    _act(calllog, routes_path, ticket_id, "dispatch", by, **kw)


@_action("accept", "The unit takes the ticket (签收).")
def accept(ticket_id: str, calllog: str | None, routes_path: str | None, by: str | None) -> None:
    _act(calllog, routes_path, ticket_id, "accept", by)


@_action("reply", "The unit's answer (答复); a partner's reply to a hand-off closes it.")
@click.argument("text")
def reply(ticket_id: str, text: str, calllog: str | None, routes_path: str | None, by: str | None) -> None:
    _act(calllog, routes_path, ticket_id, "reply", by, text=text)


@_action("close", "办结: close a replied ticket (or one 12345 answered itself).")
@click.option("--note", default=None)
def close(ticket_id: str, note: str | None, calllog: str | None, routes_path: str | None, by: str | None) -> None:
    _act(calllog, routes_path, ticket_id, "close", by, text=note)


@_action("return", "退回: the unit sends the ticket back to 12345; its clock stops until dispatched again.")
@click.option("--reason", required=True)
def return_(ticket_id: str, reason: str, calllog: str | None, routes_path: str | None, by: str | None) -> None:
    _act(calllog, routes_path, ticket_id, "return", by, reason=reason)


@_action("reopen", "重办: a replied or closed ticket is handled again, with its workdays anew.")
@click.option("--reason", required=True)
def reopen(ticket_id: str, reason: str, calllog: str | None, routes_path: str | None, by: str | None) -> None:
    _act(calllog, routes_path, ticket_id, "reopen", by, reason=reason)


@_action("extend", "延期: more workdays for a dispatched or accepted ticket.")
@click.option("--workdays", required=True, type=click.IntRange(1, MAX_EXTEND_WORKDAYS))
@click.option("--reason", required=True)
def extend(
    ticket_id: str, workdays: int, reason: str, calllog: str | None, routes_path: str | None, by: str | None
) -> None:
    _act(calllog, routes_path, ticket_id, "extend", by, workdays=workdays, reason=reason)


# -- credentials of the units and partners (ivr.ticketing.keys) ----------------------------------

keys_option = click.option(
    "--keys",
    "keys_path",
    default=None,
    type=click.Path(file_okay=False),
    help="The keys directory [default: $HOTLINE_API_KEYS, else $HOTLINE_STATE/api-keys].",
)


def _store(keys_path: str | None) -> KeyStore:
    return KeyStore(Path(keys_path) if keys_path else keys_dir())


@click.group("api-keys")
def api_keys() -> None:
    """Credentials of the units and partner platforms using the tickets API (/api/v1, beside /metrics)."""


@api_keys.command("add")
@click.argument("key_id", metavar="ID")
@click.option("--unit", required=True, help="The unit whose tickets the key sees and moves (as in routes.yaml).")
@click.option("--partner", is_flag=True, help="A partner platform (12315…), not a unit.")
@click.option("--webhook", default="", help="A partner's URL for status pushes (signed like the hand-off).")
@click.option("--routes", "routes_path", default="routes.yaml", show_default=True, type=click.Path(dir_okay=False))
@keys_option
def api_keys_add(key_id: str, unit: str, partner: bool, webhook: str, routes_path: str, keys_path: str | None) -> None:
    """Issue a key: its secret is printed once, here, and kept 0600 in the keys directory."""
    from ivr import logs
    from ivr.routing import routes

    logs.configure()  # the key's log line goes to stderr; stdout holds the secret alone

    try:
        units = {r.unit for r in routes.load(routes_path).routes.values()}
    except RoutesError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(ExitCode.INPUT)
    if unit not in units:
        click.echo(
            f"hotline: --unit {unit!r} is no unit of {routes_path} (one of: {', '.join(sorted(units))})", err=True
        )
        sys.exit(ExitCode.INPUT)
    try:
        key = _store(keys_path).add(key_id, unit=unit, kind="partner" if partner else "unit", webhook=webhook)
    except ValueError as exc:
        click.echo(f"hotline: {exc}; nothing changed", err=True)
        sys.exit(ExitCode.INPUT)
    click.echo(f"key {key.key_id} ({key.kind}, unit {key.unit}) — its secret, shown this once:")
    click.echo(key.secret)


@api_keys.command("list")
@keys_option
def api_keys_list(keys_path: str | None) -> None:
    """The keys, one a line (never their secrets)."""
    found = _store(keys_path).all()
    if not found:
        click.echo("no api keys", err=True)
    for key in found:
        click.echo(f"{key.key_id}  {key.kind:<7}  {key.unit}  {key.webhook or '-'}  added {_local(key.created_at)}")


@api_keys.command("remove")
@click.argument("key_id", metavar="ID")
@keys_option
def api_keys_remove(key_id: str, keys_path: str | None) -> None:
    """Revoke a key: requests signed with it are refused from now on."""
    from ivr import logs

    logs.configure()
    if not _store(keys_path).remove(key_id):
        click.echo(f"hotline: no api key {key_id!r} (see `hotline api-keys list`)", err=True)
        sys.exit(ExitCode.INPUT)
    click.echo(f"key {key_id} removed")
