"""`hotline recordings list|show|export` and `hotline messages list|play|handled` (ivr.recording.catalog).

Numbers are shown masked; a caller is found by the keyed hash of their number (`--caller`
hashes it with the controller's key, `--caller-hash` takes the hash itself). Every export is
written to the call log first (who, which, why, where to), then copied: an export that is not
logged does not happen.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import structlog

from ivr.cli_options import calllog_option
from ivr.exitcode import ExitCode
from ivr.recording import catalog
from ivr.tickets import from_epoch

log = structlog.get_logger("ivr.recording")


def _open(given: str | None) -> Any:
    from ivr.cli import _open_calllog  # the CLI's one way to the call log (and its exit codes)

    return _open_calllog(given)


def _caller_hash(number: str) -> str:
    from ivr.privacy import caller_hash
    from ivr.settings import Storage

    key_file = Path(os.environ.get("HOTLINE_CALLER_KEY_FILE") or Storage.from_env().state / "caller-hash.key")
    try:
        key = key_file.read_text(encoding="utf-8").strip().encode()
    except OSError as exc:
        click.echo(f"hotline: cannot read the caller-hash key {key_file}: {exc.strerror}", err=True)
        sys.exit(ExitCode.ENVIRONMENT)
    return caller_hash(number, key)


def _line(r: dict[str, Any]) -> str:
    when = from_epoch(r["started_at"]).strftime("%Y-%m-%d %H:%M:%S")
    return (
        f"{r['name']}  {when}  {r['unit'] or '-'}  {r['party'] or '-'}  {r['caller_masked'] or '-'}"
        f"  ticket {r['ticket_id'] or '-'}  {r['seconds']:.1f}s  sha256 {r['sha256'][:12]}"
    )


def _filter_options(fn: Any) -> Any:
    for option in (
        click.option("--ticket", default="", help="Only the call of this ticket."),
        click.option("--unit", default="", help="Only calls routed to this unit."),
        click.option("--day", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Only this local day."),
        click.option("--caller", default="", help="Only this caller's calls (the number is hashed, never stored)."),
        click.option("--caller-hash", default="", help="Only calls with this caller hash."),
        click.option("--json", "as_json", is_flag=True, help="One JSON object per line."),
        calllog_option,
    ):
        fn = option(fn)
    return fn


def _filter(kind: str, ticket: str, unit: str, day: dt.datetime | None, caller: str, hashed: str) -> catalog.Filter:
    return catalog.Filter(
        kind=kind,
        ticket=ticket,
        unit=unit,
        day=day.date() if day else None,
        caller_hash=_caller_hash(caller) if caller else hashed,
    )


def _show(rows: list[dict[str, Any]], as_json: bool, what: str) -> None:
    if not rows:
        click.echo(f"no {what}", err=True)
    for r in rows:
        click.echo(json.dumps(r, ensure_ascii=False) if as_json else _line(r))


@click.group("recordings")
def recordings() -> None:
    """Call recordings (全程录音): find, show, export."""


@recordings.command("list")
@_filter_options
def recordings_list(
    ticket: str, unit: str, day: dt.datetime | None, caller: str, caller_hash: str, as_json: bool, calllog: str | None
) -> None:
    """Recordings in the order they were made: name, time, unit, party, masked caller, ticket, length, checksum."""
    rows = catalog.find(_open(calllog), _filter("call", ticket, unit, day, caller, caller_hash))
    _show(rows, as_json, "recordings")


@recordings.command("show")
@click.argument("name")
@calllog_option
def recordings_show(name: str, calllog: str | None) -> None:
    """One recording or message: its call, its file (checked against its SHA-256) and its exports."""
    cl = _open(calllog)
    row = catalog.one(cl, name)
    if row is None:
        click.echo(f"hotline: no recording {name} (see `hotline recordings list`)", err=True)
        sys.exit(ExitCode.INPUT)
    path = Path(row["path"])
    row["file"] = catalog.verify(path, row["sha256"])
    row["exports"] = catalog.exports_of(cl, name)
    click.echo(json.dumps(row, ensure_ascii=False, indent=2))


@recordings.command("export")
@click.argument("name")
@click.option("--to", "dest", required=True, type=click.Path(file_okay=False), help="Directory to copy it into.")
@click.option("--by", "who", required=True, help="Who exports it (logged).")
@click.option("--reason", required=True, help="Why: a dispute, a complaint number, a review (logged).")
@calllog_option
def recordings_export(name: str, dest: str, who: str, reason: str, calllog: str | None) -> None:
    """Copy a recording (or message) out, checked against its SHA-256; logged first (who, which, why)."""
    if not who.strip() or not reason.strip():
        click.echo("hotline: --by and --reason must say something: every export is accounted for", err=True)
        sys.exit(ExitCode.INPUT)
    cl = _open(calllog)
    row = catalog.one(cl, name)
    if row is None:
        click.echo(f"hotline: no recording {name} (see `hotline recordings list`)", err=True)
        sys.exit(ExitCode.INPUT)
    source = Path(row["path"])
    state = catalog.verify(source, row["sha256"])
    if state != "ok":
        click.echo(f"hotline: {name}: {state}: not exported", err=True)
        sys.exit(ExitCode.ENVIRONMENT)
    target = Path(dest) / source.name
    catalog.log_export(cl, name, who.strip(), reason.strip(), str(target), time.time())
    log.info("recording_exported", recording=name, by=who.strip(), reason=reason.strip(), to=str(target))
    try:
        Path(dest).mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out)
    except OSError as exc:
        click.echo(f"hotline: cannot write {target}: {exc.strerror}", err=True)
        sys.exit(ExitCode.ENVIRONMENT)
    click.echo(f"{target}: {name}, sha256 {row['sha256']}")


@click.group("messages")
def messages() -> None:
    """Citizens' messages (留言): list, play, mark handled."""


