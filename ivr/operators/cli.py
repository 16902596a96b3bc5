"""`hotline seats …`: the operators' seats of the running controller — show them, change their state.

The commands speak to the controller's operators' API (ivr.operators.api) on HOTLINE_METRICS_ADDR
with the supervisor's token, derived from the caller-hash key as the controller derives it, so they
work on the controller's own machine with its state directory, and nowhere else.

    hotline seats                      every seat: state (signed_out, ready, busy, paused, wrap_up), reason, call
    hotline seats history [--hours N]  the state changes the call log kept
    hotline seats ready SEAT           sign in / end a pause / end after-call work
    hotline seats pause SEAT --reason 午餐
    hotline seats sign-out SEAT
    hotline seats token SEAT           the seat's own API token (for its operator's console or tools)
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

from ivr.exitcode import ExitCode


def _key() -> bytes:
    from ivr.settings import Storage

    path = Path(os.environ.get("HOTLINE_CALLER_KEY_FILE", str(Storage.from_env().state / "caller-hash.key")))
    try:
        return path.read_text(encoding="utf-8").strip().encode()
    except OSError as exc:
        click.echo(f"hotline: cannot read the caller-hash key {path}: {exc.strerror}", err=True)
        sys.exit(ExitCode.ENVIRONMENT)


def _call(method: str, path: str, body: dict[str, str] | None = None) -> dict[str, Any]:
    """One request to the running controller; exits ENVIRONMENT if it is not there, INPUT if it refuses."""
    from ivr.operators.desk import seat_token

    address = os.environ.get("HOTLINE_METRICS_ADDR", "127.0.0.1:9345")
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {seat_token(_key(), '*')}", "Content-Type": "application/json"}
    request = urllib.request.Request(f"http://{address}/api/v1{path}", data, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return dict(json.loads(resp.read()))
    except urllib.error.HTTPError as err:
        try:
            message = json.loads(err.read()).get("error", err.reason)
        except ValueError:
            message = err.reason
        click.echo(f"hotline: refused ({err.code}): {message}", err=True)
        sys.exit(ExitCode.INPUT)
    except OSError as exc:
        click.echo(f"hotline: no controller answers at {address} ({exc}); is `hotline run` up?", err=True)
        sys.exit(ExitCode.ENVIRONMENT)


@click.group("seats", invoke_without_command=True)
@click.pass_context
def seats(ctx: click.Context) -> None:
    """The operators' seats: who is signed in, ready, busy, paused (小休) or in after-call work (话后处理)."""
    if ctx.invoked_subcommand is not None:
        return
    shown = _call("GET", "/seats")
    click.echo(f"{'seat':<12} {'state':<11} {'call':<18} reason")
    for seat in shown["seats"]:
        after = f" (then {seat['after_call']})" if seat["after_call"] else ""
        click.echo(f"{seat['seat']:<12} {seat['state']:<11} {seat['call_id'] or '-':<18} {seat['reason']}{after}")
    click.echo(f"callers waiting: {shown['waiting']}")


def _change(seat: str, state: str, reason: str = "") -> None:
    changed = _call("POST", f"/seats/{seat}/state", {"state": state, "reason": reason})
    when = "after the call in progress" if changed["pending"] else "now"
    click.echo(f"{seat}: {changed['state']} {when}" + (f" ({changed['reason']})" if changed["reason"] else ""))


@seats.command("ready")
@click.argument("seat")
def ready(seat: str) -> None:
    """Sign SEAT in, or end its pause or after-call work."""
    _change(seat, "ready")


@seats.command("pause")
@click.argument("seat")
@click.option("--reason", required=True, help="Why (小休, 午餐, 培训 ...): kept in the call log.")
def pause(seat: str, reason: str) -> None:
    """Pause SEAT: it is offered no call until it is ready again."""
    _change(seat, "paused", reason)


@seats.command("sign-out")
@click.argument("seat")
def sign_out(seat: str) -> None:
    """Sign SEAT out (after its call in progress, if any)."""
    _change(seat, "signed_out")


@seats.command("token")
@click.argument("seat")
def token(seat: str) -> None:
    """Print SEAT's own API token ('*': the supervisor's, every seat)."""
    from ivr.operators.desk import seat_token

    click.echo(seat_token(_key(), seat))


@seats.command("history")
@click.option("--hours", default=24, show_default=True, help="How far back.")
@click.option("--calllog", default=None, type=click.Path(dir_okay=False), help="The call log (default as `calls`).")
def history(hours: int, calllog: str | None) -> None:
    """The seat state changes the call log kept."""
    from ivr.calllog.seats import seat_events
    from ivr.cli import _local, _open_calllog

    for event in seat_events(_open_calllog(calllog), since=time.time() - hours * 3600):
        pending = " (asked during a call)" if event["pending"] else ""
        seat, state, by = event["seat"], event["state"], event["by"]
        click.echo(f"{_local(event['at'])}  {seat:<10} {state:<11} {by:<5} {event['reason']}{pending}")
