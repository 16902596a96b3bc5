"""`python -m lab` — the lab's own commands (not shipped with the product).

python -m lab start [PART...]              start the lab (default: asterisk controller phones)
python -m lab stop [PART...]               stop it (default: every part), by the pids it recorded
python -m lab status                       what runs, the controller's /health, ARI, channels
python -m lab cluster start|stop|status    the cluster profile: Kamailio, two nodes, PostgreSQL
python -m lab call --to 12345 --keys 1     a demo citizen (SIPp) calls the lab hotline

PART: asterisk | controller | phones | prometheus (lab/manager.py); the cluster: lab/cluster.py.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import click

from ivr.exitcode import ExitCode


@click.group()
def main() -> None:
    """The 12345 hotline lab: SIPp citizens and phones around a real Asterisk."""


PART = click.Choice(["asterisk", "controller", "phones", "prometheus"])


def _run(action: Callable[[], object]) -> None:
    from lab.daemon import LabError

    try:
        action()
    except LabError as exc:
        click.echo(f"lab: error: {exc}", err=True)
        sys.exit(ExitCode.ENVIRONMENT)


@main.command()
@click.argument("parts", nargs=-1, type=PART)
def start(parts: tuple[str, ...]) -> None:
    """Start lab processes and wait until each is ready (the controller: its /health)."""
    from lab import manager

    _run(lambda: manager.start(parts))


@main.command()
@click.argument("parts", nargs=-1, type=PART)
def stop(parts: tuple[str, ...]) -> None:
    """Stop lab processes by their pid files: a signal, a bounded wait, then SIGKILL."""
    from lab import manager

    _run(lambda: manager.stop(parts))


@main.command()
def status() -> None:
    """What runs, whether the controller is ready, whether ARI answers."""
    from lab import manager

    def show() -> None:
        for label, state in manager.status():
            click.echo(f"{label:22} {state}")

    _run(show)


@main.command()
@click.argument("action", type=click.Choice(["start", "stop", "status"]))
def cluster(action: str) -> None:
    """The cluster profile (Kamailio, node1 + node2, PostgreSQL, phones): start, stop or status."""
    from lab import cluster as profile

    def show() -> None:
        for label, state in profile.status():
            click.echo(f"{label:24} {state}")

    _run({"start": profile.start, "stop": profile.stop, "status": show}[action])


@main.command()
@click.option("--to", "to", default="12345", show_default=True, help="Number to call.")
@click.option("--keys", default="", help="Keys to press after answer, e.g. 1 or 61; ',' waits 1 s, '~' speaks ~7 s.")
@click.option(
    "--talk",
    "talk",
    default=20.0,
    show_default=True,
    help="Seconds to stay on after the last key (the hotline or the department may hang up first).",
)
@click.option("--caller", default="13800138000", show_default=True, help="The citizen's number (shown masked).")
@click.option(
    "--calllog",
    default=None,
    type=click.Path(dir_okay=False),
    help="The call log [default: $HOTLINE_CALLLOG, else $HOTLINE_STATE/calllog.sqlite3].",
)
def call(to: str, keys: str, talk: float, caller: str, calllog: str | None) -> None:
    """Place a demo citizen call with SIPp and print what the call log recorded."""
    from ivr.calllog import open_calllog
    from ivr.settings import Storage
    from lab.citizen import place_call

    since = time.time()
    try:
        run_ = place_call(to, keys, caller=caller, talk_ms=int(talk * 1000))
    except (ValueError, FileNotFoundError) as exc:
        click.echo(f"hotline: {exc}", err=True)
        sys.exit(ExitCode.INPUT if isinstance(exc, ValueError) else ExitCode.ENVIRONMENT)
    click.echo(
        f"sipp: {'call completed' if run_.succeeded else 'call FAILED'} (exit {run_.returncode}, "
        f"traces in {run_.workdir})"
    )
    log = open_calllog(Storage.from_env(calllog=calllog).calllog)
    record = None
    for _ in range(50):  # the controller writes the record right after the hangup
        rows = [r for r in log.calls("started_at >= ?", (since - 1,)) if r["outcome"] != "in_progress"]
        if rows:
            record = rows[-1]
            break
        time.sleep(0.1)
    if record is None:
        click.echo("no finished call in the call log (is the controller running?)", err=True)
        sys.exit(ExitCode.ENVIRONMENT)
    shown = (
        "entry",
        "caller_masked",
        "track",
        "keys",
        "menu_path",
        "decision",
        "reason",
        "unit",
        "mode",
        "target_number",
        "dial_status",
        "operator_status",
        "outcome",
        "hangup_by",
        "talk_seconds",
    )
    for name in shown:
        click.echo(f"  {name:16} {record[name]}")
    sys.exit(ExitCode.OK if run_.succeeded else ExitCode.ENVIRONMENT)


if __name__ == "__main__":
    main()