@messages.command("list")
@_filter_options
@click.option("--all", "show_all", is_flag=True, help="Handled ones too.")
def messages_list(
    ticket: str,
    unit: str,
    day: dt.datetime | None,
    caller: str,
    caller_hash: str,
    as_json: bool,
    calllog: str | None,
    show_all: bool,
) -> None:
    """Messages, oldest first, with their ticket and callback entry; only those not handled unless --all."""
    flt = _filter("message", ticket, unit, day, caller, caller_hash)
    rows = catalog.find(_open(calllog), catalog.Filter(**{**flt.__dict__, "open_only": not show_all}))
    if as_json or not rows:
        _show(rows, as_json, "messages")
        return
    for r in rows:
        handled = f"handled by {r['handled_by']}" if r["handled_at"] else "open"
        click.echo(f"{_line(r)}  callback {r['callback_id'] or '-'}  {handled}")


@messages.command("play")
@click.argument("name")
@click.option("--player", default="aplay", show_default=True, help="The program that plays a WAV file.")
@calllog_option
def messages_play(name: str, player: str, calllog: str | None) -> None:
    """Play a message (checked against its SHA-256 first)."""
    row = catalog.one(_open(calllog), name)
    if row is None or row["kind"] != "message":
        click.echo(f"hotline: no message {name} (see `hotline messages list`)", err=True)
        sys.exit(ExitCode.INPUT)
    path = Path(row["path"])
    state = catalog.verify(path, row["sha256"])
    if state != "ok":
        click.echo(f"hotline: {name}: {state}", err=True)
        sys.exit(ExitCode.ENVIRONMENT)
    if shutil.which(player) is None:
        click.echo(f"hotline: no player '{player}' here; the file is {path}", err=True)
        sys.exit(ExitCode.ENVIRONMENT)
    sys.exit(subprocess.run([player, str(path)], check=False).returncode)


