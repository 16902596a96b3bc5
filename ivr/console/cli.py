"""`hotline operators …`: the console's accounts (ivr.console.accounts), in HOTLINE_STATE.

    hotline operators list
    hotline operators add NAME --role operator --seat seat-1      (password asked twice, or --password-file)
    hotline operators passwd NAME
    hotline operators seat NAME SEAT       an operator's seat, or a supervisor's phone for listening in ('' for none)
    hotline operators remove NAME
    hotline operators first-supervisor     the first supervisor with a generated password, kept 0600;
                                           prints it once (what `./hotlinectl up` shows); nothing if accounts exist

A change takes effect at the next login; a running console keeps sessions until they expire.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from ivr.console.accounts import FIRST_SUPERVISOR, AccountError, AccountStore
from ivr.exitcode import ExitCode
from ivr.settings import Storage


def _store() -> AccountStore:
    return AccountStore.in_state(Storage.from_env().state)


def _password(password_file: str | None) -> str:
    if password_file:
        try:
            return Path(password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            click.echo(f"hotline: cannot read {password_file}: {exc.strerror}", err=True)
            sys.exit(ExitCode.INPUT)
    return str(click.prompt("password", hide_input=True, confirmation_prompt=True))


def _fail(exc: Exception) -> NoReturn:
    click.echo(f"hotline: refused: {exc}", err=True)
    sys.exit(ExitCode.INPUT)


@click.group("operators")
def operators() -> None:
    """The operator console's accounts: operators (one seat each) and supervisors."""


@operators.command("list")
def list_() -> None:
    store = _store()
    try:
        accounts = store.load()
    except AccountError as exc:
        _fail(exc)
    click.echo(f"{'name':<20} {'role':<11} seat")
    for account in accounts.values():
        click.echo(f"{account.name:<20} {account.role:<11} {account.seat or '-'}")


@operators.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["operator", "supervisor"]), default="operator", show_default=True)
@click.option(
    "--seat",
    default="",
    help="the operator's seat, or the supervisor's phone for listening in: a seat id of routes.yaml operators.seats",
)
@click.option("--password-file", help="read the password from this file instead of asking")
def add(name: str, role: str, seat: str, password_file: str | None) -> None:
    store = _store()
    try:
        account = store.add(name, role, _password(password_file), seat)
    except AccountError as exc:
        _fail(exc)
    click.echo(f"added {account.name} ({account.role}{', seat ' + account.seat if account.seat else ''})")


@operators.command("passwd")
@click.argument("name")
@click.option("--password-file", help="read the new password from this file instead of asking")
def passwd(name: str, password_file: str | None) -> None:
    store = _store()
    try:
        store.passwd(name, _password(password_file))
    except AccountError as exc:
        _fail(exc)
    click.echo(f"password of {name} changed")


@operators.command("seat")
@click.argument("name")
@click.argument("seat")
def seat(name: str, seat: str) -> None:
    store = _store()
    try:
        account = store.set_seat(name, seat)
    except AccountError as exc:
        _fail(exc)
    click.echo(f"{account.name} ({account.role}): seat {account.seat or '-'}")


@operators.command("remove")
@click.argument("name")
def remove(name: str) -> None:
    store = _store()
    try:
        store.remove(name)
    except AccountError as exc:
        _fail(exc)
    click.echo(f"removed {name}")


@operators.command("first-supervisor")
def first_supervisor() -> None:
    store = _store()
    try:
        made = store.first_supervisor()
    except AccountError as exc:
        _fail(exc)
    if made is not None:
        click.echo(f"console login: {FIRST_SUPERVISOR} / {made[1]}   (kept 0600 in {made[0]})")