@messages.command("handled")
@click.argument("name")
@click.option("--by", "who", required=True, help="Who called the citizen back.")
@calllog_option
def messages_handled(name: str, who: str, calllog: str | None) -> None:
    """Mark a message handled by whoever called back (its callback entry: `hotline callbacks mark`)."""
    if not who.strip():
        click.echo("hotline: --by must name who handled it", err=True)
        sys.exit(ExitCode.INPUT)
    if not catalog.mark_handled(_open(calllog), name, who.strip(), time.time()):
        click.echo(f"hotline: no message {name} (see `hotline messages list --all`)", err=True)
        sys.exit(ExitCode.INPUT)
    click.echo(f"{name}: handled by {who.strip()}")


@click.group("qa")
def qa() -> None:
    """录音抽检: draw a sample of recorded calls, score them on the form (qa.yaml)."""


@qa.command("sample")
@click.option("--from", "start", required=True, type=click.DateTime(["%Y-%m-%d"]), help="First local day.")
@click.option("--to", "end", required=True, type=click.DateTime(["%Y-%m-%d"]), help="Last local day (included).")
@click.option("--per-unit", type=click.IntRange(0), default=2, show_default=True)
@click.option("--per-operator", type=click.IntRange(0), default=2, show_default=True)
@click.option("--seed", type=int, default=None, help="Same seed, same sample [default: a new one, printed].")
@calllog_option
def qa_sample(
    start: dt.datetime, end: dt.datetime, per_unit: int, per_operator: int, seed: int | None, calllog: str | None
) -> None:
    """A random sample of the period's recorded calls, per unit and per operator seat; one JSON object per line."""
    import random

    from ivr.recording.qa import group_of, sample

    if seed is None:
        seed = random.SystemRandom().randrange(1, 1_000_000)
    rows: list[dict[str, Any]] = []
    cl = _open(calllog)
    day = start.date()
    while day <= end.date():
        rows += catalog.find(cl, catalog.Filter(kind="call", day=day))
        day += dt.timedelta(days=1)
    click.echo(f"seed {seed}: {len(rows)} recorded calls from {start.date()} to {end.date()}", err=True)
    for r in sample(rows, per_unit, per_operator, seed):
        kind, who = group_of(r)
        line = {"name": r["name"], "call_id": r["call_id"], kind: who, "seed": seed}
        click.echo(json.dumps(line, ensure_ascii=False))


@qa.command("score")
@click.argument("call_id")
@click.option("--score", "-s", "given", multiple=True, required=True, help="CRITERION=POINTS, once per criterion.")
@click.option("--by", "who", required=True, help="The reviewer.")
@click.option("--sample", "sample_id", default="", help="The sample it was drawn in (e.g. its seed).")
@click.option("--note", default="")
@click.option("--form", "form_path", default="qa.yaml", show_default=True, type=click.Path(dir_okay=False))
@calllog_option
def qa_score(
    call_id: str, given: tuple[str, ...], who: str, sample_id: str, note: str, form_path: str, calllog: str | None
) -> None:
    """Store one call's score form in the call log (a later form for the same call replaces it)."""
    from ivr.errors import ConfigError
    from ivr.recording.qa import check_scores, load_form

    try:
        form = load_form(form_path)
    except (OSError, ConfigError) as exc:
        click.echo(f"hotline: {exc}", err=True)
        sys.exit(ExitCode.INPUT)
    scores: dict[str, int] = {}
    for item in given:
        key, _, value = item.partition("=")
        if not value.strip().isdigit():
            click.echo(f"hotline: --score {item}: say CRITERION=POINTS", err=True)
            sys.exit(ExitCode.INPUT)
        scores[key.strip()] = int(value)
    wrong = check_scores(form, scores)
    if wrong:
        click.echo("hotline: " + "; ".join(wrong), err=True)
        sys.exit(ExitCode.INPUT)
    cl = _open(calllog)
    if not catalog.find(cl, catalog.Filter(kind="call", call_id=call_id)):
        click.echo(f"hotline: no recorded call {call_id} (see `hotline recordings list`)", err=True)
        sys.exit(ExitCode.INPUT)
    catalog.save_scores(cl, call_id, scores, who.strip(), sample_id, note, time.time())
    total, top = sum(scores.values()), sum(c.max for c in form)
    click.echo(f"{call_id}: {total}/{top} by {who.strip()}")
